//! What a check found, as a table for the terminal or JSON.

use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// What was checked.
    pub window: String,
    /// Runs checked.
    pub runs: u64,
    /// Runs whose three digests do not agree.
    pub runs_differing: u64,
    /// Users staged in PostgreSQL.
    pub staged: u64,
    /// Distinct user ids in the raw topic (read_committed).
    pub in_kafka: u64,
    /// Records in the raw topic, duplicates included.
    pub kafka_records: u64,
    /// Rows in Cassandra's created_users.
    pub in_cassandra: u64,
    /// Staged ids absent from Kafka or from Cassandra (not delivered end to end).
    pub missing: u64,
    /// Staged ids absent from Kafka.
    pub missing_in_kafka: u64,
    /// Staged ids absent from Cassandra.
    pub missing_in_cassandra: u64,
    /// Ids present more than once in Kafka.
    pub duplicated: u64,
    /// Ids in Kafka or Cassandra that were never staged.
    pub unexpected: u64,
    /// Aggregate differences (Cassandra vs everything staged), one line each.
    pub aggregate_errors: Vec<String>,
    /// Records quarantined at ingest, for the summary (not an error).
    pub quarantined: u64,
    /// Distinct keys in the DLQ: poison records, accounted for (not unexpected).
    pub in_dlq: u64,
    /// Example ids per finding.
    pub samples: Samples,
    /// Rows in Cassandra written before rows carried their run id (not attributable to a
    /// run; counted, not an error).
    pub legacy_rows: u64,
    /// Runs older than the raw topic's retention: checked against Cassandra only.
    pub runs_past_kafka_retention: u64,
    /// Differing runs whose users could not be named (beyond the drill-down's bound, or
    /// their outbox rows already pruned): counted from digests only.
    pub runs_not_named: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Samples {
    pub missing: Vec<String>,
    pub duplicated: Vec<String>,
    pub unexpected: Vec<String>,
    /// Runs whose digests differ.
    pub runs: Vec<i64>,
}

impl Report {
    /// Everything matches.
    pub fn is_clean(&self) -> bool {
        self.missing == 0
            && self.duplicated == 0
            && self.unexpected == 0
            && self.runs_differing == 0
            && self.aggregate_errors.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:<28} {}", "checked", self.window)?;
        writeln!(f, "{:<28} {:>10}", "runs", self.runs)?;
        writeln!(f, "{:<28} {:>10}", "staged in postgresql", self.staged)?;
        writeln!(
            f,
            "{:<28} {:>10}",
            "quarantined at ingest", self.quarantined
        )?;
        writeln!(f, "{:<28} {:>10}", "distinct ids in kafka", self.in_kafka)?;
        writeln!(f, "{:<28} {:>10}", "records in kafka", self.kafka_records)?;
        writeln!(f, "{:<28} {:>10}", "rows in cassandra", self.in_cassandra)?;
        writeln!(f, "{:<28} {:>10}", "poison records in the dlq", self.in_dlq)?;
        writeln!(
            f,
            "{:<28} {:>10}  {:?}",
            "runs differing", self.runs_differing, self.samples.runs
        )?;
        writeln!(
            f,
            "{:<28} {:>10}  {:?}",
            "missing", self.missing, self.samples.missing
        )?;
        writeln!(
            f,
            "{:<28} {:>10}  {:?}",
            "duplicated", self.duplicated, self.samples.duplicated
        )?;
        writeln!(
            f,
            "{:<28} {:>10}  {:?}",
            "unexpected", self.unexpected, self.samples.unexpected
        )?;
        if self.runs_past_kafka_retention > 0 {
            writeln!(
                f,
                "{:<28} {:>10}  (older than the raw topic's retention.ms: checked against Cassandra only)",
                "runs past kafka retention", self.runs_past_kafka_retention
            )?;
        }
        if self.runs_not_named > 0 {
            writeln!(
                f,
                "{:<28} {:>10}  (counted from digests: check them with --runs)",
                "runs not named by id", self.runs_not_named
            )?;
        }
        writeln!(
            f,
            "{:<28} {:>10}",
            "aggregate errors",
            self.aggregate_errors.len()
        )?;
        for error in &self.aggregate_errors {
            writeln!(f, "  {error}")?;
        }
        write!(
            f,
            "{}",
            if self.is_clean() {
                "verify: OK"
            } else {
                "verify: MISMATCH"
            }
        )
    }
}
