//! Store clients: configuration and connection set-up for PostgreSQL, Kafka, Cassandra
//! and the schema registry, and the error type that says which store failed and how.
//!
//! Whether to retry is the supervisor's call, not the error's: an actor whose store
//! fails is restarted with backoff, and a failure that keeps coming back exhausts its
//! supervisor's restart intensity and escalates. Errors that retrying cannot fix and
//! that tributary knows of at start-up ([`StoreError::Refused`],
//! [`StoreError::Credentials`], [`StoreError::Tls`], configuration) are refused before
//! any actor starts. A TLS handshake the server's certificate fails is reported as
//! [`StoreError::Unreachable`] (the driver's error says why): at start-up that exits 2
//! like any unreachable store; at run time it restarts the actor until its supervisor
//! escalates.

pub mod cassandra;
pub mod closing;
pub mod kafka;
pub mod postgres;
pub mod rebootstrap;
pub mod registry;
pub mod tls;

use std::fmt;

/// The external services tributary depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Postgres,
    Kafka,
    Cassandra,
    /// The Confluent-compatible schema registry of `users.raw`'s Avro records.
    Registry,
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Service::Postgres => "postgresql",
            Service::Kafka => "kafka",
            Service::Cassandra => "cassandra",
            Service::Registry => "schema registry",
        })
    }
}

/// What a store said, kept as the error's source.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

impl Service {
    /// The error mapping of a request to this store, for `map_err`:
    /// `.map_err(Service::Cassandra.error("read a run's rows"))`.
    pub fn error<E: Into<Cause>>(self, what: impl Into<String>) -> impl Fn(E) -> StoreError {
        let what = what.into();
        move |cause| StoreError::request(self, what.clone(), cause)
    }
}

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No connection could be made. Transient: the store may be restarting.
    #[error("{service} is unreachable at {endpoint}")]
    Unreachable {
        service: Service,
        endpoint: String,
        #[source]
        cause: Cause,
    },
    /// A request to the store failed: it answered with an error, timed out, or the
    /// client could not send it.
    #[error("{service}: {what}")]
    Request {
        service: Service,
        what: String,
        #[source]
        cause: Cause,
    },
    /// The store refuses what the configuration asks of it and will go on refusing
    /// (a schema its compatibility rule rejects): an operator decides. Fatal.
    #[error("{service}: {what}")]
    Refused { service: Service, what: String },
    /// The TLS set-up the configuration asks for cannot be made (an unreadable or empty
    /// certificate file). Fatal.
    #[error("{service}: TLS: {what}")]
    Tls { service: Service, what: String },
    /// A credential file named in the configuration cannot be read. Fatal.
    #[error("{service}: cannot read credential file")]
    Credentials {
        service: Service,
        #[source]
        cause: std::io::Error,
    },
}

impl StoreError {
    pub fn unreachable(
        service: Service,
        endpoint: impl Into<String>,
        cause: impl Into<Cause>,
    ) -> Self {
        StoreError::Unreachable {
            service,
            endpoint: endpoint.into(),
            cause: cause.into(),
        }
    }

    pub fn request(service: Service, what: impl Into<String>, cause: impl Into<Cause>) -> Self {
        StoreError::Request {
            service,
            what: what.into(),
            cause: cause.into(),
        }
    }
}
