//! Jaeger's query API, read back: the latest trace of this service that reached
//! Cassandra, hop by hop. What `tributary demo` prints at its end and the dashboard's
//! journey panel shows (the local stack's Jaeger has no web UI to show it).

use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Config;

/// The span that ends a record's journey: its Cassandra commit.
const LAST_HOP: &str = "INSERT created_users";

/// Traces as Jaeger's query API returns them (`/api/traces`), the fields we read.
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

/// One run's journey (its users travel in one trace): the trace and its hops in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Journey {
    pub trace_id: String,
    /// The trace in Jaeger's query API.
    pub url: String,
    pub hops: Vec<Hop>,
}

/// One kind of span in a journey. A run's trace holds one span per batch of the later
/// hops (one per partition): repeats are counted, with their range of durations.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hop {
    pub name: String,
    pub count: usize,
    pub min_ms: f64,
    pub max_ms: f64,
}

impl Journey {
    /// The trace that reached Cassandra with the most spans, among those Jaeger returned.
    fn pick(traces: Traces, query_url: &str) -> Option<Journey> {
        let trace = traces
            .data
            .into_iter()
            .filter(|t| t.spans.iter().any(|s| s.operation == LAST_HOP))
            .max_by_key(|t| t.spans.len())?;
        let mut spans = trace.spans;
        spans.sort_by_key(|s| s.start_us);
        let mut hops: Vec<Hop> = Vec::new();
        for span in spans {
            let ms = span.duration as f64 / 1000.0;
            match hops.iter_mut().find(|h| h.name == span.operation) {
                Some(hop) => {
                    hop.count += 1;
                    hop.min_ms = hop.min_ms.min(ms);
                    hop.max_ms = hop.max_ms.max(ms);
                }
                None => hops.push(Hop {
                    name: span.operation,
                    count: 1,
                    min_ms: ms,
                    max_ms: ms,
                }),
            }
        }
        Some(Journey {
            url: format!("{query_url}/api/traces/{}", trace.trace_id),
            trace_id: trace.trace_id,
            hops,
        })
    }

    /// `GET source page 41.2 ms → … → INSERT created_users ×6 33.0–110.4 ms`
    pub fn line(&self) -> String {
        self.hops
            .iter()
            .map(|hop| {
                if hop.count == 1 {
                    format!("{} {:.1} ms", hop.name, hop.min_ms)
                } else {
                    format!(
                        "{} ×{} {:.1}–{:.1} ms",
                        hop.name, hop.count, hop.min_ms, hop.max_ms
                    )
                }
            })
            .collect::<Vec<_>>()
            .join(" → ")
    }
}

/// A client of Jaeger's query API for this service's traces.
#[derive(Clone)]
pub struct Query {
    client: reqwest::Client,
    /// `telemetry.query_url`, without a trailing slash.
    pub url: String,
    service: String,
}

impl Query {
    /// `None` when traces are not exported or no query URL is configured.
    pub fn new(config: &Config) -> Option<Query> {
        let url = config.query_base()?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()
            .ok()?;
        Some(Query {
            client,
            url: url.to_owned(),
            service: config.service_name.clone(),
        })
    }

    /// The journey of a trace that started after `since` and reached Cassandra;
    /// `Ok(None)` when Jaeger holds none yet.
    ///
    /// # Errors
    /// Jaeger does not answer, or not with traces.
    pub async fn latest_journey(&self, since: SystemTime) -> Result<Option<Journey>, String> {
        let start_us = since
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros()
            .to_string();
        let response = self
            .client
            .get(format!("{}/api/traces", self.url))
            .query(&[
                ("service", self.service.as_str()),
                ("operation", LAST_HOP),
                ("start", start_us.as_str()),
                ("limit", "5"),
            ])
            .send()
            .await
            .map_err(|e| format!("Jaeger at {} does not answer: {e}", self.url))?;
        let status = response.status();
        // An unknown service (nothing exported yet) is a 200 with no data; anything but
        // a success is an error to show.
        if !status.is_success() {
            return Err(format!("Jaeger at {} answered {status}", self.url));
        }
        let traces: Traces = response
            .json()
            .await
            .map_err(|e| format!("Jaeger at {} answered no traces: {e}", self.url))?;
        Ok(Journey::pick(traces, &self.url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traces(value: serde_json::Value) -> Traces {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn the_journey_is_the_trace_that_reached_cassandra_in_start_order() {
        let found = traces(serde_json::json!({"data": [
            {"traceID": "aa", "spans": [
                {"operationName": "GET source page", "startTime": 10, "duration": 5000}]},
            {"traceID": "bb", "spans": [
                {"operationName": "INSERT created_users", "startTime": 40, "duration": 2500},
                {"operationName": "GET source page", "startTime": 10, "duration": 41200},
                {"operationName": "send users.raw", "startTime": 30, "duration": 12000},
                {"operationName": "INSERT created_users", "startTime": 50, "duration": 7100}]}
        ]}));
        let journey = Journey::pick(found, "http://jaeger:16686").unwrap();
        assert_eq!(journey.trace_id, "bb");
        assert_eq!(journey.url, "http://jaeger:16686/api/traces/bb");
        assert_eq!(
            journey.line(),
            "GET source page 41.2 ms → send users.raw 12.0 ms → INSERT created_users ×2 2.5–7.1 ms"
        );
    }

    #[test]
    fn no_trace_reached_cassandra_is_no_journey() {
        let found = traces(serde_json::json!({"data": [
            {"traceID": "aa", "spans": [
                {"operationName": "GET source page", "startTime": 10, "duration": 5000}]}
        ]}));
        assert_eq!(Journey::pick(found, "http://j"), None);
        assert_eq!(Journey::pick(Traces { data: vec![] }, "http://j"), None);
    }
}
