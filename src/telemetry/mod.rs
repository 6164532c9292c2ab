//! Logs and traces: a `tracing` subscriber that writes text or JSON logs and, when an
//! OTLP endpoint is configured, exports spans to Jaeger through OpenTelemetry.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use serde::Deserialize;
use std::io::IsTerminal as _;
use std::time::Duration;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::format::JsonFields;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};
use tributary_actors::validate::Findings;

pub mod jaeger;
mod logs;

/// `[telemetry]`: logs and traces.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `service.name` of exported spans: the name to pick in Jaeger's search.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// OTLP/HTTP endpoint of the trace collector (Jaeger), without the `/v1/traces`
    /// path. Empty turns trace export off.
    #[serde(default = "default_otlp_endpoint")]
    pub otlp_endpoint: String,
    /// Jaeger's query service (its API, and its UI where it has one), for the trace
    /// `tributary demo` points at. Empty: none.
    #[serde(default = "default_query_url")]
    pub query_url: String,
    /// Fraction of traces recorded and exported, 0.0 to 1.0. A trace started upstream
    /// keeps its parent's decision.
    #[serde(default = "default_sampling_ratio")]
    pub sampling_ratio: f64,
    /// How long shutdown waits for the last spans to be exported.
    #[serde(default = "default_export_timeout_ms")]
    pub export_timeout_ms: u64,
    /// Log line format: `text` for people, `json` for log collectors.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Which logs to write, in `tracing_subscriber::EnvFilter` syntax (e.g.
    /// `info,tributary=debug`). `RUST_LOG` overrides it when set.
    #[serde(default = "default_log_filter")]
    pub log_filter: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

fn default_service_name() -> String {
    "tributary".into()
}
fn default_otlp_endpoint() -> String {
    "http://127.0.0.1:4318".into()
}
fn default_query_url() -> String {
    "http://127.0.0.1:16686".into()
}
fn default_sampling_ratio() -> f64 {
    1.0
}
fn default_export_timeout_ms() -> u64 {
    5_000
}
fn default_log_filter() -> String {
    "info,scylla=warn,tokio_postgres=warn,refinery_core=warn".into()
}

impl Default for Config {
    fn default() -> Self {
        Self {
            service_name: default_service_name(),
            otlp_endpoint: default_otlp_endpoint(),
            query_url: default_query_url(),
            sampling_ratio: default_sampling_ratio(),
            export_timeout_ms: default_export_timeout_ms(),
            log_format: LogFormat::default(),
            log_filter: default_log_filter(),
        }
    }
}

impl Config {
    pub fn validate(&self, f: &mut Findings) {
        f.non_empty("service_name", &self.service_name);
        if !(0.0..=1.0).contains(&self.sampling_ratio) {
            f.invalid(
                "sampling_ratio",
                format!(
                    "{} is out of range: expected 0.0 to 1.0",
                    self.sampling_ratio
                ),
            );
        }
        // Empty turns tracing off, or the demo's trace.
        for (key, url) in [
            ("otlp_endpoint", self.otlp_endpoint.trim()),
            ("query_url", self.query_url.trim()),
        ] {
            if !url.is_empty() {
                f.http_url(key, url);
            }
        }
        f.range("export_timeout_ms", self.export_timeout_ms, 100, 600_000);
        if let Err(e) = parse_filter(&self.log_filter) {
            f.invalid("log_filter", format!("not a valid filter: {e}"));
        }
    }

    pub fn tracing_enabled(&self) -> bool {
        !self.otlp_endpoint.trim().is_empty()
    }

    /// Jaeger's query service without a trailing slash, when traces are exported and a
    /// query URL is configured.
    pub fn query_base(&self) -> Option<&str> {
        let url = self.query_url.trim().trim_end_matches('/');
        (self.tracing_enabled() && !url.is_empty()).then_some(url)
    }
}

/// Trace export could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("telemetry: cannot build the OTLP exporter for {endpoint}")]
    Exporter {
        endpoint: String,
        #[source]
        cause: opentelemetry_otlp::ExporterBuildError,
    },
    #[error("telemetry: a global subscriber is already installed")]
    AlreadyInstalled(#[source] tracing_subscriber::util::TryInitError),
}

/// Builds the OpenTelemetry tracer provider, or `None` when export is off. Spans are
/// batched and exported from the SDK's own thread, off the async workers.
///
/// # Errors
/// The exporter cannot be built (e.g. a malformed endpoint).
pub fn tracer_provider(config: &Config) -> Result<Option<SdkTracerProvider>, TelemetryError> {
    if !config.tracing_enabled() {
        return Ok(None);
    }
    tributary_actors::install_tls_provider();
    let base = config.otlp_endpoint.trim().trim_end_matches('/');
    let endpoint = format!("{base}/v1/traces");
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(&endpoint)
        .with_timeout(Duration::from_millis(config.export_timeout_ms))
        .build()
        .map_err(|cause| TelemetryError::Exporter { endpoint, cause })?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.sampling_ratio,
        ))))
        .with_resource(
            Resource::builder()
                .with_service_name(config.service_name.clone())
                .build(),
        )
        .build();
    Ok(Some(provider))
}

/// Where log lines go.
pub enum Logs {
    /// Standard error, through the configured filter: every command but the demo.
    Stderr,
    /// The demo's display owns the terminal: only warnings and errors reach it, through
    /// `terminal` (see `DEMO_TERMINAL_FILTER`); every line the configured filter passes
    /// goes to `file`.
    Demo {
        file: std::fs::File,
        terminal: BoxMakeWriter,
    },
}

/// What reaches the terminal under the demo's display: our warnings, and the client
/// libraries' errors only. Their warnings are about conditions they retry themselves
/// (librdkafka's "Failed to acquire transactional PID" while a fresh broker loads its
/// transaction log): noise to someone watching a demo, kept in the log file.
const DEMO_TERMINAL_FILTER: &str = "error,tributary=warn,tributary_actors=warn";

/// A log filter from text, field values matched literally: with tracing-subscriber's
/// default, a field value is a regular expression compiled to a DFA, and a few hundred
/// bytes of filter took 2 GB to compile (found by the config_text fuzz target).
fn parse_filter(text: &str) -> Result<EnvFilter, tracing_subscriber::filter::ParseError> {
    filter_builder().parse(text)
}

fn filter_builder() -> tracing_subscriber::filter::Builder {
    EnvFilter::builder().with_regex(false)
}

/// The configured filter, or `RUST_LOG`'s when it is set and valid.
fn log_filter(config: &Config) -> EnvFilter {
    std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| parse_filter(&f).ok())
        .unwrap_or_else(|| filter_builder().parse_lossy(&config.log_filter))
}

/// The subscriber layers: the log formatters and, with a provider, the OpenTelemetry
/// layer.
pub fn layers(
    config: &Config,
    provider: Option<&SdkTracerProvider>,
    sink: Logs,
) -> Vec<Box<dyn Layer<Registry> + Send + Sync>> {
    let json = config.log_format == LogFormat::Json;
    let mut layers = Vec::new();
    match sink {
        Logs::Stderr => layers.push(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .fmt_fields(JsonFields::new())
                .event_format(logs::Flat {
                    json,
                    ansi: !json && std::io::stderr().is_terminal(),
                })
                .with_filter(log_filter(config))
                .boxed(),
        ),
        Logs::Demo { file, terminal } => {
            layers.push(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::sync::Mutex::new(file))
                    .fmt_fields(JsonFields::new())
                    .event_format(logs::Flat { json, ansi: false })
                    .with_filter(log_filter(config))
                    .boxed(),
            );
            layers.push(
                tracing_subscriber::fmt::layer()
                    .with_writer(terminal)
                    .fmt_fields(JsonFields::new())
                    .event_format(logs::Flat {
                        json,
                        ansi: !json && std::io::stderr().is_terminal(),
                    })
                    .with_filter(
                        parse_filter(DEMO_TERMINAL_FILTER).expect("the demo's filter parses"),
                    )
                    .boxed(),
            );
        }
    }
    if let Some(provider) = provider {
        let tracer = provider.tracer("tributary");
        // Only our own spans: client libraries' (scylla's per-request spans) would bury
        // the pipeline's; actor lifetimes are spans too, hours long and not part of any
        // record's journey. Events stay: they become span events.
        let exported = filter_fn(|meta| {
            !meta.is_span()
                || (meta.target().starts_with("tributary") && !logs::is_actor_span(meta.name()))
        });
        layers.push(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(exported)
                .boxed(),
        );
    }
    layers
}

/// Installed telemetry. Call [`Telemetry::shutdown`] before exiting so the last spans
/// are exported.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes and stops trace export. Errors are reported, not returned: telemetry
    /// must never change the outcome of the command.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown()
        {
            eprintln!("telemetry: spans not exported at shutdown: {error}");
        }
    }
}

/// Installs the global subscriber.
///
/// # Errors
/// The exporter cannot be built, or a subscriber is already installed.
pub fn init(config: &Config, sink: Logs) -> Result<Telemetry, TelemetryError> {
    let provider = tracer_provider(config)?;
    tracing_subscriber::registry()
        .with(layers(config, provider.as_ref(), sink))
        .try_init()
        .map_err(TelemetryError::AlreadyInstalled)?;
    Ok(Telemetry { provider })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_with_field_values_as_literals() {
        assert!(parse_filter(DEMO_TERMINAL_FILTER).is_ok());
        assert!(parse_filter(&Config::default().log_filter).is_ok());
        // A field value is text to compare, whatever it holds: no pattern to compile.
        let exponential = format!("(a|b)*a{}", "(a|b)".repeat(30));
        assert!(parse_filter(&format!("info,[span{{f={exponential}}}]=debug")).is_ok());
        assert!(parse_filter("info,[").is_err());
    }
}
