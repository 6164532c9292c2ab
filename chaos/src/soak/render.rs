//! The soak report written out: report.md's tables and report.json beside the SVG charts
//! over time.

use super::Injected;
use super::report::{CPU_COMPONENTS, Report, points, us_per_record};
use std::fmt::Write as _;
use std::path::Path;
use tributary_bench::svg::{self, Series};

impl Report {
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
                "Trends (enforced): the median of the last third against the middle third; \
                 every third meets the same faults in the same order at the same planned \
                 moments (see faults later than planned), so latency is judged by pairs of \
                 one-minute windows, each of the last third against its twin of the middle \
                 third: flat when at most half of the pairs pass their twin's limit \
                 (×1.5 + slack) and the last third's median stays under the ceiling."
            } else {
                "Trends (reported, not enforced under 30 minutes: too short to tell warm-up from growth)."
            }
        );
        md.push_str(
            "| must stay flat | middle third | last third | limit | paired minutes worse | |\n|---|---:|---:|---:|---:|---|\n",
        );
        for t in &self.trends {
            let paired = t
                .paired
                .map_or("-".to_owned(), |p| format!("{} of {}", p.worse, p.pairs));
            let _ = writeln!(
                md,
                "| {} | {:.1} | {:.1} | {:.1} | {} | {} |",
                t.what,
                t.middle,
                t.last,
                t.limit,
                paired,
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
