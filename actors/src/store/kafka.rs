//! Kafka: client properties shared by the producer, the consumers and the admin client,
//! and the topic specifications that `tributary schema apply` creates.

use super::tls::{self, SslMode};
use super::{Service, StoreError};
use crate::secret::{self, Secret};
use crate::validate::Findings;
use rdkafka::ClientConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `kafka.record_format`: how the producer encodes `users.raw` records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordFormat {
    /// Avro in the Confluent wire format, the schema in `kafka.registry`.
    #[default]
    Avro,
    /// The API's JSON; no registry.
    Json,
}

mod cluster;

pub use cluster::{ConnectionErrors, check, watermarks, with_metadata};

/// `[kafka]`: the cluster and tributary's topics.
/// Prefetch bound of the readers ([`Config::reader_config`]) in KiB per partition.
/// librdkafka's default, 64 MiB per partition, lets a reader that scans six partitions
/// (the reconciler reading a run back does, every few seconds) hold up to 384 MiB of
/// records it has not asked for yet, memory the allocator rarely gives back.
pub const READER_PREFETCH_KBYTES: u32 = 8 * 1024;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Comma-separated `host:port` list used to discover the cluster.
    #[serde(default = "default_bootstrap_servers")]
    pub bootstrap_servers: String,
    /// Prefix of the client.id of every client this instance opens.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// How long metadata and admin requests may take before the cluster is reported
    /// unreachable.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// SASL mechanism: `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`; unset, no SASL.
    /// With `sslmode`, it makes librdkafka's `security.protocol` (PLAINTEXT, SSL,
    /// SASL_PLAINTEXT or SASL_SSL), which `properties` may therefore not set.
    #[serde(default)]
    pub sasl_mechanism: Option<String>,
    /// SASL user name.
    #[serde(default)]
    pub sasl_username: Option<String>,
    /// SASL password. Only from the environment (`TRIBUTARY__KAFKA__SASL_PASSWORD`).
    #[serde(default)]
    pub sasl_password: Option<Secret>,
    /// File holding the SASL password; wins over `sasl_password`.
    #[serde(default)]
    pub sasl_password_file: Option<PathBuf>,
    /// Whether connections are encrypted: `disable` (plaintext, the local stacks) or
    /// `verify-full` (TLS; each broker's certificate must chain to `sslrootcert` and
    /// name the host it is reached at).
    #[serde(default)]
    pub sslmode: SslMode,
    /// PEM file of the certificate authorities the brokers' certificates are checked
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
    /// Extra librdkafka properties for every client (e.g. `"socket.keepalive.enable"`).
    /// Secrets are refused here (use the dedicated keys), and so are the properties
    /// `sslmode`, `sslrootcert` and `sasl_mechanism` make.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// The topics tributary reads and writes.
    #[serde(default)]
    pub topics: Topics,
    /// How the producer encodes `users.raw` records: `avro` (Confluent wire format, the
    /// schema in `kafka.registry`) or `json` (the API's JSON, no registry). The
    /// transformer reads both.
    #[serde(default)]
    pub record_format: RecordFormat,
    /// The Confluent-compatible schema registry (`[kafka.registry]`).
    #[serde(default)]
    pub registry: super::registry::Config,
}

/// `[kafka.topics]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topics {
    /// Staged users, key = user id. Partitions bound the processing parallelism.
    #[serde(default = "default_raw_topic")]
    pub raw: TopicSpec,
    /// The producer's committed outbox position, written in the same Kafka transaction
    /// as the records (KIP-618 pattern). Compacted: only the latest checkpoint matters.
    #[serde(default = "default_checkpoints_topic")]
    pub checkpoints: TopicSpec,
    /// Poison records that could not be processed, with the error in their headers.
    #[serde(default = "default_dlq_topic")]
    pub dlq: TopicSpec,
}

/// One topic as `tributary schema apply` creates it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Number of partitions.
    pub partitions: i32,
    /// Replicas per partition; 1 on the single-broker local stack, 3 on a cluster.
    #[serde(default = "default_replication_factor")]
    pub replication_factor: i32,
    /// The topic's `min.insync.replicas`: how many replicas must have a record before a
    /// producer with `acks=all` (ours) is told it is written. Unset takes the broker's
    /// default. With 3 replicas, 2 keeps a committed record on two brokers while one
    /// broker may be down.
    #[serde(default)]
    pub min_insync_replicas: Option<i32>,
    /// Topic-level configuration, e.g. `"cleanup.policy" = "compact"`.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
}

fn default_bootstrap_servers() -> String {
    "127.0.0.1:9092".into()
}
fn default_client_id() -> String {
    "tributary".into()
}
fn default_request_timeout_ms() -> u64 {
    10_000
}
fn default_replication_factor() -> i32 {
    1
}
fn default_raw_topic() -> TopicSpec {
    TopicSpec {
        name: "users.raw".into(),
        partitions: 6,
        replication_factor: 1,
        min_insync_replicas: None,
        config: BTreeMap::from([("retention.ms".into(), "604800000".into())]),
    }
}
fn default_checkpoints_topic() -> TopicSpec {
    TopicSpec {
        name: "tributary.producer-checkpoints".into(),
        partitions: 1,
        replication_factor: 1,
        min_insync_replicas: None,
        config: BTreeMap::from([("cleanup.policy".into(), "compact".into())]),
    }
}
fn default_dlq_topic() -> TopicSpec {
    TopicSpec {
        name: "users.dlq".into(),
        partitions: 1,
        replication_factor: 1,
        min_insync_replicas: None,
        config: BTreeMap::from([("retention.ms".into(), "2592000000".into())]),
    }
}

impl Default for Topics {
    fn default() -> Self {
        Self {
            raw: default_raw_topic(),
            checkpoints: default_checkpoints_topic(),
            dlq: default_dlq_topic(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bootstrap_servers: default_bootstrap_servers(),
            client_id: default_client_id(),
            request_timeout_ms: default_request_timeout_ms(),
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            sasl_password_file: None,
            sslmode: SslMode::Disable,
            sslrootcert: None,
            sslcert: None,
            sslkey: None,
            properties: BTreeMap::new(),
            topics: Topics::default(),
            record_format: RecordFormat::default(),
            registry: super::registry::Config::default(),
        }
    }
}

/// librdkafka properties that carry credentials, with what to use instead: refused in
/// `kafka.properties`.
const SECRET_PROPERTIES: &[(&str, &str)] = &[
    (
        "sasl.password",
        "use kafka.sasl_password (from the environment) or kafka.sasl_password_file",
    ),
    (
        "ssl.key.password",
        "give kafka.sslkey an unencrypted key file that only tributary can read",
    ),
    (
        "ssl.keystore.password",
        "use kafka.sslcert and kafka.sslkey",
    ),
    ("ssl.key.pem", "use kafka.sslkey (a file)"),
    (
        "sasl.oauthbearer.client.secret",
        "OAUTHBEARER is not supported: use kafka.sasl_mechanism",
    ),
];

/// librdkafka properties that `sslmode`, `sslrootcert` and `sasl_mechanism` make, with
/// the key that makes each: refused in `kafka.properties`, where one could quietly turn
/// TLS or the broker's certificate check off.
const SECURITY_PROPERTIES: &[(&str, &str)] = &[
    (
        "security.protocol",
        "kafka.sslmode and kafka.sasl_mechanism",
    ),
    ("ssl.ca.location", "kafka.sslrootcert"),
    ("ssl.ca.pem", "kafka.sslrootcert"),
    ("ssl.certificate.location", "kafka.sslcert"),
    ("ssl.certificate.pem", "kafka.sslcert"),
    ("ssl.key.location", "kafka.sslkey"),
    ("ssl.keystore.location", "kafka.sslcert and kafka.sslkey"),
    ("ssl.keystore.type", "kafka.sslcert and kafka.sslkey"),
    ("ssl.endpoint.identification.algorithm", "kafka.sslmode"),
    ("enable.ssl.certificate.verification", "kafka.sslmode"),
    ("sasl.mechanism", "kafka.sasl_mechanism"),
    ("sasl.mechanisms", "kafka.sasl_mechanism"),
    ("sasl.username", "kafka.sasl_username"),
];

/// The SASL mechanisms librdkafka (built with OpenSSL) offers for a user and password.
const SASL_MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

impl Topics {
    pub fn all(&self) -> [(&'static str, &TopicSpec); 3] {
        [
            ("raw", &self.raw),
            ("checkpoints", &self.checkpoints),
            ("dlq", &self.dlq),
        ]
    }
}

impl Config {
    pub fn validate(&self, f: &mut Findings) {
        f.non_empty("bootstrap_servers", &self.bootstrap_servers);
        f.non_empty("client_id", &self.client_id);
        f.range("request_timeout_ms", self.request_timeout_ms, 100, 600_000);
        for (key, instead) in SECRET_PROPERTIES {
            if self.properties.contains_key(*key) {
                f.invalid(
                    &format!("properties.{key}"),
                    format!("credentials may not be set here: {instead}"),
                );
            }
        }
        for (key, made_by) in SECURITY_PROPERTIES {
            if self.properties.contains_key(*key) {
                f.invalid(
                    &format!("properties.{key}"),
                    format!("set by {made_by}, not here"),
                );
            }
        }
        if let Some(mechanism) = &self.sasl_mechanism
            && !SASL_MECHANISMS.contains(&mechanism.as_str())
        {
            f.invalid(
                "sasl_mechanism",
                format!("{mechanism:?} is not one of {}", SASL_MECHANISMS.join(", ")),
            );
        }
        self.tls_settings().validate(f);
        if self.sasl_mechanism.is_some() && self.sasl_username.is_none() {
            f.invalid("sasl_username", "required when kafka.sasl_mechanism is set");
        }
        f.section("topics", |f| {
            for (key, spec) in self.topics.all() {
                f.section(key, |f| spec.validate(f));
            }
        });
        f.section("registry", |f| self.registry.validate(f));
        if self.record_format == RecordFormat::Avro && self.registry.url.is_empty() {
            f.invalid(
                "record_format",
                "\"avro\" needs a schema registry: set kafka.registry.url, or record_format = \"json\"",
            );
        }
    }

    /// A consumer that reads what is committed, in its own group, and never commits:
    /// the monitor, the reconciler, verify and the checkpoint reader. Its prefetch is
    /// bounded ([`READER_PREFETCH_KBYTES`]).
    ///
    /// # Errors
    /// As [`Config::client_config`].
    pub fn reader_config(&self, role: &str, group_id: String) -> Result<ClientConfig, StoreError> {
        let mut config = self.client_config(role)?;
        config
            .set("group.id", group_id)
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set(
                "queued.max.messages.kbytes",
                READER_PREFETCH_KBYTES.to_string(),
            );
        Ok(config)
    }

    /// Client properties shared by every client, credentials resolved. Each actor adds
    /// its own (transactional.id, group.id, isolation.level, …).
    ///
    /// # Errors
    /// `sasl_password_file` is set but cannot be read.
    pub fn client_config(&self, role: &str) -> Result<ClientConfig, StoreError> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", format!("{}-{role}", self.client_id))
            // librdkafka backs off reconnecting to a broker that keeps refusing up to
            // 10 s by default: after a broker's restart the group and transaction
            // coordinators' connections were back while a partition leader's still
            // waited out its backoff, so consumers claimed their partitions and then
            // fetched nothing for another 7 s. A connection attempt a second to a
            // broker that is down costs it nothing. `kafka.properties` may override it.
            .set("reconnect.backoff.max.ms", "1000");
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        if let Some(mechanism) = &self.sasl_mechanism {
            config.set("sasl.mechanism", mechanism);
            if let Some(user) = &self.sasl_username {
                config.set("sasl.username", user);
            }
            let password = secret::resolve(&self.sasl_password, &self.sasl_password_file).map_err(
                |cause| StoreError::Credentials {
                    service: Service::Kafka,
                    cause,
                },
            )?;
            if let Some(password) = password {
                config.set("sasl.password", password.expose());
            }
        }
        if self.sslmode == SslMode::VerifyFull {
            // librdkafka reads the file itself; checked here first so that a bad one is
            // refused naming the key, as for the other stores.
            let settings = self.tls_settings();
            settings.client_config(Service::Kafka)?;
            if let Some(path) = settings.sslrootcert {
                config.set("ssl.ca.location", path.display().to_string());
            }
            if let Some((cert, key)) = settings.client_identity() {
                config
                    .set("ssl.certificate.location", cert.display().to_string())
                    .set("ssl.key.location", key.display().to_string());
            }
            // The broker's certificate is verified and must name the host it is reached
            // at (librdkafka's defaults since 2.0, set here so that neither a default nor
            // a `properties` entry that skipped validation can turn them off).
            config
                .set("enable.ssl.certificate.verification", "true")
                .set("ssl.endpoint.identification.algorithm", "https");
        }
        config.set("security.protocol", self.security_protocol());
        Ok(config)
    }

    /// librdkafka's `security.protocol`, from `sslmode` and `sasl_mechanism`.
    fn security_protocol(&self) -> &'static str {
        match (self.sslmode, self.sasl_mechanism.is_some()) {
            (SslMode::Disable, false) => "PLAINTEXT",
            (SslMode::Disable, true) => "SASL_PLAINTEXT",
            (SslMode::VerifyFull, false) => "SSL",
            (SslMode::VerifyFull, true) => "SASL_SSL",
        }
    }

    fn tls_settings(&self) -> tls::Settings<'_> {
        tls::Settings {
            section: "kafka",
            sslmode: self.sslmode,
            sslrootcert: self.sslrootcert.as_ref(),
            sslcert: self.sslcert.as_ref(),
            sslkey: self.sslkey.as_ref(),
        }
    }

    pub fn request_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.request_timeout_ms)
    }
}

impl TopicSpec {
    pub fn validate(&self, f: &mut Findings) {
        let valid_name = !self.name.is_empty()
            && self.name.len() <= 249
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            && self.name != "."
            && self.name != "..";
        if !valid_name {
            f.invalid(
                "name",
                format!(
                    "{:?} is not a valid Kafka topic name: 1 to 249 of [a-zA-Z0-9._-]",
                    self.name
                ),
            );
        }
        f.range("partitions", self.partitions, 1, 10_000);
        f.range("replication_factor", self.replication_factor, 1, 32);
        if let Some(min) = self.min_insync_replicas
            && !(1..=self.replication_factor).contains(&min)
        {
            f.invalid(
                "min_insync_replicas",
                format!(
                    "{min} must be between 1 and replication_factor ({}): more would refuse \
                     every write",
                    self.replication_factor
                ),
            );
        }
        if self.config.contains_key(MIN_INSYNC_REPLICAS) {
            f.invalid(
                &format!("config.{MIN_INSYNC_REPLICAS}"),
                "set it with min_insync_replicas (checked against replication_factor)",
            );
        }
    }

    /// The topic-level configuration `schema apply` creates the topic with and compares
    /// an existing topic against: `config` and `min.insync.replicas`.
    pub fn topic_config(&self) -> BTreeMap<String, String> {
        let mut config = self.config.clone();
        if let Some(min) = self.min_insync_replicas {
            config.insert(MIN_INSYNC_REPLICAS.into(), min.to_string());
        }
        config
    }
}

/// The topic setting [`TopicSpec::min_insync_replicas`] sets.
const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_insync_replicas_fits_the_replication_factor_and_has_one_key() {
        let topic = |replication_factor, min_insync_replicas, config: &[(&str, &str)]| TopicSpec {
            name: "t".into(),
            partitions: 1,
            replication_factor,
            min_insync_replicas,
            config: config
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        let keys = |spec: &TopicSpec| {
            let mut f = Findings::default();
            spec.validate(&mut f);
            f.found.into_iter().map(|i| i.key).collect::<Vec<_>>()
        };
        let cluster = topic(3, Some(2), &[]);
        assert!(keys(&cluster).is_empty());
        assert_eq!(cluster.topic_config()["min.insync.replicas"], "2");
        assert!(topic(1, None, &[]).topic_config().is_empty());
        assert_eq!(keys(&topic(1, Some(2), &[])), ["min_insync_replicas"]);
        assert_eq!(
            keys(&topic(3, None, &[("min.insync.replicas", "2")])),
            ["config.min.insync.replicas"]
        );
    }

    #[test]
    fn the_security_protocol_follows_sslmode_and_sasl() {
        let ca = PathBuf::from("/ca.pem");
        for (sslmode, mechanism, protocol) in [
            (SslMode::Disable, None, "PLAINTEXT"),
            (SslMode::Disable, Some("PLAIN"), "SASL_PLAINTEXT"),
            (SslMode::VerifyFull, None, "SSL"),
            (SslMode::VerifyFull, Some("SCRAM-SHA-512"), "SASL_SSL"),
        ] {
            let config = Config {
                sslmode,
                sslrootcert: (sslmode == SslMode::VerifyFull).then(|| ca.clone()),
                sasl_mechanism: mechanism.map(Into::into),
                sasl_username: mechanism.map(|_| "u".into()),
                ..Config::default()
            };
            let mut f = Findings::default();
            config.validate(&mut f);
            assert!(f.found.is_empty(), "{:?}", f.found);
            assert_eq!(config.security_protocol(), protocol);
        }
    }

    #[test]
    fn unknown_mechanisms_and_security_properties_are_refused_naming_the_key() {
        let mut config = Config {
            sasl_mechanism: Some("GSSAPI".into()),
            sasl_username: Some("u".into()),
            ..Config::default()
        };
        for key in ["security.protocol", "enable.ssl.certificate.verification"] {
            config.properties.insert(key.into(), "x".into());
        }
        let mut f = Findings::default();
        config.validate(&mut f);
        let found: Vec<String> = f.found.iter().map(ToString::to_string).collect();
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(
            found[0].starts_with(
                "properties.security.protocol: set by kafka.sslmode and kafka.sasl_mechanism"
            ),
            "{found:?}"
        );
        assert!(
            found[1].starts_with(
                "properties.enable.ssl.certificate.verification: set by kafka.sslmode"
            ),
            "{found:?}"
        );
        assert!(
            found[2].starts_with("sasl_mechanism: \"GSSAPI\" is not one of PLAIN"),
            "{found:?}"
        );
    }

    #[test]
    fn secret_properties_are_refused() {
        let mut config = Config::default();
        config.properties.insert("sasl.password".into(), "x".into());
        let mut f = Findings::default();
        config.validate(&mut f);
        assert_eq!(f.found.len(), 1);
        assert_eq!(f.found[0].key, "properties.sasl.password");
    }

    #[test]
    fn topic_names_are_checked() {
        let mut config = Config::default();
        config.topics.dlq.name = "users dlq".into();
        config.topics.raw.partitions = 0;
        let mut f = Findings::default();
        config.validate(&mut f);
        let keys: Vec<_> = f.found.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["topics.raw.partitions", "topics.dlq.name"]);
    }

    #[test]
    fn sasl_password_reaches_the_client_but_not_debug() {
        let config = Config {
            sasl_mechanism: Some("PLAIN".into()),
            sasl_username: Some("u".into()),
            sasl_password: Some(Secret::new("pw-123")),
            ..Config::default()
        };
        let client = config.client_config("test").unwrap();
        assert_eq!(client.get("sasl.password"), Some("pw-123"));
        assert_eq!(client.get("security.protocol"), Some("SASL_PLAINTEXT"));
        assert!(!format!("{config:?}").contains("pw-123"));
    }
}
