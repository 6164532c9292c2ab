//! Issue 4: Kafka → Cassandra exactly once, and `verify` over the whole path, through
//! real `tributary run` processes against the real stack.

use crate::common::{Tributary, embedded_source, eventually};
use crate::ingest::{prepare, workload};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::time::Duration;
use tributary::config::Config;
use tributary::source::Faults;
use tributary::verify::{Report, verify};
use tributary_actors::process::progress::lwt_applied;
use tributary_actors::store::cassandra;

/// Waits until verify is clean with `users` rows in Cassandra.
pub async fn wait_verified(config: &Config, users: u64, deadline: Duration) -> Report {
    eventually(deadline, || async {
        let report = verify(config).await.map_err(|e| e.to_string())?;
        if report.is_clean() && report.in_cassandra == users && report.staged == users {
            Ok(report)
        } else {
            Err(format!("{report:?}"))
        }
    })
    .await
    .unwrap_or_else(|last| panic!("verify not clean within {deadline:?}; last report: {last}"))
}

pub async fn rows_in_cassandra(config: &Config) -> i64 {
    let session = cassandra::connect(&config.cassandra)
        .await
        .expect("session");
    session
        .query_unpaged(
            format!(
                "SELECT count(*) FROM {}.created_users",
                config.cassandra.keyspace
            ),
            (),
        )
        .await
        .expect("count")
        .into_rows_result()
        .expect("rows")
        .single_row::<(i64,)>()
        .expect("one row")
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_twenty_thousand_users_with_exact_aggregates() {
    let config = prepare("it_proc_a").await;
    let (source, _source) = embedded_source(Faults::default());
    let _tributary = Tributary::run("process_a", &workload(&config, &source, 20, 1_000, &[]));
    let report = wait_verified(&config, 20_000, Duration::from_secs(300)).await;
    // verify compared the aggregates with counts computed from PostgreSQL: none differ.
    assert!(
        report.aggregate_errors.is_empty(),
        "{:?}",
        report.aggregate_errors
    );
    assert_eq!((report.in_kafka, report.kafka_records), (20_000, 20_000));

    // Users of all 21 nationalities of API 1.4, each country's count in Cassandra equal
    // to PostgreSQL's (counted here, not by verify).
    let per_country: std::collections::BTreeMap<String, i64> = crate::ingest::pg(&config)
        .await
        .query(
            "SELECT payload->'location'->>'country', count(*) FROM staged_users GROUP BY 1",
            &[],
        )
        .await
        .expect("count per country")
        .iter()
        .map(|r| (format!("country:{}", r.get::<_, String>(0)), r.get(1)))
        .collect();
    assert_eq!(per_country.len(), 21, "{per_country:?}");
    let session = cassandra::connect(&config.cassandra)
        .await
        .expect("session");
    let aggregates = tributary::verify::cassandra_aggregates(
        &session,
        &config.cassandra.keyspace,
        &config.kafka.topics.raw.name,
        config.kafka.topics.raw.partitions,
    )
    .await
    .expect("aggregates");
    let countries: std::collections::BTreeMap<String, i64> = aggregates
        .into_iter()
        .filter(|(bucket, _)| bucket.starts_with("country:"))
        .collect();
    assert_eq!(countries, per_country);
    assert!(countries.contains_key("country:Iran") && countries.contains_key("country:Ukraine"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_crashes_and_a_sigkill_lose_and_duplicate_nothing() {
    let config = prepare("it_proc_b").await;
    let (source, _source) = embedded_source(Faults::default());
    let env = workload(
        &config,
        &source,
        20,
        1_000,
        &[
            (
                "TRIBUTARY__PROCESS__TEST_FAULTS__FAIL_WRITER_BEFORE_COMMIT_EVERY",
                "7",
            ),
            (
                "TRIBUTARY__PROCESS__PARTITION_SUPERVISION__MAX_RESTARTS",
                "1000",
            ),
            (
                "TRIBUTARY__PROCESS__PARTITION_SUPERVISION__BACKOFF_INITIAL_MS",
                "10",
            ),
            (
                "TRIBUTARY__PROCESS__PARTITION_SUPERVISION__BACKOFF_MAX_MS",
                "100",
            ),
            ("TRIBUTARY__PROCESS__BATCH_SIZE", "200"),
        ],
    );
    let mut first = Tributary::run("process_b_first", &env);
    eventually(Duration::from_secs(180), || async {
        let rows = rows_in_cassandra(&config).await;
        if rows >= 4_000 { Ok(()) } else { Err(rows) }
    })
    .await
    .expect("rows reach Cassandra before the kill");
    first.kill();
    let first_log = first.log_text();
    assert!(
        first_log.contains("upserted, not committed"),
        "a writer crashed between upsert and commit"
    );
    let _second = Tributary::run("process_b_second", &env);
    let report = wait_verified(&config, 20_000, Duration::from_secs(300)).await;
    assert!(report.aggregate_errors.is_empty());
}

/// A writer slower than Kafka: each partition's pipeline fills to
/// `max_buffered_records`, the poll thread stops reading it until the writer commits,
/// and nothing is lost, duplicated or held beyond the bound on the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pipeline_stops_reading_its_partition_and_loses_nothing() {
    const BOUND: u64 = 200;
    let config = prepare("it_proc_backpressure").await;
    let (source, _source) = embedded_source(Faults::default());
    let env = workload(
        &config,
        &source,
        20,
        1_000,
        &[
            ("TRIBUTARY__PROCESS__MAX_BUFFERED_RECORDS", "200"),
            ("TRIBUTARY__PROCESS__BATCH_SIZE", "100"),
            ("TRIBUTARY__PROCESS__WRITE_CONCURRENCY", "1"),
            ("TRIBUTARY__PROCESS__ROWS_PER_REQUEST", "1"),
        ],
    );
    let tributary = Tributary::run("process_backpressure", &env);
    let admin = tributary.admin_url().await;
    // The most records any partition held (routed, not yet committed), sampled from the
    // status API while the workload runs.
    let most_held = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let watch = {
        let (admin, most_held) = (admin.clone(), most_held.clone());
        tokio::spawn(async move {
            loop {
                if let Ok(response) = reqwest::get(format!("{admin}/api/status")).await
                    && let Ok(status) = response.json::<serde_json::Value>().await
                {
                    for p in status["partitions"].as_array().into_iter().flatten() {
                        let held = p["in_flight_records"].as_u64().unwrap_or(0);
                        most_held.fetch_max(held, std::sync::atomic::Ordering::SeqCst);
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let report = wait_verified(&config, 20_000, Duration::from_secs(300)).await;
    watch.abort();
    assert!(report.aggregate_errors.is_empty());
    let metrics = reqwest::get(format!("{admin}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let backpressured: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tributary_partition_backpressure_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(
        backpressured > 0.0,
        "the writer was slow enough to fill a pipeline (backpressure counted {backpressured} times)"
    );
    let most_held = most_held.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        (1..=BOUND).contains(&most_held),
        "a partition held {most_held} records; the bound is {BOUND}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_survivor_takes_over_and_a_fenced_commit_is_rejected() {
    let config = prepare("it_proc_c").await;
    let (source, _source) = embedded_source(Faults::default());
    let env = workload(
        &config,
        &source,
        20,
        1_000,
        &[("TRIBUTARY__PROCESS__SESSION_TIMEOUT_MS", "6000")],
    );
    let first = Tributary::run("process_c_first", &env);
    let mut second = Tributary::run("process_c_second", &env);
    eventually(Duration::from_secs(120), || async {
        let both = first.log_text().contains("partition assigned")
            && second.log_text().contains("partition assigned");
        let rows = rows_in_cassandra(&config).await;
        if both && rows >= 2_000 {
            Ok(())
        } else {
            Err(rows)
        }
    })
    .await
    .expect("both instances process partitions");
    second.kill();
    let report = wait_verified(&config, 20_000, Duration::from_secs(300)).await;
    assert!(report.aggregate_errors.is_empty());

    // Every partition's current owner holds a newer epoch than the first claim; a commit
    // carrying an older epoch (a zombie's) is refused and changes nothing.
    let session = cassandra::connect(&config.cassandra)
        .await
        .expect("session");
    let ks = &config.cassandra.keyspace;
    let topic = &config.kafka.topics.raw.name;
    let rows = session
        .query_unpaged(
            format!("SELECT partition, owner_epoch, committed_offset FROM {ks}.partition_state WHERE topic = ? AND partition = 0 LIMIT 1"),
            (topic,),
        )
        .await
        .expect("state")
        .into_rows_result()
        .expect("rows")
        .single_row::<(i32, i64, i64)>()
        .expect("partition 0 state");
    let (_, epoch, committed) = rows;
    assert!(
        epoch >= 2,
        "partition 0 changed owner at least once: epoch {epoch}"
    );
    let zombie = session
        .query_unpaged(
            format!("UPDATE {ks}.partition_state SET committed_offset = ? WHERE topic = ? AND partition = 0 IF owner_epoch = ?"),
            (committed + 1_000, topic, epoch - 1),
        )
        .await
        .expect("zombie commit attempt");
    assert!(
        !lwt_applied(zombie),
        "a commit with a stale epoch is rejected"
    );
    assert!(verify(&config).await.unwrap().is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_go_to_the_dlq_and_the_partition_keeps_flowing() {
    let config = prepare("it_proc_d").await;
    // Poison first, at the head of partition 0: not JSON, an unknown schema version,
    // a record with a missing field.
    let poisons = [
        (
            "poison-not-json",
            "this is not json".to_owned(),
            "1",
            "expected",
        ),
        (
            "poison-version",
            "{}".to_owned(),
            "42",
            "unknown schema version",
        ),
        (
            "poison-missing",
            r#"{"gender": "female"}"#.to_owned(),
            "1",
            "missing field",
        ),
    ];
    let (kafka, topic) = (config.kafka.clone(), config.kafka.topics.raw.name.clone());
    let to_send = poisons.clone();
    tokio::task::spawn_blocking(move || {
        let producer: ThreadedProducer<DefaultProducerContext> =
            kafka.client_config("poisoner").unwrap().create().unwrap();
        for (key, payload, version, _) in &to_send {
            let headers = OwnedHeaders::new().insert(Header {
                key: "tributary-schema",
                value: Some(*version),
            });
            producer
                .send(
                    BaseRecord::to(&topic)
                        .partition(0)
                        .key(*key)
                        .payload(payload)
                        .headers(headers),
                )
                .map_err(|(e, _)| e)
                .expect("send poison");
        }
        producer.flush(Duration::from_secs(10)).expect("flush");
    })
    .await
    .unwrap();

    let (source, _source) = embedded_source(Faults::default());
    let _tributary = Tributary::run("process_d", &workload(&config, &source, 4, 500, &[]));
    let report = wait_verified(&config, 2_000, Duration::from_secs(180)).await;
    assert_eq!(report.in_dlq, 3, "the three poison records are in the DLQ");

    // The DLQ records carry their error and origin in headers.
    let (kafka, dlq) = (config.kafka.clone(), config.kafka.topics.dlq.name.clone());
    let errors = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = kafka
            .client_config("dlq-reader")
            .unwrap()
            .set("group.id", format!("{dlq}-reader"))
            .create()
            .unwrap();
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(&dlq, 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&list).unwrap();
        let mut errors = std::collections::BTreeMap::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while errors.len() < 3 && std::time::Instant::now() < deadline {
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
                let header = |name: &str| {
                    message
                        .headers()
                        .and_then(|h| h.iter().find(|h| h.key == name))
                        .and_then(|h| h.value)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                };
                let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
                assert_eq!(
                    header(tributary_actors::format::headers::SOURCE_PARTITION_HEADER).as_deref(),
                    Some("0")
                );
                errors.insert(
                    key,
                    header(tributary_actors::format::headers::ERROR_HEADER).unwrap_or_default(),
                );
            }
        }
        errors
    })
    .await
    .unwrap();
    for (key, _, _, reason) in poisons {
        let error = errors
            .get(key)
            .unwrap_or_else(|| panic!("{key} in the DLQ: {errors:?}"));
        assert!(
            error.contains(reason),
            "{key}: {error} should mention {reason}"
        );
    }

    // Partition 0 kept flowing past its poison head: its users are in Cassandra.
    let session = cassandra::connect(&config.cassandra)
        .await
        .expect("session");
    let after_poison = session
        .query_unpaged(
            format!(
                "SELECT count(*) FROM {}.created_users WHERE source_partition = 0 AND source_offset > 2 ALLOW FILTERING",
                config.cassandra.keyspace
            ),
            (),
        )
        .await
        .expect("count")
        .into_rows_result()
        .expect("rows")
        .single_row::<(i64,)>()
        .expect("row")
        .0;
    assert!(
        after_poison > 0,
        "records after the poison on partition 0 were written"
    );
}
