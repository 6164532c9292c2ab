//! The stager's SQL: one fetch result staged in one PostgreSQL transaction — the run
//! claimed in the ledger, its users inserted into the outbox (`staged_users`, ON
//! CONFLICT DO NOTHING on `source_uuid`), its rejected records quarantined, the run
//! marked staged (or failed), and the producer notified on commit.

use super::config::Config;
use super::ledger::{self, FailedRun};
use crate::model::{FetchedBatch, Rejected, StagedUser};
use crate::store::{Service, StoreError};
use serde_json::value::RawValue;
use tokio_postgres::types::Json;

/// What staging one fetch result did.
pub struct Staged {
    pub users: u64,
    pub quarantined: u64,
    /// Valid users of the page that an earlier run had already staged.
    pub repeated: u64,
    /// Set when the fetch round failed: what the ledger made of the run.
    pub failed: Option<FailedRun>,
    pub reason: Option<String>,
}

/// Stages one fetch result in one transaction; `None` when it was a stale copy of a
/// dispatch (the run is no longer waiting for it), which changes nothing.
///
/// # Errors
/// PostgreSQL fails; nothing of the run is staged then.
pub async fn stage(
    pool: &deadpool_postgres::Pool,
    ingest: &Config,
    channel: &str,
    batch: FetchedBatch,
    trace_parent: Option<&str>,
) -> Result<Option<Staged>, StoreError> {
    let mut client = pool
        .get()
        .await
        .map_err(Service::Postgres.error("no pooled connection"))?;
    let tx = client
        .transaction()
        .await
        .map_err(Service::Postgres.error("begin"))?;
    let (run_id, staged) = match batch {
        FetchedBatch::Fetched {
            run,
            users,
            rejected,
        } => {
            if !ledger::claim(&tx, &run).await? {
                return Ok(None);
            }
            let inserted = insert_users(&tx, run.run_id, &users).await?;
            let quarantined = insert_rejected(&tx, run.run_id, &rejected).await?;
            let repeated = (users.len() as u64).saturating_sub(inserted);
            ledger::mark_staged(&tx, run.run_id, repeated, trace_parent).await?;
            (
                run.run_id,
                Staged {
                    users: inserted,
                    quarantined,
                    repeated,
                    failed: None,
                    reason: None,
                },
            )
        }
        FetchedBatch::Failed {
            run,
            reason,
            raw,
            retry_after,
        } => {
            let Some(outcome) =
                ledger::mark_failed(&tx, ingest, &run, &reason, retry_after).await?
            else {
                return Ok(None);
            };
            // A run that gives up keeps its last response: the body of a retrying run
            // is the same failure again and again (its reason is in last_error).
            let quarantined = match outcome {
                FailedRun::GaveUp { .. } => {
                    insert_rejected(
                        &tx,
                        run.run_id,
                        &[Rejected {
                            reason: reason.clone(),
                            raw,
                        }],
                    )
                    .await?
                }
                FailedRun::Retrying { .. } => 0,
            };
            (
                run.run_id,
                Staged {
                    users: 0,
                    quarantined,
                    repeated: 0,
                    failed: Some(outcome),
                    reason: Some(reason),
                },
            )
        }
    };
    // Delivered on commit, so the producer never looks before the rows are visible.
    tx.execute("SELECT pg_notify($1, $2)", &[&channel, &run_id.to_string()])
        .await
        .map_err(Service::Postgres.error("notify"))?;
    tx.commit()
        .await
        .map_err(Service::Postgres.error("commit staged run"))?;
    Ok(Some(staged))
}

async fn insert_users(
    tx: &deadpool_postgres::Transaction<'_>,
    run_id: i64,
    users: &[StagedUser],
) -> Result<u64, StoreError> {
    if users.is_empty() {
        return Ok(0);
    }
    let ids: Vec<uuid::Uuid> = users.iter().map(|u| u.source_uuid).collect();
    // Json<&RawValue> sends the text as it is; PostgreSQL parses it into jsonb.
    let payloads: Vec<Json<&RawValue>> = users.iter().map(|u| Json(&*u.payload)).collect();
    // WITH ORDINALITY keeps the page order, so outbox ids follow the source's order.
    tx.execute(
        "INSERT INTO staged_users (source_uuid, run_id, payload) \
         SELECT u, $2, p FROM UNNEST($1::uuid[], $3::jsonb[]) WITH ORDINALITY AS t(u, p, n) ORDER BY n \
         ON CONFLICT (source_uuid) DO NOTHING",
        &[&ids, &run_id, &payloads],
    )
    .await
    .map_err(Service::Postgres.error("insert staged users"))
}

async fn insert_rejected(
    tx: &deadpool_postgres::Transaction<'_>,
    run_id: i64,
    rejected: &[Rejected],
) -> Result<u64, StoreError> {
    if rejected.is_empty() {
        return Ok(0);
    }
    let reasons: Vec<&str> = rejected.iter().map(|r| r.reason.as_str()).collect();
    let raws: Vec<&[u8]> = rejected.iter().map(|r| r.raw.as_slice()).collect();
    tx.execute(
        "INSERT INTO quarantine (run_id, reason, raw) SELECT $1, r, b FROM UNNEST($2::text[], $3::bytea[]) AS t(r, b) \
         ON CONFLICT (run_id, md5(raw)) DO NOTHING",
        &[&run_id, &reasons, &raws],
    )
    .await
    .map_err(Service::Postgres.error("insert quarantine"))
}
