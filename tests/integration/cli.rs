//! The `tributary` binary as users run it: exit codes and messages.

use crate::common::unique;
use std::process::{Command, Output};

fn tributary(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tributary"));
    cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.output().expect("tributary runs")
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn schema_apply_twice_creates_then_changes_nothing() {
    let name = unique("it_cli");
    let raw = format!("{name}.raw");
    let checkpoints = format!("{name}.checkpoints");
    let dlq = format!("{name}.dlq");
    let env = [
        ("TRIBUTARY__POSTGRES__SCHEMA", name.as_str()),
        ("TRIBUTARY__CASSANDRA__KEYSPACE", name.as_str()),
        ("TRIBUTARY__KAFKA__TOPICS__RAW__NAME", raw.as_str()),
        (
            "TRIBUTARY__KAFKA__TOPICS__CHECKPOINTS__NAME",
            checkpoints.as_str(),
        ),
        ("TRIBUTARY__KAFKA__TOPICS__DLQ__NAME", dlq.as_str()),
    ];
    let first = tributary(&["schema", "apply"], &env);
    let (stdout, stderr) = text(&first);
    assert!(
        first.status.success(),
        "first apply failed: {stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("keyspace {name}")) && stdout.contains("created"),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("topic {raw}")), "{stdout}");
    let created = stdout
        .lines()
        .filter(|l| l.ends_with(" created") && !l.contains("object(s)"))
        .count();
    assert!(
        created >= 8,
        "schema, migrations, keyspace, 2 tables, 3 topics: {stdout}"
    );
    assert!(
        stdout.contains(&format!("{created} object(s) created")),
        "{stdout}"
    );

    let second = tributary(&["schema", "apply"], &env);
    let (stdout, stderr) = text(&second);
    assert!(
        second.status.success(),
        "second apply failed: {stdout}\n{stderr}"
    );
    assert!(
        !stdout.contains("created\n"),
        "second apply created something: {stdout}"
    );
    assert!(
        stdout.contains("schema up to date: nothing to change"),
        "{stdout}"
    );
}

#[test]
fn unknown_key_exits_2_naming_it() {
    let out = tributary(
        &["config", "show"],
        &[("TRIBUTARY__CASSANDRA__KEYSPAC", "x")],
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cassandra.keyspac"), "{stderr}");
}

#[test]
fn bad_value_exits_2_naming_the_key() {
    let out = tributary(
        &["config", "show"],
        &[("TRIBUTARY__KAFKA__TOPICS__RAW__PARTITIONS", "-3")],
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("kafka.topics.raw.partitions"), "{stderr}");
}

#[test]
fn secrets_come_from_the_environment_and_are_never_printed() {
    let out = tributary(
        &["config", "show"],
        &[("TRIBUTARY__POSTGRES__PASSWORD", "pw-that-must-not-leak")],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("[redacted]"), "{stdout}");
    assert!(!stdout.contains("pw-that-must-not-leak") && !stderr.contains("pw-that-must-not-leak"));
}

#[test]
fn unreachable_store_exits_2_naming_the_service() {
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    let cases = [
        (
            "postgres",
            "TRIBUTARY__POSTGRES__PORT",
            "1",
            "postgresql is unreachable",
        ),
        (
            "cassandra",
            "TRIBUTARY__CASSANDRA__CONTACT_POINTS",
            "127.0.0.1:1",
            "cassandra is unreachable",
        ),
        (
            "kafka",
            "TRIBUTARY__KAFKA__BOOTSTRAP_SERVERS",
            "127.0.0.1:1",
            "kafka is unreachable",
        ),
    ];
    for (store, key, value, message) in cases {
        let out = tributary(
            &["schema", "apply", "--only", store],
            &[
                (key, value),
                ("TRIBUTARY__KAFKA__REQUEST_TIMEOUT_MS", "2000"),
            ],
        );
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{store}: {stderr}");
        assert!(stderr.contains(message), "{store}: {stderr}");
    }
}

/// TLS to each store from the command line: `schema apply` over verify-full succeeds;
/// a wrong CA, an unreadable CA file and verify-full without a CA each exit 2 naming the
/// store or its key, and the cause.
#[test]
fn tls_from_the_command_line_for_each_store() {
    let ca = crate::common::stack_tls_file("ca.pem")
        .display()
        .to_string();
    let other = crate::common::stack_tls_file("other-ca.pem")
        .display()
        .to_string();
    // (section, how each TLS client says a certificate's issuer is unknown)
    for (section, wrong_ca) in [
        ("postgres", "invalid peer certificate: UnknownIssuer"),
        ("cassandra", "invalid peer certificate: UnknownIssuer"),
        ("kafka", "certificate verify failed"),
    ] {
        let config = crate::common::isolated_config(&format!("it_cli_tls_{section}"));
        let apply = ["schema", "apply", "--only", section];
        let prefix = format!("TRIBUTARY__{}__", section.to_uppercase());
        let with = |rootcert: Option<&str>| {
            let mut env = crate::common::isolated_env(&config);
            env.push((format!("{prefix}SSLMODE"), "verify-full".to_owned()));
            env.extend(rootcert.map(|path| (format!("{prefix}SSLROOTCERT"), path.to_owned())));
            if section == "kafka" {
                env.push((
                    "TRIBUTARY__KAFKA__BOOTSTRAP_SERVERS".to_owned(),
                    crate::common::kafka_tls_bootstrap(),
                ));
                // A broker refused is retried until this passes.
                env.push((
                    "TRIBUTARY__KAFKA__REQUEST_TIMEOUT_MS".to_owned(),
                    "3000".to_owned(),
                ));
            }
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            tributary(&apply, &env)
        };

        let out = with(Some(&ca));
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{section}: {stdout}\n{stderr}");

        for (rootcert, expected) in [
            (Some(other.as_str()), wrong_ca.to_owned()),
            (
                Some("/nonexistent/ca.pem"),
                format!("{section}.sslrootcert /nonexistent/ca.pem: cannot read it"),
            ),
            (
                None,
                format!(
                    "{section}.sslrootcert: required when {section}.sslmode is \"verify-full\""
                ),
            ),
        ] {
            let out = with(rootcert);
            let (_, stderr) = text(&out);
            assert_eq!(out.status.code(), Some(2), "{rootcert:?}: {stderr}");
            assert!(stderr.contains(&expected), "{rootcert:?}: {stderr}");
            assert!(stderr.contains(section), "{rootcert:?}: {stderr}");
        }
    }
}

/// `tributary demo` (what `make demo` runs after schema apply) moves users through the
/// pipeline and ends with a clean verify.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_moves_users_and_verifies() {
    let config = crate::common::isolated_config("it_demo");
    tributary::schema::apply(&config, &[])
        .await
        .expect("schema apply");
    let mut env = crate::common::isolated_env(&config);
    // Traces on: the demo names one of its traces, asked from Jaeger.
    env.push((
        "TRIBUTARY__TELEMETRY__OTLP_ENDPOINT".into(),
        config.telemetry.otlp_endpoint.clone(),
    ));
    let log = std::env::temp_dir().join(format!("{}.log", unique("it_demo_log")));
    let log_arg = log.display().to_string();
    let (out, rescheduled) = tokio::task::spawn_blocking(move || {
        let mut env: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let out = tributary(&["demo", "--users", "2000", "--log-file", &log_arg], &env);
        // Run ids are slots of the schedule: another interval on the same ledger is
        // refused at start, naming the key, instead of scheduling nothing.
        env.push(("TRIBUTARY__INGEST__INTERVAL_MS", "5000"));
        (out, tributary(&["run"], &env))
    })
    .await
    .expect("demo task");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    // Not a terminal: plain lines — the first phase, a line of counts per stage — and
    // verify's count (the display's counts are the process's own, a retried fetch
    // counts twice; the stores' are verify's).
    assert!(
        stdout.contains("demo:    0s  starting the actor tree…"),
        "{stdout}"
    );
    assert!(
        stdout.contains("fetched ")
            && stdout.contains("/2000  staged ")
            && stdout.contains("  in cassandra "),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("rows in cassandra") && l.ends_with(" 2000")),
        "{stdout}"
    );
    assert!(stdout.contains("verify: OK"), "{stdout}");
    assert_where_to_look(&stdout, &log);
    let (_, refusal) = text(&rescheduled);
    assert_eq!(rescheduled.status.code(), Some(2), "{refusal}");
    assert!(
        refusal.contains("ingest.interval_ms = 5000") && refusal.contains("recorded every 1000 ms"),
        "{refusal}"
    );
    // Logs (JSON in tests) go to the file, not to the output.
    assert!(!stdout.contains("\"level\""), "{stdout}");
    let logged = std::fs::read_to_string(&log).expect("the demo's log file");
    assert!(logged.contains("\"level\":\"INFO\""), "{logged}");
    let _ = std::fs::remove_file(&log);
}

/// The whole pipeline with TLS to every store (`sslmode = "verify-full"` for
/// PostgreSQL, Kafka through the stack's TLS-only listener, and Cassandra): the demo's
/// users arrive exactly once, as its verify over the same connections reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_with_tls_to_every_store_moves_users_exactly_once() {
    let config = crate::common::isolated_config("it_demo_tls");
    tributary::schema::apply(&config, &[])
        .await
        .expect("schema apply");
    let ca = crate::common::stack_tls_file("ca.pem")
        .display()
        .to_string();
    let mut env = crate::common::isolated_env(&config);
    for store in ["POSTGRES", "KAFKA", "CASSANDRA"] {
        env.push((format!("TRIBUTARY__{store}__SSLMODE"), "verify-full".into()));
        env.push((format!("TRIBUTARY__{store}__SSLROOTCERT"), ca.clone()));
    }
    env.push((
        "TRIBUTARY__KAFKA__BOOTSTRAP_SERVERS".into(),
        crate::common::kafka_tls_bootstrap(),
    ));
    let out = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        tributary(&["demo", "--users", "1000"], &env)
    })
    .await
    .expect("demo task");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("rows in cassandra") && l.ends_with(" 1000")),
        "{stdout}"
    );
    assert!(stdout.contains("verify: OK"), "{stdout}");
}

/// What the demo prints after verify: the Cassandra query, the dashboard, one run's
/// trace from Jaeger's API, and the log file.
fn assert_where_to_look(stdout: &str, log: &std::path::Path) {
    let after = stdout
        .split("Where to look next")
        .nth(1)
        .unwrap_or_else(|| panic!("no 'Where to look next' in:\n{stdout}"));
    assert!(after.contains("SELECT * FROM it_demo"), "{after}");
    assert!(
        after.contains("the dashboard      tributary run"),
        "{after}"
    );
    assert!(
        after.contains("one run's journey  trace ") && after.contains("INSERT created_users"),
        "{after}"
    );
    assert!(after.contains(&log.display().to_string()), "{after}");
}

/// On a terminal (a pseudo-terminal from util-linux's `script`): the live display's
/// stage bars and phase line, verify's table, and no log line among them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_draws_live_bars_on_a_terminal() {
    let config = crate::common::isolated_config("it_demo_tty");
    tributary::schema::apply(&config, &[])
        .await
        .expect("schema apply");
    let env = crate::common::isolated_env(&config);
    let log = std::env::temp_dir().join(format!("{}.log", unique("it_demo_tty_log")));
    let command = format!(
        "stty cols 120 rows 40; {} demo --users 1000 --log-file {}",
        env!("CARGO_BIN_EXE_tributary"),
        log.display()
    );
    let out = tokio::task::spawn_blocking(move || {
        let mut script = Command::new("script");
        script
            .args(["--quiet", "--return", "--command", &command, "/dev/null"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(std::process::Stdio::null());
        for (key, value) in &env {
            script.env(key, value);
        }
        // A terminal session has a terminal type (CI's environment has none).
        script.env("TERM", "xterm-256color");
        script.output().expect("script (util-linux) runs")
    })
    .await
    .expect("demo task");
    let (raw, stderr) = text(&out);
    assert!(out.status.success(), "demo failed:\n{raw}\n{stderr}");
    let screen = without_escapes(&raw);
    for stage in ["fetched", "staged", "published", "in cassandra"] {
        assert!(
            screen.contains(&format!("{stage} ")) && screen.contains("1,000/1,000"),
            "no bar for {stage}:\n{screen}"
        );
    }
    assert!(screen.contains("starting the actor tree…"), "{screen}");
    assert!(screen.contains("verify: OK"), "{screen}");
    // Warnings may reach the terminal (above the bars); the INFO chatter goes to the file.
    assert!(
        !screen.contains("\"level\":\"INFO\""),
        "info lines on the terminal:\n{screen}"
    );
    let logged = std::fs::read_to_string(&log).expect("the demo's log file");
    assert!(logged.contains("\"level\":\"INFO\""), "{logged}");
    let _ = std::fs::remove_file(&log);
}

/// The text of a terminal session: ANSI escape sequences removed, carriage returns as
/// line ends.
fn without_escapes(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // CSI: ESC [ parameters, then one final byte in @..~.
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
            }
            '\r' => out.push('\n'),
            c => out.push(c),
        }
    }
    out
}

/// verify finds what is wrong: a user missing from Kafka, one delivered twice, and one
/// that was never staged; exit code 1 and the JSON keys users script against.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_missing_duplicated_and_unexpected_ids() {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let config = crate::common::isolated_config("it_verify");
    tributary::schema::apply(&config, &[])
        .await
        .expect("schema apply");
    let pool = tributary_actors::store::postgres::pool(&config.postgres).expect("pool");
    let client = pool.get().await.expect("connection");
    client
        .execute(
            "INSERT INTO runs (run_id, scheduled_for, requested_users) VALUES (1, now(), 2)",
            &[],
        )
        .await
        .expect("run");
    let (delivered_twice, missing, unexpected) = (
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
    );
    for id in [delivered_twice, missing] {
        client
            .execute(
                "INSERT INTO staged_users (source_uuid, run_id, payload) VALUES ($1, 1, '{}')",
                &[&id],
            )
            .await
            .expect("staged user");
    }
    let (kafka, topic) = (config.kafka.clone(), config.kafka.topics.raw.name.clone());
    tokio::task::spawn_blocking(move || {
        let producer: ThreadedProducer<DefaultProducerContext> = kafka
            .client_config("test")
            .unwrap()
            .create()
            .expect("producer");
        for id in [delivered_twice, delivered_twice, unexpected] {
            let key = id.to_string();
            producer
                .send(BaseRecord::to(&topic).key(&key).payload("{}"))
                .map_err(|(e, _)| e)
                .expect("send");
        }
        producer
            .flush(std::time::Duration::from_secs(10))
            .expect("flush");
    })
    .await
    .unwrap();

    let env = crate::common::isolated_env(&config);
    let out = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        tributary(&["verify", "--json"], &env)
    })
    .await
    .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    for key in [
        "staged",
        "in_kafka",
        "in_cassandra",
        "missing",
        "duplicated",
        "unexpected",
        "aggregate_errors",
    ] {
        assert!(report.get(key).is_some(), "key {key} in {report}");
    }
    // Nothing ran the process pipeline: both staged users are missing from Cassandra,
    // one of them from Kafka too.
    assert_eq!(report["staged"], 2);
    assert_eq!(report["in_cassandra"], 0);
    assert_eq!(report["missing"], 2);
    assert_eq!(report["missing_in_kafka"], 1);
    assert_eq!(report["missing_in_cassandra"], 2);
    assert_eq!(report["duplicated"], 1);
    assert_eq!(report["unexpected"], 1);
    assert_eq!(
        report["samples"]["duplicated"][0],
        delivered_twice.to_string()
    );
    assert_eq!(report["samples"]["unexpected"][0], unexpected.to_string());
}
