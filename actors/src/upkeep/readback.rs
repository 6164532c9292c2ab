//! Reading back what each store holds, by run and in total: what the reconciler and
//! `tributary verify` compare.

use crate::model::Digest;
use crate::model::digest::{RUN_BUCKETS, RunBucket, run_buckets};
use crate::store::{Service, StoreError, cassandra};
use futures::StreamExt;
use scylla::client::session::Session;
use std::collections::BTreeMap;

/// The digest of a run's rows in `created_users`: one query through the
/// storage-attached index on `run_id`.
///
/// # Errors
/// Cassandra cannot be read.
pub async fn cassandra_run(
    session: &Session,
    keyspace: &str,
    run_id: i64,
) -> Result<Digest, StoreError> {
    let mut rows = session
        .query_iter(
            cassandra::idempotent(format!(
                "SELECT id FROM {keyspace}.created_users WHERE run_id = ?"
            )),
            (run_id,),
        )
        .await
        .map_err(|e| StoreError::request(Service::Cassandra, "read a run's rows", e))?
        .rows_stream::<(uuid::Uuid,)>()
        .map_err(Service::Cassandra.error("unexpected created_users rows"))?;
    let mut digest = Digest::default();
    while let Some(row) = rows.next().await {
        let (id,) =
            row.map_err(|e| StoreError::request(Service::Cassandra, "read a run's rows", e))?;
        digest.add(id);
    }
    Ok(digest)
}

/// The digests of `runs` as Cassandra committed them, summed over `partitions`: what
/// each partition's writer committed with its offset, right after upserting the rows.
/// A few clustering keys per partition, however many rows the runs have.
///
/// # Errors
/// Cassandra cannot be read.
pub async fn committed_runs(
    session: &Session,
    keyspace: &str,
    topic: &str,
    partitions: impl IntoIterator<Item = i32>,
    runs: &[i64],
) -> Result<BTreeMap<i64, Digest>, StoreError> {
    let statement = format!(
        "SELECT bucket, user_count FROM {keyspace}.partition_state \
         WHERE topic = ? AND partition = ? AND bucket IN ?"
    );
    let mut total: BTreeMap<i64, Digest> = BTreeMap::new();
    for partition in partitions {
        for chunk in runs.chunks(100) {
            let buckets: Vec<String> = chunk
                .iter()
                .flat_map(|run| {
                    let (users, xor) = run_buckets(*run);
                    [users, xor]
                })
                .collect();
            let result = session
                .query_unpaged(
                    cassandra::idempotent(statement.as_str()),
                    (topic, partition, buckets),
                )
                .await
                .map_err(Service::Cassandra.error("read run digests"))?
                .into_rows_result()
                .map_err(Service::Cassandra.error("unexpected partition_state rows"))?;
            let mut here = BTreeMap::new();
            for row in result
                .rows::<(String, Option<i64>)>()
                .map_err(Service::Cassandra.error("unexpected partition_state rows"))?
            {
                let (bucket, value) =
                    row.map_err(Service::Cassandra.error("unexpected partition_state row"))?;
                if let (Some(part), Some(value)) = (RunBucket::parse(&bucket), value) {
                    part.apply(value, &mut here);
                }
            }
            for (run, digest) in here {
                total.entry(run).or_default().merge(digest);
            }
        }
    }
    Ok(total)
}

/// One partition's committed progress in Cassandra.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionProgress {
    /// The last offset committed; -1: none.
    pub committed_offset: i64,
    /// Its absolute aggregates (`country:…`, `gender:…`).
    pub aggregates: BTreeMap<String, i64>,
}

/// The committed offset and aggregates of each of `partitions` of `topic`.
///
/// # Errors
/// Cassandra cannot be read.
pub async fn cassandra_progress(
    session: &Session,
    keyspace: &str,
    topic: &str,
    partitions: impl IntoIterator<Item = i32>,
) -> Result<BTreeMap<i32, PartitionProgress>, StoreError> {
    // The aggregate buckets only: the run digests sort after them.
    let statement = format!(
        "SELECT committed_offset, bucket, user_count FROM {keyspace}.partition_state \
         WHERE topic = ? AND partition = ? AND bucket < '{RUN_BUCKETS}'"
    );
    // A partition without aggregates (none, or only poison records) has its offset in
    // the static row alone, which a clustering range does not return.
    let offset_only = format!(
        "SELECT committed_offset FROM {keyspace}.partition_state WHERE topic = ? AND partition = ? LIMIT 1"
    );
    let mut all = BTreeMap::new();
    for partition in partitions {
        let result = session
            .query_unpaged(
                cassandra::idempotent(statement.as_str()),
                (topic, partition),
            )
            .await
            .map_err(Service::Cassandra.error("read partition_state"))?
            .into_rows_result()
            .map_err(Service::Cassandra.error("unexpected partition_state rows"))?;
        let mut progress = PartitionProgress {
            committed_offset: -1,
            ..PartitionProgress::default()
        };
        if result.rows_num() == 0 {
            let row = session
                .query_unpaged(
                    cassandra::idempotent(offset_only.as_str()),
                    (topic, partition),
                )
                .await
                .map_err(Service::Cassandra.error("read partition_state"))?
                .into_rows_result()
                .map_err(Service::Cassandra.error("unexpected partition_state rows"))?
                .maybe_first_row::<(Option<i64>,)>()
                .map_err(Service::Cassandra.error("unexpected partition_state row"))?;
            progress.committed_offset = row.and_then(|r| r.0).unwrap_or(-1);
            all.insert(partition, progress);
            continue;
        }
        for row in result
            .rows::<(Option<i64>, Option<String>, Option<i64>)>()
            .map_err(Service::Cassandra.error("unexpected partition_state rows"))?
        {
            let (committed, bucket, count) =
                row.map_err(Service::Cassandra.error("unexpected partition_state row"))?;
            progress.committed_offset = committed.unwrap_or(-1);
            if let (Some(bucket), Some(count)) = (bucket, count) {
                progress.aggregates.insert(bucket, count);
            }
        }
        all.insert(partition, progress);
    }
    Ok(all)
}

/// Aggregates summed over partitions.
pub fn totals(progress: &BTreeMap<i32, PartitionProgress>) -> BTreeMap<String, i64> {
    let mut sums = BTreeMap::new();
    for p in progress.values() {
        for (bucket, n) in &p.aggregates {
            *sums.entry(bucket.clone()).or_insert(0) += n;
        }
    }
    sums
}

/// Users per bucket over everything ever staged (`staged_aggregates`, kept by
/// `seal_run` and never pruned).
///
/// # Errors
/// PostgreSQL cannot be read.
pub async fn staged_aggregates(
    client: &tokio_postgres::Client,
) -> Result<BTreeMap<String, i64>, StoreError> {
    Ok(client
        .query("SELECT bucket, users FROM staged_aggregates", &[])
        .await
        .map_err(Service::Postgres.error("read staged_aggregates"))?
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
        .collect())
}

/// The lines of every bucket whose totals differ: `bucket: cassandra N, postgresql M`.
pub fn aggregate_differences(
    cassandra: &BTreeMap<String, i64>,
    postgres: &BTreeMap<String, i64>,
) -> Vec<String> {
    let buckets: std::collections::BTreeSet<&String> =
        cassandra.keys().chain(postgres.keys()).collect();
    buckets
        .into_iter()
        .filter_map(|bucket| {
            let (got, want) = (
                cassandra.get(bucket).copied().unwrap_or(0),
                postgres.get(bucket).copied().unwrap_or(0),
            );
            (got != want).then(|| format!("{bucket}: cassandra {got}, postgresql {want}"))
        })
        .collect()
}

/// Whether a committed record follows `from` in `partition` of `topic` (read_committed
/// skips transaction markers and aborted records); `false` when only those are left.
/// `consumer` (with `enable.partition.eof`) is assigned to that partition for the call.
///
/// # Errors
/// Kafka cannot be read within `timeout`.
pub fn records_after<C: rdkafka::consumer::ConsumerContext>(
    consumer: &rdkafka::consumer::BaseConsumer<C>,
    topic: &str,
    partition: i32,
    from: i64,
    timeout: std::time::Duration,
) -> Result<bool, rdkafka::error::KafkaError> {
    use rdkafka::consumer::Consumer as _;
    use rdkafka::error::KafkaError;
    let mut list = rdkafka::TopicPartitionList::new();
    list.add_partition_offset(topic, partition, rdkafka::Offset::Offset(from.max(0)))?;
    consumer.assign(&list)?;
    let deadline = std::time::Instant::now() + timeout;
    let found = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break Err(KafkaError::MessageConsumption(
                rdkafka::types::RDKafkaErrorCode::RequestTimedOut,
            ));
        }
        match consumer.poll(left) {
            Some(Ok(_)) => break Ok(true),
            Some(Err(KafkaError::PartitionEOF(_))) => break Ok(false),
            Some(Err(error)) => break Err(error),
            None => {}
        }
    };
    let _ = consumer.unassign();
    found
}
