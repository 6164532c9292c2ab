//! PostgreSQL: the configured schema and refinery migrations from
//! `config/postgres/migrations`, with refinery's history table in the same schema.

use super::{Action, Outcome};
use tributary_actors::store::postgres::{self, Config};
use tributary_actors::store::{Service, StoreError};

mod embedded {
    refinery::embed_migrations!("config/postgres/migrations");
}

/// Name of refinery's history table, inside the configured schema.
pub const HISTORY_TABLE: &str = "refinery_schema_history";

/// Creates the schema when missing and runs pending migrations.
///
/// Concurrent applies (two instances starting together) are serialised by an advisory
/// lock keyed on the schema name, so a migration never runs twice.
///
/// # Errors
/// PostgreSQL is unreachable, or a migration fails (its transaction is rolled back).
pub async fn apply(config: &Config) -> Result<Vec<Outcome>, StoreError> {
    let mut client = postgres::connect(config).await?;
    let schema = &config.schema;
    client
        .execute(
            "SELECT pg_advisory_lock(hashtext('tributary-schema:' || $1))",
            &[schema],
        )
        .await
        .map_err(Service::Postgres.error("cannot take the schema lock"))?;

    let mut outcomes = Vec::new();
    let exists = client
        .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[schema])
        .await
        .map_err(Service::Postgres.error("cannot read pg_namespace"))?
        .is_some();
    if exists {
        outcomes.push(Outcome::new(
            Service::Postgres,
            format!("schema {schema}"),
            Action::Unchanged,
        ));
    } else {
        // The name was validated as a plain identifier at start-up.
        client
            .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .await
            .map_err(Service::Postgres.error(format!("cannot create schema {schema}")))?;
        outcomes.push(Outcome::new(
            Service::Postgres,
            format!("schema {schema}"),
            Action::Created,
        ));
    }

    let mut runner = embedded::migrations::runner();
    runner.set_migration_table_name(HISTORY_TABLE);
    let report = runner
        .run_async(&mut client)
        .await
        .map_err(|e| StoreError::request(Service::Postgres, "migration failed", e))?;
    let applied: Vec<String> = report
        .applied_migrations()
        .iter()
        .map(|m| m.to_string())
        .collect();
    for migration in embedded::migrations::runner().get_migrations() {
        let name = migration.to_string();
        let action = if applied.contains(&name) {
            Action::Created
        } else {
            Action::Unchanged
        };
        outcomes.push(Outcome::new(
            Service::Postgres,
            format!("migration {name}"),
            action,
        ));
    }

    client
        .execute(
            "SELECT pg_advisory_unlock(hashtext('tributary-schema:' || $1))",
            &[schema],
        )
        .await
        .map_err(Service::Postgres.error("cannot release the schema lock"))?;
    Ok(outcomes)
}
