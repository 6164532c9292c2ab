//! The schema registry (with `kafka.record_format = "avro"`): `users.raw`'s subject
//! (`<topic>-value`) gets BACKWARD compatibility — a new schema must be able to read the
//! records written with the subject's latest one, so readers can move to it first
//! (Confluent's default rule) — and tributary's Avro schema registered under it.
//!
//! A subject that already has another rule is reported and left alone, as a topic with
//! other settings is (NONE, which Apicurio reports for a subject without a rule, counts
//! as none); a schema the rule refuses stops apply with exit code 2.

use super::{Action, Outcome};
use tributary_actors::format::{RecordFormat, avro, subject};
use tributary_actors::store::kafka::Config;
use tributary_actors::store::registry::{Registry, RegistryError};
use tributary_actors::store::{Service, StoreError};

/// The subject's compatibility rule.
const COMPATIBILITY: &str = "BACKWARD";

/// Sets the subject's rule (if it has none) and registers the schema (if it is not).
///
/// # Errors
/// The registry cannot be reached, fails, or refuses the schema ([`StoreError::Refused`]).
pub async fn apply(config: &Config) -> Result<Vec<Outcome>, StoreError> {
    if config.record_format != RecordFormat::Avro {
        return Ok(Vec::new());
    }
    let registry = Registry::new(&config.registry)?.ok_or_else(|| StoreError::Refused {
        service: Service::Registry,
        what: "kafka.record_format = \"avro\" needs kafka.registry.url".into(),
    })?;
    let subject = subject(&config.topics.raw.name);
    let refused = |e: RegistryError| match e {
        RegistryError::Store(e) => e,
        other => StoreError::Refused {
            service: Service::Registry,
            what: format!(
                "{other}. Under BACKWARD, a new schema must read the records written with \
                 the subject's latest one: make tributary's schema compatible with it, or \
                 use another topic"
            ),
        },
    };
    let mut outcomes = Vec::new();
    let rule = match registry.compatibility(&subject).await.map_err(refused)? {
        None => {
            // Before the subject has a schema: its first one is then checked too.
            registry
                .set_compatibility(&subject, COMPATIBILITY)
                .await
                .map_err(refused)?;
            Action::Created
        }
        Some(level) if level == COMPATIBILITY => Action::Unchanged,
        Some(level) if level == "NONE" => {
            registry
                .set_compatibility(&subject, COMPATIBILITY)
                .await
                .map_err(refused)?;
            Action::Created
        }
        Some(level) => Action::Differs(format!("compatibility {level}, expected {COMPATIBILITY}")),
    };
    outcomes.push(Outcome::new(
        Service::Registry,
        format!("compatibility of {subject}"),
        rule,
    ));
    let found = registry
        .lookup(&subject, avro::USER_SCHEMA)
        .await
        .map_err(refused)?;
    let (id, action) = match found {
        Some(id) => (id, Action::Unchanged),
        None => {
            let id = registry
                .register(&subject, avro::USER_SCHEMA)
                .await
                .map_err(refused)?;
            (id, Action::Created)
        }
    };
    outcomes.push(Outcome::new(
        Service::Registry,
        format!("schema of {subject} (id {id})"),
        action,
    ));
    Ok(outcomes)
}
