//! Kafka: the topics of `[kafka.topics]`, created with their partitions, replication
//! factor and topic configuration.

use super::{Action, Outcome};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use std::collections::BTreeMap;
use tributary_actors::store::kafka::{Config, TopicSpec};
use tributary_actors::store::{Service, StoreError};

/// Creates the missing topics and compares the existing ones with their specification.
///
/// # Errors
/// No broker answers, or the cluster refuses a topic (e.g. a replication factor larger
/// than the number of brokers).
pub async fn apply(config: &Config) -> Result<Vec<Outcome>, StoreError> {
    let existing = partition_counts(config).await?;
    let admin: AdminClient<DefaultClientContext> =
        config.client_config("admin")?.create().map_err(|e| {
            StoreError::request(Service::Kafka, "cannot create the admin client", false, e)
        })?;
    let options = AdminOptions::new().operation_timeout(Some(config.request_timeout()));

    let mut outcomes = Vec::new();
    let mut missing: Vec<&TopicSpec> = Vec::new();
    for (_, spec) in config.topics.all() {
        match existing.get(&spec.name) {
            None => missing.push(spec),
            Some(&partitions) => {
                let action = compare(&admin, &options, spec, partitions).await?;
                outcomes.push(Outcome::new(
                    Service::Kafka,
                    format!("topic {}", spec.name),
                    action,
                ));
            }
        }
    }
    if missing.is_empty() {
        return Ok(outcomes);
    }

    let new_topics: Vec<NewTopic<'_>> = missing
        .iter()
        .map(|spec| {
            spec.config.iter().fold(
                NewTopic::new(
                    &spec.name,
                    spec.partitions,
                    TopicReplication::Fixed(spec.replication_factor),
                ),
                |topic, (key, value)| topic.set(key, value),
            )
        })
        .collect();
    let results = admin
        .create_topics(&new_topics, &options)
        .await
        .map_err(|e| {
            StoreError::request(Service::Kafka, "create topics request failed", true, e)
        })?;
    for result in results {
        match result {
            Ok(name) => outcomes.push(Outcome::new(
                Service::Kafka,
                format!("topic {name}"),
                Action::Created,
            )),
            // Another instance created it between our metadata read and our request.
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => outcomes.push(Outcome::new(
                Service::Kafka,
                format!("topic {name}"),
                Action::Unchanged,
            )),
            Err((name, code)) => {
                return Err(StoreError::request(
                    Service::Kafka,
                    format!("cannot create topic {name}"),
                    false,
                    rdkafka::error::KafkaError::AdminOp(code),
                ));
            }
        }
    }
    Ok(outcomes)
}

/// Topic name → partition count, from a metadata request (blocking, so off the workers).
async fn partition_counts(config: &Config) -> Result<BTreeMap<String, usize>, StoreError> {
    let client: BaseConsumer = config
        .client_config("schema")?
        .create()
        .map_err(|e| StoreError::request(Service::Kafka, "cannot create a client", false, e))?;
    let timeout = config.request_timeout();
    let endpoint = config.bootstrap_servers.clone();
    tokio::task::spawn_blocking(move || {
        let metadata = client
            .fetch_metadata(None, timeout)
            .map_err(|e| StoreError::unreachable(Service::Kafka, endpoint, e))?;
        Ok(metadata
            .topics()
            .iter()
            .map(|t| (t.name().to_owned(), t.partitions().len()))
            .collect())
    })
    .await
    .map_err(|e| StoreError::request(Service::Kafka, "metadata task failed", false, e))?
}

/// Compares an existing topic with its specification: partition count and every
/// configured topic-level setting.
async fn compare(
    admin: &AdminClient<DefaultClientContext>,
    options: &AdminOptions,
    spec: &TopicSpec,
    partitions: usize,
) -> Result<Action, StoreError> {
    let mut differences = Vec::new();
    if partitions != spec.partitions as usize {
        differences.push(format!(
            "{partitions} partitions, configured {}",
            spec.partitions
        ));
    }
    if !spec.config.is_empty() {
        let described = admin
            .describe_configs(&[ResourceSpecifier::Topic(&spec.name)], options)
            .await
            .map_err(|e| StoreError::request(Service::Kafka, "describe configs failed", true, e))?;
        for resource in described {
            let resource = resource.map_err(|code| {
                StoreError::request(
                    Service::Kafka,
                    format!("cannot describe topic {}", spec.name),
                    true,
                    rdkafka::error::KafkaError::AdminOp(code),
                )
            })?;
            for (key, wanted) in &spec.config {
                let actual = resource.get(key).and_then(|entry| entry.value.clone());
                if actual.as_deref() != Some(wanted.as_str()) {
                    differences.push(format!("{key} is {actual:?}, configured {wanted:?}"));
                }
            }
        }
    }
    Ok(if differences.is_empty() {
        Action::Unchanged
    } else {
        Action::Differs(differences.join("; "))
    })
}
