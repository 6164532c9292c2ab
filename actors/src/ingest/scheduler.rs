//! The scheduler: replaces the Airflow DAG. Every interval it records due runs in the
//! `runs` ledger (run id = schedule slot) and dispatches them to the fetchers.
//!
//! The ledger makes it restart-safe: runs recorded but not yet staged are re-dispatched
//! by the next incarnation (none is skipped), and a slot already in the ledger is never
//! recorded twice (none is repeated).

use super::config::{CatchUp, Config};
use super::fetcher::FetcherMsg;
use crate::directory::Directory;
use crate::model::Run;
use crate::store::postgres::{self, query_error};
use crate::store::{Service, StoreError};
use crate::supervisor::{Drain, Ping};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::collections::BTreeSet;
use tracing::Instrument;

#[derive(Debug, Clone, Copy)]
pub struct Scheduler;

pub struct SchedulerArgs {
    pub config: Config,
    pub postgres: postgres::Config,
    /// The fetchers' current incarnations; they start before the scheduler.
    pub fetchers: Vec<Directory<FetcherMsg>>,
}

pub enum SchedulerMsg {
    Tick,
    Ping(RpcReplyPort<()>),
    /// Graceful shutdown: dispatch no more runs.
    Drain(Drain),
}

impl From<Drain> for SchedulerMsg {
    fn from(drain: Drain) -> Self {
        SchedulerMsg::Drain(drain)
    }
}

impl From<Ping> for SchedulerMsg {
    fn from(ping: Ping) -> Self {
        SchedulerMsg::Ping(ping.0)
    }
}

pub struct SchedulerState {
    config: Config,
    pool: deadpool_postgres::Pool,
    fetchers: Vec<ActorRef<FetcherMsg>>,
    next_fetcher: usize,
    /// Runs this incarnation dispatched that were still pending at the last tick.
    dispatched: BTreeSet<i64>,
    /// Shutting down: ticks do nothing.
    draining: bool,
}

impl Actor for Scheduler {
    type Msg = SchedulerMsg;
    type State = SchedulerState;
    type Arguments = SchedulerArgs;

    async fn pre_start(
        &self,
        _: ActorRef<SchedulerMsg>,
        args: SchedulerArgs,
    ) -> Result<SchedulerState, ActorProcessingErr> {
        let fetchers = args
            .fetchers
            .iter()
            .map(Directory::get)
            .collect::<Option<Vec<_>>>()
            .ok_or("a fetcher is not running")?;
        let pool = postgres::pool(&args.postgres)?;
        postgres::check(&pool, &args.postgres).await?;
        Ok(SchedulerState {
            config: args.config,
            pool,
            fetchers,
            next_fetcher: 0,
            dispatched: BTreeSet::new(),
            draining: false,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<SchedulerMsg>,
        state: &mut SchedulerState,
    ) -> Result<(), ActorProcessingErr> {
        myself.send_message(SchedulerMsg::Tick)?;
        myself.send_interval(state.config.interval(), || SchedulerMsg::Tick);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Log lines of this message carry the actor kind (and partition).
        let span = tracing::info_span!("actor", actor = "scheduler");
        self.on_message(myself, message, state)
            .instrument(span)
            .await
    }
}

impl Scheduler {
    async fn on_message(
        &self,
        _: ActorRef<SchedulerMsg>,
        message: SchedulerMsg,
        state: &mut SchedulerState,
    ) -> Result<(), ActorProcessingErr> {
        crate::faults::maybe_panic("scheduler");
        match message {
            SchedulerMsg::Tick if state.draining => {}
            SchedulerMsg::Tick => tick(state).await?,
            SchedulerMsg::Drain(drain) => {
                state.draining = true;
                tracing::info!("scheduler drained: no more runs are dispatched");
                let _ = drain.reply.send(());
            }
            SchedulerMsg::Ping(reply) => {
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

/// The slots to record now, given the last recorded one and the current one.
pub fn due_slots(catch_up: CatchUp, last: Option<i64>, now: i64, room: u64) -> Vec<i64> {
    let first = match (catch_up, last) {
        (_, None) => now,
        (CatchUp::All, Some(last)) => last + 1,
        (CatchUp::Latest, Some(last)) => (last + 1).max(now),
    };
    (first..=now).take(room as usize).collect()
}

async fn tick(state: &mut SchedulerState) -> Result<(), ActorProcessingErr> {
    let client = state
        .pool
        .get()
        .await
        .map_err(|e| StoreError::request(Service::Postgres, "no pooled connection", true, e))?;
    let pending: Vec<Run> = client
        .query(
            "SELECT run_id, requested_users FROM runs WHERE status = 'pending' ORDER BY run_id",
            &[],
        )
        .await
        .map_err(|e| query_error("read pending runs", e))?
        .iter()
        .map(|row| Run {
            run_id: row.get(0),
            users: row.get::<_, i32>(1).unsigned_abs(),
        })
        .collect();
    let pending_ids: BTreeSet<i64> = pending.iter().map(|r| r.run_id).collect();
    state.dispatched.retain(|id| pending_ids.contains(id));
    // Pending runs this incarnation never dispatched: left by a previous one.
    let orphans: Vec<Run> = pending
        .iter()
        .filter(|r| !state.dispatched.contains(&r.run_id))
        .copied()
        .collect();
    for run in orphans {
        dispatch(state, run)?;
    }

    let config = state.config.clone();
    let in_flight = pending.len() as u64;
    let mut room = u64::from(config.max_in_flight_runs).saturating_sub(in_flight);
    let row = client
        .query_one("SELECT max(run_id), count(*) FROM runs", &[])
        .await
        .map_err(|e| query_error("read the runs ledger", e))?;
    let (last, total): (Option<i64>, i64) = (row.get(0), row.get(1));
    if config.max_runs > 0 {
        room = room.min(config.max_runs.saturating_sub(total as u64));
    }
    if room == 0 {
        return Ok(());
    }
    let now = config.slot_at(chrono::Utc::now());
    let users = config.users_per_run as i32;
    for slot in due_slots(config.catch_up, last, now, room) {
        let inserted = client
            .execute(
                "INSERT INTO runs (run_id, scheduled_for, requested_users) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&slot, &config.slot_start(slot), &users],
            )
            .await
            .map_err(|e| query_error("record run", e))?;
        if inserted == 1 {
            dispatch(
                state,
                Run {
                    run_id: slot,
                    users: users.unsigned_abs(),
                },
            )?;
        }
    }
    Ok(())
}

/// Sends a run to the next fetcher, round robin.
///
/// # Errors
/// The fetcher is gone: the scheduler fails, and its restart re-dispatches pending runs.
fn dispatch(state: &mut SchedulerState, run: Run) -> Result<(), ActorProcessingErr> {
    let fetcher = &state.fetchers[state.next_fetcher % state.fetchers.len()];
    state.next_fetcher += 1;
    fetcher.send_message(FetcherMsg::Fetch(run))?;
    state.dispatched.insert(run.run_id);
    metrics::counter!("tributary_runs_scheduled_total").increment(1);
    tracing::debug!(run_id = run.run_id, "run dispatched");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_run_starts_now() {
        assert_eq!(due_slots(CatchUp::All, None, 100, 10), [100]);
    }

    #[test]
    fn catch_up_all_runs_every_missed_slot_in_order() {
        assert_eq!(
            due_slots(CatchUp::All, Some(95), 100, 10),
            [96, 97, 98, 99, 100]
        );
        assert_eq!(
            due_slots(CatchUp::All, Some(95), 100, 2),
            [96, 97],
            "bounded by room"
        );
    }

    #[test]
    fn catch_up_latest_skips_to_now() {
        assert_eq!(due_slots(CatchUp::Latest, Some(95), 100, 10), [100]);
    }

    #[test]
    fn nothing_due_within_the_same_slot() {
        assert!(due_slots(CatchUp::All, Some(100), 100, 10).is_empty());
    }
}
