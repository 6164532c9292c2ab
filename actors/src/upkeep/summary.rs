//! The reconciler's findings at a glance, for the status API, `tributary status` and
//! the dashboard. Read from the runs ledger and `reconcile_checks`, so every instance
//! shows them, whichever one leads; each query is served by a partial index.

use crate::store::{Service, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Failed runs listed in a summary.
pub const FAILURES_LISTED: i64 = 10;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reconciliation {
    /// Staged runs past `reconcile.after_ms` without a verdict yet.
    pub unreconciled: u64,
    /// Runs the ledger holds per failed verdict (`missing`, `duplicated`, `unexpected`).
    pub failed_runs: BTreeMap<String, u64>,
    /// The latest failed runs, newest verdict first.
    pub failures: Vec<FailedRun>,
    /// The last aggregate check (Cassandra's aggregates against everything staged);
    /// `None` before the first.
    pub aggregates: Option<AggregateCheck>,
}

impl Reconciliation {
    /// Every verdict so far found the data where it belongs.
    pub fn is_clean(&self) -> bool {
        self.failed_runs.values().all(|n| *n == 0) && self.aggregates.as_ref().is_none_or(|a| a.ok)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedRun {
    pub run_id: i64,
    pub seed: Option<String>,
    pub page: Option<i32>,
    pub result: String,
    pub staged_users: i32,
    pub reconciled_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggregateCheck {
    pub checked_at: chrono::DateTime<chrono::Utc>,
    pub ok: bool,
    /// The differing buckets, when not ok.
    pub detail: Option<String>,
}

/// Reads the summary; `after_ms` is `reconcile.after_ms` (younger runs are not due).
///
/// # Errors
/// PostgreSQL cannot be read.
pub async fn reconciliation(
    client: &tokio_postgres::Client,
    after_ms: u64,
) -> Result<Reconciliation, StoreError> {
    let unreconciled: i64 = client
        .query_one(
            "SELECT count(*) FROM runs WHERE status = 'staged' AND reconciled_at IS NULL \
             AND updated_at < now() - $1 * interval '1 millisecond'",
            &[&(after_ms as f64)],
        )
        .await
        .map_err(Service::Postgres.error("count unreconciled runs"))?
        .get(0);
    let failed_runs = client
        .query(
            "SELECT reconcile_result, count(*) FROM runs WHERE reconcile_result <> 'ok' \
             GROUP BY reconcile_result",
            &[],
        )
        .await
        .map_err(Service::Postgres.error("count failed reconciliations"))?
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1).unsigned_abs()))
        .collect();
    let failures = client
        .query(
            "SELECT run_id, seed, page, reconcile_result, staged_users, reconciled_at FROM runs \
             WHERE reconcile_result <> 'ok' ORDER BY reconciled_at DESC LIMIT $1",
            &[&FAILURES_LISTED],
        )
        .await
        .map_err(Service::Postgres.error("list failed reconciliations"))?
        .iter()
        .map(|r| FailedRun {
            run_id: r.get(0),
            seed: r.get(1),
            page: r.get(2),
            result: r.get(3),
            staged_users: r.get(4),
            reconciled_at: r.get(5),
        })
        .collect();
    let aggregates = client
        .query_opt(
            "SELECT checked_at, ok, detail FROM reconcile_checks WHERE name = 'aggregates'",
            &[],
        )
        .await
        .map_err(Service::Postgres.error("read the aggregate check"))?
        .map(|r| AggregateCheck {
            checked_at: r.get(0),
            ok: r.get(1),
            detail: r.get(2),
        });
    Ok(Reconciliation {
        unreconciled: unreconciled.unsigned_abs(),
        failed_runs,
        failures,
        aggregates,
    })
}
