//! `tributary demo`: the main job in one command. Serves the embedded source in this
//! process, runs the actor tree on a bounded number of users, shows progress until the
//! pipeline has drained, stops, and prints `verify`'s table.

use std::time::{Duration, Instant};
use tributary_actors::publish::producer::read_checkpoint;
use tributary_actors::store::postgres::{self, query_error};
use tributary_actors::store::{Service, StoreError};

use crate::config::Config;
use crate::{exit, run, source, verify};

/// Longest the demo waits for the pipeline to drain.
const DEADLINE: Duration = Duration::from_secs(600);

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
        .map_err(|e| query_error("read progress", e))?;
    let (kafka, topic, id) = (
        config.kafka.clone(),
        config.kafka.topics.checkpoints.name.clone(),
        config.publish.transactional_id.clone(),
    );
    let checkpoint = tokio::task::spawn_blocking(move || read_checkpoint(&kafka, &topic, &id))
        .await
        .map_err(|e| StoreError::request(Service::Kafka, "checkpoint task failed", false, e))?
        .map_err(|e| {
            StoreError::request(
                Service::Kafka,
                "cannot read the producer checkpoint",
                true,
                e,
            )
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

/// Runs the demo on `users` more users; exit code 0 when verify is clean.
pub async fn demo(config: &Config, users: u64) -> i32 {
    if let Err(error) = run::reach_stores(config).await {
        eprintln!("error: {}", crate::error_chain(&error));
        return exit::for_store_error(&error);
    }
    let listener = match std::net::TcpListener::bind("127.0.0.1:0") {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("error: cannot open a port for the embedded source: {error}");
            return exit::FAILURE;
        }
    };
    let (server, address) = match source::server::serve(&config.source, listener) {
        Ok(served) => served,
        Err(error) => {
            eprintln!("error: cannot start the embedded source: {error}");
            return exit::FAILURE;
        }
    };
    let source_handle = server.handle();
    tokio::spawn(server);

    let probe = match Probe::open(config).await {
        Ok(probe) => probe,
        Err(error) => {
            eprintln!("error: {}", crate::error_chain(&error));
            return exit::for_store_error(&error);
        }
    };
    let before = match progress(config, &probe).await {
        Ok(progress) => progress,
        Err(error) => {
            eprintln!("error: {}", crate::error_chain(&error));
            return exit::for_store_error(&error);
        }
    };
    let mut config = config.clone();
    let per_run = u64::from(config.ingest.users_per_run);
    let runs = before.runs_total + users.div_ceil(per_run) as i64;
    config.ingest.source_url = format!("http://{address}/api/");
    config.ingest.max_runs = runs as u64;
    config.ingest.interval_ms = config.ingest.interval_ms.min(200);
    println!(
        "demo: {users} users in {} runs of {per_run} from the embedded source at {}",
        runs - before.runs_total,
        config.ingest.source_url
    );

    let (root, mut done) =
        match run::start_tree(&config, &crate::status::Observed::new(run::instance_name())).await {
            Ok(started) => started,
            Err(error) => {
                eprintln!("error: the actor tree failed to start: {error}");
                return exit::FAILURE;
            }
        };
    let started = Instant::now();
    let outcome = loop {
        tokio::select! {
            ended = &mut done => {
                break Err(format!("the actor tree stopped: {:?}", ended.unwrap_or(Err("guardian gone".into()))));
            }
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        match progress(&config, &probe).await {
            Ok(p) => {
                println!(
                    "demo: {:>4.0}s  runs {}/{}  staged {}  published {}  in cassandra {}",
                    started.elapsed().as_secs_f64(),
                    p.runs_finished - before.runs_finished,
                    runs - before.runs_total,
                    p.staged - before.staged,
                    p.published_outbox_id.min(p.last_outbox_id)
                        - before.published_outbox_id.min(before.last_outbox_id),
                    p.written - before.written,
                );
                if p.drained(runs) {
                    break Ok(());
                }
            }
            Err(error) => println!("demo: progress unavailable: {}", crate::error_chain(&error)),
        }
        if started.elapsed() > DEADLINE {
            break Err(format!("not drained within {DEADLINE:?}"));
        }
    };
    let _ = root
        .stop_and_wait(Some("demo finished".into()), Some(Duration::from_secs(60)))
        .await;
    source_handle.stop(true).await;
    if let Err(error) = outcome {
        eprintln!("error: demo: {error}");
        return exit::FAILURE;
    }
    println!("demo: drained in {:.1}s\n", started.elapsed().as_secs_f64());
    verify::print(&config, verify::Window::Retained, false).await
}
