//! The root configuration: one section per component, aggregated here. The actors'
//! sections are defined next to the code that reads them (in `tributary_actors`, and
//! `source`, `telemetry`); the sections of the binary's own machinery, `[admin]` and
//! `[supervision]`, are defined here, so that configuration depends on no module that
//! depends on it.
//!
//! Sources, later ones winning:
//! 1. `config/default.toml`, compiled into the binary (the documented defaults);
//! 2. the profile file `<config dir>/<profile>.toml`, when a profile is chosen
//!    (`--profile` or `TRIBUTARY_PROFILE`);
//! 3. files given with `--config`;
//! 4. environment variables `TRIBUTARY__SECTION__KEY` (e.g. `TRIBUTARY__KAFKA__BOOTSTRAP_SERVERS`).
//!
//! Unknown keys and values of the wrong type are errors that name the key and the source
//! that set it; [`Config::validate`] then checks ranges and names. Secrets are refused in
//! files (1–3): they come from the environment or from the file a `*_file` key names.

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;
use std::sync::OnceLock;
use tributary_actors::store::{cassandra, kafka, postgres};
use tributary_actors::{ingest, process, publish, upkeep};

use tributary_actors::validate::{Findings, Invalid};

use crate::{source, telemetry};

pub mod admin;
mod supervision;

pub use supervision::SupervisionConfig;

/// The defaults, compiled in so the binary runs from any directory.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// Prefix of the environment variables that override configuration keys; `__`
/// separates sections.
pub const ENV_PREFIX: &str = "TRIBUTARY__";

/// Keys that hold credentials: accepted from the environment only.
pub const SECRET_KEYS: &[&str] = &[
    "postgres.password",
    "kafka.sasl_password",
    "cassandra.password",
    "admin.token",
];

/// Everything tributary can be told.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Staging database (`[postgres]`).
    #[serde(default)]
    pub postgres: postgres::Config,
    /// Kafka cluster and topics (`[kafka]`).
    #[serde(default)]
    pub kafka: kafka::Config,
    /// Cassandra cluster and keyspace (`[cassandra]`).
    #[serde(default)]
    pub cassandra: cassandra::Config,
    /// Logs and traces (`[telemetry]`).
    #[serde(default)]
    pub telemetry: telemetry::Config,
    /// The embedded randomuser.me-compatible source (`[source]`).
    #[serde(default)]
    pub source: source::Config,
    /// Schedule, fetch and staging (`[ingest]`).
    #[serde(default)]
    pub ingest: ingest::Config,
    /// The transactional producer (`[publish]`).
    #[serde(default)]
    pub publish: publish::Config,
    /// Consumer group, batching and Cassandra writes (`[process]`).
    #[serde(default)]
    pub process: process::Config,
    /// The admin HTTP server (`[admin]`).
    #[serde(default)]
    pub admin: admin::Config,
    /// Supervisors above ingest and publish (`[supervision]`).
    #[serde(default)]
    pub supervision: SupervisionConfig,
    /// What PostgreSQL keeps, and for how long (`[retention]`).
    #[serde(default)]
    pub retention: upkeep::Retention,
    /// The reconciler (`[reconcile]`).
    #[serde(default)]
    pub reconcile: upkeep::Reconcile,
}

/// Where configuration comes from; see the module documentation for the order.
#[derive(Debug, Clone)]
pub struct Sources {
    /// Directory holding profile files.
    pub config_dir: PathBuf,
    /// Profile name: `<config_dir>/<profile>.toml` is merged over the defaults.
    pub profile: Option<String>,
    /// Further TOML files, merged in order.
    pub files: Vec<PathBuf>,
    /// Whether `TRIBUTARY__…` environment variables are read (tests turn this off to
    /// stay independent of the caller's environment).
    pub environment: bool,
}

impl Default for Sources {
    fn default() -> Self {
        Self {
            config_dir: PathBuf::from("config"),
            profile: None,
            files: Vec::new(),
            environment: true,
        }
    }
}

/// Configuration that cannot be used. Every variant names the offending key or file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration profile {profile:?} not found: {} does not exist", path.display())]
    MissingProfile { profile: String, path: PathBuf },
    #[error("configuration file {} does not exist", .0.display())]
    MissingFile(PathBuf),
    #[error("{}", format_figment(.0))]
    Parse(Box<figment::Error>),
    #[error(
        "{key}: credentials may not be written in a configuration file (found in {source_name}); \
         set the environment variable {env} or point {key}_file at a file holding it"
    )]
    SecretInFile {
        key: String,
        env: String,
        source_name: String,
    },
    #[error("invalid configuration:\n{}", format_invalid(.0))]
    Invalid(Vec<Invalid>),
}

fn format_figment(error: &figment::Error) -> String {
    let mut lines = Vec::new();
    for e in error.clone() {
        // figment prefixes paths with its own profile name ("default"); users never
        // see that name, so it is dropped.
        let path: Vec<&str> = e
            .path
            .iter()
            .map(String::as_str)
            .skip_while(|p| *p == "default")
            .collect();
        let key = if path.is_empty() {
            "<root>".to_owned()
        } else {
            path.join(".")
        };
        let source = e
            .metadata
            .as_ref()
            .map(|m| match &m.source {
                Some(src) => format!(" (from {src})"),
                None => format!(" (from {})", m.name),
            })
            .unwrap_or_default();
        lines.push(format!("{key}: {}{source}", e.kind));
    }
    lines.join("\n")
}

fn format_invalid(found: &[Invalid]) -> String {
    found
        .iter()
        .map(|i| format!("  {i}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Config {
    /// Loads, checks for secrets in files, and validates.
    ///
    /// # Errors
    /// See [`ConfigError`]; every message names the key or file at fault.
    pub fn load(sources: &Sources) -> Result<Config, ConfigError> {
        let mut files = defaults();
        if let Some(profile) = &sources.profile {
            let path = sources.config_dir.join(format!("{profile}.toml"));
            if !path.is_file() {
                return Err(ConfigError::MissingProfile {
                    profile: profile.clone(),
                    path,
                });
            }
            files = files.merge(Toml::file(path));
        }
        for path in &sources.files {
            if !path.is_file() {
                return Err(ConfigError::MissingFile(path.clone()));
            }
            files = files.merge(Toml::file(path));
        }
        Self::extract(files, sources.environment)
    }

    /// The defaults overlaid with `text`, one profile's TOML, without the environment:
    /// what the config fuzz target drives (`fuzz/`), with no file in between.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn load_text(text: &str) -> Result<Config, ConfigError> {
        let files = defaults().merge(Toml::string(text));
        Self::extract(files, false)
    }

    /// Refuses secrets in `files`, merges the environment over them if asked, extracts
    /// and validates.
    fn extract(files: Figment, environment: bool) -> Result<Config, ConfigError> {
        refuse_secrets_in_files(&files)?;
        let mut figment = files;
        if environment {
            figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__"));
        }
        let config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Parse(Box::new(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Gives every object this configuration names in the stores (schema, keyspace,
    /// topics, consumer group, transactional id) a name derived from `name`, so tests
    /// and chaos scenarios never see each other's data. `name` must be a valid
    /// lower-case identifier.
    pub fn isolate(&mut self, name: &str) {
        self.postgres.schema = name.to_owned();
        self.cassandra.keyspace = name.chars().take(48).collect();
        self.kafka.topics.raw.name = format!("{name}.raw");
        self.kafka.topics.checkpoints.name = format!("{name}.checkpoints");
        self.kafka.topics.dlq.name = format!("{name}.dlq");
        self.publish.transactional_id = format!("{name}-producer");
        self.process.group_id = format!("{name}-group");
        self.telemetry.service_name = name.to_owned();
    }

    /// The `TRIBUTARY__…` variables that make a child `tributary` process use this
    /// configuration's store names (see [`Config::isolate`]).
    pub fn names_env(&self) -> Vec<(String, String)> {
        [
            ("postgres.schema", self.postgres.schema.clone()),
            ("cassandra.keyspace", self.cassandra.keyspace.clone()),
            ("kafka.topics.raw.name", self.kafka.topics.raw.name.clone()),
            (
                "kafka.topics.checkpoints.name",
                self.kafka.topics.checkpoints.name.clone(),
            ),
            ("kafka.topics.dlq.name", self.kafka.topics.dlq.name.clone()),
            (
                "publish.transactional_id",
                self.publish.transactional_id.clone(),
            ),
            ("process.group_id", self.process.group_id.clone()),
            (
                "telemetry.service_name",
                self.telemetry.service_name.clone(),
            ),
        ]
        .into_iter()
        .map(|(key, value)| (env_var_for(key), value))
        .collect()
    }

    /// Range and name checks that types cannot express.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] with every finding, each naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut f = Findings::default();
        f.section("postgres", |f| self.postgres.validate(f));
        f.section("kafka", |f| self.kafka.validate(f));
        f.section("cassandra", |f| self.cassandra.validate(f));
        f.section("telemetry", |f| self.telemetry.validate(f));
        f.section("source", |f| self.source.validate(f));
        f.section("ingest", |f| self.ingest.validate(f));
        f.section("publish", |f| self.publish.validate(f));
        f.section("process", |f| self.process.validate(f));
        f.section("admin", |f| self.admin.validate(f));
        f.section("supervision", |f| self.supervision.validate(f));
        f.section("retention", |f| self.retention.validate(f));
        f.section("reconcile", |f| self.reconcile.validate(f));
        if f.found.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(f.found))
        }
    }
}

/// [`DEFAULT_TOML`] parsed, once per process: [`Config::load_text`] runs per fuzz input.
fn defaults() -> Figment {
    static DEFAULTS: OnceLock<Figment> = OnceLock::new();
    DEFAULTS
        .get_or_init(|| Figment::from(Toml::string(DEFAULT_TOML)))
        .clone()
}

fn refuse_secrets_in_files(files: &Figment) -> Result<(), ConfigError> {
    for key in SECRET_KEYS {
        if files.find_value(key).is_ok() {
            let source_name = files
                .find_metadata(key)
                .map(|m| match &m.source {
                    Some(src) => src.to_string(),
                    None => m.name.to_string(),
                })
                .unwrap_or_else(|| "a configuration file".into());
            return Err(ConfigError::SecretInFile {
                key: (*key).to_owned(),
                env: env_var_for(key),
                source_name,
            });
        }
    }
    Ok(())
}

/// The environment variable that sets a dotted key, e.g. `kafka.sasl_password` →
/// `TRIBUTARY__KAFKA__SASL_PASSWORD`.
pub fn env_var_for(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.replace('.', "__").to_uppercase())
}

/// Shows the effective configuration as TOML-like lines, secrets redacted (they are
/// [`tributary_actors::Secret`], whose `Debug` prints `[redacted]`).
pub struct Redacted<'a>(pub &'a Config);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:#?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(extra: &str) -> Result<Config, ConfigError> {
        let dir = std::env::temp_dir().join(format!(
            "tributary-config-{}-{}",
            std::process::id(),
            extra.len()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("extra.toml");
        std::fs::write(&path, extra).unwrap();
        let result = Config::load(&Sources {
            files: vec![path],
            environment: false,
            ..Sources::default()
        });
        std::fs::remove_dir_all(&dir).unwrap();
        result
    }

    /// default.toml documents the defaults; the serde default functions implement them.
    /// They must agree, or a key removed from a profile would silently change value.
    #[test]
    fn default_toml_matches_the_serde_defaults() {
        let from_toml: Config = Figment::from(Toml::string(DEFAULT_TOML)).extract().unwrap();
        let from_serde: Config = Figment::new().extract().unwrap();
        assert_eq!(format!("{from_toml:?}"), format!("{from_serde:?}"));
    }

    #[test]
    fn unknown_key_is_named() {
        let err = load_str("[kafka]\nbootstrap_servrs = \"x:1\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("kafka.bootstrap_servrs"), "{err}");
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn wrong_type_is_named() {
        let err = load_str("[postgres]\nport = \"fifty\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("postgres.port"), "{err}");
    }

    #[test]
    fn out_of_range_is_named() {
        let err = load_str("[kafka.topics.raw]\nname = \"users.raw\"\npartitions = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("kafka.topics.raw.partitions"), "{err}");
    }

    #[test]
    fn a_partition_pipeline_restarted_piecemeal_is_refused() {
        let err = load_str("[process.partition_supervision]\nstrategy = \"one_for_one\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("process.partition_supervision.strategy: must be one_for_all"),
            "{err}"
        );
    }

    #[test]
    fn secret_in_file_is_refused_without_echoing_it() {
        let err = load_str("[postgres]\npassword = \"s3cret-value\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("postgres.password"), "{err}");
        assert!(err.contains("TRIBUTARY__POSTGRES__PASSWORD"), "{err}");
        assert!(!err.contains("s3cret-value"), "{err}");
    }

    #[test]
    fn env_var_names() {
        assert_eq!(
            env_var_for("kafka.sasl_password"),
            "TRIBUTARY__KAFKA__SASL_PASSWORD"
        );
    }

    fn profile(name: &str) -> Config {
        Config::load(&Sources {
            config_dir: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/config")),
            profile: Some(name.into()),
            environment: false,
            ..Sources::default()
        })
        .unwrap_or_else(|e| panic!("profile {name}: {e}"))
    }

    /// Every profile in config/, the production example included, loads over the
    /// defaults (one that switched the keyspace's replication class once failed, merged
    /// with the default's replication keys).
    #[test]
    fn shipped_profiles_load() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config");
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|entry| {
                let name = entry.unwrap().file_name().into_string().ok()?;
                Some(name.strip_suffix(".toml")?.to_owned())
            })
            .collect();
        names.sort();
        assert!(names.len() >= 6, "profiles found in {dir}: {names:?}");
        for name in names {
            profile(&name); // loading validates
        }
    }

    /// The cluster profile loses no acknowledged write with one node of each store down.
    #[test]
    fn the_cluster_profile_keeps_three_copies_and_acknowledges_at_two() {
        let config = profile("cluster");
        for (key, topic) in config.kafka.topics.all() {
            assert_eq!(topic.replication_factor, 3, "{key}");
            assert_eq!(topic.min_insync_replicas, Some(2), "{key}");
        }
        assert_eq!(
            config.cassandra.replication,
            cassandra::Replication::SimpleStrategy {
                replication_factor: 3
            }
        );
        assert_eq!(
            config.cassandra.consistency,
            cassandra::Consistency::LocalQuorum
        );
    }

    /// The public API's profile asks for at most 10,000 users a minute (its rate limit
    /// is near 20,000), one full page per request, pages inside what it serves.
    #[test]
    fn the_randomuser_profile_stays_within_the_public_apis_limits() {
        let ingest = profile("randomuser").ingest;
        assert_eq!(ingest.source_url, "https://randomuser.me/api/");
        assert!((1..=10_000).contains(&ingest.max_users_per_minute));
        let asked_per_minute = u64::from(ingest.users_per_run) * 60_000 / ingest.interval_ms;
        assert!(asked_per_minute <= u64::from(ingest.max_users_per_minute));
        assert!(ingest.users_per_run <= 5_000 && ingest.max_page <= 10_000);
    }

    #[test]
    fn missing_profile_names_the_file() {
        let err = Config::load(&Sources {
            profile: Some("nope".into()),
            environment: false,
            ..Sources::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("nope.toml"), "{err}");
    }
}
