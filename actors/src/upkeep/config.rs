//! `[retention]` and `[reconcile]`: what a long-running service prunes, and how it
//! checks that every run arrived.

use crate::supervisor::{RestartPolicy, Strategy};
use crate::validate::Findings;
use serde::Deserialize;
use std::time::Duration;

const DAY_MS: u64 = 86_400_000;

/// `[retention]`: how long PostgreSQL keeps what it no longer needs. Topic retention
/// is topic configuration (`kafka.topics.*.config."retention.ms"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Published outbox rows (`staged_users`) older than this are removed. Also the
    /// window in which the source repeating a user is caught by `source_uuid UNIQUE`
    /// (docs/architecture.md says why no replay of tributary's own reaches past it).
    #[serde(default = "default_outbox_ms")]
    pub outbox_ms: u64,
    /// Finished runs (staged or failed) scheduled longer ago than this are removed,
    /// once their outbox rows are gone; runs still pending or retrying never are.
    #[serde(default = "default_runs_ms")]
    pub runs_ms: u64,
    /// Quarantined records older than this are removed.
    #[serde(default = "default_quarantine_ms")]
    pub quarantine_ms: u64,
    /// How often retention runs.
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// Rows per DELETE: each batch is its own short transaction, so retention never
    /// holds locks that ingest waits for.
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// Batches per table and round at most; the rest waits for the next round.
    #[serde(default = "default_max_batches")]
    pub max_batches: u32,
}

fn default_outbox_ms() -> u64 {
    7 * DAY_MS
}
fn default_runs_ms() -> u64 {
    30 * DAY_MS
}
fn default_quarantine_ms() -> u64 {
    30 * DAY_MS
}
fn default_interval_ms() -> u64 {
    60_000
}
fn default_batch_size() -> u32 {
    5_000
}
fn default_max_batches() -> u32 {
    100
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            outbox_ms: default_outbox_ms(),
            runs_ms: default_runs_ms(),
            quarantine_ms: default_quarantine_ms(),
            interval_ms: default_interval_ms(),
            batch_size: default_batch_size(),
            max_batches: default_max_batches(),
        }
    }
}

impl Retention {
    pub fn validate(&self, f: &mut Findings) {
        f.range("outbox_ms", self.outbox_ms, 1_000, 3_650 * DAY_MS);
        // A run's outbox rows go first (they reference it).
        f.range("runs_ms", self.runs_ms, self.outbox_ms, 3_650 * DAY_MS);
        f.range("quarantine_ms", self.quarantine_ms, 1_000, 3_650 * DAY_MS);
        f.range("interval_ms", self.interval_ms, 100, DAY_MS);
        f.range("batch_size", self.batch_size, 1, 1_000_000);
        f.range("max_batches", self.max_batches, 1, 1_000_000);
    }

    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }
}

/// `[reconcile]`: the reconciler checks every staged run end to end by its digest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reconcile {
    /// Off: no reconciler runs (nothing else changes).
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// A run is checked once it was staged this long ago: by then it should be in
    /// Cassandra.
    #[serde(default = "default_after_ms")]
    pub after_ms: u64,
    /// A run still incomplete this long after staging is reported missing; before, it
    /// is only unreconciled (still on its way).
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: u64,
    /// How often the reconciler reads Kafka and checks runs.
    #[serde(default = "default_reconcile_interval_ms")]
    pub interval_ms: u64,
    /// Runs checked per round at most.
    #[serde(default = "default_batch_runs")]
    pub batch_runs: u32,
    /// How often Cassandra's aggregates are compared with everything staged (only at a
    /// moment when nothing is in flight: else the check waits for the next interval).
    #[serde(default = "default_aggregate_interval_ms")]
    pub aggregate_interval_ms: u64,
    /// Restart policy of the upkeep supervisor (retention and the reconciler).
    #[serde(default = "default_upkeep_supervision")]
    pub supervision: RestartPolicy,
}

fn default_enabled() -> bool {
    true
}
fn default_after_ms() -> u64 {
    60_000
}
fn default_deadline_ms() -> u64 {
    600_000
}
fn default_reconcile_interval_ms() -> u64 {
    5_000
}
fn default_batch_runs() -> u32 {
    200
}
fn default_aggregate_interval_ms() -> u64 {
    60_000
}
fn default_upkeep_supervision() -> RestartPolicy {
    RestartPolicy::new(Strategy::OneForOne)
}

impl Default for Reconcile {
    fn default() -> Self {
        Self {
            enabled: default_enabled(),
            after_ms: default_after_ms(),
            deadline_ms: default_deadline_ms(),
            interval_ms: default_reconcile_interval_ms(),
            batch_runs: default_batch_runs(),
            aggregate_interval_ms: default_aggregate_interval_ms(),
            supervision: default_upkeep_supervision(),
        }
    }
}

impl Reconcile {
    pub fn validate(&self, f: &mut Findings) {
        f.range("after_ms", self.after_ms, 100, DAY_MS);
        f.range("deadline_ms", self.deadline_ms, self.after_ms, 30 * DAY_MS);
        f.range("interval_ms", self.interval_ms, 100, DAY_MS);
        f.range("batch_runs", self.batch_runs, 1, 100_000);
        f.range(
            "aggregate_interval_ms",
            self.aggregate_interval_ms,
            1_000,
            DAY_MS,
        );
        f.section("supervision", |f| self.supervision.validate(f));
    }
}
