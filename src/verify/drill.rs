//! Naming the users of runs whose digests differ: their staged ids, read again from the
//! outbox, against the topic and Cassandra by id. Bounded: at most [`super::DRILL_RUNS`]
//! runs (plus what no run claims); the rest are counted from their digests.

use super::{RunSides, Unclaimed, kafka, push_sample};
use crate::config::Config;
use futures::StreamExt;
use scylla::client::session::Session;
use std::collections::{BTreeMap, HashMap, HashSet};
use tributary_actors::format::headers;
use tributary_actors::store::postgres;
use tributary_actors::store::{Service, StoreError, cassandra};

/// Fills `report`'s missing, duplicated and unexpected counts and samples.
#[allow(clippy::too_many_arguments)]
pub(super) async fn name_users(
    config: &Config,
    session: &Session,
    runs: &BTreeMap<i64, RunSides>,
    differing: &[i64],
    dead_by_run: &HashMap<i64, HashSet<uuid::Uuid>>,
    unclaimed_records: &Unclaimed,
    unclaimed_rows: &Unclaimed,
    report: &mut super::Report,
) -> Result<(), StoreError> {
    // Runs read again from Kafka by id (duplicates named); of those, the ones whose
    // outbox rows are still there also get their missing users named.
    let drilled: Vec<i64> = differing.iter().copied().take(super::DRILL_RUNS).collect();
    let named: Vec<i64> = drilled
        .iter()
        .copied()
        .filter(|r| runs.get(r).is_some_and(|s| s.ids_retained))
        .collect();
    // The rest: what the digests alone say.
    let mut not_named = 0;
    for run in differing.iter().filter(|r| !named.contains(r)) {
        not_named += 1;
        let sides = runs.get(run).copied().unwrap_or_default();
        let dead = dead_by_run.get(run).map_or(0, |d| d.len() as u64);
        report.missing_in_kafka += sides.staged.count.saturating_sub(sides.kafka.count);
        report.missing_in_cassandra += sides
            .staged
            .count
            .saturating_sub(dead)
            .saturating_sub(sides.cassandra.count);
        report.missing += sides
            .staged
            .count
            .saturating_sub(sides.kafka.count.min(sides.cassandra.count + dead));
        if !drilled.contains(run) {
            report.duplicated += sides.kafka.count.saturating_sub(sides.staged.count);
        }
        report.in_kafka += sides.kafka.count.min(sides.staged.count);
    }
    report.runs_not_named = not_named;
    if drilled.is_empty() && unclaimed_records.count == 0 && unclaimed_rows.count == 0 {
        return Ok(());
    }

    // The named runs' staged users.
    let client = postgres::connect(&config.postgres).await?;
    let staged: HashSet<uuid::Uuid> = client
        .query(
            "SELECT source_uuid FROM staged_users WHERE run_id = ANY($1)",
            &[&named],
        )
        .await
        .map_err(Service::Postgres.error("read staged users of differing runs"))?
        .iter()
        .map(|r| r.get(0))
        .collect();

    // The topic again, by id, for those runs and for what no run claims.
    let watched = staged.clone();
    let wanted: HashSet<i64> = drilled.iter().copied().collect();
    let unclaimed: HashSet<uuid::Uuid> = unclaimed_records.ids.iter().copied().collect();
    let seen = kafka::scan(
        &config.kafka,
        &config.kafka.topics.raw.name,
        HashMap::<uuid::Uuid, (u64, Option<i64>)>::new(),
        move |seen, message| {
            let Some(id) = headers::user_id(message) else {
                return;
            };
            let run = headers::run_id(message);
            if watched.contains(&id)
                || run.is_some_and(|r| wanted.contains(&r))
                || unclaimed.contains(&id)
            {
                let entry = seen.entry(id).or_insert((0, run));
                entry.0 += 1;
            }
        },
    )
    .await?;

    // Cassandra's rows of those runs, and the unclaimed rows.
    let keyspace = &config.cassandra.keyspace;
    let mut rows: HashSet<uuid::Uuid> = HashSet::new();
    let fetched: Vec<Result<Vec<uuid::Uuid>, StoreError>> = futures::stream::iter(named.clone())
        .map(|run| async move { run_ids(session, keyspace, run).await })
        .buffer_unordered(8)
        .collect()
        .await;
    for ids in fetched {
        rows.extend(ids?);
    }
    rows.extend(unclaimed_rows.ids.iter().copied());

    let dead: HashSet<uuid::Uuid> = named
        .iter()
        .filter_map(|r| dead_by_run.get(r))
        .flatten()
        .copied()
        .collect();
    for id in &staged {
        let in_kafka = seen.get(id).map_or(0, |(n, _)| *n);
        let in_cassandra = rows.contains(id) || dead.contains(id);
        if in_kafka == 0 {
            report.missing_in_kafka += 1;
        }
        if !in_cassandra {
            report.missing_in_cassandra += 1;
        }
        if in_kafka == 0 || !in_cassandra {
            report.missing += 1;
            push_sample(&mut report.samples.missing, &id.to_string());
        }
        if in_kafka > 0 {
            report.in_kafka += 1;
        }
    }
    // Ids of drilled runs whose staged users are pruned: only duplicates can be named.
    let unnamed_runs: HashSet<i64> = drilled
        .iter()
        .copied()
        .filter(|r| !named.contains(r))
        .collect();
    for (id, (n, run)) in &seen {
        if *n > 1 {
            report.duplicated += 1;
            push_sample(&mut report.samples.duplicated, &id.to_string());
        }
        if !staged.contains(id) && !run.is_some_and(|r| unnamed_runs.contains(&r)) {
            report.unexpected += 1;
            report.in_kafka += 1;
            push_sample(&mut report.samples.unexpected, &id.to_string());
        }
    }
    // Unclaimed records past the bound kept by id: unexpected, counted.
    report.unexpected += unclaimed_records.count - unclaimed_records.ids.len() as u64;
    for id in rows
        .iter()
        .filter(|id| !staged.contains(id) && !seen.contains_key(id))
    {
        report.unexpected += 1;
        push_sample(&mut report.samples.unexpected, &id.to_string());
    }
    report.unexpected += unclaimed_rows.count - unclaimed_rows.ids.len() as u64;
    Ok(())
}

/// The ids of a run's rows in Cassandra (through the index on run_id).
async fn run_ids(
    session: &Session,
    keyspace: &str,
    run: i64,
) -> Result<Vec<uuid::Uuid>, StoreError> {
    let mut rows = session
        .query_iter(
            cassandra::idempotent(format!(
                "SELECT id FROM {keyspace}.created_users WHERE run_id = ?"
            )),
            (run,),
        )
        .await
        .map_err(|e| StoreError::request(Service::Cassandra, "read a run's rows", e))?
        .rows_stream::<(uuid::Uuid,)>()
        .map_err(|e| StoreError::request(Service::Cassandra, "unexpected created_users rows", e))?;
    let mut ids = Vec::new();
    while let Some(row) = rows.next().await {
        ids.push(
            row.map_err(|e| StoreError::request(Service::Cassandra, "read a run's rows", e))?
                .0,
        );
    }
    Ok(ids)
}
