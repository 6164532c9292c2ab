//! What the writer needs from Cassandra, behind one trait: the claim when it starts, the
//! row upserts ([`super::rows`]) and the fenced commit ([`super::progress`]).
//! [`CassandraStore`] is the real one; the writer's own tests run the actor against a
//! stand-in, and the integration tests and chaos scenarios against the real cluster.

use super::progress::{Changes, Committed, PartitionProgress};
use super::rows::Upserts;
use crate::model::CreatedUser;
use crate::store::Service;
use crate::store::cassandra;
use ractor::ActorProcessingErr;
use scylla::client::session::Session;
use std::future::Future;

/// One partition's store, as its writer uses it. Each writer incarnation opens its own.
pub trait PartitionStore: Sized + Send + Sync + 'static {
    /// What opens it: given to every incarnation of the writer.
    type Open: Send + Sync + 'static;

    /// Opens the store and claims `partition`: the store, the owner epoch the claim
    /// took (older owners are fenced from then on), and what was committed.
    fn open(
        open: &Self::Open,
        partition: i32,
    ) -> impl Future<Output = Result<(Self, i64, Committed), ActorProcessingErr>> + Send;

    /// The keyspace the rows go to (the write spans' `db.namespace`).
    fn keyspace(&self) -> &str;

    /// Upserts `users`' rows, `concurrency` requests in flight. Idempotent: a batch
    /// written again after a crash changes nothing.
    fn upsert(
        &self,
        users: &[CreatedUser],
        concurrency: usize,
    ) -> impl Future<Output = Result<(), ActorProcessingErr>> + Send;

    /// Commits `offset` and `changes` if `epoch` still owns the partition; false when a
    /// newer owner fenced it.
    fn commit(
        &self,
        epoch: i64,
        offset: i64,
        changes: Changes<'_>,
    ) -> impl Future<Output = Result<bool, ActorProcessingErr>> + Send;
}

/// How a writer opens its partition in Cassandra.
#[derive(Debug, Clone)]
pub struct CassandraOpen {
    pub cassandra: cassandra::Config,
    pub keyspace: String,
    pub topic: String,
    /// This instance's name, stored as the partition's owner.
    pub owner: String,
    /// Rows per upsert request (see [`super::rows`]).
    pub rows_per_request: usize,
}

/// A partition in Cassandra: `created_users` and its rows of `partition_state`.
pub struct CassandraStore {
    session: Session,
    upserts: Upserts,
    progress: PartitionProgress,
}

impl PartitionStore for CassandraStore {
    type Open = CassandraOpen;

    async fn open(
        open: &CassandraOpen,
        partition: i32,
    ) -> Result<(Self, i64, Committed), ActorProcessingErr> {
        // Its own session: a driver session does not always recover when every node of
        // the cluster restarts, a fresh one does.
        let session = cassandra::connect(&open.cassandra).await?;
        let ks = &open.keyspace;
        let upserts = Upserts::prepare(&session, ks, open.rows_per_request)
            .await
            .map_err(Service::Cassandra.error("cannot prepare a statement"))?;
        let progress =
            PartitionProgress::prepare(&session, &open.cassandra, ks, &open.topic, partition)
                .await?;
        let epoch = progress.claim(&session, &open.owner).await?;
        let committed = progress.load(&session).await?;
        let store = CassandraStore {
            session,
            upserts,
            progress,
        };
        Ok((store, epoch, committed))
    }

    fn keyspace(&self) -> &str {
        self.upserts.keyspace()
    }

    async fn upsert(
        &self,
        users: &[CreatedUser],
        concurrency: usize,
    ) -> Result<(), ActorProcessingErr> {
        self.upserts
            .write(&self.session, users, concurrency)
            .await
            .map_err(Service::Cassandra.error("upsert created_users"))?;
        Ok(())
    }

    async fn commit(
        &self,
        epoch: i64,
        offset: i64,
        changes: Changes<'_>,
    ) -> Result<bool, ActorProcessingErr> {
        Ok(self
            .progress
            .commit(&self.session, epoch, offset, changes)
            .await?)
    }
}
