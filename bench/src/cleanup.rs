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
