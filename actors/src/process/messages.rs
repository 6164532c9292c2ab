//! The messages between the actors of `process`, in one place: the coordinator's (from
//! the poll thread, the pipelines and the monitor), and those that carry a partition's
//! batches down its pipeline (consumer → transformer → writer), each with its
//! [`BatchLease`].

use super::handle::{BatchLease, PartitionReport};
use crate::model::CreatedUser;
use crate::store::rebootstrap::KeptContext;
use crate::supervisor::Drain;
use ractor::RpcReplyPort;
use rdkafka::message::OwnedMessage;
use rdkafka::producer::FutureProducer;

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
    /// From a partition's pipeline, through its [`super::handle::PartitionHandle`]:
    /// the pipeline of `assignment` (the coordinator numbers its assignments, so a late
    /// report of a pipeline from before a revocation and a new assignment is told apart
    /// from the current pipeline's).
    Partition {
        partition: i32,
        assignment: u64,
        report: PartitionReport,
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
        lease: BatchLease,
    },
}

/// A transformed batch: the rows to write and the offset it ends at (poison records
/// included, they went to the DLQ).
pub struct WriteBatch {
    pub users: Vec<CreatedUser>,
    pub last_offset: i64,
    /// The transform spans of the batch's traces: parents of the write spans.
    pub traces: Vec<opentelemetry::Context>,
    /// Settled when the writer is done with the batch: the consumer may flush the
    /// next, the poll thread read more.
    pub lease: BatchLease,
}

impl std::fmt::Debug for WriteBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBatch")
            .field("users", &self.users.len())
            .field("last_offset", &self.last_offset)
            .field("records", &self.lease.records())
            .finish()
    }
}

pub enum WriterMsg {
    Write(WriteBatch),
}

/// The producer that writes poison records to the DLQ.
pub type DlqProducer = FutureProducer<KeptContext>;
