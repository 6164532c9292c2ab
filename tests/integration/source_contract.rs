//! Issue 13: the source contract of the real randomuser.me API, through real
//! `tributary run` processes against the real stack: runs map onto pages the API
//! serves, a response for another page is never staged, no run is lost to an outage,
//! and an operator can re-queue runs that gave up.

use crate::common::{SourceAt, Tributary, embedded_source, eventually};
use crate::ingest::{assert_exactly_once, pg, prepare, wait_drained, workload};
use crate::observe::{get_text, sample, status};
use crate::process::wait_verified;
use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;
use tributary::config::Config;

/// (run id, status, seed, page, staged users, repeated users, last error), by run id.
type LedgerRow = (
    i64,
    String,
    Option<String>,
    Option<i32>,
    i32,
    i32,
    Option<String>,
);

async fn ledger(config: &Config) -> Vec<LedgerRow> {
    pg(config)
        .await
        .query(
            "SELECT run_id, status, seed, page, staged_users, repeated_users, last_error \
             FROM runs ORDER BY run_id",
            &[],
        )
        .await
        .expect("read the runs ledger")
        .iter()
        .map(|r| {
            (
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
                r.get(6),
            )
        })
        .collect()
}

/// `tributary <args>` with the test's environment.
fn cli(args: &[&str], env: &[(String, String)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tributary"));
    command.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("tributary runs")
}

/// An embedded source that serves three pages per seed, running.
fn three_page_source() -> (SourceAt, actix_web::dev::ServerHandle) {
    let source = SourceAt::reserve(tributary::source::Config {
        max_page: 3,
        ..tributary::source::Config::default()
    });
    let running = source.start();
    (source, running)
}

/// Fetch rounds of two quick attempts, runs retried every 100–200 ms and given up
/// after 300 ms of failing: a run that cannot be fetched gives up within a second.
const QUICK_GIVE_UP: [(&str, &str); 6] = [
    ("TRIBUTARY__INGEST__FETCH__MAX_ATTEMPTS", "2"),
    ("TRIBUTARY__INGEST__FETCH__BACKOFF_INITIAL_MS", "10"),
    ("TRIBUTARY__INGEST__FETCH__BACKOFF_MAX_MS", "20"),
    ("TRIBUTARY__INGEST__RETRY_INITIAL_MS", "100"),
    ("TRIBUTARY__INGEST__RETRY_MAX_MS", "200"),
    ("TRIBUTARY__INGEST__GIVE_UP_AFTER_MS", "300"),
];

/// The source serves three pages per seed, and so does tributary's mapping: eight runs
/// need three seeds, and every run's users are new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_runs_than_pages_roll_the_seed_and_repeat_nothing() {
    let config = prepare("it_src_a").await;
    let (source, _running) = three_page_source();
    let env = workload(
        &config,
        &source.url(),
        8,
        200,
        &[("TRIBUTARY__INGEST__MAX_PAGE", "3")],
    );
    let tributary = Tributary::run("source_a", &env);
    wait_drained(&config, 8, Duration::from_secs(180)).await;
    assert_eq!(
        assert_exactly_once(&config).await,
        1_600,
        "every run's users staged"
    );

    let runs = ledger(&config).await;
    let pages: BTreeSet<(String, i32)> = runs
        .iter()
        .map(|(_, _, seed, page, ..)| (seed.clone().unwrap(), page.unwrap()))
        .collect();
    assert_eq!(pages.len(), 8, "no two runs share a page: {runs:?}");
    assert!(
        pages.iter().all(|(_, page)| (1..=3).contains(page)),
        "{pages:?}"
    );
    let seeds: BTreeSet<&String> = pages.iter().map(|(seed, _)| seed).collect();
    assert!(
        seeds.len() >= 3,
        "eight runs over three pages roll the seed: {seeds:?}"
    );
    for (run_id, status, _, _, staged, repeated, _) in &runs {
        assert_eq!(status, "staged", "run {run_id}");
        assert_eq!(
            (*staged, *repeated),
            (200, 0),
            "run {run_id}: new users only"
        );
    }
    assert!(
        !tributary.log_text().contains("source repeated"),
        "no repeat was reported"
    );
}

/// tributary asks for pages the source does not serve (max_page 10 against a source of
/// 3): the source answers page 1, as the real API does past page 10,000. Nothing of such
/// a response is staged, the run is retried, then gives up, and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_for_another_page_is_never_staged() {
    let config = prepare("it_src_c").await;
    let (source, _running) = three_page_source();
    let mut extra = QUICK_GIVE_UP.to_vec();
    extra.extend([
        ("TRIBUTARY__INGEST__MAX_PAGE", "10"),
        ("TRIBUTARY__INGEST__MAX_IN_FLIGHT_RUNS", "10"),
    ]);
    let env = workload(&config, &source.url(), 10, 50, &extra);
    let _tributary = Tributary::run("source_c", &env);
    eventually(Duration::from_secs(120), || async {
        let runs = ledger(&config).await;
        let finished = runs
            .iter()
            .filter(|r| r.1 == "staged" || r.1 == "failed")
            .count();
        if runs.len() == 10 && finished == 10 {
            Ok(())
        } else {
            Err(format!("{finished} of {} runs finished", runs.len()))
        }
    })
    .await
    .expect("every run is staged or gives up");

    let runs = ledger(&config).await;
    for (run_id, status, _, page, staged, repeated, error) in &runs {
        let page = page.unwrap();
        if page <= 3 {
            assert_eq!(
                (status.as_str(), *staged),
                ("staged", 50),
                "run {run_id} page {page}"
            );
        } else {
            assert_eq!(
                (status.as_str(), *staged),
                ("failed", 0),
                "run {run_id} page {page}"
            );
            let error = error.clone().unwrap_or_default();
            assert!(
                error.contains(&format!("info.page 1 (asked {page})")),
                "run {run_id}: {error}"
            );
        }
        assert_eq!(*repeated, 0, "run {run_id}: page 1 was never staged twice");
    }
    let client = pg(&config).await;
    let outside: i64 = client
        .query_one(
            "SELECT count(*) FROM staged_users s JOIN runs r USING (run_id) WHERE r.page > 3",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(outside, 0, "no user of a mismatched response was staged");
    let staged_runs = runs.iter().filter(|r| r.1 == "staged").count() as i64;
    let staged: i64 = client
        .query_one("SELECT count(*) FROM staged_users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(staged, staged_runs * 50);
    let quarantined: i64 = client
        .query_one(
            "SELECT count(DISTINCT run_id) FROM quarantine WHERE reason LIKE '%does not match its request%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        quarantined,
        10 - staged_runs,
        "each run that gave up kept its last response"
    );
}

/// The source is down for 60 s in the middle of a workload (longer than a fetch's
/// retries): runs wait and retry, none is skipped or left failed, and everything
/// arrives in Cassandra exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sixty_second_source_outage_loses_no_run() {
    let config = prepare("it_src_b").await;
    let source = SourceAt::reserve(tributary::source::Config::default());
    let running = source.start();
    let env = workload(
        &config,
        &source.url(),
        20,
        500,
        &[
            ("TRIBUTARY__INGEST__INTERVAL_MS", "1000"),
            ("TRIBUTARY__INGEST__RETRY_INITIAL_MS", "1000"),
            ("TRIBUTARY__INGEST__RETRY_MAX_MS", "5000"),
        ],
    );
    let tributary = Tributary::run("source_b", &env);
    eventually(Duration::from_secs(120), || async {
        let staged = ledger(&config)
            .await
            .iter()
            .filter(|r| r.1 == "staged")
            .count();
        if staged >= 5 { Ok(()) } else { Err(staged) }
    })
    .await
    .expect("runs are staged before the outage");
    running.stop(false).await;
    let outage = std::time::Instant::now();
    // Past a whole fetch round (6 attempts, backoff up to 5 s): runs fail and wait.
    eventually(Duration::from_secs(60), || async {
        let retrying = ledger(&config)
            .await
            .iter()
            .filter(|r| r.1 == "retrying")
            .count();
        if retrying > 0 { Ok(()) } else { Err(()) }
    })
    .await
    .expect("runs fail during the outage and wait for their retry");
    tokio::time::sleep(Duration::from_secs(60).saturating_sub(outage.elapsed())).await;
    let _restarted = source.start();

    let report = wait_verified(&config, 10_000, Duration::from_secs(300)).await;
    assert!(
        report.aggregate_errors.is_empty(),
        "{:?}",
        report.aggregate_errors
    );
    let runs = ledger(&config).await;
    assert_eq!(runs.len(), 20);
    assert!(
        runs.iter()
            .all(|r| r.1 == "staged" && r.4 == 500 && r.5 == 0),
        "every run staged once, none left failed: {runs:?}"
    );
    let ids: Vec<i64> = runs.iter().map(|r| r.0).collect();
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "no run skipped: {ids:?}"
    );
    let log = tributary.log_text();
    assert!(
        log.contains("fetched again after its backoff"),
        "runs retried"
    );
}

/// A run that gave up (its source was gone) stays failed until an operator re-queues
/// it with `tributary runs retry --failed`; then it stages, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_retry_failed_requeues_and_stages_runs_that_gave_up() {
    let config = prepare("it_src_d").await;
    // Nothing listens there yet.
    let source = SourceAt::reserve(tributary::source::Config::default());
    let env = workload(&config, &source.url(), 2, 100, &QUICK_GIVE_UP);
    let tributary = Tributary::run("source_d", &env);
    eventually(Duration::from_secs(60), || async {
        let failed = ledger(&config)
            .await
            .iter()
            .filter(|r| r.1 == "failed")
            .count();
        if failed == 2 { Ok(()) } else { Err(failed) }
    })
    .await
    .expect("both runs give up");

    // The status API, the dashboard's source, and the metrics say so.
    let admin = tributary.admin_url().await;
    let shown = eventually(Duration::from_secs(30), || async {
        let s = status(&admin).await.map_err(|e| e.to_string())?;
        if s["runs"]["failed"] == 2 {
            Ok(s)
        } else {
            Err(s.to_string())
        }
    })
    .await
    .expect("the status shows the failed runs");
    let attention = shown["runs"]["attention"]
        .as_array()
        .expect("failing runs listed");
    assert_eq!(attention.len(), 2, "{shown}");
    assert!(attention.iter().all(|r| r["status"] == "failed"), "{shown}");
    let metrics = get_text(&format!("{admin}/metrics"))
        .await
        .expect("metrics");
    assert_eq!(
        sample(&metrics, r#"tributary_runs{status="failed"}"#),
        Some(2.0)
    );
    assert!(sample(&metrics, r#"tributary_runs_total{status="failed"}"#) >= Some(2.0));
    assert!(sample(&metrics, r#"tributary_runs_total{status="retrying"}"#) >= Some(2.0));

    let listed = cli(&["runs", "--status", "failed", "--json"], &env);
    assert!(listed.status.success(), "{listed:?}");
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("JSON");
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    assert!(
        listed[0]["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("request failed")
    );

    let _source = source.start();
    let not_failed = cli(&["runs", "retry", "999999999999"], &env);
    assert_eq!(not_failed.status.code(), Some(1), "{not_failed:?}");
    assert!(String::from_utf8_lossy(&not_failed.stderr).contains("was not queued"));

    let retried = cli(&["runs", "retry", "--failed"], &env);
    assert!(retried.status.success(), "{retried:?}");
    assert_eq!(
        String::from_utf8_lossy(&retried.stdout)
            .matches("queued")
            .count(),
        2
    );
    wait_drained(&config, 2, Duration::from_secs(120)).await;
    let runs = ledger(&config).await;
    assert!(
        runs.iter().all(|r| r.1 == "staged" && r.4 == 100),
        "{runs:?}"
    );
    assert_eq!(assert_exactly_once(&config).await, 200);
}

#[test]
fn users_per_run_past_the_apis_limit_exits_2_naming_the_key() {
    let out = cli(
        &["run"],
        &[("TRIBUTARY__INGEST__USERS_PER_RUN".into(), "5001".into())],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("ingest.users_per_run"), "{stderr}");
    assert!(stderr.contains("expected 1 to 5000"), "{stderr}");
}

/// A source that serves the same users again under other pages (only the outbox's
/// dedup can tell) is loud: a warning naming the run, seed and page, a counter, the
/// status field the dashboard shows, and the run's `repeated_users`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_repeats_itself_is_visible() {
    let config = prepare("it_src_r").await;
    let (source, _source) = embedded_source(tributary::source::Faults {
        repeat_rate: 1.0,
        ..tributary::source::Faults::default()
    });
    let tributary = Tributary::run("source_r", &workload(&config, &source, 4, 100, &[]));
    wait_drained(&config, 4, Duration::from_secs(120)).await;
    let runs = ledger(&config).await;
    // Every run of a seed serves that seed's page 1: all but its first run repeat.
    let seeds: BTreeSet<&Option<String>> = runs.iter().map(|r| &r.2).collect();
    let expected_repeats = runs.len() - seeds.len();
    assert!(expected_repeats >= 2, "{runs:?}");
    let repeated: Vec<&LedgerRow> = runs.iter().filter(|r| r.5 > 0).collect();
    assert_eq!(repeated.len(), expected_repeats, "{runs:?}");
    assert!(repeated.iter().all(|r| (r.4, r.5) == (0, 100)), "{runs:?}");

    let admin = tributary.admin_url().await;
    let s = eventually(Duration::from_secs(30), || async {
        let s = status(&admin).await.map_err(|e| e.to_string())?;
        if s["runs"]["recent"]["repeated"] == expected_repeats {
            Ok(s)
        } else {
            Err(s.to_string())
        }
    })
    .await
    .expect("the status counts the repeated runs");
    let last = &s["runs"]["recent"]["last_repeat"];
    assert!(last["seed"].is_string() && last["page"].is_i64(), "{s}");
    assert_eq!(last["repeated_users"], 100, "{s}");
    let metrics = get_text(&format!("{admin}/metrics"))
        .await
        .expect("metrics");
    assert_eq!(
        sample(&metrics, "tributary_source_repeats_total"),
        Some(expected_repeats as f64)
    );
    let warnings: Vec<serde_json::Value> = tributary
        .log_lines()
        .into_iter()
        .filter(|l| {
            l["level"] == "WARN"
                && l["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("source repeated users"))
        })
        .collect();
    assert_eq!(
        warnings.len(),
        expected_repeats,
        "one warning per repeated run"
    );
    for w in &warnings {
        assert!(
            w["run_id"].is_i64() && w["seed"].is_string() && w["page"].is_u64(),
            "{w}"
        );
    }
}

/// The ledger against the real PostgreSQL: one outcome per dispatch (a stale copy of a
/// dispatch changes nothing), and re-queued runs fetched `max_in_flight_runs` at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_records_one_outcome_per_dispatch_and_requeues_within_room() {
    use tributary_actors::ingest::ledger::{self, FailedRun, RetrySelection};
    let config = prepare("it_src_l").await;
    let ingest = tributary_actors::ingest::Config {
        give_up_after_ms: 1,
        ..config.ingest.clone()
    };
    let mut client = pg(&config).await;
    let mut runs = Vec::new();
    for slot in 100..106 {
        runs.push(
            ledger::record(&client, &ingest, slot)
                .await
                .unwrap()
                .expect("new slot"),
        );
    }
    assert!(
        ledger::record(&client, &ingest, 100)
            .await
            .unwrap()
            .is_none(),
        "recorded once"
    );

    // A failed round of the first dispatch counts; a second copy of it changes nothing.
    let run = runs[0].clone();
    let tx = client.transaction().await.unwrap();
    let first = ledger::mark_failed(&tx, &ingest, &run, "boom", None)
        .await
        .unwrap();
    assert!(
        matches!(first, Some(FailedRun::Retrying { retries: 1, .. })),
        "{first:?}"
    );
    tx.commit().await.unwrap();
    let tx = client.transaction().await.unwrap();
    assert_eq!(
        ledger::mark_failed(&tx, &ingest, &run, "boom", None)
            .await
            .unwrap(),
        None
    );
    assert!(
        !ledger::claim(&tx, &run).await.unwrap(),
        "stale copy of the dispatch"
    );
    drop(tx);

    // Back to pending, the run is a new dispatch (one finished round more).
    tokio::time::sleep(Duration::from_millis(ingest.retry_initial_ms.min(100))).await;
    client
        .execute(
            "UPDATE runs SET next_attempt_at = now() WHERE run_id = 100",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(ledger::requeue_due_retries(&client, 10).await.unwrap(), 1);
    let pending = ledger::pending(&client, &ingest).await.unwrap();
    let again = pending.iter().find(|r| r.run_id == 100).unwrap().clone();
    assert_eq!(again.attempts, 1);
    let tx = client.transaction().await.unwrap();
    assert!(ledger::claim(&tx, &again).await.unwrap());
    let gave_up = ledger::mark_failed(&tx, &ingest, &again, "boom", None)
        .await
        .unwrap();
    assert!(
        matches!(gave_up, Some(FailedRun::GaveUp { .. })),
        "{gave_up:?}"
    );
    tx.commit().await.unwrap();

    // Every run fails and gives up; re-queued all at once, they come back two at a time.
    for run in &runs[1..] {
        let tx = client.transaction().await.unwrap();
        ledger::mark_failed(&tx, &ingest, run, "boom", None)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    client
        .execute(
            "UPDATE runs SET status = 'failed' WHERE status = 'retrying'",
            &[],
        )
        .await
        .unwrap();
    let queued = ledger::retry(&client, &RetrySelection::AllFailed)
        .await
        .unwrap();
    assert_eq!(queued, (100..106).collect::<Vec<_>>());
    assert_eq!(ledger::requeue_due_retries(&client, 2).await.unwrap(), 2);
    assert_eq!(
        ledger::requeue_due_retries(&client, 2).await.unwrap(),
        0,
        "no room"
    );
    assert_eq!(ledger::pending(&client, &ingest).await.unwrap().len(), 2);
}
