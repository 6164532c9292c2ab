//! `tributary schema apply`: creates what tributary needs in each store, idempotently.
//!
//! Each store reports one [`Outcome`] per object: created, already present, or present
//! but different from the configuration (a warning: apply never alters or drops what
//! exists, because changing replication or partition counts needs an operator's
//! decision). A second run therefore changes nothing and says so.
//!
//! Schema sources live in `config/`: PostgreSQL migrations in `config/postgres/migrations`
//! (refinery, versioned), Cassandra tables in `config/cassandra/<table>.cql`, Kafka topic
//! specifications in the `[kafka.topics]` section of the configuration, the Avro schema
//! of `users.raw` in `actors/src/format/user.avsc`.

pub mod cassandra;
pub mod isolated;
pub mod kafka;
pub mod postgres;
pub mod registry;

use std::fmt;
use tributary_actors::store::{Service, StoreError};

use crate::config::Config;

/// What apply did to one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Created,
    Unchanged,
    /// Present but not as configured; left alone, with the reason.
    Differs(String),
}

/// One object in one store and what apply did to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub service: Service,
    /// e.g. `keyspace tributary`, `topic users.raw`, `migration V1__initial`.
    pub object: String,
    pub action: Action,
}

impl Outcome {
    pub fn new(service: Service, object: impl Into<String>, action: Action) -> Self {
        Self {
            service,
            object: object.into(),
            action,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let action = match &self.action {
            Action::Created => "created".to_owned(),
            Action::Unchanged => "unchanged".to_owned(),
            Action::Differs(why) => format!("differs, left as is: {why}"),
        };
        write!(
            f,
            "{:<11} {:<44} {action}",
            self.service.to_string(),
            self.object
        )
    }
}

/// Applies the schema to the stores in `only` (all three when empty), in the order
/// PostgreSQL, Cassandra, Kafka (with the schema registry's subject of its topic).
///
/// # Errors
/// The first store that cannot be reached or rejects a statement; outcomes of the
/// stores before it are lost with it, which is harmless because apply is idempotent.
pub async fn apply(config: &Config, only: &[Service]) -> Result<Vec<Outcome>, StoreError> {
    let wanted = |s: Service| only.is_empty() || only.contains(&s);
    let mut outcomes = Vec::new();
    if wanted(Service::Postgres) {
        outcomes.extend(postgres::apply(&config.postgres).await?);
    }
    if wanted(Service::Cassandra) {
        outcomes.extend(cassandra::apply(&config.cassandra).await?);
    }
    if wanted(Service::Kafka) {
        outcomes.extend(kafka::apply(&config.kafka).await?);
        // The topic's record schema belongs to the topic: applied with it.
        outcomes.extend(registry::apply(&config.kafka).await?);
    }
    Ok(outcomes)
}

/// One-line summary of a run: how many objects were created, and any differences.
pub fn summary(outcomes: &[Outcome]) -> String {
    let created = outcomes
        .iter()
        .filter(|o| o.action == Action::Created)
        .count();
    let differs = outcomes
        .iter()
        .filter(|o| matches!(o.action, Action::Differs(_)))
        .count();
    match (created, differs) {
        (0, 0) => format!(
            "schema up to date: nothing to change ({} objects checked)",
            outcomes.len()
        ),
        (0, d) => {
            format!("nothing created; {d} object(s) differ from the configuration (see above)")
        }
        (c, 0) => format!("{c} object(s) created"),
        (c, d) => format!(
            "{c} object(s) created; {d} object(s) differ from the configuration (see above)"
        ),
    }
}
