//! Round trips through the project's own store clients, against the real servers.

use crate::common::{isolated_config, kafka_tls_bootstrap, stack_tls_file};
use rdkafka::producer::DefaultProducerContext;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use std::time::Duration;
use tributary::schema::{self, Action};
use tributary_actors::process::progress::lwt_applied;
use tributary_actors::store::{Service, cassandra, kafka, postgres, tls};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_round_trip_stages_each_user_once() {
    let config = isolated_config("it_pg");
    let outcomes = schema::apply(&config, &[Service::Postgres])
        .await
        .expect("schema apply");
    assert!(
        outcomes.iter().all(|o| o.action == Action::Created),
        "{outcomes:?}"
    );

    let pool = postgres::pool(&config.postgres).expect("pool");
    postgres::check(&pool, &config.postgres)
        .await
        .expect("postgres answers");
    let client = pool.get().await.expect("pooled connection");
    client
        .execute(
            "INSERT INTO runs (run_id, scheduled_for, requested_users) VALUES (1, now(), 2)",
            &[],
        )
        .await
        .expect("insert run");
    let user = uuid::Uuid::new_v4();
    let payload =
        serde_json::json!({"login": {"uuid": user.to_string()}, "name": {"first": "Ada"}});
    // The same user staged twice (a replayed fetch) must land once.
    for _ in 0..2 {
        client
            .execute(
                "INSERT INTO staged_users (source_uuid, run_id, payload) VALUES ($1, 1, $2) \
                 ON CONFLICT (source_uuid) DO NOTHING",
                &[&user, &payload],
            )
            .await
            .expect("insert staged user");
    }
    let rows = client
        .query("SELECT source_uuid, payload FROM staged_users", &[])
        .await
        .expect("select");
    assert_eq!(rows.len(), 1);
    let (got_uuid, got_payload): (uuid::Uuid, serde_json::Value) = (rows[0].get(0), rows[0].get(1));
    assert_eq!(got_uuid, user);
    assert_eq!(got_payload["name"]["first"], "Ada");

    client
        .batch_execute(&format!("DROP SCHEMA {} CASCADE", config.postgres.schema))
        .await
        .expect("drop test schema");
}

/// Whether `client`'s connection is encrypted, as the server sees it.
async fn encrypted(client: &tokio_postgres::Client) -> bool {
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0)
}

/// `postgres.sslmode = "verify-full"`: every connection (dedicated and pooled) is TLS to
/// a server whose certificate chains to `sslrootcert`; trusting another CA refuses the
/// server, naming PostgreSQL and the certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_verify_full_encrypts_and_refuses_a_server_of_another_ca() {
    let mut config = isolated_config("it_pg_tls");
    config.postgres.sslmode = tls::SslMode::VerifyFull;
    config.postgres.sslrootcert = Some(stack_tls_file("ca.pem"));

    let client = postgres::connect(&config.postgres)
        .await
        .expect("a TLS connection to the stack's PostgreSQL");
    assert!(encrypted(&client).await, "the dedicated connection");
    let pool = postgres::pool(&config.postgres).expect("pool");
    postgres::check(&pool, &config.postgres)
        .await
        .expect("pooled TLS connection");
    let pooled = pool.get().await.expect("pooled connection");
    assert!(encrypted(&pooled).await, "the pooled connection");

    // The default, plaintext, says so too: the check above is not true of every connection.
    let plain = postgres::connect(&isolated_config("it_pg_plain").postgres)
        .await
        .expect("plaintext connection");
    assert!(!encrypted(&plain).await, "sslmode = disable encrypted");

    config.postgres.sslrootcert = Some(stack_tls_file("other-ca.pem"));
    let error = postgres::connect(&config.postgres)
        .await
        .expect_err("a server whose certificate another CA signed");
    let text = tributary_actors::error_chain(&error);
    assert!(text.starts_with("postgresql"), "{text}");
    assert!(
        text.contains("certificate") && text.contains("UnknownIssuer"),
        "{text}"
    );
}

/// `kafka.sslmode = "verify-full"`: topics created and metadata read through the
/// stack's TLS-only listener (a plaintext client gets nothing from it, so what answered
/// spoke TLS); trusting another CA refuses the broker, naming Kafka and the cause that
/// librdkafka logged, not only "transport failure".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_verify_full_encrypts_and_refuses_a_broker_of_another_ca() {
    let mut config = isolated_config("it_kafka_tls");
    config.kafka.bootstrap_servers = kafka_tls_bootstrap();
    config.kafka.request_timeout_ms = 3_000;
    config.kafka.sslmode = tls::SslMode::VerifyFull;
    config.kafka.sslrootcert = Some(stack_tls_file("ca.pem"));

    let outcomes = schema::apply(&config, &[Service::Kafka])
        .await
        .expect("topics created over TLS");
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| o.service == Service::Kafka && o.action == Action::Created)
            .count(),
        3,
        "{outcomes:?}"
    );
    let brokers = kafka::check(&config.kafka)
        .await
        .expect("metadata over TLS");
    assert_eq!(brokers, 1);

    let mut plaintext = config.kafka.clone();
    plaintext.sslmode = tls::SslMode::Disable;
    plaintext.sslrootcert = None;
    kafka::check(&plaintext)
        .await
        .expect_err("a plaintext client of the TLS listener");

    config.kafka.sslrootcert = Some(stack_tls_file("other-ca.pem"));
    let error = kafka::check(&config.kafka)
        .await
        .expect_err("a broker whose certificate another CA signed");
    let text = tributary_actors::error_chain(&error);
    assert!(text.starts_with("kafka"), "{text}");
    assert!(text.contains("certificate verify failed"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_read_committed_sees_committed_transactions_only() {
    let config = isolated_config("it_kafka");
    let outcomes = schema::apply(&config, &[Service::Kafka])
        .await
        .expect("topics created");
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| o.service == Service::Kafka && o.action == Action::Created)
            .count(),
        3,
        "the three topics: {outcomes:?}"
    );
    let topic = config.kafka.topics.raw.name.clone();
    let kafka = config.kafka.clone();

    // librdkafka's transaction calls block: the whole producer side runs off the workers.
    let producer_topic = topic.clone();
    let producer_kafka = kafka.clone();
    tokio::task::spawn_blocking(move || {
        let producer: ThreadedProducer<DefaultProducerContext> = producer_kafka
            .client_config("test-producer")
            .expect("client config")
            .set("transactional.id", format!("{producer_topic}-txn"))
            .create()
            .expect("producer");
        let timeout = Duration::from_secs(30);
        producer
            .init_transactions(timeout)
            .expect("init_transactions");
        for (batch, commit) in [(0..10, true), (10..15, false)] {
            producer.begin_transaction().expect("begin");
            for i in batch {
                let key = format!("user-{i}");
                let payload = format!("{{\"n\":{i}}}");
                producer
                    .send(BaseRecord::to(&producer_topic).key(&key).payload(&payload))
                    .map_err(|(e, _)| e)
                    .expect("send");
            }
            if commit {
                producer.commit_transaction(timeout).expect("commit");
            } else {
                producer.abort_transaction(timeout).expect("abort");
            }
        }
    })
    .await
    .expect("producer task");

    let received = tributary::verify::read_committed_keys(&kafka, &topic)
        .await
        .expect("read back with read_committed");
    let mut received: Vec<String> = received
        .into_iter()
        .flat_map(|(key, count)| std::iter::repeat_n(key, count))
        .collect();
    let mut expected: Vec<String> = (0..10).map(|i| format!("user-{i}")).collect();
    expected.sort();
    received.sort();
    assert_eq!(
        received, expected,
        "read_committed must see the committed batch exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cassandra_insert_select_and_fenced_commit() {
    let config = isolated_config("it_cass");
    let outcomes = schema::apply(&config, &[Service::Cassandra])
        .await
        .expect("schema apply");
    assert!(
        outcomes.iter().all(|o| o.action == Action::Created),
        "{outcomes:?}"
    );
    let ks = &config.cassandra.keyspace;
    let session = cassandra::connect(&config.cassandra)
        .await
        .expect("session");

    let id = uuid::Uuid::new_v4();
    session
        .query_unpaged(
            format!("INSERT INTO {ks}.created_users (id, first_name, country, source_offset) VALUES (?, ?, ?, ?)"),
            (id, "Ada", "France", 42_i64),
        )
        .await
        .expect("insert");
    let (first_name, country, offset) = session
        .query_unpaged(
            format!(
                "SELECT first_name, country, source_offset FROM {ks}.created_users WHERE id = ?"
            ),
            (id,),
        )
        .await
        .expect("select")
        .into_rows_result()
        .expect("rows")
        .single_row::<(String, String, i64)>()
        .expect("one row");
    assert_eq!(
        (first_name.as_str(), country.as_str(), offset),
        ("Ada", "France", 42)
    );

    // partition_state is written only with LWTs: claim epoch 1, then a commit from a
    // stale epoch (a fenced zombie) must be refused.
    let claim = format!(
        "INSERT INTO {ks}.partition_state (topic, partition, bucket, owner_epoch, committed_offset) \
         VALUES ('t', 0, 'gender:female', 1, -1) IF NOT EXISTS"
    );
    let applied = session.query_unpaged(claim, ()).await.expect("claim");
    assert!(lwt_applied(applied), "first claim applies");
    let stale = format!(
        "UPDATE {ks}.partition_state SET committed_offset = 10 WHERE topic = 't' AND partition = 0 IF owner_epoch = 0"
    );
    let applied = session
        .query_unpaged(stale, ())
        .await
        .expect("stale commit");
    assert!(
        !lwt_applied(applied),
        "a commit from a stale epoch must be refused"
    );

    session
        .query_unpaged(format!("DROP KEYSPACE {ks}"), ())
        .await
        .expect("drop test keyspace");
}

/// `cassandra.sslmode = "verify-full"`: the session's connections are TLS (as the node
/// sees them) to a node whose certificate chains to `sslrootcert` and names its address;
/// trusting another CA refuses the node, naming Cassandra and the certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cassandra_verify_full_encrypts_and_refuses_a_node_of_another_ca() {
    let mut config = isolated_config("it_cass_tls");
    config.cassandra.sslmode = tls::SslMode::VerifyFull;
    config.cassandra.sslrootcert = Some(stack_tls_file("ca.pem"));

    let session = cassandra::connect(&config.cassandra)
        .await
        .expect("a TLS session to the stack's Cassandra");
    // The node's own view of its clients. This is the only test that opens a TLS
    // session, so an encrypted tributary connection can only be this session's.
    let clients = session
        .query_unpaged(
            "SELECT ssl_enabled, client_options FROM system_views.clients",
            (),
        )
        .await
        .expect("system_views.clients")
        .into_rows_result()
        .expect("rows");
    let encrypted_tributary = clients
        .rows::<(
            Option<bool>,
            Option<std::collections::HashMap<String, String>>,
        )>()
        .expect("typed rows")
        .map(|row| row.expect("row"))
        .filter(|(ssl, options)| {
            *ssl == Some(true)
                && options
                    .as_ref()
                    .and_then(|o| o.get("APPLICATION_NAME"))
                    .map(String::as_str)
                    == Some(cassandra::APPLICATION_NAME)
        })
        .count();
    assert!(encrypted_tributary > 0, "no encrypted tributary connection");
    drop(session);

    config.cassandra.sslrootcert = Some(stack_tls_file("other-ca.pem"));
    let error = cassandra::connect(&config.cassandra)
        .await
        .expect_err("a node whose certificate another CA signed");
    let text = tributary_actors::error_chain(&error);
    assert!(text.starts_with("cassandra"), "{text}");
    assert!(
        text.contains("certificate") && text.contains("UnknownIssuer"),
        "{text}"
    );
}
