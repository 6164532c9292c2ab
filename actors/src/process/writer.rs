//! The writer of one partition: idempotent row upserts ([`super::rows`]), then one
//! lightweight transaction that commits the offset and the partition's absolute
//! aggregates, fenced by its epoch ([`super::progress`]); both through its store
//! ([`super::partition_store`]), so the actor's own tests run it without a cluster.
//!
//! On start it claims the partition by bumping `owner_epoch` with an LWT (a fencing
//! token), then loads the committed offset and aggregates: processing resumes right
//! after the last committed offset, whatever Kafka's group offsets say. A writer whose
//! commit condition fails has been fenced by a newer owner: it stops writing.

use super::handle::PartitionHandle;
use super::messages::WriterMsg;
use super::partition_store::{CassandraStore, PartitionStore};
use super::progress::Committed;
use super::tally::Tally;
use crate::observe::{self, Stage};
use crate::supervisor::shell::{self, Shelled};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::marker::PhantomData;

/// The writer actor, over its store: [`CassandraStore`] in the service, a stand-in in
/// its unit tests.
pub struct Writer<S = CassandraStore>(PhantomData<fn() -> S>);

impl<S> Writer<S> {
    pub fn new() -> Self {
        Writer(PhantomData)
    }
}

impl<S> Default for Writer<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Clone for Writer<S> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

pub struct WriterArgs<S: PartitionStore = CassandraStore> {
    /// How each incarnation opens its store and claims the partition.
    pub open: S::Open,
    /// The partition: where the writer publishes its claim (the offset to resume from,
    /// for the consumer) and reports commits and fencing.
    pub handle: PartitionHandle,
    /// Upsert requests in flight.
    pub write_concurrency: usize,
    /// Newest runs whose digest the partition keeps (`process.run_digests_kept`).
    pub run_digests_kept: usize,
    /// Where the writer registers itself for its transformer.
    pub directory: crate::directory::Directory<WriterMsg>,
}

pub struct WriterState<S: PartitionStore> {
    args: WriterArgs<S>,
    store: S,
    epoch: i64,
    committed_offset: i64,
    /// Aggregates and run digests as committed.
    tally: Tally,
    fenced: bool,
}

impl<S: PartitionStore> Actor for Writer<S> {
    type Msg = WriterMsg;
    type State = WriterState<S>;
    type Arguments = WriterArgs<S>;

    async fn pre_start(
        &self,
        myself: ActorRef<WriterMsg>,
        args: WriterArgs<S>,
    ) -> Result<WriterState<S>, ActorProcessingErr> {
        let partition = args.handle.partition();
        let (
            store,
            epoch,
            Committed {
                offset: committed_offset,
                aggregates,
                runs,
            },
        ) = S::open(&args.open, partition).await?;
        args.handle.claimed(epoch, committed_offset);
        tracing::info!(partition, epoch, committed_offset, "partition claimed");
        args.directory.register(myself);
        Ok(WriterState {
            args,
            store,
            epoch,
            committed_offset,
            tally: Tally::loaded(aggregates, runs),
            fenced: false,
        })
    }

    shell::handle!();
}

impl<S: PartitionStore> Shelled for Writer<S> {
    const KIND: &'static str = "writer";

    fn partition(&self, _: &WriterMsg, state: &WriterState<S>) -> Option<i32> {
        Some(state.args.handle.partition())
    }

    async fn on_message(
        &self,
        _: ActorRef<WriterMsg>,
        message: WriterMsg,
        state: &mut WriterState<S>,
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
                    db.namespace = %state.store.keyspace(),
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
            .store
            .upsert(&batch.users, state.args.write_concurrency)
            .await;
        if let Err(error) = upserted {
            crate::trace::mark_failed(&spans);
            return Err(error);
        }
        if let Some(n) = crate::failpoint::BEFORE_OFFSET_COMMIT.fires() {
            return Err(format!("injected fault: batch {n} upserted, not committed").into());
        }
        let folded = state
            .tally
            .fold(&batch.users, batch.last_offset, state.args.run_digests_kept);
        let committed = state
            .store
            .commit(state.epoch, batch.last_offset, folded.changes())
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

#[cfg(test)]
mod tests {
    //! The writer as an actor, against a stand-in store: what it writes, commits, skips
    //! and reports for each batch. The integration tests and the chaos suite prove the
    //! same against the real Cassandra.

    use super::*;
    use crate::directory::Directory;
    use crate::model::CreatedUser;
    use crate::observe::Partitions;
    use crate::process::handle::PartitionReport;
    use crate::process::messages::WriteBatch;
    use crate::process::progress::Changes;
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use tokio::sync::mpsc;
    use tokio::time::timeout;

    /// The claim the stand-in gives: epoch 7, offsets up to 19 committed.
    const EPOCH: i64 = 7;
    const COMMITTED: i64 = 19;
    const PATIENCE: Duration = Duration::from_secs(10);

    /// What the stand-in store was asked, and how it answers.
    #[derive(Default)]
    struct Seen {
        /// Offsets of the users whose rows were upserted, in order.
        upserted: Vec<i64>,
        /// (offset, epoch) of each commit that took.
        commits: Vec<(i64, i64)>,
        /// A newer owner claimed the partition: commits fail their condition.
        fenced: bool,
        /// No node answers: upserts fail.
        down: bool,
        /// The commit's request fails (a timeout: whether it took is unknown).
        commit_fails: bool,
    }

    type Shared = Arc<Mutex<Seen>>;

    struct StandIn(Shared);

    impl PartitionStore for StandIn {
        type Open = Shared;

        async fn open(open: &Shared, _: i32) -> Result<(Self, i64, Committed), ActorProcessingErr> {
            let committed = Committed {
                offset: COMMITTED,
                aggregates: BTreeMap::new(),
                runs: BTreeMap::new(),
            };
            Ok((StandIn(open.clone()), EPOCH, committed))
        }

        fn keyspace(&self) -> &str {
            "stand_in"
        }

        async fn upsert(&self, users: &[CreatedUser], _: usize) -> Result<(), ActorProcessingErr> {
            let mut seen = self.0.lock().unwrap();
            if seen.down {
                return Err("no node answered".into());
            }
            seen.upserted
                .extend(users.iter().map(|u| u.provenance.offset));
            Ok(())
        }

        async fn commit(
            &self,
            epoch: i64,
            offset: i64,
            _: Changes<'_>,
        ) -> Result<bool, ActorProcessingErr> {
            let mut seen = self.0.lock().unwrap();
            if seen.commit_fails {
                return Err("commit timed out".into());
            }
            if seen.fenced {
                return Ok(false);
            }
            seen.commits.push((offset, epoch));
            Ok(true)
        }
    }

    /// A writer started over `seen`, the handle of its partition (counting afresh, as
    /// the coordinator does when the pipeline is ready), and its reports.
    struct Started {
        writer: ActorRef<WriterMsg>,
        stopped: tokio::task::JoinHandle<()>,
        handle: PartitionHandle,
        reports: mpsc::UnboundedReceiver<PartitionReport>,
        batches: Arc<AtomicU64>,
    }

    async fn start(seen: &Shared) -> Started {
        let (reported, reports) = mpsc::unbounded_channel();
        let handle = PartitionHandle::new(
            2,
            Partitions::default(),
            Arc::new(move |_, report| {
                let _ = reported.send(report);
            }),
        );
        let (writer, stopped) = Actor::spawn(
            None,
            Writer::<StandIn>::new(),
            WriterArgs {
                open: seen.clone(),
                handle: handle.clone(),
                write_concurrency: 1,
                run_digests_kept: 10,
                directory: Directory::default(),
            },
        )
        .await
        .unwrap();
        handle.restart_counts();
        Started {
            writer,
            stopped,
            handle,
            reports,
            batches: Arc::new(AtomicU64::new(0)),
        }
    }

    impl Started {
        /// Routes the records at `offsets` and sends them to the writer as one batch.
        fn write(&self, offsets: std::ops::Range<i64>) {
            let users: Vec<CreatedUser> = offsets
                .clone()
                .map(|o| {
                    let id = uuid::Uuid::from_u128(o as u128);
                    CreatedUser::for_test(id, "France", "female", o, Some(1))
                })
                .collect();
            self.handle.routed(users.len());
            let lease = self.handle.lease(&self.batches, users.len());
            let batch = WriteBatch {
                users,
                last_offset: offsets.end - 1,
                traces: Vec::new(),
                lease,
            };
            self.writer.send_message(WriterMsg::Write(batch)).unwrap();
        }

        async fn report(&mut self) -> PartitionReport {
            timeout(PATIENCE, self.reports.recv())
                .await
                .expect("a report")
                .unwrap()
        }
    }

    /// Waits until `done` (the writer works on its own task).
    async fn until(what: &str, done: impl Fn() -> bool) {
        let waited = timeout(PATIENCE, async {
            while !done() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(waited.is_ok(), "waited {PATIENCE:?} for {what}");
    }

    fn committed(report: PartitionReport) -> i64 {
        match report {
            PartitionReport::Committed { offset } => offset,
            other => panic!("not a commit: {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn it_resumes_after_its_claim_commits_each_batch_once_and_skips_replays() {
        let seen = Shared::default();
        let mut w = start(&seen).await;
        assert_eq!(w.handle.resume_at(), Some(COMMITTED + 1));

        w.write(20..23);
        assert_eq!(committed(w.report().await), 22);
        // Replayed after a restart: at or below the committed offset, nothing to do.
        w.write(15..20);
        w.write(20..23);
        w.write(23..25);
        assert_eq!(committed(w.report().await), 24);

        {
            let seen = seen.lock().unwrap();
            assert_eq!(seen.upserted, [20, 21, 22, 23, 24]);
            assert_eq!(seen.commits, [(22, EPOCH), (24, EPOCH)]);
        }
        // Every routed record settled (committed or skipped), every batch done with (a
        // lease stops counting when dropped, just after its commit is reported).
        assert_eq!(w.handle.buffered(), 0);
        until("no batch in flight", || {
            w.batches.load(Ordering::SeqCst) == 0
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fenced_it_reports_once_and_writes_nothing_more() {
        let seen = Shared::default();
        let mut w = start(&seen).await;
        seen.lock().unwrap().fenced = true;

        w.write(20..22);
        match w.report().await {
            PartitionReport::Fenced { epoch } => assert_eq!(epoch, EPOCH),
            other => panic!("not fenced: {other:?}"),
        }
        w.write(22..24);
        // The second batch is skipped (its 2 records settle); the fenced one's records
        // were not committed and stay counted until the coordinator stops the pipeline.
        until("2 records buffered", || w.handle.buffered() == 2).await;
        assert!(w.reports.try_recv().is_err(), "one report only");
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen.upserted,
            [20, 21],
            "rows idempotent, written before the fence"
        );
        assert!(seen.commits.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_upsert_or_commit_stops_it_with_the_records_counted() {
        let failures: [fn(&mut Seen); 2] = [|s| s.down = true, |s| s.commit_fails = true];
        for fail in failures {
            let seen = Shared::default();
            let mut w = start(&seen).await;
            fail(&mut seen.lock().unwrap());

            w.write(20..22);
            timeout(PATIENCE, &mut w.stopped)
                .await
                .expect("the writer stops: its supervisor restarts the pipeline")
                .unwrap();
            assert!(w.reports.try_recv().is_err(), "no report");
            assert!(seen.lock().unwrap().commits.is_empty());
            // The batch died with the writer: it no longer counts in flight, but its
            // records were not committed, so a drain still waits for them.
            until("no batch in flight", || {
                w.batches.load(Ordering::SeqCst) == 0
            })
            .await;
            assert_eq!(w.handle.buffered(), 2);
        }
    }
}
