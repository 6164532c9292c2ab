//! Dropping the objects of isolated runs: the tests, the chaos suite, the soak and the
//! benchmarks each work in their own names ([`Config::isolate`]: a PostgreSQL schema, a
//! Cassandra keyspace, three Kafka topics, their registry subject and a consumer group
//! per run).
//!
//! Left behind, they pile up on the shared local stack run after run, and the stores pay
//! for every one of them: Cassandra keeps a memtable and flushes per table, and a Kafka
//! broker loads and recovers every partition when it restarts (after one `make test`:
//! 53 keyspaces and 411 partition directories, all loaded again by every Kafka kill of
//! the chaos suite and the soak). So each harness drops what earlier runs of its own
//! prefix left at its start, and a scenario that passed drops its own objects at once.
//! What a failing run left stays until the next run of that harness, to be looked at.

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use std::time::Duration;
use tributary_actors::format::{RecordFormat, subject};
use tributary_actors::store::registry::{Registry, RegistryError};
use tributary_actors::store::{Service, StoreError, cassandra, postgres};

use crate::config::Config;

/// Drops one isolated run's keyspace, schema, topics and consumer group.
///
/// # Errors
/// The first store that refuses: what came before it is gone, what comes after stays.
pub async fn drop(config: &Config) -> Result<(), StoreError> {
    drop_keyspaces(config, std::slice::from_ref(&config.cassandra.keyspace)).await?;
    drop_schemas(config, std::slice::from_ref(&config.postgres.schema)).await?;
    let topics: Vec<String> = config
        .kafka
        .topics
        .all()
        .iter()
        .map(|(_, spec)| spec.name.clone())
        .collect();
    drop_topics(config, &topics).await?;
    drop_subjects(config, &[subject(&config.kafka.topics.raw.name)]).await?;
    drop_groups(config, std::slice::from_ref(&config.process.group_id)).await
}

/// Drops every keyspace, schema, topic and consumer group whose name starts with
/// `prefix`, except those `keep` says belong to a run still going. Returns how many
/// objects went.
///
/// # Errors
/// As [`drop`].
pub async fn drop_leftovers(
    config: &Config,
    prefix: &str,
    keep: impl Fn(&str) -> bool,
) -> Result<usize, StoreError> {
    let stale = |name: &String| name.starts_with(prefix) && !keep(name);
    let session = cassandra::connect(&config.cassandra).await?;
    let keyspaces: Vec<String> = session
        .query_unpaged("SELECT keyspace_name FROM system_schema.keyspaces", ())
        .await
        .map_err(Service::Cassandra.error("list keyspaces"))?
        .into_rows_result()
        .map_err(Service::Cassandra.error("list keyspaces"))?
        .rows::<(String,)>()
        .map_err(Service::Cassandra.error("list keyspaces"))?
        .filter_map(Result::ok)
        .map(|(name,)| name)
        .filter(stale)
        .collect();
    drop_keyspaces(config, &keyspaces).await?;

    let client = postgres::connect(&config.postgres).await?;
    let schemas: Vec<String> = client
        .query(
            "SELECT schema_name FROM information_schema.schemata WHERE starts_with(schema_name, $1)",
            &[&prefix],
        )
        .await
        .map_err(Service::Postgres.error("list schemas"))?
        .iter()
        .map(|row| row.get::<_, String>(0))
        .filter(stale)
        .collect();
    drop_schemas(config, &schemas).await?;

    let admin = admin(config)?;
    let metadata = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))
        .map_err(Service::Kafka.error("list topics"))?;
    let topics: Vec<String> = metadata
        .topics()
        .iter()
        .map(|topic| topic.name().to_owned())
        .filter(stale)
        .collect();
    drop_topics(config, &topics).await?;
    let groups: Vec<String> = admin
        .inner()
        .fetch_group_list(None, Duration::from_secs(10))
        .map_err(Service::Kafka.error("list consumer groups"))?
        .groups()
        .iter()
        .map(|group| group.name().to_owned())
        .filter(stale)
        .collect();
    drop_groups(config, &groups).await?;
    let subjects = match Registry::new(&config.kafka.registry)? {
        Some(registry) if config.kafka.record_format == RecordFormat::Avro => registry
            .subjects()
            .await
            .map_err(registry_error)?
            .into_iter()
            .filter(stale)
            .collect(),
        _ => Vec::new(),
    };
    drop_subjects(config, &subjects).await?;
    Ok(keyspaces.len() + schemas.len() + topics.len() + groups.len() + subjects.len())
}

/// Deletes registry subjects (with `kafka.record_format = "avro"` only: without it no
/// registry need be running).
async fn drop_subjects(config: &Config, subjects: &[String]) -> Result<(), StoreError> {
    if config.kafka.record_format != RecordFormat::Avro {
        return Ok(());
    }
    let Some(registry) = Registry::new(&config.kafka.registry)? else {
        return Ok(());
    };
    for subject in subjects {
        registry
            .delete_subject(subject)
            .await
            .map_err(registry_error)?;
    }
    Ok(())
}

fn registry_error(error: RegistryError) -> StoreError {
    match error {
        RegistryError::Store(e) => e,
        other => StoreError::request(Service::Registry, other.to_string(), other),
    }
}

async fn drop_keyspaces(config: &Config, keyspaces: &[String]) -> Result<(), StoreError> {
    if keyspaces.is_empty() {
        return Ok(());
    }
    let session = cassandra::connect(&config.cassandra).await?;
    for keyspace in keyspaces {
        session
            .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), ())
            .await
            .map_err(Service::Cassandra.error(format!("drop keyspace {keyspace}")))?;
    }
    Ok(())
}

async fn drop_schemas(config: &Config, schemas: &[String]) -> Result<(), StoreError> {
    if schemas.is_empty() {
        return Ok(());
    }
    let client = postgres::connect(&config.postgres).await?;
    for schema in schemas {
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await
            .map_err(Service::Postgres.error(format!("drop schema {schema}")))?;
    }
    Ok(())
}

async fn drop_topics(config: &Config, topics: &[String]) -> Result<(), StoreError> {
    if topics.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let results = admin(config)?
        .delete_topics(&names, &AdminOptions::new())
        .await
        .map_err(Service::Kafka.error("delete topics"))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
            Err((topic, code)) => {
                return Err(StoreError::request(
                    Service::Kafka,
                    format!("delete topic {topic}"),
                    code.to_string(),
                ));
            }
        }
    }
    Ok(())
}

/// Consumer groups: their committed offsets would stay in `__consumer_offsets` until
/// the broker's offsets retention (7 days) expires them.
///
/// A broker that has never held a group (a fresh stack) creates `__consumer_offsets`
/// when first asked for a coordinator and answers "not coordinator" or "coordinator not
/// available" until it has: those groups are asked again, for up to 30 s.
async fn drop_groups(config: &Config, groups: &[String]) -> Result<(), StoreError> {
    const COORDINATOR_WAIT: Duration = Duration::from_secs(30);
    if groups.is_empty() {
        return Ok(());
    }
    let admin = admin(config)?;
    let started = std::time::Instant::now();
    let mut pending: Vec<String> = groups.to_vec();
    while !pending.is_empty() {
        let names: Vec<&str> = pending.iter().map(String::as_str).collect();
        let results = admin
            .delete_groups(&names, &AdminOptions::new())
            .await
            .map_err(Service::Kafka.error("delete consumer groups"))?;
        let mut again = Vec::new();
        for result in results {
            match result {
                // Never created (the run ended before it joined) or still in use:
                // either way nothing to remove now.
                Ok(_)
                | Err((_, RDKafkaErrorCode::GroupIdNotFound))
                | Err((_, RDKafkaErrorCode::NonEmptyGroup)) => {}
                Err((
                    group,
                    RDKafkaErrorCode::NotCoordinator
                    | RDKafkaErrorCode::CoordinatorNotAvailable
                    | RDKafkaErrorCode::CoordinatorLoadInProgress,
                )) if started.elapsed() < COORDINATOR_WAIT => again.push(group),
                Err((group, code)) => {
                    return Err(StoreError::request(
                        Service::Kafka,
                        format!("delete consumer group {group}"),
                        code.to_string(),
                    ));
                }
            }
        }
        if !again.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        pending = again;
    }
    Ok(())
}

fn admin(config: &Config) -> Result<AdminClient<DefaultClientContext>, StoreError> {
    config
        .kafka
        .client_config("isolated-cleanup")?
        .create()
        .map_err(Service::Kafka.error("create an admin client"))
}
