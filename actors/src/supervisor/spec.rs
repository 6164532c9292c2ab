//! What a supervisor knows of a child: how to (re)start it, and the liveness ping and
//! drain request it answers.

use ractor::rpc::CallResult;
use ractor::{Actor, ActorCell, ActorRef, Message, RpcReplyPort, SpawnErr};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

type StartFuture = Pin<Box<dyn Future<Output = Result<ActorCell, SpawnErr>> + Send>>;
type ProbeFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type StartFn = Arc<dyn Fn(ActorCell) -> StartFuture + Send + Sync>;
type ProbeFn = Arc<dyn Fn(ActorCell, Duration) -> ProbeFuture + Send + Sync>;

/// A liveness ping. An actor whose message enum implements `From<Ping>` and answers it
/// from its handler can be watched for hangs ([`ChildSpec::with_ping`]).
pub struct Ping(pub RpcReplyPort<()>);

/// A drain request for graceful shutdown: stop taking new work, finish what was taken
/// (it is queued before this message, so answering after it means it is done), then
/// reply. `within` is the time left; a child that needs longer is not waited for.
pub struct Drain {
    pub reply: RpcReplyPort<()>,
    pub within: Duration,
}

/// How to start one child, and restart it after a failure.
#[derive(Clone)]
pub struct ChildSpec {
    /// Instance name for logs and status, e.g. `fetcher-2`.
    pub name: String,
    /// Actor kind for metrics and restart counts, e.g. `fetcher`: low cardinality.
    pub kind: &'static str,
    pub(super) start: StartFn,
    pub(super) probe: Option<ProbeFn>,
    pub(super) drain: Option<ProbeFn>,
}

impl std::fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildSpec")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("pinged", &self.probe.is_some())
            .field("drained", &self.drain.is_some())
            .finish()
    }
}

impl ChildSpec {
    /// A child of actor type `A`; `args` builds fresh arguments for every (re)start.
    pub fn new<A, F>(name: impl Into<String>, kind: &'static str, actor: A, args: F) -> Self
    where
        A: Actor + Clone,
        F: Fn() -> A::Arguments + Send + Sync + 'static,
    {
        let name: String = name.into();
        let instance = name.clone();
        let start: StartFn = Arc::new(move |supervisor: ActorCell| {
            let actor = actor.clone();
            let args = args();
            // Start-up (pre_start) runs inside this span: its log lines carry the actor
            // kind, like those of its messages, and the instance name.
            let span = tracing::info_span!("actor", actor = kind, instance = %instance);
            Box::pin(
                async move {
                    A::spawn_linked(None, actor, args, supervisor)
                        .await
                        .map(|(actor_ref, _)| actor_ref.get_cell())
                }
                .instrument(span),
            )
        });
        Self {
            name,
            kind,
            start,
            probe: None,
            drain: None,
        }
    }

    /// A child that is one of our actors: its kind is the actor's own
    /// ([`super::shell::Shelled::KIND`]).
    pub fn actor<A, F>(name: impl Into<String>, actor: A, args: F) -> Self
    where
        A: super::shell::Shelled + Clone,
        F: Fn() -> A::Arguments + Send + Sync + 'static,
    {
        Self::new(name, A::KIND, actor, args)
    }

    /// On graceful shutdown the supervisor sends the child a [`Drain`] and waits for its
    /// answer. Children are drained in reverse start order: they start downstream first,
    /// so upstream stages stop taking work before the stages they feed.
    pub fn with_drain<M: Message + From<Drain>>(mut self) -> Self {
        self.drain = Some(Arc::new(|cell: ActorCell, within: Duration| {
            Box::pin(async move {
                let actor: ActorRef<M> = cell.into();
                match actor
                    .call(|reply| M::from(Drain { reply, within }), Some(within))
                    .await
                {
                    Ok(CallResult::Success(())) => Ok(()),
                    Ok(CallResult::Timeout) => Err(format!("not drained within {within:?}")),
                    Ok(CallResult::SenderError) => Err("dropped the drain request".to_owned()),
                    Err(e) => Err(format!("cannot be drained: {e}")),
                }
            })
        }));
        self
    }

    /// Pings the child every `liveness_interval_ms`; one that does not answer within
    /// `liveness_timeout_ms` is killed and restarted. `M` is the child's message type.
    pub fn with_ping<M: Message + From<Ping>>(mut self) -> Self {
        self.probe = Some(Arc::new(|cell: ActorCell, timeout: Duration| {
            Box::pin(async move {
                let actor: ActorRef<M> = cell.into();
                match actor
                    .call(|reply| M::from(Ping(reply)), Some(timeout))
                    .await
                {
                    Ok(CallResult::Success(())) => Ok(()),
                    Ok(CallResult::Timeout) => {
                        Err(format!("no answer to a liveness ping within {timeout:?}"))
                    }
                    Ok(CallResult::SenderError) => Err("dropped a liveness ping".to_owned()),
                    Err(e) => Err(format!("cannot be pinged: {e}")),
                }
            })
        }));
        self
    }
}
