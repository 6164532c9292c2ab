//! Drops what a phase created (keyspace, schema, topics, group): every phase works in
//! its own isolated names, and Cassandra slows down with each table it keeps (a memtable
//! and flushes per table), so leftovers of one run would bias the next. The dropping
//! itself is `tributary::schema::isolated`, shared with the tests, the chaos suite and
//! the soak.

use tributary::config::Config;
use tributary::schema::isolated;

/// The prefix of every name a bench phase creates (see `isolated`).
pub const PREFIX: &str = "bench_";

/// Drops a phase's objects, reporting instead of failing: a benchmark's result stands
/// even when its clean-up does not.
pub async fn tidy(config: &Config) {
    if let Err(error) = isolated::drop(config).await {
        eprintln!("bench: clean-up of {}: {error}", config.postgres.schema);
    }
}

/// Drops every object an earlier bench left behind (an interrupted run never reaches
/// its clean-up). Returns how many objects went.
pub async fn leftovers(config: &Config) -> anyhow::Result<usize> {
    Ok(isolated::drop_leftovers(config, PREFIX, |_| false).await?)
}
