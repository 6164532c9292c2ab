//! Helpers shared by the integration tests.

use backon::{ConstantBuilder, Retryable};
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tributary::config::{Config, Sources};

/// A name no other test (or earlier run) uses: `<prefix>_<pid>_<n>_<random>`, lower case
/// so it is valid as a PostgreSQL schema, a Cassandra keyspace and a Kafka topic.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}_{}_{n}_{}", std::process::id(), &random[..6])
}

/// The configuration the tests run with: the defaults (which point at the local
/// stack), overridden by `TRIBUTARY__…` variables when the caller set any, with unique
/// names for every store object.
pub fn isolated_config(prefix: &str) -> Config {
    let mut config = Config::load(&Sources::default()).expect("test configuration loads");
    let name = unique(prefix);
    config.postgres.schema = name.clone();
    config.cassandra.keyspace = name.clone();
    config.kafka.topics.raw.name = format!("{name}.raw");
    config.kafka.topics.checkpoints.name = format!("{name}.checkpoints");
    config.kafka.topics.dlq.name = format!("{name}.dlq");
    config.telemetry.service_name = name;
    config
}

/// Polls `check` every 200 ms until it returns `Ok`, or fails with its last error once
/// `deadline` has passed. For conditions that become true eventually (a span indexed by
/// Jaeger), never a fixed sleep.
pub async fn eventually<T, E, F, Fut>(deadline: Duration, check: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let interval = Duration::from_millis(200);
    let attempts = (deadline.as_millis() / interval.as_millis()).max(1) as usize;
    check
        .retry(
            ConstantBuilder::default()
                .with_delay(interval)
                .with_max_times(attempts),
        )
        .await
}
