//! The coordinator: owns this instance's consumer-group membership.
//!
//! A dedicated thread ([`super::poll`]) reads the group consumer
//! (isolation.level=read_committed, no auto commit), one queue per partition, and routes
//! records to their partition's pipeline; polling the main queue serves the rebalance
//! callbacks. On assignment the coordinator starts a pipeline per partition; the
//! pipeline's writer claims the partition in Cassandra and the coordinator seeks the
//! partition to the offset after the one committed there. On revocation (inside the
//! rebalance callback, so before the rebalance completes) it stops routing, drains the
//! in-flight batches and stops the pipelines.
//!
//! Kafka group offsets are committed asynchronously after each Cassandra commit, for lag
//! monitoring only: recovery never reads them.

use super::config::Config;
use super::handle::{PartitionHandle, PartitionReport};
use super::messages::{CoordinatorMsg, DlqProducer, PartitionConsumerMsg};
use super::partition::{self, PartitionContext};
use super::poll::{Doorbell, GroupConsumer, RebalanceContext, Route, Routes, poll_loop};
use crate::directory::Directory;
use crate::observe::{Consumption, Partitions};
use crate::store::closing;
use crate::store::rebootstrap::{BrokerLoss, KeptContext};
use crate::store::{cassandra, kafka};
use crate::supervisor::shell::{self, Shelled};
use crate::supervisor::{Drain, RestartStats, Supervisor, SupervisorMsg};
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::producer::Producer as _;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tracing::Instrument;

/// librdkafka's prefetch bound per partition in KiB (with a queue per partition it
/// applies per partition): a ceiling for unusually large records; `batch_size` records
/// (`queued.min.messages`) is the bound that normally applies first.
const PREFETCH_KBYTES: u32 = 4 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct Coordinator;

pub struct CoordinatorArgs {
    pub config: Config,
    pub kafka: kafka::Config,
    pub cassandra: cassandra::Config,
    /// This instance's name, recorded as partition owner.
    pub owner: String,
    pub stats: RestartStats,
    /// This instance's partitions, for the status API and gauges.
    pub partitions: Partitions,
    /// The consumption monitor's board (the group handler's state goes there).
    pub consumption: Consumption,
    /// Where this coordinator registers itself, for the monitor's watchdog.
    pub directory: Directory<CoordinatorMsg>,
}

/// An assigned partition's pipeline.
struct Pipeline {
    /// Which assignment of the partition it serves (see `CoordinatorMsg::Partition`).
    assignment: u64,
    supervisor: ActorRef<SupervisorMsg>,
    handle: PartitionHandle,
    /// Its consumer, once it reported ready (for drains).
    consumer: Option<ActorRef<PartitionConsumerMsg>>,
}

pub struct CoordinatorState {
    config: Config,
    bootstrap_servers: String,
    /// Whether the DLQ producer still knows a broker.
    dlq_brokers: Arc<BrokerLoss>,
    topic: String,
    consumer: Arc<GroupConsumer>,
    routes: Routes,
    pipelines: HashMap<i32, Pipeline>,
    /// The number the next assigned partition's pipeline gets.
    next_assignment: u64,
    context: PartitionContext,
    stop: Arc<AtomicBool>,
    poller: Option<std::thread::JoinHandle<()>>,
}

impl Actor for Coordinator {
    type Msg = CoordinatorMsg;
    type State = CoordinatorState;
    type Arguments = CoordinatorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<CoordinatorMsg>,
        args: CoordinatorArgs,
    ) -> Result<CoordinatorState, ActorProcessingErr> {
        let topic = args.kafka.topics.raw.name.clone();
        let dlq_context = KeptContext::default();
        let dlq_brokers = dlq_context.loss.clone();
        let dlq: DlqProducer = args
            .kafka
            .client_config("dlq")?
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("statistics.interval.ms", "1000")
            .create_with_context(dlq_context)?;
        let routes: Routes = Arc::default();
        let context = RebalanceContext {
            coordinator: myself.clone(),
            topic: topic.clone(),
            routes: routes.clone(),
            drain_timeout: args.config.drain_timeout(),
            partitions: args.partitions.clone(),
            assigned: AtomicBool::new(false),
            group_state: std::sync::Mutex::default(),
            brokers: BrokerLoss::default(),
            consumption: args.consumption.clone(),
            retired: AtomicBool::new(false),
        };
        let mut consumer: GroupConsumer = args
            .kafka
            .client_config("consumer")?
            .set("group.id", &args.config.group_id)
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set(
                "session.timeout.ms",
                args.config.session_timeout_ms.to_string(),
            )
            .set("partition.assignment.strategy", "range")
            // Bounded prefetch: librdkafka's defaults (100,000 records per partition,
            // 64 MiB) would dominate the process's memory. One batch ahead per partition
            // keeps its writer fed (prefetched records are kept while the partition
            // waits for room, never purged: see `poll`).
            .set("queued.min.messages", args.config.batch_size.to_string())
            .set("queued.max.messages.kbytes", PREFETCH_KBYTES.to_string())
            // Once the queue is full the fetcher sleeps this long before looking again
            // (default 1 s): with a bounded queue that stalled every partition.
            .set("fetch.queue.backoff.ms", "20")
            // Feeds per-partition lag to the status API and /metrics.
            .set("statistics.interval.ms", "1000")
            .create_with_context(context)?;
        let doorbell = Arc::new(Doorbell::default());
        let bell = doorbell.clone();
        consumer.set_nonempty_callback(move || bell.ring());
        consumer.subscribe(&[&topic])?;
        let consumer = Arc::new(consumer);
        let stop = Arc::new(AtomicBool::new(false));
        let poller = {
            let (consumer, routes, stop, topic) = (
                consumer.clone(),
                routes.clone(),
                stop.clone(),
                topic.clone(),
            );
            let max_buffered = args.config.max_buffered_records;
            std::thread::Builder::new()
                .name("tributary-poll".into())
                .spawn(move || {
                    poll_loop(&consumer, &routes, &stop, &topic, max_buffered, &doorbell);
                })?
        };
        let context = PartitionContext {
            cassandra: args.cassandra.clone(),
            keyspace: args.cassandra.keyspace.clone(),
            topic: topic.clone(),
            dlq: closing::shared(dlq),
            dlq_topic: args.kafka.topics.dlq.name.clone(),
            registry: crate::store::registry::Registry::new(&args.kafka.registry)?.map(Arc::new),
            owner: args.owner.clone(),
            batch_size: args.config.batch_size,
            batch_linger: Duration::from_millis(args.config.batch_linger_ms),
            write_concurrency: args.config.write_concurrency,
            rows_per_request: args.config.rows_per_request,
            run_digests_kept: args.config.run_digests_kept,
            policy: args.config.partition_supervision.clone(),
            stats: args.stats.clone(),
            partitions: args.partitions.clone(),
        };
        args.directory.register(myself.clone());
        tracing::info!(group = %args.config.group_id, %topic, "coordinator joined the consumer group");
        Ok(CoordinatorState {
            bootstrap_servers: args.kafka.bootstrap_servers.clone(),
            dlq_brokers,
            config: args.config,
            topic,
            consumer,
            routes,
            pipelines: HashMap::new(),
            next_assignment: 0,
            context,
            stop,
            poller: Some(poller),
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<CoordinatorMsg>,
        _: &mut CoordinatorState,
    ) -> Result<(), ActorProcessingErr> {
        myself.send_interval(Duration::from_secs(1), || CoordinatorMsg::KeepClients);
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<CoordinatorMsg>,
        state: &mut CoordinatorState,
    ) -> Result<(), ActorProcessingErr> {
        retire(state).await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let result = shell::handle_message(self, myself, message, state).await;
        if result.is_err() {
            // ractor skips post_stop after a failed handler: clean up here.
            retire(state).await;
        }
        result
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<CoordinatorMsg>,
        event: SupervisionEvent,
        state: &mut CoordinatorState,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorFailed(cell, error) = event
            && state
                .pipelines
                .values()
                .any(|p| p.supervisor.get_id() == cell.get_id())
        {
            // A partition pipeline exceeded its restart intensity: let the process
            // supervisor restart the coordinator, which rejoins the group.
            retire(state).await;
            return Err(format!("a partition pipeline gave up: {error}").into());
        }
        Ok(())
    }
}

impl Shelled for Coordinator {
    const KIND: &'static str = "coordinator";

    async fn on_message(
        &self,
        myself: ActorRef<CoordinatorMsg>,
        message: CoordinatorMsg,
        state: &mut CoordinatorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            CoordinatorMsg::Assigned { partitions } => {
                for partition in partitions {
                    if state.pipelines.contains_key(&partition) {
                        continue;
                    }
                    let coordinator = myself.clone();
                    let assignment = state.next_assignment;
                    state.next_assignment += 1;
                    let handle = PartitionHandle::new(
                        partition,
                        state.context.partitions.clone(),
                        Arc::new(move |partition, report| {
                            // A coordinator that is gone stops the pipeline anyway.
                            let _ = coordinator.send_message(CoordinatorMsg::Partition {
                                partition,
                                assignment,
                                report,
                            });
                        }),
                    );
                    let args = partition::supervisor_args(&state.context, &handle);
                    let name = args.name.clone();
                    // The pipeline's actors start inside this span: their logs carry it.
                    let span = tracing::info_span!("actor", actor = %name, partition);
                    let (supervisor, _) =
                        Actor::spawn_linked(None, Supervisor, args, myself.get_cell())
                            .instrument(span)
                            .await?;
                    state.context.stats.attach(&name, "coordinator");
                    state.pipelines.insert(
                        partition,
                        Pipeline {
                            assignment,
                            supervisor,
                            handle,
                            consumer: None,
                        },
                    );
                    tracing::info!(partition, "partition assigned: pipeline started");
                }
            }
            CoordinatorMsg::Revoked { partitions, done } => {
                drain(state, &partitions).await;
                stop_pipelines(state, &partitions).await;
                tracing::info!(?partitions, "partitions revoked: drained and stopped");
                let _ = done.send(());
            }
            CoordinatorMsg::Partition {
                partition,
                assignment,
                report,
            } => {
                match state.pipelines.get(&partition) {
                    Some(pipeline) if pipeline.assignment == assignment => {
                        on_report(state, partition, report).await?;
                    }
                    // Revoked meanwhile, or a pipeline of an earlier assignment that
                    // outlived its revocation: what it says is not about the current one.
                    _ => tracing::debug!(partition, ?report, "report of a stopped pipeline"),
                }
            }
            CoordinatorMsg::Ping(reply) => {
                let _ = reply.send(());
            }
            CoordinatorMsg::Rebuild { reason } => {
                return Err(format!("watchdog: rebuilding the consumer: {reason}").into());
            }
            CoordinatorMsg::KeepClients => {
                leave_group_once(state);
                let consumer = &state.consumer;
                consumer.context().brokers.repair(
                    consumer.client(),
                    &state.bootstrap_servers,
                    "consumer",
                );
                state.dlq_brokers.repair(
                    state.context.dlq.client(),
                    &state.bootstrap_servers,
                    "dlq",
                );
            }
            CoordinatorMsg::Drain(Drain { reply, within }) => {
                state
                    .routes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clear();
                let partitions: Vec<i32> = state.pipelines.keys().copied().collect();
                drain_within(state, &partitions, within).await;
                tracing::info!(?partitions, "partitions drained: routed records committed");
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

/// The end of a coordinator, however it ends (stopped, failed, or asked for a rebuild):
/// its pipelines stop, its poll thread ends, its consumer leaves the group and stops
/// reporting (a retired consumer's statistics must not overwrite its successor's).
/// Idempotent. The consumer itself is closed when the state drops ([`Drop`]).
async fn retire(state: &mut CoordinatorState) {
    let partitions: Vec<i32> = state.pipelines.keys().copied().collect();
    stop_pipelines(state, &partitions).await;
    state
        .consumer
        .context()
        .retired
        .store(true, Ordering::SeqCst);
    state.stop.store(true, Ordering::SeqCst);
    if let Some(poller) = state.poller.take() {
        let consumer = state.consumer.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let _ = poller.join();
            consumer.unsubscribe();
        })
        .await;
    }
}

impl Drop for CoordinatorState {
    /// Closing a consumer waits until its group is left, which a consumer without a
    /// coordinator may never manage: the last reference is dropped on a thread of its
    /// own, so neither the actor's runtime nor the next coordinator ever waits for it.
    /// (Also the path of a coordinator that panicked: its poll thread is told to stop.)
    fn drop(&mut self) {
        self.consumer
            .context()
            .retired
            .store(true, Ordering::SeqCst);
        self.stop.store(true, Ordering::SeqCst);
        let consumer = self.consumer.clone();
        let _ = std::thread::Builder::new()
            .name("tributary-consumer-close".into())
            .spawn(move || {
                // The state's own reference and the poll thread's go first.
                while Arc::strong_count(&consumer) > 1 {
                    std::thread::sleep(Duration::from_millis(10));
                }
                drop(consumer);
            });
    }
}

/// `process.test_faults.leave_group_after_ms`: once per process, that long after the
/// first coordinator started, the consumer unsubscribes and does not come back (only a
/// new coordinator subscribes again): a consumer that stopped consuming.
fn leave_group_once(state: &CoordinatorState) {
    static STARTED: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    static LEFT: AtomicBool = AtomicBool::new(false);
    let after = state.config.test_faults.leave_group_after_ms;
    let started = *STARTED.get_or_init(Instant::now);
    if after == 0
        || started.elapsed() < Duration::from_millis(after)
        || LEFT.swap(true, Ordering::SeqCst)
    {
        return;
    }
    tracing::warn!("injected fault: the consumer leaves its group and stops consuming");
    let consumer = state.consumer.clone();
    tokio::task::spawn_blocking(move || consumer.unsubscribe());
}

/// Hands over partial batches and waits until what was routed is committed.
async fn drain(state: &CoordinatorState, partitions: &[i32]) {
    drain_within(state, partitions, state.config.drain_timeout()).await;
}

async fn drain_within(state: &CoordinatorState, partitions: &[i32], within: Duration) {
    let deadline = Instant::now() + within;
    for partition in partitions {
        let Some(pipeline) = state.pipelines.get(partition) else {
            continue;
        };
        if let Some(consumer) = &pipeline.consumer {
            let _ = consumer
                .call(PartitionConsumerMsg::Drain, Some(Duration::from_secs(5)))
                .await;
        }
        while pipeline.handle.buffered() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = pipeline.handle.buffered();
        if left > 0 {
            tracing::warn!(
                partition,
                records = left,
                "drain timed out: the next owner replays them from the committed offset"
            );
        }
    }
}

async fn stop_pipelines(state: &mut CoordinatorState, partitions: &[i32]) {
    let mut routes = Vec::new();
    {
        let mut map = state.routes.lock().unwrap_or_else(|p| p.into_inner());
        for p in partitions {
            routes.push(map.remove(p));
        }
    }
    drop(routes);
    for partition in partitions {
        let pipeline = state.pipelines.remove(partition);
        // Retired first: nothing of its pipeline, stopping, brings the status back.
        if let Some(pipeline) = &pipeline {
            pipeline.handle.retire();
        }
        state.context.partitions.remove(*partition);
        if let Some(pipeline) = pipeline {
            let _ = pipeline
                .supervisor
                .stop_and_wait(
                    Some("partition revoked".into()),
                    Some(Duration::from_secs(30)),
                )
                .await;
        }
        state
            .context
            .stats
            .unregister(&format!("partition-{partition}"));
    }
}

/// A report of the partition's current pipeline.
async fn on_report(
    state: &mut CoordinatorState,
    partition: i32,
    report: PartitionReport,
) -> Result<(), ActorProcessingErr> {
    match report {
        PartitionReport::Ready {
            next_offset,
            consumer,
        } => {
            let Some(pipeline) = state.pipelines.get_mut(&partition) else {
                return Ok(());
            };
            let consumer: ActorRef<PartitionConsumerMsg> = consumer.into();
            pipeline.consumer = Some(consumer.clone());
            let handle = pipeline.handle.clone();
            {
                // The earlier incarnation's route goes first, under the routes' lock:
                // nothing is routed to it once the count starts afresh.
                let mut routes = state.routes.lock().unwrap_or_else(|p| p.into_inner());
                routes.remove(&partition);
                handle.restart_counts();
            }
            seek(state, partition, next_offset).await?;
            state
                .routes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(
                    partition,
                    Route {
                        consumer,
                        next_offset,
                        handle,
                        backpressured: false,
                    },
                );
        }
        PartitionReport::Committed { offset } => {
            let mut list = TopicPartitionList::new();
            if list
                .add_partition_offset(&state.topic, partition, Offset::Offset(offset + 1))
                .is_ok()
            {
                // Lag monitoring only; a failure here loses nothing.
                let _ = state.consumer.commit(&list, CommitMode::Async);
            }
        }
        PartitionReport::Fenced { epoch } => {
            tracing::warn!(
                partition,
                epoch,
                "partition fenced by another owner: stopping its pipeline"
            );
            stop_pipelines(state, &[partition]).await;
        }
    }
    Ok(())
}

/// Moves the partition's fetch position to `offset` (the one after Cassandra's
/// committed offset). A chunk fetched before the seek went to the old route (see
/// `poll::read_partitions`); librdkafka drops what it fetched from the old position.
async fn seek(
    state: &CoordinatorState,
    partition: i32,
    offset: i64,
) -> Result<(), ActorProcessingErr> {
    let (consumer, topic) = (state.consumer.clone(), state.topic.clone());
    let result = tokio::task::spawn_blocking(move || {
        let mut last = None;
        for _ in 0..50 {
            match consumer.seek(
                &topic,
                partition,
                Offset::Offset(offset),
                Duration::from_secs(5),
            ) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    last = Some(e);
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        Err(last)
    })
    .await;
    match result {
        Ok(Ok(())) => Ok(()),
        // Never read on from where fetching left off: within an assignment that is past
        // records the pipeline lost with its last incarnation. A new consumer starts
        // from the group's offsets, which are committed only after Cassandra.
        failed => Err(format!(
            "seek of partition {partition} to offset {offset} failed ({failed:?}): rebuilding the consumer"
        )
        .into()),
    }
}
