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
/// tributary's private key.
fn every_secret() -> Vec<(String, String)> {
    let key = std::fs::read_to_string(tls_file("tributary.key")).expect("tributary's key");
    let key_body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(key_body.len() > 40, "{key}");
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
    .chain([("tributary.key".to_owned(), key_body)])
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

/// The whole pipeline over TLS with passwords, exactly once; then no password of any
/// store in anything tributary wrote: the demo's output and its log (at debug level),
/// `config show`, a running instance's `/api/status` and its log, and the run's spans in
/// Jaeger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_moves_users_exactly_once_and_no_secret_leaks() {
    let _turn = STORES.lock().await;
    let mut config = secure_config();
    reset_schema_and_keyspace(&config).await;
    let mut env = isolated(&mut config, "pipeline");
    env.push(("TRIBUTARY__TELEMETRY__LOG_FILTER".into(), "debug".into()));
    let log = std::env::temp_dir().join(format!("{}.log", unique("secure_demo")));

    let apply = tributary(&["schema", "apply"], &env);
    assert!(apply.status.success(), "{}", text(&apply));
    let demo = tributary(
        &[
            "demo",
            "--users",
            "1000",
            "--log-file",
            &log.display().to_string(),
        ],
        &env,
    );
    let demo_text = text(&demo);
    assert!(demo.status.success(), "{demo_text}");
    assert!(
        demo_text
            .lines()
            .any(|l| l.starts_with("rows in cassandra") && l.ends_with(" 1000")),
        "{demo_text}"
    );
    assert!(demo_text.contains("verify: OK"), "{demo_text}");
    let demo_log = std::fs::read_to_string(&log).expect("the demo's log");
    let _ = std::fs::remove_file(&log);
    // The search below means something only if the log is the verbose one.
    assert!(demo_log.contains("DEBUG"), "{demo_log}");

    let show = tributary(&["config", "show"], &env);
    assert!(show.status.success(), "{}", text(&show));
    let (status, run_log) = status_of_a_running_instance(&env).await;
    // The demo's spans and the instance's (it exports them as it stops).
    let spans = spans_in_jaeger(&config).await;

    for (name, value) in every_secret() {
        for (what, haystack) in [
            ("the demo's output", demo_text.as_str()),
            ("the demo's log", demo_log.as_str()),
            ("config show", &text(&show)),
            ("/api/status", status.as_str()),
            ("the run's log", run_log.as_str()),
            ("Jaeger's spans", spans.as_str()),
        ] {
            assert!(!haystack.contains(&value), "{name} found in {what}");
        }
    }
    delete_topics_as_admin(
        &config.kafka,
        &[
            &config.kafka.topics.raw.name,
            &config.kafka.topics.checkpoints.name,
            &config.kafka.topics.dlq.name,
        ],
    )
    .await;
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

/// A `tributary run` child, stopped (SIGTERM, then SIGKILL after 30 s) when dropped,
/// whatever the test's outcome.
struct Running(std::process::Child);

impl Running {
    /// SIGTERM, then waits for the graceful shutdown (spans exported, consumers left).
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            self.stop();
        }
    }
}

/// `tributary run`'s `/api/status` once it answers, and what the process logged.
async fn status_of_a_running_instance(env: &[(String, String)]) -> (String, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let log = std::env::temp_dir().join(format!("{}.log", unique("secure_run")));
    let mut command = Command::new(env!("CARGO_BIN_EXE_tributary"));
    command
        .args(["run"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("TRIBUTARY_PROFILE", "secure")
        .env("TRIBUTARY__ADMIN__BIND", format!("127.0.0.1:{port}"))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("run log"));
    let mut child = Running(command.spawn().expect("tributary run starts"));
    let url = format!("http://127.0.0.1:{port}/api/status");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Ok(response) = reqwest::get(&url).await
            && response.status().is_success()
        {
            break response.text().await.expect("status body");
        }
        assert!(
            Instant::now() < deadline,
            "no /api/status within 60 s: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    child.stop();
    let run_log = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    assert!(status.contains("\"tree\""), "{status}");
    (status, run_log)
}

/// Every trace Jaeger holds for the demo's service, as its query API returns them,
/// once there is at least one.
async fn spans_in_jaeger(config: &Config) -> String {
    let url = format!(
        "{}/api/traces?service={}&limit=100",
        config.telemetry.query_url, config.telemetry.service_name
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = reqwest::get(&url).await
            && let Ok(body) = response.text().await
            && body.contains("\"spanID\"")
        {
            return body;
        }
        assert!(Instant::now() < deadline, "no trace in Jaeger at {url}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// For each store: a wrong password, a CA that did not sign the server's certificate, a
/// client certificate the server does not trust, each an exit 2 naming the store and
/// the cause.
#[test]
fn a_wrong_password_ca_or_client_certificate_exits_2_naming_the_store_and_the_cause() {
    let wrong = std::env::temp_dir().join(unique("wrong_password"));
    std::fs::write(&wrong, "not-the-password\n").expect("write");
    let wrong = wrong.display().to_string();
    let other_ca = tls_file("other-ca.pem").display().to_string();
    let stranger = tls_file("stranger.pem").display().to_string();
    let stranger_key = tls_file("stranger.key").display().to_string();
    // (section, its password-file key, what it says of a wrong password, of a wrong CA,
    // of a client certificate from another CA)
    for (section, password_key, bad_password, bad_ca, bad_certificate) in [
        (
            "postgres",
            "PASSWORD_FILE",
            "password authentication failed for user \"tributary\"",
            "invalid peer certificate: UnknownIssuer",
            "received fatal alert: UnknownCA",
        ),
        (
            "kafka",
            "SASL_PASSWORD_FILE",
            "invalid credentials with SASL mechanism SCRAM-SHA-512",
            "certificate verify failed",
            "sslv3 alert bad certificate",
        ),
        (
            "cassandra",
            "PASSWORD_FILE",
            "Provided username tributary and/or password are incorrect",
            "invalid peer certificate: UnknownIssuer",
            "is not signed by a CA it trusts",
        ),
    ] {
        let prefix = format!("TRIBUTARY__{}__", section.to_uppercase());
        let mut config = secure_config();
        let names = isolated(&mut config, section);
        let missing_key =
            format!("{section}.sslkey /nonexistent/tributary.key: not a PEM private key");
        for (what, settings, expected) in [
            (
                "password",
                vec![(password_key, wrong.as_str())],
                bad_password,
            ),
            ("CA", vec![("SSLROOTCERT", other_ca.as_str())], bad_ca),
            (
                "client certificate",
                vec![
                    ("SSLCERT", stranger.as_str()),
                    ("SSLKEY", stranger_key.as_str()),
                ],
                bad_certificate,
            ),
            (
                "client key",
                vec![("SSLKEY", "/nonexistent/tributary.key")],
                missing_key.as_str(),
            ),
        ] {
            let mut env = names.clone();
            for (key, value) in settings {
                env.push((format!("{prefix}{key}"), value.to_owned()));
            }
            // librdkafka retries a refused broker until the request times out.
            env.push(("TRIBUTARY__KAFKA__REQUEST_TIMEOUT_MS".into(), "3000".into()));
            let out = tributary(&["schema", "apply", "--only", section], &env);
            let said = text(&out);
            assert_eq!(out.status.code(), Some(2), "{section} {what}: {said}");
            let error = said
                .lines()
                .find(|l| l.starts_with("error: "))
                .unwrap_or_else(|| panic!("{section} {what}: no error line in {said}"));
            assert!(error.contains(section_name(section)), "{error}");
            assert!(error.contains(expected), "{section} {what}: {error}");
        }
    }
}

/// How errors name each store.
fn section_name(section: &str) -> &'static str {
    match section {
        "postgres" => "postgresql",
        "kafka" => "kafka",
        _ => "cassandra",
    }
}

/// The secure profile's clients reach every store; with `change` made to their
/// configuration, each store's refusal, as its error chain: PostgreSQL's, Kafka's,
/// Cassandra's. (Short timeouts: a refused client is retried until they pass.)
async fn refusals(change: impl FnOnce(&mut Config)) -> [String; 3] {
    let mut config = secure_config();
    postgres::connect(&config.postgres)
        .await
        .expect("PostgreSQL as the secure profile");
    kafka::check(&config.kafka)
        .await
        .expect("Kafka as the secure profile");
    cassandra::connect(&config.cassandra)
        .await
        .expect("Cassandra as the secure profile");

    change(&mut config);
    config.kafka.request_timeout_ms = 3_000;
    config.cassandra.connect_timeout_ms = 2_000;
    let refused = |what: &str| format!("{what} was not refused");
    [
        tributary_actors::error_chain(
            &postgres::connect(&config.postgres)
                .await
                .expect_err(&refused("PostgreSQL")),
        ),
        tributary_actors::error_chain(
            &kafka::check(&config.kafka)
                .await
                .expect_err(&refused("Kafka")),
        ),
        tributary_actors::error_chain(
            &cassandra::connect(&config.cassandra)
                .await
                .expect_err(&refused("Cassandra")),
        ),
    ]
}

/// A client that does not speak TLS gets nothing from any store (each of which answers
/// the same client over TLS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_client_is_refused_by_every_store() {
    let [postgres, kafka, cassandra] = refusals(|config| {
        config.postgres.sslmode = SslMode::Disable;
        config.postgres.sslrootcert = None;
        config.kafka.sslmode = SslMode::Disable;
        config.kafka.sslrootcert = None;
        config.cassandra.sslmode = SslMode::Disable;
        config.cassandra.sslrootcert = None;
    })
    .await;
    assert!(
        postgres.contains("pg_hba.conf rejects connection") && postgres.contains("no encryption"),
        "{postgres}"
    );
    assert!(
        // The broker hangs up on the first request, which a TLS listener takes for a
        // handshake.
        kafka.starts_with("kafka is unreachable")
            && kafka.contains("connection closed by peer")
            && kafka.contains("APIVERSION_QUERY"),
        "{kafka}"
    );
    assert!(
        cassandra.starts_with("cassandra is unreachable"),
        "{cassandra}"
    );
}

/// Every store asks for a client certificate: without one, nothing; and PostgreSQL takes
/// tributary's role only with a certificate that names it (the stack's server
/// certificate, from the same CA, names another).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_its_certificate_is_refused_by_every_store() {
    let [postgres, kafka, cassandra] = refusals(|config| {
        config.postgres.sslcert = None;
        config.postgres.sslkey = None;
        config.kafka.sslcert = None;
        config.kafka.sslkey = None;
        config.cassandra.sslcert = None;
        config.cassandra.sslkey = None;
    })
    .await;
    assert!(
        postgres.contains("connection requires a valid client certificate"),
        "{postgres}"
    );
    assert!(kafka.contains("sslv3 alert bad certificate"), "{kafka}");
    assert!(
        cassandra.contains("ends the session this way when none is presented"),
        "{cassandra}"
    );

    let mut config = secure_config();
    config.postgres.sslcert = Some(tls_file("server.pem"));
    config.postgres.sslkey = Some(tls_file("server.key"));
    let error = postgres::connect(&config.postgres)
        .await
        .expect_err("PostgreSQL with a certificate naming another role");
    // PostgreSQL tells the client no more than that (its log says "certificate
    // validation (clientcert=verify-full) failed for user "tributary": CN mismatch"):
    // the same password was accepted with tributary's own certificate, in refusals.
    let text = tributary_actors::error_chain(&error);
    assert!(
        text.contains("password authentication failed for user \"tributary\""),
        "{text}"
    );
}

/// tributary's role reaches its own schema, keyspace, topics, groups and transactional
/// ids, and each store refuses it anything else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tributary_reaches_its_own_objects_and_nothing_else() {
    let _turn = STORES.lock().await;
    let mut config = secure_config();
    let _ = isolated(&mut config, "authz");

    // PostgreSQL: its schema, not public, not a schema of its own making.
    let client = postgres::connect(&config.postgres)
        .await
        .expect("postgres as tributary");
    client
        .batch_execute(
            "CREATE TABLE tributary.authz_probe (x int); DROP TABLE tributary.authz_probe",
        )
        .await
        .expect("a table in its own schema");
    for (sql, refusal) in [
        (
            "CREATE TABLE public.intruder (x int)",
            "permission denied for schema public",
        ),
        (
            "CREATE SCHEMA intruder",
            "permission denied for database postgres",
        ),
        (
            "SELECT * FROM pg_authid",
            "permission denied for table pg_authid",
        ),
    ] {
        let error = client.batch_execute(sql).await.expect_err(sql);
        let text = error
            .as_db_error()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(text.contains(refusal), "{sql}: {error:?}");
    }

    // Cassandra: its keyspace, no other, no roles table.
    let session = cassandra::connect(&config.cassandra)
        .await
        .expect("cassandra as tributary");
    session
        .query_unpaged(
            "CREATE TABLE IF NOT EXISTS tributary.authz_probe (x int PRIMARY KEY)",
            (),
        )
        .await
        .expect("a table in its own keyspace");
    session
        .query_unpaged("DROP TABLE tributary.authz_probe", ())
        .await
        .expect("its creator may drop it");
    for (cql, refusal) in [
        (
            "DROP KEYSPACE tributary",
            "has no DROP permission on <keyspace tributary>",
        ),
        (
            "CREATE KEYSPACE intruder WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}",
            "has no CREATE permission on <all keyspaces>",
        ),
        (
            "SELECT * FROM system_auth.roles",
            "has no SELECT permission",
        ),
    ] {
        let error = session.query_unpaged(cql, ()).await.expect_err(cql);
        assert!(error.to_string().contains(refusal), "{cql}: {error}");
    }

    kafka_reaches_its_own_topics_groups_and_transactional_ids_only(&config.kafka).await;
}

async fn kafka_reaches_its_own_topics_groups_and_transactional_ids_only(config: &kafka::Config) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::producer::{BaseProducer, Producer};
    use rdkafka::types::RDKafkaErrorCode;

    let admin: AdminClient<DefaultClientContext> = config
        .client_config("authz-admin")
        .expect("client config")
        .create()
        .expect("admin client");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let own = unique("tributary.authz");
    let topics = [
        NewTopic::new(&own, 1, TopicReplication::Fixed(1)),
        NewTopic::new("intruder.topic", 1, TopicReplication::Fixed(1)),
    ];
    let results = admin
        .create_topics(&topics, &options)
        .await
        .expect("create topics request");
    assert!(results[0].is_ok(), "its own topic: {:?}", results[0]);
    assert_eq!(
        results[1].as_ref().err().map(|(_, code)| *code),
        Some(RDKafkaErrorCode::TopicAuthorizationFailed),
        "{:?}",
        results[1]
    );

    // A group of another name may not be joined: the consumer is told so.
    let consumer: BaseConsumer = config
        .client_config("authz-consumer")
        .expect("client config")
        .set("group.id", "intruder-group")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&own]).expect("subscribe");
    let refused = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(Err(error)) = consumer.poll(Duration::from_millis(500))
                && error.rdkafka_error_code() == Some(RDKafkaErrorCode::GroupAuthorizationFailed)
            {
                return Some(error);
            }
        }
        None
    })
    .await
    .expect("poll task")
    .is_some();
    assert!(
        refused,
        "no GroupAuthorizationFailed for a group of another name"
    );

    // A transactional id of another name may not be used.
    let producer: BaseProducer = config
        .client_config("authz-producer")
        .expect("client config")
        .set("transactional.id", "intruder-txn")
        .create()
        .expect("producer");
    let error =
        tokio::task::spawn_blocking(move || producer.init_transactions(Duration::from_secs(10)))
            .await
            .expect("init task")
            .expect_err("a transactional id of another name");
    assert_eq!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::TransactionalIdAuthorizationFailed),
        "{error}"
    );
    delete_topics_as_admin(config, &[&own]).await;
}
