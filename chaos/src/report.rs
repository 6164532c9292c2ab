//! The report: target/chaos/report.json and a markdown table.

use crate::runner::Outcome;
use std::fmt::Write as _;
use std::path::Path;

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
