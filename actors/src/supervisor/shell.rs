//! The shell every supervised actor shares, written once: its kind, the `actor` span each
//! of its messages runs in, the fault hook, and the conversions that let its supervisor
//! ping and drain it.
//!
//! An actor implements [`Shelled`] (its kind and its own message handling) and ractor's
//! `handle` is one line in its `impl Actor`: `shell::handle!();`.

use crate::failpoint;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::future::Future;
use tracing::Instrument;

/// An actor of the tree, as the shell sees it.
pub trait Shelled: Actor {
    /// The actor kind: the `actor` field of its log lines, its restart counts and
    /// metrics, and the name its faults are armed by, e.g. `writer`. Low cardinality.
    const KIND: &'static str;

    /// The Kafka partition a message is about, for actors of one partition's pipeline:
    /// the span's `partition` field.
    fn partition(&self, _message: &Self::Msg, _state: &Self::State) -> Option<i32> {
        None
    }

    /// The actor's own handling of one message.
    fn on_message(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> impl Future<Output = Result<(), ActorProcessingErr>> + Send;
}

/// Handles one message as every actor does: inside an `actor` span naming its kind (and
/// partition), so each log line of the message carries them, and after the fault hook
/// (a panic armed for this kind fires here: [`failpoint::maybe_panic`]).
pub async fn handle_message<A: Shelled>(
    actor: &A,
    myself: ActorRef<A::Msg>,
    message: A::Msg,
    state: &mut A::State,
) -> Result<(), ActorProcessingErr> {
    let partition = actor.partition(&message, state);
    let span = tracing::info_span!("actor", actor = A::KIND, partition);
    async move {
        failpoint::maybe_panic(A::KIND);
        actor.on_message(myself, message, state).await
    }
    .instrument(span)
    .await
}

/// `From<Ping>` and `From<Drain>` for a message enum whose `Ping` variant holds the
/// reply port and whose `Drain` variant holds the [`super::Drain`], so a
/// [`super::ChildSpec`] can ping or drain the actor: `answers!(ProducerMsg: Ping, Drain);`.
macro_rules! answers {
    ($message:ident: $($request:ident),+) => {
        $( $crate::supervisor::shell::answers!(@one $message $request); )+
    };
    (@one $message:ident Ping) => {
        impl From<$crate::supervisor::Ping> for $message {
            fn from(ping: $crate::supervisor::Ping) -> Self {
                $message::Ping(ping.0)
            }
        }
    };
    (@one $message:ident Drain) => {
        impl From<$crate::supervisor::Drain> for $message {
            fn from(drain: $crate::supervisor::Drain) -> Self {
                $message::Drain(drain)
            }
        }
    };
}
pub(crate) use answers;

/// ractor's `handle` for a [`Shelled`] actor, inside its `impl Actor`: `shell::handle!();`.
macro_rules! handle {
    () => {
        async fn handle(
            &self,
            myself: ractor::ActorRef<Self::Msg>,
            message: Self::Msg,
            state: &mut Self::State,
        ) -> Result<(), ractor::ActorProcessingErr> {
            $crate::supervisor::shell::handle_message(self, myself, message, state).await
        }
    };
}
pub(crate) use handle;
