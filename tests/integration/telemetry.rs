//! Spans exported by our telemetry set-up reach Jaeger over OTLP.

use crate::common::{eventually, isolated_config};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing_subscriber::layer::SubscriberExt;

/// Jaeger's query API; `make stack-up` serves it on 16686.
fn jaeger_query_url() -> String {
    std::env::var("TRIBUTARY_STACK_JAEGER_QUERY_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:16686".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_span_appears_in_jaeger() {
    let config = isolated_config("it_otel").telemetry;
    let service = config.service_name.clone();
    let start_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros();

    let provider = tributary::telemetry::tracer_provider(&config)
        .expect("exporter builds")
        .expect("tracing is on by default");
    let subscriber = tracing_subscriber::registry().with(tributary::telemetry::layers(
        &config,
        Some(&provider),
        tributary::telemetry::Logs::Stderr,
    ));
    tracing::subscriber::with_default(subscriber, || {
        // Only spans of tributary's own targets are exported.
        let span = tracing::info_span!(target: "tributary::schema", "schema_apply", store = "cassandra", objects = 3_u64);
        let _entered = span.enter();
        tracing::info!("inside the exported span");
    });
    provider
        .force_flush()
        .expect("spans flushed to the collector");
    provider.shutdown().expect("provider shut down");

    let url = format!(
        "{}/api/traces?service={service}&start={start_us}&end={}&limit=20",
        jaeger_query_url(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros()
            + 60_000_000
    );
    let http = reqwest::Client::new();
    let span_names: Vec<String> = eventually(Duration::from_secs(30), || async {
        let body: serde_json::Value = http
            .get(&url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let names: Vec<String> = body["data"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|trace| trace["spans"].as_array().cloned().unwrap_or_default())
            .filter_map(|span| span["operationName"].as_str().map(str::to_owned))
            .collect();
        if names.is_empty() {
            anyhow::bail!("no trace for service {service} yet");
        }
        Ok(names)
    })
    .await
    .expect("the span reaches Jaeger's query API");
    assert_eq!(span_names, ["schema_apply"]);
}
