//! The upkeep subtree (leader only): what keeps a months-long service bounded and
//! honest.
//!
//! ```text
//! upkeep (one_for_one)
//! ├── pruner        retention of the outbox, the runs ledger and the quarantine
//! └── reconciler    every staged run checked end to end by its digest; aggregates
//! ```
//!
//! [`readback`] reads what each store holds by run and in total, for the reconciler and
//! `tributary verify`; [`summary`] reads the reconciler's findings for the status API.

pub mod config;
pub mod readback;
pub mod reconciler;
pub mod retention;
pub mod summary;

pub use config::{Reconcile, Retention};

use crate::store::{cassandra, kafka, postgres};
use crate::supervisor::{ChildSpec, RestartStats, Supervisor, SupervisorArgs, SupervisorMsg};
use reconciler::{Reconciler, ReconcilerArgs, ReconcilerMsg};
use retention::{Pruner, PrunerArgs, PrunerMsg};

/// What the upkeep subtree needs to know.
#[derive(Clone)]
pub struct UpkeepArgs {
    pub retention: Retention,
    pub reconcile: Reconcile,
    pub postgres: postgres::Config,
    pub kafka: kafka::Config,
    pub cassandra: cassandra::Config,
    /// The producer's transactional id: its checkpoint says what is published.
    pub transactional_id: String,
    /// The consumer group: the reconciler's own readers are named after it.
    pub group_id: String,
}

/// The upkeep supervisor with its pruner and (unless `reconcile.enabled` is false) its
/// reconciler.
pub fn supervisor_spec(args: &UpkeepArgs, stats: &RestartStats) -> ChildSpec {
    let pruner_args = args.clone();
    let mut children = vec![
        ChildSpec::actor("pruner", Pruner, move || PrunerArgs {
            config: pruner_args.retention.clone(),
            postgres: pruner_args.postgres.clone(),
            kafka: pruner_args.kafka.clone(),
            transactional_id: pruner_args.transactional_id.clone(),
            keep_unreconciled: pruner_args.reconcile.enabled,
        })
        .with_ping::<PrunerMsg>(),
    ];
    if args.reconcile.enabled {
        let reconciler_args = args.clone();
        children.push(
            ChildSpec::actor("reconciler", Reconciler, move || ReconcilerArgs {
                config: reconciler_args.reconcile.clone(),
                postgres: reconciler_args.postgres.clone(),
                kafka: reconciler_args.kafka.clone(),
                cassandra: reconciler_args.cassandra.clone(),
                transactional_id: reconciler_args.transactional_id.clone(),
                group_id: reconciler_args.group_id.clone(),
            })
            .with_ping::<ReconcilerMsg>(),
        );
    }
    let (policy, stats) = (args.reconcile.supervision.clone(), stats.clone());
    ChildSpec::new("upkeep", "supervisor", Supervisor, move || SupervisorArgs {
        name: "upkeep".into(),
        policy: policy.clone(),
        children: children.clone(),
        stats: stats.clone(),
    })
    .with_ping::<SupervisorMsg>()
    .with_drain::<SupervisorMsg>()
}
