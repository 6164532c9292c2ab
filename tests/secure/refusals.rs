//! What each store refuses: a wrong password, CA or client certificate, plaintext,
//! a client without its certificate.

use super::*;

/// For each store: a wrong password, a CA that did not sign the server's certificate, a
/// client certificate the server does not trust, a key file that cannot be read or
/// holds no key, each an exit 2 naming the store (or its key) and the cause.
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
            "refuses one that no CA it trusts signed",
        ),
    ] {
        let prefix = format!("TRIBUTARY__{}__", section.to_uppercase());
        let mut config = secure_config();
        let names = isolated(&mut config, section);
        let missing_key = format!("{section}.sslkey /nonexistent/tributary.key: cannot read it");
        let not_a_key = format!("{section}.sslkey {stranger}: not a PEM private key");
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
                "missing client key",
                vec![("SSLKEY", "/nonexistent/tributary.key")],
                missing_key.as_str(),
            ),
            (
                "a certificate for a key",
                vec![("SSLKEY", stranger.as_str())],
                not_a_key.as_str(),
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
    // The driver's words vary from run to run (a broken channel, CertificateRequired,
    // InternalError): what is checked is tributary's reading of them.
    assert!(
        cassandra.contains("refuses a client that presents none"),
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
