//! The report: target/chaos/report.json and a markdown table.

use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

/// One row of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub scenario: String,
    pub seed: u64,
    pub expected: u64,
    pub delivered: u64,
    pub missing: u64,
    pub duplicated: u64,
    pub unexpected: u64,
    pub aggregate_errors: usize,
    /// Seconds from the heal until the first new commit in Cassandra.
    pub recovery_s: Option<f64>,
    /// Seconds from the heal until everything was in Cassandra.
    pub drain_s: Option<f64>,
    /// The longest time, from the fault until the drain, in which Cassandra's count of
    /// committed users did not grow: how long tributary stopped committing.
    pub longest_gap_s: Option<f64>,
    /// Actor failures logged by the tributary processes (each followed by a restart).
    pub restarts: usize,
    /// Kafka clients that lost every broker and got their bootstrap servers back.
    pub rebootstraps: usize,
    pub passed: bool,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

impl Outcome {
    /// Fills in verify's findings: passed when verify is clean and exactly `expected`
    /// users were staged and are in Cassandra.
    pub(crate) fn judge(&mut self, report: &tributary::verify::Report, expected: u64) {
        self.delivered = report.in_cassandra;
        self.missing = report.missing + expected.saturating_sub(report.staged);
        self.duplicated = report.duplicated;
        self.unexpected = report.unexpected;
        self.aggregate_errors = report.aggregate_errors.len();
        self.passed =
            report.is_clean() && report.staged == expected && report.in_cassandra == expected;
    }
}

pub fn markdown(outcomes: &[Outcome]) -> String {
    let mut md = String::from(
        "| scenario | seed | expected | delivered | missing | duplicated | aggregate errors | recovery s | drain s | longest gap s | restarts | rebootstraps | result |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let secs = |s: Option<f64>| s.map_or("-".to_owned(), |s| format!("{s:.1}"));
    for o in outcomes {
        let result = match (&o.error, o.passed) {
            (Some(error), _) => format!("FAIL: {error}"),
            (None, true) => "pass".to_owned(),
            (None, false) => "FAIL".to_owned(),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            o.scenario,
            o.seed,
            o.expected,
            o.delivered,
            o.missing,
            o.duplicated,
            o.aggregate_errors,
            secs(o.recovery_s),
            secs(o.drain_s),
            secs(o.longest_gap_s),
            o.restarts,
            o.rebootstraps,
            result.replace('|', "/")
        );
    }
    md
}

/// Writes report.json and report.md under `dir`.
///
/// # Errors
/// The files cannot be written.
pub fn write(dir: &Path, outcomes: &[Outcome]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_string_pretty(outcomes)?,
    )?;
    std::fs::write(dir.join("report.md"), markdown(outcomes))?;
    Ok(())
}
