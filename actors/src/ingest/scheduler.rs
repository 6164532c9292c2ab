//! The scheduler: replaces the Airflow DAG. Every interval it records due runs in the
//! `runs` ledger (run id = schedule slot) and dispatches them to the fetchers.
//!
//! The ledger makes it restart-safe: runs recorded but not yet staged are re-dispatched
//! by the next incarnation (none is skipped), and a slot already in the ledger is never
//! recorded twice (none is repeated). A run whose fetch failed waits in `retrying` and
//! is dispatched again when its backoff has passed ([`super::ledger`]).

use super::config::{CatchUp, Config};
use super::fetcher::FetcherMsg;
use super::ledger;
use crate::directory::Directory;
use crate::model::Run;
use crate::store::postgres;
use crate::store::{Service, StoreError};
use crate::supervisor::Drain;
use crate::supervisor::shell::{self, Shelled};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::collections::BTreeMap;

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

crate::supervisor::shell::answers!(SchedulerMsg: Ping, Drain);

pub struct SchedulerState {
    config: Config,
    pool: deadpool_postgres::Pool,
    fetchers: Vec<ActorRef<FetcherMsg>>,
    next_fetcher: usize,
    /// Runs this incarnation dispatched that were still pending at the last tick, with
    /// the ledger's count of their finished fetch rounds at dispatch.
    dispatched: BTreeMap<i64, i32>,
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
            dispatched: BTreeMap::new(),
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

    shell::handle!();
}

impl Shelled for Scheduler {
    const KIND: &'static str = "scheduler";

    async fn on_message(
        &self,
        _: ActorRef<SchedulerMsg>,
        message: SchedulerMsg,
        state: &mut SchedulerState,
    ) -> Result<(), ActorProcessingErr> {
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
        .map_err(|e| StoreError::request(Service::Postgres, "no pooled connection", e))?;
    let requeued = ledger::requeue_due_retries(&client, state.config.max_in_flight_runs).await?;
    if requeued > 0 {
        metrics::counter!("tributary_run_retries_total").increment(requeued);
    }
    let pending = ledger::pending(&client, &state.config).await?;
    // Forget dispatches that ended (the run left `pending`); re-dispatch a pending run
    // whose finished-rounds count moved since its dispatch: it failed and was queued
    // again (by its retry backoff or by an operator) in between two ticks.
    let current: BTreeMap<i64, i32> = pending.iter().map(|r| (r.run_id, r.attempts)).collect();
    state
        .dispatched
        .retain(|id, attempts| current.get(id) == Some(attempts));
    for run in pending {
        if !state.dispatched.contains_key(&run.run_id) {
            dispatch(state, run)?;
        }
    }

    let config = state.config.clone();
    let mut room =
        u64::from(config.max_in_flight_runs).saturating_sub(ledger::in_flight(&client).await?);
    let (last, total) = ledger::last_and_total(&client).await?;
    if config.max_runs > 0 {
        room = room.min(config.max_runs.saturating_sub(total));
    }
    if room == 0 {
        return Ok(());
    }
    let now = config.slot_at(chrono::Utc::now());
    for slot in due_slots(config.catch_up, last, now, room) {
        if let Some(run) = ledger::record(&client, &config, slot).await? {
            dispatch(state, run)?;
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
    let (run_id, attempts) = (run.run_id, run.attempts);
    tracing::debug!(
        run_id,
        seed = %run.request.seed,
        page = run.request.page,
        "run dispatched"
    );
    fetcher.send_message(FetcherMsg::Fetch(run))?;
    state.dispatched.insert(run_id, attempts);
    metrics::counter!("tributary_runs_scheduled_total").increment(1);
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
