//! The runs ledger (`runs` in PostgreSQL): every SQL statement about runs, for the
//! scheduler, the stager, `tributary runs` and the status API.
//!
//! A run's life:
//!
//! ```text
//! pending ──fetched──▶ staged
//!    ▲  │
//!    │  └─fetch failed─▶ retrying ──next_attempt_at passed──▶ pending
//!    │                      │
//!    │                      └─failing past give_up_after_ms──▶ failed
//!    └──────────── tributary runs retry ─────────────────────────┘
//! ```
//!
//! `pending` and `retrying` runs count against `ingest.max_in_flight_runs`; no run is
//! ever skipped, a failing one only waits.

use super::config::Config;
use crate::model::Run;
use crate::model::raw_user::PageRequest;
use crate::store::{Service, StoreError};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Where a run is in its life (the `status` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Due: dispatched to a fetcher, or about to be.
    Pending,
    /// Its last fetch failed; fetched again at `next_attempt_at`.
    Retrying,
    /// Its users are in the outbox.
    Staged,
    /// Gave up after `ingest.give_up_after_ms`; waits for `tributary runs retry`.
    Failed,
}

impl RunStatus {
    pub const ALL: [RunStatus; 4] = [
        RunStatus::Pending,
        RunStatus::Retrying,
        RunStatus::Staged,
        RunStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Retrying => "retrying",
            RunStatus::Staged => "staged",
            RunStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<RunStatus> {
        RunStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of the ledger, as `tributary runs` and the status API show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRow {
    pub run_id: i64,
    pub status: RunStatus,
    pub scheduled_for: chrono::DateTime<chrono::Utc>,
    pub seed: Option<String>,
    pub page: Option<i32>,
    pub requested_users: i32,
    pub staged_users: i32,
    pub quarantined: i32,
    /// Users the source returned that an earlier run had already staged.
    pub repeated_users: i32,
    /// Fetch rounds that ended (staged or failed).
    pub attempts: i32,
    /// Failed fetch rounds since the run was last queued.
    pub retries: i32,
    pub next_attempt_at: Option<chrono::DateTime<chrono::Utc>>,
    pub first_failed_at: Option<chrono::DateTime<chrono::Utc>>,
    pub last_error: Option<String>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

const ROW_COLUMNS: &str = "run_id, status, scheduled_for, seed, page, requested_users, staged_users, \
     quarantined, repeated_users, attempts, retries, next_attempt_at, first_failed_at, last_error, \
     updated_at";

fn run_row(row: &tokio_postgres::Row) -> RunRow {
    RunRow {
        run_id: row.get(0),
        // The CHECK constraint admits only these four.
        status: RunStatus::parse(row.get(1)).unwrap_or(RunStatus::Pending),
        scheduled_for: row.get(2),
        seed: row.get(3),
        page: row.get(4),
        requested_users: row.get(5),
        staged_users: row.get(6),
        quarantined: row.get(7),
        repeated_users: row.get(8),
        attempts: row.get(9),
        retries: row.get(10),
        next_attempt_at: row.get(11),
        first_failed_at: row.get(12),
        last_error: row.get(13),
        updated_at: row.get(14),
    }
}

/// Retrying runs whose wait is over become pending again, oldest first, as long as
/// fewer than `max_pending` runs are pending (dispatched): a thousand runs re-queued at
/// once are fetched `max_in_flight_runs` at a time. Returns how many.
pub async fn requeue_due_retries(
    client: &impl deadpool_postgres::GenericClient,
    max_pending: u32,
) -> Result<u64, StoreError> {
    client
        .execute(
            "UPDATE runs SET status = 'pending', updated_at = now() WHERE run_id IN ( \
               SELECT run_id FROM runs WHERE status = 'retrying' AND next_attempt_at <= now() \
               ORDER BY next_attempt_at, run_id \
               LIMIT greatest(0, $1::bigint - (SELECT count(*) FROM runs WHERE status = 'pending')))",
            &[&i64::from(max_pending)],
        )
        .await
        .map_err(Service::Postgres.error("queue due retries"))
}

/// The pending runs, oldest first, with their pages. A run recorded before runs had a
/// page gets the one `config` maps it to, written back so that the ledger's unique
/// (seed, page) index covers it too.
pub async fn pending(
    client: &impl deadpool_postgres::GenericClient,
    config: &Config,
) -> Result<Vec<Run>, StoreError> {
    let rows = client
        .query(
            "SELECT run_id, requested_users, seed, page, attempts FROM runs \
             WHERE status = 'pending' ORDER BY run_id",
            &[],
        )
        .await
        .map_err(Service::Postgres.error("read pending runs"))?;
    let mut runs = Vec::with_capacity(rows.len());
    for row in &rows {
        let run_id: i64 = row.get(0);
        let (seed, page) = match (
            row.get::<_, Option<String>>(2),
            row.get::<_, Option<i32>>(3),
        ) {
            (Some(seed), Some(page)) => (seed, page.unsigned_abs()),
            _ => {
                let (seed, page) = config.source_page(run_id);
                client
                    .execute(
                        "UPDATE runs SET seed = $2, page = $3 WHERE run_id = $1 AND seed IS NULL",
                        &[&run_id, &seed, &(page as i32)],
                    )
                    .await
                    .map_err(|e| page_taken(run_id, &seed, page, e))?;
                (seed, page)
            }
        };
        runs.push(Run {
            run_id,
            attempts: row.get(4),
            request: PageRequest {
                seed,
                page,
                results: row.get::<_, i32>(1).unsigned_abs(),
            },
        });
    }
    Ok(runs)
}

/// The error of a (seed, page) that another run already fetched.
fn page_taken(run_id: i64, seed: &str, page: u32, error: tokio_postgres::Error) -> StoreError {
    if error.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
        StoreError::request(
            Service::Postgres,
            format!(
                "run {run_id} maps to seed {seed:?} page {page}, which an earlier run already \
                 fetched: ingest.seed or ingest.max_page changed under an existing runs ledger; \
                 restore them, or start a new schema"
            ),
            error,
        )
    } else {
        StoreError::request(Service::Postgres, "record run", error)
    }
}

/// Runs that hold a place among `max_in_flight_runs`: pending and retrying.
pub async fn in_flight(client: &impl deadpool_postgres::GenericClient) -> Result<u64, StoreError> {
    let row = client
        .query_one(
            "SELECT count(*) FROM runs WHERE status IN ('pending', 'retrying')",
            &[],
        )
        .await
        .map_err(Service::Postgres.error("count runs in flight"))?;
    Ok(row.get::<_, i64>(0).unsigned_abs())
}

/// The highest run id recorded and the number of runs ever recorded (retention prunes
/// old runs; their ordinals stay counted).
pub async fn last_and_total(
    client: &impl deadpool_postgres::GenericClient,
) -> Result<(Option<i64>, u64), StoreError> {
    let row = client
        .query_one(
            // Both by index (the primary key, runs_ordinal): the ledger holds a month.
            "SELECT max(run_id), coalesce(max(ordinal), 0) FROM runs",
            &[],
        )
        .await
        .map_err(Service::Postgres.error("read the runs ledger"))?;
    Ok((row.get(0), row.get::<_, i64>(1).unsigned_abs()))
}

/// Whether the ledger was scheduled on this configuration's slots. A run's id is its
/// slot, counted in `ingest.interval_ms` from `ingest.schedule_epoch`: with either
/// changed, the newest run's id no longer starts where it was scheduled, and the
/// scheduler would compare slots of two different clocks (a longer interval puts "now"
/// before the newest run, and no run would be due for a long time; a shorter one makes
/// every slot since then due). `Some(why)` names the keys and the values in use.
///
/// # Errors
/// The ledger cannot be read.
pub async fn schedule_drift(
    client: &impl deadpool_postgres::GenericClient,
    config: &Config,
) -> Result<Option<String>, StoreError> {
    let row = client
        .query_opt(
            "SELECT run_id, scheduled_for FROM runs ORDER BY run_id DESC LIMIT 1",
            &[],
        )
        .await
        .map_err(Service::Postgres.error("read the newest run"))?;
    let Some(row) = row else { return Ok(None) };
    let (run_id, scheduled_for): (i64, chrono::DateTime<chrono::Utc>) = (row.get(0), row.get(1));
    // Milliseconds: the schedule's unit (an epoch written with finer digits is stored
    // by PostgreSQL to the microsecond).
    if config.slot_start(run_id).timestamp_millis() == scheduled_for.timestamp_millis() {
        return Ok(None);
    }
    let epoch = config.epoch().unwrap_or_default();
    let was_ms = (run_id > 0).then(|| (scheduled_for - epoch).num_milliseconds() / run_id);
    Ok(Some(format!(
        "ingest.interval_ms = {} (or ingest.schedule_epoch = {}) differs from the schedule the \
         runs ledger was recorded with: run {run_id} is scheduled at {scheduled_for}, which \
         this configuration puts at {}{}. Run ids are slots of that schedule: set the key \
         back. Another schedule needs stores of its own — postgres.schema, \
         cassandra.keyspace, the kafka.topics names, publish.transactional_id and \
         process.group_id all new (a new schema alone would republish from the old \
         producer checkpoint and skip its first records)",
        config.interval_ms,
        config.schedule_epoch,
        config.slot_start(run_id),
        was_ms.map_or(String::new(), |ms| format!(" (recorded every {ms} ms)")),
    )))
}

/// Records the run of `slot` with its page; `None` if the slot was already recorded.
///
/// # Errors
/// Besides a failed query: the slot's page belongs to another run already, which
/// happens only when `ingest.seed` or `ingest.max_page` changed under an existing
/// ledger. Refetching that page would stage nothing new, so the scheduler stops and
/// says which key to look at.
pub async fn record(
    client: &impl deadpool_postgres::GenericClient,
    config: &Config,
    slot: i64,
) -> Result<Option<Run>, StoreError> {
    let (seed, page) = config.source_page(slot);
    let users = config.users_per_run as i32;
    let inserted = client
        .execute(
            "INSERT INTO runs (run_id, scheduled_for, requested_users, seed, page, ordinal) \
             VALUES ($1, $2, $3, $4, $5, (SELECT coalesce(max(ordinal), 0) + 1 FROM runs)) \
             ON CONFLICT (run_id) DO NOTHING",
            &[
                &slot,
                &config.slot_start(slot),
                &users,
                &seed,
                &(page as i32),
            ],
        )
        .await
        .map_err(|e| page_taken(slot, &seed, page, e))?;
    Ok((inserted == 1).then_some(Run {
        run_id: slot,
        attempts: 0,
        request: PageRequest {
            seed,
            page,
            results: config.users_per_run,
        },
    }))
}

/// Locks the run's row for this staging transaction if the result of `run`'s dispatch
/// is still the one the ledger waits for (pending, with the same finished-rounds
/// count); `false` for a stale copy, whose transaction must change nothing.
pub async fn claim(
    tx: &impl deadpool_postgres::GenericClient,
    run: &Run,
) -> Result<bool, StoreError> {
    let row = tx
        .query_opt(
            "SELECT 1 FROM runs WHERE run_id = $1 AND status = 'pending' AND attempts = $2 FOR UPDATE",
            &[&run.run_id, &run.attempts],
        )
        .await
        .map_err(Service::Postgres.error("claim run"))?;
    Ok(row.is_some())
}

/// Marks a fetched run staged, inside the staging transaction (after [`claim`]).
pub async fn mark_staged(
    tx: &impl deadpool_postgres::GenericClient,
    run_id: i64,
    repeated_users: u64,
    trace_parent: Option<&str>,
) -> Result<(), StoreError> {
    let repeated = i32::try_from(repeated_users).unwrap_or(i32::MAX);
    tx.execute(
        "UPDATE runs SET status = 'staged', attempts = attempts + 1, last_error = NULL, \
         next_attempt_at = NULL, repeated_users = $3, \
         quarantined = (SELECT count(*) FROM quarantine WHERE run_id = $1), updated_at = now(), \
         trace_parent = $2 WHERE run_id = $1",
        &[&run_id, &trace_parent, &repeated],
    )
    .await
    .map_err(Service::Postgres.error("mark run staged"))?;
    // Its count and digest, and its users added to the cumulative aggregates.
    tx.execute("SELECT seal_run($1)", &[&run_id])
        .await
        .map_err(Service::Postgres.error("seal run"))?;
    Ok(())
}

/// What became of a run whose fetch failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedRun {
    /// Fetched again after `after`.
    Retrying { retries: i32, after: Duration },
    /// Failing for longer than `give_up_after_ms`: stays failed until re-queued.
    GaveUp { retries: i32 },
}

/// Records a failed fetch round inside the staging transaction: the run retries after
/// its backoff (and at least `retry_after`, the source's last `Retry-After`), or gives up
/// once it has failed for longer than `give_up_after_ms`. `None` for a stale copy of a
/// dispatch (see [`claim`]), which changes nothing.
pub async fn mark_failed(
    tx: &impl deadpool_postgres::GenericClient,
    config: &Config,
    run: &Run,
    reason: &str,
    retry_after: Option<Duration>,
) -> Result<Option<FailedRun>, StoreError> {
    let Some(row) = tx
        .query_opt(
            "SELECT retries, \
             (extract(epoch FROM now() - coalesce(first_failed_at, now())) * 1000)::float8 \
             FROM runs WHERE run_id = $1 AND status = 'pending' AND attempts = $2 FOR UPDATE",
            &[&run.run_id, &run.attempts],
        )
        .await
        .map_err(Service::Postgres.error("read failing run"))?
    else {
        return Ok(None);
    };
    let retries = row.get::<_, i32>(0).saturating_add(1);
    let failing_ms: f64 = row.get(1);
    let outcome = if config.give_up_after_ms > 0 && failing_ms >= config.give_up_after_ms as f64 {
        FailedRun::GaveUp { retries }
    } else {
        let backoff = config.retry_delay(retries.unsigned_abs(), jitter());
        FailedRun::Retrying {
            retries,
            after: backoff.max(retry_after.unwrap_or_default()),
        }
    };
    let (status, after_ms) = match outcome {
        FailedRun::Retrying { after, .. } => ("retrying", after.as_millis() as f64),
        FailedRun::GaveUp { .. } => ("failed", 0.0),
    };
    tx.execute(
        "UPDATE runs SET status = $2::text, attempts = attempts + 1, retries = $3, last_error = $4, \
         first_failed_at = coalesce(first_failed_at, now()), \
         next_attempt_at = CASE WHEN $2::text = 'retrying' \
                           THEN now() + $5::float8 * interval '1 millisecond' END, \
         updated_at = now() WHERE run_id = $1",
        &[&run.run_id, &status, &retries, &reason, &after_ms],
    )
    .await
    .map_err(Service::Postgres.error("mark run failed"))?;
    Ok(Some(outcome))
}

/// A number in [0, 1) that differs between calls: the retry jitter. Taken from a v4
/// UUID's random bits, which the crate already draws from the OS.
fn jitter() -> f64 {
    (uuid::Uuid::new_v4().as_u64_pair().0 >> 11) as f64 / (1_u64 << 53) as f64
}

/// Which runs `tributary runs retry` re-queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetrySelection {
    /// These runs, if they are failed or retrying.
    Runs(Vec<i64>),
    /// Every failed run.
    AllFailed,
}

/// Queues failed (or retrying) runs for a fetch as soon as there is room, their
/// failure history reset: they become retrying runs due now, which the scheduler
/// dispatches `max_in_flight_runs` at a time. Returns the runs queued; a staged or
/// pending run is left alone.
pub async fn retry(
    client: &impl deadpool_postgres::GenericClient,
    selection: &RetrySelection,
) -> Result<Vec<i64>, StoreError> {
    let (filter, ids): (&str, Vec<i64>) = match selection {
        RetrySelection::Runs(ids) => (
            "run_id = ANY($1) AND status IN ('failed', 'retrying')",
            ids.clone(),
        ),
        RetrySelection::AllFailed => (
            "status = 'failed' AND cardinality($1::bigint[]) = 0",
            Vec::new(),
        ),
    };
    let rows = client
        .query(
            &format!(
                "UPDATE runs SET status = 'retrying', retries = 0, first_failed_at = NULL, \
                 next_attempt_at = now(), updated_at = now() WHERE {filter} RETURNING run_id"
            ),
            &[&ids],
        )
        .await
        .map_err(Service::Postgres.error("re-queue runs"))?;
    let mut queued: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    queued.sort_unstable();
    Ok(queued)
}

/// Runs of the ledger, newest first, optionally of one status.
pub async fn list(
    client: &impl deadpool_postgres::GenericClient,
    status: Option<RunStatus>,
    limit: i64,
) -> Result<Vec<RunRow>, StoreError> {
    let status = status.map(RunStatus::as_str);
    let rows = client
        .query(
            &format!(
                "SELECT {ROW_COLUMNS} FROM runs WHERE ($1::text IS NULL OR status = $1) \
                 ORDER BY run_id DESC LIMIT $2"
            ),
            &[&status, &limit],
        )
        .await
        .map_err(Service::Postgres.error("list runs"))?;
    Ok(rows.iter().map(run_row).collect())
}

/// The ledger at a glance, for the status API and the dashboard. Every count is cheap
/// whatever the ledger's size: unfinished runs through the partial status index, the
/// recent window through the primary key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunsSummary {
    pub pending: u64,
    pub retrying: u64,
    pub failed: u64,
    /// Runs of the last [`RECENT`] of schedule slots.
    pub recent: RecentRuns,
    /// The failed and retrying runs, most recently updated first (at most
    /// [`ATTENTION_LIMIT`]).
    pub attention: Vec<RunRow>,
}

/// Runs scheduled within the recent window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecentRuns {
    pub window_s: u64,
    pub staged: u64,
    /// Runs whose source returned users an earlier run had already staged.
    pub repeated: u64,
    /// The latest of them.
    pub last_repeat: Option<RunRow>,
}

/// The window of [`RecentRuns`].
pub const RECENT: Duration = Duration::from_secs(3_600);
/// Failed and retrying runs listed in a summary.
pub const ATTENTION_LIMIT: i64 = 10;

pub async fn summary(
    client: &impl deadpool_postgres::GenericClient,
    config: &Config,
) -> Result<RunsSummary, StoreError> {
    let counts = client
        .query(
            "SELECT status, count(*) FROM runs WHERE status <> 'staged' GROUP BY status",
            &[],
        )
        .await
        .map_err(Service::Postgres.error("count runs"))?;
    let mut summary = RunsSummary::default();
    for row in &counts {
        let n = row.get::<_, i64>(1).unsigned_abs();
        match RunStatus::parse(row.get(0)) {
            Some(RunStatus::Pending) => summary.pending = n,
            Some(RunStatus::Retrying) => summary.retrying = n,
            Some(RunStatus::Failed) => summary.failed = n,
            Some(RunStatus::Staged) | None => {}
        }
    }
    let since = chrono::Utc::now()
        - chrono::Duration::from_std(RECENT).unwrap_or_else(|_| chrono::Duration::hours(1));
    let first = config.slot_at(since);
    let recent = client
        .query_one(
            "SELECT count(*) FILTER (WHERE status = 'staged'), count(*) FILTER (WHERE repeated_users > 0) \
             FROM runs WHERE run_id >= $1",
            &[&first],
        )
        .await
        .map_err(Service::Postgres.error("count recent runs"))?;
    let last_repeat = client
        .query_opt(
            &format!(
                "SELECT {ROW_COLUMNS} FROM runs WHERE run_id >= $1 AND repeated_users > 0 \
                 ORDER BY run_id DESC LIMIT 1"
            ),
            &[&first],
        )
        .await
        .map_err(Service::Postgres.error("read the last repeat"))?;
    summary.recent = RecentRuns {
        window_s: RECENT.as_secs(),
        staged: recent.get::<_, i64>(0).unsigned_abs(),
        repeated: recent.get::<_, i64>(1).unsigned_abs(),
        last_repeat: last_repeat.as_ref().map(run_row),
    };
    let rows = client
        .query(
            &format!(
                "SELECT {ROW_COLUMNS} FROM runs WHERE status IN ('failed', 'retrying') \
                 ORDER BY updated_at DESC LIMIT $1"
            ),
            &[&ATTENTION_LIMIT],
        )
        .await
        .map_err(Service::Postgres.error("list failing runs"))?;
    summary.attention = rows.iter().map(run_row).collect();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for status in RunStatus::ALL {
            assert_eq!(RunStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(RunStatus::parse("fetching"), None);
    }

    #[test]
    fn jitter_is_a_unit_fraction() {
        for _ in 0..1_000 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j), "{j}");
        }
    }
}
