//! Restart policy of one supervisor: data, not code, so every supervisor in the tree is
//! tuned from configuration.

use crate::validate::Findings;
use serde::Deserialize;
use std::time::Duration;

/// How a supervisor reacts when a child fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Restart only the failed child.
    OneForOne,
    /// Stop every other child and restart them all, in order: for children that only
    /// make sense together (a partition's consumer → transformer → writer).
    OneForAll,
    /// Restart the failed child and every child started after it: for a chain where
    /// later children depend on earlier ones (scheduler → fetchers → stager).
    RestForOne,
}

/// `[…supervision]`: restart policy of one supervisor.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartPolicy {
    /// one_for_one, one_for_all or rest_for_one.
    pub strategy: Strategy,
    /// Restart intensity: at most this many restarts within `window_ms`; one more and
    /// the supervisor gives up and fails, escalating to its own supervisor.
    #[serde(default = "default_max_restarts")]
    pub max_restarts: u32,
    /// The sliding window of the intensity limit.
    #[serde(default = "default_window_ms")]
    pub window_ms: u64,
    /// Delay before the first restart; it doubles with each restart still inside the
    /// window, up to `backoff_max_ms`.
    #[serde(default = "default_backoff_initial_ms")]
    pub backoff_initial_ms: u64,
    /// Upper bound of the restart delay.
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// Random spread of each delay, 0.0 (none) to 1.0 (delay × [0.5, 1.5)), so siblings
    /// failing together do not restart in lockstep.
    #[serde(default = "default_backoff_jitter")]
    pub backoff_jitter: f64,
    /// How often each child that answers pings is pinged; 0 turns liveness checks off.
    #[serde(default = "default_liveness_interval_ms")]
    pub liveness_interval_ms: u64,
    /// A child that does not answer a ping within this time is killed and restarted:
    /// it is hung (blocked, deadlocked, or stuck on an I/O call without a timeout).
    #[serde(default = "default_liveness_timeout_ms")]
    pub liveness_timeout_ms: u64,
}

fn default_max_restarts() -> u32 {
    // Store outages make actors fail repeatedly while they last: with the backoff below
    // (doubling to 10 s), 20 restarts in a minute rides out an outage of a minute or
    // more, while a crash loop still escalates quickly.
    20
}
fn default_window_ms() -> u64 {
    60_000
}
fn default_backoff_initial_ms() -> u64 {
    200
}
fn default_backoff_max_ms() -> u64 {
    10_000
}
fn default_backoff_jitter() -> f64 {
    0.2
}
fn default_liveness_interval_ms() -> u64 {
    5_000
}
fn default_liveness_timeout_ms() -> u64 {
    // Longer than most bounded operations a handler awaits (a PostgreSQL statement's
    // 30 s), so only a real hang trips it. Not longer than the producer's worst case: a
    // commit and its abort, each resumed twice, wait up to 7 × publish.call_timeout_ms.
    60_000
}

impl RestartPolicy {
    /// The default policy with the given strategy.
    pub fn new(strategy: Strategy) -> Self {
        Self {
            strategy,
            max_restarts: default_max_restarts(),
            window_ms: default_window_ms(),
            backoff_initial_ms: default_backoff_initial_ms(),
            backoff_max_ms: default_backoff_max_ms(),
            backoff_jitter: default_backoff_jitter(),
            liveness_interval_ms: default_liveness_interval_ms(),
            liveness_timeout_ms: default_liveness_timeout_ms(),
        }
    }

    pub fn validate(&self, f: &mut Findings) {
        f.range("max_restarts", self.max_restarts, 0, 10_000);
        f.range("window_ms", self.window_ms, 1, 86_400_000);
        f.range(
            "backoff_max_ms",
            self.backoff_max_ms,
            self.backoff_initial_ms,
            3_600_000,
        );
        if !(0.0..=1.0).contains(&self.backoff_jitter) {
            f.invalid(
                "backoff_jitter",
                format!(
                    "{} is out of range: expected 0.0 to 1.0",
                    self.backoff_jitter
                ),
            );
        }
        if self.liveness_interval_ms > 0 {
            f.range(
                "liveness_timeout_ms",
                self.liveness_timeout_ms,
                1,
                3_600_000,
            );
        }
    }

    pub fn window(&self) -> Duration {
        Duration::from_millis(self.window_ms)
    }

    /// Delay before a restart when `recent` restarts already happened inside the window:
    /// `initial × 2^recent`, capped, spread by `jitter` using `unit` ∈ [0, 1).
    pub fn backoff(&self, recent: u32, unit: f64) -> Duration {
        let base = self
            .backoff_initial_ms
            .saturating_mul(1_u64 << recent.min(30))
            .min(self.backoff_max_ms) as f64;
        let spread = 1.0 + self.backoff_jitter * (unit - 0.5);
        Duration::from_millis((base * spread).round() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_then_caps() {
        let policy = RestartPolicy {
            backoff_jitter: 0.0,
            ..RestartPolicy::new(Strategy::OneForOne)
        };
        let delays: Vec<u64> = (0..10)
            .map(|n| policy.backoff(n, 0.3).as_millis() as u64)
            .collect();
        assert_eq!(
            delays,
            [
                200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000, 10_000
            ]
        );
    }

    #[test]
    fn jitter_spreads_around_the_base() {
        let policy = RestartPolicy::new(Strategy::OneForOne); // 200 ms, jitter 0.2
        assert_eq!(policy.backoff(0, 0.0).as_millis(), 180);
        assert_eq!(policy.backoff(0, 0.5).as_millis(), 200);
        assert_eq!(policy.backoff(0, 0.999).as_millis(), 220);
    }
}
