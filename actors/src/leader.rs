//! Leadership: ingest and publish run on one instance only, the one holding a
//! PostgreSQL advisory lock.
//!
//! The lock lives on a dedicated connection, so it is held exactly as long as that
//! session: when the leader dies (even by SIGKILL) the server ends its session, the
//! lock frees, and another instance's `Leader` acquires it on its next attempt. The new
//! leader's producer shares the transactional.id, so its `init_transactions` fences any
//! producer of the old leader that is still alive.

use crate::store::postgres;
use crate::store::{Service, StoreError};
use crate::supervisor::shell::{self, Shelled};
use crate::supervisor::{
    ChildSpec, Drain, RestartPolicy, RestartStats, Supervisor, SupervisorArgs, SupervisorMsg,
};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use std::time::Duration;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy)]
pub struct Leader;

pub struct LeaderArgs {
    pub postgres: postgres::Config,
    /// How often a follower tries to take the lock.
    pub retry: Duration,
    /// What the leader runs: the ingest and publish supervisors.
    pub duties: Vec<ChildSpec>,
    /// Policy of the supervisor over the duties.
    pub policy: RestartPolicy,
    pub stats: RestartStats,
}

pub enum LeaderMsg {
    TryAcquire,
    /// The lock connection ended: leadership is lost.
    LockLost(String),
    Ping(RpcReplyPort<()>),
    /// Graceful shutdown: drain ingest and publish, and stop trying to lead.
    Drain(Drain),
}

crate::supervisor::shell::answers!(LeaderMsg: Ping, Drain);

pub struct LeaderState {
    args: LeaderArgs,
    lock: tokio_postgres::Client,
    connection: JoinHandle<()>,
    key: String,
    duties: Option<ActorRef<SupervisorMsg>>,
    /// Shutting down: a follower no longer tries to take the lock.
    draining: bool,
}

impl LeaderState {
    async fn stop_duties(&mut self) {
        if let Some(duties) = self.duties.take() {
            let _ = duties
                .stop_and_wait(
                    Some("leadership ends".into()),
                    Some(Duration::from_secs(30)),
                )
                .await;
        }
    }
}

impl Actor for Leader {
    type Msg = LeaderMsg;
    type State = LeaderState;
    type Arguments = LeaderArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<LeaderMsg>,
        args: LeaderArgs,
    ) -> Result<LeaderState, ActorProcessingErr> {
        let (lock, connection) = args
            .postgres
            .client_config()?
            .connect(args.postgres.tls()?)
            .await
            .map_err(|e| StoreError::unreachable(Service::Postgres, args.postgres.endpoint(), e))?;
        let connection = tokio::spawn(async move {
            let reason = match connection.await {
                Ok(()) => "connection closed".to_owned(),
                Err(e) => e.to_string(),
            };
            let _ = myself.send_message(LeaderMsg::LockLost(reason));
        });
        Ok(LeaderState {
            key: format!("tributary-leader:{}", args.postgres.schema),
            args,
            lock,
            connection,
            duties: None,
            draining: false,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<LeaderMsg>,
        _: &mut LeaderState,
    ) -> Result<(), ActorProcessingErr> {
        myself.send_message(LeaderMsg::TryAcquire)?;
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<LeaderMsg>,
        state: &mut LeaderState,
    ) -> Result<(), ActorProcessingErr> {
        state.stop_duties().await;
        state.connection.abort();
        Ok(())
    }

    shell::handle!();

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<LeaderMsg>,
        event: SupervisionEvent,
        state: &mut LeaderState,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorFailed(cell, error) = event
            && state
                .duties
                .as_ref()
                .is_some_and(|d| d.get_id() == cell.get_id())
        {
            // The duties gave up (restart intensity exceeded): give up leadership too,
            // so another instance can take over, and let our supervisor decide.
            state.duties = None;
            state.stop_duties().await;
            return Err(format!("leader duties failed: {error}").into());
        }
        Ok(())
    }
}

impl Shelled for Leader {
    const KIND: &'static str = "leader";

    async fn on_message(
        &self,
        myself: ActorRef<LeaderMsg>,
        message: LeaderMsg,
        state: &mut LeaderState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            LeaderMsg::TryAcquire if state.duties.is_none() && !state.draining => {
                let acquired: bool = state
                    .lock
                    .query_one("SELECT pg_try_advisory_lock(hashtext($1))", &[&state.key])
                    .await
                    .map_err(Service::Postgres.error("try the leader lock"))?
                    .get(0);
                if acquired {
                    tracing::info!(lock = %state.key, "leadership acquired: starting ingest and publish");
                    let (duties, _) = Actor::spawn_linked(
                        None,
                        Supervisor,
                        SupervisorArgs {
                            name: "leader".into(),
                            policy: state.args.policy.clone(),
                            children: state.args.duties.clone(),
                            stats: state.args.stats.clone(),
                        },
                        myself.get_cell(),
                    )
                    .await?;
                    state.duties = Some(duties);
                } else {
                    myself.send_after(state.args.retry, || LeaderMsg::TryAcquire);
                }
            }
            LeaderMsg::TryAcquire => {}
            LeaderMsg::LockLost(reason) => {
                state.stop_duties().await;
                return Err(format!("leader lock connection lost: {reason}").into());
            }
            LeaderMsg::Ping(reply) => {
                let _ = reply.send(());
            }
            LeaderMsg::Drain(Drain { reply, within }) => {
                state.draining = true;
                if let Some(duties) = &state.duties {
                    let drained = duties
                        .call(
                            |reply| SupervisorMsg::Drain(Drain { reply, within }),
                            Some(within),
                        )
                        .await;
                    if !matches!(drained, Ok(ractor::rpc::CallResult::Success(()))) {
                        tracing::warn!("ingest and publish not drained in time");
                    }
                }
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}
