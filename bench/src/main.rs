//! `make bench`: tributary end to end against the physical limits (Kafka's own consumer,
//! the raw Cassandra write rate) and the classic Spark Structured Streaming job, on the
//! same machine in the same run. Writes target/bench/report.json, report.md and SVG
//! charts. A benchmark reports; it never fails on speed.

mod ceiling;
mod cleanup;
mod prestage;
mod process;
mod report;
mod spark;
mod steady;

use anyhow::Context as _;
use clap::Parser;
use process::{Instance, Reading, sample_until};
use std::path::PathBuf;
use std::time::Duration;
use tributary::config::{Config, Sources};
use tributary_actors::format::RecordFormat;
use tributary_bench::cpu;

#[derive(Debug, Parser)]
#[command(name = "tributary-bench", about)]
struct Args {
    /// Users pre-staged for the end-to-end and ceiling phases.
    #[arg(long, default_value_t = 200_000)]
    users: u64,
    /// Users pre-staged per scaling measurement.
    #[arg(long, default_value_t = 100_000)]
    scaling_users: u64,
    /// Instance counts of the scaling phase (one consumer group).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    instances: Vec<usize>,
    /// Minutes of the steady run at half of the peak through the embedded source:
    /// latency at half of peak load, and RSS over time.
    #[arg(long, default_value_t = 10.0)]
    steady_minutes: f64,
    /// Users fetched through the embedded source to measure the peak with ingestion.
    #[arg(long, default_value_t = 100_000)]
    source_peak_users: u64,
    /// Requests in flight tried for the raw Cassandra ceiling (the best is its value).
    #[arg(long, value_delimiter = ',', default_value = "64,256")]
    cassandra_concurrency: Vec<usize>,
    /// Rows per request tried for the raw Cassandra ceiling, each at every concurrency:
    /// one row per request, and the writer's `process.rows_per_request` (4).
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    cassandra_rows_per_request: Vec<usize>,
    /// Users of the discarded warm-up run: the JVMs (Cassandra, Kafka) compile their hot
    /// paths during the first heavy load after a start, at several times the CPU per
    /// record (measured: Cassandra 0.128 instead of 0.045 CPU-s per 1,000 rows). 0 skips it.
    #[arg(long, default_value_t = 100_000)]
    warmup_users: u64,
    /// Record formats of users.raw measured end to end (`kafka.record_format`): the first
    /// is the main end-to-end run (its topic feeds the ceilings and Spark), the others are
    /// measured on the same number of users for the comparison.
    #[arg(long, value_delimiter = ',', default_value = "avro,json")]
    formats: Vec<Format>,
    /// Skip the Spark baseline (it downloads pyspark and connectors on first use).
    #[arg(long)]
    no_spark: bool,
    /// Only the end-to-end phase, printed, no report: the loop for profiling
    /// (`perf record -p` the tributary process while it runs).
    #[arg(long)]
    e2e_only: bool,
    /// Only a steady run fed straight into the outbox (the bench stages a run every
    /// 100 ms) at this many records/s for `--steady-minutes`, printed, no report: the
    /// loop for tuning latency and memory without the source.
    #[arg(long)]
    steady_only: Option<f64>,
    /// The tributary binary to measure (a release build).
    #[arg(long, default_value = "target/release/tributary")]
    tributary: PathBuf,
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
}

const SEED: &str = "tributary-bench";

/// `--formats`: the values of `kafka.record_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Avro,
    Json,
}

impl Format {
    fn record_format(self) -> RecordFormat {
        match self {
            Format::Avro => RecordFormat::Avro,
            Format::Json => RecordFormat::Json,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::Avro => "avro",
            Format::Json => "json",
        }
    }
}

fn isolated(name: &str) -> anyhow::Result<Config> {
    let mut config = Config::load(&Sources::default()).context("configuration")?;
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    config.isolate(&format!("{}{name}_{}", cleanup::PREFIX, &suffix[..6]));
    Ok(config)
}

/// The environment of a measured `tributary run`: isolated names, no trace export (the
/// cost of tracing is not what is measured), JSON logs, admin on a free port.
fn run_env(config: &Config, extra: &[(&str, String)]) -> Vec<(String, String)> {
    let mut env = config.names_env();
    for (k, v) in [
        ("TRIBUTARY__TELEMETRY__OTLP_ENDPOINT", String::new()),
        ("TRIBUTARY__TELEMETRY__LOG_FORMAT", "json".into()),
        ("TRIBUTARY__ADMIN__BIND", "127.0.0.1:0".into()),
    ] {
        env.push((k.into(), v));
    }
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    env
}

/// Before a measured phase: lets the stack finish what earlier work left it (Cassandra
/// compacting and flushing after a large write can take a core for a minute).
async fn settle() {
    let busy = cpu::wait_idle(0.15, Duration::from_secs(180)).await;
    eprintln!("bench: stack settled: {busy:.2} cores busy before the phase");
}

/// Records per second from the first publish to the last Cassandra commit. Each moment
/// is taken halfway between the two readings around it (they come every half second).
/// A run over between two readings gets the interval between them: a lower bound.
fn sustained(readings: &[Reading], total: u64) -> f64 {
    let (Some(start), Some(end)) = (
        crossing(readings, |r| r.published > 0),
        crossing(readings, |r| r.written >= total),
    ) else {
        return 0.0;
    };
    let seconds = if end.halfway() > start.halfway() {
        end.halfway() - start.halfway()
    } else {
        end.after - end.before
    };
    if seconds > 0.0 {
        total as f64 / seconds
    } else {
        0.0
    }
}

/// When a condition first held, as far as the readings tell.
struct Crossing {
    /// The last reading before it held.
    before: f64,
    /// The first reading where it held.
    after: f64,
}

impl Crossing {
    fn halfway(&self) -> f64 {
        (self.before + self.after) / 2.0
    }
}

fn crossing(readings: &[Reading], reached: impl Fn(&Reading) -> bool) -> Option<Crossing> {
    let first = readings.iter().position(reached)?;
    let after = readings[first].t;
    let before = first.checked_sub(1).map_or(after, |i| readings[i].t);
    Some(Crossing { before, after })
}

/// One end-to-end measurement: its isolated names, readings, and the CPU every process
/// spent on it.
struct Run {
    config: Config,
    readings: Vec<Reading>,
    cpu: cpu::Usage,
}

/// Pre-stages `users`, runs `instances` tributary processes in one group until all are
/// written, in the first of `--formats`.
async fn end_to_end(args: &Args, name: &str, users: u64, instances: usize) -> anyhow::Result<Run> {
    let format = args.formats.first().copied().unwrap_or(Format::Avro);
    end_to_end_in(args, name, users, instances, format).await
}

/// [`end_to_end`] with users.raw in `format`.
async fn end_to_end_in(
    args: &Args,
    name: &str,
    users: u64,
    instances: usize,
    format: Format,
) -> anyhow::Result<Run> {
    let mut config = isolated(name)?;
    config.kafka.record_format = format.record_format();
    tributary::schema::apply(&config, &[])
        .await
        .context("schema apply")?;
    let runs = prestage::stage(&config, SEED, users).await?;
    eprintln!(
        "bench: {name}: {users} users staged in {runs} runs; {instances} instance(s); users.raw in {}",
        format.name()
    );
    let env = run_env(
        &config,
        &[
            ("TRIBUTARY__INGEST__MAX_RUNS", runs.to_string()),
            ("TRIBUTARY__KAFKA__RECORD_FORMAT", format.name().to_owned()),
        ],
    );
    settle().await;
    let before = cpu::sample(&[], None);
    let mut running = Vec::new();
    for n in 0..instances {
        running.push(Instance::start(
            &args.tributary,
            &format!("{name}-{n}"),
            &env,
            &args.out,
        )?);
    }
    let readings = sample_until(
        &mut running,
        Duration::from_millis(500),
        Duration::from_secs(1_800),
        |r| r.written >= users,
    )
    .await?;
    let pids: Vec<u32> = running.iter().map(Instance::pid).collect();
    let after = cpu::sample(&[("tributary", &pids)], None);
    for instance in running {
        instance.stop();
    }
    let wall = readings.last().map_or(0.0, |r| r.t);
    Ok(Run {
        config,
        readings,
        cpu: cpu::usage(&before, &after, users, wall),
    })
}

fn machine() -> report::Machine {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let memory_gib =
        process::proc_kib("/proc/meminfo", "MemTotal:").map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_default();
    report::Machine {
        cores,
        memory_gib,
        cpu,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tributary_actors::install_tls_provider();
    std::fs::create_dir_all(&args.out)?;
    anyhow::ensure!(
        args.tributary.exists(),
        "{} missing: build it with cargo build --release",
        args.tributary.display()
    );

    let base = Config::load(&Sources::default()).context("configuration")?;
    match cleanup::leftovers(&base).await {
        Ok(0) => {}
        Ok(n) => eprintln!("bench: dropped {n} keyspaces, schemas and topics an earlier run left"),
        Err(error) => eprintln!("bench: could not look for an earlier run's leftovers: {error:#}"),
    }
    if args.warmup_users > 0 {
        let warm = end_to_end(&args, "warmup", args.warmup_users, 1).await?;
        cleanup::tidy(&warm.config).await;
        eprintln!(
            "bench: warm-up: {:.0} records/s, Cassandra {:.3} CPU-s per 1,000 (discarded)",
            sustained(&warm.readings, args.warmup_users),
            warm.cpu
                .per_1000_records
                .get("cassandra")
                .copied()
                .unwrap_or(0.0)
        );
    }

    if let Some(rate) = args.steady_only {
        let run = steady::outbox(&args, rate).await?;
        eprintln!(
            "bench: steady: {:.0}/s achieved, p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, RSS {:.0} → {:.0} MiB (peak {:.0}, {:+.1} MiB per million records)",
            run.achieved_per_s,
            run.p50_ms,
            run.p95_ms,
            run.p99_ms,
            run.rss_first_tenth_mib,
            run.rss_last_tenth_mib,
            run.rss_peak_mib,
            run.rss_mib_per_million_records
        );
        eprintln!(
            "bench: steady: CPU s per 1,000 records {:?}, {:.2} cores busy",
            run.cpu.per_1000_records, run.cpu.cores_busy
        );
        return Ok(());
    }

    // 1. End to end, pre-staged: the source is not the bottleneck.
    let Run {
        config: e2e_config,
        readings: e2e,
        cpu: e2e_cpu,
    } = end_to_end(&args, "e2e", args.users, 1).await?;
    let e2e_rate = sustained(&e2e, args.users);
    let e2e_rss = e2e.iter().map(|r| r.rss_mib).fold(0.0, f64::max);
    eprintln!("bench: e2e: {e2e_rate:.0} records/s, peak RSS {e2e_rss:.0} MiB");
    eprintln!(
        "bench: e2e: CPU s per 1,000 records {:?}, {:.2} cores busy",
        e2e_cpu.per_1000_records, e2e_cpu.cores_busy
    );
    let report_check = tributary::verify::verify(&e2e_config).await?;
    anyhow::ensure!(
        report_check.is_clean(),
        "verify after the e2e phase: {report_check:?}"
    );
    // The same users in the other record formats: what the encoding costs.
    let main_format = args.formats.first().copied().unwrap_or(Format::Avro);
    let mut formats = vec![report::FormatRun {
        format: main_format.name().into(),
        records_per_s: e2e_rate,
        cpu: e2e_cpu.clone(),
    }];
    for &format in args.formats.iter().skip(1) {
        let run = end_to_end_in(
            &args,
            &format!("e2e_{}", format.name()),
            args.users,
            1,
            format,
        )
        .await?;
        let rate = sustained(&run.readings, args.users);
        eprintln!(
            "bench: e2e in {}: {rate:.0} records/s, CPU s per 1,000 records {:?}",
            format.name(),
            run.cpu.per_1000_records
        );
        cleanup::tidy(&run.config).await;
        formats.push(report::FormatRun {
            format: format.name().into(),
            records_per_s: rate,
            cpu: run.cpu,
        });
    }
    if args.e2e_only {
        for r in e2e.iter().step_by(2) {
            eprintln!(
                "  t={:5.1}s published={:7} written={:7} rss={:4.0} MiB",
                r.t, r.published, r.written, r.rss_mib
            );
        }
        cleanup::tidy(&e2e_config).await;
        return Ok(());
    }

    // 2. The limits, on the same data.
    let kafka = ceiling::kafka_consumer(
        &e2e_config,
        &e2e_config.kafka.topics.raw.name,
        args.users,
        &args.out,
    )?;
    eprintln!(
        "bench: kafka consumer ceiling: {:.0} records/s",
        kafka.records_per_s
    );
    let ceiling_config = isolated("ceiling")?;
    tributary::schema::apply(
        &ceiling_config,
        &[tributary_actors::store::Service::Cassandra],
    )
    .await?;
    let rows = ceiling::rows(SEED, args.users, &ceiling_config.kafka.topics.raw.name)?;
    let mut cassandra = Vec::new();
    for &rows_per_request in &args.cassandra_rows_per_request {
        for &concurrency in &args.cassandra_concurrency {
            settle().await;
            let result =
                ceiling::cassandra_writes(&ceiling_config, &rows, rows_per_request, concurrency)
                    .await?;
            eprintln!(
                "bench: cassandra ceiling, {rows_per_request} row(s)/request, {concurrency} in flight: {:.0} rows/s",
                result.rows_per_s
            );
            cassandra.push(result);
        }
    }
    drop(rows);
    cleanup::tidy(&ceiling_config).await;

    // 3. The classic baseline on the same topic.
    let spark = if args.no_spark {
        None
    } else {
        match spark::run(&e2e_config, args.users, &args.out).await {
            Ok(result) => {
                eprintln!(
                    "bench: spark: {:.0} records/s ({:.0} s wall)",
                    result.records_per_s, result.wall_s
                );
                Some(result)
            }
            Err(error) => {
                eprintln!("bench: spark baseline failed: {error:#}");
                Some(spark::Spark::failed(format!("{error:#}")))
            }
        }
    };

    cleanup::tidy(&e2e_config).await;

    // 4. Scaling within one consumer group.
    let mut scaling = Vec::new();
    for &instances in &args.instances {
        let run = end_to_end(
            &args,
            &format!("scale{instances}"),
            args.scaling_users,
            instances,
        )
        .await?;
        let rate = sustained(&run.readings, args.scaling_users);
        cleanup::tidy(&run.config).await;
        eprintln!("bench: {instances} instance(s): {rate:.0} records/s");
        scaling.push(report::Scaling {
            instances,
            users: args.scaling_users,
            records_per_s: rate,
        });
    }

    // 5. The peak with ingestion included, then a steady run at half of it: latency and
    // memory over time. (The pre-staged rate drains a backlog staged beforehand; a steady
    // workload also fetches and stages every record, which the pre-staged run never pays.)
    let source_peak = steady::source_peak(&args, args.source_peak_users).await?;
    eprintln!("bench: peak through the embedded source: {source_peak:.0} records/s");
    let steady = vec![steady::source(&args, source_peak / 2.0, args.steady_minutes).await?];
    for s in &steady {
        eprintln!(
            "bench: steady ({}): {:.0}/s, p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, RSS {:.0} → {:.0} MiB ({:+.1} MiB per million records)",
            s.path,
            s.achieved_per_s,
            s.p50_ms,
            s.p95_ms,
            s.p99_ms,
            s.rss_first_tenth_mib,
            s.rss_last_tenth_mib,
            s.rss_mib_per_million_records
        );
    }

    let report = report::Report {
        machine: machine(),
        versions: report::versions(),
        users: args.users,
        e2e: report::EndToEnd {
            records_per_s: e2e_rate,
            peak_rss_mib: e2e_rss,
            cpu: e2e_cpu,
            readings: e2e,
        },
        formats,
        kafka,
        cassandra,
        spark,
        scaling,
        source_peak_per_s: source_peak,
        steady,
    };
    report::write(&args.out, &report)?;
    eprintln!("bench: report in {}", args.out.join("report.md").display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(t: f64, published: u64, written: u64) -> Reading {
        Reading {
            t,
            published,
            written,
            rss_mib: 0.0,
        }
    }

    #[test]
    fn sustained_rate_runs_between_the_midpoints_of_the_bracketing_readings() {
        let readings = [
            reading(0.0, 0, 0),
            reading(1.0, 500, 0),
            reading(2.0, 1_000, 600),
            reading(3.0, 1_000, 1_000),
        ];
        // From 0.5 s to 2.5 s.
        assert!((sustained(&readings, 1_000) - 500.0).abs() < 1e-9);
        // A run over between two readings: at least its records in that interval.
        let quick = [reading(0.0, 0, 0), reading(0.5, 100, 100)];
        assert!((sustained(&quick, 100) - 200.0).abs() < 1e-9);
        // Never done: no rate.
        assert_eq!(sustained(&readings, 5_000), 0.0);
    }
}
