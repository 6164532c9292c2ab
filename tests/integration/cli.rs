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
    assert!(stdout.contains("8 object(s) created"), "{stdout}");

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
