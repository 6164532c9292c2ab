//! target/bench/report.json, report.md and the charts it embeds.

use crate::ceiling::{CassandraCeiling, KafkaCeiling};
use crate::process::Reading;
use crate::spark::Spark;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;
use tributary_bench::svg::{self, Series};

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub memory_gib: f64,
    pub cpu: String,
}

#[derive(Debug, Serialize)]
pub struct EndToEnd {
    /// Sustained records/s from the first publish to the last Cassandra commit.
    pub records_per_s: f64,
    pub peak_rss_mib: f64,
    /// CPU per 1,000 records of every process on the machine during the run.
    pub cpu: tributary_bench::cpu::Usage,
    pub readings: Vec<Reading>,
}

/// One end-to-end run per record format of users.raw, on the same users.
#[derive(Debug, Serialize)]
pub struct FormatRun {
    /// `kafka.record_format`.
    pub format: String,
    pub records_per_s: f64,
    pub cpu: tributary_bench::cpu::Usage,
}

#[derive(Debug, Serialize)]
pub struct Scaling {
    pub instances: usize,
    pub users: u64,
    pub records_per_s: f64,
}

#[derive(Debug, Serialize)]
pub struct Steady {
    /// Where the records enter: staged by the bench (outbox) or fetched (source).
    pub path: String,
    pub target_per_s: f64,
    /// What the feeder (or source schedule) actually delivered.
    pub achieved_per_s: f64,
    pub users: u64,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub rss_first_tenth_mib: f64,
    pub rss_last_tenth_mib: f64,
    pub rss_peak_mib: f64,
    /// Slope of RSS against records written after the first tenth of the run.
    pub rss_mib_per_million_records: f64,
    /// CPU per 1,000 records, the bench's feeder or embedded source included.
    pub cpu: tributary_bench::cpu::Usage,
    pub readings: Vec<Reading>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub versions: Vec<(String, String)>,
    pub users: u64,
    pub e2e: EndToEnd,
    /// The end-to-end run in each record format (the first is `e2e`).
    pub formats: Vec<FormatRun>,
    pub kafka: KafkaCeiling,
    pub cassandra: Vec<CassandraCeiling>,
    pub spark: Option<Spark>,
    pub scaling: Vec<Scaling>,
    /// Records/s through the embedded source, fetch to Cassandra, flat out.
    pub source_peak_per_s: f64,
    /// At half of each path's peak: fed into the outbox, then through the source.
    pub steady: Vec<Steady>,
}

pub fn versions() -> Vec<(String, String)> {
    vec![
        ("tributary".into(), env!("CARGO_PKG_VERSION").into()),
        ("Kafka".into(), "4.1.1 (KRaft, 1 broker)".into()),
        ("Cassandra".into(), "5.0.6 (1 node)".into()),
        ("PostgreSQL".into(), "15 (Debian)".into()),
        ("Spark".into(), "pyspark 3.5 from PyPI, local[2]".into()),
    ]
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "n/a".into()
    }
}

pub fn write(dir: &Path, report: &Report) -> anyhow::Result<()> {
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_string_pretty(report)?,
    )?;

    let best_cassandra = report
        .cassandra
        .iter()
        .map(|c| c.rows_per_s)
        .fold(0.0, f64::max);
    let spark_rate = report
        .spark
        .as_ref()
        .filter(|s| s.error.is_none())
        .map_or(0.0, |s| s.records_per_s);
    let t = report.e2e.records_per_s;

    // Charts.
    let first = report
        .e2e
        .readings
        .iter()
        .find(|r| r.published > 0)
        .map_or(0.0, |r| r.t);
    let tributary_series: Vec<(f64, f64)> = report
        .e2e
        .readings
        .windows(2)
        .filter(|w| w[1].t >= first)
        .map(|w| {
            (
                w[1].t - first,
                w[1].written.saturating_sub(w[0].written) as f64 / (w[1].t - w[0].t).max(1e-3),
            )
        })
        .collect();
    let mut series = vec![Series {
        name: "tributary",
        points: tributary_series,
    }];
    if let Some(spark) = report.spark.as_ref().filter(|s| s.error.is_none()) {
        series.push(Series {
            name: "Spark Structured Streaming",
            points: spark.series.clone(),
        });
    }
    std::fs::write(
        dir.join("throughput.svg"),
        svg::lines(
            &format!("Throughput writing {} users into Cassandra", report.users),
            "seconds since the first record",
            "records/s",
            &series,
        ),
    )?;
    let bars: Vec<(String, f64)> = report
        .steady
        .iter()
        .flat_map(|s| {
            let path = s.path.split(':').next().unwrap_or_default().to_owned();
            [
                (format!("{path} p50"), s.p50_ms),
                (format!("{path} p95"), s.p95_ms),
                (format!("{path} p99"), s.p99_ms),
            ]
        })
        .collect();
    std::fs::write(
        dir.join("latency.svg"),
        svg::bars(
            "Staging commit → Cassandra commit at half of peak load",
            "milliseconds",
            &bars,
        ),
    )?;
    let rss_series: Vec<Series<'_>> = report
        .steady
        .iter()
        .map(|s| Series {
            name: s.path.split(':').next().unwrap_or_default(),
            points: s.readings.iter().map(|r| (r.t, r.rss_mib)).collect(),
        })
        .collect();
    std::fs::write(
        dir.join("rss.svg"),
        svg::lines(
            "tributary resident memory during the steady runs",
            "seconds",
            "MiB",
            &rss_series,
        ),
    )?;

    let mut md = String::new();
    let _ = writeln!(md, "# tributary benchmark\n");
    let _ = writeln!(
        md,
        "Machine: {} cores ({}), {:.1} GiB. Everything below ran on it in one `make bench` run, \
         one after the other. Versions: {}.\n",
        report.machine.cores,
        report.machine.cpu,
        report.machine.memory_gib,
        report
            .versions
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        md,
        "| measurement | records/s | notes |\n| --- | ---: | --- |"
    );
    let _ = writeln!(
        md,
        "| tributary end to end, {} users pre-staged | {:.0} | first publish → last Cassandra commit; peak RSS {:.0} MiB |",
        report.users, t, report.e2e.peak_rss_mib
    );
    for run in report.formats.iter().skip(1) {
        let _ = writeln!(
            md,
            "| tributary end to end, users.raw in {} | {:.0} | the same users; CPU per record in the table below |",
            run.format, run.records_per_s
        );
    }
    let _ = writeln!(
        md,
        "| tributary through the embedded source, flat out | {:.0} | fetch → parse → stage → publish → write, the source generating users in the bench process on the same cores |",
        report.source_peak_per_s
    );
    let _ = writeln!(
        md,
        "| Kafka ConsumerPerformance, same topic | {:.0} | read_committed; {:.0}/s while fetching |",
        report.kafka.records_per_s, report.kafka.fetch_records_per_s
    );
    for c in &report.cassandra {
        let _ = writeln!(
            md,
            "| raw Cassandra upserts, {} row(s)/request, {} in flight | {:.0} | the writer's statement and requests, one scylla session |",
            c.rows_per_request, c.concurrency, c.rows_per_s
        );
    }
    match &report.spark {
        Some(spark) if spark.error.is_none() => {
            let _ = writeln!(
                md,
                "| Spark Structured Streaming, same topic | {:.0} | first → last row in Cassandra; {:.0} s wall time with start-up |",
                spark.records_per_s, spark.wall_s
            );
        }
        Some(spark) => {
            let _ = writeln!(
                md,
                "| Spark Structured Streaming | failed | {} |",
                spark
                    .error
                    .as_deref()
                    .unwrap_or("")
                    .replace('|', "/")
                    .lines()
                    .next()
                    .unwrap_or("")
            );
        }
        None => {
            let _ = writeln!(
                md,
                "| Spark Structured Streaming | not run | `--no-spark` |"
            );
        }
    }
    for s in &report.scaling {
        let _ = writeln!(
            md,
            "| tributary, {} instance(s) in one group | {:.0} | {} users pre-staged |",
            s.instances, s.records_per_s, s.users
        );
    }
    let _ = writeln!(md, "\n## Ratios\n");
    let _ = writeln!(md, "| ratio | value | target |\n| --- | ---: | ---: |");
    let _ = writeln!(
        md,
        "| tributary / Cassandra ceiling | {} | ≥ 0.80 |",
        ratio(t, best_cassandra)
    );
    if let Some(best) = report
        .cassandra
        .iter()
        .max_by(|a, b| a.rows_per_s.total_cmp(&b.rows_per_s))
    {
        let per_row =
            |u: &tributary_bench::cpu::Usage| u.per_1000_records.get("cassandra").copied();
        if let (Some(ceiling), Some(pipeline)) = (per_row(&best.cpu), per_row(&report.e2e.cpu)) {
            let _ = writeln!(
                md,
                "| Cassandra CPU per row, ceiling ÷ end to end (the ratio if Cassandra had its own cores) | {} | |",
                ratio(ceiling, pipeline)
            );
        }
    }
    let _ = writeln!(md, "| tributary / Spark | {} | ≥ 3 |", ratio(t, spark_rate));
    let _ = writeln!(
        md,
        "| tributary / Kafka consumer ceiling | {} | |",
        ratio(t, report.kafka.records_per_s)
    );
    cpu_table(&mut md, report);
    let _ = writeln!(md, "\n## Latency and memory at half of peak load\n");
    let _ = writeln!(
        md,
        "Peak load is the peak with ingestion included — through the embedded source, fetch → \
         Cassandra: {:.0}/s; the steady run below offers half of it. (The pre-staged {t:.0}/s drains \
         a backlog staged beforehand: a steady workload also stages every record, which that run \
         never pays.) Latency is staging commit → Cassandra commit, from the \
         `tributary_staged_to_committed_seconds` histogram (interpolated within buckets; target \
         p99 ≤ 1000 ms). RSS growth is the slope of RSS against records written after the first \
         tenth of the run (target: RSS ≤ 150 MiB and not growing with the records).\n",
        report.source_peak_per_s
    );
    let _ = writeln!(
        md,
        "| path | target/s | achieved/s | users | p50 ms | p95 ms | p99 ms | RSS first → last tenth MiB | peak MiB | MiB per million records |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |"
    );
    for s in &report.steady {
        let _ = writeln!(
            md,
            "| {} | {:.0} | {:.0} | {} | {:.0} | {:.0} | {:.0} | {:.0} → {:.0} | {:.0} | {:+.1} |",
            s.path,
            s.target_per_s,
            s.achieved_per_s,
            s.users,
            s.p50_ms,
            s.p95_ms,
            s.p99_ms,
            s.rss_first_tenth_mib,
            s.rss_last_tenth_mib,
            s.rss_peak_mib,
            s.rss_mib_per_million_records
        );
    }
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "![throughput](throughput.svg)\n\n![latency](latency.svg)\n\n![rss](rss.svg)\n"
    );
    let _ = writeln!(
        md,
        "Scaling note: every instance, Kafka, Cassandra and PostgreSQL share the same {} cores, \
         so more instances add consumers but no CPU.",
        report.machine.cores
    );
    std::fs::write(dir.join("report.md"), md)?;
    Ok(())
}

/// Where the CPU went: per 1,000 records, per process, in the end-to-end run and in the
/// best Cassandra ceiling run, and the rate the machine's cores allow at that cost.
fn cpu_table(md: &mut String, report: &Report) {
    let best = report
        .cassandra
        .iter()
        .max_by(|a, b| a.rows_per_s.total_cmp(&b.rows_per_s));
    let labels: Vec<String> = report
        .formats
        .iter()
        .map(|run| format!("tributary end to end, pre-staged, {}", run.format))
        .collect();
    let mut runs: Vec<(&str, &tributary_bench::cpu::Usage)> = report
        .formats
        .iter()
        .zip(&labels)
        .map(|(run, label)| (label.as_str(), &run.cpu))
        .collect();
    if runs.is_empty() {
        runs.push(("tributary end to end, pre-staged", &report.e2e.cpu));
    }
    if let Some(best) = best {
        runs.push(("raw Cassandra upserts (ceiling)", &best.cpu));
    }
    for steady in &report.steady {
        runs.push((steady.path.as_str(), &steady.cpu));
    }
    let mut groups: Vec<&String> = runs
        .iter()
        .flat_map(|(_, u)| u.per_1000_records.keys())
        .collect();
    groups.sort();
    groups.dedup();
    let cores = report.machine.cores as f64;
    let _ = writeln!(md, "\n## Where the CPU goes\n");
    let _ = writeln!(
        md,
        "CPU seconds per 1,000 records (utime + stime from /proc, child processes included). \
         Every process shares the same {} cores, so a run cannot go faster than \
         cores × 1,000 ÷ total records/s.\n",
        report.machine.cores
    );
    let header: Vec<String> = groups.iter().map(|g| format!("{g} s")).collect();
    let _ = writeln!(
        md,
        "| run | {} | total s | cores busy | bound by CPU, records/s |",
        header.join(" | ")
    );
    let _ = writeln!(
        md,
        "| --- |{}---: | ---: | ---: |",
        " ---: |".repeat(groups.len())
    );
    for (name, usage) in runs {
        let cells: Vec<String> = groups
            .iter()
            .map(|g| {
                usage
                    .per_1000_records
                    .get(*g)
                    .map_or_else(|| "–".into(), |v| format!("{v:.3}"))
            })
            .collect();
        let bound = if usage.total_per_1000_records > 0.0 {
            format!("{:.0}", cores * 1_000.0 / usage.total_per_1000_records)
        } else {
            "n/a".into()
        };
        let _ = writeln!(
            md,
            "| {name} | {} | {:.3} | {:.2} | {bound} |",
            cells.join(" | "),
            usage.total_per_1000_records,
            usage.cores_busy
        );
    }
}
