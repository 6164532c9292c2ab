//! `[source]`: the embedded randomuser.me-compatible source.

use serde::Deserialize;
use tributary_actors::model::raw_user::MAX_PAGE;
use tributary_actors::validate::Findings;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address `tributary source` listens on. Loopback by default: it is a test fixture.
    #[serde(default = "default_bind")]
    pub bind: String,
    /// Highest page served per seed; any other page is answered with page 1, as the
    /// real API does past its 10,000. Tests lower it to make runs roll over seeds.
    #[serde(default = "default_max_page")]
    pub max_page: u32,
    /// Faults injected into responses, for tests. All off by default.
    #[serde(default)]
    pub faults: Faults,
}

/// `[source.faults]`: each rate is a probability per request (or per record for
/// `bad_record_rate`), 0.0 to 1.0.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Answer HTTP 500.
    #[serde(default)]
    pub error_rate: f64,
    /// Answer HTTP 429 with a `Retry-After` header.
    #[serde(default)]
    pub throttle_rate: f64,
    /// Seconds in the `Retry-After` header of a 429.
    #[serde(default = "default_retry_after_s")]
    pub retry_after_s: u64,
    /// Delay added before every response.
    #[serde(default)]
    pub latency_ms: u64,
    /// Cut the JSON body in half.
    #[serde(default)]
    pub truncate_rate: f64,
    /// Answer a body that is not JSON at all.
    #[serde(default)]
    pub malformed_rate: f64,
    /// Per record: drop a required field or give it the wrong type. Deterministic per
    /// (seed, page, position), so a refetch breaks the same records.
    #[serde(default)]
    pub bad_record_rate: f64,
    /// Serve page 1's users under the page asked for (`info` names the page asked
    /// for): a source that repeats itself, which only the outbox's dedup can notice.
    #[serde(default)]
    pub repeat_rate: f64,
    /// Seed of the per-request fault draws, for reproducible fault sequences.
    #[serde(default)]
    pub seed: u64,
}

fn default_bind() -> String {
    "127.0.0.1:8089".into()
}
fn default_max_page() -> u32 {
    MAX_PAGE
}
fn default_retry_after_s() -> u64 {
    1
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: default_bind(),
            max_page: default_max_page(),
            faults: Faults {
                retry_after_s: default_retry_after_s(),
                ..Faults::default()
            },
        }
    }
}

impl Config {
    pub fn validate(&self, f: &mut Findings) {
        if self.bind.parse::<std::net::SocketAddr>().is_err() {
            f.invalid("bind", format!("{:?} is not an ip:port address", self.bind));
        }
        f.range("max_page", self.max_page, 1, MAX_PAGE);
        f.section("faults", |f| {
            let rates = [
                ("error_rate", self.faults.error_rate),
                ("throttle_rate", self.faults.throttle_rate),
                ("truncate_rate", self.faults.truncate_rate),
                ("malformed_rate", self.faults.malformed_rate),
                ("bad_record_rate", self.faults.bad_record_rate),
                ("repeat_rate", self.faults.repeat_rate),
            ];
            for (key, rate) in rates {
                if !(0.0..=1.0).contains(&rate) {
                    f.invalid(key, format!("{rate} is out of range: expected 0.0 to 1.0"));
                }
            }
            f.range("retry_after_s", self.faults.retry_after_s, 0, 3_600);
            f.range("latency_ms", self.faults.latency_ms, 0, 600_000);
        });
    }
}
