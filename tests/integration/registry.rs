//! `users.raw` in Avro against the stack's real schema registry (Apicurio Registry,
//! Confluent-compatible API): what `schema apply` registers, what the producer writes,
//! schema evolution, and a schema the subject's rule refuses.

use crate::common::{Tributary, embedded_source, eventually, isolated_config, isolated_env};
use crate::ingest::{prepare, workload};
use crate::process::rows_in_cassandra;
use apache_avro::Schema;
use apache_avro::types::Value;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::time::Duration;
use tributary::config::Config;
use tributary::schema::{self, Action};
use tributary::source::Faults;
use tributary_actors::format::{AVRO, SCHEMA_HEADER, avro, subject};
use tributary_actors::model::RawUser;
use tributary_actors::model::raw_user::parse_page;
use tributary_actors::store::registry::Registry;
use tributary_actors::store::{Service, cassandra};

fn registry(config: &Config) -> Registry {
    Registry::new(&config.kafka.registry)
        .expect("registry client")
        .expect("kafka.registry.url is set")
}

/// A schema id no registry of ours gives out (they count from 1).
const UNKNOWN_ID: u32 = 999_999_937;

/// tributary's schema with one optional field more: what a newer producer registers.
fn with_note() -> String {
    let newer = avro::USER_SCHEMA.replacen(
        r#"{"name": "nat", "type": "string"}"#,
        r#"{"name": "nat", "type": "string"},
    {"name": "note", "type": ["null", "string"], "default": null}"#,
        1,
    );
    assert_ne!(
        newer,
        avro::USER_SCHEMA,
        "the nat field is where the schema ends"
    );
    newer
}

/// `count` users as the embedded source serves them, as JSON records.
async fn users(count: u32) -> Vec<String> {
    let (url, _source) = embedded_source(Faults::default());
    let body = reqwest::Client::new()
        .get(&url)
        .query(&[
            ("results", count.to_string()),
            ("seed", "registrytest".into()),
            ("page", "7".into()),
        ])
        .send()
        .await
        .expect("source answers")
        .bytes()
        .await
        .expect("body");
    let page = parse_page(&body).expect("a page");
    page.results.iter().map(|r| r.get().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compatible_new_schema_flows_through_and_older_records_still_decode() {
    let config = prepare("it_reg_a").await;
    let registry = registry(&config);
    let subject = subject(&config.kafka.topics.raw.name);
    assert_eq!(
        registry.compatibility(&subject).await.unwrap().as_deref(),
        Some("BACKWARD"),
        "schema apply set the subject's rule"
    );
    let v1 = registry
        .lookup(&subject, avro::USER_SCHEMA)
        .await
        .unwrap()
        .expect("schema apply registered tributary's schema");
    let again = schema::apply(&config, &[Service::Kafka]).await.unwrap();
    let registry_outcomes: Vec<_> = again
        .iter()
        .filter(|o| o.service == Service::Registry)
        .collect();
    assert_eq!(registry_outcomes.len(), 2, "{again:?}");
    assert!(
        registry_outcomes
            .iter()
            .all(|o| o.action == Action::Unchanged),
        "{again:?}"
    );

    // A newer producer's schema, one optional field more: the rule accepts it.
    let v2_text = with_note();
    let v2 = registry.register(&subject, &v2_text).await.unwrap();
    assert_ne!(v1, v2, "a new version gets its own id");
    let v2_schema = Schema::parse_str(&v2_text).unwrap();

    // Two users written as that newer producer would (v2, the note set), one as an older
    // one (v1): all three are read by tributary beside its own records. A fourth names a
    // schema id the registry never gave out: poison, to the DLQ with its bytes.
    let users = users(4).await;
    let v1_schema = avro::user_schema();
    let mut framed = Vec::new();
    for (i, json) in users.iter().enumerate() {
        let user = RawUser::parse(json).unwrap();
        let datum = if i < 2 {
            let Value::Record(mut fields) = avro::to_value(&user).unwrap() else {
                unreachable!("a user is a record")
            };
            fields.push((
                "note".into(),
                Value::Union(1, Box::new(Value::String("v2".into()))),
            ));
            avro::writer(&v2_schema)
                .unwrap()
                .write_value_to_vec(Value::Record(fields))
                .unwrap()
        } else {
            avro::encode(&avro::writer(v1_schema).unwrap(), &user).unwrap()
        };
        let id = match i {
            0 | 1 => v2,
            2 => v1,
            _ => UNKNOWN_ID,
        };
        framed.push((user.login.uuid.to_string(), avro::frame(id, &datum)));
    }
    let poison = framed.pop().expect("four users");
    let (kafka, topic) = (config.kafka.clone(), config.kafka.topics.raw.name.clone());
    let to_send: Vec<_> = framed.iter().chain([&poison]).cloned().collect();
    tokio::task::spawn_blocking(move || {
        let producer: ThreadedProducer<DefaultProducerContext> = kafka
            .client_config("newer-producer")
            .unwrap()
            .create()
            .unwrap();
        for (key, payload) in &to_send {
            let headers = OwnedHeaders::new().insert(Header {
                key: SCHEMA_HEADER,
                value: Some(AVRO),
            });
            producer
                .send(
                    BaseRecord::to(&topic)
                        .key(key)
                        .payload(payload)
                        .headers(headers),
                )
                .map_err(|(e, _)| e)
                .expect("send");
        }
        producer.flush(Duration::from_secs(10)).expect("flush");
    })
    .await
    .unwrap();

    let (source, _source) = embedded_source(Faults::default());
    let _tributary = Tributary::run("registry_a", &workload(&config, &source, 2, 250, &[]));
    let expected = 500 + framed.len() as i64;
    eventually(Duration::from_secs(180), || async {
        let rows = rows_in_cassandra(&config).await;
        if rows == expected { Ok(()) } else { Err(rows) }
    })
    .await
    .unwrap_or_else(|rows| panic!("{rows} rows in Cassandra, expected {expected}"));
    let session = cassandra::connect(&config.cassandra).await.unwrap();
    for (key, _) in &framed {
        let found = session
            .query_unpaged(
                format!(
                    "SELECT id FROM {}.created_users WHERE id = {key}",
                    config.cassandra.keyspace
                ),
                (),
            )
            .await
            .unwrap()
            .into_rows_result()
            .unwrap()
            .rows_num();
        assert_eq!(found, 1, "user {key} (written with schema id {v1} or {v2})");
    }

    // tributary's own records are in the Confluent wire format with its schema's id.
    let (kafka, topic) = (config.kafka.clone(), config.kafka.topics.raw.name.clone());
    let partitions = config.kafka.topics.raw.partitions;
    let ours = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = kafka
            .client_config("wire-reader")
            .unwrap()
            .set("group.id", format!("{topic}-wire-reader"))
            .set("isolation.level", "read_committed")
            .create()
            .unwrap();
        let mut list = TopicPartitionList::new();
        for partition in 0..partitions {
            list.add_partition_offset(&topic, partition, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&list).unwrap();
        let mut ours = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while ours.len() < 20 && std::time::Instant::now() < deadline {
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
                let outbox = message
                    .headers()
                    .is_some_and(|h| h.iter().any(|h| h.key == "tributary-outbox-id"));
                if outbox {
                    ours.push(message.payload().unwrap_or_default().to_vec());
                }
            }
        }
        ours
    })
    .await
    .unwrap();
    assert_eq!(ours.len(), 20, "tributary's records are readable");
    let reader = avro::reader(v1_schema).unwrap();
    for payload in ours {
        let (id, datum) = avro::unframe(&payload).expect("Confluent wire format");
        assert_eq!(id, v1, "tributary writes with its registered schema");
        let mut value = Value::Null;
        avro::decode(&reader, datum, &mut value).expect("a user");
    }

    // The record naming an unknown schema id is in the DLQ, byte for byte, with why.
    let (kafka, dlq) = (config.kafka.clone(), config.kafka.topics.dlq.name.clone());
    let (key, bytes) = poison;
    let dead = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = kafka
            .client_config("dlq-reader")
            .unwrap()
            .set("group.id", format!("{dlq}-reader"))
            .create()
            .unwrap();
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(&dlq, 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&list).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200))
                && message.key() == Some(key.as_bytes())
            {
                let error = message
                    .headers()
                    .and_then(|h| {
                        h.iter()
                            .find(|h| h.key == tributary_actors::format::headers::ERROR_HEADER)
                    })
                    .and_then(|h| h.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned());
                return Some((message.payload().map(<[u8]>::to_vec), error));
            }
        }
        None
    })
    .await
    .unwrap();
    let (payload, error) = dead.expect("the unknown schema's record is in the DLQ");
    assert_eq!(
        payload.as_deref(),
        Some(bytes.as_slice()),
        "its bytes unchanged"
    );
    let error = error.unwrap_or_default();
    assert!(error.contains(&UNKNOWN_ID.to_string()), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_apply_refuses_a_schema_the_subject_cannot_take_with_exit_2() {
    tributary_actors::install_tls_provider();
    let config = isolated_config("it_reg_b");
    let registry = registry(&config);
    let subject = subject(&config.kafka.topics.raw.name);
    // The subject already holds records without an email: tributary's schema, which
    // requires one (no default), cannot read them.
    let without_email =
        avro::USER_SCHEMA.replacen(r#"{"name": "email", "type": "string"},"#, "", 1);
    assert_ne!(without_email, avro::USER_SCHEMA);
    registry
        .set_compatibility(&subject, "BACKWARD")
        .await
        .unwrap();
    registry.register(&subject, &without_email).await.unwrap();

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["schema", "apply", "--only", "kafka"])
        .envs(isolated_env(&config))
        .output()
        .expect("tributary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("refuses the schema for subject {subject}")),
        "{stderr}"
    );
    assert!(
        registry
            .lookup(&subject, avro::USER_SCHEMA)
            .await
            .unwrap()
            .is_none(),
        "nothing was registered"
    );
    // `tributary run` refuses to start before the schema is registered: exit 2, and
    // without any schema applied at all, the same with the hint to apply it.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["run"])
        .envs(isolated_env(&config))
        .output()
        .expect("tributary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("run `tributary schema apply` first"),
        "{stderr}"
    );
    schema::apply(&config, &[Service::Postgres, Service::Cassandra])
        .await
        .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["run"])
        .envs(isolated_env(&config))
        .output()
        .expect("tributary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("is not registered under subject {subject}")),
        "{stderr}"
    );
    tributary::schema::isolated::drop(&config).await.unwrap();
}
