//! Tests against the secure stack (`make test-secure`: `make stack-up STACK=secure`,
//! then `cargo test --test secure`), which requires TLS and a password from every client
//! and grants tributary's role its own objects only (stack/profiles/secure.sh). tributary
//! runs with `--profile secure` (config/secure.toml); the stores' administrator
//! passwords, which the tests use to reset tributary's schema and keyspace and which
//! must never show up anywhere tributary writes, are read from the stack's secrets.
//!
//! Not part of `cargo test --workspace` (the single stack runs no such servers): the
//! target is declared with `test = false` and run by name.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use tributary::config::{Config, Sources};
use tributary_actors::store::tls::SslMode;
use tributary_actors::store::{cassandra, kafka, postgres};

mod pipeline;
mod refusals;
mod rights;

/// Tests that reset or write tributary's schema and keyspace take turns.
static STORES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `config/secure.toml` over the defaults, and the environment (`stack.sh env` of the
/// secure stack, when exported, points at its files wherever the stack lives).
fn secure_config() -> Config {
    let sources = Sources {
        config_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config"),
        profile: Some("secure".into()),
        ..Sources::default()
    };
    Config::load(&sources).expect("config/secure.toml loads")
}

fn secrets_dir() -> PathBuf {
    std::env::var_os("TRIBUTARY_SECURE_SECRETS_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".stack/secure/secrets"),
        PathBuf::from,
    )
}

fn secret_file(name: &str) -> PathBuf {
    let path = secrets_dir().join(name);
    assert!(
        path.is_file(),
        "{} missing: start the secure stack (make stack-up STACK=secure)",
        path.display()
    );
    path
}

/// Every password the secure stack made (tributary's and the administrators'), and
/// each line of tributary's private key (a key printed as its file would be split so).
fn every_secret() -> Vec<(String, String)> {
    let key = std::fs::read_to_string(tls_file("tributary.key")).expect("tributary's key");
    let key_lines: Vec<(String, String)> = key
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 20)
        .enumerate()
        .map(|(i, line)| (format!("tributary.key line {}", i + 1), line.to_owned()))
        .collect();
    // Never the key itself in a failure message.
    assert!(!key_lines.is_empty(), "tributary.key holds no base64 line");
    [
        "postgres-admin",
        "postgres-tributary",
        "kafka-admin",
        "kafka-tributary",
        "cassandra-admin",
        "cassandra-tributary",
    ]
    .into_iter()
    .map(|name| {
        let value = std::fs::read_to_string(secret_file(name)).expect("secret file");
        (name.to_owned(), value.trim().to_owned())
    })
    .chain(key_lines)
    .collect()
}

/// A file of the stack's TLS material (stack/lib/tls.sh), beside the CA the secure
/// profile names.
fn tls_file(name: &str) -> PathBuf {
    secure_config()
        .postgres
        .sslrootcert
        .expect("the secure profile names the CA")
        .with_file_name(name)
}

/// `tributary` with the secure profile and `env` on top.
fn tributary(args: &[&str], env: &[(String, String)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tributary"));
    command
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("TRIBUTARY_PROFILE", "secure");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("tributary runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn unique(prefix: &str) -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}_{}_{}", std::process::id(), &random[..8])
}

/// tributary's schema and keyspace, empty again (as the administrators: tributary's
/// role may not create the schema, nor drop the keyspace).
async fn reset_schema_and_keyspace(config: &Config) {
    let mut admin = config.postgres.clone();
    admin.user = "postgres".into();
    admin.password_file = Some(secret_file("postgres-admin"));
    let client = postgres::connect(&admin).await.expect("postgres as admin");
    client
        .batch_execute(
            "DROP SCHEMA IF EXISTS tributary CASCADE; \
             CREATE SCHEMA tributary AUTHORIZATION tributary",
        )
        .await
        .expect("reset schema tributary");

    let mut admin = config.cassandra.clone();
    admin.username = Some("admin".into());
    admin.password_file = Some(secret_file("cassandra-admin"));
    let session = cassandra::connect(&admin)
        .await
        .expect("cassandra as admin");
    // The keyspace and its grants stay as the stack made them: only the tables go.
    let tables: Vec<(String,)> = session
        .query_unpaged(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = 'tributary'",
            (),
        )
        .await
        .expect("tributary's tables")
        .into_rows_result()
        .expect("rows")
        .rows::<(String,)>()
        .expect("typed rows")
        .collect::<Result<_, _>>()
        .expect("table names");
    for (table,) in tables {
        session
            .query_unpaged(format!("DROP TABLE tributary.{table}"), ())
            .await
            .unwrap_or_else(|e| panic!("drop tributary.{table}: {e}"));
    }
}

/// Topics, group and transactional id of this test's own, under the prefix the
/// stack's ACLs grant ("tributary"); the schema and keyspace stay tributary's.
fn isolated(config: &mut Config, prefix: &str) -> Vec<(String, String)> {
    config.isolate(&unique(&format!("tributary_{prefix}")));
    config.postgres.schema = "tributary".into();
    config.cassandra.keyspace = "tributary".into();
    config.names_env()
}

/// Drops a test's topics (as `admin`: tributary's role may not delete topics).
async fn delete_topics_as_admin(config: &kafka::Config, topics: &[&str]) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    let mut admin = config.clone();
    admin.sasl_username = Some("admin".into());
    admin.sasl_password_file = Some(secret_file("kafka-admin"));
    let client: AdminClient<DefaultClientContext> = admin
        .client_config("test-admin")
        .expect("client config")
        .create()
        .expect("admin client");
    for result in client
        .delete_topics(topics, &AdminOptions::new())
        .await
        .expect("delete topics")
    {
        result.unwrap_or_else(|(topic, code)| panic!("delete {topic}: {code:?}"));
    }
}
