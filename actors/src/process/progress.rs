//! A partition's progress in Cassandra's `partition_state`, the writer's I/O besides its
//! rows ([`super::rows`]): the claim that fences older owners, the committed state a new
//! owner resumes from, and the conditional commit that advances it.

use crate::model::digest::{Digest, RunBucket, run_buckets};
use crate::store::cassandra::{self, SerialConsistency};
use crate::store::{Service, StoreError};
use scylla::client::session::Session;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlTimestamp, CqlValue};
use std::collections::{BTreeMap, BTreeSet};

/// One partition's rows of `partition_state`, and the statements that move them.
pub struct PartitionProgress {
    keyspace: String,
    topic: String,
    partition: i32,
    /// Reads that must see every committed lightweight transaction use its serial level.
    serial: SerialConsistency,
    commit: PreparedStatement,
    set_bucket: PreparedStatement,
    delete_bucket: PreparedStatement,
}

/// What a commit writes besides the offset: the aggregate buckets and run digests it
/// changed (absolute values), and the run digests it drops.
pub struct Changes<'a> {
    pub aggregates: &'a BTreeMap<String, i64>,
    pub touched: &'a BTreeSet<String>,
    pub runs: &'a BTreeMap<i64, Digest>,
    pub runs_touched: &'a BTreeSet<i64>,
    pub runs_dropped: &'a [i64],
}

/// A partition's state as committed.
pub struct Committed {
    pub offset: i64,
    pub aggregates: BTreeMap<String, i64>,
    pub runs: BTreeMap<i64, Digest>,
}

impl PartitionProgress {
    /// Prepares the commit's statements for `topic`'s `partition`.
    ///
    /// # Errors
    /// Cassandra cannot prepare them.
    pub async fn prepare(
        session: &Session,
        config: &cassandra::Config,
        keyspace: &str,
        topic: &str,
        partition: i32,
    ) -> Result<Self, StoreError> {
        let prepare = |cql: String| async move {
            session
                .prepare(cql)
                .await
                .map_err(Service::Cassandra.error("cannot prepare a statement"))
        };
        let ks = keyspace;
        Ok(Self {
            commit: prepare(format!(
                "UPDATE {ks}.partition_state SET committed_offset = ?, updated_at = ? WHERE topic = ? AND partition = ? \
                 IF owner_epoch = ?"
            ))
            .await?,
            set_bucket: prepare(format!(
                "UPDATE {ks}.partition_state SET user_count = ? WHERE topic = ? AND partition = ? AND bucket = ?"
            ))
            .await?,
            delete_bucket: prepare(format!(
                "DELETE FROM {ks}.partition_state WHERE topic = ? AND partition = ? AND bucket = ?"
            ))
            .await?,
            keyspace: keyspace.to_owned(),
            topic: topic.to_owned(),
            partition,
            serial: config.serial_consistency,
        })
    }

    /// Bumps the partition's owner epoch with a lightweight transaction, as `owner`;
    /// returns ours.
    ///
    /// # Errors
    /// Cassandra fails, or other owners keep claiming in between (contention).
    pub async fn claim(&self, session: &Session, owner: &str) -> Result<i64, StoreError> {
        let (ks, topic, partition) = (&self.keyspace, &self.topic, self.partition);
        for _ in 0..20 {
            let mut read = cassandra::idempotent(format!(
                "SELECT owner_epoch FROM {ks}.partition_state WHERE topic = ? AND partition = ? LIMIT 1"
            ));
            read.set_consistency(self.serial.for_reads());
            let current: Option<i64> = session
                .query_unpaged(read, (topic, partition))
                .await
                .map_err(Service::Cassandra.error("read owner epoch"))?
                .into_rows_result()
                .ok()
                .and_then(|rows| rows.maybe_first_row::<(Option<i64>,)>().ok().flatten())
                .and_then(|(epoch,)| epoch);
            let (cql, next) = match current {
                None => (
                    format!(
                        "INSERT INTO {ks}.partition_state (topic, partition, owner_epoch, committed_offset, owner, updated_at) \
                         VALUES (?, ?, 1, -1, ?, toTimestamp(now())) IF NOT EXISTS"
                    ),
                    1,
                ),
                Some(epoch) => (
                    format!(
                        "UPDATE {ks}.partition_state SET owner_epoch = {}, owner = ?, updated_at = toTimestamp(now()) \
                         WHERE topic = ? AND partition = ? IF owner_epoch = {epoch}",
                        epoch + 1
                    ),
                    epoch + 1,
                ),
            };
            let applied = if current.is_none() {
                session.query_unpaged(cql, (topic, partition, owner)).await
            } else {
                session.query_unpaged(cql, (owner, topic, partition)).await
            }
            .map_err(Service::Cassandra.error("claim the partition"))?;
            if lwt_applied(applied) {
                return Ok(next);
            }
            // Another owner claimed it between our read and our write: read again.
        }
        Err(StoreError::request(
            Service::Cassandra,
            format!("partition {partition} of {topic}: could not claim ownership (contention)"),
            Box::<dyn std::error::Error + Send + Sync>::from("owner epoch contention"),
        ))
    }

    /// The committed offset, aggregates and run digests, read at the serial consistency
    /// (`cassandra.serial_consistency`) so every committed LWT is visible.
    ///
    /// # Errors
    /// Cassandra fails or answers rows of another shape.
    pub async fn load(&self, session: &Session) -> Result<Committed, StoreError> {
        let mut read = cassandra::idempotent(format!(
            "SELECT committed_offset, bucket, user_count FROM {}.partition_state WHERE topic = ? AND partition = ?",
            self.keyspace
        ));
        read.set_consistency(self.serial.for_reads());
        let rows = session
            .query_unpaged(read, (&self.topic, self.partition))
            .await
            .map_err(Service::Cassandra.error("read partition state"))?
            .into_rows_result()
            .map_err(Service::Cassandra.error("unexpected partition state"))?;
        let mut offset = -1;
        let mut aggregates = BTreeMap::new();
        let mut runs = BTreeMap::new();
        for row in rows
            .rows::<(Option<i64>, Option<String>, Option<i64>)>()
            .map_err(Service::Cassandra.error("unexpected partition state"))?
        {
            let (committed, bucket, count) =
                row.map_err(Service::Cassandra.error("unexpected partition state row"))?;
            offset = committed.unwrap_or(-1);
            if let (Some(bucket), Some(value)) = (bucket, count) {
                match RunBucket::parse(&bucket) {
                    Some(part) => part.apply(value, &mut runs),
                    None => {
                        aggregates.insert(bucket, value);
                    }
                }
            }
        }
        Ok(Committed {
            offset,
            aggregates,
            runs,
        })
    }

    /// Commits `offset`, the aggregates and run digests in one conditional batch, fenced
    /// by `epoch`; false when a newer owner fenced it.
    ///
    /// # Errors
    /// Cassandra fails.
    pub async fn commit(
        &self,
        session: &Session,
        epoch: i64,
        offset: i64,
        changes: Changes<'_>,
    ) -> Result<bool, StoreError> {
        let (topic, partition) = (&self.topic, self.partition);
        let mut batch = Batch::new(BatchType::Logged);
        // The batch's serial consistency is the session's (cassandra.serial_consistency).
        batch.append_statement(self.commit.clone());
        let now = CqlTimestamp(chrono::Utc::now().timestamp_millis());
        let mut values: Vec<Vec<CqlValue>> = vec![vec![
            CqlValue::BigInt(offset),
            CqlValue::Timestamp(now),
            CqlValue::Text(topic.clone()),
            CqlValue::Int(partition),
            CqlValue::BigInt(epoch),
        ]];
        let mut set = |bucket: String, value: i64| {
            batch.append_statement(self.set_bucket.clone());
            values.push(vec![
                CqlValue::BigInt(value),
                CqlValue::Text(topic.clone()),
                CqlValue::Int(partition),
                CqlValue::Text(bucket),
            ]);
        };
        for bucket in changes.touched {
            set(
                bucket.clone(),
                changes.aggregates.get(bucket).copied().unwrap_or(0),
            );
        }
        for run in changes.runs_touched {
            let digest = changes.runs.get(run).copied().unwrap_or_default();
            let (users, xor) = run_buckets(*run);
            set(users, digest.count as i64);
            set(xor, digest.xor);
        }
        for run in changes.runs_dropped {
            let (users, xor) = run_buckets(*run);
            for bucket in [users, xor] {
                batch.append_statement(self.delete_bucket.clone());
                values.push(vec![
                    CqlValue::Text(topic.clone()),
                    CqlValue::Int(partition),
                    CqlValue::Text(bucket),
                ]);
            }
        }
        let result = session
            .batch(&batch, values)
            .await
            .map_err(Service::Cassandra.error("commit offset and aggregates"))?;
        Ok(lwt_applied(result))
    }
}

/// The `[applied]` column of a conditional statement's result.
pub fn lwt_applied(result: scylla::response::query_result::QueryResult) -> bool {
    result
        .into_rows_result()
        .ok()
        .and_then(|rows| rows.first_row::<scylla::value::Row>().ok())
        .is_some_and(|row| matches!(row.columns.first(), Some(Some(CqlValue::Boolean(true)))))
}
