//! The process subtree (every instance): Kafka → Cassandra.
//!
//! ```text
//! process (one_for_one)
//! └── coordinator                 consumer-group membership, routing, rebalances
//!     └── partition p (one_for_all), one per assigned partition:
//!         writer(p) ← transformer(p) ← consumer(p)     (built downstream first)
//! ```
//!
//! [`poll`] is the thread that reads Kafka for the coordinator (a queue per partition,
//! backpressure without pausing); [`rows`] is how the writer's rows reach
//! `created_users` (requests grouped by replica set).

pub mod config;
pub mod coordinator;
pub mod partition;
pub mod poll;
pub mod rows;
pub mod transformer;
pub mod writer;

pub use config::Config;

use crate::store::{cassandra, kafka};
use crate::supervisor::{ChildSpec, RestartStats, Supervisor, SupervisorArgs, SupervisorMsg};
use coordinator::{Coordinator, CoordinatorArgs, CoordinatorMsg};

/// The process supervisor with its coordinator.
pub fn supervisor_spec(
    config: &Config,
    kafka: &kafka::Config,
    cassandra: &cassandra::Config,
    owner: &str,
    stats: &RestartStats,
    partitions: &crate::observe::Partitions,
) -> ChildSpec {
    let (cfg, kafka, cassandra, owner, child_stats) = (
        config.clone(),
        kafka.clone(),
        cassandra.clone(),
        owner.to_owned(),
        stats.clone(),
    );
    let partitions = partitions.clone();
    let batches = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let coordinator = ChildSpec::new("coordinator", "coordinator", Coordinator, move || {
        CoordinatorArgs {
            config: cfg.clone(),
            kafka: kafka.clone(),
            cassandra: cassandra.clone(),
            owner: owner.clone(),
            stats: child_stats.clone(),
            batches: batches.clone(),
            partitions: partitions.clone(),
        }
    })
    .with_ping::<CoordinatorMsg>()
    .with_drain::<CoordinatorMsg>();
    let (policy, stats) = (config.supervision.clone(), stats.clone());
    ChildSpec::new("process", "supervisor", Supervisor, move || {
        SupervisorArgs {
            name: "process".into(),
            policy: policy.clone(),
            children: vec![coordinator.clone()],
            stats: stats.clone(),
        }
    })
    .with_ping::<SupervisorMsg>()
    .with_drain::<SupervisorMsg>()
}
