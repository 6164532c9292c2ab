//! The classic baseline: bench/baselines/spark (Spark Structured Streaming, pyspark 3.5,
//! spark-sql-kafka-0-10 and the DataStax Cassandra connector) on the same topic, writing
//! the same columns into its own keyspace. Its throughput is read from Cassandra's row
//! count over time, as tributary's is from its status.

use anyhow::Context as _;
use std::path::Path;
use std::time::{Duration, Instant};
use tributary::config::Config;
use tributary_actors::format::RecordFormat;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Spark {
    /// Rows per second from the first row in Cassandra to the last.
    pub records_per_s: f64,
    /// Seconds from spark-submit to exit (JVM start, dependency resolution included).
    pub wall_s: f64,
    pub rows: u64,
    /// (seconds since the first row, rows/s) samples for the chart.
    pub series: Vec<(f64, f64)>,
    pub error: Option<String>,
}

impl Spark {
    pub fn failed(error: String) -> Self {
        Self {
            records_per_s: 0.0,
            wall_s: 0.0,
            rows: 0,
            series: Vec::new(),
            error: Some(error),
        }
    }
}

async fn count(session: &scylla::client::session::Session, keyspace: &str) -> u64 {
    let Ok(result) = session
        .query_unpaged(format!("SELECT count(*) FROM {keyspace}.created_users"), ())
        .await
    else {
        return 0;
    };
    result
        .into_rows_result()
        .ok()
        .and_then(|r| r.single_row::<(i64,)>().ok())
        .map_or(0, |(n,)| n.max(0) as u64)
}

pub async fn run(source: &Config, users: u64, out: &Path) -> anyhow::Result<Spark> {
    let mut config = source.clone();
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    config.cassandra.keyspace = format!("bench_spark_{}", &suffix[..6]);
    tributary::schema::apply(&config, &[tributary_actors::store::Service::Cassandra]).await?;
    let session = tributary_actors::store::cassandra::connect(&config.cassandra).await?;
    let node = config
        .cassandra
        .contact_points
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:9042".into());
    let (host, port) = node.rsplit_once(':').unwrap_or((node.as_str(), "9042"));
    let checkpoint = out.join(format!("spark-checkpoint-{}", &suffix[..6]));
    let log = std::fs::File::create(out.join("spark.log"))?;
    let started = Instant::now();
    // Avro records are decoded with the schema Spark fetches from the registry.
    let (format, registry) = match source.kafka.record_format {
        RecordFormat::Avro => ("avro", source.kafka.registry.url.as_str()),
        RecordFormat::Json => ("json", ""),
    };
    let mut child = tokio::process::Command::new("bench/baselines/spark/run.sh")
        .args([
            config.kafka.bootstrap_servers.as_str(),
            source.kafka.topics.raw.name.as_str(),
            host,
            port,
            config.cassandra.keyspace.as_str(),
            &checkpoint.display().to_string(),
            format,
            registry,
        ])
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting bench/baselines/spark/run.sh")?;
    let mut samples: Vec<(f64, u64)> = Vec::new();
    let status = loop {
        tokio::select! {
            status = child.wait() => break status?,
            () = tokio::time::sleep(Duration::from_secs(2)) => {
                let rows = count(&session, &config.cassandra.keyspace).await;
                samples.push((started.elapsed().as_secs_f64(), rows));
            }
        }
        if started.elapsed() > Duration::from_secs(3_600) {
            let _ = child.kill().await;
            anyhow::bail!("spark did not finish within an hour");
        }
    };
    let wall_s = started.elapsed().as_secs_f64();
    let rows = count(&session, &config.cassandra.keyspace).await;
    samples.push((wall_s, rows));
    // Its keyspace goes with it, as every phase's does (see cleanup.rs).
    if let Err(error) = session
        .query_unpaged(
            format!("DROP KEYSPACE IF EXISTS {}", config.cassandra.keyspace),
            (),
        )
        .await
    {
        eprintln!("bench: clean-up of {}: {error}", config.cassandra.keyspace);
    }
    anyhow::ensure!(
        status.success(),
        "spark job exited with {status}: see {}",
        out.join("spark.log").display()
    );
    anyhow::ensure!(rows >= users, "spark wrote {rows} of {users} rows");
    let first = samples.iter().find(|s| s.1 > 0).map_or(0.0, |s| s.0);
    let last = samples
        .iter()
        .find(|s| s.1 >= users)
        .map_or(wall_s, |s| s.0);
    let series = samples
        .windows(2)
        .filter(|w| w[1].0 >= first)
        .map(|w| {
            (
                w[1].0 - first,
                w[1].1.saturating_sub(w[0].1) as f64 / (w[1].0 - w[0].0).max(1e-3),
            )
        })
        .collect();
    Ok(Spark {
        // A row count sample is 2 s apart: the first rows may have landed up to 2 s
        // before `first`, which flatters Spark slightly.
        records_per_s: users as f64 / (last - first).max(1e-3),
        wall_s,
        rows,
        series,
        error: None,
    })
}
