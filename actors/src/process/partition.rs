//! One partition's pipeline: consumer(p) → transformer(p) → writer(p), under a
//! one_for_all supervisor: if any of the three fails, all restart and processing resumes
//! from the offset committed in Cassandra.

use super::messages::{
    CoordinatorMsg, DlqProducer, InFlight, PartitionConsumerMsg, TransformerMsg, WriterMsg,
};
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
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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

/// The one_for_all supervisor of partition `partition`, built downstream first.
pub fn supervisor_args(
    ctx: &PartitionContext,
    partition: i32,
    coordinator: ActorRef<CoordinatorMsg>,
    buffered: Arc<AtomicUsize>,
) -> SupervisorArgs {
    let writer_dir: Directory<WriterMsg> = Directory::default();
    let transformer_dir: Directory<TransformerMsg> = Directory::default();
    let start: Arc<Mutex<Option<i64>>> = Arc::default();

    let (c, coord, buf, st, wd) = (
        ctx.clone(),
        coordinator.clone(),
        buffered,
        start.clone(),
        writer_dir.clone(),
    );
    let writer = ChildSpec::actor(format!("writer-{partition}"), Writer, move || WriterArgs {
        cassandra: c.cassandra.clone(),
        keyspace: c.keyspace.clone(),
        topic: c.topic.clone(),
        partition,
        owner: c.owner.clone(),
        write_concurrency: c.write_concurrency,
        rows_per_request: c.rows_per_request,
        run_digests_kept: c.run_digests_kept,
        coordinator: coord.clone(),
        buffered: buf.clone(),
        start: st.clone(),
        directory: wd.clone(),
        partitions: c.partitions.clone(),
    });
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
    let (c, td) = (ctx.clone(), transformer_dir);
    let consumer = ChildSpec::actor(
        format!("consumer-{partition}"),
        PartitionConsumer,
        move || PartitionConsumerArgs {
            partition,
            transformer: td.clone(),
            start: start.clone(),
            coordinator: coordinator.clone(),
            batch_size: c.batch_size,
            batch_linger: c.batch_linger,
            partitions: c.partitions.clone(),
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
    pub partition: i32,
    pub transformer: Directory<TransformerMsg>,
    /// The offset to resume from, published by the writer (started before).
    pub start: Arc<Mutex<Option<i64>>>,
    pub coordinator: ActorRef<CoordinatorMsg>,
    pub batch_size: usize,
    pub batch_linger: Duration,
    pub partitions: Partitions,
}

/// Batches of a partition in flight at most before the next one waits: one being
/// written, one being transformed or queued for the writer. While the writer is busy the
/// pending batch keeps growing (up to `batch_size`), so a loaded partition writes fewer,
/// larger batches — fewer offset-commit LWTs per row — and a quiet one still flushes
/// after `batch_linger`.
const PIPELINE_DEPTH: u64 = 2;

pub struct PartitionConsumerState {
    partition: i32,
    transformer: ActorRef<TransformerMsg>,
    pending: Vec<OwnedMessage>,
    /// Number of the batch being filled, so a stale linger timer is ignored.
    batch: u64,
    /// The batch being filled has lingered long enough: it goes as soon as the
    /// pipeline has room.
    lingered: bool,
    /// A linger timer runs for the batch being filled.
    linger_armed: bool,
    /// Batches of this incarnation not yet done with (see [`InFlight`]).
    in_flight: Arc<AtomicU64>,
    batch_size: usize,
    batch_linger: Duration,
    start: i64,
    coordinator: ActorRef<CoordinatorMsg>,
    partitions: Partitions,
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
        self.partitions
            .update(self.partition, |p| p.in_flight_batches += 1);
        let traces = consume_spans(&records, self.partition);
        self.transformer.send_message(TransformerMsg::Transform {
            records,
            traces,
            in_flight: InFlight::new(&self.in_flight),
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
            .start
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .ok_or("the writer has not published its start offset")?;
        Ok(PartitionConsumerState {
            partition: args.partition,
            transformer,
            pending: Vec::with_capacity(args.batch_size),
            batch: 0,
            lingered: false,
            linger_armed: false,
            in_flight: Arc::default(),
            batch_size: args.batch_size,
            batch_linger: args.batch_linger,
            start,
            coordinator: args.coordinator,
            partitions: args.partitions,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Batches of an earlier incarnation died with it.
        state
            .partitions
            .update(state.partition, |p| p.in_flight_batches = 0);
        // Only now, with the whole pipeline up, does the coordinator route records here.
        state.coordinator.send_message(CoordinatorMsg::Ready {
            partition: state.partition,
            next_offset: state.start,
            consumer: myself,
        })?;
        Ok(())
    }

    shell::handle!();
}

impl Shelled for PartitionConsumer {
    const KIND: &'static str = "consumer";

    fn partition(&self, _: &PartitionConsumerMsg, state: &PartitionConsumerState) -> Option<i32> {
        Some(state.partition)
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
