//! What the actors report about themselves, for `/metrics`, `/api/status` and the
//! dashboard: records through each stage, and the state of every partition this
//! instance owns.
//!
//! Counts go both to the `metrics` facade (scraped as Prometheus counters) and to
//! process-wide atomics, because a Prometheus recorder cannot be read back and the status
//! API computes throughput from them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A point a record passes on its way from the source to Cassandra.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Valid users in fetched pages.
    Fetched,
    /// Rows inserted into the PostgreSQL outbox (duplicates of earlier runs excluded).
    Staged,
    /// Records rejected at ingest and kept in PostgreSQL's quarantine table.
    Quarantined,
    /// Records committed to Kafka in a transaction.
    Published,
    /// Records read from Kafka by a partition consumer.
    Consumed,
    /// Records turned into rows.
    Transformed,
    /// Poison records written to the DLQ topic.
    DeadLettered,
    /// Rows whose batch committed in Cassandra.
    Written,
}

impl Stage {
    pub const ALL: [Stage; 8] = [
        Stage::Fetched,
        Stage::Staged,
        Stage::Quarantined,
        Stage::Published,
        Stage::Consumed,
        Stage::Transformed,
        Stage::DeadLettered,
        Stage::Written,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Fetched => "fetched",
            Stage::Staged => "staged",
            Stage::Quarantined => "quarantined",
            Stage::Published => "published",
            Stage::Consumed => "consumed",
            Stage::Transformed => "transformed",
            Stage::DeadLettered => "dead_lettered",
            Stage::Written => "written",
        }
    }
}

static TOTALS: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

/// Counts `n` records through `stage`: `tributary_records_total{stage}`, plus the
/// dedicated `tributary_dlq_records_total` and `tributary_quarantined_records_total`.
pub fn record(stage: Stage, n: u64) {
    if n == 0 {
        return;
    }
    TOTALS[stage as usize].fetch_add(n, Ordering::Relaxed);
    metrics::counter!("tributary_records_total", "stage" => stage.name()).increment(n);
    match stage {
        Stage::DeadLettered => metrics::counter!("tributary_dlq_records_total").increment(n),
        Stage::Quarantined => {
            metrics::counter!("tributary_quarantined_records_total").increment(n);
        }
        _ => {}
    }
}

/// Records through each stage since the process started.
pub fn totals() -> BTreeMap<Stage, u64> {
    Stage::ALL
        .iter()
        .map(|&s| (s, TOTALS[s as usize].load(Ordering::Relaxed)))
        .collect()
}

/// One partition as this instance sees it (and as `/api/status` serialises it, parsed
/// back by `tributary status`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionStatus {
    pub partition: i32,
    /// The fencing token this instance's writer holds.
    pub owner_epoch: Option<i64>,
    /// The last offset committed in Cassandra (`partition_state`).
    pub committed_offset: Option<i64>,
    /// Kafka's last stable offset (read_committed end of the partition).
    pub end_offset: Option<i64>,
    /// Records in Kafka not yet committed to Cassandra (the consumption monitor's
    /// reading, [`TopicPartition::lag`]).
    pub lag: Option<i64>,
    /// Records routed to the pipeline and not yet committed.
    pub in_flight_records: u64,
    /// Batches handed to the transformer and not yet committed by the writer.
    pub in_flight_batches: u64,
    /// Its pipeline holds `max_buffered_records`: the poll thread stops reading it
    /// until the writer commits (librdkafka stops fetching once its prefetch is full).
    pub backpressured: bool,
    /// Rows this instance committed for the partition since it was assigned.
    pub written: u64,
}

/// A partition's gauges, from its entry.
fn export(entry: &PartitionStatus) {
    let p = entry.partition.to_string();
    if let Some(offset) = entry.committed_offset {
        metrics::gauge!("tributary_committed_offset", "partition" => p.clone()).set(offset as f64);
    }
    metrics::gauge!("tributary_in_flight_records", "partition" => p.clone())
        .set(entry.in_flight_records as f64);
    metrics::gauge!("tributary_in_flight_batches", "partition" => p)
        .set(entry.in_flight_batches as f64);
}

/// The partitions this instance owns, updated by their writers and by the consumer's
/// statistics; read by the status API and exported as gauges.
#[derive(Clone, Default, Debug)]
pub struct Partitions(Arc<Mutex<BTreeMap<i32, PartitionStatus>>>);

impl Partitions {
    /// Changes one partition's entry, creating it on first use.
    pub fn update(&self, partition: i32, f: impl FnOnce(&mut PartitionStatus)) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(partition).or_insert_with(|| PartitionStatus {
            partition,
            ..PartitionStatus::default()
        });
        f(entry);
        export(entry);
    }

    /// Changes one partition's entry if this instance holds it.
    pub fn update_if_present(&self, partition: i32, f: impl FnOnce(&mut PartitionStatus)) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = map.get_mut(&partition) {
            f(entry);
            export(entry);
        }
    }

    /// The partition left this instance: its gauges drop to zero, its entry goes.
    pub fn remove(&self, partition: i32) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.remove(&partition).is_some() {
            let p = partition.to_string();
            metrics::gauge!("tributary_in_flight_records", "partition" => p.clone()).set(0.0);
            metrics::gauge!("tributary_in_flight_batches", "partition" => p).set(0.0);
        }
    }

    pub fn snapshot(&self) -> Vec<PartitionStatus> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Partitions currently owned.
    pub fn owned(&self) -> Vec<i32> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .copied()
            .collect()
    }
}

/// One partition of the raw topic, whoever holds it: what Cassandra has committed
/// against what Kafka holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicPartition {
    pub partition: i32,
    /// The last offset committed in Cassandra (`partition_state`); `None`: never.
    pub committed_offset: Option<i64>,
    /// The instance that committed it.
    pub owner: Option<String>,
    /// Kafka's last stable offset (what a read_committed consumer can reach).
    pub end_offset: i64,
    /// Committed records in Kafka past Cassandra's committed offset (transaction
    /// markers and aborted records excluded).
    pub lag: i64,
    /// How long Cassandra's committed offset has not moved.
    pub idle_ms: u64,
    /// Records wait and nothing committed for `process.stall_after_ms`.
    pub stalled: bool,
    /// This instance holds it.
    pub assigned: bool,
}

/// The consumer group as librdkafka's group handler sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupState {
    pub state: String,
    pub join_state: String,
    pub assignment: i32,
    pub rebalances: i64,
    pub reason: String,
}

/// Whether this instance consumes: the consumption monitor's last reading.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumptionStatus {
    /// When the monitor last read Kafka and Cassandra (ms since the Unix epoch).
    pub checked_at_ms: Option<i64>,
    /// Why the last reading failed (a store unreachable): the figures are older.
    pub error: Option<String>,
    /// Every partition of the topic.
    pub topic: Vec<TopicPartition>,
    /// Records waiting over the whole topic.
    pub lag: i64,
    /// Partitions this instance holds.
    pub assigned: usize,
    pub group: Option<GroupState>,
    /// Records wait and this instance is not consuming them: why, and since when.
    pub not_consuming: Option<NotConsuming>,
    /// Times this instance entered the not-consuming condition.
    pub stalls: u64,
    /// Consumers the watchdog rebuilt.
    pub rebuilds: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotConsuming {
    pub reason: String,
    pub since_ms: i64,
}

/// Shared between the consumption monitor (writes), the poll thread (group state)
/// and the status API, readiness and dashboard (read).
#[derive(Clone, Default, Debug)]
pub struct Consumption(Arc<Mutex<ConsumptionStatus>>);

impl Consumption {
    pub fn update(&self, f: impl FnOnce(&mut ConsumptionStatus)) {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }

    pub fn snapshot(&self) -> ConsumptionStatus {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_accumulate_per_stage() {
        let before = totals()[&Stage::Transformed];
        record(Stage::Transformed, 3);
        record(Stage::Transformed, 0);
        record(Stage::Transformed, 4);
        assert!(totals()[&Stage::Transformed] >= before + 7);
    }

    #[test]
    fn partitions_are_created_on_update_and_removed() {
        let board = Partitions::default();
        board.update(3, |p| p.committed_offset = Some(41));
        board.update(3, |p| p.owner_epoch = Some(2));
        board.update(1, |p| p.lag = Some(5));
        let snapshot = board.snapshot();
        assert_eq!(
            snapshot.iter().map(|p| p.partition).collect::<Vec<_>>(),
            [1, 3]
        );
        assert_eq!(snapshot[1].committed_offset, Some(41));
        assert_eq!(snapshot[1].owner_epoch, Some(2));
        board.remove(3);
        assert_eq!(board.owned(), [1]);
    }
}
