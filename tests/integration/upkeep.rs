//! Issue 15: retention keeps PostgreSQL bounded with exactly-once intact, the
//! reconciler inside the service finds lost and duplicated runs, and verify checks
//! windows by digest — against the real stack, through real `tributary run` processes.

use crate::common::{Tributary, embedded_source, eventually};
use crate::ingest::{pg, prepare, wait_drained, workload};
use crate::observe::get_text;
use crate::process::rows_in_cassandra;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use std::time::Duration;
use tributary::config::Config;
use tributary::source::Faults;
use tributary::verify::{Window, verify_window};
use tributary_actors::model::{Digest, digest};

/// `(staged_users rows, runs rows, quarantine rows)`.
async fn table_rows(config: &Config) -> (i64, i64, i64) {
    let row = pg(config)
        .await
        .query_one(
            "SELECT (SELECT count(*) FROM staged_users), (SELECT count(*) FROM runs), \
             (SELECT count(*) FROM quarantine)",
            &[],
        )
        .await
        .expect("count rows");
    (row.get(0), row.get(1), row.get(2))
}

/// The reconciler's and retention's knobs in seconds instead of days.
const FAST_UPKEEP: &[(&str, &str)] = &[
    ("TRIBUTARY__RECONCILE__AFTER_MS", "500"),
    ("TRIBUTARY__RECONCILE__INTERVAL_MS", "500"),
    ("TRIBUTARY__RECONCILE__AGGREGATE_INTERVAL_MS", "1000"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_the_outbox_runs_and_quarantine_and_exactly_once_holds() {
    let config = prepare("it_upkeep_a").await;
    // 2 % of the records break: the quarantine has rows for its retention to remove.
    let (source, _source) = embedded_source(Faults {
        bad_record_rate: 0.02,
        seed: 15,
        ..Faults::default()
    });
    let mut extra = FAST_UPKEEP.to_vec();
    extra.extend([
        ("TRIBUTARY__INGEST__INTERVAL_MS", "300"),
        ("TRIBUTARY__RETENTION__OUTBOX_MS", "3000"),
        // Long enough to see every run reconciled before the ledger forgets it.
        ("TRIBUTARY__RETENTION__RUNS_MS", "25000"),
        ("TRIBUTARY__RETENTION__QUARANTINE_MS", "3000"),
        ("TRIBUTARY__RETENTION__INTERVAL_MS", "500"),
        // Small batches: each round takes several, as a busy service's would.
        ("TRIBUTARY__RETENTION__BATCH_SIZE", "100"),
    ]);
    let runs = 30;
    let tributary = Tributary::run("upkeep_a", &workload(&config, &source, runs, 200, &extra));
    wait_drained(&config, runs as i64, Duration::from_secs(180)).await;

    // The outbox and the quarantine empty out once their rows are 3 s old (published
    // rows only: the checkpoint covers all of them by now).
    let (outbox, _, quarantine) = eventually(Duration::from_secs(60), || async {
        let rows = table_rows(&config).await;
        if rows.0 == 0 && rows.2 == 0 {
            Ok(rows)
        } else {
            Err(rows)
        }
    })
    .await
    .unwrap_or_else(|rows| panic!("outbox and quarantine not pruned: {rows:?}"));
    assert_eq!((outbox, quarantine), (0, 0));

    // Every run reconciled ok, from its digest sealed at staging, after its outbox rows
    // were gone.
    let staged: i64 = eventually(Duration::from_secs(60), || async {
        let row = pg(&config)
            .await
            .query_one(
                "SELECT count(*) FILTER (WHERE reconcile_result = 'ok'), count(*), \
                 coalesce(sum(staged_users), 0)::bigint FROM runs WHERE status = 'staged'",
                &[],
            )
            .await
            .map_err(|e| e.to_string())?;
        let (ok, all, users): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        if ok == all && all == runs as i64 {
            Ok(users)
        } else {
            Err(format!("{ok} of {all} runs reconciled ok"))
        }
    })
    .await
    .expect("every run reconciled ok");
    assert!(staged > 5_000, "{staged} users staged");
    assert_eq!(rows_in_cassandra(&config).await, staged);

    // verify: every retained run whole, by digest, and the aggregates equal to
    // everything ever staged (kept apart from the pruned outbox).
    let report = verify_window(&config, Window::Retained)
        .await
        .expect("verify");
    assert!(report.is_clean(), "{report}");
    assert_eq!(
        (report.runs, report.staged, report.in_cassandra),
        (runs, staged as u64, staged as u64),
        "{report}"
    );

    // The ledger forgets finished runs after runs_ms — all but the newest, which the
    // scheduler continues after — and ingest does not start over.
    let remaining = eventually(Duration::from_secs(90), || async {
        let (_, runs, _) = table_rows(&config).await;
        if runs == 1 { Ok(runs) } else { Err(runs) }
    })
    .await
    .unwrap_or_else(|n| panic!("{n} runs left in the ledger"));
    assert_eq!(remaining, 1);
    let log = tributary.log_text();
    assert!(
        log.contains("retention pruned"),
        "retention logged its rounds"
    );
    assert!(!log.contains("run failed reconciliation"), "no run failed");
    // The data is still all there, once, and the aggregates still equal.
    assert_eq!(rows_in_cassandra(&config).await, staged);
    let report = verify_window(&config, Window::Retained)
        .await
        .expect("verify");
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.runs, 1, "{report}");
    let admin = tributary.admin_url().await;
    let metrics = get_text(&format!("{admin}/metrics")).await.unwrap();
    for table in ["staged_users", "runs", "quarantine"] {
        assert!(
            metrics.contains(&format!("tributary_pruned_rows_total{{table=\"{table}\"}}")),
            "{table} pruning counted: {metrics}"
        );
    }
}

/// `payload` (a staged user's JSON) as another user: the same record under a new id.
fn forged_record(payload: &serde_json::Value, id: uuid::Uuid) -> String {
    let mut user = payload.clone();
    user["login"]["uuid"] = serde_json::Value::String(id.to_string());
    user.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconciler_finds_a_lost_run_a_duplicated_run_and_wrong_aggregates() {
    let config = prepare("it_upkeep_b").await;
    let (source, _source) = embedded_source(Faults::default());
    let mut extra = FAST_UPKEEP.to_vec();
    extra.push(("TRIBUTARY__RECONCILE__DEADLINE_MS", "4000"));
    let runs = 10;
    let tributary = Tributary::run("upkeep_b", &workload(&config, &source, runs, 100, &extra));
    wait_drained(&config, runs as i64, Duration::from_secs(180)).await;
    let admin = tributary.admin_url().await;
    eventually(Duration::from_secs(60), || async {
        let status: serde_json::Value =
            serde_json::from_str(&get_text(&format!("{admin}/api/status")).await?)?;
        let r = &status["reconciliation"];
        if r["unreconciled"] == 0 && r["aggregates"]["ok"] == true {
            Ok(())
        } else {
            Err(anyhow::anyhow!("{r}"))
        }
    })
    .await
    .expect("everything reconciled and the aggregates equal");

    // Two runs nobody fetched, recorded as staged once every real run is done: one
    // whose three users never reach Kafka (lost), one whose single user reaches it
    // twice (duplicated: and Cassandra's aggregates then count it twice).
    let client = pg(&config).await;
    let last: i64 = client
        .query_one("SELECT max(run_id) FROM runs", &[])
        .await
        .unwrap()
        .get(0);
    let (lost_run, doubled_run) = (last + 100, last + 101);
    let lost: Digest = (0..3).map(|_| uuid::Uuid::new_v4()).collect();
    let doubled_user = uuid::Uuid::new_v4();
    for (run, page, digest) in [
        (lost_run, 1, lost),
        (
            doubled_run,
            2,
            std::iter::once(doubled_user).collect::<Digest>(),
        ),
    ] {
        client
            .execute(
                "INSERT INTO runs (run_id, scheduled_for, status, seed, page, requested_users, \
                 staged_users, digest_xor, updated_at) \
                 VALUES ($1, now(), 'staged', 'forged', $2, $3, $3, $4, now())",
                &[&run, &page, &(digest.count as i32), &digest.xor],
            )
            .await
            .expect("forge a run");
    }
    let payload: serde_json::Value = client
        .query_one("SELECT payload FROM staged_users LIMIT 1", &[])
        .await
        .unwrap()
        .get(0);
    let (kafka, topic) = (config.kafka.clone(), config.kafka.topics.raw.name.clone());
    let value = forged_record(&payload, doubled_user);
    tokio::task::spawn_blocking(move || {
        let producer: ThreadedProducer<DefaultProducerContext> =
            kafka.client_config("forger").unwrap().create().unwrap();
        let (key, run) = (doubled_user.to_string(), doubled_run.to_string());
        for _ in 0..2 {
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "tributary-schema",
                    value: Some(tributary_actors::format::JSON_V1),
                })
                .insert(Header {
                    key: tributary_actors::format::RUN_ID_HEADER,
                    value: Some(&run),
                });
            producer
                .send(
                    BaseRecord::to(&topic)
                        .key(&key)
                        .payload(&value)
                        .headers(headers),
                )
                .unwrap();
        }
        producer.flush(Duration::from_secs(10)).unwrap();
    })
    .await
    .unwrap();

    // The reconciler names both runs, counts them by kind, and the aggregate check
    // fails; status, the dashboard's source and /metrics all say so.
    let status = eventually(Duration::from_secs(90), || async {
        let status: serde_json::Value =
            serde_json::from_str(&get_text(&format!("{admin}/api/status")).await?)?;
        let r = status["reconciliation"].clone();
        if r["failed_runs"]["missing"] == 1
            && r["failed_runs"]["duplicated"] == 1
            && r["aggregates"]["ok"] == false
        {
            Ok(r)
        } else {
            Err(anyhow::anyhow!("{r}"))
        }
    })
    .await
    .expect("the reconciler reports the forged runs");
    let listed: Vec<i64> = status["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["run_id"].as_i64().unwrap())
        .collect();
    assert!(
        listed.contains(&lost_run) && listed.contains(&doubled_run),
        "{status}"
    );
    let metrics = get_text(&format!("{admin}/metrics")).await.unwrap();
    for kind in ["missing", "duplicated", "aggregate"] {
        assert!(
            metrics.contains(&format!(
                "tributary_reconcile_failures_total{{kind=\"{kind}\"}}"
            )),
            "{kind} counted: {metrics}"
        );
    }
    assert!(
        metrics.contains("tributary_unreconciled_runs 0"),
        "{metrics}"
    );
    let text = std::process::Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["status", "--url", &admin])
        .output()
        .expect("tributary status");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!("ALERT: run {lost_run}")) && text.contains("missing 1"),
        "{text}"
    );

    // verify, for the forged runs' window, names the user that arrived twice; the real
    // runs alone check clean.
    let report = verify_window(&config, Window::Runs(lost_run, doubled_run))
        .await
        .expect("verify");
    assert!(!report.is_clean(), "{report}");
    assert_eq!((report.runs, report.runs_differing), (2, 2), "{report}");
    assert_eq!(report.duplicated, 1, "{report}");
    assert_eq!(report.samples.duplicated, vec![doubled_user.to_string()]);
    let first: i64 = client
        .query_one("SELECT min(run_id) FROM runs", &[])
        .await
        .unwrap()
        .get(0);
    let report = verify_window(&config, Window::Runs(first, last))
        .await
        .expect("verify");
    assert!(report.is_clean(), "{report}");
    assert_eq!((report.runs, report.staged), (runs, runs * 100), "{report}");
    let report = verify_window(&config, Window::Since(Duration::from_secs(3_600)))
        .await
        .expect("verify");
    assert_eq!(report.runs, runs + 2, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_folds_user_ids_as_the_digest_does() {
    let config = prepare("it_upkeep_c").await;
    let client = pg(&config).await;
    let ids: Vec<uuid::Uuid> = (0..1_000)
        .map(|_| uuid::Uuid::new_v4())
        .chain([uuid::Uuid::nil(), uuid::Uuid::max()])
        .collect();
    let folded: Vec<i64> = client
        .query(
            "SELECT uuid_fold64(id) FROM unnest($1::uuid[]) AS id",
            &[&ids],
        )
        .await
        .expect("fold in PostgreSQL")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let expected: Vec<i64> = ids.iter().map(|id| digest::fold(*id)).collect();
    assert_eq!(folded, expected);
    let row = client
        .query_one(
            "SELECT count(*), bit_xor(uuid_fold64(id)) FROM unnest($1::uuid[]) AS id",
            &[&ids],
        )
        .await
        .expect("digest in PostgreSQL");
    let digest: Digest = ids.iter().copied().collect();
    assert_eq!(
        (row.get::<_, i64>(0) as u64, row.get::<_, i64>(1)),
        (digest.count, digest.xor)
    );
}
