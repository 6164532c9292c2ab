//! `[ingest]`: schedule, source and fetch settings of the ingest subtree.

use crate::supervisor::{RestartPolicy, Strategy};
use crate::validate::Findings;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The randomuser.me-compatible endpoint. The embedded source
    /// (`tributary source`) by default; `https://randomuser.me/api/` for the real one.
    #[serde(default = "default_source_url")]
    pub source_url: String,
    /// `seed` query parameter: with `page` = run id it makes every fetch reproducible.
    #[serde(default = "default_seed")]
    pub seed: String,
    /// One run per interval: the schedule slot length.
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// Users fetched per run (the API serves 1 to 5000 per request).
    #[serde(default = "default_users_per_run")]
    pub users_per_run: u32,
    /// Stop scheduling after this many runs in the ledger; 0 runs forever. The demo and
    /// tests bound their workload with it.
    #[serde(default)]
    pub max_runs: u64,
    /// After downtime: `all` runs every missed slot, in order; `latest` skips to the
    /// current slot. Runs already in the ledger but not staged are always finished.
    #[serde(default)]
    pub catch_up: CatchUp,
    /// Slot 0 starts here (RFC 3339); a run id is the number of intervals since.
    #[serde(default = "default_schedule_epoch")]
    pub schedule_epoch: String,
    /// Runs dispatched but not yet staged, at most: the bound that keeps a slow store
    /// from piling up fetched pages in memory.
    #[serde(default = "default_max_in_flight_runs")]
    pub max_in_flight_runs: u32,
    /// Fetcher actors working in parallel.
    #[serde(default = "default_fetchers")]
    pub fetchers: usize,
    /// HTTP timeouts, limits and retries of each fetch.
    #[serde(default)]
    pub fetch: FetchConfig,
    /// Restart policy of the ingest supervisor (children: stager, fetchers, scheduler).
    #[serde(default = "default_ingest_supervision")]
    pub supervision: RestartPolicy,
    /// Failures injected for tests and the chaos suite. Off by default; never set them
    /// in production.
    #[serde(default)]
    pub test_faults: TestFaults,
}

/// `[ingest.test_faults]`
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFaults {
    /// The Nth fetch of the process (counted over all fetchers) panics before sending
    /// its batch, once; 0 turns it off.
    #[serde(default)]
    pub panic_on_fetch: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CatchUp {
    #[default]
    All,
    Latest,
}

/// `[ingest.fetch]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchConfig {
    /// TCP connect timeout.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Whole-request timeout, body included.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Larger responses are refused (and retried): protects memory from a runaway upstream.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: usize,
    /// Attempts per run, the first included, before the run is marked failed.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: usize,
    /// First retry delay; doubles per attempt with jitter, up to `backoff_max_ms`.
    /// A 429's `Retry-After` wins when longer.
    #[serde(default = "default_backoff_initial_ms")]
    pub backoff_initial_ms: u64,
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
}

fn default_source_url() -> String {
    "http://127.0.0.1:8089/api/".into()
}
fn default_seed() -> String {
    "tributary".into()
}
fn default_interval_ms() -> u64 {
    1_000
}
fn default_users_per_run() -> u32 {
    500
}
fn default_schedule_epoch() -> String {
    "2026-01-01T00:00:00Z".into()
}
fn default_max_in_flight_runs() -> u32 {
    4
}
fn default_fetchers() -> usize {
    2
}
fn default_ingest_supervision() -> RestartPolicy {
    RestartPolicy::new(Strategy::RestForOne)
}
fn default_connect_timeout_ms() -> u64 {
    2_000
}
fn default_request_timeout_ms() -> u64 {
    30_000
}
fn default_max_response_bytes() -> usize {
    64 * 1024 * 1024
}
fn default_max_attempts() -> usize {
    6
}
fn default_backoff_initial_ms() -> u64 {
    200
}
fn default_backoff_max_ms() -> u64 {
    5_000
}

impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            connect_timeout_ms: default_connect_timeout_ms(),
            request_timeout_ms: default_request_timeout_ms(),
            max_response_bytes: default_max_response_bytes(),
            max_attempts: default_max_attempts(),
            backoff_initial_ms: default_backoff_initial_ms(),
            backoff_max_ms: default_backoff_max_ms(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            source_url: default_source_url(),
            seed: default_seed(),
            interval_ms: default_interval_ms(),
            users_per_run: default_users_per_run(),
            max_runs: 0,
            catch_up: CatchUp::default(),
            schedule_epoch: default_schedule_epoch(),
            max_in_flight_runs: default_max_in_flight_runs(),
            fetchers: default_fetchers(),
            fetch: FetchConfig::default(),
            supervision: default_ingest_supervision(),
            test_faults: TestFaults::default(),
        }
    }
}

impl Config {
    pub fn validate(&self, f: &mut Findings) {
        if !(self.source_url.starts_with("http://") || self.source_url.starts_with("https://")) {
            f.invalid(
                "source_url",
                format!("{:?} must be an http:// or https:// URL", self.source_url),
            );
        }
        f.non_empty("seed", &self.seed);
        f.range("interval_ms", self.interval_ms, 10, 86_400_000);
        f.range("users_per_run", self.users_per_run, 1, 5_000);
        if self.epoch().is_none() {
            f.invalid(
                "schedule_epoch",
                format!("{:?} is not an RFC 3339 timestamp", self.schedule_epoch),
            );
        }
        f.range("max_in_flight_runs", self.max_in_flight_runs, 1, 1_000);
        f.range("fetchers", self.fetchers, 1, 64);
        f.section("fetch", |f| {
            f.range(
                "connect_timeout_ms",
                self.fetch.connect_timeout_ms,
                10,
                600_000,
            );
            f.range(
                "request_timeout_ms",
                self.fetch.request_timeout_ms,
                10,
                600_000,
            );
            f.range(
                "max_response_bytes",
                self.fetch.max_response_bytes,
                1_024,
                1 << 30,
            );
            f.range("max_attempts", self.fetch.max_attempts, 1, 100);
            f.range(
                "backoff_max_ms",
                self.fetch.backoff_max_ms,
                self.fetch.backoff_initial_ms,
                3_600_000,
            );
        });
        f.section("supervision", |f| self.supervision.validate(f));
    }

    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }

    /// The schedule epoch, parsed.
    pub fn epoch(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        chrono::DateTime::parse_from_rfc3339(&self.schedule_epoch)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    }

    /// The slot containing `now`.
    pub fn slot_at(&self, now: chrono::DateTime<chrono::Utc>) -> i64 {
        let epoch = self.epoch().unwrap_or_default();
        (now - epoch).num_milliseconds().max(0) / self.interval_ms.max(1) as i64
    }

    /// When a slot starts.
    pub fn slot_start(&self, slot: i64) -> chrono::DateTime<chrono::Utc> {
        self.epoch().unwrap_or_default()
            + chrono::Duration::milliseconds(slot.saturating_mul(self.interval_ms as i64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_count_intervals_since_the_epoch() {
        let config = Config {
            interval_ms: 1_000,
            ..Config::default()
        };
        let epoch = config.epoch().unwrap();
        assert_eq!(config.slot_at(epoch), 0);
        assert_eq!(
            config.slot_at(epoch + chrono::Duration::milliseconds(2_999)),
            2
        );
        assert_eq!(config.slot_start(3), epoch + chrono::Duration::seconds(3));
    }
}
