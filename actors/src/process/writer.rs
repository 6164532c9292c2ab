//! The writer of one partition: idempotent row upserts ([`super::rows`]), then one
//! lightweight transaction that commits the offset and the partition's absolute
//! aggregates, fenced by its epoch ([`super::progress`]).
//!
//! On start it claims the partition by bumping `owner_epoch` with an LWT (a fencing
//! token), then loads the committed offset and aggregates: processing resumes right
//! after the last committed offset, whatever Kafka's group offsets say. A writer whose
//! commit condition fails has been fenced by a newer owner: it stops writing.

use super::handle::PartitionHandle;
use super::messages::WriterMsg;
use super::progress::{Committed, PartitionProgress};
use super::rows::Upserts;
use super::tally::Tally;
use crate::observe::{self, Stage};
use crate::store::Service;
use crate::supervisor::shell::{self, Shelled};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use scylla::client::session::Session;

#[derive(Debug, Clone, Copy)]
pub struct Writer;

pub struct WriterArgs {
    /// Each incarnation opens its own session: a driver session does not always
    /// recover when every node of the cluster restarts, a fresh one does.
    pub cassandra: crate::store::cassandra::Config,
    pub keyspace: String,
    pub topic: String,
    /// The partition: where the writer publishes its claim (the offset to resume from,
    /// for the consumer) and reports commits and fencing.
    pub handle: PartitionHandle,
    /// This instance's name, stored as the partition's owner.
    pub owner: String,
    /// Upsert requests in flight.
    pub write_concurrency: usize,
    /// Rows per upsert request (see [`super::rows`]).
    pub rows_per_request: usize,
    /// Newest runs whose digest the partition keeps (`process.run_digests_kept`).
    pub run_digests_kept: usize,
    /// Where the writer registers itself for its transformer.
    pub directory: crate::directory::Directory<WriterMsg>,
}

pub struct WriterState {
    args: WriterArgs,
    session: Session,
    upserts: Upserts,
    progress: PartitionProgress,
    epoch: i64,
    committed_offset: i64,
    /// Aggregates and run digests as committed.
    tally: Tally,
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
        let upserts = Upserts::prepare(&session, ks, args.rows_per_request)
            .await
            .map_err(Service::Cassandra.error("cannot prepare a statement"))?;
        let partition = args.handle.partition();
        let progress =
            PartitionProgress::prepare(&session, &args.cassandra, ks, &args.topic, partition)
                .await?;
        let epoch = progress.claim(&session, &args.owner).await?;
        let Committed {
            offset: committed_offset,
            aggregates,
            runs,
        } = progress.load(&session).await?;
        args.handle.claimed(epoch, committed_offset);
        tracing::info!(partition, epoch, committed_offset, "partition claimed");
        args.directory.register(myself);
        Ok(WriterState {
            args,
            session,
            upserts,
            progress,
            epoch,
            committed_offset,
            tally: Tally::loaded(aggregates, runs),
            fenced: false,
        })
    }

    shell::handle!();
}

impl Shelled for Writer {
    const KIND: &'static str = "writer";

    fn partition(&self, _: &WriterMsg, state: &WriterState) -> Option<i32> {
        Some(state.args.handle.partition())
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
            batch.lease.skipped();
            return Ok(());
        }
        let partition = state.args.handle.partition();
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
                    messaging.destination.partition.id = partition,
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
            .write(&state.session, &batch.users, state.args.write_concurrency)
            .await
            .map_err(Service::Cassandra.error("upsert created_users"));
        if let Err(error) = upserted {
            crate::trace::mark_failed(&spans);
            return Err(error.into());
        }
        if let Some(n) = crate::failpoint::BEFORE_OFFSET_COMMIT.fires() {
            return Err(format!("injected fault: batch {n} upserted, not committed").into());
        }
        let folded = state
            .tally
            .fold(&batch.users, batch.last_offset, state.args.run_digests_kept);
        let committed = state
            .progress
            .commit(
                &state.session,
                state.epoch,
                batch.last_offset,
                folded.changes(),
            )
            .await;
        if !matches!(committed, Ok(true)) {
            crate::trace::mark_failed(&spans);
        }
        drop(spans);
        if committed? {
            state.committed_offset = batch.last_offset;
            state.tally = folded.tally;
            batch.lease.committed(batch.last_offset, batch.users.len());
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
        } else {
            state.fenced = true;
            tracing::warn!(
                partition,
                epoch = state.epoch,
                "writer fenced by a newer owner: it stops writing"
            );
            metrics::counter!("tributary_writer_fenced_total").increment(1);
            state.args.handle.fenced(state.epoch);
        }
        Ok(())
    }
}
