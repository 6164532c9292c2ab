//! The reconciler: checks every staged run end to end, continuously, by its digest.
//!
//! None of the systems users compare tributary with tells its operator that data was
//! lost; this one does. On the leader, every `reconcile.interval_ms`:
//!
//! 1. **Kafka side.** Its own read_committed consumer reads `users.raw` and the DLQ from
//!    where it left off and folds each record into its run's digest (the
//!    `tributary-run-id` header); the digests, the DLQ's users (one row per user, so a
//!    replayed DLQ write counts once) and its read positions commit in one PostgreSQL
//!    transaction: a restart neither loses nor counts a record twice.
//! 2. **Runs.** A run staged `after_ms` ago is compared: the digest recorded at staging,
//!    Kafka's, and Cassandra's (what each partition's writer committed with its offset,
//!    right after upserting the rows: a few keys of `partition_state`, not a read of the
//!    rows, which cost Cassandra as much again as writing them), poison records
//!    excepted. Equal: the run is reconciled. More in Kafka than staged: duplicated. Rows
//!    in Cassandra the run never staged: unexpected. Still short `deadline_ms` after
//!    staging: missing. Otherwise it is on its way (`tributary_unreconciled_runs`).
//! 3. **Aggregates**, every `aggregate_interval_ms`, at a moment nothing is in flight:
//!    Cassandra's committed offsets and aggregates are read first, then everything staged;
//!    if the producer's checkpoint covers all of it and Cassandra has committed every
//!    record Kafka holds, the two must be equal.
//!
//! Verdicts go to the runs ledger (`reconciled_at`, `reconcile_result`) and
//! `reconcile_checks`, so every instance's status shows them, and to
//! `tributary_reconcile_failures_total{kind}`.

mod fold;

use super::config::Reconcile;
use super::readback;
use crate::model::Digest;
use crate::publish::checkpoint::read_checkpoint;
use crate::store::closing::{self, Shared};
use crate::store::postgres;
use crate::store::rebootstrap::KeptContext;
use crate::store::{Service, StoreError, cassandra, kafka};
use crate::supervisor::shell::{self, Shelled};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;
use scylla::client::session::Session;

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Reconciler;

pub struct ReconcilerArgs {
    pub config: Reconcile,
    pub postgres: postgres::Config,
    pub kafka: kafka::Config,
    pub cassandra: cassandra::Config,
    pub transactional_id: String,
    pub group_id: String,
}

pub enum ReconcilerMsg {
    Round,
    Ping(RpcReplyPort<()>),
}

crate::supervisor::shell::answers!(ReconcilerMsg: Ping);

type ReadConsumer = BaseConsumer<KeptContext>;

pub struct ReconcilerState {
    config: Reconcile,
    pool: deadpool_postgres::Pool,
    kafka_config: kafka::Config,
    cassandra_config: cassandra::Config,
    session: Option<Session>,
    /// Reads `users.raw`; its own client so that a partition's end is that topic's.
    consumer: Shared<ReadConsumer>,
    /// Reads the DLQ.
    dlq_consumer: Shared<ReadConsumer>,
    raw: String,
    dlq: String,
    keyspace: String,
    transactional_id: String,
    /// Asks whether Cassandra has committed everything a partition holds.
    probe: Shared<ReadConsumer>,
    /// Both readers are assigned at the committed positions.
    assigned: bool,
    /// The positions committed as this reconciler last read or wrote them: a fold
    /// commits only if they are still these.
    positions: std::collections::HashMap<(String, i32), i64>,
    last_aggregate_check: Option<Instant>,
}

impl Actor for Reconciler {
    type Msg = ReconcilerMsg;
    type State = ReconcilerState;
    type Arguments = ReconcilerArgs;

    async fn pre_start(
        &self,
        _: ActorRef<ReconcilerMsg>,
        args: ReconcilerArgs,
    ) -> Result<ReconcilerState, ActorProcessingErr> {
        let pool = postgres::pool(&args.postgres)?;
        postgres::check(&pool, &args.postgres).await?;
        let reader = |role: &str| -> Result<ReadConsumer, ActorProcessingErr> {
            Ok(args
                .kafka
                .reader_config(role, format!("{}-{role}", args.group_id))?
                .set("enable.partition.eof", "true")
                .create_with_context(KeptContext::default())?)
        };
        let (consumer, dlq_consumer, probe) = (
            reader("reconciler")?,
            reader("reconciler-dlq")?,
            reader("reconciler-probe")?,
        );
        Ok(ReconcilerState {
            raw: args.kafka.topics.raw.name.clone(),
            dlq: args.kafka.topics.dlq.name.clone(),
            keyspace: args.cassandra.keyspace.clone(),
            kafka_config: args.kafka,
            cassandra_config: args.cassandra,
            session: None,
            consumer: closing::shared(consumer),
            dlq_consumer: closing::shared(dlq_consumer),
            probe: closing::shared(probe),
            config: args.config,
            pool,
            transactional_id: args.transactional_id,
            assigned: false,
            positions: std::collections::HashMap::new(),
            last_aggregate_check: None,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<ReconcilerMsg>,
        _: &mut ReconcilerState,
    ) -> Result<(), ActorProcessingErr> {
        myself.send_message(ReconcilerMsg::Round)?;
        Ok(())
    }

    shell::handle!();
}

impl Shelled for Reconciler {
    const KIND: &'static str = "reconciler";

    async fn on_message(
        &self,
        myself: ActorRef<ReconcilerMsg>,
        message: ReconcilerMsg,
        state: &mut ReconcilerState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ReconcilerMsg::Round => {
                if let Err(error) = round(state).await {
                    // Stores come back; the reconciler resumes where it committed.
                    state.assigned = false;
                    state.session = None;
                    tracing::warn!(
                        error = &error as &dyn std::error::Error,
                        "reconcile round failed: retried at the next interval"
                    );
                }
                myself.send_after(Duration::from_millis(state.config.interval_ms), || {
                    ReconcilerMsg::Round
                });
            }
            ReconcilerMsg::Ping(reply) => {
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

async fn round(state: &mut ReconcilerState) -> Result<(), StoreError> {
    let started = Instant::now();
    if !state.assigned {
        fold::assign(state).await?;
        state.assigned = true;
    }
    let records = fold::fold_kafka(state).await?;
    if state.session.is_none() {
        state.session = Some(cassandra::connect(&state.cassandra_config).await?);
    }
    let checked = check_runs(state).await?;
    let due = state
        .last_aggregate_check
        .is_none_or(|at| at.elapsed() >= Duration::from_millis(state.config.aggregate_interval_ms));
    if due && check_aggregates(state).await? {
        state.last_aggregate_check = Some(Instant::now());
    }
    tracing::debug!(
        records,
        runs = checked,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "reconcile round"
    );
    Ok(())
}

/// A run's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Not there yet; checked again next round.
    Pending,
    Missing,
    Duplicated,
    Unexpected,
}

impl Verdict {
    fn label(self) -> Option<&'static str> {
        match self {
            Verdict::Ok => Some("ok"),
            Verdict::Pending => None,
            Verdict::Missing => Some("missing"),
            Verdict::Duplicated => Some("duplicated"),
            Verdict::Unexpected => Some("unexpected"),
        }
    }
}

/// What the digests of one run say. `dead` are its poison records (in Kafka, never in
/// Cassandra); `overdue`: staged longer ago than the deadline.
pub fn verdict(
    staged: Digest,
    kafka: Digest,
    dead: Digest,
    cassandra: Digest,
    overdue: bool,
) -> Verdict {
    let expected_rows = staged.without(dead);
    if kafka == staged && cassandra == expected_rows {
        return Verdict::Ok;
    }
    if kafka.count > staged.count {
        return Verdict::Duplicated;
    }
    if cassandra.count > expected_rows.count {
        return Verdict::Unexpected;
    }
    if overdue {
        // Short, or as many but not the same ones: some staged users are not there.
        return Verdict::Missing;
    }
    Verdict::Pending
}

async fn check_runs(state: &mut ReconcilerState) -> Result<usize, StoreError> {
    let client = state
        .pool
        .get()
        .await
        .map_err(Service::Postgres.error("no pooled connection"))?;
    let rows = client
        .query(
            "SELECT r.run_id, r.staged_users, coalesce(r.digest_xor, 0), coalesce(k.records, 0), \
             coalesce(k.xor, 0), \
             (SELECT count(*) FROM run_dead_letters d WHERE d.run_id = r.run_id), \
             (SELECT coalesce(bit_xor(uuid_fold64(user_id)), 0) FROM run_dead_letters d WHERE d.run_id = r.run_id), \
             r.updated_at < now() - $2 * interval '1 millisecond', r.seed, r.page \
             FROM runs r LEFT JOIN run_kafka_digests k USING (run_id) \
             WHERE r.status = 'staged' AND r.reconciled_at IS NULL \
             AND r.updated_at < now() - $1 * interval '1 millisecond' \
             ORDER BY r.run_id LIMIT $3",
            &[
                &(state.config.after_ms as f64),
                &(state.config.deadline_ms as f64),
                &i64::from(state.config.batch_runs),
            ],
        )
        .await
        .map_err(Service::Postgres.error("read runs to reconcile"))?;
    let Some(session) = state.session.as_ref() else {
        return Ok(0);
    };
    let ids: Vec<i64> = rows.iter().map(|r| r.get::<_, i64>(0)).collect();
    let cassandra = readback::committed_runs(
        session,
        &state.keyspace,
        &state.raw,
        0..state.kafka_config.topics.raw.partitions,
        &ids,
    )
    .await?;
    let mut checked = 0;
    for row in &rows {
        let run: i64 = row.get(0);
        let digest = |count: i64, xor: i64| Digest {
            count: count.unsigned_abs(),
            xor,
        };
        let staged = digest(i64::from(row.get::<_, i32>(1)), row.get(2));
        let kafka = digest(row.get(3), row.get(4));
        let dead = digest(row.get(5), row.get(6));
        let rows_there = cassandra.get(&run).copied().unwrap_or_default();
        let verdict = verdict(staged, kafka, dead, rows_there, row.get(7));
        let Some(label) = verdict.label() else {
            continue;
        };
        checked += 1;
        client
            .execute(
                "UPDATE runs SET reconciled_at = now(), reconcile_result = $2 WHERE run_id = $1",
                &[&run, &label],
            )
            .await
            .map_err(Service::Postgres.error("record a verdict"))?;
        if verdict != Verdict::Ok {
            metrics::counter!("tributary_reconcile_failures_total", "kind" => label).increment(1);
            tracing::error!(
                run_id = run,
                seed = row.get::<_, Option<String>>(8).unwrap_or_default(),
                page = row.get::<_, Option<i32>>(9).unwrap_or_default(),
                staged = staged.count,
                in_kafka = kafka.count,
                dead_lettered = dead.count,
                in_cassandra = rows_there.count,
                kind = label,
                "run failed reconciliation: `tributary verify --runs {run}..{run}` names the users"
            );
        }
    }
    let unreconciled: i64 = client
        .query_one(
            "SELECT count(*) FROM runs WHERE status = 'staged' AND reconciled_at IS NULL \
             AND updated_at < now() - $1 * interval '1 millisecond'",
            &[&(state.config.after_ms as f64)],
        )
        .await
        .map_err(Service::Postgres.error("count unreconciled runs"))?
        .get(0);
    metrics::gauge!("tributary_unreconciled_runs").set(unreconciled as f64);
    Ok(checked)
}

/// Compares Cassandra's aggregates with everything staged, if nothing is in flight;
/// returns whether it could.
async fn check_aggregates(state: &mut ReconcilerState) -> Result<bool, StoreError> {
    let Some(session) = state.session.as_ref() else {
        return Ok(false);
    };
    let partitions: Vec<i32> = (0..state.kafka_config.topics.raw.partitions).collect();
    // 1. Cassandra first.
    let progress = readback::cassandra_progress(
        session,
        &state.keyspace,
        &state.raw,
        partitions.iter().copied(),
    )
    .await?;
    // 2. Then everything staged.
    let client = state
        .pool
        .get()
        .await
        .map_err(Service::Postgres.error("no pooled connection"))?;
    let staged = readback::staged_aggregates(&client).await?;
    let max_id: i64 = client
        .query_one("SELECT coalesce(max(id), 0) FROM staged_users", &[])
        .await
        .map_err(Service::Postgres.error("read the outbox end"))?
        .get(0);
    // 3. All of it published.
    let (kafka, topic, id) = (
        state.kafka_config.clone(),
        state.kafka_config.topics.checkpoints.name.clone(),
        state.transactional_id.clone(),
    );
    let published = tokio::task::spawn_blocking(move || read_checkpoint(&kafka, &topic, &id))
        .await
        .map_err(|e| StoreError::request(Service::Kafka, "checkpoint task", e))?
        .map_err(|e| StoreError::request(Service::Kafka, "read the checkpoint", e))?
        .map_or(0, |c| c.last_outbox_id);
    if published < max_id {
        return Ok(false);
    }
    // 4. And Cassandra has committed every record Kafka holds.
    let (probe, topic, timeout) = (
        state.probe.clone(),
        state.raw.clone(),
        state.kafka_config.request_timeout(),
    );
    let starts: Vec<(i32, i64)> = progress
        .iter()
        .map(|(p, c)| (*p, c.committed_offset + 1))
        .collect();
    let caught_up = tokio::task::spawn_blocking(move || -> Result<bool, KafkaError> {
        for (partition, from) in starts {
            if readback::records_after(&probe, &topic, partition, from, timeout)? {
                return Ok(false);
            }
        }
        Ok(true)
    })
    .await
    .map_err(|e| StoreError::request(Service::Kafka, "probe task", e))?
    .map_err(|e| StoreError::request(Service::Kafka, "probe the raw topic", e))?;
    if !caught_up {
        return Ok(false);
    }
    let differences = readback::aggregate_differences(&readback::totals(&progress), &staged);
    let ok = differences.is_empty();
    if !ok {
        metrics::counter!("tributary_reconcile_failures_total", "kind" => "aggregate").increment(1);
        tracing::error!(
            differences = %differences.join("; "),
            "aggregates differ: Cassandra's partition_state against everything staged"
        );
    }
    client
        .execute(
            "INSERT INTO reconcile_checks (name, checked_at, ok, detail) VALUES ('aggregates', now(), $1, $2) \
             ON CONFLICT (name) DO UPDATE SET checked_at = excluded.checked_at, ok = excluded.ok, detail = excluded.detail",
            &[&ok, &(!ok).then(|| differences.join("; "))],
        )
        .await
        .map_err(Service::Postgres.error("record the aggregate check"))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(count: u64, xor: i64) -> Digest {
        Digest { count, xor }
    }

    #[test]
    fn a_whole_run_is_ok_and_a_short_one_waits_then_is_missing() {
        let staged = d(3, 0b111);
        assert_eq!(verdict(staged, staged, d(0, 0), staged, false), Verdict::Ok);
        let short = d(2, 0b011);
        assert_eq!(
            verdict(staged, staged, d(0, 0), short, false),
            Verdict::Pending
        );
        assert_eq!(
            verdict(staged, staged, d(0, 0), short, true),
            Verdict::Missing
        );
        assert_eq!(
            verdict(staged, short, d(0, 0), short, true),
            Verdict::Missing
        );
        // As many rows, but not the same users.
        assert_eq!(
            verdict(staged, staged, d(0, 0), d(3, 0b101), true),
            Verdict::Missing
        );
    }

    #[test]
    fn poison_records_are_not_expected_in_cassandra() {
        let staged = d(3, 0b111);
        let dead = d(1, 0b100);
        assert_eq!(
            verdict(staged, staged, dead, d(2, 0b011), false),
            Verdict::Ok
        );
    }

    #[test]
    fn more_than_staged_is_final_at_once() {
        let staged = d(3, 0b111);
        assert_eq!(
            verdict(staged, d(4, 0b110), d(0, 0), staged, false),
            Verdict::Duplicated
        );
        assert_eq!(
            verdict(staged, staged, d(0, 0), d(4, 0), false),
            Verdict::Unexpected
        );
    }
}
