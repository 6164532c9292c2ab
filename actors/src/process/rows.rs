//! How rows reach `created_users`: the prepared upsert, its bind values, and the requests
//! that carry them. Shared by the writer and the benchmark's raw Cassandra ceiling, which
//! must make exactly the writes the writer makes.
//!
//! Rows travel `rows_per_request` at a time in unlogged batches. Every row is its own
//! Cassandra partition (the user id), so a batch is only cheap when the node that
//! coordinates it owns all of its rows: requests therefore only group rows whose replica
//! sets are equal, and the driver routes a batch by its first row, to one of those
//! replicas. On one node that is every row. Measured on the local stack (2 cores, 100,000
//! rows): one row per request costs the client 0.011 and Cassandra 0.037–0.044 CPU-s per
//! 1,000 rows; four rows per request 0.005 and 0.035–0.036, at 20–35% more rows/s.

use crate::model::CreatedUser;
use scylla::client::session::Session;
use scylla::errors::{ExecutionError, PrepareError};
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The table every upsert writes.
const TABLE: &str = "created_users";

/// The row upsert: idempotent, with the write timestamp derived from the record. Bind
/// [`UserRow::of`].
pub fn insert_cql(keyspace: &str) -> String {
    format!(
        "INSERT INTO {keyspace}.{TABLE} (id, first_name, last_name, gender, address, country, post_code, email, \
         username, dob, registered_date, phone, picture, source_topic, source_partition, source_offset, ingested_at, \
         run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
    )
}

/// The bind values of the row upsert, in statement order.
#[derive(scylla::SerializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
pub struct UserRow<'a> {
    id: uuid::Uuid,
    first_name: &'a str,
    last_name: &'a str,
    gender: &'a str,
    address: &'a str,
    country: &'a str,
    post_code: &'a str,
    email: &'a str,
    username: &'a str,
    dob: CqlTimestamp,
    registered_date: CqlTimestamp,
    phone: &'a str,
    picture: &'a str,
    source_topic: &'a str,
    source_partition: i32,
    source_offset: i64,
    ingested_at: CqlTimestamp,
    run_id: Option<i64>,
    write_timestamp: i64,
}

impl<'a> UserRow<'a> {
    pub fn of(user: &'a CreatedUser) -> Self {
        UserRow {
            id: user.id,
            first_name: &user.first_name,
            last_name: &user.last_name,
            gender: &user.gender,
            address: &user.address,
            country: &user.country,
            post_code: &user.post_code,
            email: &user.email,
            username: &user.username,
            dob: CqlTimestamp(user.dob.timestamp_millis()),
            registered_date: CqlTimestamp(user.registered_date.timestamp_millis()),
            phone: &user.phone,
            picture: &user.picture,
            source_topic: &user.provenance.topic,
            source_partition: user.provenance.partition,
            source_offset: user.provenance.offset,
            ingested_at: CqlTimestamp(user.ingested_at().timestamp_millis()),
            run_id: user.provenance.run_id,
            write_timestamp: user.write_timestamp_micros(),
        }
    }
}

/// The prepared upsert and the unlogged batches built from it, one per request size.
pub struct Upserts {
    keyspace: String,
    insert: PreparedStatement,
    /// `batches[n - 2]` holds `n` copies of `insert`: requests of `n` ≥ 2 rows. Built
    /// once, so a request costs no statement copies.
    batches: Vec<Batch>,
}

impl Upserts {
    /// The keyspace the rows go to.
    pub fn keyspace(&self) -> &str {
        &self.keyspace
    }

    /// Prepares the upsert for requests of at most `rows_per_request` rows.
    ///
    /// # Errors
    /// Cassandra refused to prepare the statement (unknown keyspace or table).
    pub async fn prepare(
        session: &Session,
        keyspace: &str,
        rows_per_request: usize,
    ) -> Result<Self, PrepareError> {
        let mut insert = session.prepare(insert_cql(keyspace)).await?;
        // Same key, same cells, same write timestamp: the driver may retry an upsert on
        // another node and send it speculatively (`cassandra.speculative_after_ms`).
        insert.set_is_idempotent(true);
        let batches = (2..=rows_per_request.max(1))
            .map(|n| {
                let mut batch = Batch::new(BatchType::Unlogged);
                batch.set_is_idempotent(true);
                for _ in 0..n {
                    batch.append_statement(insert.clone());
                }
                batch
            })
            .collect();
        Ok(Self {
            keyspace: keyspace.to_owned(),
            insert,
            batches,
        })
    }

    fn rows_per_request(&self) -> usize {
        self.batches.len() + 1
    }

    /// Upserts `users`, `concurrency` requests in flight, each request sent again after
    /// a failure (see [`Upserts::send_retrying`]). Idempotent: same key, same cells,
    /// same write timestamp on a replay.
    ///
    /// `concurrency` loops each take the next request until none is left, rather than
    /// one future per request in a `buffer_unordered`: a driver request's future is
    /// large, and building and moving one per row was a tenth of the writer's CPU (perf:
    /// memmove under `BufferUnordered::poll_next`).
    ///
    /// # Errors
    /// The first request that failed for good (refused, or failed [`UPSERT_ATTEMPTS`]
    /// times); requests still in flight are dropped.
    pub async fn write(
        &self,
        session: &Session,
        users: &[CreatedUser],
        concurrency: usize,
    ) -> Result<(), ExecutionError> {
        let cluster = session.get_cluster_state();
        let requests = group_by_replicas(users, self.rows_per_request(), |user| {
            let token = cluster
                .compute_token(&self.keyspace, TABLE, &(user.id,))
                .ok()?;
            let replicas = cluster.get_token_endpoints(&self.keyspace, TABLE, token);
            Some(
                replicas
                    .iter()
                    .map(|(node, _)| node.host_id)
                    .collect::<Vec<_>>(),
            )
        });
        let next = AtomicUsize::new(0);
        let worker = || async {
            while let Some(rows) = requests.get(next.fetch_add(1, Ordering::Relaxed)) {
                self.send_retrying(session, rows).await?;
            }
            Ok::<(), ExecutionError>(())
        };
        let workers = concurrency.clamp(1, requests.len().max(1));
        futures::future::try_join_all((0..workers).map(|_| worker())).await?;
        Ok(())
    }

    /// One request, sent again after a failure that can pass (see [`may_pass`]), up to
    /// [`UPSERT_ATTEMPTS`] in all with a doubling pause: a request that every replica of
    /// its plan failed (a node cut off, a loaded cluster's write timeout) costs a pause
    /// instead of the writer's restart and a new claim of the partition. Safe because
    /// the upserts are idempotent; the batch's commit still waits for all of them.
    ///
    /// Only the failed request goes again, never the whole batch: what succeeded stays
    /// written, so a cluster that can take some of the requests still moves forward.
    /// Retrying whole batches redid up to 250 requests for one timeout; on CI's cold,
    /// overloaded cluster (kill-raw-partition-leader, six JVMs on two cores) that is the
    /// likely reason nothing was written for 240 s, with 29 writer restarts. The pause
    /// also takes this loop out of the batch's concurrency while it lasts, so a cluster
    /// that times out gets fewer requests at once.
    async fn send_retrying(
        &self,
        session: &Session,
        rows: &[&CreatedUser],
    ) -> Result<(), ExecutionError> {
        let mut pause = UPSERT_RETRY_PAUSE;
        for attempt in 1.. {
            match self.send(session, rows).await {
                Err(error) if attempt < UPSERT_ATTEMPTS && may_pass(&error) => {
                    tracing::warn!(
                        error = &error as &dyn std::error::Error,
                        attempt,
                        rows = rows.len(),
                        "upserting a request failed: sending it again (idempotent)"
                    );
                    metrics::counter!("tributary_upsert_retries_total").increment(1);
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                result => return result,
            }
        }
        unreachable!("the attempts loop returns")
    }

    async fn send(&self, session: &Session, rows: &[&CreatedUser]) -> Result<(), ExecutionError> {
        match rows {
            [] => Ok(()),
            [one] => session
                .execute_unpaged(&self.insert, UserRow::of(one))
                .await
                .map(|_| ()),
            many => {
                let values: Vec<UserRow<'_>> = many.iter().map(|u| UserRow::of(u)).collect();
                session
                    .batch(&self.batches[many.len() - 2], values)
                    .await
                    .map(|_| ())
            }
        }
    }
}

/// Attempts of one upsert request before the writer fails (and is restarted). The
/// pauses (0.25 + 0.5 + 1 + 2 s) with the attempts' own time (Cassandra's write timeout
/// is 2 s) outlast the keepalive's verdict on a node that stopped answering (5 s), so a
/// request outlives one slow node before it costs a restart.
const UPSERT_ATTEMPTS: u32 = 5;
/// The pause before the second attempt; it doubles before each further one.
const UPSERT_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);

/// Whether a failed request can succeed when sent again unchanged: the cluster was slow,
/// overloaded or short of replicas, or the connection broke. A request Cassandra
/// refused (invalid, unauthorized, a bad value) fails the same way every time: the
/// writer fails at once and says why.
fn may_pass(error: &ExecutionError) -> bool {
    use scylla::errors::{DbError, RequestAttemptError};
    match error {
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(db, _)) => matches!(
            db,
            DbError::WriteTimeout { .. }
                | DbError::ReadTimeout { .. }
                | DbError::Unavailable { .. }
                | DbError::Overloaded
                | DbError::IsBootstrapping
                | DbError::RateLimitReached { .. }
        ),
        ExecutionError::LastAttemptError(attempt) => matches!(
            attempt,
            RequestAttemptError::BrokenConnectionError(_)
                | RequestAttemptError::UnableToAllocStreamId
        ),
        ExecutionError::ConnectionPoolError(_)
        | ExecutionError::EmptyPlan
        | ExecutionError::RequestTimeout(_) => true,
        _ => false,
    }
}

/// Splits `users` into requests of at most `max` rows whose `replicas` keys are equal,
/// keeping each group's order. A row whose replicas are unknown (`None`: the driver has
/// no metadata for the table yet) travels alone.
pub fn group_by_replicas<'u, K: Eq + Hash>(
    users: &'u [CreatedUser],
    max: usize,
    mut replicas: impl FnMut(&CreatedUser) -> Option<K>,
) -> Vec<Vec<&'u CreatedUser>> {
    let max = max.max(1);
    let mut requests = Vec::with_capacity(users.len().div_ceil(max));
    let mut filling: HashMap<K, Vec<&'u CreatedUser>> = HashMap::new();
    for user in users {
        let Some(key) = (max > 1).then(|| replicas(user)).flatten() else {
            requests.push(vec![user]);
            continue;
        };
        let group = filling.entry(key).or_default();
        group.push(user);
        if group.len() == max {
            requests.push(std::mem::take(group));
        }
    }
    requests.extend(filling.into_values().filter(|g| !g.is_empty()));
    requests
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(offset: i64) -> CreatedUser {
        let id = uuid::Uuid::from_u128(offset as u128);
        CreatedUser::for_test(id, "France", "female", offset, None)
    }

    fn offsets(requests: &[Vec<&CreatedUser>]) -> Vec<Vec<i64>> {
        let mut out: Vec<Vec<i64>> = requests
            .iter()
            .map(|r| r.iter().map(|u| u.provenance.offset).collect())
            .collect();
        out.sort();
        out
    }

    #[test]
    fn only_failures_that_can_pass_are_sent_again() {
        use scylla::errors::{DbError, RequestAttemptError};
        let refused =
            |db| ExecutionError::LastAttemptError(RequestAttemptError::DbError(db, String::new()));
        assert!(may_pass(&refused(DbError::Overloaded)));
        assert!(may_pass(&refused(DbError::IsBootstrapping)));
        assert!(may_pass(&ExecutionError::EmptyPlan));
        assert!(may_pass(&ExecutionError::RequestTimeout(
            std::time::Duration::from_secs(12)
        )));
        assert!(!may_pass(&refused(DbError::SyntaxError)));
        assert!(!may_pass(&refused(DbError::Invalid)));
        assert!(!may_pass(&refused(DbError::Unauthorized)));
    }

    #[test]
    fn a_request_holds_only_rows_with_the_same_replicas_and_at_most_max() {
        let users: Vec<CreatedUser> = (0..11).map(user).collect();
        // Replica sets: even offsets on one, odd on another, 10 unknown.
        let requests = group_by_replicas(&users, 4, |u| {
            (u.provenance.offset != 10).then_some(u.provenance.offset % 2)
        });
        assert_eq!(
            offsets(&requests),
            [
                vec![0, 2, 4, 6],
                vec![1, 3, 5, 7],
                vec![8],
                vec![9],
                vec![10]
            ]
        );
    }

    #[test]
    fn every_row_is_in_exactly_one_request() {
        let users: Vec<CreatedUser> = (0..1_000).map(user).collect();
        for max in [1, 2, 4, 7] {
            let requests = group_by_replicas(&users, max, |u| Some(u.provenance.offset % 3));
            let mut seen: Vec<i64> = requests
                .iter()
                .flatten()
                .map(|u| u.provenance.offset)
                .collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..1_000).collect::<Vec<_>>(), "max {max}");
            assert!(requests.iter().all(|r| !r.is_empty() && r.len() <= max));
        }
    }

    #[test]
    fn one_row_per_request_never_asks_for_replicas() {
        let users: Vec<CreatedUser> = (0..5).map(user).collect();
        let requests = group_by_replicas(&users, 1, |_| -> Option<u8> {
            panic!("replicas looked up for single-row requests")
        });
        assert_eq!(requests.len(), 5);
    }
}
