//! PostgreSQL: its configuration and every connection tributary makes to it (the pool,
//! the producer's LISTEN, the leader's lock), TLS included. The SQL lives with its
//! users: staging in `ingest/staging.rs`, the outbox in `publish/outbox.rs`.
//!
//! Every connection sets `search_path` to the configured schema, so SQL in this project
//! names tables unqualified and tests isolate themselves with a schema of their own.

use super::tls::{self, SslMode};
use super::{Service, StoreError};
use crate::secret::{self, Secret};
use crate::validate::Findings;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// `[postgres]`: where the staging database lives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Host name or IP address of the PostgreSQL server.
    #[serde(default = "default_host")]
    pub host: String,
    /// TCP port of the server. The local stack runs its own cluster on 55432, away from
    /// a system PostgreSQL on 5432.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Role to connect as.
    #[serde(default = "default_user")]
    pub user: String,
    /// Database holding tributary's schema.
    #[serde(default = "default_dbname")]
    pub dbname: String,
    /// Schema holding tributary's tables (runs, staged_users, quarantine) and the
    /// migration history. Created by `tributary schema apply`.
    #[serde(default = "default_schema")]
    pub schema: String,
    /// Password. Only from the environment (`TRIBUTARY__POSTGRES__PASSWORD`), never from
    /// a config file; unset means no password (trust or peer authentication).
    #[serde(default)]
    pub password: Option<Secret>,
    /// File holding the password (e.g. a mounted secret); wins over `password`.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Connections in the pool shared by the actors.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// How long to wait for a connection before reporting PostgreSQL unreachable.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Whether the connection is encrypted: `disable` (plaintext, the local stacks) or
    /// `verify-full` (TLS, as libpq's mode of that name: the server's certificate must
    /// chain to `sslrootcert` and name `host`).
    #[serde(default)]
    pub sslmode: SslMode,
    /// PEM file of the certificate authorities the server's certificate is checked
    /// against; required with `sslmode = "verify-full"`.
    #[serde(default)]
    pub sslrootcert: Option<PathBuf>,
    /// PEM file of a client certificate (then its intermediates) to present when the
    /// server asks for one; with `sslkey`, and only with `sslmode = "verify-full"`.
    #[serde(default)]
    pub sslcert: Option<PathBuf>,
    /// PEM file of `sslcert`'s private key (a file, like the passwords: never inline).
    #[serde(default)]
    pub sslkey: Option<PathBuf>,
}

/// The TLS connector of every PostgreSQL connection. With `sslmode = "disable"` it is
/// never asked to connect (the client speaks plaintext), so one type serves both modes.
pub type Tls = tokio_postgres_rustls::MakeRustlsConnect;

fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_port() -> u16 {
    55432
}
fn default_user() -> String {
    "postgres".into()
}
fn default_dbname() -> String {
    "postgres".into()
}
fn default_schema() -> String {
    "tributary".into()
}
fn default_pool_size() -> usize {
    8
}
fn default_connect_timeout_ms() -> u64 {
    5_000
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: default_host(),
            port: default_port(),
            user: default_user(),
            dbname: default_dbname(),
            schema: default_schema(),
            password: None,
            password_file: None,
            pool_size: default_pool_size(),
            connect_timeout_ms: default_connect_timeout_ms(),
            sslmode: SslMode::Disable,
            sslrootcert: None,
            sslcert: None,
            sslkey: None,
        }
    }
}

impl Config {
    pub fn validate(&self, f: &mut Findings) {
        f.non_empty("host", &self.host);
        f.range("port", self.port, 1, u16::MAX);
        f.non_empty("user", &self.user);
        f.non_empty("dbname", &self.dbname);
        f.identifier("schema", &self.schema, 63);
        f.range("pool_size", self.pool_size, 1, 1_000);
        f.range("connect_timeout_ms", self.connect_timeout_ms, 100, 600_000);
        self.tls_settings().validate(f);
    }

    /// The NOTIFY channel the stager signals after each staged run and the producer
    /// listens on; per schema, so instances on other schemas are not woken.
    pub fn staged_channel(&self) -> String {
        let mut channel = format!("staged_{}", self.schema);
        channel.truncate(63); // PostgreSQL's identifier length limit
        channel
    }

    /// `host:port`, for messages.
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The tokio-postgres connection settings, credentials resolved.
    ///
    /// # Errors
    /// `password_file` is set but cannot be read.
    pub fn client_config(&self) -> Result<tokio_postgres::Config, StoreError> {
        let mut pg = tokio_postgres::Config::new();
        pg.host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(&self.dbname)
            .application_name("tributary")
            .connect_timeout(Duration::from_millis(self.connect_timeout_ms))
            // statement_timeout: a query stuck on a paused or partitioned server fails
            // (and is retried by its actor) instead of hanging the actor forever.
            .options(format!(
                "-c search_path={} -c statement_timeout=30000",
                self.schema
            ));
        let password = secret::resolve(&self.password, &self.password_file).map_err(|cause| {
            StoreError::Credentials {
                service: Service::Postgres,
                cause,
            }
        })?;
        if let Some(password) = password {
            pg.password(password.expose());
        }
        pg.ssl_mode(match self.sslmode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
        });
        Ok(pg)
    }

    /// The TLS connector for [`Config::client_config`]'s connections: rustls, trusting
    /// only the authorities in `sslrootcert` (with `verify-full`).
    ///
    /// # Errors
    /// [`StoreError::Tls`]: `sslrootcert` cannot be read or holds no certificate.
    pub fn tls(&self) -> Result<Tls, StoreError> {
        Ok(Tls::new(
            self.tls_settings().client_config(Service::Postgres)?,
        ))
    }

    fn tls_settings(&self) -> tls::Settings<'_> {
        tls::Settings {
            section: "postgres",
            sslmode: self.sslmode,
            sslrootcert: self.sslrootcert.as_ref(),
            sslcert: self.sslcert.as_ref(),
            sslkey: self.sslkey.as_ref(),
        }
    }
}

/// Opens one dedicated connection; its driver task runs on the current runtime and ends
/// when the returned client is dropped. For LISTEN/NOTIFY and migrations, which must not
/// share a pooled connection.
///
/// # Errors
/// [`StoreError::Unreachable`] when no connection can be made in `connect_timeout_ms`.
pub async fn connect(config: &Config) -> Result<tokio_postgres::Client, StoreError> {
    let (client, connection) = config
        .client_config()?
        .connect(config.tls()?)
        .await
        .map_err(|e| StoreError::unreachable(Service::Postgres, config.endpoint(), e))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "postgresql connection closed with an error");
        }
    });
    Ok(client)
}

/// The connection pool shared by actors. Connections are opened lazily: call
/// [`check`] to fail fast when the server is unreachable.
///
/// # Errors
/// `password_file` cannot be read, or the pool cannot be built.
pub fn pool(config: &Config) -> Result<deadpool_postgres::Pool, StoreError> {
    let manager = deadpool_postgres::Manager::from_config(
        config.client_config()?,
        config.tls()?,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    deadpool_postgres::Pool::builder(manager)
        .max_size(config.pool_size)
        .wait_timeout(Some(Duration::from_millis(config.connect_timeout_ms)))
        .create_timeout(Some(Duration::from_millis(config.connect_timeout_ms)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::request(Service::Postgres, "cannot build the connection pool", e))
}

/// Takes a connection from the pool and runs `SELECT 1`.
///
/// # Errors
/// [`StoreError::Unreachable`] when the server does not answer.
pub async fn check(pool: &deadpool_postgres::Pool, config: &Config) -> Result<(), StoreError> {
    let client = pool
        .get()
        .await
        .map_err(|e| StoreError::unreachable(Service::Postgres, config.endpoint(), e))?;
    client
        .simple_query("SELECT 1")
        .await
        .map_err(|e| StoreError::unreachable(Service::Postgres, config.endpoint(), e))?;
    Ok(())
}
