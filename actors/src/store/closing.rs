//! Kafka clients closed off the async runtime. Dropping a librdkafka handle destroys it,
//! and `rd_kafka_destroy` waits for its threads: a producer for its in-flight requests,
//! a consumer for its group to be left, both for brokers that may not answer (a broker
//! paused, a partition cutting the node off). Dropped on a tokio worker — the last copy
//! of a shared client going with an actor's state — that wait stalls every task on the
//! worker, and with two workers two such drops stall the process. Every long-lived
//! client is therefore held in [`OffRuntime`], whose drop hands the client to a thread
//! of its own. (The group consumer has its own close path in the coordinator.)

use std::ops::Deref;
use std::sync::Arc;

/// A client whose drop runs on a dedicated thread.
pub struct OffRuntime<T: Send + 'static>(Option<T>);

/// A client shared by several actors; the last reference dropped closes it off the
/// runtime.
pub type Shared<T> = Arc<OffRuntime<T>>;

/// Wraps `client` for sharing.
pub fn shared<T: Send + 'static>(client: T) -> Shared<T> {
    Arc::new(OffRuntime(Some(client)))
}

impl<T: Send + 'static> Deref for OffRuntime<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // Only `drop` takes the client out.
        self.0.as_ref().expect("a client is present until dropped")
    }
}

impl<T: Send + 'static> Drop for OffRuntime<T> {
    fn drop(&mut self) {
        let Some(client) = self.0.take() else { return };
        let spawned = std::thread::Builder::new()
            .name("tributary-kafka-close".into())
            .spawn(move || drop(client));
        if let Err(error) = spawned {
            // No thread to be had: the client was dropped with the closure, here.
            tracing::warn!(%error, "no thread to close a Kafka client on: closed in place");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// Records the thread it is dropped on.
    struct Probe(mpsc::Sender<Option<String>>);

    impl Drop for Probe {
        fn drop(&mut self) {
            let _ = self
                .0
                .send(std::thread::current().name().map(str::to_owned));
        }
    }

    #[test]
    fn the_last_reference_closes_the_client_on_its_own_thread() {
        let (tx, rx) = mpsc::channel();
        let client = shared(Probe(tx));
        let copy = Arc::clone(&client);
        drop(client);
        assert!(rx.try_recv().is_err(), "a copy still holds it");
        drop(copy);
        let thread = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("dropped");
        assert_eq!(thread.as_deref(), Some("tributary-kafka-close"));
    }
}
