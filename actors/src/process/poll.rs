//! The poll thread: the only thread that reads the group consumer. It serves the main
//! queue (rebalance callbacks, statistics, offset commits) and reads each assigned
//! partition from a queue of its own, handing records to the partition's pipeline in
//! chunks.
//!
//! Backpressure is per partition and never pauses: a partition whose pipeline holds
//! `max_buffered_records` is simply not read until the writer commits, and librdkafka
//! stops fetching it once its prefetch queue is full (`queued.min.messages`,
//! `queued.max.messages.kbytes`). `pause()` would instead purge the partition's
//! prefetched records and refetch them on resume (librdkafka #1849, #5343): with the
//! buffer full most of the time under load, pausing cost a quarter of the throughput
//! (measured: 20.8k records/s with pause/resume, 26.5k without).

use super::handle::PartitionHandle;
use super::messages::{CoordinatorMsg, PartitionConsumerMsg};
use crate::observe::{Consumption, GroupState, Partitions};
use crate::store::rebootstrap::BrokerLoss;
use ractor::ActorRef;
use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{ClientContext, TopicPartitionList};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Where the poll thread sends one partition's records.
pub(super) struct Route {
    pub consumer: ActorRef<PartitionConsumerMsg>,
    /// The next offset to forward; anything below was already processed.
    pub next_offset: i64,
    /// The partition: counts what is sent to the pipeline until its batch is settled.
    pub handle: PartitionHandle,
    /// The pipeline is full: the partition is not read until the writer commits.
    pub backpressured: bool,
}

pub(super) type Routes = Arc<Mutex<HashMap<i32, Route>>>;

/// Wakes the poll thread: rung by librdkafka when the main queue or a partition queue
/// becomes non-empty, so an idle thread sleeps instead of polling every queue in turn.
#[derive(Default)]
pub(super) struct Doorbell {
    rung: Mutex<bool>,
    ringing: Condvar,
}

impl Doorbell {
    pub fn ring(&self) {
        *self.rung.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.ringing.notify_one();
    }

    /// Returns once rung (then un-rings) or after `timeout`.
    fn wait(&self, timeout: Duration) {
        let rung = self.rung.lock().unwrap_or_else(|p| p.into_inner());
        let (mut rung, _) = self
            .ringing
            .wait_timeout_while(rung, timeout, |rung| !*rung)
            .unwrap_or_else(|p| p.into_inner());
        *rung = false;
    }
}

/// The consumer's hooks; they run on the poll thread, inside `poll`.
pub struct RebalanceContext {
    pub(super) coordinator: ActorRef<CoordinatorMsg>,
    pub(super) topic: String,
    pub(super) routes: Routes,
    pub(super) drain_timeout: Duration,
    pub(super) partitions: Partitions,
    /// Set after an assignment: the poll thread splits the new partitions' queues (an
    /// assignment deactivates every earlier partition queue).
    pub(super) assigned: AtomicBool,
    /// The group handler's (state, join state) at the last statistics: changes are logged.
    pub(super) group_state: Mutex<(String, String)>,
    /// Whether the consumer still knows a broker (see [`crate::store::rebootstrap`]).
    pub(super) brokers: BrokerLoss,
    /// Where the group handler's state goes, for the consumption monitor.
    pub(super) consumption: Consumption,
    /// Its coordinator ended: the consumer is closing and reports nothing any more.
    pub(super) retired: AtomicBool,
}

impl ClientContext for RebalanceContext {
    /// librdkafka's statistics (every second, served by the poll thread): the group
    /// handler's state for the consumption monitor, whether the client still knows a
    /// broker, and each routed partition's end, in-flight records and backpressure.
    /// (Lag is the consumption monitor's: Cassandra against the end of every partition.)
    fn stats(&self, statistics: rdkafka::Statistics) {
        if self.retired.load(Ordering::SeqCst) {
            return;
        }
        self.brokers.observe(&statistics);
        if let Some(group) = &statistics.cgrp {
            let mut last = self.group_state.lock().unwrap_or_else(|p| p.into_inner());
            if (last.0.as_str(), last.1.as_str())
                != (group.state.as_str(), group.join_state.as_str())
            {
                tracing::info!(
                    state = %group.state,
                    join_state = %group.join_state,
                    assignment = group.assignment_size,
                    rebalances = group.rebalance_cnt,
                    reason = %group.rebalance_reason,
                    "consumer group state changed"
                );
                *last = (group.state.clone(), group.join_state.clone());
            }
            self.consumption.update(|c| {
                c.group = Some(GroupState {
                    state: group.state.clone(),
                    join_state: group.join_state.clone(),
                    assignment: group.assignment_size,
                    rebalances: group.rebalance_cnt,
                    reason: group.rebalance_reason.clone(),
                });
            });
        }
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        let routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        for (&partition, route) in routes.iter() {
            let Some(stats) = topic.partitions.get(&partition) else {
                continue;
            };
            let in_flight = route.handle.buffered() as u64;
            let end = (stats.ls_offset >= 0).then_some(stats.ls_offset);
            self.partitions.update(partition, |p| {
                p.end_offset = end;
                p.in_flight_records = in_flight;
                p.backpressured = route.backpressured;
            });
        }
    }
}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let partitions = partitions_of(list, &self.topic);
            if partitions.is_empty() {
                return;
            }
            // Stop routing at once; then wait for the pipelines to drain and stop, so
            // the next owner starts after our last commit.
            {
                let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
                for p in &partitions {
                    routes.remove(p);
                }
            }
            let (done, wait) = std::sync::mpsc::channel();
            if self
                .coordinator
                .send_message(CoordinatorMsg::Revoked { partitions, done })
                .is_ok()
            {
                let _ = wait.recv_timeout(self.drain_timeout + Duration::from_secs(5));
            }
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            self.assigned.store(true, Ordering::SeqCst);
            let partitions = partitions_of(list, &self.topic);
            if !partitions.is_empty() {
                let _ = self
                    .coordinator
                    .send_message(CoordinatorMsg::Assigned { partitions });
            }
        }
    }
}

fn partitions_of(list: &TopicPartitionList, topic: &str) -> Vec<i32> {
    list.elements_for_topic(topic)
        .iter()
        .map(|e| e.partition())
        .collect()
}

pub(super) type GroupConsumer = BaseConsumer<RebalanceContext>;
type Queues = HashMap<i32, PartitionQueue<RebalanceContext>>;

/// How long the poll thread sleeps when some partition waits for its writer: room
/// appears when a batch commits, which rings no bell.
const BACKPRESSURE_RECHECK: Duration = Duration::from_millis(5);
/// How long an idle poll thread sleeps unless rung (it still serves the main queue).
const IDLE_WAIT: Duration = Duration::from_millis(100);

/// The poll thread's loop, until `stop`.
pub(super) fn poll_loop(
    consumer: &Arc<GroupConsumer>,
    routes: &Routes,
    stop: &AtomicBool,
    topic: &str,
    max_buffered: usize,
    doorbell: &Arc<Doorbell>,
) {
    let mut queues = Queues::new();
    while !stop.load(Ordering::SeqCst) {
        // The main queue: callbacks, and records of partitions whose queue is not
        // split yet (fetched between an assignment and the split below).
        let mut worked = false;
        while let Some(result) = consumer.poll(Duration::ZERO) {
            worked = true;
            match result {
                Ok(message) => {
                    let partition = message.partition();
                    let mut routes = routes.lock().unwrap_or_else(|p| p.into_inner());
                    route(&mut routes, partition, vec![message.detach()]);
                }
                Err(error) => tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    "kafka consumer error"
                ),
            }
        }
        if consumer.context().assigned.swap(false, Ordering::SeqCst) {
            // Old handles first: dropping one turns off the wake-up callback of the
            // underlying queue, which is the one a new split of its partition returns.
            queues.clear();
            queues = split_queues(consumer, topic, doorbell);
        }
        let (read, waiting) = read_partitions(&queues, routes, max_buffered);
        if !worked && !read {
            doorbell.wait(if waiting {
                BACKPRESSURE_RECHECK
            } else {
                IDLE_WAIT
            });
        }
    }
}

/// A queue of its own for every partition of `topic` assigned now.
fn split_queues(consumer: &Arc<GroupConsumer>, topic: &str, doorbell: &Arc<Doorbell>) -> Queues {
    let assignment = match consumer.assignment() {
        Ok(assignment) => assignment,
        Err(error) => {
            // Its records then arrive through the main queue, routed all the same.
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                "cannot read the assignment: partitions stay on the main queue"
            );
            return Queues::new();
        }
    };
    partitions_of(&assignment, topic)
        .into_iter()
        .filter_map(|partition| {
            let mut queue = consumer.split_partition_queue(topic, partition)?;
            let bell = doorbell.clone();
            queue.set_nonempty_callback(move || bell.ring());
            Some((partition, queue))
        })
        .collect()
}

/// Reads every partition whose pipeline has room, up to that room. Returns whether
/// any record was read, and whether some partition waits for room.
///
/// Each partition's chunk is taken from its queue and routed under the routes' lock
/// (the queue is read without waiting, so the lock is held briefly): the coordinator
/// replaces a route only under that lock and seeks between removing the old route and
/// inserting the new one, so a chunk is either fetched before the seek and goes to the
/// old route, or after it and goes to the new one. A chunk fetched from the old
/// position but routed to the new route would pass its offset filter and skip the
/// records between the new route's resume offset and the chunk (lost).
fn read_partitions(queues: &Queues, routes: &Routes, max_buffered: usize) -> (bool, bool) {
    let (mut read, mut waiting) = (false, false);
    for (&partition, queue) in queues {
        let mut routes = routes.lock().unwrap_or_else(|p| p.into_inner());
        // No route: the pipeline is starting (it seeks here when ready) or the
        // partition was just revoked. Its records wait in librdkafka.
        let Some(open) = routes.get_mut(&partition) else {
            continue;
        };
        let room = max_buffered.saturating_sub(open.handle.buffered());
        if room == 0 && !open.backpressured {
            metrics::counter!("tributary_partition_backpressure_total").increment(1);
        }
        open.backpressured = room == 0;
        if room == 0 {
            waiting = true;
            continue;
        }
        let mut chunk = Vec::new();
        while chunk.len() < room {
            match queue.poll(Duration::ZERO) {
                Some(Ok(message)) => chunk.push(message.detach()),
                Some(Err(error)) => tracing::warn!(
                    partition,
                    error = &error as &dyn std::error::Error,
                    "kafka consumer error"
                ),
                None => break,
            }
        }
        if !chunk.is_empty() {
            read = true;
            route(&mut routes, partition, chunk);
        }
    }
    (read, waiting)
}

/// Sends `records` (one partition's, in offset order) to its pipeline, skipping what it
/// already processed; a pipeline that is gone loses its route.
fn route(routes: &mut HashMap<i32, Route>, partition: i32, mut records: Vec<OwnedMessage>) {
    let Some(route) = routes.get_mut(&partition) else {
        return;
    };
    records.retain(|r| r.offset() >= route.next_offset);
    let Some(last) = records.last().map(Message::offset) else {
        return;
    };
    route.next_offset = last + 1;
    route.handle.routed(records.len());
    if route
        .consumer
        .send_message(PartitionConsumerMsg::Records(records))
        .is_err()
    {
        routes.remove(&partition);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_ring_before_the_wait_is_not_lost() {
        let bell = Doorbell::default();
        bell.ring();
        let started = Instant::now();
        bell.wait(Duration::from_secs(5));
        assert!(started.elapsed() < Duration::from_secs(1));
        // Consumed: the next wait times out.
        let started = Instant::now();
        bell.wait(Duration::from_millis(50));
        assert!(started.elapsed() >= Duration::from_millis(50));
    }

    #[test]
    fn a_ring_from_another_thread_wakes_the_waiter() {
        let bell = Arc::new(Doorbell::default());
        let ringer = bell.clone();
        let started = Instant::now();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            ringer.ring();
        });
        bell.wait(Duration::from_secs(5));
        assert!(started.elapsed() < Duration::from_secs(1));
        let _ = thread.join();
    }
}
