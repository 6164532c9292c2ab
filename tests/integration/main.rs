//! Integration tests against the real stack started by `make stack-up` (see
//! stack/stack.sh). Every test uses its own PostgreSQL schema, Cassandra keyspace and
//! Kafka topics, so tests run in parallel and never see each other's data.
//!
//! One test binary (rather than one per file) keeps link time down.

mod cli;
mod common;
mod compose;
mod consumption;
mod dashboard;
mod ingest;
mod observe;
mod process;
mod registry;
mod source_contract;
mod stores;
mod telemetry;
mod upkeep;
