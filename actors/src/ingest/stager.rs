//! The stager: the single writer of `staged_users`. One PostgreSQL transaction per run
//! inserts its users (ON CONFLICT DO NOTHING on source_uuid), its rejected records, marks
//! the run staged and notifies the producer; a replayed run therefore stages nothing twice.
//!
//! Users the source returns that an earlier run already staged are repeats: the real API
//! answers a page it does not serve with page 1, so a pipeline that maps runs to pages
//! wrongly would stage nothing new, forever, and look healthy. A repeat is a warning, a
//! counter and a column of the run. A failed fetch round goes to the ledger, which
//! schedules the run's retry or gives it up ([`super::ledger::mark_failed`]).

use super::config::Config;
use super::ledger::{self, FailedRun};
use crate::directory::Directory;
use crate::model::{FetchedBatch, Rejected, StagedUser};
use crate::observe::{self, Stage};
use crate::store::{Service, StoreError, postgres};
use crate::supervisor::Drain;
use crate::supervisor::shell::{self, Shelled};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::value::RawValue;
use tokio_postgres::types::Json;
use tracing::Instrument;

#[derive(Debug, Clone, Copy)]
pub struct Stager;

pub struct StagerArgs {
    pub postgres: postgres::Config,
    /// The retry policy of failed runs (`ingest.retry_*`, `give_up_after_ms`).
    pub ingest: Config,
    pub directory: Directory<StagerMsg>,
}

pub enum StagerMsg {
    /// A fetched run, with the trace its fetch started.
    Stage(FetchedBatch, Option<opentelemetry::Context>),
    Ping(RpcReplyPort<()>),
    /// Answered once the batches queued before it are staged.
    Drain(Drain),
}

crate::supervisor::shell::answers!(StagerMsg: Ping, Drain);

pub struct StagerState {
    pool: deadpool_postgres::Pool,
    ingest: Config,
    channel: String,
    schema: String,
}

impl Actor for Stager {
    type Msg = StagerMsg;
    type State = StagerState;
    type Arguments = StagerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<StagerMsg>,
        args: StagerArgs,
    ) -> Result<StagerState, ActorProcessingErr> {
        let pool = postgres::pool(&args.postgres)?;
        postgres::check(&pool, &args.postgres).await?;
        args.directory.register(myself);
        Ok(StagerState {
            pool,
            ingest: args.ingest,
            channel: args.postgres.staged_channel(),
            schema: args.postgres.schema.clone(),
        })
    }

    shell::handle!();
}

impl Shelled for Stager {
    const KIND: &'static str = "stager";

    async fn on_message(
        &self,
        _: ActorRef<StagerMsg>,
        message: StagerMsg,
        state: &mut StagerState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            StagerMsg::Stage(batch, trace) => {
                let run_id = batch.run().run_id;
                let span = tracing::info_span!(
                    parent: None,
                    "stage run",
                    otel.name = "INSERT staged_users",
                    otel.kind = "client",
                    tributary.stage = "stage",
                    run.id = run_id,
                    db.system.name = "postgresql",
                    db.namespace = %state.schema,
                    db.collection.name = "staged_users",
                    db.operation.name = "INSERT",
                );
                if let Some(parent) = &trace {
                    crate::trace::set_parent(&span, parent);
                }
                // Stored with the run: the producer continues the trace across Kafka.
                let trace_parent = crate::trace::traceparent(&span);
                // A failure here fails the actor: its supervisor restarts the ingest
                // chain and the scheduler re-dispatches the run, still pending.
                let request = batch.run().request.clone();
                let Some(staged) = stage(state, batch, trace_parent.as_deref())
                    .instrument(span)
                    .await?
                else {
                    tracing::info!(
                        run_id,
                        "stale fetch result dropped: the run is no longer waiting for it"
                    );
                    return Ok(());
                };
                observe::record(Stage::Staged, staged.users);
                observe::record(Stage::Quarantined, staged.quarantined);
                match staged.failed {
                    None => {
                        metrics::counter!("tributary_runs_total", "status" => "staged")
                            .increment(1);
                        tracing::info!(
                            run_id,
                            users = staged.users,
                            quarantined = staged.quarantined,
                            "run staged"
                        );
                    }
                    Some(FailedRun::Retrying { retries, after }) => {
                        metrics::counter!("tributary_runs_total", "status" => "retrying")
                            .increment(1);
                        tracing::warn!(
                            run_id,
                            seed = %request.seed,
                            page = request.page,
                            retries,
                            retry_in_ms = after.as_millis() as u64,
                            reason = staged.reason.as_deref().unwrap_or_default(),
                            "run failed: fetched again after its backoff"
                        );
                    }
                    Some(FailedRun::GaveUp { retries }) => {
                        metrics::counter!("tributary_runs_total", "status" => "failed")
                            .increment(1);
                        tracing::error!(
                            run_id,
                            seed = %request.seed,
                            page = request.page,
                            retries,
                            reason = staged.reason.as_deref().unwrap_or_default(),
                            "run gave up after ingest.give_up_after_ms: response quarantined; \
                             re-queue it with `tributary runs retry {run_id}`"
                        );
                    }
                }
                if staged.repeated > 0 {
                    metrics::counter!("tributary_source_repeats_total").increment(1);
                    metrics::counter!("tributary_source_repeated_users_total")
                        .increment(staged.repeated);
                    tracing::warn!(
                        run_id,
                        seed = %request.seed,
                        page = request.page,
                        repeated = staged.repeated,
                        staged = staged.users,
                        "source repeated users an earlier run already staged: \
                         is it serving this page at all (ingest.max_page, ingest.seed)?"
                    );
                }
            }
            StagerMsg::Ping(reply) | StagerMsg::Drain(Drain { reply, .. }) => {
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

struct Staged {
    users: u64,
    quarantined: u64,
    /// Valid users of the page that an earlier run had already staged.
    repeated: u64,
    /// Set when the fetch round failed: what the ledger made of the run.
    failed: Option<FailedRun>,
    reason: Option<String>,
}

/// Stages one fetch result in one transaction; `None` when it was a stale copy of a
/// dispatch (the run is no longer waiting for it), which changes nothing.
async fn stage(
    state: &StagerState,
    batch: FetchedBatch,
    trace_parent: Option<&str>,
) -> Result<Option<Staged>, StoreError> {
    let mut client = state.pool.get().await.map_err(|e| {
        StoreError::request(crate::store::Service::Postgres, "no pooled connection", e)
    })?;
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
                ledger::mark_failed(&tx, &state.ingest, &run, &reason, retry_after).await?
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
    tx.execute(
        "SELECT pg_notify($1, $2)",
        &[&state.channel, &run_id.to_string()],
    )
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
