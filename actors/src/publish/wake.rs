//! How the producer is woken: by NOTIFY from the stager, by a timer, by itself while a
//! backlog remains — and never more than once at a time.

use super::messages::ProducerMsg;
use crate::store::postgres;
use crate::store::{Service, StoreError};
use futures::StreamExt;
use ractor::{ActorRef, ActorStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;

/// Asks the producer for a Wake unless one is already queued.
///
/// NOTIFY (one per staged run), the poll timer and the producer itself (while a backlog
/// remains) all ask, but one queued Wake reads everything there is. Without the
/// coalescing, a producer with a backlog got Wakes faster than it published batches:
/// its mailbox grew without bound and the supervisor's liveness ping, queued behind
/// them, went unanswered for a minute, so the busiest producer was declared hung and
/// restarted every ~100 s and never caught up (the soak's publish backlog after a Kafka
/// kill). Now a ping waits for one batch at most.
#[derive(Clone)]
pub struct Waker {
    queued: Arc<AtomicBool>,
    producer: ActorRef<ProducerMsg>,
}

impl Waker {
    pub fn new(producer: ActorRef<ProducerMsg>) -> Waker {
        Waker {
            queued: Arc::new(AtomicBool::new(false)),
            producer,
        }
    }

    /// Queues a Wake if none is; an error means the producer is gone (also while a Wake
    /// is queued: the timer and the listener of a dead producer must end).
    pub fn wake(&self) -> Result<(), ractor::MessagingErr<ProducerMsg>> {
        if matches!(
            self.producer.get_status(),
            ActorStatus::Stopping | ActorStatus::Stopped
        ) {
            return Err(ractor::MessagingErr::ChannelClosed);
        }
        if self.queued.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.producer
            .send_message(ProducerMsg::Wake)
            .inspect_err(|_| {
                self.queued.store(false, Ordering::Release);
            })
    }

    /// The queued Wake is being handled: what arrives from now on needs another.
    pub fn taken(&self) {
        self.queued.store(false, Ordering::Release);
    }
}

/// How long the listener waits before it connects again after losing its connection.
const RELISTEN_AFTER: Duration = Duration::from_secs(1);

/// Forwards every NOTIFY of the staging channel as a Wake, on a dedicated connection
/// (pooled connections would drop notifications). The first connection is opened here,
/// so a PostgreSQL that does not answer fails the start; when it drops later the task
/// connects again every [`RELISTEN_AFTER`] (the poll timer keeps the producer going
/// meanwhile) and wakes the producer once for what it may have missed.
pub async fn listen(config: &postgres::Config, waker: Waker) -> Result<JoinHandle<()>, StoreError> {
    let first = subscribe(config).await?;
    let config = config.clone();
    Ok(tokio::spawn(async move {
        let mut subscription = Some(first);
        loop {
            let (_client, mut notifications) = match subscription.take() {
                Some(subscribed) => subscribed,
                None => match subscribe(&config).await {
                    Ok(subscribed) => {
                        tracing::info!("outbox LISTEN connection open again");
                        if waker.wake().is_err() {
                            return;
                        }
                        subscribed
                    }
                    Err(error) => {
                        tracing::debug!(error = %error, "outbox LISTEN: still no connection");
                        tokio::time::sleep(RELISTEN_AFTER).await;
                        continue;
                    }
                },
            };
            while notifications.recv().await.is_some() {
                if waker.wake().is_err() {
                    return;
                }
            }
            tokio::time::sleep(RELISTEN_AFTER).await;
        }
    }))
}

/// Connects and LISTENs; the receiver yields once per notification and closes when the
/// connection is lost (the client must live as long as the subscription).
async fn subscribe(
    config: &postgres::Config,
) -> Result<(tokio_postgres::Client, mpsc::UnboundedReceiver<()>), StoreError> {
    let (client, mut connection) = config
        .client_config()?
        .connect(config.tls()?)
        .await
        .map_err(|e| StoreError::unreachable(Service::Postgres, config.endpoint(), e))?;
    let (notified, notifications) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(_)) => {
                    if notified.send(()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(
                        error = &error as &dyn std::error::Error,
                        "outbox LISTEN connection lost: connecting again"
                    );
                    return;
                }
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN \"{}\"", config.staged_channel()))
        .await
        .map_err(Service::Postgres.error("listen"))?;
    Ok((client, notifications))
}

/// Wakes the producer every `every` (a NOTIFY can be missed) until it is gone.
pub fn tick(waker: Waker, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if waker.wake().is_err() {
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ractor::{Actor, ActorProcessingErr};
    use std::sync::atomic::AtomicUsize;

    /// Counts the Wakes it handles, each taking a while (a batch being published).
    struct Slow {
        handled: Arc<AtomicUsize>,
        waker: Arc<std::sync::OnceLock<Waker>>,
    }

    impl Actor for Slow {
        type Msg = ProducerMsg;
        type State = ();
        type Arguments = ();

        async fn pre_start(
            &self,
            _: ActorRef<ProducerMsg>,
            _: (),
        ) -> Result<(), ActorProcessingErr> {
            Ok(())
        }

        async fn handle(
            &self,
            _: ActorRef<ProducerMsg>,
            message: ProducerMsg,
            _: &mut (),
        ) -> Result<(), ActorProcessingErr> {
            match message {
                ProducerMsg::Wake => {
                    self.waker.get().expect("set before any wake").taken();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    self.handled.fetch_add(1, Ordering::SeqCst);
                }
                ProducerMsg::Ping(reply) => {
                    let _ = reply.send(());
                }
                ProducerMsg::Drain(_) => {}
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn wakes_while_one_is_queued_coalesce_and_a_ping_waits_for_one_batch_at_most() {
        let handled = Arc::new(AtomicUsize::new(0));
        let slot = Arc::new(std::sync::OnceLock::new());
        let (actor, handle) = Actor::spawn(
            None,
            Slow {
                handled: handled.clone(),
                waker: slot.clone(),
            },
            (),
        )
        .await
        .unwrap();
        let waker = Waker::new(actor.clone());
        slot.set(waker.clone()).ok();
        // A burst of NOTIFYs and ticks while the first Wake is being handled.
        waker.wake().unwrap();
        // Until the first Wake is taken (being handled), a wake joins it.
        while waker.queued.load(Ordering::Acquire) {
            tokio::task::yield_now().await;
        }
        for _ in 0..100 {
            waker.wake().unwrap();
        }
        let started = std::time::Instant::now();
        ractor::call!(actor, ProducerMsg::Ping).unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the ping waited behind {} batches",
            started.elapsed().as_millis() / 50
        );
        // The mailbox is FIFO: the answered ping came after every queued Wake.
        assert_eq!(
            handled.load(Ordering::SeqCst),
            2,
            "the one in progress and one more"
        );
        // A wake after the queued one was taken is a new one.
        waker.wake().unwrap();
        ractor::call!(actor, ProducerMsg::Ping).unwrap();
        assert_eq!(handled.load(Ordering::SeqCst), 3);
        waker.queued.store(true, Ordering::Release);
        actor.stop(None);
        handle.await.unwrap();
        assert!(
            waker.wake().is_err(),
            "a stopped producer is gone, queued Wake or not"
        );
    }
}
