//! The producer's messages: what the [`super::wake`] tasks, its supervisor and itself
//! send it.

use crate::supervisor::Drain;
use ractor::RpcReplyPort;

pub enum ProducerMsg {
    /// Publish what the outbox holds (sent by NOTIFY, the poll timer, or itself while
    /// a backlog remains), always through a [`super::wake::Waker`]: at most one is queued.
    Wake,
    Ping(RpcReplyPort<()>),
    /// Answered once the transaction in progress committed (or aborted).
    Drain(Drain),
}

crate::supervisor::shell::answers!(ProducerMsg: Ping, Drain);
