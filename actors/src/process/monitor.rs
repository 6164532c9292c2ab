//! The consumption monitor: does this instance (and its group) consume what waits?
//!
//! Every `process.lag_interval_ms` it reads, for every partition of the raw topic
//! whether this instance holds it or not, Kafka's last stable offset and Cassandra's
//! committed offset: their difference is the lag, so a group that consumes nothing
//! shows growing lag instead of none. Transaction markers (and aborted records) sit
//! between the last committed record and the end of a partition; when a partition's
//! committed offset stops moving with a difference left, one read_committed probe from
//! the committed offset tells markers (lag 0) from records (real lag).
//!
//! A partition whose records wait while its committed offset has not moved for
//! `process.stall_after_ms` is stalled; this instance is *not consuming* when it holds a
//! stalled partition, or holds none while a partition is stalled. That is what
//! `/readyz`, the dashboard and `tributary status` report, with the reason. When it lasts
//! `process.stall_restart_ms` while Kafka answers, the watchdog asks the coordinator for
//! a new consumer: a fresh member of the group.

use super::config::Config;
use super::messages::CoordinatorMsg;
use crate::directory::Directory;
use crate::observe::{Consumption, NotConsuming, Partitions, TopicPartition};
use crate::store::closing::{self, Shared};
use crate::store::rebootstrap::KeptContext;
use crate::store::{Service, StoreError, cassandra, kafka};
use crate::supervisor::shell::{self, Shelled};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use scylla::client::session::Session;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Monitor;

pub struct MonitorArgs {
    pub config: Config,
    pub kafka: kafka::Config,
    pub cassandra: cassandra::Config,
    /// The partitions this instance holds.
    pub partitions: Partitions,
    /// Where the readings go (status, readiness, dashboard).
    pub consumption: Consumption,
    /// The coordinator's current incarnation, for the watchdog.
    pub coordinator: Directory<CoordinatorMsg>,
}

pub enum MonitorMsg {
    Check,
    Ping(RpcReplyPort<()>),
}

crate::supervisor::shell::answers!(MonitorMsg: Ping);

type ProbeConsumer = BaseConsumer<KeptContext>;

/// How long one probe may read (it needs one record or the partition's end).
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// What the monitor remembers of one partition between readings.
#[derive(Debug, Clone, Copy)]
struct Track {
    committed: i64,
    /// When `committed` last changed (or was first seen).
    moved_at: Instant,
    /// Since when records have waited without a break (a burst after a quiet hour
    /// starts its own clock: it is not a stall yet).
    waiting_since: Option<Instant>,
    /// The end offset at which a probe found nothing but markers past `committed`.
    clean_at_end: Option<i64>,
}

/// Probes per reading, at most: the rest wait for the next reading, so one reading of a
/// large topic stays well inside the monitor's liveness window.
const PROBES_PER_READING: usize = 4;

pub struct MonitorState {
    config: Config,
    topic: String,
    keyspace: String,
    bootstrap_servers: String,
    cassandra: cassandra::Config,
    session: Option<Session>,
    kafka: Shared<ProbeConsumer>,
    request_timeout: Duration,
    partitions: Partitions,
    consumption: Consumption,
    coordinator: Directory<CoordinatorMsg>,
    tracks: HashMap<i32, Track>,
    not_consuming_since: Option<(Instant, i64)>,
    last_rebuild: Option<Instant>,
}

impl Actor for Monitor {
    type Msg = MonitorMsg;
    type State = MonitorState;
    type Arguments = MonitorArgs;

    async fn pre_start(
        &self,
        _: ActorRef<MonitorMsg>,
        args: MonitorArgs,
    ) -> Result<MonitorState, ActorProcessingErr> {
        let kafka: ProbeConsumer = args
            .kafka
            .reader_config("monitor", format!("{}-monitor", args.config.group_id))?
            .set("enable.partition.eof", "true")
            .set("statistics.interval.ms", "1000")
            .create_with_context(KeptContext::default())?;
        Ok(MonitorState {
            topic: args.kafka.topics.raw.name.clone(),
            keyspace: args.cassandra.keyspace.clone(),
            bootstrap_servers: args.kafka.bootstrap_servers.clone(),
            request_timeout: args.kafka.request_timeout(),
            cassandra: args.cassandra,
            session: None,
            kafka: closing::shared(kafka),
            partitions: args.partitions,
            consumption: args.consumption,
            coordinator: args.coordinator,
            config: args.config,
            tracks: HashMap::new(),
            not_consuming_since: None,
            last_rebuild: None,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<MonitorMsg>,
        _: &mut MonitorState,
    ) -> Result<(), ActorProcessingErr> {
        myself.send_message(MonitorMsg::Check)?;
        Ok(())
    }

    shell::handle!();
}

impl Shelled for Monitor {
    const KIND: &'static str = "monitor";

    async fn on_message(
        &self,
        myself: ActorRef<MonitorMsg>,
        message: MonitorMsg,
        state: &mut MonitorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            MonitorMsg::Check => {
                check(state).await;
                // The next reading once this one is done: while stores are slow,
                // readings never queue up ahead of the supervisor's liveness pings.
                myself.send_after(Duration::from_millis(state.config.lag_interval_ms), || {
                    MonitorMsg::Check
                });
            }
            MonitorMsg::Ping(reply) => {
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

/// One reading. A store that does not answer is reported, never an actor failure: the
/// monitor must keep telling the truth while stores are down.
async fn check(state: &mut MonitorState) {
    state
        .kafka
        .context()
        .loss
        .repair(state.kafka.client(), &state.bootstrap_servers, "monitor");
    // Bounded as a whole: a frozen store must not hold the monitor past its liveness
    // ping (every client call below has its own timeout too).
    let budget = state.request_timeout * 2;
    let reading = match tokio::time::timeout(budget, read(state)).await {
        Ok(Ok(reading)) => reading,
        Ok(Err(error)) => {
            forget(state);
            let error = crate::error_chain(&error);
            state.consumption.update(|c| c.error = Some(error));
            return;
        }
        Err(_) => {
            forget(state);
            state.session = None;
            state.consumption.update(|c| {
                c.error = Some(format!(
                    "kafka and cassandra did not answer within {budget:?}"
                ));
            });
            return;
        }
    };
    let now = Instant::now();
    let assigned: BTreeSet<i32> = state.partitions.owned().into_iter().collect();
    let stall_after = Duration::from_millis(state.config.stall_after_ms);
    let mut topic = Vec::with_capacity(reading.ends.len());
    let mut probes = 0;
    for (&partition, &(start, end)) in &reading.ends {
        let (committed, owner) = reading
            .committed
            .get(&partition)
            .cloned()
            .unwrap_or((None, None));
        let committed_or_none = committed.unwrap_or(-1);
        let mut track = state.tracks.get(&partition).copied().unwrap_or(Track {
            committed: committed_or_none,
            moved_at: now,
            waiting_since: None,
            clean_at_end: None,
        });
        let still = track.committed == committed_or_none;
        if !still {
            track = Track {
                committed: committed_or_none,
                moved_at: now,
                waiting_since: track.waiting_since,
                clean_at_end: None,
            };
        }
        // What is left to read: from the record after the committed one, or from the
        // log start when retention removed those.
        let next = (committed_or_none + 1).max(start);
        let raw = (end - next).max(0);
        // Only markers past a committed offset that stopped moving? Probe once per end.
        if raw > 0 && still && track.clean_at_end != Some(end) && probes < PROBES_PER_READING {
            probes += 1;
            match probe(state, partition, next).await {
                Ok(false) => track.clean_at_end = Some(end),
                Ok(true) => {}
                Err(error) => tracing::debug!(
                    partition,
                    error = %crate::error_chain(&error),
                    "lag probe failed"
                ),
            }
        }
        let lag = if track.clean_at_end == Some(end) {
            0
        } else {
            raw
        };
        track.waiting_since = match (lag > 0, track.waiting_since) {
            (false, _) => None,
            (true, since) => since.or(Some(now)),
        };
        state.tracks.insert(partition, track);
        // No progress: nothing committed since the records began to wait.
        let stuck_for = now.duration_since(track.moved_at.max(track.waiting_since.unwrap_or(now)));
        topic.push(TopicPartition {
            partition,
            committed_offset: committed,
            owner,
            end_offset: end,
            lag,
            idle_ms: now.duration_since(track.moved_at).as_millis() as u64,
            stalled: lag > 0 && stuck_for >= stall_after,
            assigned: assigned.contains(&partition),
        });
        metrics::gauge!("tributary_consumer_lag_records", "partition" => partition.to_string())
            .set(lag as f64);
        state
            .partitions
            .update_if_present(partition, |p| p.lag = Some(lag));
    }
    metrics::gauge!("tributary_assigned_partitions").set(assigned.len() as f64);
    let verdict = verdict(&topic, &assigned);
    let group = state.consumption.snapshot().group;
    let entered = match (&verdict, state.not_consuming_since) {
        (Some(_), None) => {
            state.not_consuming_since = Some((now, chrono::Utc::now().timestamp_millis()));
            true
        }
        (None, _) => {
            state.not_consuming_since = None;
            false
        }
        (Some(_), Some(_)) => false,
    };
    let reason = verdict.map(|reason| match &group {
        Some(g) if assigned.is_empty() => format!(
            "{reason} (consumer group {}/{}, last rebalance: {})",
            g.state,
            g.join_state,
            if g.reason.is_empty() {
                "none"
            } else {
                &g.reason
            }
        ),
        _ => reason,
    });
    if entered {
        metrics::counter!("tributary_stalls_total").increment(1);
        tracing::warn!(
            reason = reason.as_deref().unwrap_or_default(),
            "not consuming: records wait and nothing commits them"
        );
    }
    // A new consumer helps a consumer that lost its group, not a writer that cannot
    // write: the watchdog acts on an instance without partitions, or whose group
    // handler is not up and steady.
    let group_lost = assigned.is_empty()
        || group
            .as_ref()
            .is_some_and(|g| g.state != "up" || g.join_state != "steady");
    let rebuilt = group_lost && watchdog(state, reason.as_deref(), now);
    let lag = topic.iter().map(|p| p.lag).sum();
    let since_ms = state.not_consuming_since.map(|(_, at)| at);
    state.consumption.update(|c| {
        c.checked_at_ms = Some(chrono::Utc::now().timestamp_millis());
        c.error = None;
        c.topic = topic;
        c.lag = lag;
        c.assigned = assigned.len();
        c.not_consuming = reason.map(|reason| NotConsuming {
            reason,
            since_ms: since_ms.unwrap_or_default(),
        });
        c.stalls += u64::from(entered);
        c.rebuilds += u64::from(rebuilt);
    });
}

/// Why this instance is not consuming, if it is not: it holds a stalled partition, or
/// holds none while a partition is stalled (nobody consumes it, this instance could).
pub fn verdict(topic: &[TopicPartition], assigned: &BTreeSet<i32>) -> Option<String> {
    let stalled: Vec<&TopicPartition> = topic.iter().filter(|p| p.stalled).collect();
    let waiting: i64 = stalled.iter().map(|p| p.lag).sum();
    let idle_s = |ps: &[&TopicPartition]| ps.iter().map(|p| p.idle_ms).min().unwrap_or(0) / 1_000;
    let held: Vec<&TopicPartition> = stalled
        .iter()
        .copied()
        .filter(|p| assigned.contains(&p.partition))
        .collect();
    if !held.is_empty() {
        let list: Vec<String> = held.iter().map(|p| p.partition.to_string()).collect();
        let waiting: i64 = held.iter().map(|p| p.lag).sum();
        return Some(format!(
            "partition(s) {} held here: {waiting} records wait and nothing was committed for {} s",
            list.join(", "),
            idle_s(&held)
        ));
    }
    // A spare instance is not consuming only when nothing moves anywhere: every
    // partition with waiting records is stalled (were one progressing, its owner lives
    // and this instance has simply been given nothing).
    let waiting_partitions = topic.iter().filter(|p| p.lag > 0).count();
    if assigned.is_empty() && !stalled.is_empty() && stalled.len() == waiting_partitions {
        return Some(format!(
            "no partition assigned to this instance while {waiting} records wait in {} \
             partition(s) nobody committed for {} s",
            stalled.len(),
            idle_s(&stalled)
        ));
    }
    None
}

/// Asks for a new consumer once the instance has not consumed for `stall_restart_ms`
/// (and again at most once per that interval); returns whether it did.
fn watchdog(state: &mut MonitorState, reason: Option<&str>, now: Instant) -> bool {
    let (Some(reason), Some((since, _))) = (reason, state.not_consuming_since) else {
        return false;
    };
    let limit = Duration::from_millis(state.config.stall_restart_ms);
    let due = now.duration_since(since) >= limit
        && state
            .last_rebuild
            .is_none_or(|at| now.duration_since(at) >= limit);
    if !due {
        return false;
    }
    let Some(coordinator) = state.coordinator.get() else {
        return false;
    };
    state.last_rebuild = Some(now);
    let sent = coordinator
        .send_message(CoordinatorMsg::Rebuild {
            reason: reason.to_owned(),
        })
        .is_ok();
    if sent {
        metrics::counter!("tributary_consumer_rebuilds_total").increment(1);
        tracing::warn!(
            reason,
            not_consuming_s = now.duration_since(since).as_secs(),
            "watchdog: not consuming for process.stall_restart_ms, rebuilding the consumer"
        );
    }
    sent
}

/// A reading failed (a store did not answer): forget the clocks, so that the first
/// readings after the store is back judge what happens then, not the outage (during
/// which nothing could commit), and the watchdog never counts an outage as a stall.
fn forget(state: &mut MonitorState) {
    state.tracks.clear();
    state.not_consuming_since = None;
}

struct Reading {
    /// Log start and last stable offset per partition.
    ends: BTreeMap<i32, (i64, i64)>,
    /// Cassandra's committed offset and owner per partition.
    committed: HashMap<i32, (Option<i64>, Option<String>)>,
}

async fn read(state: &mut MonitorState) -> Result<Reading, StoreError> {
    let (consumer, topic, timeout) = (
        state.kafka.clone(),
        state.topic.clone(),
        state.request_timeout,
    );
    let ends = tokio::task::spawn_blocking(move || end_offsets(&consumer, &topic, timeout))
        .await
        .map_err(|e| StoreError::request(Service::Kafka, "end offsets task", e))?
        .map_err(|e| StoreError::request(Service::Kafka, "read the topic's end offsets", e))?;
    if state.session.is_none() {
        state.session = Some(cassandra::connect(&state.cassandra).await?);
    }
    let Some(session) = state.session.as_ref() else {
        return Err(StoreError::request(
            Service::Cassandra,
            "no session",
            Box::<dyn std::error::Error + Send + Sync>::from("no session"),
        ));
    };
    let statement = format!(
        "SELECT committed_offset, owner FROM {}.partition_state WHERE topic = ? AND partition = ? LIMIT 1",
        state.keyspace
    );
    let mut committed = HashMap::new();
    for &partition in ends.keys() {
        let row = session
            .query_unpaged(
                cassandra::idempotent(statement.as_str()),
                (&state.topic, partition),
            )
            .await
            .map_err(|e| StoreError::request(Service::Cassandra, "read committed offsets", e));
        let row = match row {
            Ok(result) => result.into_rows_result().ok().and_then(|rows| {
                rows.maybe_first_row::<(Option<i64>, Option<String>)>()
                    .ok()
                    .flatten()
            }),
            Err(error) => {
                // A new session at the next reading: the node may have restarted.
                state.session = None;
                return Err(error);
            }
        };
        committed.insert(partition, row.unwrap_or((None, None)));
    }
    Ok(Reading { ends, committed })
}

/// The log start and last stable offset of every partition of `topic`, all within
/// `timeout`.
fn end_offsets(
    consumer: &ProbeConsumer,
    topic: &str,
    timeout: Duration,
) -> Result<BTreeMap<i32, (i64, i64)>, KafkaError> {
    let deadline = Instant::now() + timeout;
    let left = || {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(KafkaError::MetadataFetch(
                rdkafka::types::RDKafkaErrorCode::RequestTimedOut,
            ))
        } else {
            Ok(left)
        }
    };
    let metadata = consumer.fetch_metadata(Some(topic), left()?)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    partitions
        .into_iter()
        .map(|p| {
            crate::store::kafka::watermarks(consumer, topic, p, left()?).map(|bounds| (p, bounds))
        })
        .collect()
}

/// Whether a committed record follows `from` in `partition` (see
/// [`crate::upkeep::readback::records_after`]).
async fn probe(state: &MonitorState, partition: i32, from: i64) -> Result<bool, StoreError> {
    let (consumer, topic, timeout) = (
        state.kafka.clone(),
        state.topic.clone(),
        PROBE_TIMEOUT.min(state.request_timeout),
    );
    tokio::task::spawn_blocking(move || {
        crate::upkeep::readback::records_after(&consumer, &topic, partition, from, timeout)
    })
    .await
    .map_err(|e| StoreError::request(Service::Kafka, "probe task", e))?
    .map_err(|e| StoreError::request(Service::Kafka, "probe the partition", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(partition: i32, lag: i64, idle_s: u64, stalled: bool) -> TopicPartition {
        TopicPartition {
            partition,
            lag,
            idle_ms: idle_s * 1_000,
            stalled,
            ..TopicPartition::default()
        }
    }

    #[test]
    fn an_idle_instance_is_not_stalled() {
        let topic = [partition(0, 0, 600, false), partition(1, 0, 600, false)];
        assert_eq!(verdict(&topic, &BTreeSet::from([0, 1])), None);
        assert_eq!(verdict(&topic, &BTreeSet::new()), None, "idle spare");
    }

    #[test]
    fn a_spare_instance_is_fine_while_the_others_consume() {
        let topic = [partition(0, 500, 1, false), partition(1, 800, 0, false)];
        assert_eq!(verdict(&topic, &BTreeSet::new()), None);
    }

    #[test]
    fn an_instance_without_partitions_while_records_wait_is_not_consuming() {
        let topic = [partition(0, 500, 45, true), partition(1, 800, 45, true)];
        let reason = verdict(&topic, &BTreeSet::new()).unwrap();
        assert!(reason.starts_with("no partition assigned"), "{reason}");
        assert!(
            reason.contains("1300 records wait in 2 partition(s)"),
            "{reason}"
        );
    }

    #[test]
    fn a_spare_is_not_blamed_for_one_stalled_partition_while_others_move() {
        let topic = [partition(0, 500, 45, true), partition(1, 800, 0, false)];
        assert_eq!(verdict(&topic, &BTreeSet::new()), None);
    }

    #[test]
    fn a_stalled_partition_held_here_is_named() {
        let topic = [partition(0, 0, 45, false), partition(3, 120, 40, true)];
        let reason = verdict(&topic, &BTreeSet::from([0, 3])).unwrap();
        assert!(
            reason.starts_with("partition(s) 3 held here: 120 records"),
            "{reason}"
        );
        // Held elsewhere: another instance's business while this one consumes its own.
        assert_eq!(verdict(&topic, &BTreeSet::from([0])), None);
    }
}
