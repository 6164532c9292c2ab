//! `[process]`: the Kafka → Cassandra half: consumer group, batching, backpressure.

use crate::supervisor::{RestartPolicy, Strategy};
use crate::validate::Findings;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Kafka consumer group: instances with the same group share the partitions.
    #[serde(default = "default_group_id")]
    pub group_id: String,
    /// Records per batch handed from consumer to transformer to writer, at most. Each
    /// batch ends in one offset-commit LWT: larger batches, fewer LWTs per row.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// A partial batch is sent after this long without reaching `batch_size`, as soon
    /// as the partition has fewer than two batches in flight (it grows meanwhile).
    #[serde(default = "default_batch_linger_ms")]
    pub batch_linger_ms: u64,
    /// Records read but not yet committed to Cassandra, per partition, at most: at the
    /// bound the partition is not read until the writer commits, and librdkafka stops
    /// fetching it once it has prefetched as many (memory bound).
    #[serde(default = "default_max_buffered_records")]
    pub max_buffered_records: usize,
    /// Upsert requests in flight per writer.
    #[serde(default = "default_write_concurrency")]
    pub write_concurrency: usize,
    /// Rows of `created_users` per upsert request: an unlogged batch of rows that all
    /// live on the same replicas (so the coordinating node owns every row), 1 for one
    /// request per row. Fewer requests cost the client and Cassandra less CPU per row.
    /// Cassandra logs a warning for every batch above its `batch_size_warn_threshold`
    /// (5 KiB by default: about 4 of these rows) and refuses batches above
    /// `batch_size_fail_threshold` (50 KiB): raise those before raising this.
    #[serde(default = "default_rows_per_request")]
    pub rows_per_request: usize,
    /// Runs whose digest (users and XOR of their ids) each partition's writer keeps in
    /// `partition_state`, committed with its offset, for the reconciler: the newest this
    /// many, older ones deleted in the same commit. It must cover the runs scheduled
    /// within `reconcile.deadline_ms` (checked at start).
    #[serde(default = "default_run_digests_kept")]
    pub run_digests_kept: usize,
    /// How long a revoked partition may take to finish its in-flight batches.
    #[serde(default = "default_drain_timeout_ms")]
    pub drain_timeout_ms: u64,
    /// Kafka `session.timeout.ms`: how fast a dead instance's partitions move.
    #[serde(default = "default_session_timeout_ms")]
    pub session_timeout_ms: u64,
    /// How often the consumption monitor compares Cassandra's committed offsets with
    /// the topic's end offsets (every partition, held here or not).
    #[serde(default = "default_lag_interval_ms")]
    pub lag_interval_ms: u64,
    /// A partition whose records wait while its committed offset has not moved for
    /// this long is stalled. An instance holding a stalled partition, or holding none
    /// while a partition is stalled, is not consuming: `/readyz` answers 503 with the
    /// reason, and `tributary_stalls_total` counts it.
    #[serde(default = "default_stall_after_ms")]
    pub stall_after_ms: u64,
    /// The watchdog of last resort: an instance not consuming for this long while
    /// records wait (and Kafka answers) gets a new consumer, a fresh member of the
    /// group (`tributary_consumer_rebuilds_total`); at most once per this interval.
    #[serde(default = "default_stall_restart_ms")]
    pub stall_restart_ms: u64,
    /// Restart policy of the process supervisor (the coordinator).
    #[serde(default = "default_process_supervision")]
    pub supervision: RestartPolicy,
    /// Restart policy of each partition's consumer → transformer → writer group.
    #[serde(default = "default_partition_supervision")]
    pub partition_supervision: RestartPolicy,
    /// Failures injected for tests and the chaos suite; never in production.
    #[serde(default)]
    pub test_faults: TestFaults,
}

/// `[process.test_faults]`
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFaults {
    /// Every Nth batch of the process fails after its rows were upserted, before the
    /// offset commit; 0 turns it off.
    #[serde(default)]
    pub fail_writer_before_commit_every: u64,
    /// This long after the process started, its consumer leaves the group and does not
    /// rejoin, once: a consumer that stopped consuming, for the watchdog's test. 0 off.
    #[serde(default)]
    pub leave_group_after_ms: u64,
}

fn default_group_id() -> String {
    "tributary".into()
}
fn default_batch_size() -> usize {
    1_000
}
fn default_batch_linger_ms() -> u64 {
    50
}
fn default_max_buffered_records() -> usize {
    3_000
}
fn default_write_concurrency() -> usize {
    64
}
fn default_run_digests_kept() -> usize {
    2_000
}
fn default_rows_per_request() -> usize {
    4
}
fn default_drain_timeout_ms() -> u64 {
    10_000
}
fn default_session_timeout_ms() -> u64 {
    10_000
}
fn default_lag_interval_ms() -> u64 {
    2_000
}
fn default_stall_after_ms() -> u64 {
    30_000
}
fn default_stall_restart_ms() -> u64 {
    120_000
}
fn default_process_supervision() -> RestartPolicy {
    RestartPolicy::new(Strategy::OneForOne)
}
fn default_partition_supervision() -> RestartPolicy {
    RestartPolicy::new(Strategy::OneForAll)
}

impl Default for Config {
    fn default() -> Self {
        Self {
            group_id: default_group_id(),
            batch_size: default_batch_size(),
            batch_linger_ms: default_batch_linger_ms(),
            max_buffered_records: default_max_buffered_records(),
            write_concurrency: default_write_concurrency(),
            rows_per_request: default_rows_per_request(),
            run_digests_kept: default_run_digests_kept(),
            drain_timeout_ms: default_drain_timeout_ms(),
            session_timeout_ms: default_session_timeout_ms(),
            lag_interval_ms: default_lag_interval_ms(),
            stall_after_ms: default_stall_after_ms(),
            stall_restart_ms: default_stall_restart_ms(),
            supervision: default_process_supervision(),
            partition_supervision: default_partition_supervision(),
            test_faults: TestFaults::default(),
        }
    }
}

impl Config {
    pub fn validate(&self, f: &mut Findings) {
        f.non_empty("group_id", &self.group_id);
        f.range("batch_size", self.batch_size, 1, 100_000);
        f.range("batch_linger_ms", self.batch_linger_ms, 1, 60_000);
        f.range(
            "max_buffered_records",
            self.max_buffered_records,
            self.batch_size,
            10_000_000,
        );
        f.range("write_concurrency", self.write_concurrency, 1, 4_096);
        f.range("rows_per_request", self.rows_per_request, 1, 64);
        f.range("run_digests_kept", self.run_digests_kept, 10, 100_000);
        f.range("drain_timeout_ms", self.drain_timeout_ms, 100, 600_000);
        f.range(
            "session_timeout_ms",
            self.session_timeout_ms,
            1_000,
            600_000,
        );
        f.range("lag_interval_ms", self.lag_interval_ms, 100, 600_000);
        f.range(
            "stall_after_ms",
            self.stall_after_ms,
            self.lag_interval_ms,
            86_400_000,
        );
        f.range(
            "stall_restart_ms",
            self.stall_restart_ms,
            self.stall_after_ms,
            86_400_000,
        );
        f.section("supervision", |f| self.supervision.validate(f));
        f.section("partition_supervision", |f| {
            self.partition_supervision.validate(f);
            // A partition's pipeline is one unit: its consumer resumes from the writer's
            // claim and its batches' leases die with the actor holding them, so a child
            // restarted alone would leave records counted that nothing will settle (the
            // partition backpressured for good) or resume from a stale offset.
            if self.partition_supervision.strategy != Strategy::OneForAll {
                f.invalid(
                    "strategy",
                    "must be one_for_all: a partition's consumer, transformer and writer \
                     only restart together (each resumes from the writer's claim)",
                );
            }
        });
    }

    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }
}
