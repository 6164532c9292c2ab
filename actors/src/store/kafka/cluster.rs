//! Requests to the cluster itself: its metadata (with the reason a connection failed)
//! and a partition's watermarks.

use super::Config;
use crate::store::{Cause, Service, StoreError};
use rdkafka::consumer::{Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use std::time::{Duration, Instant};

/// How many queued events a failed metadata request serves to [`ConnectionErrors`].
const CONNECTION_EVENTS_SERVED: usize = 64;

/// Asks the cluster for its metadata: the number of brokers.
///
/// # Errors
/// As [`with_metadata`].
pub async fn check(config: &Config) -> Result<usize, StoreError> {
    with_metadata(config, "check", |metadata| metadata.brokers().len()).await
}

/// Asks the cluster for its metadata (all topics) and reads what `read` takes from it;
/// the blocking librdkafka call runs on the blocking pool.
///
/// # Errors
/// [`StoreError::Unreachable`] when no broker answers within `request_timeout_ms`,
/// with the reason librdkafka last gave for a failed connection (a TLS handshake, an
/// authentication): the request's own error only says the transport failed.
pub async fn with_metadata<T: Send + 'static>(
    config: &Config,
    role: &str,
    read: impl FnOnce(&rdkafka::metadata::Metadata) -> T + Send + 'static,
) -> Result<T, StoreError> {
    use rdkafka::consumer::BaseConsumer;
    let client: BaseConsumer<ConnectionErrors> = config
        .client_config(role)?
        // Connection failures are logged at INFO (FAIL): asked for whatever the
        // process's own log level, which librdkafka otherwise takes from the `log` crate.
        .set_log_level(rdkafka::config::RDKafkaLogLevel::Info)
        .create_with_context(ConnectionErrors::default())
        .map_err(|e| StoreError::request(Service::Kafka, "cannot create a client", e))?;
    let timeout = config.request_timeout();
    let endpoint = config.bootstrap_servers.clone();
    tokio::task::spawn_blocking(move || match client.fetch_metadata(None, timeout) {
        Ok(metadata) => Ok(read(&metadata)),
        Err(error) => {
            // Serve what the failed connections logged to the context (bounded: each
            // poll serves at most one event, and a client that keeps failing keeps
            // logging).
            for _ in 0..CONNECTION_EVENTS_SERVED {
                let _ = client.poll(Duration::ZERO);
            }
            let cause: Cause = match client.context().last() {
                Some(reason) => format!("{error}: {reason}").into(),
                None => Box::new(error),
            };
            Err(StoreError::unreachable(Service::Kafka, endpoint, cause))
        }
    })
    .await
    .map_err(|e| StoreError::request(Service::Kafka, "metadata task failed", e))?
}

/// A client context that keeps the last error librdkafka reported — why a broker
/// connection failed ("SSL handshake failed: … certificate verify failed", "SASL
/// authentication error: … invalid credentials"), which a request's error does not say.
/// librdkafka queues them as log and error events, served to the context by polling.
#[derive(Debug, Default)]
pub struct ConnectionErrors {
    last: std::sync::Mutex<Option<String>>,
}

impl ConnectionErrors {
    /// Keeps `reason` unless it only says that no broker is up, which follows every
    /// failed connection and would hide why it failed.
    fn keep(&self, reason: &str) {
        if reason.contains("brokers are down") {
            return;
        }
        if let Ok(mut last) = self.last.lock() {
            *last = Some(reason.to_owned());
        }
    }

    fn last(&self) -> Option<String> {
        self.last.lock().map_or(None, |last| last.clone())
    }
}

impl rdkafka::ClientContext for ConnectionErrors {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        use rdkafka::config::RDKafkaLogLevel as Level;
        // FAIL is a broker connection's failure, logged at any level (a peer that
        // closes the connection at once, as a TLS listener does to plaintext, at INFO).
        if facility == "FAIL" {
            self.keep(message);
        }
        match level {
            Level::Emerg | Level::Alert | Level::Critical | Level::Error => {
                tracing::warn!(facility, message, "librdkafka");
                self.keep(message);
            }
            Level::Warning => tracing::warn!(facility, message, "librdkafka"),
            Level::Notice | Level::Info | Level::Debug => {
                tracing::debug!(facility, message, "librdkafka");
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "librdkafka");
        self.keep(reason);
    }
}

impl ConsumerContext for ConnectionErrors {}

/// How long [`watermarks`] waits before asking a partition whose leader is moving again.
const LEADER_MOVING_RETRY: Duration = Duration::from_millis(100);

/// Whether a partition answered that its leader is being elected or that the broker's
/// metadata has not caught up yet: right after `CreateTopics`, and during a failover, a
/// ListOffsets request gets these for a few hundred milliseconds (a new leader answers
/// OffsetNotAvailable until it knows its high watermark, KIP-207), and librdkafka only
/// refreshes its metadata on them, it does not ask again. Asking again helps.
/// UnknownTopicOrPartition is among them because a topic just created is unknown to a
/// broker whose metadata lags: a topic that is really missing costs the whole timeout.
fn leader_moving(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::ReplicaNotAvailable
                | RDKafkaErrorCode::OffsetNotAvailable
                | RDKafkaErrorCode::FencedLeaderEpoch
                | RDKafkaErrorCode::UnknownLeaderEpoch
                | RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::UnknownPartition
        )
    )
}

/// A partition's low and high watermarks, asked again while its leader is moving
/// ([`leader_moving`]) until `timeout` has passed; then the last error.
///
/// # Errors
/// The partition has no leader for the whole of `timeout`, or the request fails
/// otherwise.
pub fn watermarks<X: ConsumerContext, C: Consumer<X>>(
    consumer: &C,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Result<(i64, i64), KafkaError> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match consumer.fetch_watermarks(topic, partition, left) {
            Err(error)
                if leader_moving(&error) && Instant::now() + LEADER_MOVING_RETRY < deadline =>
            {
                tracing::debug!(topic, partition, %error, "partition leader moving, asking again");
                std::thread::sleep(LEADER_MOVING_RETRY);
            }
            answer => return answer,
        }
    }
}
