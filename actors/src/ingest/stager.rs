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
use super::ledger::FailedRun;
use super::staging;
use crate::directory::Directory;
use crate::model::FetchedBatch;
use crate::observe::{self, Stage};
use crate::store::postgres;
use crate::supervisor::Drain;
use crate::supervisor::shell::{self, Shelled};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
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
                let Some(staged) = staging::stage(
                    &state.pool,
                    &state.ingest,
                    &state.channel,
                    batch,
                    trace_parent.as_deref(),
                )
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
