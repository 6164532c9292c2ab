//! Issue 3: source → PostgreSQL → Kafka exactly once, through real `tributary run`
//! processes against the real stack, with crashes and source faults.

use crate::common::{
    Tributary, embedded_source, eventually, isolated_config, isolated_env, sweep_earlier_runs,
};
use std::collections::HashSet;
use std::time::Duration;
use tributary::config::Config;
use tributary::schema;
use tributary::source::Faults;
use tributary::verify::read_committed_keys;
use tributary_actors::publish::checkpoint::read_checkpoint;
use tributary_actors::store::postgres;

/// A bounded workload: `runs` runs of `users` users, one every 100 ms.
pub fn workload(
    config: &Config,
    source_url: &str,
    runs: u64,
    users: u32,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut env = isolated_env(config);
    for (key, value) in [
        ("TRIBUTARY__INGEST__SOURCE_URL", source_url.to_owned()),
        ("TRIBUTARY__INGEST__INTERVAL_MS", "100".into()),
        ("TRIBUTARY__INGEST__USERS_PER_RUN", users.to_string()),
        ("TRIBUTARY__INGEST__MAX_RUNS", runs.to_string()),
        ("TRIBUTARY__PUBLISH__POLL_INTERVAL_MS", "200".into()),
    ] {
        env.push((key.to_owned(), value));
    }
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    env
}

pub async fn prepare(prefix: &str) -> Config {
    // reqwest is built without a default TLS provider (the tests' HTTP clients need one).
    tributary_actors::install_tls_provider();
    sweep_earlier_runs().await;
    let config = isolated_config(prefix);
    schema::apply(&config, &[]).await.expect("schema apply");
    config
}

pub async fn pg(config: &Config) -> deadpool_postgres::Object {
    postgres::pool(&config.postgres)
        .expect("pool")
        .get()
        .await
        .expect("connection")
}

/// (runs finished — staged or failed —, runs in the ledger, highest outbox id).
pub async fn progress(config: &Config) -> (i64, i64, i64) {
    let row = pg(config)
        .await
        .query_one(
            "SELECT count(*) FILTER (WHERE status IN ('staged', 'failed')), count(*), \
             (SELECT coalesce(max(id), 0) FROM staged_users) FROM runs",
            &[],
        )
        .await
        .expect("progress query");
    (row.get(0), row.get(1), row.get(2))
}

/// Waits until every run of the workload is finished and the producer's committed
/// checkpoint has reached the last outbox row.
pub async fn wait_drained(config: &Config, runs: i64, deadline: Duration) {
    let (kafka, topic, id) = (
        config.kafka.clone(),
        config.kafka.topics.checkpoints.name.clone(),
        config.publish.transactional_id.clone(),
    );
    eventually(deadline, || {
        let (kafka, topic, id) = (kafka.clone(), topic.clone(), id.clone());
        async move {
            let (finished, total, last_id) = progress(config).await;
            if finished < runs || total < runs {
                return Err(format!("{finished}/{runs} runs finished"));
            }
            let checkpoint =
                tokio::task::spawn_blocking(move || read_checkpoint(&kafka, &topic, &id))
                    .await
                    .expect("checkpoint task")
                    .map_err(|e| e.to_string())?
                    .map_or(0, |c| c.last_outbox_id);
            if checkpoint < last_id {
                return Err(format!(
                    "checkpoint {checkpoint} < last outbox id {last_id}"
                ));
            }
            Ok(())
        }
    })
    .await
    .unwrap_or_else(|e| panic!("pipeline did not drain: {e}"));
}

/// Every staged user is in Kafka exactly once, and nothing else is.
pub async fn assert_exactly_once(config: &Config) -> usize {
    let staged: HashSet<String> = pg(config)
        .await
        .query("SELECT source_uuid::text FROM staged_users", &[])
        .await
        .expect("staged ids")
        .iter()
        .map(|row| row.get(0))
        .collect();
    let in_kafka = read_committed_keys(&config.kafka, &config.kafka.topics.raw.name)
        .await
        .expect("read the raw topic");
    let missing: Vec<_> = staged
        .iter()
        .filter(|id| !in_kafka.contains_key(*id))
        .take(5)
        .collect();
    let duplicated: Vec<_> = in_kafka.iter().filter(|(_, n)| **n > 1).take(5).collect();
    let unexpected: Vec<_> = in_kafka
        .keys()
        .filter(|id| !staged.contains(*id))
        .take(5)
        .collect();
    assert!(
        missing.is_empty() && duplicated.is_empty() && unexpected.is_empty(),
        "staged {}, in kafka {} distinct; missing e.g. {missing:?}; duplicated e.g. {duplicated:?}; unexpected e.g. {unexpected:?}",
        staged.len(),
        in_kafka.len()
    );
    staged.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_users_arrive_in_kafka_exactly_once() {
    let config = prepare("it_ingest_a").await;
    let (source, _source) = embedded_source(Faults::default());
    let _tributary = Tributary::run("ingest_a", &workload(&config, &source, 20, 1_000, &[]));
    wait_drained(&config, 20, Duration::from_secs(180)).await;
    assert_eq!(assert_exactly_once(&config).await, 20_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_across_producer_crashes_and_sigkill() {
    let config = prepare("it_ingest_b").await;
    let (source, _source) = embedded_source(Faults::default());
    let env = workload(
        &config,
        &source,
        20,
        1_000,
        &[
            ("TRIBUTARY__PUBLISH__BATCH_SIZE", "400"),
            (
                "TRIBUTARY__PUBLISH__TEST_FAULTS__FAIL_BEFORE_COMMIT_EVERY",
                "3",
            ),
            (
                "TRIBUTARY__PUBLISH__TEST_FAULTS__FAIL_AFTER_COMMIT_EVERY",
                "5",
            ),
            ("TRIBUTARY__PUBLISH__SUPERVISION__MAX_RESTARTS", "1000"),
            ("TRIBUTARY__PUBLISH__SUPERVISION__BACKOFF_INITIAL_MS", "10"),
            ("TRIBUTARY__PUBLISH__SUPERVISION__BACKOFF_MAX_MS", "100"),
        ],
    );
    let mut first = Tributary::run("ingest_b_first", &env);
    // Kill it mid-run, once the producer has failed on purpose at least once: staging
    // (1,000 users every 100 ms) runs ahead of a producer that is still starting, so a
    // staging count alone says nothing about the producer's progress.
    eventually(Duration::from_secs(120), || async {
        let (finished, _, _) = progress(&config).await;
        let faulted = first.log_text().contains("injected fault");
        if finished >= 6 && faulted {
            Ok(())
        } else {
            Err((finished, faulted))
        }
    })
    .await
    .expect("the first process stages runs and its producer faults fire");
    first.kill();
    let first_log = first.log_text();

    let second = Tributary::run("ingest_b_second", &env);
    wait_drained(&config, 20, Duration::from_secs(240)).await;
    assert_eq!(assert_exactly_once(&config).await, 20_000);
    let logs = first_log + &second.log_text();
    assert!(
        logs.contains("sent, not committed"),
        "a transaction failed before its commit"
    );
    assert!(
        logs.contains("committed, failing before the next batch"),
        "a producer failed after a commit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_faults_quarantine_bad_records_and_lose_nothing() {
    let config = prepare("it_ingest_c").await;
    let faults = Faults {
        error_rate: 0.2,
        throttle_rate: 0.1,
        retry_after_s: 1,
        truncate_rate: 0.05,
        malformed_rate: 0.05,
        bad_record_rate: 0.02,
        seed: 7,
        ..Faults::default()
    };
    let (source, _source) = embedded_source(faults);
    let env = workload(
        &config,
        &source,
        10,
        500,
        &[
            ("TRIBUTARY__INGEST__FETCH__MAX_ATTEMPTS", "25"),
            ("TRIBUTARY__INGEST__FETCH__BACKOFF_INITIAL_MS", "20"),
            ("TRIBUTARY__INGEST__FETCH__BACKOFF_MAX_MS", "200"),
        ],
    );
    let mut tributary = Tributary::run("ingest_c", &env);
    wait_drained(&config, 10, Duration::from_secs(240)).await;
    let staged = assert_exactly_once(&config).await;

    let client = pg(&config).await;
    let failed: i64 = client
        .query_one("SELECT count(*) FROM runs WHERE status <> 'staged'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(failed, 0, "every run succeeded within its retries");
    let quarantined = client
        .query("SELECT reason, raw FROM quarantine", &[])
        .await
        .expect("quarantine");
    assert!(!quarantined.is_empty(), "bad records were quarantined");
    for row in &quarantined {
        let (reason, raw): (String, Vec<u8>) = (row.get(0), row.get(1));
        assert!(!raw.is_empty(), "quarantined bytes kept");
        assert!(
            [
                "login",
                "dob",
                "email",
                "name",
                "missing field",
                "invalid type"
            ]
            .iter()
            .any(|f| reason.contains(f)),
            "reason names the problem: {reason}"
        );
    }
    // Every record the source returned is accounted for: staged or quarantined.
    assert_eq!(staged + quarantined.len(), 5_000);
    assert!(tributary.is_running(), "nothing crashed the process");
    let log = tributary.log_text();
    assert!(
        log.contains("fetch failed, retrying"),
        "the source's faults were met and retried"
    );
    assert!(!log.contains("child failed"), "no actor failed: {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_fetcher_is_restarted_and_its_run_is_not_lost() {
    let config = prepare("it_ingest_d").await;
    let (source, _source) = embedded_source(Faults::default());
    let env = workload(
        &config,
        &source,
        10,
        500,
        &[("TRIBUTARY__INGEST__TEST_FAULTS__PANIC_ON_FETCH", "3")],
    );
    let tributary = Tributary::run("ingest_d", &env);
    wait_drained(&config, 10, Duration::from_secs(180)).await;
    assert_eq!(assert_exactly_once(&config).await, 5_000);
    let runs: Vec<i64> = pg(&config)
        .await
        .query(
            "SELECT run_id FROM runs WHERE status = 'staged' ORDER BY run_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(runs.len(), 10);
    assert!(
        runs.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive slots, none skipped: {runs:?}"
    );
    let log = tributary.log_text();
    assert!(
        log.contains("injected fault: fetch 3"),
        "the fetcher panicked"
    );
    assert!(
        log.contains("restart scheduled"),
        "its supervisor restarted it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_moves_when_the_leader_is_killed() {
    let config = prepare("it_ingest_e").await;
    let (source, _source) = embedded_source(Faults::default());
    let env = workload(
        &config,
        &source,
        20,
        1_000,
        &[("TRIBUTARY__SUPERVISION__LEADER_RETRY_MS", "200")],
    );
    let mut first = Tributary::run("ingest_e_first", &env);
    eventually(Duration::from_secs(60), || async {
        if first.log_text().contains("leadership acquired") {
            Ok(())
        } else {
            Err(())
        }
    })
    .await
    .expect("the first instance leads");
    let second = Tributary::run("ingest_e_second", &env);
    eventually(Duration::from_secs(120), || async {
        let (finished, _, _) = progress(&config).await;
        if finished >= 5 { Ok(()) } else { Err(finished) }
    })
    .await
    .expect("the leader makes progress");
    assert!(
        !second.log_text().contains("leadership acquired"),
        "only one instance ingests while the leader lives"
    );
    first.kill();
    eventually(Duration::from_secs(60), || async {
        if second.log_text().contains("leadership acquired") {
            Ok(())
        } else {
            Err(())
        }
    })
    .await
    .expect("the second instance takes over");
    wait_drained(&config, 20, Duration::from_secs(240)).await;
    assert_eq!(assert_exactly_once(&config).await, 20_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unparseable_response_is_retried_then_quarantined_with_the_run_failed() {
    let config = prepare("it_ingest_f").await;
    let faults = Faults {
        malformed_rate: 1.0,
        ..Faults::default()
    };
    let (source, _source) = embedded_source(faults);
    let env = workload(
        &config,
        &source,
        2,
        100,
        &[
            ("TRIBUTARY__INGEST__FETCH__MAX_ATTEMPTS", "3"),
            ("TRIBUTARY__INGEST__FETCH__BACKOFF_INITIAL_MS", "10"),
            ("TRIBUTARY__INGEST__FETCH__BACKOFF_MAX_MS", "50"),
            // Runs retry until they have failed for this long, then give up.
            ("TRIBUTARY__INGEST__RETRY_INITIAL_MS", "100"),
            ("TRIBUTARY__INGEST__RETRY_MAX_MS", "200"),
            ("TRIBUTARY__INGEST__GIVE_UP_AFTER_MS", "500"),
        ],
    );
    let mut tributary = Tributary::run("ingest_f", &env);
    eventually(Duration::from_secs(120), || async {
        let (finished, total, _) = progress(&config).await;
        if total >= 2 && finished >= 2 {
            Ok(())
        } else {
            Err(finished)
        }
    })
    .await
    .expect("both runs finish");
    let client = pg(&config).await;
    let rows = client
        .query(
            "SELECT status, attempts, last_error FROM runs ORDER BY run_id",
            &[],
        )
        .await
        .unwrap();
    for row in &rows {
        let (status, attempts, error): (String, i32, Option<String>) =
            (row.get(0), row.get(1), row.get(2));
        assert_eq!(status, "failed");
        assert!(attempts >= 2, "fetched again before giving up: {attempts}");
        assert!(error.unwrap_or_default().contains("after 3 attempt(s)"));
    }
    let quarantined = client
        .query("SELECT reason, raw FROM quarantine", &[])
        .await
        .unwrap();
    assert_eq!(
        quarantined.len(),
        2,
        "one quarantined response per failed run"
    );
    for row in &quarantined {
        let raw: Vec<u8> = row.get(1);
        assert!(
            String::from_utf8_lossy(&raw).contains("upstream proxy error"),
            "the body as received"
        );
    }
    let staged: i64 = client
        .query_one("SELECT count(*) FROM staged_users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(staged, 0);
    assert!(
        tributary.is_running(),
        "failed runs do not crash the process"
    );
}
