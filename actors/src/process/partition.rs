//! One partition's pipeline: consumer(p) → transformer(p) → writer(p), under a
//! one_for_all supervisor: if any of the three fails, all restart and processing resumes
//! from the offset committed in Cassandra.

use super::handle::PartitionHandle;
use super::messages::{DlqProducer, PartitionConsumerMsg, TransformerMsg, WriterMsg};
use super::partition_store::{CassandraOpen, CassandraStore};
use super::transformer::{Transformer, TransformerArgs};
use super::writer::{Writer, WriterArgs};
use crate::directory::Directory;
use crate::observe::{self, Partitions, Stage};
use crate::store::closing::Shared;
use crate::supervisor::shell::{self, Shelled};
use crate::supervisor::{ChildSpec, RestartPolicy, RestartStats, SupervisorArgs};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use rdkafka::Message;
use rdkafka::message::OwnedMessage;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What a partition pipeline needs from its coordinator.
#[derive(Clone)]
pub struct PartitionContext {
    pub cassandra: crate::store::cassandra::Config,
    pub keyspace: String,
    pub topic: String,
    pub dlq: Shared<DlqProducer>,
    pub dlq_topic: String,
    /// The schema registry the transformers read Avro writer schemas from; shared, so
    /// its cache of schemas by id outlives the partitions.
    pub registry: Option<Arc<crate::store::registry::Registry>>,
    pub owner: String,
    pub batch_size: usize,
    pub batch_linger: Duration,
    pub write_concurrency: usize,
    pub rows_per_request: usize,
    pub run_digests_kept: usize,
    pub policy: RestartPolicy,
    pub stats: RestartStats,
    /// This instance's partitions, for the status API and gauges.
    pub partitions: Partitions,
}

/// The one_for_all supervisor of the partition of `handle`, built downstream first.
pub fn supervisor_args(ctx: &PartitionContext, handle: &PartitionHandle) -> SupervisorArgs {
    let partition = handle.partition();
    let writer_dir: Directory<WriterMsg> = Directory::default();
    let transformer_dir: Directory<TransformerMsg> = Directory::default();

    let (c, h, wd) = (ctx.clone(), handle.clone(), writer_dir.clone());
    let writer = ChildSpec::actor(
        format!("writer-{partition}"),
        Writer::<CassandraStore>::new(),
        move || WriterArgs {
            open: CassandraOpen {
                cassandra: c.cassandra.clone(),
                keyspace: c.keyspace.clone(),
                topic: c.topic.clone(),
                owner: c.owner.clone(),
                rows_per_request: c.rows_per_request,
            },
            handle: h.clone(),
            write_concurrency: c.write_concurrency,
            run_digests_kept: c.run_digests_kept,
            directory: wd.clone(),
        },
    );
    let (c, wd, td) = (ctx.clone(), writer_dir.clone(), transformer_dir.clone());
    let transformer =
        ChildSpec::actor(format!("transformer-{partition}"), Transformer, move || {
            TransformerArgs {
                writer: wd.clone(),
                dlq: c.dlq.clone(),
                dlq_topic: c.dlq_topic.clone(),
                directory: td.clone(),
                registry: c.registry.clone(),
            }
        });
    let (c, td, h) = (ctx.clone(), transformer_dir, handle.clone());
    let consumer = ChildSpec::actor(
        format!("consumer-{partition}"),
        PartitionConsumer,
        move || PartitionConsumerArgs {
            handle: h.clone(),
            transformer: td.clone(),
            batch_size: c.batch_size,
            batch_linger: c.batch_linger,
        },
    );
    SupervisorArgs {
        name: format!("partition-{partition}"),
        policy: ctx.policy.clone(),
        children: vec![writer, transformer, consumer],
        stats: ctx.stats.clone(),
    }
}

/// One consume span per trace in the batch (the Kafka span of each run's transaction is
/// its parent, from the `traceparent` header); their contexts travel on with the batch.
fn consume_spans(records: &[OwnedMessage], partition: i32) -> Vec<opentelemetry::Context> {
    let traces = crate::trace::distinct(records.iter().map(traceparent_header));
    let mut contexts = Vec::with_capacity(traces.len());
    for traceparent in traces {
        let Some(parent) = crate::trace::parse(traceparent) else {
            continue;
        };
        let in_trace: Vec<&OwnedMessage> = records
            .iter()
            .filter(|r| traceparent_header(r) == Some(traceparent))
            .collect();
        let topic = in_trace.first().map_or("", |r| r.topic());
        let span = tracing::info_span!(
            parent: None,
            "consume",
            otel.name = %format!("process {topic}"),
            otel.kind = "consumer",
            tributary.stage = "consume",
            messaging.system = "kafka",
            messaging.operation.type = "process",
            messaging.operation.name = "process",
            messaging.destination.name = %topic,
            messaging.destination.partition.id = %partition,
            messaging.kafka.offset = in_trace.first().map_or(-1, |r| r.offset()),
            messaging.batch.message_count = in_trace.len(),
        );
        crate::trace::set_parent(&span, &parent);
        contexts.extend(crate::trace::context_of(&span));
    }
    contexts
}

fn traceparent_header(record: &OwnedMessage) -> Option<&str> {
    crate::format::headers::header(record, crate::trace::TRACEPARENT)
}

#[derive(Debug, Clone, Copy)]
pub struct PartitionConsumer;

pub struct PartitionConsumerArgs {
    /// The partition: where the writer (started before) published the offset to resume
    /// from, and where the consumer reports that the pipeline is up.
    pub handle: PartitionHandle,
    pub transformer: Directory<TransformerMsg>,
    pub batch_size: usize,
    pub batch_linger: Duration,
}

/// Batches of a partition in flight before a lingered partial batch waits: one being
/// written, one being transformed or queued for the writer. While the writer is busy the
/// pending batch keeps growing (up to `batch_size`), so a loaded partition writes fewer,
/// larger batches — fewer offset-commit LWTs per row — and a quiet one still flushes
/// after `batch_linger`. A full batch goes at once: what bounds the records a partition
/// holds in memory is the poll thread's `max_buffered`, not this depth.
const PIPELINE_DEPTH: u64 = 2;

pub struct PartitionConsumerState {
    handle: PartitionHandle,
    transformer: ActorRef<TransformerMsg>,
    pending: Vec<OwnedMessage>,
    /// Number of the batch being filled, so a stale linger timer is ignored.
    batch: u64,
    /// The batch being filled has lingered long enough: it goes as soon as the
    /// pipeline has room.
    lingered: bool,
    /// A linger timer runs for the batch being filled.
    linger_armed: bool,
    /// Batches of this incarnation not yet done with (see
    /// [`super::handle::BatchLease`]).
    in_flight: Arc<AtomicU64>,
    batch_size: usize,
    batch_linger: Duration,
    start: i64,
}

impl PartitionConsumerState {
    fn pipeline_has_room(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) < PIPELINE_DEPTH
    }

    fn flush(&mut self) -> Result<(), ActorProcessingErr> {
        self.batch += 1;
        self.lingered = false;
        self.linger_armed = false;
        if self.pending.is_empty() {
            return Ok(());
        }
        let records = std::mem::take(&mut self.pending);
        observe::record(Stage::Consumed, records.len() as u64);
        let lease = self.handle.lease(&self.in_flight, records.len());
        let traces = consume_spans(&records, self.handle.partition());
        self.transformer.send_message(TransformerMsg::Transform {
            records,
            traces,
            lease,
        })?;
        Ok(())
    }
}

impl Actor for PartitionConsumer {
    type Msg = PartitionConsumerMsg;
    type State = PartitionConsumerState;
    type Arguments = PartitionConsumerArgs;

    async fn pre_start(
        &self,
        _: ActorRef<Self::Msg>,
        args: PartitionConsumerArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let transformer = args
            .transformer
            .get()
            .ok_or("the transformer is not running")?;
        let start = args
            .handle
            .resume_at()
            .ok_or("the writer has not published its start offset")?;
        Ok(PartitionConsumerState {
            handle: args.handle,
            transformer,
            pending: Vec::with_capacity(args.batch_size),
            batch: 0,
            lingered: false,
            linger_armed: false,
            in_flight: Arc::default(),
            batch_size: args.batch_size,
            batch_linger: args.batch_linger,
            start,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Only now, with the whole pipeline up, does the coordinator route records here
        // (and the batches of an earlier incarnation stop counting).
        state.handle.ready(state.start, myself.get_cell());
        Ok(())
    }

    shell::handle!();
}

impl Shelled for PartitionConsumer {
    const KIND: &'static str = "consumer";

    fn partition(&self, _: &PartitionConsumerMsg, state: &PartitionConsumerState) -> Option<i32> {
        Some(state.handle.partition())
    }

    async fn on_message(
        &self,
        myself: ActorRef<PartitionConsumerMsg>,
        message: PartitionConsumerMsg,
        state: &mut PartitionConsumerState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            PartitionConsumerMsg::Records(records) => {
                for record in records {
                    state.pending.push(record);
                    if state.pending.len() >= state.batch_size {
                        state.flush()?;
                    }
                }
                if state.pending.is_empty() {
                    // Everything went in full batches.
                } else if state.lingered && state.pipeline_has_room() {
                    state.flush()?;
                } else if !state.linger_armed {
                    linger(&myself, state);
                }
            }
            PartitionConsumerMsg::Flush { batch } if batch == state.batch => {
                state.lingered = true;
                if state.pipeline_has_room() {
                    state.flush()?;
                } else {
                    // No record may come to trigger the flush: look again later.
                    linger(&myself, state);
                }
            }
            PartitionConsumerMsg::Flush { .. } => {}
            PartitionConsumerMsg::Drain(reply) => {
                state.flush()?;
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

/// Flushes the batch being filled after `batch_linger`, unless it went before.
fn linger(myself: &ActorRef<PartitionConsumerMsg>, state: &mut PartitionConsumerState) {
    state.linger_armed = true;
    let batch = state.batch;
    myself.send_after(state.batch_linger, move || PartitionConsumerMsg::Flush {
        batch,
    });
}

/// The consumer as an actor, without a stack: a test transformer's mailbox receives its
/// batches (quickwit's test-mailbox style).
#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::handle::PartitionReport;
    use ractor::rpc::CallResult;
    use rdkafka::Timestamp;
    use tokio::sync::mpsc;
    use tokio::time::{Instant, timeout};

    /// Stands in for the transformer: every message into a channel.
    struct Mailbox(mpsc::UnboundedSender<TransformerMsg>);

    impl Actor for Mailbox {
        type Msg = TransformerMsg;
        type State = ();
        type Arguments = ();

        async fn pre_start(
            &self,
            _: ActorRef<TransformerMsg>,
            _: (),
        ) -> Result<(), ActorProcessingErr> {
            Ok(())
        }

        async fn handle(
            &self,
            _: ActorRef<TransformerMsg>,
            message: TransformerMsg,
            _: &mut (),
        ) -> Result<(), ActorProcessingErr> {
            let _ = self.0.send(message);
            Ok(())
        }
    }

    fn records(offsets: std::ops::Range<i64>) -> Vec<OwnedMessage> {
        offsets
            .map(|offset| {
                OwnedMessage::new(
                    Some(b"{}".to_vec()),
                    None,
                    "users.raw".into(),
                    Timestamp::NotAvailable,
                    4,
                    offset,
                    None,
                )
            })
            .collect()
    }

    fn offsets(message: &TransformerMsg) -> Vec<i64> {
        let TransformerMsg::Transform { records, .. } = message;
        records.iter().map(Message::offset).collect()
    }

    /// Long enough that whatever arrives well before it was not sent by the linger.
    const LINGER: Duration = Duration::from_millis(1_500);
    const PATIENCE: Duration = Duration::from_secs(10);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn full_batches_go_at_once_and_the_rest_waits_for_room_and_its_linger() {
        let (reported, mut reports) = mpsc::unbounded_channel();
        let handle = PartitionHandle::new(
            4,
            Partitions::default(),
            Arc::new(move |_, report| {
                let _ = reported.send(report);
            }),
        );
        handle.claimed(1, 9);
        let (sent, mut received) = mpsc::unbounded_channel();
        let (mailbox, _) = Actor::spawn(None, Mailbox(sent), ()).await.unwrap();
        let transformer = Directory::default();
        transformer.register(mailbox.clone());
        let (consumer, _) = Actor::spawn(
            None,
            PartitionConsumer,
            PartitionConsumerArgs {
                handle: handle.clone(),
                transformer,
                batch_size: 3,
                batch_linger: LINGER,
            },
        )
        .await
        .unwrap();
        // Ready comes from post_start, which runs after spawn returns.
        match timeout(PATIENCE, reports.recv()).await.unwrap().unwrap() {
            PartitionReport::Ready {
                next_offset,
                consumer: cell,
            } => {
                assert_eq!(next_offset, 10);
                assert_eq!(cell.get_id(), consumer.get_id());
            }
            other => panic!("{other:?}"),
        }
        handle.restart_counts(); // what the coordinator does on Ready

        handle.routed(7);
        let sent_at = Instant::now();
        consumer
            .send_message(PartitionConsumerMsg::Records(records(10..17)))
            .unwrap();
        let first = timeout(PATIENCE, received.recv()).await.unwrap().unwrap();
        let second = timeout(PATIENCE, received.recv()).await.unwrap().unwrap();
        assert!(
            sent_at.elapsed() < LINGER,
            "full batches waited for the linger"
        );
        assert_eq!(
            (offsets(&first), offsets(&second)),
            (vec![10, 11, 12], vec![13, 14, 15])
        );
        // Two batches in flight: the last record waits, past its linger too.
        assert!(timeout(LINGER * 2, received.recv()).await.is_err());
        assert_eq!(handle.buffered(), 7);

        // The writer is done with the first batch: it leaves the pipeline, and the
        // lingered record goes at the next look.
        let TransformerMsg::Transform { lease, .. } = first;
        lease.committed(12, 3);
        let third = timeout(PATIENCE, received.recv()).await.unwrap().unwrap();
        assert_eq!(offsets(&third), vec![16]);
        assert_eq!(handle.buffered(), 4);
        drop((second, third));

        // A drain hands over a partial batch at once, long before its linger.
        handle.routed(1);
        consumer
            .send_message(PartitionConsumerMsg::Records(records(17..18)))
            .unwrap();
        let drained_at = Instant::now();
        let drained = consumer
            .call(PartitionConsumerMsg::Drain, Some(PATIENCE))
            .await
            .unwrap();
        assert!(matches!(drained, CallResult::Success(())), "{drained:?}");
        let last = timeout(PATIENCE, received.recv()).await.unwrap().unwrap();
        assert!(
            drained_at.elapsed() < LINGER,
            "the drain waited for the linger"
        );
        assert_eq!(offsets(&last), vec![17]);
        consumer.stop(None);
        mailbox.stop(None);
    }
}
