//! Authorisation: tributary's role reaches its own objects in each store, nothing else.

use super::*;

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
