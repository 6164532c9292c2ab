//! The dashboard, rendered live by a real browser (headless Chromium) against a running
//! pipeline.

use crate::common::{Tributary, embedded_source, eventually, unique};
use crate::ingest::{prepare, workload};
use crate::observe::status;
use std::time::Duration;
use tributary::source::Faults;

/// Debian's headless Chromium (installed by `make stack-up`).
fn chromium(args: &[&str], profile: &std::path::Path) -> std::process::Output {
    let binary = std::env::var("TRIBUTARY_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    std::process::Command::new(&binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-extensions",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1400,1100",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{binary} runs (make stack-up installs it): {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_renders_live_in_headless_chromium() {
    let config = prepare("it_obs_dash").await;
    let (source, _source) = embedded_source(Faults::default());
    // Traces exported to the stack's Jaeger: the journey panel reads them back.
    let endpoint = config.telemetry.otlp_endpoint.clone();
    let tributary = Tributary::run(
        "observe_dashboard",
        &workload(
            &config,
            &source,
            40,
            200,
            &[("TRIBUTARY__TELEMETRY__OTLP_ENDPOINT", endpoint.as_str())],
        ),
    );
    let admin = tributary.admin_url().await;
    eventually(Duration::from_secs(120), || async {
        let s = status(&admin).await?;
        match s["records"]["written"].as_u64() {
            Some(n) if n > 0 => Ok(()),
            other => anyhow::bail!("written {other:?}"),
        }
    })
    .await
    .expect("records flow");
    // The exporter batches spans every few seconds.
    let trace_id = eventually(Duration::from_secs(60), || async {
        let body: serde_json::Value = reqwest::get(format!("{admin}/api/journey"))
            .await?
            .json()
            .await?;
        match body["journey"]["trace_id"].as_str() {
            Some(id) => Ok(id.to_owned()),
            None => anyhow::bail!("no journey yet: {body}"),
        }
    })
    .await
    .expect("a journey from Jaeger");

    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique("dashboard"));
    std::fs::create_dir_all(&dir).unwrap();
    let page = format!("{admin}/");
    // Virtual time lets the page's 1 s refresh timer fire several times.
    let dom = tokio::task::spawn_blocking({
        let (page, dir) = (page.clone(), dir.clone());
        move || {
            chromium(
                &["--virtual-time-budget=6000", "--dump-dom", &page],
                &dir.join("profile-dom"),
            )
        }
    })
    .await
    .unwrap();
    let html = String::from_utf8_lossy(&dom.stdout).into_owned();
    assert!(
        dom.status.success() && html.contains("data-loaded=\"true\""),
        "status {:?}; stderr {}; dom {html}",
        dom.status,
        String::from_utf8_lossy(&dom.stderr)
    );
    let refreshes: u32 = html
        .split("data-refreshes=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(refreshes >= 2, "the page refreshes itself: {refreshes}");
    for actor in ["scheduler", "producer", "coordinator", "writer-0"] {
        assert!(
            html.contains(&format!("data-actor=\"{actor}\" data-state=\"running\"")),
            "{actor} running in the tree: {html}"
        );
    }
    assert_eq!(
        html.matches("data-partition=\"").count(),
        6,
        "one row per partition"
    );
    for card in [
        "stage-written",
        "lag",
        "dlq",
        "quarantine",
        "restart-total",
        "runs-failing",
        "source-repeats",
    ] {
        assert!(html.contains(&format!("id=\"{card}\"")), "{card} card");
    }
    let runs_summary = html
        .split("id=\"runs-summary\"")
        .nth(1)
        .and_then(|rest| rest.split('>').nth(1))
        .and_then(|rest| rest.split('<').next())
        .unwrap_or_default();
    assert!(
        runs_summary.starts_with("pending ") && runs_summary.contains("staged "),
        "the runs ledger is summarised: {runs_summary:?}"
    );
    let written_card = html
        .split("id=\"stage-written\"")
        .nth(1)
        .and_then(|rest| rest.split("class=\"value\">").nth(1))
        .and_then(|rest| rest.split('<').next())
        .map(|v| v.replace(',', ""))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(written_card > 0, "written card shows records: {html}");
    assert!(html.contains("data-series=\"written\""), "throughput chart");
    // The journey panel: a run's trace, from the fetch to the Cassandra commit.
    assert!(html.contains("id=\"journey-summary\""), "journey panel");
    for hop in [
        "GET source page",
        "INSERT staged_users",
        "INSERT created_users",
    ] {
        assert!(
            html.contains(&format!("data-hop=\"{hop}\"")),
            "{hop} in the journey ({trace_id}): {html}"
        );
    }

    let screenshot = dir.join("dashboard.png");
    let shot = tokio::task::spawn_blocking({
        let (page, dir, screenshot) = (page.clone(), dir.clone(), screenshot.clone());
        move || {
            chromium(
                &[
                    "--virtual-time-budget=4000",
                    &format!("--screenshot={}", screenshot.display()),
                    &page,
                ],
                &dir.join("profile-shot"),
            )
        }
    })
    .await
    .unwrap();
    let png = std::fs::read(&screenshot).unwrap_or_else(|e| {
        panic!(
            "screenshot {}: {e}; stderr {}",
            screenshot.display(),
            String::from_utf8_lossy(&shot.stderr)
        )
    });
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    assert!(
        png.len() > 20_000,
        "a drawn page, not a blank one: {} bytes",
        png.len()
    );
    // Kept for people: target/tmp/…/dashboard.png.
    eprintln!("dashboard screenshot: {}", screenshot.display());
}
