//! tributary: user records from an HTTP API into Apache Cassandra through PostgreSQL and
//! Apache Kafka, exactly once, every stage run by a supervised actor (see DESIGN.md).
//!
//! This crate is the service around the actors of `tributary-actors`: the command line,
//! configuration, telemetry and the schema of the three stores.
//!
//! # Layout
//!
//! - `main.rs`: the `tributary` command line (clap) and its exit codes.
//! - [`admin`]: the admin HTTP server: probes, `/metrics`, `/api/status`, the dashboard,
//!   and test-fault routes with `--test-faults`.
//! - [`status`]: what `/api/status` serves and `tributary status` prints.
//! - [`config`]: the root configuration, aggregated from each component's `Config`
//!   (with the binary's own `[admin]` and `[supervision]`);
//!   loaded from `config/default.toml`, a profile file and `TRIBUTARY__…` environment
//!   variables, validated at start-up with errors that name the key.
//! - [`telemetry`]: `tracing` subscriber (text or JSON logs) and the OpenTelemetry
//!   exporter that sends spans over OTLP to Jaeger.
//! - [`run`]: `tributary run`: the supervised actor tree.
//! - [`runs`]: `tributary runs`: list the runs ledger, re-queue failed runs.
//! - [`schema`]: `tributary schema apply`: PostgreSQL migrations, the Cassandra
//!   keyspace and tables, the Kafka topics; idempotent, and it reports what changed.
//! - [`source`]: the embedded randomuser.me-compatible API (`tributary source`),
//!   deterministic by seed and page, with fault injection for tests.
//! - [`verify`]: `tributary verify`: PostgreSQL vs Kafka vs Cassandra, by user id and aggregates.
//! - [`demo`]: `tributary demo`: source, pipeline and verify in one process.
//! - [`exit`]: the process exit codes and which errors map to them.

pub mod admin;
pub mod config;
pub mod demo;
pub mod exit;
pub mod run;
pub mod runs;
pub mod schema;
pub mod source;
pub mod status;
pub mod telemetry;
pub mod verify;

/// The error and its causes on one line: "a: b: c".
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    tributary_actors::error_chain(error)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
