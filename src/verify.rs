//! `tributary verify`: compares what was staged in PostgreSQL with what Kafka holds
//! (read_committed) and what Cassandra holds, by user id (missing, duplicated and
//! unexpected ids), and Cassandra's aggregates with counts computed from PostgreSQL.

use futures::StreamExt;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use scylla::client::session::Session;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::time::{Duration, Instant};
use tributary_actors::store::postgres::{self, query_error};
use tributary_actors::store::{Service, StoreError};
use tributary_actors::store::{cassandra, kafka};

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
    /// Rows in Cassandra's created_users.
    pub in_cassandra: u64,
    /// Staged ids absent from Kafka or from Cassandra (not delivered end to end).
    pub missing: u64,
    /// Staged ids absent from Kafka.
    pub missing_in_kafka: u64,
    /// Staged ids absent from Cassandra.
    pub missing_in_cassandra: u64,
    /// Ids present more than once in Kafka.
    pub duplicated: u64,
    /// Ids in Kafka or Cassandra that were never staged.
    pub unexpected: u64,
    /// Aggregate differences (Cassandra vs PostgreSQL), one line each.
    pub aggregate_errors: Vec<String>,
    /// Records quarantined at ingest, for the summary (not an error).
    pub quarantined: u64,
    /// Distinct keys in the DLQ: poison records, accounted for (not unexpected).
    pub in_dlq: u64,
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
        writeln!(f, "{:<28} {:>10}", "staged in postgresql", self.staged)?;
        writeln!(
            f,
            "{:<28} {:>10}",
            "quarantined at ingest", self.quarantined
        )?;
        writeln!(f, "{:<28} {:>10}", "distinct ids in kafka", self.in_kafka)?;
        writeln!(f, "{:<28} {:>10}", "records in kafka", self.kafka_records)?;
        writeln!(f, "{:<28} {:>10}", "rows in cassandra", self.in_cassandra)?;
        writeln!(f, "{:<28} {:>10}", "poison records in the dlq", self.in_dlq)?;
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

/// Runs verify and prints its report (a table, or JSON); the exit code is 0 only when
/// everything matches. Shared by `tributary verify` and `tributary demo`.
pub async fn print(config: &Config, json: bool) -> i32 {
    match verify(config).await {
        Ok(report) => {
            if json {
                match serde_json::to_string_pretty(&report) {
                    Ok(text) => println!("{text}"),
                    Err(error) => {
                        eprintln!("error: cannot encode the report: {error}");
                        return crate::exit::FAILURE;
                    }
                }
            } else {
                println!("{report}");
            }
            if report.is_clean() {
                crate::exit::OK
            } else {
                crate::exit::FAILURE
            }
        }
        Err(error) => {
            eprintln!("error: verify: {}", crate::error_chain(&error));
            crate::exit::for_store_error(&error)
        }
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
    let expected_aggregates = postgres_aggregates(&client).await?;
    let in_kafka = read_committed_keys(&config.kafka, &config.kafka.topics.raw.name).await?;
    let in_dlq = read_committed_keys(&config.kafka, &config.kafka.topics.dlq.name).await?;
    let session = cassandra::connect(&config.cassandra).await?;
    let in_cassandra = cassandra_ids(&session, &config.cassandra.keyspace).await?;
    let aggregates = cassandra_aggregates(
        &session,
        &config.cassandra.keyspace,
        &config.kafka.topics.raw.name,
    )
    .await?;

    let mut report = Report {
        staged: staged.len() as u64,
        in_kafka: in_kafka.len() as u64,
        kafka_records: in_kafka.values().map(|&n| n as u64).sum(),
        in_cassandra: in_cassandra.len() as u64,
        quarantined: quarantined.unsigned_abs(),
        in_dlq: in_dlq.len() as u64,
        ..Report::default()
    };
    for id in &staged {
        let (kafka, cassandra) = (in_kafka.contains_key(id), in_cassandra.contains(id));
        report.missing_in_kafka += u64::from(!kafka);
        report.missing_in_cassandra += u64::from(!cassandra);
        if !(kafka && cassandra) {
            report.missing += 1;
            push_sample(&mut report.samples.missing, id);
        }
    }
    for (id, &count) in &in_kafka {
        if count > 1 {
            report.duplicated += 1;
            push_sample(&mut report.samples.duplicated, id);
        }
    }
    let delivered: HashSet<&String> = in_kafka.keys().chain(in_cassandra.iter()).collect();
    for id in delivered {
        if !staged.contains(id) && !in_dlq.contains_key(id) {
            report.unexpected += 1;
            push_sample(&mut report.samples.unexpected, id);
        }
    }
    let buckets: std::collections::BTreeSet<&String> = expected_aggregates
        .keys()
        .chain(aggregates.keys())
        .collect();
    for bucket in buckets {
        let (want, got) = (
            expected_aggregates.get(bucket).copied().unwrap_or(0),
            aggregates.get(bucket).copied().unwrap_or(0),
        );
        if want != got {
            report
                .aggregate_errors
                .push(format!("{bucket}: cassandra {got}, postgresql {want}"));
        }
    }
    Ok(report)
}

/// Users per bucket (`country:…`, `gender:…`) computed from what was staged.
async fn postgres_aggregates(
    client: &tokio_postgres::Client,
) -> Result<BTreeMap<String, i64>, StoreError> {
    let rows = client
        .query(
            "SELECT 'country:' || coalesce(payload->'location'->>'country', '<none>'), count(*) \
             FROM staged_users GROUP BY 1 \
             UNION ALL SELECT 'gender:' || coalesce(payload->>'gender', '<none>'), count(*) \
             FROM staged_users GROUP BY 1",
            &[],
        )
        .await
        .map_err(|e| query_error("aggregate staged users", e))?;
    Ok(rows
        .iter()
        .map(|row| (row.get::<_, String>(0), row.get::<_, i64>(1)))
        .collect())
}

fn cassandra_error(what: &'static str) -> impl Fn(scylla::errors::ExecutionError) -> StoreError {
    move |e| StoreError::request(Service::Cassandra, what, true, e)
}

/// Every id in created_users (a paged full scan).
async fn cassandra_ids(session: &Session, keyspace: &str) -> Result<HashSet<String>, StoreError> {
    let mut ids = HashSet::new();
    let mut rows = session
        .query_iter(format!("SELECT id FROM {keyspace}.created_users"), ())
        .await
        .map_err(|e| StoreError::request(Service::Cassandra, "scan created_users", true, e))?
        .rows_stream::<(uuid::Uuid,)>()
        .map_err(|e| {
            StoreError::request(
                Service::Cassandra,
                "unexpected created_users rows",
                false,
                e,
            )
        })?;
    while let Some(row) = rows.next().await {
        let (id,) = row
            .map_err(|e| StoreError::request(Service::Cassandra, "scan created_users", true, e))?;
        ids.insert(id.to_string());
    }
    Ok(ids)
}

/// The aggregates committed in partition_state, summed over the topic's partitions.
///
/// # Errors
/// Cassandra cannot be read.
pub async fn cassandra_aggregates(
    session: &Session,
    keyspace: &str,
    topic: &str,
) -> Result<BTreeMap<String, i64>, StoreError> {
    let result = session
        .query_unpaged(
            format!("SELECT topic, bucket, user_count FROM {keyspace}.partition_state"),
            (),
        )
        .await
        .map_err(cassandra_error("read partition_state"))?
        .into_rows_result()
        .map_err(|e| {
            StoreError::request(
                Service::Cassandra,
                "unexpected partition_state rows",
                false,
                e,
            )
        })?;
    let mut sums = BTreeMap::new();
    for row in result
        .rows::<(String, Option<String>, Option<i64>)>()
        .map_err(|e| {
            StoreError::request(
                Service::Cassandra,
                "unexpected partition_state rows",
                false,
                e,
            )
        })?
    {
        let (row_topic, bucket, count) = row.map_err(|e| {
            StoreError::request(
                Service::Cassandra,
                "unexpected partition_state row",
                false,
                e,
            )
        })?;
        if let (true, Some(bucket), Some(count)) = (row_topic == topic, bucket, count) {
            *sums.entry(bucket).or_insert(0) += count;
        }
    }
    Ok(sums)
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
