//! Store clients: configuration and connection set-up for PostgreSQL, Kafka and
//! Cassandra, and the error type that says which store failed and whether to retry.

pub mod cassandra;
pub mod closing;
pub mod kafka;
pub mod postgres;
pub mod rebootstrap;
pub mod registry;

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

type Cause = Box<dyn std::error::Error + Send + Sync>;

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
    /// The store answered with an error. `transient` says whether retrying may help
    /// (timeouts, unavailable replicas) or not (syntax, permissions, schema mismatch).
    #[error("{service}: {what}")]
    Request {
        service: Service,
        what: String,
        transient: bool,
        #[source]
        cause: Cause,
    },
    /// The store refuses what the configuration asks of it and will go on refusing
    /// (a schema its compatibility rule rejects): an operator decides. Fatal.
    #[error("{service}: {what}")]
    Refused { service: Service, what: String },
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

    pub fn request(
        service: Service,
        what: impl Into<String>,
        transient: bool,
        cause: impl Into<Cause>,
    ) -> Self {
        StoreError::Request {
            service,
            what: what.into(),
            transient,
            cause: cause.into(),
        }
    }

    /// Whether retrying the operation later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Unreachable { .. } => true,
            StoreError::Request { transient, .. } => *transient,
            StoreError::Credentials { .. } | StoreError::Refused { .. } => false,
        }
    }
}
