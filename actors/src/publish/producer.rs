//! The producer: moves the PostgreSQL outbox (`staged_users`, in id order) into Kafka,
//! exactly once.
//!
//! Each Kafka transaction carries a batch of outbox rows to `users.raw` **and** a
//! checkpoint record `{"last_outbox_id": N}` on the compacted checkpoints topic (the
//! KIP-618 pattern of Kafka Connect's exactly-once source connectors). On (re)start
//! `init_transactions` aborts whatever the previous incarnation left open and fences it
//! (same `transactional.id`), then the committed checkpoint, read with read_committed,
//! says where to resume. Records and checkpoint commit or abort together, so the outbox
//! is never published twice nor skipped.
//!
//! librdkafka's transaction calls block: they run on tokio's blocking pool.

use super::checkpoint::{CHECKPOINT_PARTITION, Checkpoint, read_checkpoint};
use super::config::Config;
use super::messages::ProducerMsg;
use super::outbox::{self, OutboxRow};
use super::transaction::{KafkaProducer, await_deliveries, is_fatal, retrying, send};
use super::wake::{self, Waker};
use crate::failpoint;
use crate::format::Encoder;
use crate::format::headers::RawStamp;
use crate::observe::{self, Stage};
use crate::store::closing::{self, Shared};
use crate::store::kafka::{self, TopicSpec};
use crate::store::postgres;
use crate::store::rebootstrap::{BrokerLoss, KeptContext};
use crate::store::registry::Registry;
use crate::supervisor::Drain;
use crate::supervisor::shell::{self, Shelled};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, Producer as _};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy)]
pub struct Producer;

pub struct ProducerArgs {
    pub config: Config,
    pub kafka: kafka::Config,
    pub postgres: postgres::Config,
}

pub struct ProducerState {
    config: Config,
    bootstrap_servers: String,
    /// Whether the producer still knows a broker ([`crate::store::rebootstrap`]).
    brokers: Arc<BrokerLoss>,
    raw: TopicSpec,
    checkpoints: TopicSpec,
    producer: Shared<KafkaProducer>,
    /// How records are written (`kafka.record_format`).
    encoder: Arc<Encoder>,
    pool: deadpool_postgres::Pool,
    /// The last outbox id committed to Kafka.
    last_outbox_id: i64,
    /// Transactions aborted since the last commit ([`ABORTS_BEFORE_RESTART`]).
    aborts_in_a_row: u32,
    waker: Waker,
    /// Forwards notifications as Wakes, reconnecting when the connection drops.
    listener: JoinHandle<()>,
    /// Wakes the producer every `poll_interval_ms` (a NOTIFY can be missed).
    ticker: Option<JoinHandle<()>>,
}

impl Actor for Producer {
    type Msg = ProducerMsg;
    type State = ProducerState;
    type Arguments = ProducerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ProducerMsg>,
        args: ProducerArgs,
    ) -> Result<ProducerState, ActorProcessingErr> {
        let pool = postgres::pool(&args.postgres)?;
        postgres::check(&pool, &args.postgres).await?;
        let registry = Registry::new(&args.kafka.registry)?;
        let encoder = Encoder::new(
            args.kafka.record_format,
            registry.as_ref(),
            &args.kafka.topics.raw.name,
        )
        .await?;
        let timeout = args.config.call_timeout();
        let context = KeptContext::default();
        let brokers = context.loss.clone();
        let producer: KafkaProducer = args
            .kafka
            .client_config("producer")?
            .set("transactional.id", &args.config.transactional_id)
            .set("enable.idempotence", "true")
            .set(
                "transaction.timeout.ms",
                args.config.transaction_timeout_ms.to_string(),
            )
            .set("linger.ms", "5")
            .set("statistics.interval.ms", "1000")
            .create_with_context(context)?;
        let producer = closing::shared(producer);
        let init = producer.clone();
        // Fences the previous incarnation (this process's or a dead leader's) and aborts
        // its open transaction.
        tokio::task::spawn_blocking(move || init.init_transactions(timeout)).await??;
        let (kafka, topic, id) = (
            args.kafka.clone(),
            args.kafka.topics.checkpoints.name.clone(),
            args.config.transactional_id.clone(),
        );
        let checkpoint =
            tokio::task::spawn_blocking(move || read_checkpoint(&kafka, &topic, &id)).await??;
        let last_outbox_id = checkpoint.map_or(0, |c| c.last_outbox_id);
        tracing::info!(transactional_id = %args.config.transactional_id, last_outbox_id, "producer ready: resuming after the committed checkpoint");
        let waker = Waker::new(myself.clone());
        let listener = wake::listen(&args.postgres, waker.clone()).await?;
        Ok(ProducerState {
            bootstrap_servers: args.kafka.bootstrap_servers.clone(),
            brokers,
            raw: args.kafka.topics.raw.clone(),
            checkpoints: args.kafka.topics.checkpoints.clone(),
            config: args.config,
            producer,
            encoder: Arc::new(encoder),
            pool,
            last_outbox_id,
            aborts_in_a_row: 0,
            waker,
            listener,
            ticker: None,
        })
    }

    async fn post_start(
        &self,
        _: ActorRef<ProducerMsg>,
        state: &mut ProducerState,
    ) -> Result<(), ActorProcessingErr> {
        state.waker.wake()?;
        state.ticker = Some(wake::tick(
            state.waker.clone(),
            Duration::from_millis(state.config.poll_interval_ms),
        ));
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<ProducerMsg>,
        state: &mut ProducerState,
    ) -> Result<(), ActorProcessingErr> {
        state.listener.abort();
        if let Some(ticker) = state.ticker.take() {
            ticker.abort();
        }
        Ok(())
    }

    shell::handle!();
}

impl Shelled for Producer {
    const KIND: &'static str = "producer";

    async fn on_message(
        &self,
        _: ActorRef<ProducerMsg>,
        message: ProducerMsg,
        state: &mut ProducerState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ProducerMsg::Wake => {
                state.waker.taken();
                let rows = outbox::read(
                    &state.pool,
                    state.last_outbox_id,
                    i64::from(state.config.batch_size),
                )
                .await?;
                if rows.is_empty() {
                    return Ok(());
                }
                let full = rows.len() as u32 == state.config.batch_size;
                match publish(state, rows).await? {
                    Published::Committed => {
                        if full {
                            // More is waiting: continue after any queued control message.
                            state.waker.wake()?;
                        }
                    }
                    Published::Aborted => {} // retried on the next wake
                }
            }
            ProducerMsg::Ping(reply) | ProducerMsg::Drain(Drain { reply, .. }) => {
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

enum Published {
    Committed,
    Aborted,
}

/// How one Kafka transaction ended.
enum TxnOutcome {
    Committed,
    /// Aborted after an abortable error; the batch is retried.
    Aborted,
    /// Left open on purpose by `test_faults`: the next incarnation's init aborts it.
    LeftOpen,
    /// Not begun: a row cannot be encoded in `kafka.record_format`.
    Unencodable(String),
}

/// Publishes one batch and its checkpoint in one Kafka transaction.
///
/// # Errors
/// A fatal producer error (fenced by a newer incarnation, or broken): the actor fails
/// and its supervisor starts a new producer, which re-initialises transactions.
async fn publish(
    state: &mut ProducerState,
    mut rows: Vec<OutboxRow>,
) -> Result<Published, ActorProcessingErr> {
    let Some(last) = rows.last().map(|r| r.id) else {
        return Ok(Published::Committed);
    };
    let spans = publish_spans(&mut rows, &state.raw.name, &state.config.transactional_id);
    let producer = state.producer.clone();
    let encoder = state.encoder.clone();
    let (raw, checkpoints) = (state.raw.name.clone(), state.checkpoints.name.clone());
    let key = state.config.transactional_id.clone();
    let timeout = state.config.call_timeout();
    let count = rows.len() as u64;
    let started = Instant::now();
    let fail_before_commit = failpoint::BEFORE_PUBLISH_COMMIT.fires();
    let fail_after_commit = failpoint::AFTER_PUBLISH_COMMIT.fires();
    let (brokers, bootstrap) = (state.brokers.clone(), state.bootstrap_servers.clone());
    let keep = move |producer: &KafkaProducer| {
        brokers.repair(producer.client(), &bootstrap, "producer");
    };
    keep(&state.producer);
    let result = tokio::task::spawn_blocking(move || {
        // Encoded before the transaction opens: a row that cannot be encoded publishes
        // nothing (see `Encoder::encode`).
        let mut encoded = Vec::with_capacity(rows.len());
        for row in &rows {
            match encoder.encode(&row.payload) {
                Ok(record) => encoded.push(record),
                Err(error) => {
                    return Ok(TxnOutcome::Unencodable(format!(
                        "outbox row {}: {error}",
                        row.id
                    )));
                }
            }
        }
        let attempt = || -> Result<TxnOutcome, KafkaError> {
            producer.begin_transaction()?;
            for (row, (format, payload)) in rows.iter().zip(&encoded) {
                let key = row.source_uuid.to_string();
                let headers = RawStamp {
                    encoding: format,
                    outbox_id: row.id,
                    run_id: row.run_id,
                    staged_at_ms: row.staged_at_ms,
                    traceparent: row.trace_parent.as_deref(),
                }
                .headers();
                send(
                    &producer,
                    BaseRecord::to(&raw)
                        .key(&key)
                        .payload(payload.as_ref())
                        .headers(headers),
                )?;
            }
            let checkpoint = serde_json::to_vec(&Checkpoint {
                last_outbox_id: last,
            })
            .unwrap_or_default();
            send(
                &producer,
                BaseRecord::to(&checkpoints)
                    .partition(CHECKPOINT_PARTITION)
                    .key(&key)
                    .payload(&checkpoint),
            )?;
            if fail_before_commit.is_some() {
                // Flush so the records really reach the broker inside the open transaction.
                producer.flush(timeout)?;
                return Ok(TxnOutcome::LeftOpen);
            }
            await_deliveries(&producer, timeout);
            retrying(|| {
                keep(&producer);
                producer.commit_transaction(timeout)
            })?;
            Ok(TxnOutcome::Committed)
        };
        match attempt() {
            Ok(outcome) => Ok(outcome),
            Err(error) if is_fatal(&error) => Err(error),
            Err(error) => {
                tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    "kafka transaction failed: aborting, the batch will be retried"
                );
                // An abort that fails leaves the transaction in a state only a new
                // producer resolves (its init_transactions aborts what is open): fail.
                retrying(|| {
                    keep(&producer);
                    producer.abort_transaction(timeout)
                })
                .map(|()| TxnOutcome::Aborted)
            }
        }
    })
    .await?;
    if !matches!(result, Ok(TxnOutcome::Committed)) {
        crate::trace::mark_failed(&spans);
    }
    drop(spans);
    match result {
        Ok(TxnOutcome::Committed) => {
            state.last_outbox_id = last;
            state.aborts_in_a_row = 0;
            metrics::counter!("tributary_kafka_transactions_total", "outcome" => "committed")
                .increment(1);
            observe::record(Stage::Published, count);
            metrics::histogram!("tributary_kafka_transaction_seconds")
                .record(started.elapsed().as_secs_f64());
            tracing::debug!(
                last_outbox_id = last,
                records = count,
                "kafka transaction committed"
            );
            if let Some(n) = fail_after_commit {
                return Err(format!(
                    "injected fault: transaction {n} committed, failing before the next batch"
                )
                .into());
            }
            Ok(Published::Committed)
        }
        Ok(TxnOutcome::Aborted) => {
            metrics::counter!("tributary_kafka_transactions_total", "outcome" => "aborted")
                .increment(1);
            state.aborts_in_a_row += 1;
            if state.aborts_in_a_row >= ABORTS_BEFORE_RESTART {
                return Err(format!(
                    "producer unusable, restarting it: {} transactions in a row aborted \
                     without a commit",
                    state.aborts_in_a_row
                )
                .into());
            }
            Ok(Published::Aborted)
        }
        Ok(TxnOutcome::LeftOpen) => Err(format!(
            "injected fault: transaction {} sent, not committed",
            fail_before_commit.unwrap_or_default()
        )
        .into()),
        Ok(TxnOutcome::Unencodable(why)) => {
            Err(format!("cannot publish the outbox batch: {why}").into())
        }
        Err(error) => Err(format!(
            "producer unusable, restarting it: {}",
            crate::error_chain(&error)
        )
        .into()),
    }
}

/// One Kafka span per run in the batch, child of that run's staging span (one
/// transaction usually carries one or two runs). Each row's `trace_parent` becomes its
/// span's context: the `traceparent` header consumers continue from. Rows of runs staged
/// without tracing keep none.
fn publish_spans(
    rows: &mut [OutboxRow],
    topic: &str,
    transactional_id: &str,
) -> Vec<tracing::Span> {
    let runs: Vec<String> = crate::trace::distinct(rows.iter().map(|r| r.trace_parent.as_deref()))
        .into_iter()
        .map(str::to_owned)
        .collect();
    let mut spans = Vec::with_capacity(runs.len());
    for run_parent in runs {
        let records = rows
            .iter()
            .filter(|r| r.trace_parent.as_deref() == Some(run_parent.as_str()))
            .count();
        let child = crate::trace::parse(&run_parent).and_then(|parent| {
            let span = tracing::info_span!(
                parent: None,
                "publish",
                otel.name = %format!("send {topic}"),
                otel.kind = "producer",
                tributary.stage = "publish",
                messaging.system = "kafka",
                messaging.operation.type = "send",
                messaging.operation.name = "send",
                messaging.destination.name = %topic,
                messaging.batch.message_count = records,
                tributary.transactional_id = %transactional_id,
                otel.status_code = tracing::field::Empty,
            );
            crate::trace::set_parent(&span, &parent);
            let child = crate::trace::traceparent(&span);
            spans.push(span);
            child
        });
        for row in rows.iter_mut() {
            if row.trace_parent.as_deref() == Some(run_parent.as_str()) {
                row.trace_parent.clone_from(&child);
            }
        }
    }
    spans
}

/// Aborted transactions in a row after which the producer is replaced by a new one. A
/// producer whose records are no longer delivered after a frozen broker (seen after a
/// 30 s SIGSTOP: every flush timed out, every abort succeeded, for minutes) is not
/// healed by retrying; a new client is, at the cost of an init (about a second). While
/// the transaction timeout was 10 s, its records timing out did this by accident.
const ABORTS_BEFORE_RESTART: u32 = 2;
