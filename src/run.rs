//! `tributary run`: the supervised actor tree.
//!
//! ```text
//! root (one_for_one)            [supervision.root]; giving up exits the process non-zero
//! ├── process (one_for_one)     every instance: coordinator → partition pipelines
//! └── leader                    holds the PostgreSQL advisory lock, then starts:
//!     └── leader duties (one_for_one)        [supervision.leader]
//!         ├── upkeep (one_for_one)           pruner, reconciler
//!         ├── publish (one_for_one)          producer
//!         └── ingest (rest_for_one)          stager, fetchers, scheduler
//! ```
//!
//!
//! Children start downstream first; a graceful shutdown drains them in reverse
//! (upstream first): leader (scheduler stops dispatching, fetchers hand over their pages,
//! the stager stages them, the producer finishes its transaction), then process (the
//! coordinator stops routing and waits until routed records are committed in Cassandra);
//! then the tree stops.

use crate::admin::{AdminState, Readiness};
use crate::status::Observed;
use ractor::rpc::CallResult;
use ractor::{ActorRef, SpawnErr};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tributary_actors::format::Encoder;
use tributary_actors::leader::{Leader, LeaderArgs, LeaderMsg};
use tributary_actors::store::registry::Registry;
use tributary_actors::store::{self, Service, StoreError};
use tributary_actors::supervisor::{
    self, ChildSpec, Drain, SupervisorArgs, SupervisorMsg, TreeOutcome,
};
use tributary_actors::{ingest, process, publish, upkeep};

use crate::config::Config;
use crate::exit;

/// Runs the pipeline until SIGINT/SIGTERM (graceful drain, exit 0) or until supervision
/// gives up (exit 1). Unreachable stores at start-up, or an admin address that cannot be
/// bound, exit 2. `test_faults` enables the admin routes that inject failures.
pub async fn run(config: &Config, test_faults: bool) -> i32 {
    if let Err(code) = check_start(config).await {
        return code;
    }
    let metrics_upkeep = crate::admin::spawn_metrics_upkeep();
    let observed = Observed::new(instance_name());
    let sampler = observed.spawn_sampler();
    let runs_watcher = match store::postgres::pool(&config.postgres) {
        Ok(pool) => {
            observed.spawn_runs_watcher(pool, config.ingest.clone(), config.reconcile.after_ms)
        }
        Err(error) => {
            eprintln!("error: {}", crate::error_chain(&error));
            return exit::for_store_error(&error);
        }
    };
    let admin = match start_admin(config, &observed, test_faults) {
        Ok(admin) => admin,
        Err(code) => return code,
    };
    let (root, done) = match start_tree(config, &observed).await {
        Ok(started) => started,
        Err(error) => {
            eprintln!("error: the actor tree failed to start: {error}");
            return exit::FAILURE;
        }
    };
    tracing::info!(instance = %observed.instance, "tributary running");
    let code = tokio::select! {
        () = crate::shutdown_signal() => shutdown(config, &root).await,
        outcome = done => match outcome {
            Ok(Ok(())) => exit::OK,
            Ok(Err(error)) => {
                tracing::error!(error = %error, "supervision gave up: exiting");
                eprintln!("error: supervision gave up: {error}");
                exit::FAILURE
            }
            Err(_) => exit::FAILURE,
        },
    };
    sampler.abort();
    runs_watcher.abort();
    if let Some(upkeep) = metrics_upkeep {
        upkeep.abort();
    }
    if let Some(admin) = admin {
        admin.stop(true).await;
    }
    code
}

/// Starts the admin server unless `admin.bind` is empty; `Err` carries the exit code.
fn start_admin(
    config: &Config,
    observed: &Observed,
    test_faults: bool,
) -> Result<Option<actix_web::dev::ServerHandle>, i32> {
    if config.admin.bind.is_empty() {
        return Ok(None);
    }
    let token = config.admin.resolve_token().map_err(|error| {
        eprintln!("error: admin.token_file: {error}");
        exit::CONFIG
    })?;
    let listener = std::net::TcpListener::bind(&config.admin.bind).map_err(|error| {
        eprintln!(
            "error: admin.bind: cannot listen on {}: {error}",
            config.admin.bind
        );
        exit::CONFIG
    })?;
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let state = AdminState::new(
        observed.clone(),
        Readiness::new(config.clone()),
        token.clone(),
        crate::telemetry::jaeger::Query::new(&config.telemetry),
    );
    let server = crate::admin::serve(listener, state, test_faults).map_err(|error| {
        eprintln!("error: cannot start the admin server: {error}");
        exit::FAILURE
    })?;
    tracing::info!(
        %address,
        test_faults,
        token = token.is_some(),
        "admin http listening: dashboard at http://{address}/"
    );
    let handle = server.handle();
    tokio::spawn(server);
    Ok(Some(handle))
}

/// Graceful shutdown: drain the tree (the scheduler stops dispatching, fetched pages are
/// staged, the open Kafka transaction commits, routed records are committed in
/// Cassandra), then stop it, all within `supervision.shutdown_deadline_ms`. A second
/// signal stops waiting.
async fn shutdown(config: &Config, root: &ActorRef<SupervisorMsg>) -> i32 {
    let deadline = Duration::from_millis(config.supervision.shutdown_deadline_ms);
    let started = Instant::now();
    tracing::info!(
        deadline_ms = config.supervision.shutdown_deadline_ms,
        "shutdown requested: draining"
    );
    let stopped = async {
        let drained = root
            .call(
                |reply| {
                    SupervisorMsg::Drain(Drain {
                        reply,
                        within: deadline,
                    })
                },
                Some(deadline),
            )
            .await;
        let drained = matches!(drained, Ok(CallResult::Success(())));
        let left = deadline.saturating_sub(started.elapsed());
        let stopped = root
            .stop_and_wait(
                Some("shutdown".into()),
                Some(left.max(Duration::from_millis(1))),
            )
            .await
            .is_ok();
        drained && stopped
    };
    let clean = tokio::select! {
        clean = tokio::time::timeout(deadline, stopped) => clean.unwrap_or(false),
        () = crate::shutdown_signal() => {
            tracing::warn!("second signal: not waiting for the drain");
            false
        }
    };
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let totals = tributary_actors::observe::totals();
    let count = |stage| totals.get(&stage).copied().unwrap_or(0);
    if clean {
        use tributary_actors::observe::Stage;
        tracing::info!(
            elapsed_ms,
            consumed = count(Stage::Consumed),
            written = count(Stage::Written),
            dead_lettered = count(Stage::DeadLettered),
            "drained and stopped"
        );
        exit::OK
    } else {
        tracing::error!(
            elapsed_ms,
            "shutdown did not complete within the deadline: uncommitted work is replayed from the last commit at the next start"
        );
        eprintln!(
            "error: shutdown did not complete within supervision.shutdown_deadline_ms = {}",
            config.supervision.shutdown_deadline_ms
        );
        exit::FAILURE
    }
}

/// Starts the actor tree; the receiver resolves when the tree ends (an error when
/// supervision gave up).
///
/// # Errors
/// The root supervisor cannot start.
pub async fn start_tree(
    config: &Config,
    observed: &Observed,
) -> Result<(ActorRef<SupervisorMsg>, oneshot::Receiver<TreeOutcome>), SpawnErr> {
    let stats = observed.tree.clone();
    // The writers keep the digests of the newest `run_digests_kept` runs: fewer than the
    // runs scheduled within the reconcile deadline, and a slow run's digest could be gone
    // before its verdict (it would be reported missing).
    let kept_ms = config.ingest.interval_ms as u128 * config.process.run_digests_kept as u128;
    if config.reconcile.enabled && kept_ms < u128::from(config.reconcile.deadline_ms) {
        tracing::warn!(
            kept_ms = kept_ms as u64,
            deadline_ms = config.reconcile.deadline_ms,
            "process.run_digests_kept × ingest.interval_ms is shorter than reconcile.deadline_ms: \
             raise process.run_digests_kept"
        );
    }
    // Downstream first, like every supervisor's children: drains run in reverse.
    let upkeep = upkeep::UpkeepArgs {
        retention: config.retention.clone(),
        reconcile: config.reconcile.clone(),
        postgres: config.postgres.clone(),
        kafka: config.kafka.clone(),
        cassandra: config.cassandra.clone(),
        transactional_id: config.publish.transactional_id.clone(),
        group_id: config.process.group_id.clone(),
    };
    let duties = vec![
        upkeep::supervisor_spec(&upkeep, &stats),
        publish::supervisor_spec(&config.publish, &config.kafka, &config.postgres, &stats),
        ingest::supervisor_spec(&config.ingest, &config.postgres, &stats),
    ];
    let leader_args = {
        let (postgres, policy, stats) = (
            config.postgres.clone(),
            config.supervision.leader.clone(),
            stats.clone(),
        );
        let retry = Duration::from_millis(config.supervision.leader_retry_ms);
        move || LeaderArgs {
            postgres: postgres.clone(),
            retry,
            duties: duties.clone(),
            policy: policy.clone(),
            stats: stats.clone(),
        }
    };
    let leader = ChildSpec::actor("leader", Leader, leader_args)
        .with_ping::<LeaderMsg>()
        .with_drain::<LeaderMsg>();
    let process = process::supervisor_spec(
        &config.process,
        &config.kafka,
        &config.cassandra,
        &observed.instance,
        &stats,
        &observed.partitions,
        &observed.consumption,
    );
    supervisor::spawn_root(SupervisorArgs {
        name: "root".into(),
        policy: config.supervision.root.clone(),
        children: vec![process, leader],
        stats,
    })
    .await
}

/// This instance's name: recorded as the owner of the partitions it writes.
pub fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}-{}", std::process::id())
}

/// Fails with the unreachable store, for exit code 2.
pub async fn reach_stores(config: &Config) -> Result<(), StoreError> {
    let pool = store::postgres::pool(&config.postgres)?;
    store::postgres::check(&pool, &config.postgres).await?;
    store::kafka::check(&config.kafka).await?;
    store::cassandra::connect(&config.cassandra).await?;
    Ok(())
}

/// Whether PostgreSQL said the ledger's table (or schema) does not exist.
fn schema_missing(error: &StoreError) -> bool {
    use tokio_postgres::error::SqlState;
    std::error::Error::source(error)
        .and_then(|cause| cause.downcast_ref::<tokio_postgres::Error>())
        .and_then(tokio_postgres::Error::code)
        .is_some_and(|code| *code == SqlState::UNDEFINED_TABLE)
}

/// The stores answer, the schema was applied, the runs ledger was scheduled on this
/// configuration's slots (`ledger::schedule_drift`) and, for Avro, tributary's schema
/// is registered. An exit code when not, after saying why: 2 for an unreachable store,
/// a missing schema, a schedule that changed under the ledger or an unregistered
/// record schema.
pub async fn check_start(config: &Config) -> Result<(), i32> {
    let store_error = |error: StoreError| {
        eprintln!("error: {}", crate::error_chain(&error));
        exit::for_store_error(&error)
    };
    reach_stores(config).await.map_err(store_error)?;
    let pool = store::postgres::pool(&config.postgres).map_err(store_error)?;
    let client = pool.get().await.map_err(|e| {
        store_error(StoreError::request(
            Service::Postgres,
            "no pooled connection",
            e,
        ))
    })?;
    match tributary_actors::ingest::ledger::schedule_drift(&client, &config.ingest).await {
        Ok(None) => {}
        Ok(Some(why)) => {
            eprintln!("error: {why}");
            return Err(exit::CONFIG);
        }
        Err(error) if schema_missing(&error) => {
            eprintln!(
                "error: {}\nhint: postgres.schema {:?} has no runs ledger: run `tributary schema apply` first",
                crate::error_chain(&error),
                config.postgres.schema
            );
            return Err(exit::CONFIG);
        }
        Err(error) => return Err(store_error(error)),
    }
    // The producer asks the same at every start; asked here, a schema that was never
    // registered is a set-up error before anything starts, not a restarting producer.
    let registry = Registry::new(&config.kafka.registry).map_err(store_error)?;
    let kafka = &config.kafka;
    Encoder::new(
        kafka.record_format,
        registry.as_ref(),
        &kafka.topics.raw.name,
    )
    .await
    .map(drop)
    .map_err(|why| {
        eprintln!("error: {why}");
        exit::CONFIG
    })
}
