//! The admin HTTP server of `tributary run` (actix-web, loopback by default).
//!
//! | route | what |
//! |---|---|
//! | `/healthz` | 200 while the process lives |
//! | `/readyz` | 200 when every store answers and every actor is running, else 503 |
//! | `/metrics` | Prometheus text format |
//! | `/api/status` | JSON: actor tree, partitions, records and throughput ([`crate::status`]) |
//! | `/api/journey` | JSON: the latest sampled run's trace from Jaeger, hop by hop ([`crate::telemetry::jaeger`]) |
//! | `/` | the live dashboard (one self-contained page) |
//! | `POST /test/panic/{actor}` | only with `tributary run --test-faults`: arms a panic in the next message an actor of that kind handles, for the chaos suite |
//!
//! With `[admin] token` set, every route but `/healthz` and `/readyz` (probes) needs
//! `Authorization: Bearer <token>` or `?token=<token>`; binding a non-loopback address
//! without a token is a configuration error.
//!
//! Hostile clients: no route takes a body, so one announced over [`MAX_BODY_BYTES`], or
//! chunked, gets 413 before it is read; a client that has not sent its request head within
//! [`CLIENT_REQUEST_TIMEOUT`] gets 408 and loses its connection; a head over actix's
//! 128 KiB gets 431 and so does one of more than 96 headers; at most [`MAX_CONNECTIONS`]
//! connections are served at once.

mod readiness;

use crate::status::Observed;
use crate::telemetry::jaeger::Query;
use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};
use tributary_actors::failpoint;
use tributary_actors::secret::Secret;

pub use readiness::Readiness;

/// The process's Prometheus recorder, installed on first use. Histograms get buckets
/// (seconds) so Prometheus can aggregate them across instances.
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5,
                0.75, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 30.0,
            ];
            let recorder = PrometheusBuilder::new()
                .set_buckets(&buckets)
                .map_err(|e| tracing::warn!(error = %e, "prometheus buckets refused"))
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => Some(handle),
                Err(error) => {
                    tracing::warn!(error = %error, "a metrics recorder is already installed: /metrics stays empty");
                    None
                }
            }
        })
        .as_ref()
}

/// How often histogram samples are folded into their buckets. The recorder queues every
/// sample until it renders or runs upkeep, and it renders only when `/metrics` is
/// scraped: unscraped, the end-to-end latency histogram (one sample per record) grew
/// the process by ~14 bytes per record, without bound (heaptrack: 10.5 of the 10.8 MB
/// still held after 640,000 records). Upkeep bounds it by what arrives in one period.
const METRICS_UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Installs the Prometheus recorder (see [`prometheus`]) and runs its upkeep every
/// [`METRICS_UPKEEP_EVERY`] until the returned task is aborted. `None` when no recorder
/// of ours could be installed (metrics are then not recorded at all).
pub fn spawn_metrics_upkeep() -> Option<tokio::task::JoinHandle<()>> {
    let handle = prometheus()?;
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(METRICS_UPKEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    }))
}

/// What the handlers share.
pub struct AdminState {
    pub observed: Observed,
    pub readiness: Readiness,
    token: Option<Secret>,
    journey: Journeys,
}

impl AdminState {
    pub fn new(
        observed: Observed,
        readiness: Readiness,
        token: Option<Secret>,
        jaeger: Option<Query>,
    ) -> Self {
        Self {
            observed,
            readiness,
            token,
            journey: Journeys {
                jaeger,
                last: Mutex::default(),
            },
        }
    }
}

/// How far back the journey panel looks for a trace.
const JOURNEY_LOOKBACK: Duration = Duration::from_secs(600);
/// An answer of Jaeger's is reused this long: every open dashboard asks.
const JOURNEY_REUSE: Duration = Duration::from_secs(5);

/// The dashboard's journey panel: Jaeger asked at most every [`JOURNEY_REUSE`].
struct Journeys {
    jaeger: Option<Query>,
    last: Mutex<Option<(Instant, serde_json::Value)>>,
}

impl Journeys {
    async fn latest(&self) -> serde_json::Value {
        let Some(jaeger) = &self.jaeger else {
            return serde_json::json!({
                "available": false,
                "reason": "traces are not exported or not queried (telemetry.otlp_endpoint, telemetry.query_url)",
            });
        };
        if let Some((at, answer)) = &*self.last.lock().unwrap_or_else(|p| p.into_inner())
            && at.elapsed() < JOURNEY_REUSE
        {
            return answer.clone();
        }
        let since = SystemTime::now()
            .checked_sub(JOURNEY_LOOKBACK)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let answer = match jaeger.latest_journey(since).await {
            Ok(journey) => serde_json::json!({ "available": true, "journey": journey }),
            Err(error) => serde_json::json!({ "available": false, "reason": error }),
        };
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((Instant::now(), answer.clone()));
        answer
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().body("ok\n")
}

async fn readyz(state: web::Data<AdminState>) -> HttpResponse {
    let report = state.readiness.check(&state.observed).await;
    if report.ready {
        HttpResponse::Ok().json(report)
    } else {
        HttpResponse::ServiceUnavailable().json(report)
    }
}

async fn metrics_text() -> HttpResponse {
    match prometheus() {
        Some(handle) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(handle.render()),
        None => HttpResponse::ServiceUnavailable().body("metrics recorder not installed\n"),
    }
}

async fn api_status(state: web::Data<AdminState>) -> HttpResponse {
    HttpResponse::Ok().json(state.observed.status())
}

async fn api_journey(state: web::Data<AdminState>) -> HttpResponse {
    HttpResponse::Ok().json(state.journey.latest().await)
}

async fn dashboard() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        // The page is self-contained: forbid anything from elsewhere.
        .insert_header((
            "Content-Security-Policy",
            "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:",
        ))
        .body(include_str!("dashboard.html"))
}

async fn panic_actor(kind: web::Path<String>) -> HttpResponse {
    if failpoint::arm(&kind) {
        tracing::warn!(actor = %kind, "test fault: panic armed");
        HttpResponse::Ok().body(format!("panic armed for the next {kind} message\n"))
    } else {
        HttpResponse::NotFound().body(format!(
            "unknown actor kind {kind:?}; known: {}\n",
            failpoint::kinds().collect::<Vec<_>>().join(", ")
        ))
    }
}

/// The largest request body an admin route accepts: none needs one.
const MAX_BODY_BYTES: u64 = 4096;
/// How long a client has to send its request head (a slow-loris client holds a
/// connection no longer).
const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more wait in the listen backlog. The single worker
/// serves a dashboard or a scraper in microseconds, so this bounds only what an
/// idle or hostile flood of connections can hold (memory, file descriptors).
const MAX_CONNECTIONS: usize = 256;

/// Refuses a body announced larger than [`MAX_BODY_BYTES`], or of no announced length
/// (`Transfer-Encoding`: a chunked body could be endless), before reading it. A body
/// announced by length is never read: the connection closes with the answer. A chunked
/// one, actix-http (3.19) still drains after the answer for as long as the client sends
/// it, with no timeout for a request body: [`MAX_CONNECTIONS`] bounds how many such
/// clients can be held.
async fn refuse_large_bodies(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let announced = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let refusal = if req.headers().contains_key("transfer-encoding") {
        Some("request body of no announced length: admin routes take none\n".to_owned())
    } else if announced.is_some_and(|n| n > MAX_BODY_BYTES) {
        Some(format!(
            "request body too large: admin routes take at most {MAX_BODY_BYTES} bytes\n"
        ))
    } else {
        None
    };
    if let Some(refusal) = refusal {
        return Ok(req.into_response(HttpResponse::PayloadTooLarge().force_close().body(refusal)));
    }
    next.call(req).await
}

/// Probes stay open: orchestrators call them without credentials, and they reveal
/// nothing beyond up/ready.
fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz")
}

/// The token the request presents: `Authorization: Bearer …` or `?token=…`.
fn presented_token(req: &HttpRequest) -> Option<String> {
    let header = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    header.or_else(|| {
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .ok()
            .and_then(|q| q.get("token").cloned())
    })
}

/// Compares without stopping at the first differing byte.
fn same_token(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn require_token(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let expected = req
        .app_data::<web::Data<AdminState>>()
        .and_then(|s| s.token.clone());
    if let Some(expected) = expected
        && !is_probe(req.path())
    {
        let ok = presented_token(req.request())
            .is_some_and(|t| same_token(t.as_bytes(), expected.expose().as_bytes()));
        if !ok {
            return Ok(req.into_response(
                HttpResponse::Unauthorized()
                    .insert_header(("WWW-Authenticate", "Bearer realm=\"tributary\""))
                    .body(
                        "admin token required: Authorization: Bearer <token> or ?token=<token>\n",
                    ),
            ));
        }
    }
    next.call(req).await
}

/// Starts the server on `listener`; the test-fault routes exist only with `test_faults`.
///
/// # Errors
/// The listener cannot be used.
pub fn serve(
    listener: std::net::TcpListener,
    state: AdminState,
    test_faults: bool,
) -> std::io::Result<actix_web::dev::Server> {
    let state = web::Data::new(state);
    Ok(HttpServer::new(move || {
        let app = App::new()
            .app_data(state.clone())
            .wrap(from_fn(require_token))
            // Outermost: an oversized body is refused before the token is looked at.
            .wrap(from_fn(refuse_large_bodies))
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(metrics_text))
            .route("/api/status", web::get().to(api_status))
            .route("/api/journey", web::get().to(api_journey))
            .route("/", web::get().to(dashboard));
        if test_faults {
            app.route("/test/panic/{kind}", web::post().to(panic_actor))
        } else {
            app
        }
    })
    .workers(1)
    .client_request_timeout(CLIENT_REQUEST_TIMEOUT)
    // A refused or answered client gets a second to take the answer and close, then the
    // connection is dropped: closing is not left to the client.
    .client_disconnect_timeout(Duration::from_secs(1))
    .max_connections(MAX_CONNECTIONS)
    .disable_signals()
    .listen(listener)?
    .run())
}

#[cfg(test)]
mod tests;
