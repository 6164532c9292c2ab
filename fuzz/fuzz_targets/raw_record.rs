//! A users.raw record as the transformer reads it: its `tributary-schema` header, key
//! and payload (the API's JSON, or Avro in the Confluent wire format under a schema id
//! the registry knows) into a row or a poison reason for the DLQ.
//!
//! Input: byte 0 picks the schema header (JSON, Avro, another value, none), the next 36
//! bytes are the record's key, the rest its payload. Beyond "no panic": a row is only
//! made for a record whose key is the user's id, and a poison record always says why.
#![no_main]

use apache_avro::Schema;
use libfuzzer_sys::fuzz_target;
use rdkafka::Timestamp;
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use std::sync::{Arc, OnceLock};
use tributary_actors::format::{AVRO, JSON_V1, Readers, SCHEMA_HEADER, WriterSchemas, avro};
use tributary_actors::process::transformer::transform;

/// What the registry knows, as the transformer would have fetched it: id 1 is
/// users.raw's schema; id 2 a record of another shape, id 3 not a record at all, so
/// datums under a schema that does not fit are read too. Any other id is unknown.
fn schemas() -> &'static WriterSchemas {
    static SCHEMAS: OnceLock<WriterSchemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let other = r#"{"type": "record", "name": "User", "fields": [
            {"name": "email", "type": "string"},
            {"name": "login", "type": ["null", "string"], "default": null}]}"#;
        WriterSchemas::known([
            (1, Arc::new(avro::user_schema().clone())),
            (
                2,
                Arc::new(Schema::parse_str(other).expect("a valid schema")),
            ),
            (
                3,
                Arc::new(Schema::parse_str(r#""string""#).expect("a valid schema")),
            ),
        ])
    })
}

fn readers() -> &'static Readers<'static> {
    static READERS: OnceLock<Readers<'static>> = OnceLock::new();
    READERS.get_or_init(|| schemas().readers())
}

const KEY_LEN: usize = 36;

fuzz_target!(|input: &[u8]| {
    let Some((&selector, rest)) = input.split_first() else {
        return;
    };
    let (key, payload) = rest.split_at(rest.len().min(KEY_LEN));
    let encoding = match selector % 4 {
        0 => Some(JSON_V1),
        1 => Some(AVRO),
        2 => Some("2"),
        _ => None,
    };
    let headers = encoding.map(|value| {
        OwnedHeaders::new().insert(Header {
            key: SCHEMA_HEADER,
            value: Some(value),
        })
    });
    let message = OwnedMessage::new(
        Some(payload.to_vec()),
        Some(key.to_vec()),
        "users.raw".into(),
        Timestamp::CreateTime(1_700_000_000_000),
        0,
        42,
        headers,
    );
    match transform(&message, readers()) {
        Ok(row) => {
            let key = std::str::from_utf8(key)
                .ok()
                .and_then(|k| uuid::Uuid::parse_str(k).ok());
            assert_eq!(key, Some(row.id), "a row whose id is not its record's key");
        }
        Err(poison) => assert!(!poison.error.is_empty(), "a poison record without a reason"),
    }
});
