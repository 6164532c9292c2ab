//! The demo's last words: where the data went and where to look at it — the rows in
//! Cassandra and PostgreSQL, the dashboard of a running instance, and one user's journey
//! as Jaeger recorded it (asked from Jaeger's query API).

use serde::Deserialize;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::Config;

/// The span that ends a record's journey: its Cassandra commit.
const LAST_HOP: &str = "INSERT created_users";
/// How long the demo waits for its spans to reach Jaeger (the exporter batches every
/// few seconds).
const TRACE_WAIT: Duration = Duration::from_secs(8);

/// One trace as Jaeger's query API returns it (`/api/traces`), the fields we read.
#[derive(Debug, Deserialize)]
struct Traces {
    #[serde(default)]
    data: Vec<Trace>,
}

#[derive(Debug, Deserialize)]
struct Trace {
    #[serde(rename = "traceID")]
    trace_id: String,
    #[serde(default)]
    spans: Vec<Span>,
}

#[derive(Debug, Deserialize)]
struct Span {
    #[serde(rename = "operationName")]
    operation: String,
    /// Microseconds since the Unix epoch.
    #[serde(rename = "startTime")]
    start_us: u64,
    /// Microseconds.
    duration: u64,
}

/// One run's journey (its users travel in one trace): the trace id and its spans in
/// order.
#[derive(Debug, PartialEq)]
pub struct Journey {
    pub trace_id: String,
    /// Span name and duration in milliseconds, by start time.
    pub hops: Vec<(String, f64)>,
}

impl Journey {
    /// The first trace that reached Cassandra, among those Jaeger returned.
    fn pick(traces: Traces) -> Option<Journey> {
        let trace = traces
            .data
            .into_iter()
            .filter(|t| t.spans.iter().any(|s| s.operation == LAST_HOP))
            .max_by_key(|t| t.spans.len())?;
        let mut spans = trace.spans;
        spans.sort_by_key(|s| s.start_us);
        Some(Journey {
            trace_id: trace.trace_id,
            hops: spans
                .into_iter()
                .map(|s| (s.operation, s.duration as f64 / 1000.0))
                .collect(),
        })
    }

    /// `GET source page 41.2 ms → INSERT staged_users 8.0 ms → … → transform ×6 7.3–33.7 ms`:
    /// a run's trace holds one span per batch of the later hops, so repeats of a hop are
    /// counted with their range of durations.
    pub fn line(&self) -> String {
        let mut hops: Vec<(&str, usize, f64, f64)> = Vec::new();
        for (name, ms) in &self.hops {
            match hops.iter_mut().find(|(seen, ..)| seen == name) {
                Some((_, count, low, high)) => {
                    *count += 1;
                    *low = low.min(*ms);
                    *high = high.max(*ms);
                }
                None => hops.push((name, 1, *ms, *ms)),
            }
        }
        hops.iter()
            .map(|&(name, count, low, high)| {
                if count == 1 {
                    format!("{name} {low:.1} ms")
                } else {
                    format!("{name} ×{count} {low:.1}–{high:.1} ms")
                }
            })
            .collect::<Vec<_>>()
            .join(" → ")
    }
}

/// Asks Jaeger for a trace of this service that started after `since` and reached
/// Cassandra; waits a little for the exporter's last batch. `None` when tracing is off
/// or Jaeger does not answer.
pub async fn journey(config: &Config, since: SystemTime) -> Option<Journey> {
    let query = config.telemetry.query_url.trim().trim_end_matches('/');
    if query.is_empty() || !config.telemetry.tracing_enabled() {
        return None;
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .ok()?;
    let start_us = since
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_micros()
        .to_string();
    let deadline = tokio::time::Instant::now() + TRACE_WAIT;
    loop {
        let found = client
            .get(format!("{query}/api/traces"))
            .query(&[
                ("service", config.telemetry.service_name.as_str()),
                ("operation", LAST_HOP),
                ("start", start_us.as_str()),
                ("limit", "5"),
            ])
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success());
        if let Some(response) = found
            && let Ok(traces) = response.json::<Traces>().await
            && let Some(journey) = Journey::pick(traces)
        {
            return Some(journey);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The lines printed after verify's table. `log_file`: the demo's full log, if kept.
pub fn render(config: &Config, journey: Option<&Journey>, log_file: Option<&str>) -> String {
    let keyspace = &config.cassandra.keyspace;
    let (cql_host, cql_port) = config
        .cassandra
        .contact_points
        .first()
        .and_then(|c| c.rsplit_once(':'))
        .unwrap_or(("127.0.0.1", "9042"));
    let mut out = String::from("Where to look next\n");
    let mut item = |what: &str, text: String| {
        let _ = writeln!(out, "  {what:<18} {text}");
    };
    item(
        "rows in Cassandra",
        format!(
            "make cqlsh, then: SELECT * FROM {keyspace}.created_users LIMIT 5;\n{:21}(any cqlsh: cqlsh -k {keyspace} {cql_host} {cql_port})",
            ""
        ),
    );
    item(
        "runs in PostgreSQL",
        format!(
            "make psql, then: SELECT run_id, status, requested_users FROM {}.runs ORDER BY run_id DESC LIMIT 5;",
            config.postgres.schema
        ),
    );
    let admin = config.admin.bind.trim();
    if admin.ends_with(":0") {
        item(
            "the dashboard",
            format!(
                "tributary run serves it on a free port (admin.bind = {admin}), named in its log"
            ),
        );
    } else if !admin.is_empty() {
        item(
            "the dashboard",
            format!("tributary run, then open http://{admin}/ (live actors, lag, throughput)"),
        );
    }
    let query = config.telemetry.query_url.trim().trim_end_matches('/');
    match journey {
        Some(journey) => {
            item(
                "one run's journey",
                format!(
                    "trace {}: {}\n{:21}{query}/api/traces/{} (Jaeger's query API; {})",
                    journey.trace_id,
                    journey.line(),
                    "",
                    journey.trace_id,
                    JAEGER_UI_NOTE
                ),
            );
        }
        None if !query.is_empty() && config.telemetry.tracing_enabled() => item(
            "traces",
            format!(
                "{query}/api/traces?service={} (no trace of this demo found in Jaeger yet)",
                config.telemetry.service_name
            ),
        ),
        None => {}
    }
    if let Some(path) = log_file {
        item("the full log", path.to_owned());
    }
    out
}

/// What the local stack's :16686 serves, said plainly (README "Watching it").
const JAEGER_UI_NOTE: &str = "the local stack's Jaeger is built from its Go module, \
     which has no web UI: its page at / is a placeholder";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journey_is_the_trace_that_reached_cassandra_in_start_order() {
        let traces: Traces = serde_json::from_value(serde_json::json!({"data": [
            {"traceID": "aa", "spans": [
                {"operationName": "GET source page", "startTime": 10, "duration": 5000}]},
            {"traceID": "bb", "spans": [
                {"operationName": "INSERT created_users", "startTime": 40, "duration": 2500},
                {"operationName": "GET source page", "startTime": 10, "duration": 41200},
                {"operationName": "send users.raw", "startTime": 30, "duration": 12000},
                {"operationName": "INSERT created_users", "startTime": 50, "duration": 7100}]}
        ]}))
        .unwrap();
        let journey = Journey::pick(traces).unwrap();
        assert_eq!(journey.trace_id, "bb");
        assert_eq!(
            journey.line(),
            "GET source page 41.2 ms → send users.raw 12.0 ms → INSERT created_users ×2 2.5–7.1 ms"
        );
    }

    #[test]
    fn no_trace_reached_cassandra_is_no_journey() {
        let traces: Traces = serde_json::from_value(serde_json::json!({"data": [
            {"traceID": "aa", "spans": [
                {"operationName": "GET source page", "startTime": 10, "duration": 5000}]}
        ]}))
        .unwrap();
        assert_eq!(Journey::pick(traces), None);
        assert_eq!(Journey::pick(Traces { data: vec![] }), None);
    }
}
