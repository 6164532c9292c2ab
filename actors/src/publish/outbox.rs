//! The producer's side of PostgreSQL's outbox: the staged rows it publishes, in id order.
//! (Its wake-ups, NOTIFY and the poll timer, are in [`super::wake`].)

use crate::store::{Service, StoreError};

/// One outbox row.
pub struct OutboxRow {
    pub id: i64,
    pub run_id: i64,
    pub source_uuid: uuid::Uuid,
    /// The raw user as JSON text: PostgreSQL renders the jsonb column (`payload::text`),
    /// so the producer never builds a JSON tree only to print it again.
    pub payload: String,
    /// The staging span of its run (`runs.trace_parent`); replaced by the Kafka span's
    /// own context before it becomes the record's `traceparent` header.
    pub trace_parent: Option<String>,
    /// When the row was staged (`staged_users.fetched_at`), ms since the Unix epoch.
    pub staged_at_ms: i64,
}

/// The next `limit` outbox rows after id `after`, in id order, each with its run's
/// staging span.
pub async fn read(
    pool: &deadpool_postgres::Pool,
    after: i64,
    limit: i64,
) -> Result<Vec<OutboxRow>, StoreError> {
    let client = pool
        .get()
        .await
        .map_err(|e| StoreError::request(Service::Postgres, "no pooled connection", e))?;
    let rows = client
        .query(
            "SELECT s.id, s.run_id, s.source_uuid, s.payload::text, r.trace_parent, \
             (extract(epoch FROM s.fetched_at) * 1000)::bigint FROM staged_users s \
             LEFT JOIN runs r ON r.run_id = s.run_id WHERE s.id > $1 ORDER BY s.id LIMIT $2",
            &[&after, &limit],
        )
        .await
        .map_err(Service::Postgres.error("read the outbox"))?;
    Ok(rows
        .iter()
        .map(|row| OutboxRow {
            id: row.get(0),
            run_id: row.get(1),
            source_uuid: row.get(2),
            payload: row.get(3),
            trace_parent: row.get(4),
            staged_at_ms: row.get(5),
        })
        .collect())
}
