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

/// Columns added after their table was first released: added to tables that predate
/// them (a new table has them from its CQL file).
/// Table options every table must have, whenever it was created.
pub const TABLE_OPTIONS: &[(&str, &str)] = &[("partition_state", "gc_grace_seconds = 3600")];

pub const ADDED_COLUMNS: &[(&str, &str, &str)] = &[("created_users", "run_id", "bigint")];

/// Indexes as (table, name, CQL file), created after the tables.
pub const INDEXES: &[(&str, &str, &str)] = &[(
    "created_users",
    "created_users_run_id",
    include_str!("../../config/cassandra/created_users_run_id.cql"),
)];

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
                .map_err(Service::Cassandra.error(format!("cannot create keyspace {keyspace}")))?;
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
            .map_err(Service::Cassandra.error(format!("cannot create {object}")))?;
        outcomes.push(Outcome::new(Service::Cassandra, object, Action::Created));
    }
    for (table, column, kind) in ADDED_COLUMNS {
        let object = format!("column {keyspace}.{table}.{column}");
        if column_exists(&session, keyspace, table, column).await? {
            continue;
        }
        session
            .query_unpaged(
                format!("ALTER TABLE {keyspace}.{table} ADD {column} {kind}"),
                (),
            )
            .await
            .map_err(Service::Cassandra.error(format!("cannot add {object}")))?;
        outcomes.push(Outcome::new(Service::Cassandra, object, Action::Created));
    }
    // Tables created before their options were set get them (idempotent).
    for (table, options) in TABLE_OPTIONS {
        session
            .query_unpaged(format!("ALTER TABLE {keyspace}.{table} WITH {options}"), ())
            .await
            .map_err(
                Service::Cassandra.error(format!("cannot set {options} on {keyspace}.{table}")),
            )?;
    }
    for (table, index, template) in INDEXES {
        let object = format!("index {keyspace}.{index}");
        if index_exists(&session, keyspace, table, index).await? {
            outcomes.push(Outcome::new(Service::Cassandra, object, Action::Unchanged));
            continue;
        }
        session
            .query_unpaged(template.replace("{keyspace}", keyspace), ())
            .await
            .map_err(Service::Cassandra.error(format!("cannot create {object}")))?;
        outcomes.push(Outcome::new(Service::Cassandra, object, Action::Created));
    }
    Ok(outcomes)
}

async fn column_exists(
    session: &Session,
    keyspace: &str,
    table: &str,
    column: &str,
) -> Result<bool, StoreError> {
    let result = session
        .query_unpaged(
            "SELECT column_name FROM system_schema.columns \
             WHERE keyspace_name = ? AND table_name = ? AND column_name = ?",
            (keyspace, table, column),
        )
        .await
        .map_err(Service::Cassandra.error("cannot read system_schema.columns"))?;
    let rows = result
        .into_rows_result()
        .map_err(Service::Cassandra.error("unexpected system_schema.columns result"))?;
    Ok(rows.rows_num() > 0)
}

async fn index_exists(
    session: &Session,
    keyspace: &str,
    table: &str,
    index: &str,
) -> Result<bool, StoreError> {
    let result = session
        .query_unpaged(
            "SELECT index_name FROM system_schema.indexes \
             WHERE keyspace_name = ? AND table_name = ? AND index_name = ?",
            (keyspace, table, index),
        )
        .await
        .map_err(Service::Cassandra.error("cannot read system_schema.indexes"))?;
    let rows = result
        .into_rows_result()
        .map_err(Service::Cassandra.error("unexpected system_schema.indexes result"))?;
    Ok(rows.rows_num() > 0)
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
        .map_err(Service::Cassandra.error("cannot read system_schema.keyspaces"))?;
    let rows = result
        .into_rows_result()
        .map_err(Service::Cassandra.error("unexpected system_schema.keyspaces result"))?;
    rows.maybe_first_row::<(BTreeMap<String, String>,)>()
        .map(|row| row.map(|(replication,)| replication))
        .map_err(Service::Cassandra.error("unexpected system_schema.keyspaces row"))
}

async fn table_exists(session: &Session, keyspace: &str, table: &str) -> Result<bool, StoreError> {
    let result = session
        .query_unpaged(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ? AND table_name = ?",
            (keyspace, table),
        )
        .await
        .map_err(Service::Cassandra.error("cannot read system_schema.tables"))?;
    let rows = result
        .into_rows_result()
        .map_err(Service::Cassandra.error("unexpected system_schema.tables result"))?;
    Ok(rows.rows_num() > 0)
}
