//! Drops what a phase created (keyspace, schema, topics): every phase works in its own
//! isolated names, and Cassandra slows down with each table it keeps (a memtable and
//! flushes per table), so leftovers of one run would bias the next.

use anyhow::Context as _;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use tributary::config::Config;
use tributary_actors::store::{cassandra, postgres};

pub async fn drop_objects(config: &Config) -> anyhow::Result<()> {
    let session = cassandra::connect(&config.cassandra).await?;
    session
        .query_unpaged(
            format!("DROP KEYSPACE IF EXISTS {}", config.cassandra.keyspace),
            (),
        )
        .await
        .with_context(|| format!("drop keyspace {}", config.cassandra.keyspace))?;
    let client = postgres::connect(&config.postgres).await?;
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            config.postgres.schema
        ))
        .await
        .with_context(|| format!("drop schema {}", config.postgres.schema))?;
    let admin: AdminClient<DefaultClientContext> =
        config.kafka.client_config("bench-cleanup")?.create()?;
    let topics: Vec<&str> = config
        .kafka
        .topics
        .all()
        .iter()
        .map(|(_, spec)| spec.name.as_str())
        .collect();
    for result in admin
        .delete_topics(&topics, &AdminOptions::new())
        .await
        .context("delete topics")?
    {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
            Err((topic, code)) => anyhow::bail!("delete topic {topic}: {code}"),
        }
    }
    Ok(())
}

/// [`drop_objects`], reporting instead of failing: a benchmark's result stands even
/// when its clean-up does not.
pub async fn tidy(config: &Config) {
    if let Err(error) = drop_objects(config).await {
        eprintln!("bench: clean-up of {}: {error:#}", config.postgres.schema);
    }
}

/// The prefix of every name a bench phase creates (see `isolated`).
pub const PREFIX: &str = "bench_";

/// Drops every keyspace, schema and topic an earlier bench left behind (an interrupted
/// run never reaches its clean-up). Returns how many objects went.
pub async fn leftovers(config: &Config) -> anyhow::Result<usize> {
    let mut dropped = 0;
    let session = cassandra::connect(&config.cassandra).await?;
    let keyspaces: Vec<String> = session
        .query_unpaged("SELECT keyspace_name FROM system_schema.keyspaces", ())
        .await?
        .into_rows_result()?
        .rows::<(String,)>()?
        .filter_map(Result::ok)
        .map(|(name,)| name)
        .filter(|name| name.starts_with(PREFIX))
        .collect();
    for keyspace in keyspaces {
        session
            .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), ())
            .await
            .with_context(|| format!("drop keyspace {keyspace}"))?;
        dropped += 1;
    }
    let client = postgres::connect(&config.postgres).await?;
    let schemas: Vec<String> = client
        .query(
            "SELECT schema_name FROM information_schema.schemata WHERE starts_with(schema_name, $1)",
            &[&PREFIX],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    for schema in schemas {
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await
            .with_context(|| format!("drop schema {schema}"))?;
        dropped += 1;
    }
    let admin: AdminClient<DefaultClientContext> =
        config.kafka.client_config("bench-cleanup")?.create()?;
    let metadata = admin
        .inner()
        .fetch_metadata(None, std::time::Duration::from_secs(10))
        .context("kafka metadata")?;
    let topics: Vec<&str> = metadata
        .topics()
        .iter()
        .map(rdkafka::metadata::MetadataTopic::name)
        .filter(|name| name.starts_with(PREFIX))
        .collect();
    if !topics.is_empty() {
        admin
            .delete_topics(&topics, &AdminOptions::new())
            .await
            .context("delete topics")?;
        dropped += topics.len();
    }
    Ok(dropped)
}
