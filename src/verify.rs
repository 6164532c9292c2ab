//! `tributary verify`: compares what was staged in PostgreSQL with what Kafka holds
//! (read_committed), by user id: missing, duplicated and unexpected ids.
//!
//! The Cassandra side (rows and aggregates) joins with the process pipeline (issue 4);
//! until then the report says it was not checked (`in_cassandra: null`) rather than
//! pretend.

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::{Duration, Instant};
use tributary_actors::store::kafka;
use tributary_actors::store::postgres::{self, query_error};
use tributary_actors::store::{Service, StoreError};

use crate::config::Config;

/// How many example ids each finding lists.
const SAMPLE: usize = 5;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Users in PostgreSQL's staged_users.
    pub staged: u64,
    /// Distinct user ids in the raw topic (read_committed).
    pub in_kafka: u64,
    /// Records in the raw topic, duplicates included.
    pub kafka_records: u64,
    /// Rows in Cassandra's created_users; `None`: not checked yet (issue 4).
    pub in_cassandra: Option<u64>,
    /// Staged ids absent from Kafka.
    pub missing: u64,
    /// Ids present more than once in Kafka.
    pub duplicated: u64,
    /// Ids in Kafka that were never staged.
    pub unexpected: u64,
    /// Aggregate differences (Cassandra vs PostgreSQL), one line each.
    pub aggregate_errors: Vec<String>,
    /// Records quarantined at ingest, for the summary (not an error).
    pub quarantined: u64,
    /// Example ids per finding.
    pub samples: Samples,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Samples {
    pub missing: Vec<String>,
    pub duplicated: Vec<String>,
    pub unexpected: Vec<String>,
}

impl Report {
    /// Everything matches.
    pub fn is_clean(&self) -> bool {
        self.missing == 0
            && self.duplicated == 0
            && self.unexpected == 0
            && self.aggregate_errors.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cassandra = self
            .in_cassandra
            .map_or("not checked (issue 4)".to_owned(), |n| n.to_string());
        writeln!(f, "{:<28} {:>10}", "staged in postgresql", self.staged)?;
        writeln!(
            f,
            "{:<28} {:>10}",
            "quarantined at ingest", self.quarantined
        )?;
        writeln!(f, "{:<28} {:>10}", "distinct ids in kafka", self.in_kafka)?;
        writeln!(f, "{:<28} {:>10}", "records in kafka", self.kafka_records)?;
        writeln!(f, "{:<28} {:>10}", "rows in cassandra", cassandra)?;
        writeln!(
            f,
            "{:<28} {:>10}  {:?}",
            "missing", self.missing, self.samples.missing
        )?;
        writeln!(
            f,
            "{:<28} {:>10}  {:?}",
            "duplicated", self.duplicated, self.samples.duplicated
        )?;
        writeln!(
            f,
            "{:<28} {:>10}  {:?}",
            "unexpected", self.unexpected, self.samples.unexpected
        )?;
        writeln!(
            f,
            "{:<28} {:>10}",
            "aggregate errors",
            self.aggregate_errors.len()
        )?;
        for error in &self.aggregate_errors {
            writeln!(f, "  {error}")?;
        }
        write!(
            f,
            "{}",
            if self.is_clean() {
                "verify: OK"
            } else {
                "verify: MISMATCH"
            }
        )
    }
}

/// Builds the report.
///
/// # Errors
/// A store cannot be reached or read.
pub async fn verify(config: &Config) -> Result<Report, StoreError> {
    let client = postgres::connect(&config.postgres).await?;
    let staged: HashSet<String> = client
        .query("SELECT source_uuid::text FROM staged_users", &[])
        .await
        .map_err(|e| query_error("read staged users", e))?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let quarantined: i64 = client
        .query_one("SELECT count(*) FROM quarantine", &[])
        .await
        .map_err(|e| query_error("count quarantine", e))?
        .get(0);
    let in_kafka = read_committed_keys(&config.kafka, &config.kafka.topics.raw.name).await?;

    let mut report = Report {
        staged: staged.len() as u64,
        in_kafka: in_kafka.len() as u64,
        kafka_records: in_kafka.values().map(|&n| n as u64).sum(),
        quarantined: quarantined.unsigned_abs(),
        ..Report::default()
    };
    for id in &staged {
        if !in_kafka.contains_key(id) {
            report.missing += 1;
            push_sample(&mut report.samples.missing, id);
        }
    }
    for (id, &count) in &in_kafka {
        if count > 1 {
            report.duplicated += 1;
            push_sample(&mut report.samples.duplicated, id);
        }
        if !staged.contains(id) {
            report.unexpected += 1;
            push_sample(&mut report.samples.unexpected, id);
        }
    }
    Ok(report)
}

fn push_sample(samples: &mut Vec<String>, id: &str) {
    if samples.len() < SAMPLE {
        samples.push(id.to_owned());
    }
}

/// Every key of `topic`, read with read_committed from the beginning to the end of
/// every partition, with how many times it occurs.
///
/// # Errors
/// Kafka cannot be reached, or the end is not reached within the request timeout per
/// idle poll.
pub async fn read_committed_keys(
    config: &kafka::Config,
    topic: &str,
) -> Result<HashMap<String, usize>, StoreError> {
    let (config, topic) = (config.clone(), topic.to_owned());
    tokio::task::spawn_blocking(move || read_keys_blocking(&config, &topic))
        .await
        .map_err(|e| StoreError::request(Service::Kafka, "reader task failed", false, e))?
}

fn read_keys_blocking(
    config: &kafka::Config,
    topic: &str,
) -> Result<HashMap<String, usize>, StoreError> {
    let kafka_error = |what: &str| {
        let what = what.to_owned();
        move |e: rdkafka::error::KafkaError| {
            StoreError::request(Service::Kafka, what.clone(), true, e)
        }
    };
    let consumer: BaseConsumer = config
        .client_config("verify")?
        .set(
            "group.id",
            format!("tributary-verify-{}", std::process::id()),
        )
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(kafka_error("cannot create a consumer"))?;
    let timeout = config.request_timeout();
    let metadata = consumer.fetch_metadata(Some(topic), timeout).map_err(|e| {
        StoreError::unreachable(Service::Kafka, config.bootstrap_servers.clone(), e)
    })?;
    let partitions: Vec<i32> = metadata
        .topics()
        .first()
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    let mut assignment = TopicPartitionList::new();
    let mut ends = Vec::with_capacity(partitions.len());
    for &partition in &partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .map_err(kafka_error("cannot assign"))?;
        let (_, high) = consumer
            .fetch_watermarks(topic, partition, timeout)
            .map_err(kafka_error("cannot read watermarks"))?;
        ends.push((partition, high));
    }
    consumer
        .assign(&assignment)
        .map_err(kafka_error("cannot assign"))?;
    let mut keys = HashMap::new();
    let mut last_progress = Instant::now();
    loop {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.map_err(kafka_error("consume failed"))?;
            let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
            *keys.entry(key).or_insert(0) += 1;
            last_progress = Instant::now();
            continue;
        }
        // read_committed stops before transaction markers and open transactions: the
        // end is reached when every position has passed its high watermark.
        let position = consumer
            .position()
            .map_err(kafka_error("cannot read positions"))?;
        let done = ends.iter().all(|&(partition, end)| {
            match position
                .find_partition(topic, partition)
                .map(|e| e.offset())
            {
                Some(Offset::Offset(offset)) => offset >= end,
                _ => end == 0,
            }
        });
        if done {
            return Ok(keys);
        }
        if last_progress.elapsed() > timeout {
            return Err(StoreError::request(
                Service::Kafka,
                format!("no progress reading {topic} for {timeout:?}: is a transaction left open?"),
                true,
                Box::<dyn std::error::Error + Send + Sync>::from("read_committed stalled"),
            ));
        }
    }
}
