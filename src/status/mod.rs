//! The status of a running instance: what `/api/status` serves, the dashboard draws and
//! `tributary status` prints as tables.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tributary_actors::ingest::ledger::{self, RunStatus, RunsSummary};
use tributary_actors::observe::{
    self, Consumption, ConsumptionStatus, PartitionStatus, Partitions, Stage,
};
use tributary_actors::supervisor::{KindStats, RestartStats, TreeNode};
use tributary_actors::upkeep::summary::{self, Reconciliation};

/// Seconds of per-second samples kept for throughput and the dashboard's chart.
mod render;

pub use render::render;

const HISTORY_SECONDS: usize = 120;
/// Throughput is averaged over this many seconds.
const THROUGHPUT_WINDOW: usize = 10;

/// Everything the status API reads, shared with the actor tree.
#[derive(Clone)]
pub struct Observed {
    pub tree: RestartStats,
    pub partitions: Partitions,
    /// The consumption monitor's readings: lag of every partition, stalls.
    pub consumption: Consumption,
    pub instance: String,
    started: Instant,
    samples: Arc<Mutex<VecDeque<Sample>>>,
    /// The runs ledger at the last look (every [`RUNS_REFRESH`]); `None` before the
    /// first, or while PostgreSQL does not answer.
    runs: Arc<Mutex<Option<RunsSummary>>>,
    /// The reconciler's findings at the last look, refreshed with `runs`.
    reconciliation: Arc<Mutex<Option<Reconciliation>>>,
}

/// How often the runs ledger is summarised for the status API.
const RUNS_REFRESH: Duration = Duration::from_secs(2);

/// Totals per stage at one moment.
#[derive(Debug, Clone)]
struct Sample {
    at_ms: i64,
    totals: BTreeMap<Stage, u64>,
}

impl Observed {
    pub fn new(instance: String) -> Self {
        Self {
            tree: RestartStats::default(),
            partitions: Partitions::default(),
            consumption: Consumption::default(),
            instance,
            started: Instant::now(),
            samples: Arc::default(),
            runs: Arc::default(),
            reconciliation: Arc::default(),
        }
    }

    /// Summarises the runs ledger and the reconciler's verdicts every two seconds until
    /// the task is aborted, and exports the `tributary_runs{status}` gauges. Every
    /// instance does it (the ledger is shared), so a follower's dashboard shows failing
    /// runs and failed reconciliations too.
    pub fn spawn_runs_watcher(
        &self,
        pool: deadpool_postgres::Pool,
        ingest: tributary_actors::ingest::Config,
        reconcile_after_ms: u64,
    ) -> tokio::task::JoinHandle<()> {
        let runs = self.runs.clone();
        let reconciliation = self.reconciliation.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RUNS_REFRESH);
            loop {
                tick.tick().await;
                let (summary, reconciled) = match pool.get().await {
                    Ok(client) => (
                        ledger::summary(&client, &ingest).await.ok(),
                        summary::reconciliation(&client, reconcile_after_ms)
                            .await
                            .ok(),
                    ),
                    Err(_) => (None, None),
                };
                *reconciliation.lock().unwrap_or_else(|p| p.into_inner()) = reconciled;
                if let Some(summary) = &summary {
                    for (status, n) in [
                        (RunStatus::Pending, summary.pending),
                        (RunStatus::Retrying, summary.retrying),
                        (RunStatus::Failed, summary.failed),
                    ] {
                        metrics::gauge!("tributary_runs", "status" => status.as_str())
                            .set(n as f64);
                    }
                }
                *runs.lock().unwrap_or_else(|p| p.into_inner()) = summary;
            }
        })
    }

    /// Takes one sample of the stage totals; the run loop calls it every second.
    pub fn sample(&self) {
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        samples.push_back(Sample {
            at_ms: now_ms(),
            totals: observe::totals(),
        });
        while samples.len() > HISTORY_SECONDS + 1 {
            samples.pop_front();
        }
    }

    /// Samples every second until the task is aborted.
    pub fn spawn_sampler(&self) -> tokio::task::JoinHandle<()> {
        let observed = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                observed.sample();
            }
        })
    }

    pub fn status(&self) -> Status {
        let samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let totals = observe::totals();
        let throughput = match (
            samples.back(),
            samples
                .iter()
                .rev()
                .nth(THROUGHPUT_WINDOW.min(samples.len().saturating_sub(1))),
        ) {
            (Some(last), Some(first)) if last.at_ms > first.at_ms => rates(first, last),
            _ => BTreeMap::new(),
        };
        let history = samples
            .iter()
            .zip(samples.iter().skip(1))
            .map(|(a, b)| HistoryPoint {
                at_ms: b.at_ms,
                rates: rates(a, b),
            })
            .collect();
        let partitions = self.partitions.snapshot();
        let consumption = self.consumption.snapshot();
        let tree = self.tree.tree("root");
        Status {
            instance: self.instance.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_s: self.started.elapsed().as_secs(),
            leader: tree
                .as_ref()
                .is_some_and(|root| find(root, "ingest").is_some()),
            tree: tree.and_then(|t| serde_json::to_value(t).ok()),
            restarts: self
                .tree
                .snapshot()
                .into_iter()
                .map(|(kind, stats)| (kind.to_owned(), KindRestarts::from(stats)))
                .collect(),
            lag: consumption.lag,
            partitions,
            records: totals
                .iter()
                .map(|(s, n)| (s.name().to_owned(), *n))
                .collect(),
            throughput,
            history,
            runs: self.runs.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            reconciliation: self
                .reconciliation
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            consumption,
        }
    }
}

fn rates(first: &Sample, last: &Sample) -> BTreeMap<String, f64> {
    let seconds = (last.at_ms - first.at_ms) as f64 / 1000.0;
    last.totals
        .iter()
        .map(|(stage, n)| {
            let before = first.totals.get(stage).copied().unwrap_or(0);
            let rate = n.saturating_sub(before) as f64 / seconds;
            (stage.name().to_owned(), (rate * 10.0).round() / 10.0)
        })
        .collect()
}

fn find<'a>(node: &'a TreeNode, name: &str) -> Option<&'a TreeNode> {
    if node.actor.name == name {
        return Some(node);
    }
    node.children.iter().find_map(|c| find(c, name))
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `/api/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// host-pid: the owner name recorded in Cassandra's `partition_state`.
    pub instance: String,
    pub version: String,
    pub uptime_s: u64,
    /// This instance holds the leader lock and runs ingest and publish.
    pub leader: bool,
    /// The supervision tree, `None` before it started or after it stopped.
    pub tree: Option<TreeNodeView>,
    /// Restarts, failures and the last error per actor kind.
    pub restarts: BTreeMap<String, KindRestarts>,
    /// Records in Kafka not yet in Cassandra, over every partition of the topic (held
    /// here or not): a group that consumes nothing shows growing lag.
    pub lag: i64,
    pub partitions: Vec<PartitionStatus>,
    /// Records through each stage since start.
    pub records: BTreeMap<String, u64>,
    /// Records per second through each stage over the last 10 s.
    pub throughput: BTreeMap<String, f64>,
    /// Per-second rates over the last two minutes, oldest first.
    pub history: Vec<HistoryPoint>,
    /// The runs ledger (shared by every instance): unfinished runs per status, the
    /// recent hour's staged and repeated runs, the failed and retrying ones. `None`
    /// while PostgreSQL cannot be read.
    #[serde(default)]
    pub runs: Option<RunsSummary>,
    /// The reconciler's verdicts (shared by every instance): runs still unreconciled,
    /// failed runs by kind, the last aggregate check. `None` while PostgreSQL cannot be
    /// read.
    #[serde(default)]
    pub reconciliation: Option<Reconciliation>,
    /// Whether this instance consumes: every partition's committed offset, end and lag,
    /// the group handler's state, and why records wait unconsumed, if they do.
    #[serde(default)]
    pub consumption: ConsumptionStatus,
}

/// The tree as serialized (and parsed back by `tributary status`).
pub type TreeNodeView = serde_json::Value;
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KindRestarts {
    pub restarts: u64,
    pub failures: u64,
    pub last_error: Option<String>,
}

impl From<KindStats> for KindRestarts {
    fn from(k: KindStats) -> Self {
        Self {
            restarts: k.restarts,
            failures: k.failures,
            last_error: k.last_error,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryPoint {
    pub at_ms: i64,
    pub rates: BTreeMap<String, f64>,
}

/// The admin base URL for `admin.bind`; a wildcard address is reached on loopback.
pub fn admin_url(bind: &str) -> Option<String> {
    let address: std::net::SocketAddr = bind.parse().ok()?;
    let host = match address.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
        ip if ip.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        std::net::IpAddr::V4(ip) => ip.to_string(),
    };
    Some(format!("http://{host}:{}", address.port()))
}

/// `tributary status`: fetches `/api/status` and prints it as tables (or JSON).
/// Exit 0 when an instance answered, 2 when none answers or the token is refused.
pub async fn print(config: &crate::config::Config, url: Option<String>, json: bool) -> i32 {
    let Some(base) = url.or_else(|| admin_url(&config.admin.bind)) else {
        eprintln!("error: admin.bind is empty: the admin server is off; pass --url");
        return crate::exit::CONFIG;
    };
    let token = match config.admin.resolve_token() {
        Ok(token) => token,
        Err(error) => {
            eprintln!("error: admin.token_file: {error}");
            return crate::exit::CONFIG;
        }
    };
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            eprintln!("error: cannot build an HTTP client: {error}");
            return crate::exit::FAILURE;
        }
    };
    let endpoint = format!("{}/api/status", base.trim_end_matches('/'));
    let mut request = client.get(&endpoint);
    if let Some(token) = &token {
        request = request.bearer_auth(token.expose());
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) => {
            eprintln!(
                "error: no tributary instance answers at {endpoint}: {}",
                crate::error_chain(&error)
            );
            return crate::exit::CONFIG;
        }
    };
    let code = response.status();
    if code == reqwest::StatusCode::UNAUTHORIZED {
        eprintln!("error: {endpoint} refused the admin token (set TRIBUTARY__ADMIN__TOKEN)");
        return crate::exit::CONFIG;
    }
    if !code.is_success() {
        eprintln!("error: {endpoint} answered {code}");
        return crate::exit::FAILURE;
    }
    let status: Status = match response.json().await {
        Ok(status) => status,
        Err(error) => {
            eprintln!("error: {endpoint} did not return a status: {error}");
            return crate::exit::FAILURE;
        }
    };
    if json {
        match serde_json::to_string_pretty(&status) {
            Ok(text) => println!("{text}"),
            Err(error) => {
                eprintln!("error: {error}");
                return crate::exit::FAILURE;
            }
        }
    } else {
        print!("{}", render(&status));
    }
    crate::exit::OK
}
