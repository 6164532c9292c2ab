//! The writer of one partition: idempotent row upserts, then one lightweight transaction
//! that commits the offset and the partition's absolute aggregates, fenced by its epoch.
//!
//! On start it claims the partition by bumping `owner_epoch` with an LWT (a fencing
//! token), then loads the committed offset and aggregates: processing resumes right
//! after the last committed offset, whatever Kafka's group offsets say. A writer whose
//! commit condition fails has been fenced by a newer owner: it stops writing.

use super::messages::{CoordinatorMsg, WriterMsg};
use super::rows::Upserts;
use crate::model::digest::{Digest, RunBucket, run_buckets};
use crate::observe::{self, Stage};
use crate::store::{Service, StoreError, cassandra};
use crate::supervisor::shell::{self, Shelled};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use scylla::client::session::Session;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlTimestamp, CqlValue};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy)]
pub struct Writer;

pub struct WriterArgs {
    /// Each incarnation opens its own session: a driver session does not always
    /// recover when every node of the cluster restarts, a fresh one does.
    pub cassandra: crate::store::cassandra::Config,
    pub keyspace: String,
    pub topic: String,
    pub partition: i32,
    /// This instance's name, stored as the partition's owner.
    pub owner: String,
    /// Upsert requests in flight.
    pub write_concurrency: usize,
    /// Rows per upsert request (see [`super::rows`]).
    pub rows_per_request: usize,
    /// Newest runs whose digest the partition keeps (`process.run_digests_kept`).
    pub run_digests_kept: usize,
    pub coordinator: ActorRef<CoordinatorMsg>,
    /// Records routed to this partition and not yet committed (the poll thread stops
    /// reading the partition at a bound); the writer subtracts what it commits.
    pub buffered: Arc<AtomicUsize>,
    /// Where the writer publishes the offset to resume from, for the consumer.
    pub start: Arc<Mutex<Option<i64>>>,
    /// Where the writer registers itself for its transformer.
    pub directory: crate::directory::Directory<WriterMsg>,
    pub partitions: observe::Partitions,
}

impl WriterArgs {
    /// A batch is done with (committed, or nothing to do): its records stop counting as
    /// buffered and it stops counting as in flight; `also` updates the partition status.
    fn settle(&self, records: usize, also: impl FnOnce(&mut observe::PartitionStatus)) {
        self.buffered.fetch_sub(
            records.min(self.buffered.load(Ordering::SeqCst)),
            Ordering::SeqCst,
        );
        self.partitions.update(self.partition, |p| {
            p.in_flight_batches = p.in_flight_batches.saturating_sub(1);
            also(p);
        });
    }
}

pub struct WriterState {
    args: WriterArgs,
    session: Session,
    upserts: Upserts,
    commit: PreparedStatement,
    set_bucket: PreparedStatement,
    delete_bucket: PreparedStatement,
    epoch: i64,
    committed_offset: i64,
    /// Absolute counts per bucket (e.g. `country:France`) as committed.
    aggregates: BTreeMap<String, i64>,
    /// The digest of each recent run's users written from this partition, as committed
    /// (the reconciler's Cassandra side of a run).
    runs: BTreeMap<i64, Digest>,
    /// The last offset this incarnation wrote for each run (runs loaded at claim and not
    /// written since count as oldest).
    last_written: std::collections::HashMap<i64, i64>,
    fenced: bool,
}

impl Actor for Writer {
    type Msg = WriterMsg;
    type State = WriterState;
    type Arguments = WriterArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<WriterMsg>,
        args: WriterArgs,
    ) -> Result<WriterState, ActorProcessingErr> {
        let session = crate::store::cassandra::connect(&args.cassandra).await?;
        let ks = &args.keyspace;
        let session_ref = &session;
        let cannot_prepare =
            |e| StoreError::request(Service::Cassandra, "cannot prepare a statement", e);
        let prepare =
            |cql: String| async move { session_ref.prepare(cql).await.map_err(cannot_prepare) };
        let upserts = Upserts::prepare(&session, ks, args.rows_per_request)
            .await
            .map_err(cannot_prepare)?;
        let commit = prepare(format!(
            "UPDATE {ks}.partition_state SET committed_offset = ?, updated_at = ? WHERE topic = ? AND partition = ? \
             IF owner_epoch = ?"
        ))
        .await?;
        let set_bucket = prepare(format!(
            "UPDATE {ks}.partition_state SET user_count = ? WHERE topic = ? AND partition = ? AND bucket = ?"
        ))
        .await?;
        let delete_bucket = prepare(format!(
            "DELETE FROM {ks}.partition_state WHERE topic = ? AND partition = ? AND bucket = ?"
        ))
        .await?;

        let epoch = claim(&args, &session).await?;
        let Committed {
            offset: committed_offset,
            aggregates,
            runs,
        } = load(&args, &session).await?;
        *args.start.lock().unwrap_or_else(|p| p.into_inner()) = Some(committed_offset + 1);
        tracing::info!(
            partition = args.partition,
            epoch,
            committed_offset,
            "partition claimed"
        );
        args.partitions.update(args.partition, |p| {
            p.owner_epoch = Some(epoch);
            p.committed_offset = Some(committed_offset);
        });
        args.directory.register(myself);
        Ok(WriterState {
            args,
            session,
            upserts,
            commit,
            set_bucket,
            delete_bucket,
            epoch,
            committed_offset,
            aggregates,
            runs,
            last_written: std::collections::HashMap::new(),
            fenced: false,
        })
    }

    shell::handle!();
}

impl Shelled for Writer {
    const KIND: &'static str = "writer";

    fn partition(&self, _: &WriterMsg, state: &WriterState) -> Option<i32> {
        Some(state.args.partition)
    }

    async fn on_message(
        &self,
        _: ActorRef<WriterMsg>,
        message: WriterMsg,
        state: &mut WriterState,
    ) -> Result<(), ActorProcessingErr> {
        let WriterMsg::Write(batch) = message;
        if state.fenced || batch.last_offset <= state.committed_offset {
            // Fenced: a newer owner writes this partition now. Or already committed
            // (a batch replayed after a restart): nothing to do.
            state.args.settle(batch.records, |_| {});
            return Ok(());
        }
        let started = std::time::Instant::now();
        let spans: Vec<tracing::Span> = batch
            .traces
            .iter()
            .map(|parent| {
                let span = tracing::info_span!(
                    parent: None,
                    "write",
                    otel.name = "INSERT created_users",
                    otel.kind = "client",
                    tributary.stage = "write",
                    db.system.name = "cassandra",
                    db.namespace = %state.args.keyspace,
                    db.collection.name = "created_users",
                    db.operation.name = "INSERT",
                    db.operation.batch.size = batch.users.len(),
                    messaging.destination.partition.id = state.args.partition,
                    tributary.committed_offset = batch.last_offset,
                    tributary.owner_epoch = state.epoch,
                    otel.status_code = tracing::field::Empty,
                );
                crate::trace::set_parent(&span, parent);
                span
            })
            .collect();
        let upserted = state
            .upserts
            .write_retrying(&state.session, &batch.users, state.args.write_concurrency)
            .await
            .map_err(Service::Cassandra.error("upsert created_users"));
        if let Err(error) = upserted {
            crate::trace::mark_failed(&spans);
            return Err(error.into());
        }
        if crate::failpoint::BEFORE_OFFSET_COMMIT.fires() {
            let n = crate::failpoint::BEFORE_OFFSET_COMMIT.hits();
            return Err(format!("injected fault: batch {n} upserted, not committed").into());
        }
        let mut aggregates = state.aggregates.clone();
        let mut touched = std::collections::BTreeSet::new();
        let mut runs = state.runs.clone();
        let mut runs_touched = std::collections::BTreeSet::new();
        for user in &batch.users {
            for bucket in user.buckets() {
                *aggregates.entry(bucket.clone()).or_insert(0) += 1;
                touched.insert(bucket);
            }
            if let Some(run) = user.provenance.run_id {
                runs.entry(run).or_default().add(user.id);
                runs_touched.insert(run);
            }
        }
        // Bounded: the digests of the runs written least recently (not the lowest ids: a
        // run retried late is as new as the newest) go in the same commit.
        let mut last_written = state.last_written.clone();
        for run in &runs_touched {
            last_written.insert(*run, batch.last_offset);
        }
        let mut runs_dropped = Vec::new();
        while runs.len() > state.args.run_digests_kept {
            let Some(run) = runs
                .keys()
                .min_by_key(|run| (last_written.get(*run).copied().unwrap_or(-1), **run))
                .copied()
            else {
                break;
            };
            runs.remove(&run);
            last_written.remove(&run);
            runs_touched.remove(&run);
            runs_dropped.push(run);
        }
        let changes = Changes {
            aggregates: &aggregates,
            touched: &touched,
            runs: &runs,
            runs_touched: &runs_touched,
            runs_dropped: &runs_dropped,
        };
        let committed = commit(state, batch.last_offset, changes).await;
        if !matches!(committed, Ok(true)) {
            crate::trace::mark_failed(&spans);
        }
        drop(spans);
        if committed? {
            state.committed_offset = batch.last_offset;
            state.aggregates = aggregates;
            state.runs = runs;
            state.last_written = last_written;
            state.args.settle(batch.records, |p| {
                p.committed_offset = Some(batch.last_offset);
                p.written += batch.users.len() as u64;
            });
            observe::record(Stage::Written, batch.users.len() as u64);
            // End-to-end latency: staging commit (header) → this Cassandra commit.
            let now_ms = chrono::Utc::now().timestamp_millis();
            let latency = metrics::histogram!("tributary_staged_to_committed_seconds");
            for user in &batch.users {
                if let Some(staged) = user.provenance.staged_at_ms {
                    latency.record((now_ms - staged).max(0) as f64 / 1000.0);
                }
            }
            metrics::histogram!("tributary_write_batch_seconds")
                .record(started.elapsed().as_secs_f64());
            let _ = state
                .args
                .coordinator
                .send_message(CoordinatorMsg::Committed {
                    partition: state.args.partition,
                    offset: batch.last_offset,
                });
        } else {
            state.fenced = true;
            tracing::warn!(
                partition = state.args.partition,
                epoch = state.epoch,
                "writer fenced by a newer owner: it stops writing"
            );
            metrics::counter!("tributary_writer_fenced_total").increment(1);
            let _ = state.args.coordinator.send_message(CoordinatorMsg::Fenced {
                partition: state.args.partition,
                epoch: state.epoch,
            });
        }
        Ok(())
    }
}

/// What a commit writes besides the offset: the aggregate buckets and run digests it
/// changed (absolute values), and the run digests it drops.
struct Changes<'a> {
    aggregates: &'a BTreeMap<String, i64>,
    touched: &'a std::collections::BTreeSet<String>,
    runs: &'a BTreeMap<i64, Digest>,
    runs_touched: &'a std::collections::BTreeSet<i64>,
    runs_dropped: &'a [i64],
}

/// Commits the offset, aggregates and run digests in one conditional batch; false when
/// fenced.
async fn commit(
    state: &WriterState,
    offset: i64,
    changes: Changes<'_>,
) -> Result<bool, StoreError> {
    let (topic, partition) = (&state.args.topic, state.args.partition);
    let mut batch = Batch::new(BatchType::Logged);
    // The batch's serial consistency is the session's (cassandra.serial_consistency).
    batch.append_statement(state.commit.clone());
    let now = CqlTimestamp(chrono::Utc::now().timestamp_millis());
    let mut values: Vec<Vec<CqlValue>> = vec![vec![
        CqlValue::BigInt(offset),
        CqlValue::Timestamp(now),
        CqlValue::Text(topic.clone()),
        CqlValue::Int(partition),
        CqlValue::BigInt(state.epoch),
    ]];
    let mut set = |bucket: String, value: i64| {
        batch.append_statement(state.set_bucket.clone());
        values.push(vec![
            CqlValue::BigInt(value),
            CqlValue::Text(topic.clone()),
            CqlValue::Int(partition),
            CqlValue::Text(bucket),
        ]);
    };
    for bucket in changes.touched {
        set(
            bucket.clone(),
            changes.aggregates.get(bucket).copied().unwrap_or(0),
        );
    }
    for run in changes.runs_touched {
        let digest = changes.runs.get(run).copied().unwrap_or_default();
        let (users, xor) = run_buckets(*run);
        set(users, digest.count as i64);
        set(xor, digest.xor);
    }
    for run in changes.runs_dropped {
        let (users, xor) = run_buckets(*run);
        for bucket in [users, xor] {
            batch.append_statement(state.delete_bucket.clone());
            values.push(vec![
                CqlValue::Text(topic.clone()),
                CqlValue::Int(partition),
                CqlValue::Text(bucket),
            ]);
        }
    }
    let result = state
        .session
        .batch(&batch, values)
        .await
        .map_err(Service::Cassandra.error("commit offset and aggregates"))?;
    Ok(lwt_applied(result))
}

/// The `[applied]` column of a conditional statement's result.
pub fn lwt_applied(result: scylla::response::query_result::QueryResult) -> bool {
    result
        .into_rows_result()
        .ok()
        .and_then(|rows| rows.first_row::<scylla::value::Row>().ok())
        .is_some_and(|row| matches!(row.columns.first(), Some(Some(CqlValue::Boolean(true)))))
}

/// Bumps the partition's owner epoch with a lightweight transaction; returns ours.
async fn claim(args: &WriterArgs, session: &Session) -> Result<i64, StoreError> {
    let ks = &args.keyspace;
    for _ in 0..20 {
        let mut read = cassandra::idempotent(format!(
            "SELECT owner_epoch FROM {ks}.partition_state WHERE topic = ? AND partition = ? LIMIT 1"
        ));
        read.set_consistency(args.cassandra.serial_consistency.for_reads());
        let current: Option<i64> = session
            .query_unpaged(read, (&args.topic, args.partition))
            .await
            .map_err(Service::Cassandra.error("read owner epoch"))?
            .into_rows_result()
            .ok()
            .and_then(|rows| rows.maybe_first_row::<(Option<i64>,)>().ok().flatten())
            .and_then(|(epoch,)| epoch);
        let (cql, next) = match current {
            None => (
                format!(
                    "INSERT INTO {ks}.partition_state (topic, partition, owner_epoch, committed_offset, owner, updated_at) \
                     VALUES (?, ?, 1, -1, ?, toTimestamp(now())) IF NOT EXISTS"
                ),
                1,
            ),
            Some(epoch) => (
                format!(
                    "UPDATE {ks}.partition_state SET owner_epoch = {}, owner = ?, updated_at = toTimestamp(now()) \
                     WHERE topic = ? AND partition = ? IF owner_epoch = {epoch}",
                    epoch + 1
                ),
                epoch + 1,
            ),
        };
        let applied = if current.is_none() {
            session
                .query_unpaged(cql, (&args.topic, args.partition, &args.owner))
                .await
        } else {
            session
                .query_unpaged(cql, (&args.owner, &args.topic, args.partition))
                .await
        }
        .map_err(Service::Cassandra.error("claim the partition"))?;
        if lwt_applied(applied) {
            return Ok(next);
        }
        // Another owner claimed it between our read and our write: read again.
    }
    Err(StoreError::request(
        Service::Cassandra,
        format!(
            "partition {} of {}: could not claim ownership (contention)",
            args.partition, args.topic
        ),
        Box::<dyn std::error::Error + Send + Sync>::from("owner epoch contention"),
    ))
}

/// A partition's state as committed.
struct Committed {
    offset: i64,
    aggregates: BTreeMap<String, i64>,
    runs: BTreeMap<i64, Digest>,
}

/// The committed offset, aggregates and run digests, read at the serial consistency
/// (`cassandra.serial_consistency`) so every committed LWT is visible.
async fn load(args: &WriterArgs, session: &Session) -> Result<Committed, StoreError> {
    let mut read = cassandra::idempotent(format!(
        "SELECT committed_offset, bucket, user_count FROM {}.partition_state WHERE topic = ? AND partition = ?",
        args.keyspace
    ));
    read.set_consistency(args.cassandra.serial_consistency.for_reads());
    let rows = session
        .query_unpaged(read, (&args.topic, args.partition))
        .await
        .map_err(Service::Cassandra.error("read partition state"))?
        .into_rows_result()
        .map_err(|e| StoreError::request(Service::Cassandra, "unexpected partition state", e))?;
    let mut offset = -1;
    let mut aggregates = BTreeMap::new();
    let mut runs = BTreeMap::new();
    for row in rows
        .rows::<(Option<i64>, Option<String>, Option<i64>)>()
        .map_err(|e| StoreError::request(Service::Cassandra, "unexpected partition state", e))?
    {
        let (committed, bucket, count) = row.map_err(|e| {
            StoreError::request(Service::Cassandra, "unexpected partition state row", e)
        })?;
        offset = committed.unwrap_or(-1);
        if let (Some(bucket), Some(value)) = (bucket, count) {
            match RunBucket::parse(&bucket) {
                Some(part) => part.apply(value, &mut runs),
                None => {
                    aggregates.insert(bucket, value);
                }
            }
        }
    }
    Ok(Committed {
        offset,
        aggregates,
        runs,
    })
}
