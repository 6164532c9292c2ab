//! `/readyz`: every store answers, every supervised actor is running, and records that
//! wait are being consumed.

use crate::config::Config;
use crate::status::Observed;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tributary_actors::store;

/// How long one store check may take before it counts as unreachable.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);
/// A report is reused this long: every open dashboard asks each second, and each store
/// check opens a Kafka client.
const REUSE_FOR: Duration = Duration::from_secs(2);

/// The readiness checks and the clients they reuse between probes.
pub struct Readiness {
    config: Config,
    pool: Option<deadpool_postgres::Pool>,
    /// Opened on first use and dropped after a failure, so a restarted node is found.
    cassandra: Mutex<Option<scylla::client::session::Session>>,
    last: Mutex<Option<(Instant, Report)>>,
}

/// The answer of `/readyz`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ready: bool,
    /// `ok` or why not, per check: postgres, kafka, cassandra, actors.
    pub checks: BTreeMap<&'static str, String>,
}

impl Readiness {
    pub fn new(config: Config) -> Self {
        let pool = store::postgres::pool(&config.postgres).ok();
        Self {
            config,
            pool,
            cassandra: Mutex::new(None),
            last: Mutex::new(None),
        }
    }

    /// The latest report, checking again when it is older than [`REUSE_FOR`].
    pub async fn check(&self, observed: &Observed) -> Report {
        let mut last = self.last.lock().await;
        if let Some((at, report)) = last.as_ref()
            && at.elapsed() < REUSE_FOR
        {
            return report.clone();
        }
        let report = self.check_now(observed).await;
        *last = Some((Instant::now(), report.clone()));
        report
    }

    async fn check_now(&self, observed: &Observed) -> Report {
        let (postgres, kafka, cassandra) =
            tokio::join!(self.postgres(), self.kafka(), self.cassandra());
        let actors = actors(observed);
        let consuming = consuming(observed);
        let checks: BTreeMap<&'static str, String> = [
            ("postgres", postgres),
            ("kafka", kafka),
            ("cassandra", cassandra),
            ("actors", actors),
            ("consuming", consuming),
        ]
        .into_iter()
        .map(|(name, result)| (name, result.err().unwrap_or_else(|| "ok".to_owned())))
        .collect();
        Report {
            ready: checks.values().all(|v| v == "ok"),
            checks,
        }
    }

    async fn postgres(&self) -> Result<(), String> {
        let pool = self.pool.as_ref().ok_or("no connection pool")?;
        bounded(async {
            store::postgres::check(pool, &self.config.postgres)
                .await
                .map_err(|e| crate::error_chain(&e))
        })
        .await
    }

    async fn kafka(&self) -> Result<(), String> {
        bounded(async {
            store::kafka::check(&self.config.kafka)
                .await
                .map(|_| ())
                .map_err(|e| crate::error_chain(&e))
        })
        .await
    }

    async fn cassandra(&self) -> Result<(), String> {
        let mut session = self.cassandra.lock().await;
        let result = bounded(async {
            if session.is_none() {
                *session = Some(
                    store::cassandra::connect(&self.config.cassandra)
                        .await
                        .map_err(|e| crate::error_chain(&e))?,
                );
            }
            let Some(open) = session.as_ref() else {
                return Err("no session".to_owned());
            };
            open.query_unpaged("SELECT release_version FROM system.local", ())
                .await
                .map(|_| ())
                .map_err(|e| format!("cassandra: {e}"))
        })
        .await;
        if result.is_err() {
            *session = None;
        }
        result
    }
}

async fn bounded(check: impl Future<Output = Result<(), String>>) -> Result<(), String> {
    tokio::time::timeout(CHECK_TIMEOUT, check)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {CHECK_TIMEOUT:?}")))
}

/// A consumption reading older than this says nothing about now.
const STALE_READING_MS: i64 = 60_000;

/// Records wait and this instance consumes none of them (the consumption monitor), or
/// the monitor has not been able to tell for a minute.
fn consuming(observed: &Observed) -> Result<(), String> {
    let c = observed.consumption.snapshot();
    if let Some(n) = c.not_consuming {
        return Err(format!("not consuming: {}", n.reason));
    }
    let age_ms = c
        .checked_at_ms
        .map(|at| chrono::Utc::now().timestamp_millis() - at);
    match (age_ms, c.error) {
        (Some(age), error) if age > STALE_READING_MS => Err(format!(
            "no consumption reading for {} s{}",
            age / 1_000,
            error.map(|e| format!(": {e}")).unwrap_or_default()
        )),
        _ => Ok(()),
    }
}

fn actors(observed: &Observed) -> Result<(), String> {
    if observed.tree.tree("root").is_none() {
        return Err("the actor tree is not running".into());
    }
    let down = observed.tree.not_running();
    if down.is_empty() {
        Ok(())
    } else {
        Err(format!("not running: {}", down.join(", ")))
    }
}
