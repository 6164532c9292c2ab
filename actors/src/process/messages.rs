//! The messages between the actors of `process`, in one place: the coordinator's (from
//! the poll thread, the pipelines and the monitor), and those that carry a partition's
//! batches down its pipeline (consumer → transformer → writer) with the [`InFlight`]
//! guard that counts each batch until the writer is done with it.

use crate::model::CreatedUser;
use crate::store::rebootstrap::KeptContext;
use crate::supervisor::Drain;
use ractor::{ActorRef, RpcReplyPort};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::FutureProducer;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub enum CoordinatorMsg {
    /// Partitions assigned to this instance by a rebalance.
    Assigned {
        partitions: Vec<i32>,
    },
    /// Partitions revoked: drain, stop, then signal `done` (the rebalance callback waits).
    Revoked {
        partitions: Vec<i32>,
        done: std::sync::mpsc::Sender<()>,
    },
    /// A partition pipeline is up and resumes at `next_offset`.
    Ready {
        partition: i32,
        next_offset: i64,
        consumer: ActorRef<PartitionConsumerMsg>,
    },
    /// A writer committed `offset` in Cassandra.
    Committed {
        partition: i32,
        offset: i64,
    },
    /// A writer found a newer owner epoch: its partition belongs to another instance.
    Fenced {
        partition: i32,
        epoch: i64,
    },
    Ping(RpcReplyPort<()>),
    /// Graceful shutdown: stop routing, hand over partial batches and wait until every
    /// routed record is committed in Cassandra.
    Drain(Drain),
    /// Every second: give the bootstrap servers back to a Kafka client that lost every
    /// broker ([`crate::store::rebootstrap`]).
    KeepClients,
    /// From the monitor's watchdog: this instance has not consumed for
    /// `process.stall_restart_ms` while records wait. The coordinator fails, and its
    /// supervisor starts a new one with a new consumer: a fresh member of the group.
    Rebuild {
        reason: String,
    },
}

crate::supervisor::shell::answers!(CoordinatorMsg: Ping, Drain);

pub enum PartitionConsumerMsg {
    /// Records routed by the coordinator's poll thread, in offset order: whatever it
    /// read of the partition in one go (one message per chunk, not per record).
    Records(Vec<OwnedMessage>),
    /// The linger timer of batch `batch` expired.
    Flush { batch: u64 },
    /// Hand over the partial batch now (revocation); reply when sent.
    Drain(RpcReplyPort<()>),
}

pub enum TransformerMsg {
    /// A batch of one partition, in offset order, with the consume spans of its traces
    /// and its place in the partition's pipeline.
    Transform {
        records: Vec<OwnedMessage>,
        /// The consume spans of the batch's traces: parents of the transform spans.
        traces: Vec<opentelemetry::Context>,
        in_flight: InFlight,
    },
}

/// A transformed batch: the rows to write and the offset it ends at (poison records
/// included, they went to the DLQ).
pub struct WriteBatch {
    pub users: Vec<CreatedUser>,
    pub last_offset: i64,
    pub records: usize,
    /// The transform spans of the batch's traces: parents of the write spans.
    pub traces: Vec<opentelemetry::Context>,
    /// Dropped when the writer is done with the batch: the consumer may flush the next.
    pub in_flight: InFlight,
}

impl std::fmt::Debug for WriteBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBatch")
            .field("users", &self.users.len())
            .field("last_offset", &self.last_offset)
            .field("records", &self.records)
            .finish()
    }
}

pub enum WriterMsg {
    Write(WriteBatch),
}

/// A batch's place in its partition's pipeline, counted from the consumer's flush until
/// the writer is done with it. Counted by dropping: a batch lost with a failed
/// incarnation (in a mailbox, mid-write) stops counting too, so a crash can never leave
/// the count — and with it the consumer's flushing — stuck. Each consumer incarnation
/// counts on its own counter.
#[derive(Debug)]
pub struct InFlight(Arc<AtomicU64>);

impl InFlight {
    pub(super) fn new(counter: &Arc<AtomicU64>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The producer that writes poison records to the DLQ.
pub type DlqProducer = FutureProducer<KeptContext>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_counts_until_dropped_wherever_it_is_dropped() {
        let counter = Arc::new(AtomicU64::new(0));
        let first = InFlight::new(&counter);
        let second = InFlight::new(&counter);
        assert_eq!(counter.load(Ordering::SeqCst), 2);
        drop(first);
        assert_eq!(counter.load(Ordering::SeqCst), 1);
        // A batch lost with a mailbox (here: a dropped queue) stops counting too.
        drop(vec![second]);
        assert_eq!(counter.load(Ordering::SeqCst), 0);
    }
}
