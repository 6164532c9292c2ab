//! `tributary runs`: the runs ledger for operators — list runs (failed and retrying ones
//! first of all) and re-queue the ones that gave up.

use crate::config::Config;
use crate::exit;
use tributary_actors::ingest::ledger::{self, RetrySelection, RunRow, RunStatus};
use tributary_actors::store::{StoreError, postgres};

async fn client(config: &Config) -> Result<deadpool_postgres::Object, StoreError> {
    let pool = postgres::pool(&config.postgres)?;
    postgres::check(&pool, &config.postgres).await?;
    pool.get().await.map_err(|e| {
        StoreError::request(
            tributary_actors::store::Service::Postgres,
            "no pooled connection",
            e,
        )
    })
}

/// Prints up to `limit` runs, newest first, as a table or JSON (one array).
pub async fn print_list(config: &Config, status: Option<RunStatus>, limit: i64, json: bool) -> i32 {
    let rows = match client(config).await {
        Ok(client) => ledger::list(&client, status, limit).await,
        Err(error) => Err(error),
    };
    let rows = match rows {
        Ok(rows) => rows,
        Err(error) => {
            eprintln!("error: {}", crate::error_chain(&error));
            return exit::for_store_error(&error);
        }
    };
    if json {
        match serde_json::to_string_pretty(&rows) {
            Ok(text) => println!("{text}"),
            Err(error) => {
                eprintln!("error: {error}");
                return exit::FAILURE;
            }
        }
    } else {
        print!("{}", render(&rows));
    }
    exit::OK
}

/// The table `tributary runs` prints.
pub fn render(rows: &[RunRow]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:<8} {:<20} {:<18} {:>5} {:>6} {:>6} {:>8} {:>7} {:<20} last error",
        "run",
        "status",
        "scheduled",
        "seed",
        "page",
        "asked",
        "staged",
        "repeated",
        "retries",
        "next attempt"
    );
    if rows.is_empty() {
        out.push_str("(no runs)\n");
    }
    for run in rows {
        let _ = writeln!(
            out,
            "{:>12} {:<8} {:<20} {:<18} {:>5} {:>6} {:>6} {:>8} {:>7} {:<20} {}",
            run.run_id,
            run.status.as_str(),
            run.scheduled_for.format("%Y-%m-%d %H:%M:%S"),
            run.seed.as_deref().unwrap_or("-"),
            run.page.map_or_else(|| "-".to_owned(), |p| p.to_string()),
            run.requested_users,
            run.staged_users,
            run.repeated_users,
            run.retries,
            run.next_attempt_at.map_or_else(
                || "-".to_owned(),
                |t| t.format("%Y-%m-%d %H:%M:%S").to_string()
            ),
            run.last_error.as_deref().unwrap_or("-"),
        );
    }
    out
}

/// Re-queues runs; exit 0 when every named run was queued (or, with `--failed`, every
/// failed one), 1 when a named run could not be (it is not failed or retrying).
pub async fn retry(config: &Config, selection: RetrySelection) -> i32 {
    let queued = match client(config).await {
        Ok(client) => ledger::retry(&client, &selection).await,
        Err(error) => Err(error),
    };
    let queued = match queued {
        Ok(queued) => queued,
        Err(error) => {
            eprintln!("error: {}", crate::error_chain(&error));
            return exit::for_store_error(&error);
        }
    };
    for run_id in &queued {
        println!("run {run_id} queued: fetched as soon as ingest.max_in_flight_runs leaves room");
    }
    match selection {
        RetrySelection::AllFailed => {
            if queued.is_empty() {
                println!("no failed runs");
            }
            exit::OK
        }
        RetrySelection::Runs(ids) => {
            let left: Vec<i64> = ids.into_iter().filter(|id| !queued.contains(id)).collect();
            for run_id in &left {
                eprintln!(
                    "error: run {run_id} was not queued: it is not failed or retrying \
                     (see `tributary runs`)"
                );
            }
            if left.is_empty() {
                exit::OK
            } else {
                exit::FAILURE
            }
        }
    }
}
