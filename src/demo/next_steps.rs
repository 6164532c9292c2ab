//! The demo's last words: where the data went and where to look at it — the rows in
//! Cassandra and PostgreSQL, the dashboard of a running instance, and one run's journey
//! as Jaeger recorded it (asked from Jaeger's query API).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use crate::config::Config;
use crate::telemetry::jaeger::{Journey, Query};

/// How long the demo waits for its spans to reach Jaeger (the exporter batches every
/// few seconds).
const TRACE_WAIT: Duration = Duration::from_secs(15);

/// Asks Jaeger for a trace of this service that started after `since` and reached
/// Cassandra; waits a little for the exporter's last batch. `None` when tracing is off
/// or Jaeger does not answer.
pub async fn journey(config: &Config, since: SystemTime) -> Option<Journey> {
    let query = Query::new(&config.telemetry)?;
    let deadline = tokio::time::Instant::now() + TRACE_WAIT;
    loop {
        if let Ok(Some(journey)) = query.latest_journey(since).await {
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
    match journey {
        Some(journey) => {
            item(
                "one run's journey",
                format!(
                    "trace {}: {}\n{:21}{} (Jaeger's query API; {})",
                    journey.trace_id,
                    journey.line(),
                    "",
                    journey.url,
                    JAEGER_UI_NOTE
                ),
            );
        }
        None => {
            if let Some(query) = config.telemetry.query_base() {
                item(
                    "traces",
                    format!(
                        "{query}/api/traces?service={} (no trace of this demo found in Jaeger yet)",
                        config.telemetry.service_name
                    ),
                );
            }
        }
    }
    if let Some(path) = log_file {
        item("the full log", path.to_owned());
    }
    out
}

/// What the local stack's :16686 serves, said plainly (README "Watching it").
const JAEGER_UI_NOTE: &str = "the local stack's Jaeger is built from its Go module, \
     which has no web UI: its page at / is a placeholder";
