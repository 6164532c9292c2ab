//! Kafka: the topics of `[kafka.topics]`, created with their partitions, replication
//! factor and topic configuration.

use super::{Action, Outcome};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
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
    let existing = existing_topics(config).await?;
    let admin: AdminClient<DefaultClientContext> = config
        .client_config("admin")?
        .create()
        .map_err(|e| StoreError::request(Service::Kafka, "cannot create the admin client", e))?;
    let options = AdminOptions::new().operation_timeout(Some(config.request_timeout()));

    let mut outcomes = Vec::new();
    let mut missing: Vec<&TopicSpec> = Vec::new();
    for (_, spec) in config.topics.all() {
        match existing.get(&spec.name) {
            None => missing.push(spec),
            Some(&shape) => {
                let action = compare(&admin, &options, spec, shape).await?;
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

    // NewTopic borrows its settings: they live in `configs` until the request is sent.
    let configs: Vec<BTreeMap<String, String>> =
        missing.iter().map(|spec| spec.topic_config()).collect();
    let new_topics: Vec<NewTopic<'_>> = missing
        .iter()
        .zip(&configs)
        .map(|(spec, config)| {
            config.iter().fold(
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
        .map_err(|e| StoreError::request(Service::Kafka, "create topics request failed", e))?;
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
                    rdkafka::error::KafkaError::AdminOp(code),
                ));
            }
        }
    }
    Ok(outcomes)
}

/// An existing topic's partition count and the replica count of its first partition.
#[derive(Debug, Clone, Copy)]
struct Shape {
    partitions: usize,
    replicas: usize,
}

/// Topic name → its [`Shape`], from a metadata request (blocking, so off the workers).
async fn existing_topics(config: &Config) -> Result<BTreeMap<String, Shape>, StoreError> {
    tributary_actors::store::kafka::with_metadata(config, "schema", |metadata| {
        metadata
            .topics()
            .iter()
            .map(|t| {
                let shape = Shape {
                    partitions: t.partitions().len(),
                    replicas: t.partitions().first().map_or(0, |p| p.replicas().len()),
                };
                (t.name().to_owned(), shape)
            })
            .collect()
    })
    .await
}

/// Compares an existing topic with its specification: partition and replica counts and
/// every configured topic-level setting.
async fn compare(
    admin: &AdminClient<DefaultClientContext>,
    options: &AdminOptions,
    spec: &TopicSpec,
    shape: Shape,
) -> Result<Action, StoreError> {
    let mut differences = Vec::new();
    if shape.partitions != spec.partitions as usize {
        differences.push(format!(
            "{} partitions, configured {}",
            shape.partitions, spec.partitions
        ));
    }
    if shape.replicas != spec.replication_factor as usize {
        differences.push(format!(
            "{} replicas, configured replication_factor {}",
            shape.replicas, spec.replication_factor
        ));
    }
    let wanted_config = spec.topic_config();
    if !wanted_config.is_empty() {
        let described = admin
            .describe_configs(&[ResourceSpecifier::Topic(&spec.name)], options)
            .await
            .map_err(|e| StoreError::request(Service::Kafka, "describe configs failed", e))?;
        for resource in described {
            let resource = resource.map_err(|code| {
                StoreError::request(
                    Service::Kafka,
                    format!("cannot describe topic {}", spec.name),
                    rdkafka::error::KafkaError::AdminOp(code),
                )
            })?;
            for (key, wanted) in &wanted_config {
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
