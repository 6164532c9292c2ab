//! The producer's checkpoint: the last outbox id published, a record of the checkpoints
//! topic committed in the same Kafka transaction as the records it covers.

use crate::store::kafka;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// The checkpoint partition: a single one, so reading it back is one partition scan.
pub const CHECKPOINT_PARTITION: i32 = 0;

/// The checkpoint record's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub last_outbox_id: i64,
}

/// The last checkpoint this producer committed, read back with read_committed.
///
/// # Errors
/// The checkpoints topic cannot be read.
pub fn read_checkpoint(
    config: &kafka::Config,
    topic: &str,
    key: &str,
) -> Result<Option<Checkpoint>, KafkaError> {
    let consumer: BaseConsumer = config
        .reader_config("checkpoint-reader", format!("{key}-checkpoint-reader"))
        .map_err(|_| KafkaError::ClientCreation("cannot read credentials".into()))?
        .create()?;
    let timeout = config.request_timeout();
    let (low, high) = kafka::watermarks(&consumer, topic, CHECKPOINT_PARTITION, timeout)?;
    if high <= low {
        return Ok(None);
    }
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, CHECKPOINT_PARTITION, Offset::Offset(low))?;
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + timeout;
    let mut last = None;
    loop {
        // read_committed stops at the last stable offset; once there, the log is read.
        let position = consumer
            .position()?
            .find_partition(topic, CHECKPOINT_PARTITION)
            .and_then(|p| match p.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            })
            .unwrap_or(low);
        if position >= high {
            return Ok(last);
        }
        if Instant::now() > deadline {
            return Err(KafkaError::MessageConsumption(
                RDKafkaErrorCode::OperationTimedOut,
            ));
        }
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message?;
            if message.key() == Some(key.as_bytes())
                && let Some(checkpoint) = message
                    .payload()
                    .and_then(|p| serde_json::from_slice::<Checkpoint>(p).ok())
            {
                last = Some(checkpoint);
            }
        }
    }
}
