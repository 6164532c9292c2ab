//! Cassandra: the keyspace (replication from config) and the tables in
//! `config/cassandra/<table>.cql`.

use super::{Action, Outcome};
use scylla::client::session::Session;
use std::collections::BTreeMap;
use tributary_actors::store::cassandra::{self, Config};
use tributary_actors::store::{Service, StoreError};

/// Tables in creation order, each from its CQL file, with `{keyspace}` to substitute.
pub const TABLES: &[(&str, &str)] = &[
    (
        "created_users",
        include_str!("../../config/cassandra/created_users.cql"),
    ),
    (
        "partition_state",
        include_str!("../../config/cassandra/partition_state.cql"),
    ),
];

fn request_error(what: String, e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    // Schema statements fail transiently only through timeouts or unavailable replicas;
    // the caller (a person or a start-up script) simply reruns apply, which is idempotent.
    StoreError::request(Service::Cassandra, what, true, e)
}

/// Creates the keyspace and tables that are missing.
///
/// # Errors
/// Cassandra is unreachable or rejects a statement.
pub async fn apply(config: &Config) -> Result<Vec<Outcome>, StoreError> {
    let session = cassandra::connect(config).await?;
    let keyspace = &config.keyspace;
    let mut outcomes = Vec::new();

    let object = format!("keyspace {keyspace}");
    match keyspace_replication(&session, keyspace).await? {
        None => {
            let cql = format!(
                "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {}",
                config.replication.to_cql()
            );
            session
                .query_unpaged(cql, ())
                .await
                .map_err(|e| request_error(format!("cannot create keyspace {keyspace}"), e))?;
            outcomes.push(Outcome::new(Service::Cassandra, object, Action::Created));
        }
        Some(actual) if actual == config.replication.as_reported() => {
            outcomes.push(Outcome::new(Service::Cassandra, object, Action::Unchanged));
        }
        Some(actual) => {
            let why = format!(
                "replication is {actual:?}, configured {:?}; change it with ALTER KEYSPACE, then run a repair",
                config.replication.as_reported()
            );
            outcomes.push(Outcome::new(
                Service::Cassandra,
                object,
                Action::Differs(why),
            ));
        }
    }

    for (table, template) in TABLES {
        let object = format!("table {keyspace}.{table}");
        if table_exists(&session, keyspace, table).await? {
            outcomes.push(Outcome::new(Service::Cassandra, object, Action::Unchanged));
            continue;
        }
        session
            .query_unpaged(template.replace("{keyspace}", keyspace), ())
            .await
            .map_err(|e| request_error(format!("cannot create {object}"), e))?;
        outcomes.push(Outcome::new(Service::Cassandra, object, Action::Created));
    }
    Ok(outcomes)
}

async fn keyspace_replication(
    session: &Session,
    keyspace: &str,
) -> Result<Option<BTreeMap<String, String>>, StoreError> {
    let result = session
        .query_unpaged(
            "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?",
            (keyspace,),
        )
        .await
        .map_err(|e| request_error("cannot read system_schema.keyspaces".into(), e))?;
    let rows = result
        .into_rows_result()
        .map_err(|e| request_error("unexpected system_schema.keyspaces result".into(), e))?;
    rows.maybe_first_row::<(BTreeMap<String, String>,)>()
        .map(|row| row.map(|(replication,)| replication))
        .map_err(|e| request_error("unexpected system_schema.keyspaces row".into(), e))
}

async fn table_exists(session: &Session, keyspace: &str, table: &str) -> Result<bool, StoreError> {
    let result = session
        .query_unpaged(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ? AND table_name = ?",
            (keyspace, table),
        )
        .await
        .map_err(|e| request_error("cannot read system_schema.tables".into(), e))?;
    let rows = result
        .into_rows_result()
        .map_err(|e| request_error("unexpected system_schema.tables result".into(), e))?;
    Ok(rows.rows_num() > 0)
}
