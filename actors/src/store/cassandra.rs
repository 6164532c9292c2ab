//! Cassandra: sessions through the scylla driver (CQL protocol v4 against Cassandra 5).

mod levels;

pub use levels::{Consistency, Replication, SerialConsistency};

use super::tls::{self, SslMode};
use super::{Cause, Service, StoreError};
use crate::secret::{self, Secret};
use crate::validate::Findings;
use scylla::client::SelfIdentity;
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::policies::speculative_execution::{
    SimpleSpeculativeExecutionPolicy, SpeculativeExecutionPolicy,
};
use scylla::statement::unprepared::Statement;
use serde::{Deserialize, Deserializer};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `[cassandra]`: the cluster and tributary's keyspace.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `host:port` of one or more nodes to discover the cluster from; a list, or one
    /// comma-separated string (handy in environment variables).
    #[serde(default = "default_contact_points", deserialize_with = "list_or_csv")]
    pub contact_points: Vec<String>,
    /// Keyspace holding created_users and partition_state. Created by
    /// `tributary schema apply` with `replication`.
    #[serde(default = "default_keyspace")]
    pub keyspace: String,
    /// Replication of the keyspace when it is created.
    #[serde(default)]
    pub replication: Replication,
    /// User for PasswordAuthenticator; unset means no authentication.
    #[serde(default)]
    pub username: Option<String>,
    /// Password. Only from the environment (`TRIBUTARY__CASSANDRA__PASSWORD`).
    #[serde(default)]
    pub password: Option<Secret>,
    /// File holding the password; wins over `password`.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// How long to wait for the first connection before reporting Cassandra unreachable.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Client-side timeout of each request.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Every connection sends a CQL keepalive this often, and is closed when one goes
    /// unanswered for `keepalive_timeout_ms`: a node that stops answering (partitioned
    /// away, frozen) is then skipped instead of holding every request sent to it until
    /// `request_timeout_ms`. TCP cannot tell: a blackholed peer's sockets stay open.
    #[serde(default = "default_keepalive_interval_ms")]
    pub keepalive_interval_ms: u64,
    #[serde(default = "default_keepalive_timeout_ms")]
    pub keepalive_timeout_ms: u64,
    /// An idempotent request (row upserts, plain and serial reads, never a fenced
    /// commit) not answered after this long is also sent to the next node of its plan,
    /// up to `speculative_attempts` more times; the first answer wins. 0 attempts: off.
    #[serde(default = "default_speculative_after_ms")]
    pub speculative_after_ms: u64,
    #[serde(default = "default_speculative_attempts")]
    pub speculative_attempts: u32,
    /// Consistency of row writes and of plain reads (progress, verify, the reconciler):
    /// LOCAL_QUORUM, the default, answers while a majority of each partition's replicas
    /// in the local data centre does — on three replicas, with one node down.
    #[serde(default)]
    pub consistency: Consistency,
    /// Serial consistency of the fenced commits (lightweight transactions) and of the
    /// reads that must see every committed one: SERIAL (a Paxos quorum across data
    /// centres, the default) or LOCAL_SERIAL (within the local data centre).
    #[serde(default)]
    pub serial_consistency: SerialConsistency,
    /// Address translations `"node address=reachable address"` (both `ip:port`), for a
    /// cluster behind NAT or a proxy: the driver connects to the address a node reports
    /// for itself, which would bypass the proxy. A list, or one comma-separated string.
    #[serde(default, deserialize_with = "list_or_csv")]
    pub address_translation: Vec<String>,
    /// Whether connections are encrypted: `disable` (plaintext, the local stacks) or
    /// `verify-full` (TLS; each node's certificate must chain to `sslrootcert` and name
    /// the node's IP address, which is what the driver connects to and checks).
    #[serde(default)]
    pub sslmode: SslMode,
    /// PEM file of the certificate authorities the nodes' certificates are checked
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

fn default_contact_points() -> Vec<String> {
    vec!["127.0.0.1:9042".into()]
}
fn default_keyspace() -> String {
    "tributary".into()
}
fn default_connect_timeout_ms() -> u64 {
    5_000
}
fn default_request_timeout_ms() -> u64 {
    12_000
}
// 2 s: the driver warns about anything at or below 1 s. 5 s: a loaded node of the
// cluster suite (six JVMs on two cores) once took over 4 s to answer a keepalive.
fn default_keepalive_interval_ms() -> u64 {
    2_000
}
fn default_keepalive_timeout_ms() -> u64 {
    5_000
}
fn default_speculative_after_ms() -> u64 {
    1_000
}
/// Off by default: a speculative copy doubles the write load exactly when a cluster is
/// slow, and on CI's two cores (six JVMs) it turned slow writes into LOCAL_QUORUM write
/// timeouts. The keepalives already skip a node that stops answering.
fn default_speculative_attempts() -> u32 {
    0
}

impl Default for Config {
    fn default() -> Self {
        Self {
            contact_points: default_contact_points(),
            keyspace: default_keyspace(),
            replication: Replication::default(),
            username: None,
            password: None,
            password_file: None,
            connect_timeout_ms: default_connect_timeout_ms(),
            request_timeout_ms: default_request_timeout_ms(),
            keepalive_interval_ms: default_keepalive_interval_ms(),
            keepalive_timeout_ms: default_keepalive_timeout_ms(),
            speculative_after_ms: default_speculative_after_ms(),
            speculative_attempts: default_speculative_attempts(),
            consistency: Consistency::default(),
            serial_consistency: SerialConsistency::default(),
            address_translation: Vec::new(),
            sslmode: SslMode::Disable,
            sslrootcert: None,
            sslcert: None,
            sslkey: None,
        }
    }
}

fn list_or_csv<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrCsv {
        List(Vec<String>),
        Csv(String),
    }
    Ok(match ListOrCsv::deserialize(deserializer)? {
        ListOrCsv::List(list) => list,
        ListOrCsv::Csv(csv) => csv
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

impl Config {
    pub fn validate(&self, f: &mut Findings) {
        if self.contact_points.is_empty() {
            f.invalid("contact_points", "at least one host:port is required");
        }
        for point in &self.contact_points {
            let port_ok = point.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
            });
            if !port_ok {
                f.invalid("contact_points", format!("{point:?} is not host:port"));
            }
        }
        f.identifier("keyspace", &self.keyspace, 48);
        match &self.replication {
            Replication::SimpleStrategy { replication_factor } => {
                f.range("replication.replication_factor", *replication_factor, 1, 32);
                let needs = self.consistency.needs(*replication_factor);
                if let Some(needs) = needs
                    && 2 * needs <= *replication_factor
                {
                    // Rows are upserted at this level before the fenced commit moves the
                    // offset past them: on fewer than a quorum of replicas, a committed
                    // offset can cover rows that one node's loss takes with it.
                    f.invalid(
                        "consistency",
                        format!(
                            "{:?} reaches {needs} of {replication_factor} replicas, fewer than \
                             a quorum: a committed offset could cover rows a node's loss takes \
                             with it (use LOCAL_QUORUM)",
                            self.consistency
                        ),
                    );
                }
                if let Some(needs) = needs
                    && needs > *replication_factor
                {
                    f.invalid(
                        "consistency",
                        format!(
                            "{:?} needs {needs} replicas to answer and the keyspace keeps \
                             {replication_factor} (replication.replication_factor): every \
                             request would fail",
                            self.consistency
                        ),
                    );
                }
            }
            Replication::NetworkTopologyStrategy { datacenters } => {
                if datacenters.is_empty() {
                    f.invalid("replication.datacenters", "name at least one data centre");
                }
                for (dc, factor) in datacenters {
                    f.range(&format!("replication.datacenters.{dc}"), *factor, 1, 32);
                }
            }
        }
        if self.consistency == Consistency::EachQuorum {
            f.invalid(
                "consistency",
                "EACH_QUORUM is for writes only, and tributary reads at this level too \
                 (use LOCAL_QUORUM or QUORUM)",
            );
        }
        if (self.password.is_some() || self.password_file.is_some()) && self.username.is_none() {
            f.invalid("username", "required when a password is set");
        }
        f.range("connect_timeout_ms", self.connect_timeout_ms, 100, 600_000);
        f.range("request_timeout_ms", self.request_timeout_ms, 100, 600_000);
        f.range(
            "keepalive_interval_ms",
            self.keepalive_interval_ms,
            100,
            600_000,
        );
        f.range(
            "keepalive_timeout_ms",
            self.keepalive_timeout_ms,
            100,
            600_000,
        );
        f.range(
            "speculative_after_ms",
            self.speculative_after_ms,
            10,
            600_000,
        );
        f.range("speculative_attempts", self.speculative_attempts, 0, 8);
        if self.speculative_attempts > 0 && self.speculative_after_ms >= self.request_timeout_ms {
            f.invalid(
                "speculative_after_ms",
                format!(
                    "{} ms is not below request_timeout_ms ({} ms): no speculative attempt \
                     could start before the request times out",
                    self.speculative_after_ms, self.request_timeout_ms
                ),
            );
        }
        if let Err(message) = self.translations() {
            f.invalid("address_translation", message);
        }
        self.tls_settings().validate(f);
    }

    fn tls_settings(&self) -> tls::Settings<'_> {
        tls::Settings {
            section: "cassandra",
            sslmode: self.sslmode,
            sslrootcert: self.sslrootcert.as_ref(),
            sslcert: self.sslcert.as_ref(),
            sslkey: self.sslkey.as_ref(),
        }
    }

    /// The translations, parsed.
    ///
    /// # Errors
    /// An entry that is not `ip:port=ip:port`.
    pub fn translations(
        &self,
    ) -> Result<std::collections::HashMap<SocketAddr, SocketAddr>, String> {
        self.address_translation
            .iter()
            .map(|entry| {
                let parsed = entry.split_once('=').and_then(|(from, to)| {
                    Some((from.trim().parse().ok()?, to.trim().parse().ok()?))
                });
                parsed.ok_or_else(|| format!("{entry:?} is not \"ip:port=ip:port\""))
            })
            .collect()
    }

    pub fn endpoint(&self) -> String {
        self.contact_points.join(",")
    }
}

/// A statement that may run more than once with one effect — a read, or an upsert of
/// the same cells — so the driver may retry it on another node and send it
/// speculatively (`speculative_after_ms`). Never for a lightweight transaction: a
/// second attempt would see the first one's effect and answer "not applied".
pub fn idempotent(cql: impl Into<String>) -> Statement {
    let mut statement = Statement::new(cql.into());
    statement.set_is_idempotent(true);
    statement
}

/// The application name every session gives the nodes.
pub const APPLICATION_NAME: &str = "tributary";

/// Opens a session to the cluster (no keyspace selected: statements name it).
///
/// # Errors
/// [`StoreError::Unreachable`] when no contact point accepts a CQL connection within
/// `connect_timeout_ms` (or none whose certificate verifies); [`StoreError::Credentials`]
/// when the password file is unreadable; [`StoreError::Tls`] when `sslrootcert` is.
pub async fn connect(config: &Config) -> Result<Session, StoreError> {
    // Every statement takes the configured levels unless it sets its own: the fence's
    // reads do (SerialConsistency::for_reads).
    let speculation = (config.speculative_attempts > 0).then(|| {
        Arc::new(SimpleSpeculativeExecutionPolicy {
            max_retry_count: config.speculative_attempts as usize,
            retry_interval: Duration::from_millis(config.speculative_after_ms),
        }) as Arc<dyn SpeculativeExecutionPolicy>
    });
    let profile = ExecutionProfile::builder()
        .request_timeout(Some(Duration::from_millis(config.request_timeout_ms)))
        .consistency(config.consistency.driver())
        .serial_consistency(Some(config.serial_consistency.driver()))
        .speculative_execution_policy(speculation)
        .build();
    let mut builder = SessionBuilder::new()
        .known_nodes(&config.contact_points)
        .connection_timeout(Duration::from_millis(config.connect_timeout_ms))
        .keepalive_interval(Duration::from_millis(config.keepalive_interval_ms))
        .keepalive_timeout(Duration::from_millis(config.keepalive_timeout_ms))
        // Named in the node's client list (system_views.clients, nodetool clientstats).
        .custom_identity(SelfIdentity::new().with_application_name(APPLICATION_NAME))
        .default_execution_profile_handle(profile.into_handle());
    let password = secret::resolve(&config.password, &config.password_file).map_err(|cause| {
        StoreError::Credentials {
            service: Service::Cassandra,
            cause,
        }
    })?;
    let translations = config.translations().map_err(|message| {
        StoreError::request(
            Service::Cassandra,
            "address_translation",
            Box::<dyn std::error::Error + Send + Sync>::from(message),
        )
    })?;
    if !translations.is_empty() {
        builder = builder.address_translator(Arc::new(translations));
    }
    if config.sslmode == SslMode::VerifyFull {
        let tls = config.tls_settings().client_config(Service::Cassandra)?;
        builder = builder.tls_context(Some(Arc::new(tls)));
    }
    if let Some(user) = &config.username {
        builder = builder.user(
            user,
            password.as_ref().map(Secret::expose).unwrap_or_default(),
        );
    }
    // The driver retries unreachable nodes internally; bound the whole attempt so an
    // unreachable cluster is reported promptly rather than after its own long timeouts.
    // Three connect timeouts: a control connection tried first on a node that does not
    // answer, the metadata read, then every node's pool opened at once (one that does
    // not answer gives up after one timeout and is refilled in the background). Two
    // were too few: a session could not be opened while one node was partitioned away.
    let deadline = Duration::from_millis(config.connect_timeout_ms.saturating_mul(3));
    match tokio::time::timeout(deadline, builder.build()).await {
        Ok(Ok(session)) => Ok(session),
        Ok(Err(e)) => Err(StoreError::unreachable(
            Service::Cassandra,
            config.endpoint(),
            with_client_certificate_hint(config, e),
        )),
        Err(elapsed) => Err(StoreError::unreachable(
            Service::Cassandra,
            config.endpoint(),
            elapsed,
        )),
    }
}

/// The driver's error, with what it may mean when a node ended a TLS session while the
/// connection was being set up. That is how Cassandra refuses a client certificate it
/// does not trust, or a client without one when it requires one (TLS 1.3 checks the
/// client's certificate after the client has finished its side of the handshake), and
/// the driver reports it only as a broken connection or a bare alert — the same words
/// a node that died at that moment would give, hence "if".
fn with_client_certificate_hint(config: &Config, error: impl std::fmt::Display) -> Cause {
    // On one line: the driver's text of a dropped channel spans two.
    let text = error
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let ended_in_setup = text.contains("connection setup request")
        && (text.contains("Connection broken") || text.contains("received fatal alert"));
    if config.sslmode != SslMode::VerifyFull || !ended_in_setup {
        return text.into();
    }
    let hint = match &config.sslcert {
        None => "if it requires client certificates, this is how it refuses a client that \
                 presents none (set cassandra.sslcert and cassandra.sslkey)"
            .to_owned(),
        Some(cert) => format!(
            "if it requires client certificates, this is how it refuses one that no CA it \
             trusts signed (cassandra.sslcert {})",
            cert.display()
        ),
    };
    format!("{text} (the node ended the TLS session during set-up: {hint})").into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn an_ended_tls_session_names_the_client_certificate() {
        let broken = "Failed to perform a connection setup request. Request: OPTIONS, reason: \
                      Connection broken, reason: Failed to send/receive data needed to \
                      perform a request via tokio channel.\n        It implies that other half";
        let mut config = Config::default();
        // Plaintext: the driver's words, on one line.
        let text = with_client_certificate_hint(&config, broken).to_string();
        assert!(
            !text.contains('\n') && !text.contains("TLS session"),
            "{text}"
        );

        config.sslmode = SslMode::VerifyFull;
        let text = with_client_certificate_hint(&config, broken).to_string();
        assert!(
            text.starts_with("Failed to perform a connection setup"),
            "{text}"
        );
        assert!(
            text.contains("refuses a client that presents none"),
            "{text}"
        );
        config.sslcert = Some(PathBuf::from("/etc/c.pem"));
        let alert = "connection setup request. Request: OPTIONS, reason: received fatal alert: X";
        let text = with_client_certificate_hint(&config, alert).to_string();
        assert!(
            text.contains("that no CA it trusts signed (cassandra.sslcert /etc/c.pem)"),
            "{text}"
        );
        // Any other failure is left as the driver said it: refused, or broken later.
        for other in ["Connection refused", "Connection broken, reason: EOF"] {
            let text = with_client_certificate_hint(&config, other).to_string();
            assert_eq!(text, other);
        }
    }

    #[test]
    fn replication_literals() {
        assert_eq!(
            Replication::default().to_cql(),
            "{'class': 'SimpleStrategy', 'replication_factor': 1}"
        );
        let nts = Replication::NetworkTopologyStrategy {
            datacenters: BTreeMap::from([("dc1".into(), 3), ("dc2".into(), 2)]),
        };
        assert_eq!(
            nts.to_cql(),
            "{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 2}"
        );
    }

    fn findings(config: &Config) -> Vec<String> {
        let mut f = Findings::default();
        config.validate(&mut f);
        f.found.into_iter().map(|found| found.key).collect()
    }

    #[test]
    fn a_consistency_the_keyspace_cannot_meet_names_the_key() {
        let rf = |replication_factor| Replication::SimpleStrategy { replication_factor };
        let with = |consistency, replication| Config {
            consistency,
            replication,
            ..Config::default()
        };
        assert!(findings(&Config::default()).is_empty());
        assert!(findings(&with(Consistency::Quorum, rf(3))).is_empty());
        assert!(findings(&with(Consistency::Three, rf(3))).is_empty());
        assert_eq!(findings(&with(Consistency::Two, rf(1))), ["consistency"]);
        assert!(findings(&with(Consistency::One, rf(1))).is_empty());
        assert_eq!(findings(&with(Consistency::One, rf(3))), ["consistency"]);
        assert_eq!(
            findings(&with(Consistency::LocalOne, rf(3))),
            ["consistency"]
        );
        assert_eq!(
            findings(&with(Consistency::EachQuorum, rf(3))),
            ["consistency"]
        );
    }

    #[test]
    fn speculation_must_start_before_the_request_times_out() {
        let with = |speculative_after_ms, speculative_attempts| Config {
            speculative_after_ms,
            speculative_attempts,
            request_timeout_ms: 2_000,
            ..Config::default()
        };
        assert!(findings(&with(1_000, 2)).is_empty());
        assert_eq!(findings(&with(2_000, 2)), ["speculative_after_ms"]);
        // Off: the delay does not matter.
        assert!(findings(&with(2_000, 0)).is_empty());
        assert_eq!(findings(&with(1_000, 9)), ["speculative_attempts"]);
    }

    #[test]
    fn reads_marked_idempotent_may_be_retried_elsewhere() {
        assert!(idempotent("SELECT 1").get_is_idempotent());
    }

    #[test]
    fn levels_are_spelled_as_cql_spells_them() {
        #[derive(Deserialize)]
        struct Levels {
            consistency: Consistency,
            serial_consistency: SerialConsistency,
        }
        let levels: Levels = serde_json::from_str(
            r#"{"consistency": "LOCAL_ONE", "serial_consistency": "LOCAL_SERIAL"}"#,
        )
        .unwrap();
        assert_eq!(levels.consistency, Consistency::LocalOne);
        assert_eq!(
            levels.serial_consistency.for_reads(),
            scylla::statement::Consistency::LocalSerial
        );
    }

    #[test]
    fn address_translations_parse() {
        let config = Config {
            address_translation: vec!["127.0.0.1:9042=127.0.0.1:29042".into()],
            ..Config::default()
        };
        let map = config.translations().unwrap();
        assert_eq!(
            map[&"127.0.0.1:9042".parse().unwrap()],
            "127.0.0.1:29042".parse().unwrap()
        );
        let bad = Config {
            address_translation: vec!["nope".into()],
            ..Config::default()
        };
        let mut f = Findings::default();
        bad.validate(&mut f);
        assert_eq!(f.found[0].key, "address_translation");
    }

    #[test]
    fn contact_points_are_checked() {
        let config = Config {
            contact_points: vec!["127.0.0.1".into(), "h:9042".into()],
            ..Config::default()
        };
        let mut f = Findings::default();
        config.validate(&mut f);
        assert_eq!(f.found.len(), 1);
        assert_eq!(f.found[0].key, "contact_points");
    }
}
