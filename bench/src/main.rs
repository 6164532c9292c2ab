//! `make bench`: tributary end to end against the physical limits (Kafka's own consumer,
//! the raw Cassandra write rate) and the classic Spark Structured Streaming job, on the
//! same machine in the same run. Writes target/bench/report.json, report.md and SVG
//! charts. A benchmark reports; it never fails on speed.

mod ceiling;
mod cleanup;
mod cpu;
mod prestage;
mod process;
mod report;
mod spark;
mod svg;

use anyhow::Context as _;
use clap::Parser;
use process::{Instance, Reading, sample_until};
use std::path::PathBuf;
use std::time::Duration;
use tributary::config::{Config, Sources};

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
    /// Minutes of the steady-rate run (half of the measured peak): latency and RSS.
    #[arg(long, default_value_t = 10.0)]
    steady_minutes: f64,
    /// Requests in flight tried for the raw Cassandra ceiling (the best is its value).
    #[arg(long, value_delimiter = ',', default_value = "64,256")]
    cassandra_concurrency: Vec<usize>,
    /// Rows per request tried for the raw Cassandra ceiling, each at every concurrency:
    /// one row per request, and the writer's `process.rows_per_request` (4).
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    cassandra_rows_per_request: Vec<usize>,
    /// Skip the Spark baseline (it downloads pyspark and connectors on first use).
    #[arg(long)]
    no_spark: bool,
    /// Only the end-to-end phase, printed, no report: the loop for profiling
    /// (`perf record -p` the tributary process while it runs).
    #[arg(long)]
    e2e_only: bool,
    /// The tributary binary to measure (a release build).
    #[arg(long, default_value = "target/release/tributary")]
    tributary: PathBuf,
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
}

const SEED: &str = "tributary-bench";

fn isolated(name: &str) -> anyhow::Result<Config> {
    let mut config = Config::load(&Sources::default()).context("configuration")?;
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    config.isolate(&format!("bench_{name}_{}", &suffix[..6]));
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

/// Records per second between the first reading with anything published and the first
/// with everything written.
fn sustained(readings: &[Reading], total: u64) -> f64 {
    let start = readings
        .iter()
        .find(|r| r.published > 0)
        .map_or(0.0, |r| r.t);
    let end = readings
        .iter()
        .find(|r| r.written >= total)
        .map_or_else(|| readings.last().map_or(0.0, |r| r.t), |r| r.t);
    if end > start {
        total as f64 / (end - start)
    } else {
        0.0
    }
}

/// One end-to-end measurement: its isolated names, readings, and the CPU every process
/// spent on it.
struct Run {
    config: Config,
    readings: Vec<Reading>,
    cpu: cpu::Usage,
}

/// Pre-stages `users`, runs `instances` tributary processes in one group until all are
/// written.
async fn end_to_end(args: &Args, name: &str, users: u64, instances: usize) -> anyhow::Result<Run> {
    let config = isolated(name)?;
    tributary::schema::apply(&config, &[])
        .await
        .context("schema apply")?;
    let runs = prestage::stage(&config, SEED, users).await?;
    eprintln!("bench: {name}: {users} users staged in {runs} runs; {instances} instance(s)");
    let env = run_env(
        &config,
        &[("TRIBUTARY__INGEST__MAX_RUNS", runs.to_string())],
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

/// Value of quantile `q` from a Prometheus histogram's cumulative buckets, linearly
/// interpolated inside the bucket (as PromQL's histogram_quantile does).
fn quantile(metrics: &str, name: &str, q: f64) -> Option<f64> {
    let mut buckets: Vec<(f64, f64)> = metrics
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&format!("{name}_bucket{{le=\""))?;
            let (le, value) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, value.trim().parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut previous = (0.0, 0.0);
    for &(le, count) in &buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(previous.0);
            }
            let span = (count - previous.1).max(1e-9);
            return Some(previous.0 + (le - previous.0) * (rank - previous.1) / span);
        }
        previous = (le, count);
    }
    None
}

/// A steady run at `rate` users/s through the embedded source for `minutes`: latency
/// from the staging commit to the Cassandra commit, and RSS over time.
async fn steady(args: &Args, rate: f64) -> anyhow::Result<report::Steady> {
    let config = isolated("steady")?;
    tributary::schema::apply(&config, &[])
        .await
        .context("schema apply")?;
    let (source, address) = tributary::source::server::spawn_on_loopback(&config.source)?;
    // Small runs often, as one would poll an API: a run of 5,000 users every 500 ms
    // holds several MB of JSON per run in flight and adds its staging time to latency.
    let interval_ms = 100u64;
    let per_run = ((rate * interval_ms as f64 / 1000.0).round() as u64).clamp(1, 5_000);
    let runs = ((args.steady_minutes * 60_000.0) / interval_ms as f64).ceil() as u64;
    let users = runs * per_run;
    eprintln!(
        "bench: steady: {per_run} users every {interval_ms} ms (≈{:.0}/s) for {} min",
        per_run as f64 * 1000.0 / interval_ms as f64,
        args.steady_minutes
    );
    let env = run_env(
        &config,
        &[
            (
                "TRIBUTARY__INGEST__SOURCE_URL",
                format!("http://{address}/api/"),
            ),
            ("TRIBUTARY__INGEST__INTERVAL_MS", interval_ms.to_string()),
            ("TRIBUTARY__INGEST__USERS_PER_RUN", per_run.to_string()),
            ("TRIBUTARY__INGEST__MAX_RUNS", runs.to_string()),
            ("TRIBUTARY__INGEST__CATCH_UP", "latest".into()),
        ],
    );
    settle().await;
    let before = cpu::sample(&[], Some("bench source"));
    let mut running = vec![Instance::start(&args.tributary, "steady", &env, &args.out)?];
    let limit = Duration::from_secs_f64(args.steady_minutes * 60.0 + 600.0);
    let readings = sample_until(&mut running, Duration::from_secs(1), limit, |r| {
        r.written >= users
    })
    .await?;
    let http = reqwest::Client::new();
    let metrics = running[0].metrics(&http).await?;
    let pids = [running[0].pid()];
    let after = cpu::sample(&[("tributary", &pids)], Some("bench source"));
    let seconds = readings.last().map_or(0.0, |r| r.t);
    let latency =
        |q| quantile(&metrics, "tributary_staged_to_committed_seconds", q).unwrap_or(f64::NAN);
    let (p50, p95, p99) = (latency(0.50), latency(0.95), latency(0.99));
    for instance in running {
        instance.stop();
    }
    source.stop(true).await;
    cleanup::tidy(&config).await;
    let rss: Vec<f64> = readings.iter().map(|r| r.rss_mib).collect();
    let tenth = (rss.len() / 10).max(1);
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len().max(1) as f64;
    Ok(report::Steady {
        target_per_s: per_run as f64 * 1000.0 / interval_ms as f64,
        users,
        seconds,
        p50_ms: p50 * 1000.0,
        p95_ms: p95 * 1000.0,
        p99_ms: p99 * 1000.0,
        rss_first_tenth_mib: mean(&rss[..tenth.min(rss.len())]),
        rss_last_tenth_mib: mean(&rss[rss.len().saturating_sub(tenth)..]),
        rss_peak_mib: rss.iter().copied().fold(0.0, f64::max),
        cpu: cpu::usage(&before, &after, users, seconds),
        readings,
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

    // 5. Steady rate at half the peak: latency and memory over time.
    let steady = steady(&args, e2e_rate / 2.0).await?;
    eprintln!(
        "bench: steady: p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, RSS {:.0} → {:.0} MiB",
        steady.p50_ms,
        steady.p95_ms,
        steady.p99_ms,
        steady.rss_first_tenth_mib,
        steady.rss_last_tenth_mib
    );

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
        kafka,
        cassandra,
        spark,
        scaling,
        steady,
    };
    report::write(&args.out, &report)?;
    eprintln!("bench: report in {}", args.out.join("report.md").display());
    Ok(())
}
