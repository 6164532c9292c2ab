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
use rdkafka::{ClientContext, Statistics};
use std::ffi::CString;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Statistics older than this say nothing about the client's brokers any more.
const STALE: Duration = Duration::from_secs(10);
/// A client without brokers for this long is repaired: librdkafka removes a broker and
/// adds its replacement from the same Metadata response, never across seconds.
const GRACE: Duration = Duration::from_secs(2);
/// After a repair, the next one waits at least this long (a bootstrap name that does
/// not resolve would otherwise be added again every grace period).
const AGAIN_AFTER: Duration = Duration::from_secs(30);

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
}

impl BrokerLoss {
    /// Records the brokers of one statistics report (call it from the client's
    /// `ClientContext::stats`; statistics must be on: `statistics.interval.ms`).
    pub fn observe(&self, statistics: &Statistics) {
        let has_broker = statistics
            .brokers
            .values()
            .any(|b| b.source == "learned" || b.source == "configured");
        let now = Instant::now();
        let mut seen = self.state.lock().unwrap_or_else(|p| p.into_inner());
        seen.at = Some(now);
        seen.lost_since = match (has_broker, seen.lost_since) {
            (true, _) => None,
            (false, since) => since.or(Some(now)),
        };
    }

    /// Whether the client lost every broker for longer than the grace period, by fresh
    /// statistics.
    pub fn lost(&self) -> bool {
        let seen = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let rested = seen
            .repaired_at
            .is_none_or(|at| at.elapsed() >= AGAIN_AFTER);
        rested
            && matches!(
                (seen.at, seen.lost_since),
                (Some(at), Some(since)) if at.elapsed() < STALE && since.elapsed() >= GRACE
            )
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
        {
            let mut seen = self.state.lock().unwrap_or_else(|p| p.into_inner());
            seen.lost_since = None;
            seen.repaired_at = Some(Instant::now());
        }
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
