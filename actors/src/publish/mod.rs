//! The publish subtree: the transactional producer, leader only.

pub mod checkpoint;
pub mod config;
mod messages;
mod outbox;
pub mod producer;
mod transaction;
mod wake;

pub use config::Config;

use crate::store::{kafka, postgres};
use crate::supervisor::{ChildSpec, RestartStats, Supervisor, SupervisorArgs};
use messages::ProducerMsg;
use producer::{Producer, ProducerArgs};

/// The publish supervisor with its producer.
pub fn supervisor_spec(
    config: &Config,
    kafka: &kafka::Config,
    postgres: &postgres::Config,
    stats: &RestartStats,
) -> ChildSpec {
    let (config, kafka, postgres) = (config.clone(), kafka.clone(), postgres.clone());
    let producer_config = config.clone();
    crate::failpoint::BEFORE_PUBLISH_COMMIT.every(config.test_faults.fail_before_commit_every);
    crate::failpoint::AFTER_PUBLISH_COMMIT.every(config.test_faults.fail_after_commit_every);
    let producer = ChildSpec::actor("producer", Producer, move || ProducerArgs {
        config: producer_config.clone(),
        kafka: kafka.clone(),
        postgres: postgres.clone(),
    })
    .with_ping::<ProducerMsg>()
    .with_drain::<ProducerMsg>();
    let stats = stats.clone();
    ChildSpec::new("publish", "supervisor", Supervisor, move || {
        SupervisorArgs {
            name: "publish".into(),
            policy: config.supervision.clone(),
            children: vec![producer.clone()],
            stats: stats.clone(),
        }
    })
    .with_ping::<crate::supervisor::SupervisorMsg>()
    .with_drain::<crate::supervisor::SupervisorMsg>()
}
