//! What the soak samples: records in and out, tributary's RSS, PostgreSQL's table and
//! index sizes, Cassandra's and Kafka's disk, lag, the reconciler's findings, and the
//! latency of each window from the process's histogram.

use crate::instance::Run;
use crate::settings::Settings;
use crate::watch::Progressor;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tributary::config::Config;
use tributary_actors::upkeep::summary::{self, Reconciliation};

const LATENCY: &str = "tributary_staged_to_committed_seconds";

/// One reading.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sample {
    pub t_s: f64,
    /// Users ever staged, and committed in Cassandra.
    pub staged: u64,
    pub written: u64,
    pub lag: Option<i64>,
    pub rss_mib: Option<f64>,
    /// Per table: (table bytes, index bytes).
    pub postgres: BTreeMap<String, (i64, i64)>,
    pub postgres_mib: f64,
    /// CPU seconds each component has used so far (all its processes): `postgres`,
    /// `kafka`, `cassandra` and the sampled `tributary` instance. A restart starts its
    /// count again from zero.
    pub cpu_s: BTreeMap<String, f64>,
    /// The sampled tributary instance: its CPU counts only between samples of one
    /// process (a successor's total may exceed its predecessor's).
    pub tributary_pid: Option<u32>,
    pub outbox_rows: Option<i64>,
    pub cassandra_mib: f64,
    pub kafka_mib: f64,
    pub unreconciled: Option<u64>,
    pub reconcile_failed_runs: Option<u64>,
}

/// Latency of one window, from the histogram's buckets at its two ends.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyWindow {
    pub end_s: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// Latency windows of one length, closed one after another.
pub struct Windows {
    length: Duration,
    /// The open window's start: when, which process, its histogram then.
    open: Option<(Instant, u32, String)>,
    pub closed: Vec<LatencyWindow>,
}

impl Windows {
    pub fn new(length: Duration) -> Windows {
        Windows {
            length,
            open: None,
            closed: Vec::new(),
        }
    }

    /// Closes the open window once it is `length` old, from the histogram in `metrics`
    /// of process `pid`.
    fn observe(&mut self, pid: u32, metrics: &str, started: Instant) {
        let now = Instant::now();
        match &self.open {
            None => self.open = Some((now, pid, metrics.to_owned())),
            Some((since, _, _)) if now.duration_since(*since) < self.length => {}
            Some((_, window_pid, before)) => {
                // A new process started its histogram from zero: count it alone.
                let before = if *window_pid == pid {
                    before.as_str()
                } else {
                    ""
                };
                let ms = |q| {
                    tributary_bench::histogram::quantile_between(before, metrics, LATENCY, q)
                        .map(|s| s * 1_000.0)
                };
                self.closed.push(LatencyWindow {
                    end_s: started.elapsed().as_secs_f64(),
                    p50_ms: ms(0.5),
                    p99_ms: ms(0.99),
                });
                self.open = Some((now, pid, metrics.to_owned()));
            }
        }
    }
}

pub struct Sampler<'a> {
    config: &'a Config,
    progress: Progressor<'a>,
    postgres: Option<tokio_postgres::Client>,
    http: reqwest::Client,
    stack_dir: PathBuf,
    /// The report's windows (5 minutes in an hour-long soak).
    pub windows: Windows,
    /// The trend's windows: shorter, so that the few windows a fault stops the pipeline
    /// in are a minority of each third (see `report::trend`).
    pub trend_windows: Windows,
    /// Aggregate checks the reconciler completed (distinct check times seen).
    pub aggregate_checks: u64,
    last_check: Option<chrono::DateTime<chrono::Utc>>,
}

impl<'a> Sampler<'a> {
    pub async fn new(config: &'a Config, _settings: &Settings) -> Sampler<'a> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        Sampler {
            config,
            progress: Progressor {
                config,
                probe: None,
            },
            postgres: None,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            stack_dir: std::env::var_os("TRIBUTARY_STACK_DIR")
                .map_or_else(|| root.join(".stack"), PathBuf::from),
            windows: Windows::new(Duration::from_secs(300)),
            trend_windows: Windows::new(Duration::from_secs(60)),
            aggregate_checks: 0,
            last_check: None,
        }
    }

    async fn client(&mut self) -> Option<&tokio_postgres::Client> {
        if self
            .postgres
            .as_ref()
            .is_none_or(tokio_postgres::Client::is_closed)
        {
            self.postgres = tributary_actors::store::postgres::connect(&self.config.postgres)
                .await
                .ok();
        }
        self.postgres.as_ref()
    }

    /// The reconciler's findings, from the ledger.
    pub async fn reconciliation(&mut self, _run: &Run<'_>) -> Option<Reconciliation> {
        let after_ms = 15_000;
        let client = self.client().await?;
        let found = summary::reconciliation(client, after_ms).await;
        if found.is_err() {
            self.postgres = None;
        }
        let found = found.ok()?;
        if let Some(check) = &found.aggregates
            && self.last_check != Some(check.checked_at)
        {
            self.last_check = Some(check.checked_at);
            self.aggregate_checks += 1;
        }
        Some(found)
    }

    pub async fn take(&mut self, run: &Run<'_>, started: Instant) -> Sample {
        let mut sample = Sample {
            t_s: started.elapsed().as_secs_f64(),
            ..Sample::default()
        };
        if let Some(p) = self.progress.read().await {
            sample.staged = p.staged.unsigned_abs();
            sample.written = p.written.unsigned_abs();
        }
        let instance = run.instances.last();
        if let Some(instance) = instance {
            sample.rss_mib = rss_mib(instance.pid());
            if let Some(status) = self.get(&instance.url("/api/status")).await {
                sample.lag = serde_json::from_str::<serde_json::Value>(&status)
                    .ok()
                    .and_then(|s| s["lag"].as_i64());
            }
            if let Some(metrics) = self.get(&instance.url("/metrics")).await {
                self.windows.observe(instance.pid(), &metrics, started);
                self.trend_windows
                    .observe(instance.pid(), &metrics, started);
            }
        }
        let schema = self.config.postgres.schema.clone();
        if let Some(client) = self.client().await {
            if let Ok(rows) = client
                .query(
                    "SELECT c.relname::text, pg_table_size(c.oid), pg_indexes_size(c.oid) \
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = $1 AND c.relkind = 'r'",
                    &[&schema],
                )
                .await
            {
                sample.postgres = rows
                    .iter()
                    .map(|r| (r.get::<_, String>(0), (r.get(1), r.get(2))))
                    .collect();
            }
            sample.outbox_rows = client
                .query_one("SELECT count(*) FROM staged_users", &[])
                .await
                .ok()
                .map(|r| r.get(0));
        }
        sample.tributary_pid = instance.map(|i| i.pid());
        let tributary: Vec<u32> = sample.tributary_pid.into_iter().collect();
        sample.cpu_s = tributary_bench::cpu::sample(&[("tributary", &tributary)], None).into_map();
        sample.postgres_mib = sample
            .postgres
            .values()
            .map(|(t, i)| (t + i) as f64)
            .sum::<f64>()
            / MIB;
        if let Some(r) = self.reconciliation(run).await {
            sample.unreconciled = Some(r.unreconciled);
            sample.reconcile_failed_runs = Some(r.failed_runs.values().sum());
        }
        let keyspace = &self.config.cassandra.keyspace;
        sample.cassandra_mib =
            dir_bytes(&self.stack_dir.join("cassandra/data").join(keyspace)) / MIB;
        let topics = &self.config.kafka.topics;
        sample.kafka_mib = [&topics.raw.name, &topics.dlq.name, &topics.checkpoints.name]
            .iter()
            .map(|topic| topic_bytes(&self.stack_dir.join("kafka/data"), topic))
            .sum::<f64>()
            / MIB;
        sample
    }

    async fn get(&self, url: &str) -> Option<String> {
        self.http.get(url).send().await.ok()?.text().await.ok()
    }
}

const MIB: f64 = 1_048_576.0;

fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1_024.0)
}

/// Bytes of every file under `dir` (0 when it is not there).
fn dir_bytes(dir: &Path) -> f64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0.0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&entry.path()),
            Ok(m) => m.len() as f64,
            Err(_) => 0.0,
        })
        .sum()
}

/// Bytes of a topic's partition directories (`<topic>-<partition>`) under Kafka's log
/// directory.
fn topic_bytes(log_dir: &Path, topic: &str) -> f64 {
    let Ok(entries) = std::fs::read_dir(log_dir) else {
        return 0.0;
    };
    entries
        .flatten()
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .and_then(|name| name.strip_prefix(topic))
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|partition| partition.parse::<u32>().is_ok())
        })
        .map(|entry| dir_bytes(&entry.path()))
        .sum()
}
