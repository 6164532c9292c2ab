//! Issue 14: an instance that stops consuming says so (503, growing lag over every
//! partition, the reason) and its watchdog brings it back without a process restart,
//! through a real `tributary run` process against the real stack.
//!
//! The stop is injected (`process.test_faults.leave_group_after_ms`: the consumer
//! leaves its group and does not rejoin), the shape the frozen broker left behind; the
//! freeze itself runs in the chaos suite (`pause-kafka-30s`), where stopping the shared
//! broker cannot disturb other tests.

use crate::common::{Tributary, embedded_source, eventually};
use crate::ingest::{prepare, workload};
use crate::observe::{get_text, sample, status};
use crate::process::wait_verified;
use std::time::Duration;
use tributary::source::Faults;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_stops_is_reported_then_rebuilt_by_the_watchdog() {
    let config = prepare("it_consume_a").await;
    let (source, _source) = embedded_source(Faults::default());
    let env = workload(
        &config,
        &source,
        60,
        250,
        &[
            ("TRIBUTARY__INGEST__INTERVAL_MS", "500"),
            (
                "TRIBUTARY__PROCESS__TEST_FAULTS__LEAVE_GROUP_AFTER_MS",
                "6000",
            ),
            ("TRIBUTARY__PROCESS__LAG_INTERVAL_MS", "500"),
            ("TRIBUTARY__PROCESS__STALL_AFTER_MS", "3000"),
            ("TRIBUTARY__PROCESS__STALL_RESTART_MS", "15000"),
        ],
    );
    let mut tributary = Tributary::run("consume_a", &env);
    let admin = tributary.admin_url().await;
    let client = reqwest::Client::new();

    // Not consuming: /readyz 503 with the reason, no partition held, lag over the topic.
    let (reason, first_lag) = eventually(Duration::from_secs(90), || async {
        let response = client
            .get(format!("{admin}/readyz"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let code = response.status().as_u16();
        let body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
        let check = body["checks"]["consuming"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let s = status(&admin).await.map_err(|e| e.to_string())?;
        let lag = s["lag"].as_i64().unwrap_or(0);
        if code == 503 && check.starts_with("not consuming") && lag > 0 {
            Ok((check, lag))
        } else {
            Err(format!("{code} {check:?} lag {lag}"))
        }
    })
    .await
    .expect("the stopped consumer is reported");
    assert!(reason.contains("no partition assigned"), "{reason}");
    let s = status(&admin).await.unwrap();
    assert_eq!(s["consumption"]["assigned"], 0, "{s}");
    assert!(
        s["consumption"]["topic"]
            .as_array()
            .is_some_and(|t| t.len() == 6),
        "{s}"
    );
    assert!(s["partitions"].as_array().is_some_and(Vec::is_empty), "{s}");

    // The lag grows while records keep arriving; the metrics say the same.
    eventually(Duration::from_secs(30), || async {
        let lag = status(&admin)
            .await
            .ok()
            .and_then(|s| s["lag"].as_i64())
            .unwrap_or(0);
        if lag > first_lag { Ok(()) } else { Err(lag) }
    })
    .await
    .expect("lag grows while nothing consumes");
    let metrics = get_text(&format!("{admin}/metrics")).await.unwrap();
    assert_eq!(sample(&metrics, "tributary_assigned_partitions"), Some(0.0));
    assert!(
        sample(&metrics, "tributary_stalls_total") >= Some(1.0),
        "{metrics}"
    );
    let topic_lag: f64 = (0..6)
        .filter_map(|p| {
            sample(
                &metrics,
                &format!("tributary_consumer_lag_records{{partition=\"{p}\"}}"),
            )
        })
        .sum();
    assert!(
        topic_lag > 0.0,
        "every partition's lag is exported: {metrics}"
    );
    let printed = std::process::Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["status", "--url", &admin])
        .output()
        .expect("tributary status");
    let printed = String::from_utf8_lossy(&printed.stdout);
    assert!(
        printed.contains("NOT CONSUMING: no partition assigned"),
        "{printed}"
    );

    // The watchdog rebuilds the consumer: everything arrives, in the same process.
    let report = wait_verified(&config, 15_000, Duration::from_secs(240)).await;
    assert!(
        report.aggregate_errors.is_empty(),
        "{:?}",
        report.aggregate_errors
    );
    assert!(tributary.is_running(), "no process restart");
    let metrics = get_text(&format!("{admin}/metrics")).await.unwrap();
    assert!(sample(&metrics, "tributary_consumer_rebuilds_total") >= Some(1.0));
    assert!(
        tributary
            .log_text()
            .contains("watchdog: not consuming for process.stall_restart_ms"),
        "the watchdog acted"
    );
    eventually(Duration::from_secs(30), || async {
        let code = client
            .get(format!("{admin}/readyz"))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        if code == 200 { Ok(()) } else { Err(code) }
    })
    .await
    .expect("ready again once consuming");
}
