//! The Kafka side of a publish: librdkafka's transactional producer, the calls that are
//! resumed rather than aborted, and sends that wait for room.

use crate::store::rebootstrap::KeptContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, Producer as _, ThreadedProducer};
use std::time::{Duration, Instant};

pub type KafkaProducer = ThreadedProducer<KeptContext>;

/// Waits, in 1 ms sleeps, until every record sent is delivered (or `timeout`).
///
/// rust-rdkafka's `commit_transaction` first flushes, and its flush polls in 100 ms
/// steps that run to their end: 100 ms were added to every transaction (measured: flush
/// 100–104 ms for 1,000 records delivered in ~3 ms). With nothing left in flight, that
/// flush returns at once; if something still is at `timeout`, the commit's own flush
/// waits for it as before. Sleeping, not polling: the producer's own thread serves the
/// delivery reports, and a short poll here spins (it took a third of the process's CPU).
pub fn await_deliveries(producer: &KafkaProducer, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while producer.in_flight_count() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Resumptions of a timed-out transaction call before the producer gives up on it.
/// Past a freeze of the broker, librdkafka can stay stuck in an abort it never finishes
/// (seen after a 30 s SIGSTOP: the abort timed out again and again for minutes); a new
/// producer resolves it at once (its init_transactions fences this one and completes or
/// aborts what is open), so the actor fails and is restarted instead of waiting on.
const RESUMPTIONS: u32 = 2;

/// Calls a transaction API again while librdkafka says the error is retriable (a
/// timed-out commit must be resumed by calling commit again, not aborted), up to
/// [`RESUMPTIONS`] times.
pub fn retrying(call: impl Fn() -> Result<(), KafkaError>) -> Result<(), KafkaError> {
    let mut attempts = 0;
    loop {
        match call() {
            Err(KafkaError::Transaction(e)) if e.is_retriable() && attempts < RESUMPTIONS => {
                attempts += 1;
                tracing::warn!(
                    error = &e as &dyn std::error::Error,
                    attempts,
                    "kafka transaction call timed out: resuming it"
                );
            }
            result => return result,
        }
    }
}

/// Enqueues one record, waiting for room when librdkafka's local queue is full.
pub fn send<K: rdkafka::message::ToBytes + ?Sized, P: rdkafka::message::ToBytes + ?Sized>(
    producer: &KafkaProducer,
    mut record: BaseRecord<'_, K, P>,
) -> Result<(), KafkaError> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err((error, _)) => return Err(error),
        }
    }
}

/// Fenced (a newer producer with our transactional.id exists) or otherwise unusable.
pub fn is_fatal(error: &KafkaError) -> bool {
    match error {
        KafkaError::Transaction(e) => e.is_fatal(),
        _ => false,
    }
}
