//! `tributary run`: the supervised actor tree.
//!
//! ```text
//! root (one_for_one)            [supervision.root]; giving up exits the process non-zero
//! ├── process (one_for_one)     every instance: coordinator → partition pipelines
//! └── leader                    holds the PostgreSQL advisory lock, then starts:
//!     └── leader duties (one_for_one)        [supervision.leader]
//!         ├── ingest (rest_for_one)          stager, fetchers, scheduler
//!         └── publish (one_for_one)          producer
//! ```

use ractor::{ActorRef, SpawnErr};
use serde::Deserialize;
use std::time::Duration;
use tokio::sync::oneshot;
use tributary_actors::leader::{Leader, LeaderArgs, LeaderMsg};
use tributary_actors::store::{self, StoreError};
use tributary_actors::supervisor::{
    self, ChildSpec, RestartPolicy, RestartStats, Strategy, SupervisorArgs, SupervisorMsg,
    TreeOutcome,
};
use tributary_actors::validate::Findings;
use tributary_actors::{ingest, process, publish};

use crate::config::Config;
use crate::exit;

/// `[supervision]`: policies of the supervisors above ingest and publish.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisionConfig {
    /// The root supervisor. When it gives up, the process exits with code 1 so its own
    /// supervisor (systemd, Kubernetes) can restart it.
    #[serde(default = "default_root")]
    pub root: RestartPolicy,
    /// The supervisor over ingest and publish on the leader.
    #[serde(default = "default_leader")]
    pub leader: RestartPolicy,
    /// How often a follower tries to become the leader.
    #[serde(default = "default_leader_retry_ms")]
    pub leader_retry_ms: u64,
}

fn default_root() -> RestartPolicy {
    RestartPolicy::new(Strategy::OneForOne)
}
fn default_leader() -> RestartPolicy {
    RestartPolicy::new(Strategy::OneForOne)
}
fn default_leader_retry_ms() -> u64 {
    1_000
}

impl Default for SupervisionConfig {
    fn default() -> Self {
        Self {
            root: default_root(),
            leader: default_leader(),
            leader_retry_ms: default_leader_retry_ms(),
        }
    }
}

impl SupervisionConfig {
    pub fn validate(&self, f: &mut Findings) {
        f.section("root", |f| self.root.validate(f));
        f.section("leader", |f| self.leader.validate(f));
        f.range("leader_retry_ms", self.leader_retry_ms, 10, 600_000);
    }
}

/// Runs the pipeline until SIGINT/SIGTERM (exit 0) or until supervision gives up
/// (exit 1). Unreachable stores at start-up, or an admin address that cannot be
/// bound, exit 2. `test_faults` enables the admin routes that inject failures.
pub async fn run(config: &Config, test_faults: bool) -> i32 {
    if let Err(error) = reach_stores(config).await {
        eprintln!("error: {}", crate::error_chain(&error));
        return exit::for_store_error(&error);
    }
    let admin = if config.admin.bind.is_empty() {
        None
    } else {
        let listener = match std::net::TcpListener::bind(&config.admin.bind) {
            Ok(listener) => listener,
            Err(error) => {
                eprintln!(
                    "error: admin.bind: cannot listen on {}: {error}",
                    config.admin.bind
                );
                return exit::CONFIG;
            }
        };
        let address = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        match crate::admin::serve(listener, test_faults) {
            Ok(server) => {
                tracing::info!(%address, test_faults, "admin http listening");
                let handle = server.handle();
                tokio::spawn(server);
                Some(handle)
            }
            Err(error) => {
                eprintln!("error: cannot start the admin server: {error}");
                return exit::FAILURE;
            }
        }
    };
    let (root, done) = match start_tree(config).await {
        Ok(started) => started,
        Err(error) => {
            eprintln!("error: the actor tree failed to start: {error}");
            return exit::FAILURE;
        }
    };
    tracing::info!("tributary running");
    let code = tokio::select! {
        () = crate::shutdown_signal() => {
            tracing::info!("shutdown requested: stopping the actor tree");
            let _ = root.stop_and_wait(Some("shutdown".into()), Some(Duration::from_secs(60))).await;
            exit::OK
        }
        outcome = done => match outcome {
            Ok(Ok(())) => exit::OK,
            Ok(Err(error)) => {
                tracing::error!(error = %error, "supervision gave up: exiting");
                eprintln!("error: supervision gave up: {error}");
                exit::FAILURE
            }
            Err(_) => exit::FAILURE,
        },
    };
    if let Some(admin) = admin {
        admin.stop(true).await;
    }
    code
}

/// Starts the actor tree; the receiver resolves when the tree ends (an error when
/// supervision gave up).
///
/// # Errors
/// The root supervisor cannot start.
pub async fn start_tree(
    config: &Config,
) -> Result<(ActorRef<SupervisorMsg>, oneshot::Receiver<TreeOutcome>), SpawnErr> {
    let stats = RestartStats::default();
    let duties = vec![
        ingest::supervisor_spec(&config.ingest, &config.postgres, &stats),
        publish::supervisor_spec(&config.publish, &config.kafka, &config.postgres, &stats),
    ];
    let leader_args = {
        let (postgres, policy, stats) = (
            config.postgres.clone(),
            config.supervision.leader.clone(),
            stats.clone(),
        );
        let retry = Duration::from_millis(config.supervision.leader_retry_ms);
        move || LeaderArgs {
            postgres: postgres.clone(),
            retry,
            duties: duties.clone(),
            policy: policy.clone(),
            stats: stats.clone(),
        }
    };
    let leader = ChildSpec::new("leader", "leader", Leader, leader_args).with_ping::<LeaderMsg>();
    let process = process::supervisor_spec(
        &config.process,
        &config.kafka,
        &config.cassandra,
        &instance_name(),
        &stats,
    );
    supervisor::spawn_root(SupervisorArgs {
        name: "root".into(),
        policy: config.supervision.root.clone(),
        children: vec![process, leader],
        stats,
    })
    .await
}

/// This instance's name: recorded as the owner of the partitions it writes.
pub fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}-{}", std::process::id())
}

/// Fails with the unreachable store, for exit code 2.
pub async fn reach_stores(config: &Config) -> Result<(), StoreError> {
    let pool = store::postgres::pool(&config.postgres)?;
    store::postgres::check(&pool, &config.postgres).await?;
    store::kafka::check(&config.kafka).await?;
    store::cassandra::connect(&config.cassandra).await?;
    Ok(())
}
