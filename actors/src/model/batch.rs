//! Messages' payloads that cross ingest actors.

use super::raw_user::{PageRequest, Rejected};
use std::fmt;

/// One scheduled run: a schedule slot and what to fetch for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The schedule slot.
    pub run_id: i64,
    /// The ledger's count of the run's finished fetch rounds when it was dispatched: a
    /// fencing token. The stager records a result only while the run is still pending
    /// with this count, so a second copy of a dispatch (a restarted scheduler
    /// re-dispatches what fetchers may still hold) changes nothing.
    pub attempts: i32,
    /// The page it fetches, recorded in the runs ledger: a refetch asks for the same
    /// (seed, page) and so gets the same users.
    pub request: PageRequest,
}

/// A validated user ready for staging.
pub struct StagedUser {
    pub source_uuid: uuid::Uuid,
    /// The record's JSON text as the source returned it (validated), stored as JSONB.
    /// Kept as text: building a `serde_json::Value` tree only to print it again for
    /// PostgreSQL was the fetch path's largest cost (heaptrack: ~70 allocations per user).
    pub payload: Box<serde_json::value::RawValue>,
}

/// What a fetcher hands the stager for one run.
pub enum FetchedBatch {
    /// The page was fetched: valid users and rejected records.
    Fetched {
        run: Run,
        users: Vec<StagedUser>,
        rejected: Vec<Rejected>,
    },
    /// Every attempt of the fetch round failed (transport, status, unparseable, or not
    /// the page asked for): the run waits for its retry, or gives up with its last
    /// response body quarantined (see `ingest::ledger`).
    Failed {
        run: Run,
        reason: String,
        raw: Vec<u8>,
        /// The source's last `Retry-After`: the run's next fetch waits at least this.
        retry_after: Option<std::time::Duration>,
    },
}

impl FetchedBatch {
    pub fn run(&self) -> &Run {
        match self {
            FetchedBatch::Fetched { run, .. } | FetchedBatch::Failed { run, .. } => run,
        }
    }
}

// Counts, not rows: a batch holds thousands of users.
impl fmt::Debug for FetchedBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchedBatch::Fetched {
                run,
                users,
                rejected,
            } => f
                .debug_struct("Fetched")
                .field("run_id", &run.run_id)
                .field("users", &users.len())
                .field("rejected", &rejected.len())
                .finish(),
            FetchedBatch::Failed {
                run,
                reason,
                raw,
                retry_after,
            } => f
                .debug_struct("Failed")
                .field("run_id", &run.run_id)
                .field("reason", reason)
                .field("raw_bytes", &raw.len())
                .field("retry_after", retry_after)
                .finish(),
        }
    }
}
