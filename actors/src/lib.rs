//! tributary's actors and the store clients they open.
//!
//! The pipeline (see DESIGN.md) is a tree of supervised ractor actors: ingest (scheduler,
//! fetchers, stager), publish (producer) and process (coordinator, then per partition a
//! consumer, transformer and writer). Each actor opens its connections in `pre_start`, so
//! this crate also owns the store clients and their configuration.
//!
//! # Layout
//!
//! - [`failpoint`]: the named places where tests make tributary fail on purpose.
//! - [`format`]: the record format of `users.raw`: Avro in the Confluent wire format (or
//!   the API's JSON), and every header of our Kafka records ([`format::headers`]).
//! - [`ingest`]: the ingest subtree (stager, fetchers, scheduler) and its config.
//! - [`leader`]: the PostgreSQL advisory lock that makes one instance the leader,
//!   which alone runs ingest and publish.
//! - [`process`]: the process subtree: coordinator, and per partition consumer,
//!   transformer and writer (Kafka → Cassandra, LWT-fenced commits); their messages in
//!   [`process::messages`], one partition's bookkeeping in [`process::handle`], the
//!   writer's Cassandra in [`process::partition_store`].
//! - [`publish`]: the transactional producer (outbox → Kafka): its outbox read, checkpoint
//!   and Kafka transaction in modules of their own.
//! - [`observe`]: the process's own counters and partition status, for `/api/status`
//!   and the metrics.
//! - [`trace`]: W3C trace context through Kafka headers.
//! - [`directory`]: how an actor finds its downstream sibling's current incarnation.
//! - [`model`]: data crossing actors: [`model::RawUser`] as the source returns it.
//! - [`secret`]: [`Secret`], a string that never prints, for passwords and credentials.
//! - [`store`]: one module per store, each with its `Config` (the user documentation of
//!   its keys) and the functions that open a connection, plus [`store::StoreError`], which
//!   names the store that failed and how (`Service::error` maps a request's error).
//!   - [`store::postgres`]: connections and TLS (tokio-postgres, deadpool pool); the SQL
//!     is its users' (`ingest::staging`, `publish::outbox`).
//!   - [`store::kafka`]: librdkafka client properties shared by producer, consumer, admin;
//!     `kafka/cluster.rs` asks the cluster for metadata (saying why a connection failed)
//!     and watermarks.
//!   - [`store::tls`]: every store's `sslmode` and `sslrootcert`, checked in one place.
//!   - [`store::cassandra`]: scylla driver sessions, replication and consistency levels.
//!   - [`store::registry`]: a Confluent-compatible schema registry's REST API.
//! - [`supervisor`]: one_for_one / one_for_all / rest_for_one supervision for ractor,
//!   restart intensity and escalation, jittered backoff, liveness pings, restart counts;
//!   and [`supervisor::shell`], the kind, span and fault hook every actor shares.
//! - [`upkeep`]: retention (outbox, runs, quarantine) and the reconciler that checks
//!   every run end to end by its digest (leader only).
//! - [`validate`]: start-up checks of config values; every finding names its key.

pub mod directory;
pub mod failpoint;
pub mod format;
pub mod ingest;
pub mod leader;
pub mod model;
pub mod observe;
pub mod process;
pub mod publish;
pub mod secret;
pub mod store;
pub mod supervisor;
pub mod trace;
pub mod upkeep;
pub mod validate;

pub use secret::Secret;

/// Installs rustls' ring crypto provider for the process, once. Every HTTP client (the
/// fetchers' and the OTLP exporter's) uses rustls without a built-in provider, so this
/// must run before any client is built; a provider installed earlier is kept.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An error and its causes on one line ("a: b: c"), skipping a cause whose text the line
/// already holds (some drivers repeat their cause in their own message).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
