//! One partition's bookkeeping, in one place: the [`PartitionHandle`] the coordinator
//! makes when the partition is assigned and every part of its pipeline shares (the poll
//! thread's route, the consumer, the writer), and the [`BatchLease`] each batch carries
//! from the consumer's flush until the writer is done with it.
//!
//! The handle holds what outlives a pipeline's incarnation: the records routed and not
//! yet committed (the poll thread's bound, what a drain waits for), the offset the
//! writer's claim resumes at, the partition's status, and the way back to the
//! coordinator ([`PartitionReport`]). Nothing here knows the coordinator's message type:
//! the pipeline reports through a function the coordinator gave.

use crate::observe::{PartitionStatus, Partitions};
use ractor::ActorCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What a partition's pipeline tells its coordinator.
#[derive(Debug, Clone)]
pub enum PartitionReport {
    /// The pipeline is up (every actor started) and resumes at `next_offset`; records
    /// go to `consumer` (its consumer actor, a `PartitionConsumerMsg` actor). A late
    /// report of an incarnation that died names a consumer that is gone: the first
    /// record sent to it drops the route, as it would for any dead consumer.
    Ready {
        next_offset: i64,
        consumer: ActorCell,
    },
    /// The writer committed `offset` in Cassandra.
    Committed { offset: i64 },
    /// The writer found a newer owner epoch than its own `epoch`: the partition belongs
    /// to another instance.
    Fenced { epoch: i64 },
}

/// The coordinator's side of [`PartitionReport`]s: called from the pipeline's actors.
pub type Reporter = Arc<dyn Fn(i32, PartitionReport) + Send + Sync>;

/// One assigned partition, shared by its route and its pipeline's actors (cheap to
/// clone). See the module documentation.
#[derive(Clone)]
pub struct PartitionHandle(Arc<Shared>);

struct Shared {
    partition: i32,
    counts: Mutex<Counts>,
    /// The offset after the one committed in Cassandra, published by the writer's
    /// claim for the consumer (started after it).
    resume_at: Mutex<Option<i64>>,
    partitions: Partitions,
    report: Reporter,
}

/// What the handle counts, under one lock: a lease compares its incarnation and
/// settles in one step.
#[derive(Debug, Default)]
struct Counts {
    /// Which incarnation of the pipeline counts: one more at each
    /// [`PartitionHandle::restart_counts`]. A lease of an earlier one settles nothing.
    incarnation: u64,
    /// Records routed to the pipeline and not yet committed (or skipped as committed
    /// before). A batch lost with a failed incarnation stays counted until the next
    /// incarnation starts the count afresh: its records were not committed, and a drain
    /// must not take them for committed.
    buffered: usize,
    /// The partition was revoked: nothing counts any more, and nothing late may bring
    /// it back into the status.
    retired: bool,
}

impl PartitionHandle {
    pub fn new(partition: i32, partitions: Partitions, report: Reporter) -> Self {
        Self(Arc::new(Shared {
            partition,
            counts: Mutex::default(),
            resume_at: Mutex::new(None),
            partitions,
            report,
        }))
    }

    pub fn partition(&self) -> i32 {
        self.0.partition
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.0.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes the partition's status entry (creating it).
    pub fn status(&self, f: impl FnOnce(&mut PartitionStatus)) {
        self.0.partitions.update(self.0.partition, f);
    }

    /// The poll thread sent `records` to the pipeline.
    pub fn routed(&self, records: usize) {
        let mut counts = self.counts();
        if !counts.retired {
            counts.buffered += records;
        }
    }

    /// Records routed and not yet committed.
    pub fn buffered(&self) -> usize {
        self.counts().buffered
    }

    /// The coordinator, when a new incarnation of the pipeline reported ready and
    /// before it routes records to it: whatever an earlier incarnation held died with
    /// it (it is read again from the committed offset), so nothing counts as buffered or
    /// in flight, and an earlier incarnation's lease settles nothing from now on.
    pub fn restart_counts(&self) {
        let mut counts = self.counts();
        counts.incarnation += 1;
        counts.buffered = 0;
        self.status(|p| p.in_flight_batches = 0);
    }

    /// The coordinator, when the partition is revoked.
    pub fn retire(&self) {
        self.counts().retired = true;
    }

    /// The writer claimed the partition at `epoch`, its last committed offset
    /// `committed_offset`: the pipeline resumes after it.
    pub fn claimed(&self, epoch: i64, committed_offset: i64) {
        *self.0.resume_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(committed_offset + 1);
        if self.counts().retired {
            return; // a claim that finished after the revocation: no status comes back
        }
        self.status(|p| {
            p.owner_epoch = Some(epoch);
            p.committed_offset = Some(committed_offset);
        });
    }

    /// Where the pipeline resumes, once its writer has claimed the partition.
    pub fn resume_at(&self) -> Option<i64> {
        *self.0.resume_at.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pipeline is up and resumes at `next_offset`, its records to go to
    /// `consumer`.
    pub fn ready(&self, next_offset: i64, consumer: ActorCell) {
        self.report(PartitionReport::Ready {
            next_offset,
            consumer,
        });
    }

    /// The writer was fenced at `epoch`.
    pub fn fenced(&self, epoch: i64) {
        self.report(PartitionReport::Fenced { epoch });
    }

    fn report(&self, report: PartitionReport) {
        (self.0.report)(self.0.partition, report);
    }

    /// The lease of a batch of `records` the consumer flushes, counted among
    /// `batches` (the consumer incarnation's own count of its batches in flight, which
    /// its pipeline depth reads).
    pub fn lease(&self, batches: &Arc<AtomicU64>, records: usize) -> BatchLease {
        batches.fetch_add(1, Ordering::SeqCst);
        let counts = self.counts();
        if !counts.retired {
            self.status(|p| p.in_flight_batches += 1);
        }
        BatchLease {
            handle: self.clone(),
            incarnation: counts.incarnation,
            batches: batches.clone(),
            records,
        }
    }
}

impl std::fmt::Debug for PartitionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionHandle")
            .field("partition", &self.0.partition)
            .field("counts", &*self.counts())
            .finish()
    }
}

/// A batch's acknowledgement, carried with it from the consumer's flush to the writer.
/// While it lives the batch counts in flight (the consumer's pipeline depth, the
/// status); dropped — wherever that happens: done with by the writer, or lost in a
/// mailbox or mid-write with a failed incarnation — it stops counting, so a crash can
/// never leave the consumer's flushing stuck. Its records stop counting as buffered
/// only when the writer says they are committed ([`BatchLease::committed`]) or were
/// before ([`BatchLease::skipped`]).
#[derive(Debug)]
#[must_use = "dropping a lease settles its batch without its records"]
pub struct BatchLease {
    handle: PartitionHandle,
    /// The pipeline incarnation that flushed it (see [`PartitionHandle::restart_counts`]).
    incarnation: u64,
    batches: Arc<AtomicU64>,
    records: usize,
}

impl BatchLease {
    /// Records in the batch, poison ones included.
    pub fn records(&self) -> usize {
        self.records
    }

    /// The writer committed the batch, ending at `offset`, with `rows` rows: its records
    /// stop counting, the status shows the commit, the coordinator hears of it.
    pub fn committed(self, offset: i64, rows: usize) {
        if self.release_records() {
            self.handle
                .0
                .partitions
                .update_if_present(self.handle.0.partition, |p| {
                    p.committed_offset = Some(offset);
                    p.written += rows as u64;
                });
        }
        self.handle.report(PartitionReport::Committed { offset });
    }

    /// The writer had nothing to do: the batch was committed before (replayed after a
    /// restart), or the writer is fenced (the next owner reads it again).
    pub fn skipped(self) {
        self.release_records();
    }

    /// Whether the lease is of the counting incarnation (then its records stop
    /// counting).
    fn release_records(&self) -> bool {
        let mut counts = self.handle.counts();
        let current = !counts.retired && counts.incarnation == self.incarnation;
        if current {
            counts.buffered = counts.buffered.saturating_sub(self.records);
        }
        current
    }
}

impl Drop for BatchLease {
    fn drop(&mut self) {
        self.batches.fetch_sub(1, Ordering::SeqCst);
        let counts = self.handle.counts();
        if !counts.retired && counts.incarnation == self.incarnation {
            // Never creates the entry: the partition's status is gone with it.
            self.handle
                .0
                .partitions
                .update_if_present(self.handle.0.partition, |p| {
                    p.in_flight_batches = p.in_flight_batches.saturating_sub(1);
                });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Seen = Arc<Mutex<Vec<String>>>;

    fn handle(reports: &Seen) -> PartitionHandle {
        let seen = reports.clone();
        PartitionHandle::new(
            3,
            Partitions::default(),
            Arc::new(move |partition, report| {
                assert_eq!(partition, 3);
                let said = match report {
                    PartitionReport::Ready { next_offset, .. } => format!("ready {next_offset}"),
                    PartitionReport::Committed { offset } => format!("committed {offset}"),
                    PartitionReport::Fenced { epoch } => format!("fenced {epoch}"),
                };
                seen.lock().unwrap().push(said);
            }),
        )
    }

    fn status(handle: &PartitionHandle) -> PartitionStatus {
        let mut status = PartitionStatus::default();
        handle.status(|p| status = p.clone());
        status
    }

    #[test]
    fn a_lease_counts_its_batch_until_dropped_and_its_records_until_committed() {
        let reports = Seen::default();
        let handle = handle(&reports);
        let batches = Arc::new(AtomicU64::new(0));
        handle.routed(12);
        let first = handle.lease(&batches, 4);
        let second = handle.lease(&batches, 6);
        let third = handle.lease(&batches, 2);
        assert_eq!(batches.load(Ordering::SeqCst), 3);
        assert_eq!(status(&handle).in_flight_batches, 3);

        first.committed(41, 3);
        assert_eq!(batches.load(Ordering::SeqCst), 2);
        assert_eq!(handle.buffered(), 8);
        let now = status(&handle);
        assert_eq!((now.committed_offset, now.written), (Some(41), 3));
        assert_eq!(now.in_flight_batches, 2);
        assert_eq!(*reports.lock().unwrap(), ["committed 41"]);

        second.skipped();
        assert_eq!(handle.buffered(), 2);
        // A batch lost with a mailbox (here: a dropped queue) stops counting as a
        // batch; its records wait for the next incarnation, uncommitted as they are.
        drop(vec![third]);
        assert_eq!(batches.load(Ordering::SeqCst), 0);
        assert_eq!(status(&handle).in_flight_batches, 0);
        assert_eq!(handle.buffered(), 2);
        assert_eq!(reports.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_late_lease_of_an_earlier_incarnation_settles_only_its_own_batch_count() {
        let reports = Seen::default();
        let handle = handle(&reports);
        let old_batches = Arc::new(AtomicU64::new(0));
        handle.routed(8);
        let late = handle.lease(&old_batches, 8);
        let late_commit = handle.lease(&old_batches, 0);
        handle.claimed(7, 99);
        assert_eq!(handle.resume_at(), Some(100));
        handle.restart_counts();
        assert_eq!(
            (handle.buffered(), status(&handle).in_flight_batches),
            (0, 0)
        );

        handle.routed(2);
        let current = Arc::new(AtomicU64::new(0));
        let _batch = handle.lease(&current, 2);
        drop(late);
        late_commit.committed(5, 0);
        assert_eq!(old_batches.load(Ordering::SeqCst), 0);
        assert_eq!(handle.buffered(), 2);
        let now = status(&handle);
        assert_eq!((now.in_flight_batches, now.committed_offset), (1, Some(99)));
    }

    #[test]
    fn a_revoked_partition_counts_nothing_and_stays_out_of_the_status() {
        let partitions = Partitions::default();
        let handle = PartitionHandle::new(5, partitions.clone(), Arc::new(|_, _| {}));
        let batches = Arc::new(AtomicU64::new(0));
        handle.routed(3);
        let lease = handle.lease(&batches, 3);
        handle.retire();
        partitions.remove(5);
        lease.committed(9, 3);
        handle.routed(4);
        assert_eq!(handle.buffered(), 3);
        assert!(partitions.snapshot().is_empty());
    }
}
