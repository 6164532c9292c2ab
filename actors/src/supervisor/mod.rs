//! Supervision for ractor actors: one_for_one, one_for_all and rest_for_one, restart
//! intensity with escalation, jittered exponential restart backoff, liveness pings that
//! catch hung children, and restart counts per actor kind.
//!
//! ractor links children to their supervisor and reports their failures (panics are
//! caught), but leaves the policy to the supervisor: this module is that policy, in the
//! style of Erlang/OTP's supervisor (and quickwit's). Children are described by
//! [`ChildSpec`]s, which know how to (re)spawn them; a restart builds a fresh actor whose
//! `pre_start` reconnects to its stores.

pub mod config;
mod registry;
pub mod shell;
mod spec;
#[cfg(test)]
mod tests;

pub use config::{RestartPolicy, Strategy};
pub use registry::{ChildEntry, ChildState, KindStats, RestartStats, TreeNode};
pub use spec::{ChildSpec, Drain, Ping};

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr,
    SupervisionEvent,
};
use registry::now_ms;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

/// How long a supervisor waits for a sibling to stop before killing it.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The supervisor actor.
#[derive(Debug, Clone, Copy)]
pub struct Supervisor;

pub struct SupervisorArgs {
    /// Name for logs and escalation messages, e.g. `ingest`.
    pub name: String,
    pub policy: RestartPolicy,
    /// Children in start order (which rest_for_one depends on).
    pub children: Vec<ChildSpec>,
    pub stats: RestartStats,
}

pub enum SupervisorMsg {
    /// Start the children waiting for a restart, if `generation` is still current.
    Restart { generation: u64 },
    /// Ping every pingable child.
    CheckLiveness,
    /// A child did not answer its ping.
    Unresponsive { child: ActorId, error: String },
    /// The children and whether each is running.
    Children(RpcReplyPort<Vec<ChildStatus>>),
    /// Liveness of the supervisor itself (its own supervisor pings it).
    Ping(RpcReplyPort<()>),
    /// Drain the children (graceful shutdown).
    Drain(Drain),
}

shell::answers!(SupervisorMsg: Ping, Drain);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildStatus {
    pub name: String,
    pub kind: &'static str,
    pub running: bool,
    pub actor: Option<ActorId>,
}

struct Slot {
    spec: ChildSpec,
    cell: Option<ActorCell>,
}

pub struct SupervisorState {
    name: String,
    policy: RestartPolicy,
    slots: Vec<Slot>,
    /// Restart times inside the intensity window.
    recent: VecDeque<Instant>,
    /// Children stopped and waiting for the scheduled restart.
    pending: Vec<usize>,
    /// Bumped by every failure; a scheduled restart for an older generation is stale.
    generation: u64,
    rng: u64,
    stats: RestartStats,
}

impl SupervisorState {
    fn slot_of(&self, id: ActorId) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.cell.as_ref().is_some_and(|c| c.get_id() == id))
    }

    /// A uniform number in [0, 1) for jitter (splitmix64; no need for a crypto RNG).
    fn next_unit(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1_u64 << 53) as f64
    }

    async fn stop_child(&mut self, index: usize, reason: &str) {
        if let Some(cell) = self.slots[index].cell.take()
            && cell
                .stop_and_wait(Some(reason.to_owned()), Some(STOP_TIMEOUT))
                .await
                .is_err()
        {
            tracing::warn!(supervisor = %self.name, child = %self.slots[index].spec.name, "child did not stop in time: killing it");
            cell.kill();
        }
    }

    async fn stop_all(&mut self, reason: &str) {
        for index in (0..self.slots.len()).rev() {
            self.stop_child(index, reason).await;
        }
    }

    /// A child died (failed, stopped unexpectedly, or was killed as hung): apply the
    /// strategy, or escalate when the restart intensity is exceeded.
    async fn child_down(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        index: usize,
        error: String,
    ) -> Result<(), ActorProcessingErr> {
        let spec = self.slots[index].spec.clone();
        self.slots[index].cell = None;
        tracing::warn!(supervisor = %self.name, child = %spec.name, actor = spec.kind, error = %error, "child failed");
        self.stats.update(spec.kind, |k| {
            k.failures += 1;
            k.last_error = Some(error.clone());
        });
        self.stats.set_child(&self.name, &spec.name, |c| {
            c.state = ChildState::Restarting;
            c.last_error = Some(error.clone());
            c.last_failure_ms = Some(now_ms());
        });

        let now = Instant::now();
        let window = self.policy.window();
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.policy.max_restarts as usize {
            self.stop_all("supervisor giving up").await;
            for slot in &self.slots {
                self.stats.set_child(&self.name, &slot.spec.name, |c| {
                    c.state = ChildState::Stopped
                });
            }
            return Err(format!(
                "supervisor {}: {} restarts within {:?} exceeded the limit of {}; last failure of {}: {error}",
                self.name,
                self.recent.len() + 1,
                window,
                self.policy.max_restarts,
                spec.name
            )
            .into());
        }
        self.recent.push_back(now);

        let affected: Vec<usize> = match self.policy.strategy {
            Strategy::OneForOne => vec![index],
            Strategy::OneForAll => (0..self.slots.len()).collect(),
            Strategy::RestForOne => (index..self.slots.len()).collect(),
        };
        for &i in affected.iter().rev() {
            if i != index {
                let reason = format!("restarting with {}", spec.name);
                self.stop_child(i, &reason).await;
                let sibling = self.slots[i].spec.name.clone();
                self.stats
                    .set_child(&self.name, &sibling, |c| c.state = ChildState::Restarting);
            }
        }
        for i in affected {
            if !self.pending.contains(&i) {
                self.pending.push(i);
            }
        }
        self.pending.sort_unstable();
        self.generation += 1;
        let generation = self.generation;
        let unit = self.next_unit();
        let delay = self.policy.backoff(self.recent.len() as u32 - 1, unit);
        tracing::info!(supervisor = %self.name, child = %spec.name, delay_ms = delay.as_millis() as u64, "restart scheduled");
        myself.send_after(delay, move || SupervisorMsg::Restart { generation });
        Ok(())
    }

    async fn restart_pending(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
    ) -> Result<(), ActorProcessingErr> {
        let pending = std::mem::take(&mut self.pending);
        for (n, &index) in pending.iter().enumerate() {
            let spec = self.slots[index].spec.clone();
            match (spec.start)(myself.get_cell()).await {
                Ok(cell) => {
                    self.slots[index].cell = Some(cell);
                    self.stats.update(spec.kind, |k| k.restarts += 1);
                    self.stats.set_child(&self.name, &spec.name, |c| {
                        c.state = ChildState::Running;
                        c.restarts += 1;
                    });
                    metrics::counter!("tributary_actor_restarts_total", "actor" => spec.kind)
                        .increment(1);
                }
                Err(e) => {
                    // Children after it wait for the next attempt, in order.
                    self.pending.extend_from_slice(&pending[n + 1..]);
                    return self
                        .child_down(myself, index, format!("restart failed: {e}"))
                        .await;
                }
            }
        }
        Ok(())
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let seed = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(myself.get_id().pid());
            h.finish()
        };
        let mut state = SupervisorState {
            name: args.name,
            policy: args.policy,
            slots: args
                .children
                .into_iter()
                .map(|spec| Slot { spec, cell: None })
                .collect(),
            recent: VecDeque::new(),
            pending: Vec::new(),
            generation: 0,
            rng: seed,
            stats: args.stats,
        };
        state.stats.register(
            &state.name,
            state
                .slots
                .iter()
                .map(|s| ChildEntry {
                    name: s.spec.name.clone(),
                    kind: s.spec.kind,
                    state: ChildState::Restarting,
                    restarts: 0,
                    last_error: None,
                    last_failure_ms: None,
                })
                .collect(),
        );
        for index in 0..state.slots.len() {
            let spec = state.slots[index].spec.clone();
            match (spec.start)(myself.get_cell()).await {
                Ok(cell) => {
                    state.slots[index].cell = Some(cell);
                    state
                        .stats
                        .set_child(&state.name, &spec.name, |c| c.state = ChildState::Running);
                }
                Err(e) => {
                    state.stop_all("a sibling failed to start").await;
                    state.stats.unregister(&state.name);
                    return Err(format!(
                        "supervisor {}: {} failed to start: {e}",
                        state.name, spec.name
                    )
                    .into());
                }
            }
        }
        Ok(state)
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let interval = state.policy.liveness_interval_ms;
        if interval > 0 && state.slots.iter().any(|s| s.spec.probe.is_some()) {
            myself.send_interval(Duration::from_millis(interval), || {
                SupervisorMsg::CheckLiveness
            });
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        state.stop_all("supervisor stopping").await;
        state.stats.unregister(&state.name);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::Restart { generation } if generation == state.generation => {
                state.restart_pending(&myself).await?;
            }
            SupervisorMsg::Restart { .. } => {}
            SupervisorMsg::CheckLiveness => {
                let timeout = Duration::from_millis(state.policy.liveness_timeout_ms);
                for slot in &state.slots {
                    if let (Some(cell), Some(probe)) = (&slot.cell, &slot.spec.probe) {
                        let (cell, probe, supervisor) =
                            (cell.clone(), probe.clone(), myself.clone());
                        tokio::spawn(async move {
                            let child = cell.get_id();
                            if let Err(error) = probe(cell, timeout).await {
                                // The supervisor may be gone by now; nothing to tell then.
                                let _ = supervisor
                                    .send_message(SupervisorMsg::Unresponsive { child, error });
                            }
                        });
                    }
                }
            }
            SupervisorMsg::Unresponsive { child, error } => {
                if let Some(index) = state.slot_of(child) {
                    if let Some(cell) = &state.slots[index].cell {
                        cell.kill();
                    }
                    state
                        .child_down(&myself, index, format!("hung: {error}"))
                        .await?;
                }
            }
            SupervisorMsg::Children(reply) => {
                let children = state
                    .slots
                    .iter()
                    .map(|s| ChildStatus {
                        name: s.spec.name.clone(),
                        kind: s.spec.kind,
                        running: s.cell.is_some(),
                        actor: s.cell.as_ref().map(ActorCell::get_id),
                    })
                    .collect();
                let _ = reply.send(children);
            }
            SupervisorMsg::Ping(reply) => {
                let _ = reply.send(());
            }
            SupervisorMsg::Drain(Drain { reply, within }) => {
                let deadline = Instant::now() + within;
                for slot in state.slots.iter().rev() {
                    if let (Some(cell), Some(drain)) = (&slot.cell, &slot.spec.drain) {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if let Err(error) = drain(cell.clone(), left).await {
                            tracing::warn!(supervisor = %state.name, child = %slot.spec.name, error = %error, "drain incomplete");
                        }
                    }
                }
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        // Events about children that are no longer current (stopped by this supervisor
        // for a restart, or killed as hung) find no slot and change nothing; a failure's
        // error is still logged: a child declared hung may have failed for a reason of
        // its own at the same moment, and that reason is the one to read.
        match event {
            SupervisionEvent::ActorFailed(cell, error) => {
                let error = crate::error_chain(error.as_ref());
                match state.slot_of(cell.get_id()) {
                    Some(index) => state.child_down(&myself, index, error).await?,
                    None => tracing::info!(
                        actor = cell.get_name().unwrap_or_default(),
                        %error,
                        "a replaced child failed: no restart (it is no longer current)"
                    ),
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                if let Some(index) = state.slot_of(cell.get_id()) {
                    let why = reason.unwrap_or_else(|| "no reason given".into());
                    state
                        .child_down(&myself, index, format!("stopped unexpectedly: {why}"))
                        .await?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// The parent of a root supervisor: reports how the root ended, so the process can exit
/// non-zero when supervision gave up.
#[derive(Debug, Clone, Copy)]
pub struct Guardian;

/// How the supervised tree ended.
pub type TreeOutcome = Result<(), String>;

impl Actor for Guardian {
    type Msg = ();
    type State = Option<tokio::sync::oneshot::Sender<TreeOutcome>>;
    type Arguments = tokio::sync::oneshot::Sender<TreeOutcome>;

    async fn pre_start(
        &self,
        _: ActorRef<()>,
        done: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(Some(done))
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<()>,
        event: SupervisionEvent,
        done: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let outcome = match event {
            SupervisionEvent::ActorFailed(_, error) => Err(error.to_string()),
            SupervisionEvent::ActorTerminated(..) => Ok(()),
            _ => return Ok(()),
        };
        if let Some(done) = done.take() {
            let _ = done.send(outcome);
        }
        myself.stop(None);
        Ok(())
    }
}

/// Starts `root` under a [`Guardian`]; the receiver resolves when the tree ends.
///
/// # Errors
/// The root (or the guardian) fails to start.
pub async fn spawn_root(
    args: SupervisorArgs,
) -> Result<
    (
        ActorRef<SupervisorMsg>,
        tokio::sync::oneshot::Receiver<TreeOutcome>,
    ),
    SpawnErr,
> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (guardian, _) = Actor::spawn(None, Guardian, tx).await?;
    let (root, _) = Actor::spawn_linked(None, Supervisor, args, guardian.get_cell()).await?;
    Ok((root, rx))
}
