//! The ingest subtree (leader only): source → PostgreSQL.
//!
//! ```text
//! ingest (rest_for_one)
//! ├── stager          single writer of staged_users
//! ├── fetcher × N     HTTP with timeouts and retries
//! └── scheduler       the runs ledger; dispatches runs to the fetchers
//! ```
//! Built downstream first: a restart of any child restarts those after it, so each
//! actor finds its downstream's current incarnation when it starts.

pub mod budget;
pub mod config;
pub mod fetcher;
pub mod ledger;
pub mod scheduler;
pub mod stager;
mod staging;

pub use config::Config;

use crate::directory::Directory;
use crate::store::postgres;
use crate::supervisor::{ChildSpec, RestartStats, Supervisor, SupervisorArgs, SupervisorMsg};
use fetcher::{Fetcher, FetcherArgs, FetcherMsg};
use scheduler::{Scheduler, SchedulerArgs, SchedulerMsg};
use stager::{Stager, StagerArgs, StagerMsg};

/// The ingest supervisor with its children.
pub fn supervisor_spec(
    config: &Config,
    postgres: &postgres::Config,
    stats: &RestartStats,
) -> ChildSpec {
    let stager_directory: Directory<StagerMsg> = Directory::default();
    let fetcher_directories: Vec<Directory<FetcherMsg>> =
        (0..config.fetchers).map(|_| Directory::default()).collect();

    crate::failpoint::FETCHED.once_at(config.test_faults.panic_on_fetch);
    let budget = std::sync::Arc::new(budget::RequestBudget::new(config.max_users_per_minute));
    let mut children = Vec::new();
    let (pg, cfg, dir) = (postgres.clone(), config.clone(), stager_directory.clone());
    children.push(
        ChildSpec::actor("stager", Stager, move || StagerArgs {
            postgres: pg.clone(),
            ingest: cfg.clone(),
            directory: dir.clone(),
        })
        .with_ping::<StagerMsg>()
        .with_drain::<StagerMsg>(),
    );
    for (index, directory) in fetcher_directories.iter().enumerate() {
        let (cfg, stager, directory, budget) = (
            config.clone(),
            stager_directory.clone(),
            directory.clone(),
            budget.clone(),
        );
        children.push(
            ChildSpec::actor(format!("fetcher-{index}"), Fetcher, move || FetcherArgs {
                config: cfg.clone(),
                stager: stager.clone(),
                directory: directory.clone(),
                budget: budget.clone(),
            })
            .with_drain::<FetcherMsg>(),
        );
    }
    let (cfg, pg) = (config.clone(), postgres.clone());
    children.push(
        ChildSpec::actor("scheduler", Scheduler, move || SchedulerArgs {
            config: cfg.clone(),
            postgres: pg.clone(),
            fetchers: fetcher_directories.clone(),
        })
        .with_ping::<SchedulerMsg>()
        .with_drain::<SchedulerMsg>(),
    );

    let (policy, stats) = (config.supervision.clone(), stats.clone());
    ChildSpec::new("ingest", "supervisor", Supervisor, move || SupervisorArgs {
        name: "ingest".into(),
        policy: policy.clone(),
        children: children.clone(),
        stats: stats.clone(),
    })
    .with_ping::<SupervisorMsg>()
    .with_drain::<SupervisorMsg>()
}
