//! The physical limits, measured in the same run: Kafka's own consumer on the same topic,
//! and the raw Cassandra write rate of the writer's exact upserts (same statement, same
//! requests) with nothing around them.

use anyhow::Context as _;
use std::path::PathBuf;
use std::time::Instant;
use tributary::config::Config;
use tributary_actors::model::{CreatedUser, Provenance, RawUser};
use tributary_actors::process::rows::Upserts;

/// What Kafka's ConsumerPerformance reported.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KafkaCeiling {
    pub messages: u64,
    /// Records per second over the whole run, group join included.
    pub records_per_s: f64,
    /// Records per second while fetching (rebalance time excluded).
    pub fetch_records_per_s: f64,
}

fn cache_dir() -> PathBuf {
    std::env::var_os("TRIBUTARY_CACHE_DIR").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/tributary"),
        PathBuf::from,
    )
}

/// Java 17, as the stack runs Kafka with it.
pub fn java() -> PathBuf {
    for dir in [
        "/usr/lib/jvm/java-17-openjdk-amd64",
        "/usr/lib/jvm/java-17-openjdk-arm64",
    ] {
        let java = PathBuf::from(dir).join("bin/java");
        if java.exists() {
            return java;
        }
    }
    PathBuf::from("java")
}

/// org.apache.kafka.tools.ConsumerPerformance (kafka-tools, on the stack's Kafka
/// classpath) reading `topic` from the beginning with read_committed, like tributary.
pub fn kafka_consumer(
    config: &Config,
    topic: &str,
    messages: u64,
    out: &std::path::Path,
) -> anyhow::Result<KafkaCeiling> {
    let lib = cache_dir().join("kafka-4.1.1/lib");
    anyhow::ensure!(lib.exists(), "{} missing: run make stack-up", lib.display());
    let props = out.join("consumer-perf.properties");
    std::fs::write(
        &props,
        "isolation.level=read_committed\nauto.offset.reset=earliest\n",
    )?;
    let output = std::process::Command::new(java())
        .args(["-Xmx512m", "-cp", &format!("{}/*", lib.display())])
        .arg("org.apache.kafka.tools.ConsumerPerformance")
        .args(["--bootstrap-server", &config.kafka.bootstrap_servers])
        .args(["--topic", topic])
        .args(["--messages", &messages.to_string()])
        .args([
            "--group",
            &format!("bench-perf-{}", uuid::Uuid::new_v4().simple()),
        ])
        .args(["--consumer.config", &props.display().to_string()])
        .args(["--timeout", "60000"])
        .output()
        .context("running ConsumerPerformance")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "ConsumerPerformance failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg,
    // nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.split(',').count() >= 10 && !l.starts_with("start.time"))
        .context("no result line from ConsumerPerformance")?;
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    Ok(KafkaCeiling {
        messages: fields[4].parse()?,
        records_per_s: fields[5].parse()?,
        fetch_records_per_s: fields[9].parse()?,
    })
}

/// The raw Cassandra ceiling at one concurrency.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CassandraCeiling {
    pub rows_per_request: usize,
    /// Requests in flight.
    pub concurrency: usize,
    pub rows: usize,
    pub rows_per_s: f64,
    /// CPU of Cassandra (and of this client, as `bench client`) per 1,000 rows.
    pub cpu: tributary_bench::cpu::Usage,
}

/// The writer's rows for `users` generated users of `seed` (same data as the pipeline).
pub fn rows(seed: &str, users: u64, topic: &str) -> anyhow::Result<Vec<CreatedUser>> {
    let mut rows = Vec::with_capacity(users as usize);
    for n in 0..users {
        let (page, index) = (n / 1_000 + 1, n % 1_000);
        let user = tributary::source::generate::user(
            seed,
            u32::try_from(page)?,
            u32::try_from(index)?,
            &[],
        );
        let text = user.to_json();
        let raw = RawUser::parse(&text).map_err(anyhow::Error::msg)?;
        let provenance = Provenance {
            topic: topic.to_owned(),
            partition: (n % 6) as i32,
            offset: i64::try_from(n)?,
            timestamp_ms: chrono::Utc::now().timestamp_millis(),
            staged_at_ms: None,
            run_id: Some(i64::try_from(page)?),
        };
        rows.push(CreatedUser::from_raw(&raw, provenance).map_err(anyhow::Error::msg)?);
    }
    Ok(rows)
}

/// Upserts `rows` into `config`'s keyspace through one scylla session exactly as the
/// writer does ([`Upserts`]: `rows_per_request` rows of one replica set per request),
/// `concurrency` requests in flight: no actors, no Kafka, no commits.
pub async fn cassandra_writes(
    config: &Config,
    rows: &[CreatedUser],
    rows_per_request: usize,
    concurrency: usize,
) -> anyhow::Result<CassandraCeiling> {
    let session = tributary_actors::store::cassandra::connect(&config.cassandra).await?;
    let upserts = Upserts::prepare(&session, &config.cassandra.keyspace, rows_per_request).await?;
    let before = tributary_bench::cpu::sample(&[], Some("bench client"));
    let started = Instant::now();
    upserts.write(&session, rows, concurrency).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let after = tributary_bench::cpu::sample(&[], Some("bench client"));
    Ok(CassandraCeiling {
        rows_per_request,
        concurrency,
        rows: rows.len(),
        rows_per_s: rows.len() as f64 / elapsed,
        cpu: tributary_bench::cpu::usage(&before, &after, rows.len() as u64, elapsed),
    })
}
