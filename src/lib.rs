//! tributary: user records from an HTTP API into Apache Cassandra through PostgreSQL and
//! Apache Kafka, exactly once, every stage run by a supervised actor (see DESIGN.md).
//!
//! This crate is the service around the actors of `tributary-actors`: the command line,
//! configuration, telemetry and the schema of the three stores.
//!
//! # Layout
//!
//! - `main.rs`: the `tributary` command line (clap) and its exit codes.
//! - [`config`]: the root configuration, aggregated from each component's `Config`;
//!   loaded from `config/default.toml`, a profile file and `TRIBUTARY__…` environment
//!   variables, validated at start-up with errors that name the key.
//! - [`telemetry`]: `tracing` subscriber (text or JSON logs) and the OpenTelemetry
//!   exporter that sends spans over OTLP to Jaeger.
//! - [`schema`]: `tributary schema apply`: PostgreSQL migrations, the Cassandra
//!   keyspace and tables, the Kafka topics; idempotent, and it reports what changed.
//! - [`source`]: the embedded randomuser.me-compatible API (`tributary source`),
//!   deterministic by seed and page, with fault injection for tests.
//! - [`exit`]: the process exit codes and which errors map to them.

pub mod config;
pub mod exit;
pub mod schema;
pub mod source;
pub mod telemetry;
