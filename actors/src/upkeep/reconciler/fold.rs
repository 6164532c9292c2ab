//! The reconciler's Kafka side: its own read_committed readers of the raw topic and
//! the DLQ fold every record into its run's digest, committed to PostgreSQL with their
//! read positions in one transaction.

use super::{ReadConsumer, ReconcilerState};
use crate::format::headers;
use crate::model::Digest;
use crate::store::{Service, StoreError, kafka};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

/// Records folded per round at most: the rest waits for the next round.
const RECORDS_PER_ROUND: usize = 200_000;

/// The reconciler's committed read positions, per (topic, partition).
async fn read_positions(
    client: &impl deadpool_postgres::GenericClient,
) -> Result<HashMap<(String, i32), i64>, StoreError> {
    Ok(client
        .query(
            "SELECT topic, partition, next_offset FROM reconcile_positions",
            &[],
        )
        .await
        .map_err(Service::Postgres.error("read reconcile positions"))?
        .iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect())
}

/// Assigns every partition of the raw topic and the DLQ at the committed positions.
pub(super) async fn assign(state: &mut ReconcilerState) -> Result<(), StoreError> {
    let client = state
        .pool
        .get()
        .await
        .map_err(Service::Postgres.error("no pooled connection"))?;
    let positions = read_positions(&client).await?;
    state.positions = positions.clone();
    let timeout = state.kafka_config.request_timeout();
    for (consumer, topic) in [
        (state.consumer.clone(), state.raw.clone()),
        (state.dlq_consumer.clone(), state.dlq.clone()),
    ] {
        let positions = positions.clone();
        tokio::task::spawn_blocking(move || assign_topic(&consumer, &topic, &positions, timeout))
            .await
            .map_err(|e| StoreError::request(Service::Kafka, "assign task", e))?
            .map_err(|e| StoreError::request(Service::Kafka, "assign the reconciler", e))?;
    }
    Ok(())
}

/// Assigns every partition of `topic` at its stored position (its log start when none,
/// or when retention deleted records the reconciler never read: said loudly).
fn assign_topic(
    consumer: &ReadConsumer,
    topic: &str,
    positions: &HashMap<(String, i32), i64>,
    timeout: Duration,
) -> Result<(), KafkaError> {
    let mut list = TopicPartitionList::new();
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    for t in metadata.topics().iter().filter(|t| t.name() == topic) {
        for p in t.partitions() {
            let (low, _) = kafka::watermarks(consumer, topic, p.id(), timeout)?;
            let stored = positions.get(&(topic.to_owned(), p.id())).copied();
            if let Some(next) = stored
                && next < low
            {
                tracing::error!(
                    topic,
                    partition = p.id(),
                    next,
                    log_start = low,
                    "the reconciler's position is behind Kafka's retention: records it never \
                     read were deleted (their runs will show as missing)"
                );
            }
            let at = stored.map_or(Offset::Beginning, |n| Offset::Offset(n.max(low)));
            list.add_partition_offset(topic, p.id(), at)?;
        }
    }
    consumer.assign(&list)
}

/// Reads what Kafka has past the positions and commits the folded digests, the DLQ's
/// users and the new positions in one transaction.
pub(super) async fn fold_kafka(state: &mut ReconcilerState) -> Result<usize, StoreError> {
    let (raw, dlq) = (state.consumer.clone(), state.dlq_consumer.clone());
    let polled = tokio::task::spawn_blocking(move || -> Result<Polled, KafkaError> {
        let mut polled = poll_batch(&raw, Topic::Raw, FOLD_WAIT)?;
        let dead = poll_batch(&dlq, Topic::Dlq, FOLD_WAIT)?;
        polled.dead = dead.dead;
        polled.positions.extend(dead.positions);
        polled.records += dead.records;
        Ok(polled)
    })
    .await
    .map_err(|e| StoreError::request(Service::Kafka, "poll task", e))?
    .map_err(|e| StoreError::request(Service::Kafka, "read the topics", e))?;
    if polled.positions.is_empty() {
        return Ok(0);
    }
    let mut client = state
        .pool
        .get()
        .await
        .map_err(Service::Postgres.error("no pooled connection"))?;
    let tx = client
        .transaction()
        .await
        .map_err(Service::Postgres.error("begin"))?;
    // Fenced: one fold at a time, and only from the positions this reader was assigned
    // at. During a leader overlap the old leader's reconciler may still fold; whichever
    // commits second finds the positions moved, rolls back and re-reads from them, so no
    // record is counted twice.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('tributary-reconciler'))",
        &[],
    )
    .await
    .map_err(Service::Postgres.error("lock the reconciler's positions"))?;
    let stored = read_positions(&tx).await?;
    if stored != state.positions {
        drop(tx);
        state.assigned = false;
        tracing::warn!(
            "the reconciler's positions moved under it (another leader's reconciler folded): \
             re-reading from them"
        );
        return Ok(0);
    }
    let (runs, records, xors): (Vec<i64>, Vec<i64>, Vec<i64>) = polled
        .digests
        .iter()
        .map(|(run, d)| (*run, d.count as i64, d.xor))
        .fold((vec![], vec![], vec![]), |mut acc, (r, c, x)| {
            acc.0.push(r);
            acc.1.push(c);
            acc.2.push(x);
            acc
        });
    tx.execute(
        // Records of runs the ledger does not hold (pruned already, or not tributary's)
        // are not kept: nothing would ever remove them.
        "INSERT INTO run_kafka_digests (run_id, records, xor) \
         SELECT u.* FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[]) AS u(run_id, records, xor) \
         WHERE EXISTS (SELECT 1 FROM runs r WHERE r.run_id = u.run_id) \
         ON CONFLICT (run_id) DO UPDATE SET records = run_kafka_digests.records + excluded.records, \
         xor = run_kafka_digests.xor # excluded.xor",
        &[&runs, &records, &xors],
    )
    .await
    .map_err(Service::Postgres.error("fold kafka digests"))?;
    let (dead_runs, dead_users): (Vec<i64>, Vec<uuid::Uuid>) = polled.dead.iter().copied().unzip();
    tx.execute(
        "INSERT INTO run_dead_letters (run_id, user_id) \
         SELECT u.* FROM UNNEST($1::bigint[], $2::uuid[]) AS u(run_id, user_id) \
         WHERE EXISTS (SELECT 1 FROM runs r WHERE r.run_id = u.run_id) ON CONFLICT DO NOTHING",
        &[&dead_runs, &dead_users],
    )
    .await
    .map_err(Service::Postgres.error("record dead letters"))?;
    let (topics, partitions, offsets): (Vec<String>, Vec<i32>, Vec<i64>) = polled
        .positions
        .iter()
        .map(|((t, p), o)| (t.clone(), *p, *o))
        .fold((vec![], vec![], vec![]), |mut acc, (t, p, o)| {
            acc.0.push(t);
            acc.1.push(p);
            acc.2.push(o);
            acc
        });
    tx.execute(
        "INSERT INTO reconcile_positions (topic, partition, next_offset) \
         SELECT * FROM UNNEST($1::text[], $2::int[], $3::bigint[]) \
         ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
        &[&topics, &partitions, &offsets],
    )
    .await
    .map_err(Service::Postgres.error("store reconcile positions"))?;
    tx.commit()
        .await
        .map_err(Service::Postgres.error("commit reconcile digests"))?;
    for ((topic, partition), offset) in &polled.positions {
        state.positions.insert((topic.clone(), *partition), *offset);
    }
    Ok(polled.records)
}

#[derive(Default)]
struct Polled {
    records: usize,
    digests: BTreeMap<i64, Digest>,
    dead: HashSet<(i64, uuid::Uuid)>,
    positions: BTreeMap<(String, i32), i64>,
}

/// Which topic a reader reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Topic {
    Raw,
    Dlq,
}

/// How long a round may read one topic.
const FOLD_WAIT: Duration = Duration::from_secs(10);

/// Polls what has arrived: until nothing comes for a moment, [`RECORDS_PER_ROUND`]
/// records, or `wait`.
fn poll_batch(consumer: &ReadConsumer, topic: Topic, wait: Duration) -> Result<Polled, KafkaError> {
    let mut polled = Polled::default();
    let deadline = Instant::now() + wait;
    while polled.records < RECORDS_PER_ROUND && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            None => break,
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(error)) => return Err(error),
            Some(Ok(message)) => {
                let (name, partition, offset) = (
                    message.topic().to_owned(),
                    message.partition(),
                    message.offset(),
                );
                polled.positions.insert((name, partition), offset + 1);
                polled.records += 1;
                let (Some(run), Some(id)) = (headers::run_id(&message), headers::user_id(&message))
                else {
                    continue; // not a record of a run: verify reports those
                };
                match topic {
                    Topic::Raw => polled.digests.entry(run).or_default().add(id),
                    Topic::Dlq => {
                        polled.dead.insert((run, id));
                    }
                }
            }
        }
    }
    Ok(polled)
}
