//! The transformer of one partition: Kafka records → [`CreatedUser`] rows. A record that
//! fails validation (not a user in its format, an unknown format or writer schema,
//! missing fields, a key that is not its user id) goes to the DLQ with the error in its
//! headers, and is counted; nothing is dropped silently. A registry that cannot answer
//! fails the batch instead: an outage is retried, never dead-lettered.
//!
//! The DLQ write is confirmed before the batch moves on, so the writer never commits an
//! offset past a poison record that is not in the DLQ. A replay after a crash can write
//! a poison record to the DLQ twice: each DLQ record carries its source topic, partition
//! and offset in headers for consumers that need to deduplicate.

use super::messages::{DlqProducer, TransformerMsg, WriteBatch, WriterMsg};
use crate::format::{AVRO, JSON_V1, Readers, SCHEMA_HEADER, WriterSchemas, avro, headers};
use crate::model::{CreatedUser, Provenance, RawUser};
use crate::observe::{self, Stage};
use crate::store::closing::Shared;
use crate::store::registry::Registry;
use crate::supervisor::shell::{self, Shelled};
use futures::future::try_join_all;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use rdkafka::Message;
use rdkafka::message::OwnedMessage;
use rdkafka::producer::FutureRecord;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Transformer;

pub struct TransformerArgs {
    pub writer: crate::directory::Directory<WriterMsg>,
    pub dlq: Shared<DlqProducer>,
    pub dlq_topic: String,
    pub directory: crate::directory::Directory<TransformerMsg>,
    /// Where Avro records' writer schemas come from (`None`: no registry configured).
    pub registry: Option<Arc<Registry>>,
}

pub struct TransformerState {
    writer: ActorRef<WriterMsg>,
    dlq: Shared<DlqProducer>,
    dlq_topic: String,
    registry: Option<Arc<Registry>>,
}

/// A record that cannot become a row, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poison {
    pub error: String,
}

/// The record's encoding, from its [`SCHEMA_HEADER`].
fn encoding(message: &OwnedMessage) -> Option<&[u8]> {
    headers::header_bytes(message, SCHEMA_HEADER)
}

/// The writer schema ids a batch's Avro records name (unreadable ones are left to
/// [`transform`] to call poison).
fn schema_ids(records: &[OwnedMessage]) -> impl Iterator<Item = u32> + '_ {
    records
        .iter()
        .filter(|r| encoding(r) == Some(AVRO.as_bytes()))
        .filter_map(|r| avro::unframe(r.payload()?).ok().map(|(id, _)| id))
}

/// Validates one record into a row; `schemas` holds the writer schemas of the batch's
/// Avro records.
///
/// # Errors
/// The reason the record is poison, for its DLQ headers.
pub fn transform(message: &OwnedMessage, schemas: &Readers<'_>) -> Result<CreatedUser, Poison> {
    let poison = |error: String| Poison { error };
    let payload = message.payload();
    let mut value = apache_avro::types::Value::Null;
    let raw = match encoding(message) {
        Some(v) if v == JSON_V1.as_bytes() => {
            let payload = payload.ok_or_else(|| poison("empty payload".into()))?;
            let text = std::str::from_utf8(payload)
                .map_err(|e| poison(format!("payload is not UTF-8: {e}")))?;
            RawUser::parse(text).map_err(poison)?
        }
        Some(v) if v == AVRO.as_bytes() => {
            let payload = payload.ok_or_else(|| poison("empty payload".into()))?;
            let (id, datum) = avro::unframe(payload).map_err(poison)?;
            let reader = schemas.get(id).map_err(poison)?;
            avro::decode(reader, datum, &mut value)
                .map_err(|e| poison(format!("schema id {id}: {e}")))?
        }
        Some(other) => {
            return Err(poison(format!(
                "unknown schema version {:?}",
                String::from_utf8_lossy(other)
            )));
        }
        None => return Err(poison(format!("no {SCHEMA_HEADER} header"))),
    };
    if message.key() != Some(raw.login.uuid.as_bytes()) {
        return Err(poison(format!(
            "key {:?} is not the record's login.uuid {:?}",
            message.key().map(String::from_utf8_lossy),
            raw.login.uuid
        )));
    }
    let provenance = Provenance {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        timestamp_ms: message.timestamp().to_millis().unwrap_or(0),
        staged_at_ms: headers::staged_at_ms(message),
        run_id: headers::run_id(message),
    };
    CreatedUser::from_raw(&raw, provenance).map_err(poison)
}

impl Actor for Transformer {
    type Msg = TransformerMsg;
    type State = TransformerState;
    type Arguments = TransformerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<TransformerMsg>,
        args: TransformerArgs,
    ) -> Result<TransformerState, ActorProcessingErr> {
        let writer = args.writer.get().ok_or("the writer is not running")?;
        args.directory.register(myself);
        Ok(TransformerState {
            writer,
            dlq: args.dlq,
            dlq_topic: args.dlq_topic,
            registry: args.registry,
        })
    }

    shell::handle!();
}

impl Shelled for Transformer {
    const KIND: &'static str = "transformer";

    fn partition(&self, message: &TransformerMsg, _: &TransformerState) -> Option<i32> {
        let TransformerMsg::Transform { records, .. } = message;
        records.first().map(Message::partition)
    }

    async fn on_message(
        &self,
        _: ActorRef<TransformerMsg>,
        message: TransformerMsg,
        state: &mut TransformerState,
    ) -> Result<(), ActorProcessingErr> {
        let TransformerMsg::Transform {
            records,
            traces,
            lease,
        } = message;
        let Some(last_offset) = records.iter().map(|r| r.offset()).max() else {
            return Ok(());
        };
        let spans: Vec<tracing::Span> = traces
            .iter()
            .map(|parent| {
                let span = tracing::info_span!(
                    parent: None,
                    "transform",
                    tributary.stage = "transform",
                    messaging.destination.partition.id = records[0].partition(),
                    tributary.records = records.len(),
                    tributary.poison = tracing::field::Empty,
                );
                crate::trace::set_parent(&span, parent);
                span
            })
            .collect();
        let schemas = WriterSchemas::fetch(state.registry.as_deref(), schema_ids(&records)).await?;
        let readers = schemas.readers();
        let mut users = Vec::with_capacity(records.len());
        let mut poisoned = Vec::new();
        for record in &records {
            match transform(record, &readers) {
                Ok(user) => users.push(user),
                Err(poison) => poisoned.push((record, poison)),
            }
        }
        if !poisoned.is_empty() {
            let sends = poisoned
                .iter()
                .map(|(record, poison)| to_dlq(state, record, poison));
            try_join_all(sends).await?;
            observe::record(Stage::DeadLettered, poisoned.len() as u64);
            tracing::warn!(
                partition = records[0].partition(),
                poisoned = poisoned.len(),
                "poison records sent to the DLQ"
            );
        }
        observe::record(Stage::Transformed, users.len() as u64);
        for span in &spans {
            span.record("tributary.poison", poisoned.len());
        }
        let traces = spans.iter().filter_map(crate::trace::context_of).collect();
        drop(spans);
        state.writer.send_message(WriterMsg::Write(WriteBatch {
            users,
            last_offset,
            traces,
            lease,
        }))?;
        Ok(())
    }
}

async fn to_dlq(
    state: &TransformerState,
    record: &OwnedMessage,
    poison: &Poison,
) -> Result<(), ActorProcessingErr> {
    let headers = headers::dlq_headers(record, &poison.error);
    let mut dlq_record = FutureRecord::<[u8], [u8]>::to(&state.dlq_topic).headers(headers);
    if let Some(key) = record.key() {
        dlq_record = dlq_record.key(key);
    }
    if let Some(payload) = record.payload() {
        dlq_record = dlq_record.payload(payload);
    }
    state
        .dlq
        .send(dlq_record, Duration::from_secs(30))
        .await
        .map(|_| ())
        .map_err(|(e, _)| format!("DLQ write failed: {e}").into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::raw_user::tests::SAMPLE;
    use rdkafka::Timestamp;
    use rdkafka::message::{Header, OwnedHeaders};

    fn record(key: &str, payload: &str, schema: Option<&str>) -> OwnedMessage {
        let headers = schema.map(|v| {
            OwnedHeaders::new().insert(Header {
                key: SCHEMA_HEADER,
                value: Some(v),
            })
        });
        OwnedMessage::new(
            Some(payload.as_bytes().to_vec()),
            Some(key.as_bytes().to_vec()),
            "users.raw".into(),
            Timestamp::CreateTime(1_700_000_000_000),
            2,
            17,
            headers,
        )
    }

    const ID: &str = "7a0eed16-9430-4d68-901f-c0d4c1c3bf00";

    #[test]
    fn a_valid_record_becomes_a_row_with_provenance() {
        let user = transform(
            &record(ID, SAMPLE, Some("1")),
            &WriterSchemas::default().readers(),
        )
        .unwrap();
        assert_eq!(user.id.to_string(), ID);
        assert_eq!((user.provenance.partition, user.provenance.offset), (2, 17));
    }

    fn avro_record(key: &str, payload: Vec<u8>) -> OwnedMessage {
        record(key, "", Some(AVRO)).set_payload(Some(payload))
    }

    #[test]
    fn an_avro_record_becomes_the_same_row_as_its_json() {
        let schema = avro::user_schema();
        let user = RawUser::parse(SAMPLE).unwrap();
        let framed = avro::frame(
            3,
            &avro::encode(&avro::writer(schema).unwrap(), &user).unwrap(),
        );
        let known = WriterSchemas::known([(3, Arc::new(schema.clone()))]);
        let schemas = known.readers();
        let from_avro = transform(&avro_record(ID, framed.clone()), &schemas).unwrap();
        let from_json = transform(&record(ID, SAMPLE, Some("1")), &schemas).unwrap();
        assert_eq!(from_avro, from_json);
        // A schema id the batch could not fetch, and bytes that are not framed, are poison.
        let unknown = transform(
            &avro_record(ID, framed),
            &WriterSchemas::default().readers(),
        )
        .unwrap_err();
        assert!(unknown.error.contains("schema id 3"), "{}", unknown.error);
        let json_as_avro = transform(&avro_record(ID, SAMPLE.into()), &schemas).unwrap_err();
        assert!(
            json_as_avro.error.contains("Confluent wire format"),
            "{}",
            json_as_avro.error
        );
    }

    #[test]
    fn poison_records_say_why() {
        let cases = [
            (record(ID, "not json", Some("1")), "expected"),
            (record(ID, SAMPLE, Some("9")), "unknown schema version"),
            (record(ID, SAMPLE, None), "no tributary-schema header"),
            (
                record(
                    ID,
                    &SAMPLE.replace(r#""email": "jennie.nichols@example.com","#, ""),
                    Some("1"),
                ),
                "email",
            ),
            (
                record("another-key", SAMPLE, Some("1")),
                "is not the record's login.uuid",
            ),
        ];
        for (message, expected) in cases {
            let poison = transform(&message, &WriterSchemas::default().readers()).unwrap_err();
            assert!(
                poison.error.contains(expected),
                "{} should mention {expected}",
                poison.error
            );
        }
    }
}
