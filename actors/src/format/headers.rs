//! The headers of tributary's Kafka records, written and read in one place: those the
//! producer puts on a `users.raw` record, those the transformer adds when it moves a
//! record to the DLQ, and the readers every consumer (transformer, reconciler, verify)
//! uses.

use rdkafka::Message;
use rdkafka::message::{Header, Headers as _, OwnedHeaders};

/// Header naming the payload's encoding ([`JSON_V1`] or [`AVRO`]).
pub const SCHEMA_HEADER: &str = "tributary-schema";
/// [`SCHEMA_HEADER`] of a record whose payload is the API's JSON.
pub const JSON_V1: &str = "1";
/// [`SCHEMA_HEADER`] of a record whose payload is Avro in the Confluent wire format.
pub const AVRO: &str = "avro";
/// Header with the record's outbox id (its position in PostgreSQL's outbox).
pub const OUTBOX_ID_HEADER: &str = "tributary-outbox-id";
/// Header with the record's staging time (ms since the Unix epoch), for the end-to-end
/// latency histogram.
pub const STAGED_AT_HEADER: &str = "tributary-staged-at";
/// Header with the record's run (the schedule slot it was fetched in): where
/// verification and the reconciler find a run's records.
pub const RUN_ID_HEADER: &str = "tributary-run-id";

/// DLQ header: why the record could not become a row.
pub const ERROR_HEADER: &str = "tributary-error";
/// DLQ headers: where the record was read, for consumers that deduplicate a DLQ write a
/// replay repeated.
pub const SOURCE_TOPIC_HEADER: &str = "tributary-source-topic";
pub const SOURCE_PARTITION_HEADER: &str = "tributary-source-partition";
pub const SOURCE_OFFSET_HEADER: &str = "tributary-source-offset";

/// What the producer stamps on a `users.raw` record.
#[derive(Debug, Clone, Copy)]
pub struct RawStamp<'a> {
    /// The [`SCHEMA_HEADER`] value.
    pub encoding: &'a str,
    pub outbox_id: i64,
    pub run_id: i64,
    pub staged_at_ms: i64,
    /// The W3C trace context of the record's publish span, if traced.
    pub traceparent: Option<&'a str>,
}

impl RawStamp<'_> {
    pub fn headers(&self) -> OwnedHeaders {
        let (id, run) = (self.outbox_id.to_string(), self.run_id.to_string());
        let staged_at = self.staged_at_ms.to_string();
        let headers = OwnedHeaders::new_with_capacity(5)
            .insert(Header {
                key: SCHEMA_HEADER,
                value: Some(self.encoding),
            })
            .insert(Header {
                key: OUTBOX_ID_HEADER,
                value: Some(&id),
            })
            .insert(Header {
                key: RUN_ID_HEADER,
                value: Some(&run),
            })
            .insert(Header {
                key: STAGED_AT_HEADER,
                value: Some(&staged_at),
            });
        match self.traceparent {
            Some(traceparent) => headers.insert(Header {
                key: crate::trace::TRACEPARENT,
                value: Some(traceparent),
            }),
            None => headers,
        }
    }
}

/// A poison record's headers in the DLQ: its own, then [`ERROR_HEADER`] and where it was
/// read. Its key and payload are kept byte for byte by the caller.
pub fn dlq_headers<M: Message>(record: &M, error: &str) -> OwnedHeaders {
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
    headers
        .insert(Header {
            key: ERROR_HEADER,
            value: Some(error),
        })
        .insert(Header {
            key: SOURCE_TOPIC_HEADER,
            value: Some(record.topic()),
        })
        .insert(Header {
            key: SOURCE_PARTITION_HEADER,
            value: Some(&partition),
        })
        .insert(Header {
            key: SOURCE_OFFSET_HEADER,
            value: Some(&offset),
        })
}

/// The raw value of header `key` of a consumed record, if present.
pub fn header_bytes<'a, M: Message>(record: &'a M, key: &str) -> Option<&'a [u8]> {
    record
        .headers()
        .and_then(|h| h.iter().find(|h| h.key == key))
        .and_then(|h| h.value)
}

/// The UTF-8 value of header `key` of a consumed record, if present.
pub fn header<'a, M: Message>(record: &'a M, key: &str) -> Option<&'a str> {
    header_bytes(record, key).and_then(|v| std::str::from_utf8(v).ok())
}

/// The run a record of the raw topic (or the DLQ) was staged by: its [`RUN_ID_HEADER`].
pub fn run_id<M: Message>(record: &M) -> Option<i64> {
    header(record, RUN_ID_HEADER).and_then(|v| v.parse().ok())
}

/// When a record was staged: its [`STAGED_AT_HEADER`], ms since the Unix epoch.
pub fn staged_at_ms<M: Message>(record: &M) -> Option<i64> {
    header(record, STAGED_AT_HEADER).and_then(|v| v.parse().ok())
}

/// The user a record is about: its key, the user's `login.uuid`.
pub fn user_id<M: Message>(record: &M) -> Option<uuid::Uuid> {
    std::str::from_utf8(record.key()?).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::Timestamp;
    use rdkafka::message::OwnedMessage;

    fn consumed(headers: OwnedHeaders) -> OwnedMessage {
        OwnedMessage::new(
            Some(b"payload".to_vec()),
            Some(b"7a0eed16-9430-4d68-901f-c0d4c1c3bf00".to_vec()),
            "users.raw".into(),
            Timestamp::CreateTime(1_700_000_000_000),
            4,
            91,
            Some(headers),
        )
    }

    #[test]
    fn a_raw_stamp_reads_back() {
        let stamp = RawStamp {
            encoding: AVRO,
            outbox_id: 12,
            run_id: 345,
            staged_at_ms: 1_700_000_000_123,
            traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        };
        let record = consumed(stamp.headers());
        assert_eq!(header_bytes(&record, SCHEMA_HEADER), Some(AVRO.as_bytes()));
        assert_eq!(header(&record, OUTBOX_ID_HEADER), Some("12"));
        assert_eq!(run_id(&record), Some(345));
        assert_eq!(staged_at_ms(&record), Some(1_700_000_000_123));
        assert_eq!(
            header(&record, crate::trace::TRACEPARENT),
            stamp.traceparent
        );
        assert_eq!(
            user_id(&record).map(|u| u.to_string()).as_deref(),
            Some("7a0eed16-9430-4d68-901f-c0d4c1c3bf00")
        );
        let untraced = consumed(
            RawStamp {
                traceparent: None,
                ..stamp
            }
            .headers(),
        );
        assert_eq!(header(&untraced, crate::trace::TRACEPARENT), None);
    }

    #[test]
    fn the_names_on_the_wire_stay_put() {
        // Consumers outside tributary (DLQ readers, Spark) read these by name.
        assert_eq!(
            [
                SCHEMA_HEADER,
                OUTBOX_ID_HEADER,
                STAGED_AT_HEADER,
                RUN_ID_HEADER
            ],
            [
                "tributary-schema",
                "tributary-outbox-id",
                "tributary-staged-at",
                "tributary-run-id"
            ]
        );
        assert_eq!(
            [
                ERROR_HEADER,
                SOURCE_TOPIC_HEADER,
                SOURCE_PARTITION_HEADER,
                SOURCE_OFFSET_HEADER
            ],
            [
                "tributary-error",
                "tributary-source-topic",
                "tributary-source-partition",
                "tributary-source-offset"
            ]
        );
        assert_eq!((JSON_V1, AVRO), ("1", "avro"));
    }

    #[test]
    fn dlq_headers_keep_the_originals_and_say_where_and_why() {
        let original = consumed(OwnedHeaders::new().insert(Header {
            key: SCHEMA_HEADER,
            value: Some("9"),
        }));
        let dead = consumed(dlq_headers(&original, "unknown schema version \"9\""));
        assert_eq!(header(&dead, SCHEMA_HEADER), Some("9"));
        assert_eq!(
            header(&dead, ERROR_HEADER),
            Some("unknown schema version \"9\"")
        );
        assert_eq!(header(&dead, SOURCE_TOPIC_HEADER), Some("users.raw"));
        assert_eq!(header(&dead, SOURCE_PARTITION_HEADER), Some("4"));
        assert_eq!(header(&dead, SOURCE_OFFSET_HEADER), Some("91"));
        assert_eq!(run_id(&dead), None);
    }
}
