//! The soak's report: report.json, report.md and SVG charts over time, and its verdict —
//! nothing lost, duplicated or miscounted, and nothing trending upward with the record
//! count.

use super::sample::{LatencyWindow, Sample};
use super::{Injected, SoakArgs, Verdict};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use tributary_bench::svg::{self, Series};

/// One quantity that must stay flat: its median over the middle third of the run
/// against the last third.
#[derive(Debug, Clone, Serialize)]
pub struct Trend {
    pub what: String,
    pub middle: f64,
    pub last: f64,
    /// What the last third may reach: `middle × 1.5 + slack`, at most the ceiling.
    pub limit: f64,
    pub flat: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub name: String,
    pub minutes: f64,
    pub rate_per_s: f64,
    pub seed: u64,
    pub verdict: Verdict,
    pub faults: BTreeMap<String, u64>,
    pub injected: Vec<Injected>,
    pub trends: Vec<Trend>,
    /// Cassandra is where the data goes: it grows by this much per million records.
    pub cassandra_mib_per_million: Option<f64>,
    pub latency: Vec<LatencyWindow>,
    /// The shorter windows the latency trends are judged on.
    pub trend_latency: Vec<LatencyWindow>,
    pub samples: Vec<Sample>,
}

/// The latency of a soak, from the staging commit to the Cassandra commit.
pub struct Latency {
    /// The report's windows.
    pub windows: Vec<LatencyWindow>,
    /// The trend's windows (a minute in an hour-long soak).
    pub trend_windows: Vec<LatencyWindow>,
}

/// The components whose CPU per record the report shows (`Sample::cpu_s`).
const CPU_COMPONENTS: [&str; 4] = ["tributary", "postgres", "kafka", "cassandra"];

/// Absolute slack of each trend (noise that is not growth) and, for latency, a ceiling
/// the last third must stay under whatever the middle third did: a pipeline that fell
/// behind in the middle and stayed behind is flat, not healthy (the 36-minute soak's
/// p99 sat at the histogram's 30 s cap in both thirds and passed the relative rule).
const BOUNDS: [(&str, f64, Option<f64>); 6] = [
    ("postgresql MiB", 8.0, None),
    ("kafka MiB", 32.0, None),
    ("tributary RSS MiB", 16.0, None),
    ("lag (records)", 20_000.0, None),
    ("p50 latency ms", 250.0, Some(5_000.0)),
    ("p99 latency ms", 250.0, Some(15_000.0)),
];

impl Report {
    pub fn new(
        args: &SoakArgs,
        rate: f64,
        name: &str,
        samples: Vec<Sample>,
        latency: Latency,
        injected: Vec<Injected>,
        verdict: Verdict,
    ) -> Report {
        let mut faults = BTreeMap::new();
        for fault in &injected {
            *faults.entry(fault.scenario.clone()).or_insert(0) += 1;
        }
        // The steady part only: the last sample is taken after the drain.
        let steady = &samples[..samples.len().saturating_sub(1)];
        let series: [(&str, Vec<(f64, f64)>); 4] = [
            ("postgresql MiB", points(steady, |s| Some(s.postgres_mib))),
            ("kafka MiB", points(steady, |s| Some(s.kafka_mib))),
            ("tributary RSS MiB", points(steady, |s| s.rss_mib)),
            ("lag (records)", points(steady, |s| s.lag.map(|l| l as f64))),
        ];
        let quantile = |q: fn(&LatencyWindow) -> Option<f64>| -> Vec<(f64, f64)> {
            latency
                .trend_windows
                .iter()
                .filter_map(|w| Some((w.end_s, q(w)?)))
                .collect()
        };
        let duration = args.minutes * 60.0;
        let mut trends: Vec<Trend> = series
            .iter()
            .map(|(what, points)| trend(what, points, duration))
            .collect();
        trends.push(trend("p50 latency ms", &quantile(|w| w.p50_ms), duration));
        trends.push(trend("p99 latency ms", &quantile(|w| w.p99_ms), duration));
        let cassandra_mib_per_million = match (steady.first(), steady.last()) {
            (Some(a), Some(b)) if b.written > a.written => {
                Some((b.cassandra_mib - a.cassandra_mib) / ((b.written - a.written) as f64 / 1e6))
            }
            _ => None,
        };
        Report {
            name: name.to_owned(),
            minutes: args.minutes,
            rate_per_s: rate,
            seed: args.seed,
            verdict,
            faults,
            injected,
            trends,
            cassandra_mib_per_million,
            latency: latency.windows,
            trend_latency: latency.trend_windows,
            samples,
        }
    }

    pub fn passed(&self) -> bool {
        let v = &self.verdict;
        v.error.is_none()
            && v.drained
            && v.users_staged > 0
            && v.users_in_cassandra == v.users_staged
            && v.verify_missing == 0
            && v.verify_duplicated == 0
            && v.verify_unexpected == 0
            && v.verify_aggregate_errors == 0
            && v.reconciler_failed_runs == 0
            && v.reconciler_aggregate_ok == Some(true)
            && self.injected.iter().all(|f| f.error.is_none())
            && (!self.trends_enforced() || self.trends.iter().all(|t| t.flat))
    }

    /// See `soak::trends_enforced`.
    pub fn trends_enforced(&self) -> bool {
        super::trends_enforced(self.minutes)
    }

    pub fn markdown(&self) -> String {
        let v = &self.verdict;
        let mut md = String::new();
        let _ = writeln!(
            md,
            "Soak `{}`: {} min at {:.0} users/s, seed {}, {} faults — **{}**\n",
            self.name,
            self.minutes,
            self.rate_per_s,
            self.seed,
            self.injected.len(),
            if self.passed() { "pass" } else { "FAIL" }
        );
        let yes = |b: Option<bool>| match b {
            Some(true) => "equal",
            Some(false) => "DIFFER",
            None => "never checked",
        };
        let late: Vec<f64> = self
            .injected
            .iter()
            .map(|f| f.at_s - f.planned_s)
            .filter(|late| *late > 1.0)
            .collect();
        let rows: [(&str, String); 14] = [
            (
                "users staged / in Cassandra",
                format!("{} / {}", v.users_staged, v.users_in_cassandra),
            ),
            (
                "lost / duplicated / unexpected (verify)",
                format!(
                    "{} / {} / {}",
                    v.verify_missing, v.verify_duplicated, v.verify_unexpected
                ),
            ),
            (
                "aggregate errors (verify)",
                v.verify_aggregate_errors.to_string(),
            ),
            (
                "runs checked by verify (retained)",
                v.verify_runs.to_string(),
            ),
            (
                "tributary verify (a scan of every row): rows, wall time, peak RSS",
                format!(
                    "{} rows, {}, {}",
                    v.users_in_cassandra,
                    v.verify_wall_s.map_or("-".into(), |s| format!("{s:.1} s")),
                    v.verify_peak_rss_mib
                        .map_or("-".into(), |m| format!("{m:.0} MiB"))
                ),
            ),
            (
                "failed runs (reconciler)",
                v.reconciler_failed_runs.to_string(),
            ),
            (
                "aggregates (reconciler, after the drain)",
                yes(v.reconciler_aggregate_ok).to_owned(),
            ),
            (
                "aggregate checks during the soak",
                v.reconciler_aggregate_checks.to_string(),
            ),
            (
                "unreconciled at the end",
                v.reconciler_unreconciled.to_string(),
            ),
            (
                "drain after the last run",
                v.drain_s.map_or("-".into(), |s| format!("{s:.1} s")),
            ),
            (
                "actor restarts / Kafka re-bootstraps",
                format!("{} / {}", v.restarts, v.rebootstraps),
            ),
            (
                "Cassandra growth (the destination)",
                self.cassandra_mib_per_million
                    .map_or("-".into(), |m| format!("{m:.1} MiB per million records")),
            ),
            (
                "faults later than planned (the one before overran its gap)",
                match late.iter().copied().reduce(f64::max) {
                    Some(most) => format!("{}, at most {most:.0} s", late.len()),
                    None => "0".into(),
                },
            ),
            ("error", v.error.clone().unwrap_or_else(|| "-".into())),
        ];
        md.push_str("| | |\n|---|---|\n");
        for (k, val) in rows {
            let _ = writeln!(md, "| {k} | {val} |");
        }
        md.push_str("\n| faults by kind | count |\n|---|---:|\n");
        for (kind, n) in &self.faults {
            let _ = writeln!(md, "| {kind} | {n} |");
        }
        let failed: Vec<&Injected> = self.injected.iter().filter(|f| f.error.is_some()).collect();
        for f in failed {
            let _ = writeln!(
                md,
                "\nfault at {:.0} s ({}) failed: {}",
                f.at_s,
                f.scenario,
                f.error.as_deref().unwrap_or("")
            );
        }
        let _ = writeln!(
            md,
            "\n{}\n",
            if self.trends_enforced() {
                "Trends (enforced): the median of the last third against the middle third \
                 (latency: of one-minute windows); every third meets the same faults in the \
                 same order at the same planned moments (see faults later than planned)."
            } else {
                "Trends (reported, not enforced under 30 minutes: too short to tell warm-up from growth)."
            }
        );
        md.push_str(
            "| must stay flat | middle third | last third | limit | |\n|---|---:|---:|---:|---|\n",
        );
        for t in &self.trends {
            let _ = writeln!(
                md,
                "| {} | {:.1} | {:.1} | {:.1} | {} |",
                t.what,
                t.middle,
                t.last,
                t.limit,
                if t.flat { "flat" } else { "RISING" }
            );
        }
        md.push_str(
            "\nCPU per record staged, by component (reported, not enforced: where the \
             machine's headroom goes as the data grows; restarts left out):\n\n\
             | CPU µs/record | middle third | last third |\n|---|---:|---:|\n",
        );
        let duration = self.minutes * 60.0;
        for component in CPU_COMPONENTS {
            let per_record = |from: f64, to: f64| {
                us_per_record(&self.samples, component, from, to)
                    .map_or("-".to_owned(), |us| format!("{us:.1}"))
            };
            let _ = writeln!(
                md,
                "| {component} | {} | {} |",
                per_record(duration / 3.0, 2.0 * duration / 3.0),
                per_record(2.0 * duration / 3.0, duration)
            );
        }
        md.push_str("\n| records staged | at minute | PostgreSQL CPU µs/record (last minute) | PostgreSQL MiB | staged_users table / indexes MiB | runs table / indexes MiB |\n|---:|---:|---:|---:|---:|---:|\n");
        for threshold in [1_000_000_u64, 10_000_000] {
            let Some(s) = self.samples.iter().find(|s| s.staged >= threshold) else {
                let _ = writeln!(md, "| {threshold} | not reached | | | | |");
                continue;
            };
            let mib = |table: &str| {
                s.postgres.get(table).map_or("-".to_owned(), |(t, i)| {
                    format!(
                        "{:.1} / {:.1}",
                        *t as f64 / 1_048_576.0,
                        *i as f64 / 1_048_576.0
                    )
                })
            };
            let _ = writeln!(
                md,
                "| {} | {:.1} | {} | {:.1} | {} | {} |",
                s.staged,
                s.t_s / 60.0,
                us_per_record(&self.samples, "postgres", s.t_s - 60.0, s.t_s)
                    .map_or("-".into(), |us| format!("{us:.1}")),
                s.postgres_mib,
                mib("staged_users"),
                mib("runs"),
            );
        }
        md.push_str("\n| window end | written | p50 ms | p99 ms | RSS MiB | PostgreSQL MiB | PostgreSQL CPU µs/record | outbox rows | Kafka MiB | Cassandra MiB | lag | faults in it |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
        let mut window_start = 0.0;
        let opt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0}"));
        for w in &self.latency {
            let Some(s) = self
                .samples
                .iter()
                .min_by(|a, b| (a.t_s - w.end_s).abs().total_cmp(&(b.t_s - w.end_s).abs()))
            else {
                continue;
            };
            let cpu = us_per_record(&self.samples, "postgres", window_start, w.end_s);
            let faults: Vec<&str> = self
                .injected
                .iter()
                .filter(|f| f.at_s >= window_start && f.at_s < w.end_s)
                .map(|f| f.scenario.as_str())
                .collect();
            window_start = w.end_s;
            let _ = writeln!(
                md,
                "| {:.0} min | {} | {} | {} | {} | {:.1} | {} | {} | {:.1} | {:.1} | {} | {} |",
                w.end_s / 60.0,
                s.written,
                opt(w.p50_ms),
                opt(w.p99_ms),
                opt(s.rss_mib),
                s.postgres_mib,
                cpu.map_or("-".into(), |us| format!("{us:.1}")),
                s.outbox_rows.map_or("-".into(), |n| n.to_string()),
                s.kafka_mib,
                s.cassandra_mib,
                s.lag.map_or("-".into(), |l| l.to_string()),
                faults.join(", "),
            );
        }
        md
    }

    /// report.json, report.md and the charts under `dir`.
    ///
    /// # Errors
    /// A file cannot be written.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(self)?)?;
        std::fs::write(dir.join("report.md"), self.markdown())?;
        let minutes = |points: Vec<(f64, f64)>| -> Vec<(f64, f64)> {
            points.into_iter().map(|(t, y)| (t / 60.0, y)).collect()
        };
        let s = &self.samples;
        let charts = [
            (
                "records.svg",
                svg::lines(
                    "Records in and out",
                    "minutes",
                    "millions",
                    &[
                        Series {
                            name: "staged",
                            points: minutes(points(s, |s| Some(s.staged as f64 / 1e6))),
                        },
                        Series {
                            name: "in Cassandra",
                            points: minutes(points(s, |s| Some(s.written as f64 / 1e6))),
                        },
                    ],
                ),
            ),
            (
                "storage.svg",
                svg::lines(
                    "Storage",
                    "minutes",
                    "MiB",
                    &[
                        Series {
                            name: "PostgreSQL (tables + indexes)",
                            points: minutes(points(s, |s| Some(s.postgres_mib))),
                        },
                        Series {
                            name: "Kafka (topics)",
                            points: minutes(points(s, |s| Some(s.kafka_mib))),
                        },
                        Series {
                            name: "Cassandra (keyspace)",
                            points: minutes(points(s, |s| Some(s.cassandra_mib))),
                        },
                    ],
                ),
            ),
            (
                "rss.svg",
                svg::lines(
                    "tributary resident memory",
                    "minutes",
                    "MiB",
                    &[Series {
                        name: "RSS",
                        points: minutes(points(s, |s| s.rss_mib)),
                    }],
                ),
            ),
            (
                "lag.svg",
                svg::lines(
                    "Consumer lag",
                    "minutes",
                    "records",
                    &[Series {
                        name: "lag",
                        points: minutes(points(s, |s| s.lag.map(|l| l as f64))),
                    }],
                ),
            ),
            (
                "latency.svg",
                svg::lines(
                    "Staging commit → Cassandra commit, per window",
                    "minutes",
                    "ms",
                    &[
                        Series {
                            name: "p50",
                            points: self
                                .latency
                                .iter()
                                .filter_map(|w| Some((w.end_s / 60.0, w.p50_ms?)))
                                .collect(),
                        },
                        Series {
                            name: "p99",
                            points: self
                                .latency
                                .iter()
                                .filter_map(|w| Some((w.end_s / 60.0, w.p99_ms?)))
                                .collect(),
                        },
                    ],
                ),
            ),
        ];
        for (file, chart) in charts {
            std::fs::write(dir.join(file), chart)?;
        }
        Ok(())
    }
}

/// The CPU `component` used per record staged between the samples nearest `from_s` and
/// `to_s`, in microseconds: summed over consecutive samples, leaving out each interval
/// in which it restarted (its processes' CPU time starts again from zero, and what the
/// killed ones used is gone) together with the records staged in it.
fn us_per_record(samples: &[Sample], component: &str, from_s: f64, to_s: f64) -> Option<f64> {
    let nearest = |t: f64| {
        (0..samples.len()).min_by(|&a, &b| {
            (samples[a].t_s - t)
                .abs()
                .total_cmp(&(samples[b].t_s - t).abs())
        })
    };
    let (from, to) = (nearest(from_s)?, nearest(to_s)?);
    let (mut cpu_s, mut records) = (0.0, 0_u64);
    for pair in samples.get(from..=to)?.windows(2) {
        let (Some(a), Some(b)) = (pair[0].cpu_s.get(component), pair[1].cpu_s.get(component))
        else {
            continue;
        };
        let same_process =
            component != "tributary" || pair[0].tributary_pid == pair[1].tributary_pid;
        if b >= a && same_process {
            cpu_s += b - a;
            records += pair[1].staged.saturating_sub(pair[0].staged);
        }
    }
    (records > 0).then(|| cpu_s * 1e6 / records as f64)
}

fn points(samples: &[Sample], value: impl Fn(&Sample) -> Option<f64>) -> Vec<(f64, f64)> {
    samples
        .iter()
        .filter_map(|s| Some((s.t_s, value(s)?)))
        .collect()
}

/// The middle third's median against the last third's, of points over `duration` s.
///
/// Medians, not means: the soak draws a fault every 30–90 s, and the kill of a
/// single-node Kafka or Cassandra stops the pipeline for as long as that server takes to
/// restart (20–30 s for Kafka; once, a commit-log replay of 97 s for Cassandra). Those
/// few windows and samples land in one third or the other by the luck of the draw and,
/// averaged, decide the verdict (the first hour-long soaks failed that way; since the
/// third hour-long soak, each third replays one fault plan, see `soak::plan`). What grows
/// with the record count — a table, an index, a map, a backlog — moves the typical
/// window, which the median is. The cost of each fault is the chaos suite's to report
/// (recovery and drain per fault kind), and the report lists the faults in every window.
fn trend(what: &str, points: &[(f64, f64)], duration: f64) -> Trend {
    let median = |from: f64, to: f64| {
        let mut inside: Vec<f64> = points
            .iter()
            .filter(|(t, _)| *t >= from && *t < to)
            .map(|(_, y)| *y)
            .collect();
        inside.sort_by(f64::total_cmp);
        match inside.len() {
            0 => 0.0,
            n if n % 2 == 1 => inside[n / 2],
            n => f64::midpoint(inside[n / 2 - 1], inside[n / 2]),
        }
    };
    let (middle, last) = (
        median(duration / 3.0, 2.0 * duration / 3.0),
        median(2.0 * duration / 3.0, f64::INFINITY),
    );
    let (slack, ceiling) = BOUNDS
        .iter()
        .find(|(w, _, _)| *w == what)
        .map_or((0.0, None), |(_, s, c)| (*s, *c));
    let limit = ceiling.map_or(middle * 1.5 + slack, |c| (middle * 1.5 + slack).min(c));
    Trend {
        what: what.to_owned(),
        middle,
        last,
        limit,
        flat: last <= limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_level_series_is_flat_and_a_growing_one_is_not() {
        let level: Vec<(f64, f64)> = (0..60).map(|t| (f64::from(t), 100.0)).collect();
        assert!(trend("postgresql MiB", &level, 60.0).flat);
        // Growing with time (and so with the record count): 10 → 600 MiB.
        let rising: Vec<(f64, f64)> = (0..60)
            .map(|t| (f64::from(t), 10.0 * f64::from(t + 1)))
            .collect();
        let t = trend("postgresql MiB", &rising, 60.0);
        assert!(!t.flat, "{t:?}");
    }

    #[test]
    fn a_few_outage_windows_are_not_growth_but_a_rising_typical_window_is() {
        // Minute windows with p99 250 ms, and in the last third three minutes of a
        // killed store's outage at the 30 s cap: the typical minute did not change.
        let outages = |t: u32| matches!(t, 45 | 51 | 52);
        let faulted: Vec<(f64, f64)> = (0..60)
            .map(|t| (f64::from(t), if outages(t) { 30_000.0 } else { 250.0 }))
            .collect();
        assert!(trend("p99 latency ms", &faulted, 60.0).flat);
        // Every minute of the last third 4 × slower: growth, whatever the outages.
        let slower: Vec<(f64, f64)> = faulted
            .iter()
            .map(|&(t, y)| (t, if t >= 40.0 { y.max(1_000.0) } else { y }))
            .collect();
        assert!(!trend("p99 latency ms", &slower, 60.0).flat);
    }

    #[test]
    fn cpu_per_record_leaves_out_restarts() {
        let sample = |t_s: f64, staged: u64, cpu: f64| Sample {
            t_s,
            staged,
            cpu_s: BTreeMap::from([("postgres".to_owned(), cpu)]),
            ..Sample::default()
        };
        // 10 s of CPU per million records, and a restart between 2 and 3 (CPU 25 → 1).
        let samples = [
            sample(0.0, 0, 5.0),
            sample(1.0, 1_000_000, 15.0),
            sample(2.0, 2_000_000, 25.0),
            sample(3.0, 3_000_000, 1.0),
            sample(4.0, 4_000_000, 11.0),
        ];
        let us = us_per_record(&samples, "postgres", 0.0, 4.0).unwrap();
        assert!((us - 10.0).abs() < 1e-9, "{us}");
        assert_eq!(us_per_record(&samples, "postgres", 2.0, 3.0), None);
        assert_eq!(us_per_record(&samples, "kafka", 0.0, 4.0), None);
    }

    #[test]
    fn latency_level_but_behind_is_not_flat() {
        // The 36-minute soak's p99: at the 30 s cap in the middle and the last third.
        let capped: Vec<(f64, f64)> = (0..60).map(|t| (f64::from(t), 30_000.0)).collect();
        assert!(!trend("p99 latency ms", &capped, 60.0).flat);
        let healthy: Vec<(f64, f64)> = (0..60).map(|t| (f64::from(t), 4_000.0)).collect();
        assert!(trend("p99 latency ms", &healthy, 60.0).flat);
    }
}
