//! CPU time of everything sharing the machine during a phase: tributary (or the bench's
//! own client), Cassandra, Kafka, PostgreSQL and the schema registry, from /proc. It explains the ceilings:
//! on a small machine every process competes for the same cores, so records/s is bounded
//! by cores ÷ (CPU seconds one record costs across all of them).

use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The stack services whose pid files stack/stack.sh writes.
const SERVICES: [&str; 4] = ["cassandra", "kafka", "postgres", "registry"];

/// Where the stack's pid files are (`TRIBUTARY_STACK_DIR`, as stack/stack.sh).
fn stack_dir() -> PathBuf {
    std::env::var_os("TRIBUTARY_STACK_DIR").map_or_else(|| PathBuf::from(".stack"), PathBuf::from)
}

/// Clock ticks per second of /proc's times: 100 on every Linux we run on.
const TICKS_PER_S: f64 = 100.0;

/// Seconds in the first `fields` of utime, stime, cutime, cstime of `pid` (fields 14–17
/// of /proc/<pid>/stat, counted after the command name, which may hold spaces).
fn stat_seconds(pid: u32, fields: usize) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let ticks: u64 = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(fields)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    ticks as f64 / TICKS_PER_S
}

/// utime + stime of `pid` alone (all its threads, no child process): the bench's own
/// client or source, whose children are the tributary instances measured on their own.
pub fn own_seconds(pid: u32) -> f64 {
    stat_seconds(pid, 2)
}

/// utime + stime + cutime + cstime of `pid` and of its live descendants, in seconds.
/// Reaped children land in their parent's cutime/cstime, so a PostgreSQL backend that
/// ends between two samples is still counted.
fn tree_seconds(pid: u32) -> f64 {
    let children: f64 = children(pid).into_iter().map(tree_seconds).sum();
    stat_seconds(pid, 4) + children
}

fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

fn service_pid(dir: &Path, service: &str) -> Option<u32> {
    std::fs::read_to_string(dir.join(service).join("pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// CPU seconds consumed so far, per process group.
#[derive(Debug, Clone, Default)]
pub struct Sample(BTreeMap<String, f64>);

impl Sample {
    /// Seconds of one process group (`postgres`, `cassandra`, `kafka`, or a measured
    /// name), if it was sampled.
    pub fn seconds(&self, name: &str) -> Option<f64> {
        self.0.get(name).copied()
    }

    /// Every process group's seconds, by name.
    pub fn into_map(self) -> BTreeMap<String, f64> {
        self.0
    }
}

/// Samples the stack services, each `(name, pids)` of `measured` (tributary instances,
/// with their descendants), and this bench process alone as `own` if given.
pub fn sample(measured: &[(&str, &[u32])], own: Option<&str>) -> Sample {
    let dir = stack_dir();
    let mut seconds = BTreeMap::new();
    for service in SERVICES {
        if let Some(pid) = service_pid(&dir, service) {
            seconds.insert(service.to_owned(), tree_seconds(pid));
        }
    }
    for (name, pids) in measured {
        seconds.insert(
            (*name).to_owned(),
            pids.iter().copied().map(tree_seconds).sum(),
        );
    }
    if let Some(name) = own {
        seconds.insert(name.to_owned(), own_seconds(std::process::id()));
    }
    Sample(seconds)
}

/// Waits until the stack services together keep less than `threshold` cores busy over
/// two seconds — Cassandra compacts and flushes for a while after a large write (an
/// earlier phase, a test suite) — at most `limit`. Returns the last load measured.
pub async fn wait_idle(threshold: f64, limit: std::time::Duration) -> f64 {
    let window = std::time::Duration::from_secs(2);
    let started = std::time::Instant::now();
    loop {
        let before = sample(&[], None);
        tokio::time::sleep(window).await;
        let after = sample(&[], None);
        let busy: f64 = after
            .0
            .iter()
            .map(|(name, end)| end - before.0.get(name).copied().unwrap_or(*end))
            .sum::<f64>()
            / window.as_secs_f64();
        if busy < threshold || started.elapsed() >= limit {
            return busy;
        }
    }
}

/// CPU seconds per 1,000 records between two samples, per process group, plus `total`
/// and the cores kept busy on average (`cores_busy`, total ÷ wall time).
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    pub per_1000_records: BTreeMap<String, f64>,
    pub total_per_1000_records: f64,
    pub cores_busy: f64,
}

pub fn usage(before: &Sample, after: &Sample, records: u64, wall_s: f64) -> Usage {
    let thousands = (records as f64 / 1_000.0).max(1e-9);
    let per_1000_records: BTreeMap<String, f64> = after
        .0
        .iter()
        .map(|(name, end)| {
            let start = before.0.get(name).copied().unwrap_or(0.0);
            (name.clone(), (end - start).max(0.0) / thousands)
        })
        .collect();
    let total_per_1000_records = per_1000_records.values().sum();
    Usage {
        cores_busy: total_per_1000_records * thousands / wall_s.max(1e-9),
        per_1000_records,
        total_per_1000_records,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_per_thousand_records_and_counts_new_processes_from_zero() {
        let before = Sample(BTreeMap::from([("cassandra".to_owned(), 10.0)]));
        let after = Sample(BTreeMap::from([
            ("cassandra".to_owned(), 14.0),
            ("tributary".to_owned(), 2.0),
        ]));
        let u = usage(&before, &after, 20_000, 4.0);
        assert!((u.per_1000_records["cassandra"] - 0.2).abs() < 1e-9);
        assert!((u.per_1000_records["tributary"] - 0.1).abs() < 1e-9);
        assert!((u.total_per_1000_records - 0.3).abs() < 1e-9);
        assert!((u.cores_busy - 1.5).abs() < 1e-9);
    }

    #[test]
    fn this_process_has_spent_cpu() {
        let spin: u64 = (0..5_000_000u64).fold(0, |a, b| a.wrapping_add(b * b));
        assert!(spin > 0);
        assert!(tree_seconds(std::process::id()) > 0.0);
        assert!(own_seconds(std::process::id()) > 0.0);
    }
}
