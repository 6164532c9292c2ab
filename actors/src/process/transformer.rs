//! The transformer of one partition: Kafka records → [`CreatedUser`] rows. A record that
//! fails validation (not JSON, unknown schema version, missing fields, a key that is not
//! its user id) goes to the DLQ with the error in its headers, and is counted; nothing is
//! dropped silently.
//!
//! The DLQ write is confirmed before the batch moves on, so the writer never commits an
//! offset past a poison record that is not in the DLQ. A replay after a crash can write
//! a poison record to the DLQ twice: each DLQ record carries its source topic, partition
//! and offset in headers for consumers that need to deduplicate.

use super::partition::InFlight;
use super::writer::{WriteBatch, WriterMsg};
use crate::model::{CreatedUser, Provenance, RawUser};
use crate::observe::{self, Stage};
use crate::publish::producer::{SCHEMA_VERSION, STAGED_AT_HEADER};
use crate::store::closing::Shared;
use futures::future::try_join_all;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use rdkafka::Message;
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::FutureRecord;
use std::time::Duration;
use tracing::Instrument;

#[derive(Debug, Clone, Copy)]
pub struct Transformer;

pub struct TransformerArgs {
    pub writer: crate::directory::Directory<WriterMsg>,
    pub dlq: Shared<crate::process::coordinator::DlqProducer>,
    pub dlq_topic: String,
    pub directory: crate::directory::Directory<TransformerMsg>,
}

pub enum TransformerMsg {
    /// A batch of one partition, in offset order, with the consume spans of its traces
    /// and its place in the partition's pipeline.
    Transform(Vec<OwnedMessage>, Vec<opentelemetry::Context>, InFlight),
}

pub struct TransformerState {
    writer: ActorRef<WriterMsg>,
    dlq: Shared<crate::process::coordinator::DlqProducer>,
    dlq_topic: String,
}

/// A record that cannot become a row, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poison {
    pub error: String,
}

/// Validates one record into a row.
///
/// # Errors
/// The reason the record is poison, for its DLQ headers.
pub fn transform(message: &OwnedMessage) -> Result<CreatedUser, Poison> {
    let poison = |error: String| Poison { error };
    let version = message
        .headers()
        .and_then(|h| h.iter().find(|h| h.key == "tributary-schema"))
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned());
    match version.as_deref() {
        Some(SCHEMA_VERSION) => {}
        Some(other) => return Err(poison(format!("unknown schema version {other:?}"))),
        None => return Err(poison("no tributary-schema header".into())),
    }
    let payload = message
        .payload()
        .ok_or_else(|| poison("empty payload".into()))?;
    let text =
        std::str::from_utf8(payload).map_err(|e| poison(format!("payload is not UTF-8: {e}")))?;
    let raw = RawUser::parse(text).map_err(poison)?;
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
        staged_at_ms: crate::store::kafka::header(message, STAGED_AT_HEADER)
            .and_then(|v| v.parse().ok()),
        run_id: crate::store::kafka::run_id(message),
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
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Log lines of this message carry the actor kind (and partition).
        let TransformerMsg::Transform(records, ..) = &message;
        let partition = records.first().map(Message::partition);
        let span = tracing::info_span!("actor", actor = "transformer", partition);
        self.on_message(myself, message, state)
            .instrument(span)
            .await
    }
}

impl Transformer {
    async fn on_message(
        &self,
        _: ActorRef<TransformerMsg>,
        message: TransformerMsg,
        state: &mut TransformerState,
    ) -> Result<(), ActorProcessingErr> {
        crate::faults::maybe_panic("transformer");
        let TransformerMsg::Transform(records, traces, in_flight) = message;
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
        let mut users = Vec::with_capacity(records.len());
        let mut poisoned = Vec::new();
        for record in &records {
            match transform(record) {
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
            records: records.len(),
            traces,
            in_flight,
        }))?;
        Ok(())
    }
}

async fn to_dlq(
    state: &TransformerState,
    record: &OwnedMessage,
    poison: &Poison,
) -> Result<(), ActorProcessingErr> {
    let (partition, offset) = (record.partition().to_string(), record.offset().to_string());
    let mut headers = OwnedHeaders::new();
    if let Some(original) = record.headers() {
        for h in original.iter() {
            headers = headers.insert(Header {
                key: h.key,
                value: h.value,
            });
        }
    }
    let headers = headers
        .insert(Header {
            key: "tributary-error",
            value: Some(poison.error.as_str()),
        })
        .insert(Header {
            key: "tributary-source-topic",
            value: Some(record.topic()),
        })
        .insert(Header {
            key: "tributary-source-partition",
            value: Some(&partition),
        })
        .insert(Header {
            key: "tributary-source-offset",
            value: Some(&offset),
        });
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

    fn record(key: &str, payload: &str, schema: Option<&str>) -> OwnedMessage {
        let headers = schema.map(|v| {
            OwnedHeaders::new().insert(Header {
                key: "tributary-schema",
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
        let user = transform(&record(ID, SAMPLE, Some("1"))).unwrap();
        assert_eq!(user.id.to_string(), ID);
        assert_eq!((user.provenance.partition, user.provenance.offset), (2, 17));
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
            let poison = transform(&message).unwrap_err();
            assert!(
                poison.error.contains(expected),
                "{} should mention {expected}",
                poison.error
            );
        }
    }
}
