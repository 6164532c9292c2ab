//! The process subtree (every instance): Kafka → Cassandra.
//!
//! ```text
//! process (one_for_one)
//! ├── coordinator                 consumer-group membership, routing, rebalances
//!     └── partition p (one_for_all), one per assigned partition:
//!         writer(p) ← transformer(p) ← consumer(p)     (built downstream first)
//! └── monitor                     lag of every partition, stalls, the watchdog
//! ```
//!
//! [`poll`] is the thread that reads Kafka for the coordinator (a queue per partition,
//! backpressure without pausing); [`partition_store`] is the writer's Cassandra (its
//! claim, rows and fenced commit, behind a trait); [`rows`] is how the writer's rows reach
//! `created_users` (requests grouped by replica set); [`tally`] what the writer counts
//! and commits with each batch (aggregates, run digests); [`monitor`] tells whether the
//! group consumes what waits (lag over every partition, stalls, the watchdog).

pub mod config;
pub mod coordinator;
pub mod handle;
pub mod messages;
pub mod monitor;
pub mod partition;
pub mod partition_store;
pub mod poll;
pub mod progress;
pub mod rows;
pub mod tally;
pub mod transformer;
pub mod writer;

pub use config::Config;

use crate::directory::Directory;
use crate::store::{cassandra, kafka};
use crate::supervisor::{ChildSpec, RestartStats, Supervisor, SupervisorArgs, SupervisorMsg};
use coordinator::{Coordinator, CoordinatorArgs};
use messages::CoordinatorMsg;
use monitor::{Monitor, MonitorArgs, MonitorMsg};

/// The process supervisor with its coordinator.
pub fn supervisor_spec(
    config: &Config,
    kafka: &kafka::Config,
    cassandra: &cassandra::Config,
    owner: &str,
    stats: &RestartStats,
    partitions: &crate::observe::Partitions,
    consumption: &crate::observe::Consumption,
) -> ChildSpec {
    let (cfg, kafka, cassandra, owner, child_stats) = (
        config.clone(),
        kafka.clone(),
        cassandra.clone(),
        owner.to_owned(),
        stats.clone(),
    );
    let (partitions, board) = (partitions.clone(), consumption.clone());
    let directory: Directory<CoordinatorMsg> = Directory::default();
    crate::failpoint::BEFORE_OFFSET_COMMIT
        .every(config.test_faults.fail_writer_before_commit_every);
    let (coordinator_kafka, coordinator_cassandra, coordinator_directory) =
        (kafka.clone(), cassandra.clone(), directory.clone());
    let (coordinator_config, coordinator_partitions) = (cfg.clone(), partitions.clone());
    let coordinator = ChildSpec::actor("coordinator", Coordinator, move || CoordinatorArgs {
        config: coordinator_config.clone(),
        kafka: coordinator_kafka.clone(),
        cassandra: coordinator_cassandra.clone(),
        owner: owner.clone(),
        stats: child_stats.clone(),
        partitions: coordinator_partitions.clone(),
        consumption: board.clone(),
        directory: coordinator_directory.clone(),
    })
    .with_ping::<CoordinatorMsg>()
    .with_drain::<CoordinatorMsg>();
    let board = consumption.clone();
    let monitor = ChildSpec::actor("monitor", Monitor, move || MonitorArgs {
        config: cfg.clone(),
        kafka: kafka.clone(),
        cassandra: cassandra.clone(),
        partitions: partitions.clone(),
        consumption: board.clone(),
        coordinator: directory.clone(),
    })
    .with_ping::<MonitorMsg>();
    let (policy, stats) = (config.supervision.clone(), stats.clone());
    ChildSpec::new("process", "supervisor", Supervisor, move || {
        SupervisorArgs {
            name: "process".into(),
            policy: policy.clone(),
            children: vec![coordinator.clone(), monitor.clone()],
            stats: stats.clone(),
        }
    })
    .with_ping::<SupervisorMsg>()
    .with_drain::<SupervisorMsg>()
}
