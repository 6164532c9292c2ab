//! `[supervision]`: the policies of the supervisors `tributary run` builds above the
//! actor subtrees, and the shutdown deadline.

use serde::Deserialize;
use tributary_actors::supervisor::{RestartPolicy, Strategy};
use tributary_actors::validate::Findings;

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
    /// On SIGTERM/SIGINT: how long draining (no new runs, in-flight batches staged,
    /// published and committed in Cassandra) and stopping may take before the process
    /// gives up waiting and exits 1. Work not committed by then is replayed by the next
    /// owner from the last commit, so nothing is lost either way.
    #[serde(default = "default_shutdown_deadline_ms")]
    pub shutdown_deadline_ms: u64,
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
fn default_shutdown_deadline_ms() -> u64 {
    30_000
}

impl Default for SupervisionConfig {
    fn default() -> Self {
        Self {
            root: default_root(),
            leader: default_leader(),
            leader_retry_ms: default_leader_retry_ms(),
            shutdown_deadline_ms: default_shutdown_deadline_ms(),
        }
    }
}

impl SupervisionConfig {
    pub fn validate(&self, f: &mut Findings) {
        f.section("root", |f| self.root.validate(f));
        f.section("leader", |f| self.leader.validate(f));
        f.range("leader_retry_ms", self.leader_retry_ms, 10, 600_000);
        f.range(
            "shutdown_deadline_ms",
            self.shutdown_deadline_ms,
            100,
            3_600_000,
        );
    }
}
