//! `[publish]`: the transactional producer that moves the outbox into Kafka.

use crate::supervisor::{RestartPolicy, Strategy};
use crate::validate::Findings;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Kafka `transactional.id`: stable across restarts and shared by every instance, so
    /// a new leader's producer fences the old one. Also the key of this producer's
    /// checkpoint records.
    #[serde(default = "default_transactional_id")]
    pub transactional_id: String,
    /// Outbox rows per Kafka transaction.
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// Polls the outbox this often even without a NOTIFY (a notification can be lost
    /// while the listening connection reconnects).
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Kafka's `transaction.timeout.ms`: how long the coordinator lets a transaction
    /// stay open before it aborts it, and how long the producer keeps retrying a record
    /// it could not deliver. It must outlast a broker's restart: at 10 s, a broker
    /// killed and restarted (which here took 22 s, 9 of them waiting for the controller
    /// to drop its old registration) timed the records out, the abort then found a
    /// transaction the coordinator had already aborted, and the producer had to be
    /// restarted — 10 s of Kafka's outage became 33 s without commits. An abandoned
    /// transaction costs nothing like it: the next producer's init aborts it at once.
    #[serde(default = "default_transaction_timeout_ms")]
    pub transaction_timeout_ms: u64,
    /// How long one init, commit or abort call waits before it is resumed (twice; then
    /// the producer is restarted). Below `transaction_timeout_ms`.
    #[serde(default = "default_call_timeout_ms")]
    pub call_timeout_ms: u64,
    /// Restart policy of the publish supervisor.
    #[serde(default = "default_publish_supervision")]
    pub supervision: RestartPolicy,
    /// Failures injected for tests and the chaos suite. All off by default; never set
    /// them in production.
    #[serde(default)]
    pub test_faults: TestFaults,
}

/// `[publish.test_faults]`: make the producer fail at the two points that matter for
/// exactly-once. Counted over the whole process, across restarts; 0 turns a point off.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFaults {
    /// Every Nth transaction fails after its records and checkpoint were sent, before
    /// the commit: the transaction is left open for the next incarnation to abort.
    #[serde(default)]
    pub fail_before_commit_every: u64,
    /// Every Nth transaction fails right after its commit, before the next batch.
    #[serde(default)]
    pub fail_after_commit_every: u64,
}

fn default_transactional_id() -> String {
    "tributary-producer".into()
}
fn default_batch_size() -> u32 {
    1_000
}
fn default_poll_interval_ms() -> u64 {
    500
}
fn default_transaction_timeout_ms() -> u64 {
    60_000
}
fn default_call_timeout_ms() -> u64 {
    10_000
}
fn default_publish_supervision() -> RestartPolicy {
    RestartPolicy::new(Strategy::OneForOne)
}

impl Default for Config {
    fn default() -> Self {
        Self {
            transactional_id: default_transactional_id(),
            batch_size: default_batch_size(),
            poll_interval_ms: default_poll_interval_ms(),
            transaction_timeout_ms: default_transaction_timeout_ms(),
            call_timeout_ms: default_call_timeout_ms(),
            supervision: default_publish_supervision(),
            test_faults: TestFaults::default(),
        }
    }
}

impl Config {
    pub fn validate(&self, f: &mut Findings) {
        f.non_empty("transactional_id", &self.transactional_id);
        f.range("batch_size", self.batch_size, 1, 100_000);
        f.range("poll_interval_ms", self.poll_interval_ms, 10, 600_000);
        f.range(
            "transaction_timeout_ms",
            self.transaction_timeout_ms,
            1_000,
            900_000,
        );
        f.range("call_timeout_ms", self.call_timeout_ms, 100, 900_000);
        if self.call_timeout_ms >= self.transaction_timeout_ms {
            f.invalid(
                "call_timeout_ms",
                format!(
                    "{} ms is not below transaction_timeout_ms ({} ms): a commit would \
                     still be waited for after the coordinator aborted its transaction",
                    self.call_timeout_ms, self.transaction_timeout_ms
                ),
            );
        }
        f.section("supervision", |f| self.supervision.validate(f));
    }

    /// The wait of one init, commit or abort call.
    pub fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.call_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(config: &Config) -> Vec<String> {
        let mut f = Findings::default();
        config.validate(&mut f);
        f.found.into_iter().map(|found| found.key).collect()
    }

    #[test]
    fn a_call_must_give_up_before_the_transaction_does() {
        assert!(keys(&Config::default()).is_empty());
        let longer = Config {
            transaction_timeout_ms: 10_000,
            call_timeout_ms: 10_000,
            ..Config::default()
        };
        assert_eq!(keys(&longer), ["call_timeout_ms"]);
    }
}
