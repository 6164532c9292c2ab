//! `tributary verify`: compares what was staged in PostgreSQL with what Kafka holds
//! (read_committed) and what Cassandra holds, run by run, and Cassandra's aggregates
//! with everything staged.
//!
//! Memory is bounded by the number of runs checked, not by the records: each store's
//! side of a run is a digest (count and XOR of the ids, [`Digest`]) — recorded at
//! staging, folded from a scan of the topic, read from Cassandra (a scan of
//! `created_users` for a whole check, the index on `run_id` for a window). Only runs
//! whose digests differ are read again by id, to name the missing, duplicated and
//! unexpected users ([`drill`]).

mod drill;
mod kafka;
mod report;
mod window;

pub use kafka::read_committed_keys;
pub use report::{Report, Samples};
pub use window::{Window, parse_runs, parse_since};

use futures::StreamExt;
use rdkafka::Message;
use std::collections::{BTreeMap, HashMap, HashSet};
use tributary_actors::format::headers;
use tributary_actors::model::Digest;
use tributary_actors::store::postgres;
use tributary_actors::store::{Service, StoreError, cassandra};
use tributary_actors::upkeep::readback;

use crate::config::Config;

/// How many example ids each finding lists.
const SAMPLE: usize = 5;
/// Differing runs whose users are named (each is read again by id); the others are
/// counted from their digests.
const DRILL_RUNS: usize = 20;
/// Records without a run (not written by tributary) kept by id for the drill-down;
/// past this many they are only counted.
const UNATTRIBUTED_IDS: usize = 100_000;

/// Runs verify and prints its report (a table, or JSON); the exit code is 0 only when
/// everything matches. Shared by `tributary verify` and `tributary demo`.
pub async fn print(config: &Config, window: Window, json: bool) -> i32 {
    match verify_window(config, window).await {
        Ok(report) => {
            if json {
                match serde_json::to_string_pretty(&report) {
                    Ok(text) => println!("{text}"),
                    Err(error) => {
                        eprintln!("error: cannot encode the report: {error}");
                        return crate::exit::FAILURE;
                    }
                }
            } else {
                println!("{report}");
            }
            if report.is_clean() {
                crate::exit::OK
            } else {
                crate::exit::FAILURE
            }
        }
        Err(error) => {
            eprintln!("error: verify: {}", crate::error_chain(&error));
            crate::exit::for_store_error(&error)
        }
    }
}

/// Checks everything retained.
///
/// # Errors
/// A store cannot be reached or read.
pub async fn verify(config: &Config) -> Result<Report, StoreError> {
    verify_window(config, Window::Retained).await
}

/// One run as each store holds it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RunSides {
    pub staged: Digest,
    /// Its outbox rows are still there (its users can be named).
    pub ids_retained: bool,
    /// Scheduled before the raw topic's retention: Kafka may have deleted its records,
    /// so only PostgreSQL and Cassandra are compared.
    pub past_kafka_retention: bool,
    pub kafka: Digest,
    pub cassandra: Digest,
}

/// What a scan found that no checked run claims.
#[derive(Debug, Default)]
pub(crate) struct Unclaimed {
    /// Records (or rows) without a run, by id while there are few.
    pub ids: Vec<uuid::Uuid>,
    pub count: u64,
}

impl Unclaimed {
    fn add(&mut self, id: uuid::Uuid) {
        self.count += 1;
        if self.ids.len() < UNATTRIBUTED_IDS {
            self.ids.push(id);
        }
    }
}

/// Builds the report for `window`.
///
/// # Errors
/// A store cannot be reached or read.
pub async fn verify_window(config: &Config, window: Window) -> Result<Report, StoreError> {
    let client = postgres::connect(&config.postgres).await?;
    let mut runs = staged_digests(&client, window, raw_retention_ms(config)).await?;
    let quarantined: i64 = client
        .query_one("SELECT count(*) FROM quarantine", &[])
        .await
        .map_err(Service::Postgres.error("count quarantine"))?
        .get(0);
    let oldest = runs.keys().next().copied();

    // The DLQ first: poison records, one per user and run however often they were
    // written; their keys account for raw records no run claims (a foreign producer's).
    let wanted: HashSet<i64> = runs.keys().copied().collect();
    let (dead_by_run, dead_keys) = kafka::scan(
        &config.kafka,
        &config.kafka.topics.dlq.name,
        (
            HashMap::<i64, HashSet<uuid::Uuid>>::new(),
            HashSet::<Vec<u8>>::new(),
        ),
        move |(by_run, keys): &mut (HashMap<i64, HashSet<uuid::Uuid>>, HashSet<Vec<u8>>),
              message| {
            if let Some(key) = message.key() {
                keys.insert(key.to_vec());
            }
            if let (Some(run), Some(id)) = (headers::run_id(message), headers::user_id(message))
                && wanted.contains(&run)
            {
                by_run.entry(run).or_default().insert(id);
            }
        },
    )
    .await?;

    // The raw topic: each record folded into its run's digest.
    struct KafkaFold {
        runs: HashMap<i64, Digest>,
        unclaimed: Unclaimed,
        records: u64,
    }
    let wanted: HashSet<i64> = runs.keys().copied().collect();
    let retained = window == Window::Retained;
    let poison = dead_keys.clone();
    let fold = kafka::scan(
        &config.kafka,
        &config.kafka.topics.raw.name,
        KafkaFold {
            runs: HashMap::new(),
            unclaimed: Unclaimed::default(),
            records: 0,
        },
        move |fold: &mut KafkaFold, message| {
            let run = headers::run_id(message);
            match (run, headers::user_id(message)) {
                (Some(run), Some(id)) if wanted.contains(&run) => {
                    fold.records += 1;
                    fold.runs.entry(run).or_default().add(id);
                }
                // A window checks its runs only; a run the ledger pruned (older than
                // every retained one) is out of scope.
                _ if !retained => {}
                (Some(run), _) if oldest.is_some_and(|oldest| run < oldest) => {}
                // Poison from outside tributary, accounted for in the DLQ.
                _ if message.key().is_some_and(|k| poison.contains(k)) => fold.records += 1,
                (_, Some(id)) => {
                    fold.records += 1;
                    fold.unclaimed.add(id);
                }
                (_, None) => {
                    fold.records += 1;
                    fold.unclaimed.count += 1;
                }
            }
        },
    )
    .await?;
    for (run, digest) in &fold.runs {
        if let Some(sides) = runs.get_mut(run) {
            sides.kafka = *digest;
        }
    }
    for sides in runs.values_mut().filter(|s| s.past_kafka_retention) {
        // Not checked against Kafka: what is left of it there is not the run.
        sides.kafka = sides.staged;
    }

    // Cassandra: a scan for a whole check (it also finds rows no run claims), the
    // index on run_id for a window.
    let session = cassandra::connect(&config.cassandra).await?;
    let keyspace = &config.cassandra.keyspace;
    let mut unclaimed_rows = Unclaimed::default();
    let mut legacy_rows = 0;
    if retained {
        let mut rows = session
            .query_iter(
                cassandra::idempotent(format!("SELECT id, run_id FROM {keyspace}.created_users")),
                (),
            )
            .await
            .map_err(|e| StoreError::request(Service::Cassandra, "scan created_users", e))?
            .rows_stream::<(uuid::Uuid, Option<i64>)>()
            .map_err(|e| {
                StoreError::request(Service::Cassandra, "unexpected created_users rows", e)
            })?;
        while let Some(row) = rows.next().await {
            let (id, run) =
                row.map_err(|e| StoreError::request(Service::Cassandra, "scan created_users", e))?;
            match run.and_then(|r| runs.get_mut(&r).map(|s| (r, s))) {
                Some((_, sides)) => sides.cassandra.add(id),
                None if run.is_some_and(|r| oldest.is_some_and(|o| r < o)) => {}
                // Written before rows carried their run (schema before run_id).
                None if run.is_none() => legacy_rows += 1,
                None => unclaimed_rows.add(id),
            }
        }
    } else {
        let ids: Vec<i64> = runs.keys().copied().collect();
        let digests: Vec<Result<(i64, Digest), StoreError>> = futures::stream::iter(ids)
            .map(|run| {
                let session = &session;
                async move {
                    readback::cassandra_run(session, keyspace, run)
                        .await
                        .map(|d| (run, d))
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        for result in digests {
            let (run, digest) = result?;
            if let Some(sides) = runs.get_mut(&run) {
                sides.cassandra = digest;
            }
        }
    }

    let mut report = Report {
        window: window.to_string(),
        runs: runs.len() as u64,
        quarantined: quarantined.unsigned_abs(),
        in_dlq: dead_keys.len() as u64,
        ..Report::default()
    };
    let mut differing = Vec::new();
    report.runs_past_kafka_retention =
        runs.values().filter(|s| s.past_kafka_retention).count() as u64;
    for (run, sides) in &runs {
        report.staged += sides.staged.count;
        report.kafka_records += sides.kafka.count;
        report.in_cassandra += sides.cassandra.count;
        let dead: Digest = dead_by_run
            .get(run)
            .map(|ids| ids.iter().copied().collect())
            .unwrap_or_default();
        if sides.kafka == sides.staged && sides.cassandra == sides.staged.without(dead) {
            report.in_kafka += sides.kafka.count;
        } else {
            differing.push(*run);
        }
    }
    report.kafka_records += fold.unclaimed.count;
    report.in_cassandra += unclaimed_rows.count + legacy_rows;
    report.legacy_rows = legacy_rows;
    report.runs_differing = differing.len() as u64;
    report.samples.runs = differing.iter().take(SAMPLE).copied().collect();
    drill::name_users(
        config,
        &session,
        &runs,
        &differing,
        &dead_by_run,
        &fold.unclaimed,
        &unclaimed_rows,
        &mut report,
    )
    .await?;

    if retained {
        let partitions = 0..config.kafka.topics.raw.partitions;
        let progress = readback::cassandra_progress(
            &session,
            keyspace,
            &config.kafka.topics.raw.name,
            partitions,
        )
        .await?;
        let staged = readback::staged_aggregates(&client).await?;
        report.aggregate_errors =
            readback::aggregate_differences(&readback::totals(&progress), &staged);
    }
    Ok(report)
}

/// Every run of `window` with its staged digest: from its outbox rows while they are
/// there (any status: a run with staged users counts), else from the digest sealed at
/// staging.
async fn staged_digests(
    client: &tokio_postgres::Client,
    window: Window,
    kafka_retention_ms: f64,
) -> Result<BTreeMap<i64, RunSides>, StoreError> {
    let (from, to, since_ms) = match window {
        Window::Runs(a, b) => (a, b, 0.0),
        Window::Since(d) => (0, 0, d.as_millis() as f64),
        Window::Retained => (0, 0, 0.0),
    };
    let (filter, mut params): (&str, Vec<&(dyn tokio_postgres::types::ToSql + Sync)>) = match window
    {
        Window::Retained => ("TRUE", vec![]),
        Window::Runs(..) => ("r.run_id BETWEEN $1 AND $2", vec![&from, &to]),
        Window::Since(_) => (
            "r.scheduled_for >= now() - $1 * interval '1 millisecond'",
            vec![&since_ms],
        ),
    };
    let outbox_filter = if window == Window::Retained {
        "TRUE".to_owned()
    } else {
        format!("run_id IN (SELECT r.run_id FROM runs r WHERE {filter})")
    };
    params.push(&kafka_retention_ms);
    let retention = format!("${}", params.len());
    let rows = client
        .query(
            &format!(
                "WITH outbox AS (SELECT run_id, count(*) AS n, bit_xor(uuid_fold64(source_uuid)) AS x \
                 FROM staged_users WHERE {outbox_filter} GROUP BY run_id) \
                 SELECT r.run_id, \
                 coalesce(CASE WHEN r.digest_xor IS NULL THEN o.n ELSE r.staged_users END, 0), \
                 coalesce(r.digest_xor, o.x, 0), \
                 o.n IS NOT NULL AND (r.digest_xor IS NULL OR o.n = r.staged_users), \
                 r.scheduled_for < now() - {retention} * interval '1 millisecond' \
                 FROM runs r LEFT JOIN outbox o USING (run_id) \
                 WHERE {filter} AND (o.n IS NOT NULL OR r.status = 'staged')"
            ),
            &params,
        )
        .await
        .map_err(Service::Postgres.error("read staged digests"))?;
    Ok(rows
        .iter()
        .map(|row| {
            (
                row.get::<_, i64>(0),
                RunSides {
                    staged: Digest {
                        count: row.get::<_, i64>(1).unsigned_abs(),
                        xor: row.get(2),
                    },
                    ids_retained: row.get(3),
                    past_kafka_retention: row.get(4),
                    ..RunSides::default()
                },
            )
        })
        .collect())
}

/// How long the raw topic keeps records (`kafka.topics.raw.config."retention.ms"`;
/// Kafka's default of 7 days when not set; forever for -1).
fn raw_retention_ms(config: &Config) -> f64 {
    match config
        .kafka
        .topics
        .raw
        .config
        .get("retention.ms")
        .map(|v| v.parse::<i64>())
    {
        Some(Ok(ms)) if ms < 0 => f64::MAX,
        Some(Ok(ms)) => ms as f64,
        _ => 7.0 * 86_400_000.0,
    }
}

/// The aggregates committed in partition_state, summed over the topic's partitions.
///
/// # Errors
/// Cassandra cannot be read.
pub async fn cassandra_aggregates(
    session: &scylla::client::session::Session,
    keyspace: &str,
    topic: &str,
    partitions: i32,
) -> Result<BTreeMap<String, i64>, StoreError> {
    let progress = readback::cassandra_progress(session, keyspace, topic, 0..partitions).await?;
    Ok(readback::totals(&progress))
}

fn push_sample(samples: &mut Vec<String>, id: &str) {
    if samples.len() < SAMPLE {
        samples.push(id.to_owned());
    }
}
