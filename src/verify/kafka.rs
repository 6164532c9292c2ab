//! Reading a topic whole, read_committed, without holding it: each record is handed to
//! a fold.

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tributary_actors::store::{Service, StoreError, kafka};

/// Folds every record of `topic` into `state` with `step` (read_committed, from the
/// beginning to the end of every partition as it was when the scan began).
///
/// # Errors
/// Kafka cannot be reached, or the end is not reached within the request timeout per
/// idle poll (a transaction left open holds read_committed readers back).
pub async fn scan<A, F>(
    config: &kafka::Config,
    topic: &str,
    state: A,
    step: F,
) -> Result<A, StoreError>
where
    A: Send + 'static,
    F: FnMut(&mut A, &BorrowedMessage<'_>) + Send + 'static,
{
    let (config, topic) = (config.clone(), topic.to_owned());
    tokio::task::spawn_blocking(move || scan_blocking(&config, &topic, state, step))
        .await
        .map_err(|e| StoreError::request(Service::Kafka, "reader task failed", e))?
}

fn scan_blocking<A, F>(
    config: &kafka::Config,
    topic: &str,
    mut state: A,
    mut step: F,
) -> Result<A, StoreError>
where
    F: FnMut(&mut A, &BorrowedMessage<'_>),
{
    let consumer: BaseConsumer = config
        .reader_config("verify", format!("tributary-verify-{}", std::process::id()))?
        .create()
        .map_err(Service::Kafka.error("cannot create a consumer"))?;
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
            .map_err(Service::Kafka.error("cannot assign"))?;
        let (_, high) = kafka::watermarks(&consumer, topic, partition, timeout)
            .map_err(Service::Kafka.error("cannot read watermarks"))?;
        ends.push((partition, high));
    }
    consumer
        .assign(&assignment)
        .map_err(Service::Kafka.error("cannot assign"))?;
    let mut last_progress = Instant::now();
    loop {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.map_err(Service::Kafka.error("consume failed"))?;
            step(&mut state, &message);
            last_progress = Instant::now();
            continue;
        }
        // read_committed stops before transaction markers and open transactions: the
        // end is reached when every position has passed its high watermark.
        let position = consumer
            .position()
            .map_err(Service::Kafka.error("cannot read positions"))?;
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
            return Ok(state);
        }
        if last_progress.elapsed() > timeout {
            return Err(StoreError::request(
                Service::Kafka,
                format!("no progress reading {topic} for {timeout:?}: is a transaction left open?"),
                Box::<dyn std::error::Error + Send + Sync>::from("read_committed stalled"),
            ));
        }
    }
}

/// Every key of `topic` with how many times it occurs. Holds every key: for tests and
/// small topics; `tributary verify` folds per run instead.
///
/// # Errors
/// See [`scan`].
pub async fn read_committed_keys(
    config: &kafka::Config,
    topic: &str,
) -> Result<HashMap<String, usize>, StoreError> {
    scan(
        config,
        topic,
        HashMap::new(),
        |keys: &mut HashMap<String, usize>, message| {
            let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
            *keys.entry(key).or_insert(0) += 1;
        },
    )
    .await
}
