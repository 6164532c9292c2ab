//! The pipeline's progress as the stores record it: runs finished and users staged in
//! PostgreSQL, the producer's committed checkpoint in Kafka, users committed in
//! Cassandra. What the demo waits on before verify, and what the chaos suite polls.

use tributary_actors::publish::checkpoint::read_checkpoint;
use tributary_actors::store::postgres;
use tributary_actors::store::{Service, StoreError};

use crate::config::Config;
use crate::verify;

/// Ingest progress: runs finished of the bounded workload, users staged, users published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub runs_finished: i64,
    pub runs_total: i64,
    pub staged: i64,
    pub last_outbox_id: i64,
    pub published_outbox_id: i64,
    /// Users committed to Cassandra (the sum of the `gender:` aggregates).
    pub written: i64,
}

impl Progress {
    pub fn drained(&self, runs: i64) -> bool {
        self.runs_total >= runs
            && self.runs_finished >= runs
            && self.published_outbox_id >= self.last_outbox_id
            && self.written >= self.staged
    }
}

/// Connections the progress display reuses every second.
pub struct Probe {
    postgres: tokio_postgres::Client,
    cassandra: scylla::client::session::Session,
}

impl Probe {
    /// # Errors
    /// A store cannot be reached.
    pub async fn open(config: &Config) -> Result<Probe, StoreError> {
        Ok(Probe {
            postgres: postgres::connect(&config.postgres).await?,
            cassandra: tributary_actors::store::cassandra::connect(&config.cassandra).await?,
        })
    }
}

/// Reads the progress from PostgreSQL, the producer's committed checkpoint and
/// Cassandra's aggregates.
///
/// # Errors
/// A store cannot be read.
pub async fn progress(config: &Config, probe: &Probe) -> Result<Progress, StoreError> {
    let client = &probe.postgres;
    // Retention prunes finished runs and published outbox rows: the run count comes from
    // the ordinals (they only grow) less the unfinished runs (never pruned), and the
    // users ever staged from the cumulative aggregates.
    let row = client
        .query_one(
            "SELECT greatest(coalesce(max(ordinal), 0), count(*)) \
             - count(*) FILTER (WHERE status NOT IN ('staged', 'failed')), \
             greatest(coalesce(max(ordinal), 0), count(*)), \
             (SELECT coalesce(sum(users), 0)::bigint FROM staged_aggregates WHERE bucket LIKE 'gender:%'), \
             (SELECT coalesce(max(id), 0) FROM staged_users) FROM runs",
            &[],
        )
        .await
        .map_err(Service::Postgres.error("read progress"))?;
    let (kafka, topic, id) = (
        config.kafka.clone(),
        config.kafka.topics.checkpoints.name.clone(),
        config.publish.transactional_id.clone(),
    );
    let checkpoint = tokio::task::spawn_blocking(move || read_checkpoint(&kafka, &topic, &id))
        .await
        .map_err(|e| StoreError::request(Service::Kafka, "checkpoint task failed", e))?
        .map_err(|e| {
            StoreError::request(Service::Kafka, "cannot read the producer checkpoint", e)
        })?;
    let written = written_to_cassandra(config, &probe.cassandra).await?;
    Ok(Progress {
        written,
        runs_finished: row.get(0),
        runs_total: row.get(1),
        staged: row.get(2),
        last_outbox_id: row.get(3),
        published_outbox_id: checkpoint.map_or(0, |c| c.last_outbox_id),
    })
}

/// Users committed to Cassandra for the raw topic: the sum of the `gender:` buckets.
///
/// # Errors
/// Cassandra does not answer.
pub async fn written_to_cassandra(
    config: &Config,
    session: &scylla::client::session::Session,
) -> Result<i64, StoreError> {
    let aggregates = verify::cassandra_aggregates(
        session,
        &config.cassandra.keyspace,
        &config.kafka.topics.raw.name,
        config.kafka.topics.raw.partitions,
    )
    .await?;
    Ok(aggregates
        .iter()
        .filter(|(bucket, _)| bucket.starts_with("gender:"))
        .map(|(_, count)| count)
        .sum())
}
