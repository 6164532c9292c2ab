//! Retention: the outbox, the runs ledger and the quarantine stay bounded.
//!
//! Every `retention.interval_ms`, on the leader:
//! - outbox rows (`staged_users`) of runs scheduled longer ago than `outbox_ms` go, but
//!   only up to the producer's committed checkpoint (read from Kafka): a row not yet
//!   published is never removed, however old;
//! - finished runs (staged or failed) older than `runs_ms` whose outbox rows are gone,
//!   with their quarantined records and the reconciler's rows, go — never the newest run
//!   (the scheduler continues after it), never a pending or retrying one, and never a
//!   staged run the reconciler has not given its verdict on;
//! - quarantined records older than `quarantine_ms` go.
//!
//! Each DELETE takes `batch_size` rows in its own short transaction, at most
//! `max_batches` per table and round, so retention never holds a lock ingest waits on.
//! The cumulative aggregates (`staged_aggregates`) and the runs' digests survive the
//! outbox rows they were computed from.

use super::config::Retention;
use crate::publish::checkpoint::read_checkpoint;
use crate::store::postgres;
use crate::store::{Service, StoreError, kafka};
use crate::supervisor::shell::{self, Shelled};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

#[derive(Debug, Clone, Copy)]
pub struct Pruner;

pub struct PrunerArgs {
    pub config: Retention,
    pub postgres: postgres::Config,
    pub kafka: kafka::Config,
    /// Whose checkpoint says what is published.
    pub transactional_id: String,
    /// The reconciler runs: a staged run stays until it has its verdict.
    pub keep_unreconciled: bool,
}

pub enum PrunerMsg {
    Round,
    Ping(RpcReplyPort<()>),
}

crate::supervisor::shell::answers!(PrunerMsg: Ping);

pub struct PrunerState {
    config: Retention,
    kafka: kafka::Config,
    transactional_id: String,
    keep_unreconciled: bool,
    pool: deadpool_postgres::Pool,
}

/// Rows one round removed, per table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub outbox: u64,
    pub runs: u64,
    pub failed_runs: u64,
    pub quarantine: u64,
}

impl Actor for Pruner {
    type Msg = PrunerMsg;
    type State = PrunerState;
    type Arguments = PrunerArgs;

    async fn pre_start(
        &self,
        _: ActorRef<PrunerMsg>,
        args: PrunerArgs,
    ) -> Result<PrunerState, ActorProcessingErr> {
        let pool = postgres::pool(&args.postgres)?;
        postgres::check(&pool, &args.postgres).await?;
        Ok(PrunerState {
            config: args.config,
            kafka: args.kafka,
            transactional_id: args.transactional_id,
            keep_unreconciled: args.keep_unreconciled,
            pool,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<PrunerMsg>,
        _: &mut PrunerState,
    ) -> Result<(), ActorProcessingErr> {
        myself.send_message(PrunerMsg::Round)?;
        Ok(())
    }

    shell::handle!();
}

impl Shelled for Pruner {
    const KIND: &'static str = "pruner";

    async fn on_message(
        &self,
        myself: ActorRef<PrunerMsg>,
        message: PrunerMsg,
        state: &mut PrunerState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            PrunerMsg::Round => {
                // A store that does not answer skips a round; the next one catches up.
                match round(state).await {
                    Ok(pruned) if pruned != Pruned::default() => tracing::info!(
                        outbox = pruned.outbox,
                        runs = pruned.runs,
                        failed_runs = pruned.failed_runs,
                        quarantine = pruned.quarantine,
                        "retention pruned"
                    ),
                    Ok(_) => {}
                    Err(error) => tracing::warn!(
                        error = &error as &dyn std::error::Error,
                        "retention round failed: retried at the next interval"
                    ),
                }
                myself.send_after(state.config.interval(), || PrunerMsg::Round);
            }
            PrunerMsg::Ping(reply) => {
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

async fn round(state: &PrunerState) -> Result<Pruned, StoreError> {
    let (kafka, topic, id) = (
        state.kafka.clone(),
        state.kafka.topics.checkpoints.name.clone(),
        state.transactional_id.clone(),
    );
    let published = tokio::task::spawn_blocking(move || read_checkpoint(&kafka, &topic, &id))
        .await
        .map_err(|e| StoreError::request(Service::Kafka, "checkpoint task", e))?
        .map_err(|e| StoreError::request(Service::Kafka, "read the producer checkpoint", e))?
        .map_or(0, |c| c.last_outbox_id);
    let mut client = state
        .pool
        .get()
        .await
        .map_err(|e| StoreError::request(Service::Postgres, "no pooled connection", e))?;
    let config = &state.config;
    let (batch, batches) = (i64::from(config.batch_size), config.max_batches);
    let mut pruned = Pruned::default();

    // The outbox: published rows of runs scheduled before the cutoff.
    let last_old_run: Option<i64> = client
        .query_one(
            "SELECT max(run_id) FROM runs WHERE scheduled_for < now() - $1 * interval '1 millisecond'",
            &[&(config.outbox_ms as f64)],
        )
        .await
        .map_err(Service::Postgres.error("find old runs"))?
        .get(0);
    if let Some(last_old_run) = last_old_run {
        for _ in 0..batches {
            let n = client
                .execute(
                    "DELETE FROM staged_users WHERE id IN (SELECT id FROM staged_users \
                     WHERE run_id <= $1 AND id <= $2 ORDER BY id LIMIT $3)",
                    &[&last_old_run, &published, &batch],
                )
                .await
                .map_err(Service::Postgres.error("prune the outbox"))?;
            pruned.outbox += n;
            if n < batch.unsigned_abs() {
                break;
            }
        }
    }

    // Finished runs without outbox rows, and what refers to them.
    for _ in 0..batches {
        // The round's one connection (a pool of one must do).
        let tx = client
            .transaction()
            .await
            .map_err(Service::Postgres.error("begin"))?;
        let rows = tx
            .query(
                "SELECT run_id, status = 'failed' FROM runs r \
                 WHERE scheduled_for < now() - $1 * interval '1 millisecond' \
                 AND status IN ('staged', 'failed') AND run_id < (SELECT max(run_id) FROM runs) \
                 AND NOT EXISTS (SELECT 1 FROM staged_users s WHERE s.run_id = r.run_id) \
                 AND NOT ($3 AND status = 'staged' AND reconciled_at IS NULL) \
                 ORDER BY run_id LIMIT $2 FOR UPDATE SKIP LOCKED",
                &[&(config.runs_ms as f64), &batch, &state.keep_unreconciled],
            )
            .await
            .map_err(Service::Postgres.error("find old runs"))?;
        let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        let failed = rows.iter().filter(|r| r.get::<_, bool>(1)).count() as u64;
        for statement in [
            "DELETE FROM quarantine WHERE run_id = ANY($1)",
            "DELETE FROM run_kafka_digests WHERE run_id = ANY($1)",
            "DELETE FROM run_dead_letters WHERE run_id = ANY($1)",
            "DELETE FROM runs WHERE run_id = ANY($1)",
        ] {
            tx.execute(statement, &[&ids])
                .await
                .map_err(Service::Postgres.error("prune old runs"))?;
        }
        tx.commit()
            .await
            .map_err(Service::Postgres.error("commit pruned runs"))?;
        pruned.runs += ids.len() as u64;
        pruned.failed_runs += failed;
        if (ids.len() as i64) < batch {
            break;
        }
    }
    if pruned.failed_runs > 0 {
        tracing::warn!(
            runs = pruned.failed_runs,
            "failed runs older than retention.runs_ms removed, with their quarantined responses"
        );
    }

    for _ in 0..batches {
        let n = client
            .execute(
                "DELETE FROM quarantine WHERE id IN (SELECT id FROM quarantine \
                 WHERE quarantined_at < now() - $1 * interval '1 millisecond' ORDER BY id LIMIT $2)",
                &[&(config.quarantine_ms as f64), &batch],
            )
            .await
            .map_err(Service::Postgres.error("prune the quarantine"))?;
        pruned.quarantine += n;
        if n < batch.unsigned_abs() {
            break;
        }
    }
    for (table, n) in [
        ("staged_users", pruned.outbox),
        ("runs", pruned.runs),
        ("quarantine", pruned.quarantine),
    ] {
        metrics::counter!("tributary_pruned_rows_total", "table" => table).increment(n);
    }
    Ok(pruned)
}
