//! `[ingest]`: schedule, source and fetch settings of the ingest subtree.

use crate::model::raw_user::{MAX_PAGE, MAX_RESULTS, NAT_SEED_LENGTH, api_length};
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
    /// The source's `seed`. A run maps to one (seed, page) the real API serves: pages
    /// 1..=`max_page` of this seed, then of `<seed>-1-`, `<seed>-2-`, … (see
    /// [`Config::source_page`]), so a refetch returns the same users and no two runs
    /// share users. Not 18 characters long: randomuser.me reads such a seed as 16
    /// characters and a nationality.
    #[serde(default = "default_seed")]
    pub seed: String,
    /// Highest page the source serves for one seed. randomuser.me serves pages 1 to
    /// 10,000 and answers any other page with page 1; runs past it roll over to the
    /// next derived seed.
    #[serde(default = "default_max_page")]
    pub max_page: u32,
    /// One run per interval: the schedule slot length.
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// Users fetched per run: 1 to 5000, what the API serves per request (it answers
    /// anything else with one user).
    #[serde(default = "default_users_per_run")]
    pub users_per_run: u32,
    /// Request budget across all fetchers, in users per minute (retries included); 0 is
    /// unlimited. Requests are spaced so that the budget is never exceeded: set it for a
    /// public API (see config/randomuser.toml).
    #[serde(default)]
    pub max_users_per_minute: u32,
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
    /// Runs dispatched or waiting for a retry but not yet staged, at most: the bound
    /// that keeps a slow store from piling up fetched pages in memory, and a failing
    /// source from piling up runs.
    #[serde(default = "default_max_in_flight_runs")]
    pub max_in_flight_runs: u32,
    /// A run whose fetch failed (every attempt of `fetch.max_attempts`) is fetched again
    /// after this delay, doubling per failure (with jitter) up to `retry_max_ms`. Runs
    /// are never skipped: a source outage delays them.
    #[serde(default = "default_retry_initial_ms")]
    pub retry_initial_ms: u64,
    /// Longest delay between two fetches of a failing run.
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
    /// A run still failing this long after its first failure gives up: it stays
    /// `failed` (its last response quarantined) until an operator re-queues it with
    /// `tributary runs retry`. 0 never gives up.
    #[serde(default)]
    pub give_up_after_ms: u64,
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
fn default_max_page() -> u32 {
    10_000
}
fn default_users_per_run() -> u32 {
    500
}
fn default_retry_initial_ms() -> u64 {
    5_000
}
fn default_retry_max_ms() -> u64 {
    300_000
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
            max_page: default_max_page(),
            interval_ms: default_interval_ms(),
            users_per_run: default_users_per_run(),
            max_users_per_minute: 0,
            max_runs: 0,
            catch_up: CatchUp::default(),
            schedule_epoch: default_schedule_epoch(),
            max_in_flight_runs: default_max_in_flight_runs(),
            retry_initial_ms: default_retry_initial_ms(),
            retry_max_ms: default_retry_max_ms(),
            give_up_after_ms: 0,
            fetchers: default_fetchers(),
            fetch: FetchConfig::default(),
            supervision: default_ingest_supervision(),
            test_faults: TestFaults::default(),
        }
    }
}

impl Config {
    pub fn validate(&self, f: &mut Findings) {
        f.http_url("source_url", &self.source_url);
        f.non_empty("seed", &self.seed);
        if api_length(&self.seed) == NAT_SEED_LENGTH {
            f.invalid(
                "seed",
                format!(
                    "{:?} is {NAT_SEED_LENGTH} characters long: randomuser.me reads such a \
                     seed as a 16-character seed plus a nationality code; make it shorter or longer",
                    self.seed
                ),
            );
        }
        f.range("interval_ms", self.interval_ms, 10, 86_400_000);
        f.range("max_page", self.max_page, 1, MAX_PAGE);
        f.range("users_per_run", self.users_per_run, 1, MAX_RESULTS);
        if self.epoch().is_none() {
            f.invalid(
                "schedule_epoch",
                format!("{:?} is not an RFC 3339 timestamp", self.schedule_epoch),
            );
        }
        f.range("max_in_flight_runs", self.max_in_flight_runs, 1, 1_000);
        f.range("retry_initial_ms", self.retry_initial_ms, 10, 3_600_000);
        f.range(
            "retry_max_ms",
            self.retry_max_ms,
            self.retry_initial_ms,
            86_400_000,
        );
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

    /// The (seed, page) run `run_id` fetches: pages 1..=`max_page` of `seed`, then of
    /// `<seed>-1-`, `<seed>-2-`, … .
    ///
    /// randomuser.me draws a page's users from the text `seed + page` (the seed alone
    /// for page 1), so pairs like (`s-1`, 23) and (`s-12`, 3) would serve the same users;
    /// the trailing `-` makes every derived seed end where its page begins, and no
    /// text is drawn from twice. A derived seed of 18 characters (which the API reads as
    /// 16 characters and a nationality) gets a second `-`.
    pub fn source_page(&self, run_id: i64) -> (String, u32) {
        let max_page = i64::from(self.max_page.max(1));
        let run_id = run_id.max(0);
        let (generation, page) = (run_id / max_page, run_id % max_page + 1);
        let seed = if generation == 0 {
            self.seed.clone()
        } else {
            let derived = format!("{}-{generation}-", self.seed);
            if api_length(&derived) == NAT_SEED_LENGTH {
                derived + "-"
            } else {
                derived
            }
        };
        (seed, u32::try_from(page).unwrap_or(1))
    }

    /// How long a run waits before its next fetch after `failures` failed ones (1 for
    /// the first failure): `retry_initial_ms` doubled per failure, capped at
    /// `retry_max_ms`, then jittered down by up to a fifth with `jitter` in [0, 1) so
    /// that runs failing together do not retry together.
    pub fn retry_delay(&self, failures: u32, jitter: f64) -> Duration {
        let doubled = self
            .retry_initial_ms
            .saturating_mul(1_u64 << failures.saturating_sub(1).min(40));
        let capped = doubled.min(self.retry_max_ms) as f64;
        Duration::from_millis((capped * (1.0 - 0.2 * jitter.clamp(0.0, 1.0))) as u64)
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

    #[test]
    fn runs_map_onto_served_pages_then_roll_the_seed() {
        let config = Config {
            seed: "s".into(),
            max_page: 3,
            ..Config::default()
        };
        let pages: Vec<(String, u32)> = (0..7).map(|run| config.source_page(run)).collect();
        let expected = [
            ("s", 1),
            ("s", 2),
            ("s", 3),
            ("s-1-", 1),
            ("s-1-", 2),
            ("s-1-", 3),
            ("s-2-", 1),
        ];
        assert_eq!(
            pages,
            expected
                .map(|(seed, page)| (seed.to_owned(), page))
                .to_vec()
        );
        // The default epoch and interval put today's runs near slot 29 million: still
        // a page the real API serves.
        let (seed, page) = Config::default().source_page(28_900_123);
        assert_eq!((seed.as_str(), page), ("tributary-2890-", 124));
    }

    /// What randomuser.me draws users from for (seed, page): no two runs may share it.
    fn drawn_from(seed: &str, page: u32) -> String {
        if page == 1 {
            seed.to_owned()
        } else {
            format!("{seed}{page}")
        }
    }

    #[test]
    fn no_two_runs_draw_the_same_users_from_the_real_api() {
        for (seed, max_page) in [
            ("s", 10_000),
            ("s", 3),
            ("tributary", 10),
            ("abcdefghijklmn", 7),
        ] {
            let config = Config {
                seed: seed.into(),
                max_page,
                ..Config::default()
            };
            let mut drawn = std::collections::HashSet::new();
            for run_id in 0..100_000 {
                let (seed, page) = config.source_page(run_id);
                assert!((1..=max_page).contains(&page));
                assert_ne!(api_length(&seed), NAT_SEED_LENGTH, "{seed}");
                assert!(
                    drawn.insert(drawn_from(&seed, page)),
                    "run {run_id}: {seed} {page}"
                );
            }
        }
        // The plain `<seed>-<n>` scheme would have collided: ("s-1", 23) = ("s-12", 3).
        assert_eq!(drawn_from("s-1", 23), drawn_from("s-12", 3));
    }

    proptest::proptest! {
        /// No two runs draw the same users from the real API, from a page it serves,
        /// under a seed it does not read as a nationality: the first 2,000 runs and
        /// 2,000 from anywhere later, for any seed `validate` accepts. Small `max_page`s
        /// put thousands of derived seeds in reach, where a scheme without the trailing
        /// `-` collides: (`s-1`, 23) and (`s-12`, 3).
        #[test]
        fn no_two_runs_draw_the_same_users(
            seed in "\\PC{1,30}",
            max_page in 1u32..=60,
            later in 2_000i64..(1 << 40),
        ) {
            proptest::prop_assume!(api_length(&seed) != NAT_SEED_LENGTH);
            let config = Config { seed, max_page, ..Config::default() };
            let mut drawn = std::collections::HashSet::new();
            for run in (0..2_000).chain(later..later + 2_000) {
                let (seed, page) = config.source_page(run);
                proptest::prop_assert!((1..=max_page).contains(&page));
                proptest::prop_assert_ne!(api_length(&seed), NAT_SEED_LENGTH, "{}", seed);
                proptest::prop_assert!(
                    drawn.insert(drawn_from(&seed, page)),
                    "run {} draws ({}, {}) again", run, seed, page
                );
            }
        }
    }

    #[test]
    fn an_eighteen_character_seed_is_refused() {
        let mut f = Findings::default();
        Config {
            seed: "abcdefghijklmnopqr".into(),
            ..Config::default()
        }
        .validate(&mut f);
        assert_eq!(f.found.len(), 1, "{:?}", f.found);
        assert_eq!(f.found[0].key, "seed");
    }

    #[test]
    fn retry_delay_doubles_up_to_the_cap() {
        let config = Config {
            retry_initial_ms: 1_000,
            retry_max_ms: 5_000,
            ..Config::default()
        };
        let delays: Vec<u128> = (1..=5)
            .map(|n| config.retry_delay(n, 0.0).as_millis())
            .collect();
        assert_eq!(delays, [1_000, 2_000, 4_000, 5_000, 5_000]);
        assert_eq!(config.retry_delay(100, 0.0).as_millis(), 5_000);
        assert_eq!(config.retry_delay(1, 0.5).as_millis(), 900);
    }
}
