//! Kafka clients that lost every broker get their bootstrap servers back.
//!
//! librdkafka (2.10 and later, 2.12.1 bundled here) removes every broker a Metadata
//! response does not list. A broker frozen for longer than its KRaft session (a long GC
//! pause, a stalled VM, SIGSTOP) is fenced by the controller the moment it resumes and
//! unfenced a few hundred milliseconds later; a Metadata response sent in between lists
//! no broker at all. A client that asks then (a consumer rejoining its group does) is
//! left with no broker, and librdkafka never re-bootstraps it, because its re-bootstrap
//! timer only runs while metadata requests are sent (librdkafka issue #5301, open). The
//! consumer group handler then queries for a coordinator forever: a consumer that never
//! consumes again, while the broker is healthy.
//!
//! The owner of each long-lived client calls [`BrokerLoss::repair`] regularly: when the
//! client's statistics (every second) show no broker but librdkafka's logical ones, the
//! bootstrap servers are added again (`rd_kafka_brokers_add`), exactly what a
//! re-bootstrap does, and the client finds its cluster in the next metadata round.

use rdkafka::client::Client;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{ClientContext, Statistics};
use std::ffi::CString;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Statistics older than this say nothing about the client's brokers any more.
const STALE: Duration = Duration::from_secs(10);
/// A client without brokers for this long is repaired: librdkafka removes a broker and
/// adds its replacement from the same Metadata response, never across seconds.
const GRACE: Duration = Duration::from_secs(2);
/// After a repair the next one waits at least this long, doubling with every repair
/// that brought no broker back, up to [`AGAIN_AFTER_MAX`]. A broker resuming from a
/// freeze can be fenced twice in a row (the controller fences it again when its first
/// heartbeats time out), so a second repair a few seconds after the first is normal;
/// a bootstrap name that does not resolve backs off instead of being added again every
/// grace period.
const AGAIN_AFTER_MIN: Duration = Duration::from_secs(1);
const AGAIN_AFTER_MAX: Duration = Duration::from_secs(30);

/// What one client's statistics said about its brokers.
#[derive(Debug, Default)]
pub struct BrokerLoss {
    state: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    /// When statistics last arrived.
    at: Option<Instant>,
    /// Since when the client has known no broker but logical ones.
    lost_since: Option<Instant>,
    /// The last repair.
    repaired_at: Option<Instant>,
    /// How long after the last repair the next may run; reset once a broker is learned
    /// from the cluster again.
    again_after: Option<Duration>,
}

impl BrokerLoss {
    /// Records the brokers of one statistics report (call it from the client's
    /// `ClientContext::stats`; statistics must be on: `statistics.interval.ms`).
    pub fn observe(&self, statistics: &Statistics) {
        let has_broker = statistics
            .brokers
            .values()
            .any(|b| b.source == "learned" || b.source == "configured");
        // A configured broker is only a name; a learned one proves the repair worked.
        let learned = statistics.brokers.values().any(|b| b.source == "learned");
        let now = Instant::now();
        let mut seen = self.state.lock().unwrap_or_else(|p| p.into_inner());
        seen.at = Some(now);
        if learned {
            seen.again_after = None;
        }
        seen.lost_since = match (has_broker, seen.lost_since) {
            (true, _) => None,
            (false, since) => since.or(Some(now)),
        };
    }

    /// Whether the client lost every broker for longer than the grace period, by fresh
    /// statistics.
    pub fn lost(&self) -> bool {
        let seen = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let again_after = seen.again_after.unwrap_or(AGAIN_AFTER_MIN);
        let rested = seen
            .repaired_at
            .is_none_or(|at| at.elapsed() >= again_after);
        rested
            && matches!(
                (seen.at, seen.lost_since),
                (Some(at), Some(since)) if at.elapsed() < STALE && since.elapsed() >= GRACE
            )
    }

    /// A repair at `at`: the loss starts over and the next repair waits longer.
    fn record_repair(&self, at: Instant) {
        let mut seen = self.state.lock().unwrap_or_else(|p| p.into_inner());
        seen.lost_since = None;
        seen.repaired_at = Some(at);
        seen.again_after = Some(match seen.again_after {
            None => AGAIN_AFTER_MIN,
            Some(wait) => (wait * 2).min(AGAIN_AFTER_MAX),
        });
    }

    /// Adds `bootstrap_servers` to `client` again if it lost every broker; returns
    /// whether it did. Cheap otherwise: call it as often as convenient.
    pub fn repair<C: ClientContext>(
        &self,
        client: &Client<C>,
        bootstrap_servers: &str,
        role: &str,
    ) -> bool {
        if !self.lost() {
            return false;
        }
        let Ok(list) = CString::new(bootstrap_servers) else {
            return false;
        };
        // SAFETY: `client` owns a live librdkafka handle for as long as the borrow lasts,
        // and rd_kafka_brokers_add only reads the NUL-terminated list, which outlives the
        // call; it is documented as callable from any thread.
        let added =
            unsafe { rdkafka::bindings::rd_kafka_brokers_add(client.native_ptr(), list.as_ptr()) };
        self.record_repair(Instant::now());
        metrics::counter!("tributary_kafka_rebootstraps_total", "client" => role.to_owned())
            .increment(1);
        tracing::warn!(
            client = role,
            bootstrap_servers,
            added,
            "kafka client lost every broker (a metadata response listed none: librdkafka \
             #5301); bootstrap servers added again"
        );
        true
    }
}

/// The context of clients that need nothing else: their statistics feed a
/// [`BrokerLoss`].
#[derive(Debug, Default, Clone)]
pub struct KeptContext {
    pub loss: std::sync::Arc<BrokerLoss>,
}

impl ClientContext for KeptContext {
    fn stats(&self, statistics: Statistics) {
        self.loss.observe(&statistics);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // The readers that ask for `enable.partition.eof` (the monitor, the reconciler)
        // are also told of each partition end as a global error event: the answer they
        // asked for, not a fault. Logged at ERROR it was most of a soak's log (3,567
        // lines in 26 minutes) and hid the real errors.
        if matches!(error, KafkaError::Global(RDKafkaErrorCode::PartitionEOF)) {
            tracing::trace!(reason, "librdkafka: end of partition");
            return;
        }
        tracing::error!("librdkafka: {error}: {reason}");
    }
}

impl rdkafka::producer::ProducerContext for KeptContext {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

impl rdkafka::consumer::ConsumerContext for KeptContext {}

#[cfg(test)]
mod tests {
    use super::*;

    fn statistics(sources: &[&str]) -> Statistics {
        let mut statistics = Statistics::default();
        for (i, source) in sources.iter().enumerate() {
            statistics.brokers.insert(
                format!("b{i}"),
                rdkafka::statistics::Broker {
                    source: (*source).to_owned(),
                    ..Default::default()
                },
            );
        }
        statistics
    }

    #[test]
    fn a_client_with_only_logical_brokers_has_lost_them_after_the_grace_period() {
        let loss = BrokerLoss::default();
        loss.observe(&statistics(&["learned", "logical"]));
        assert!(!loss.lost());
        loss.observe(&statistics(&["logical"]));
        assert!(!loss.lost(), "within the grace period");
        loss.state.lock().unwrap().lost_since = Some(Instant::now() - GRACE);
        assert!(loss.lost());
        loss.observe(&statistics(&["configured", "logical"]));
        assert!(!loss.lost(), "a bootstrap broker is a broker");
    }

    fn repaired(loss: &BrokerLoss, ago: Duration) {
        loss.record_repair(Instant::now() - ago);
    }

    fn lost_for(loss: &BrokerLoss, for_: Duration) {
        loss.observe(&statistics(&["logical"]));
        loss.state.lock().unwrap().lost_since = Some(Instant::now() - for_);
    }

    #[test]
    fn repairs_that_bring_no_broker_back_back_off_and_a_learned_broker_resets_them() {
        let loss = BrokerLoss::default();
        repaired(&loss, Duration::ZERO);
        lost_for(&loss, GRACE);
        assert!(!loss.lost(), "one second after the first repair");
        repaired(&loss, AGAIN_AFTER_MIN);
        lost_for(&loss, GRACE);
        loss.state.lock().unwrap().repaired_at = Some(Instant::now() - AGAIN_AFTER_MIN);
        assert!(!loss.lost(), "the second repair doubled the wait");
        loss.state.lock().unwrap().repaired_at = Some(Instant::now() - 2 * AGAIN_AFTER_MIN);
        assert!(loss.lost());
        for _ in 0..10 {
            repaired(&loss, Duration::ZERO);
        }
        assert_eq!(
            loss.state.lock().unwrap().again_after,
            Some(AGAIN_AFTER_MAX)
        );
        loss.observe(&statistics(&["configured", "logical"]));
        assert_eq!(
            loss.state.lock().unwrap().again_after,
            Some(AGAIN_AFTER_MAX),
            "a configured name proves nothing"
        );
        loss.observe(&statistics(&["learned", "logical"]));
        lost_for(&loss, GRACE);
        loss.state.lock().unwrap().repaired_at = Some(Instant::now() - AGAIN_AFTER_MIN);
        assert!(loss.lost(), "a learned broker reset the backoff");
    }

    #[test]
    fn stale_statistics_prove_nothing() {
        let loss = BrokerLoss::default();
        loss.observe(&statistics(&["logical"]));
        {
            let mut seen = loss.state.lock().unwrap();
            seen.lost_since = Some(Instant::now() - GRACE);
            seen.at = Some(Instant::now() - STALE);
        }
        assert!(!loss.lost());
    }
}
