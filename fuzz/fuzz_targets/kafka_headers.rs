//! Kafka headers as tributary's consumers read them (the run, the staging time, the
//! user from the key, any header by name) and as the transformer copies them into a
//! DLQ record.
//!
//! Input: the record's key (up to the first 0xFF byte), then headers, each a key (up to
//! a 0x00 byte) and a value (up to the next 0x00 byte; a value starting 0x01 is null).
//! Beyond "no panic": a DLQ record keeps every original header, in order and unchanged,
//! before the four it adds, and the readers agree with the first header of their name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rdkafka::Timestamp;
use rdkafka::message::{Header, Headers as _, OwnedHeaders, OwnedMessage};
use tributary_actors::format::headers::{
    ERROR_HEADER, SOURCE_OFFSET_HEADER, SOURCE_PARTITION_HEADER, SOURCE_TOPIC_HEADER, dlq_headers,
    header, header_bytes, run_id, staged_at_ms, user_id,
};
use tributary_actors::format::{RUN_ID_HEADER, STAGED_AT_HEADER};

/// (key, value) pairs of the input after the record's key.
fn parse_headers(mut rest: &[u8]) -> Vec<(String, Option<Vec<u8>>)> {
    let mut next = || {
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        let field = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or_default();
        field
    };
    let mut headers = Vec::new();
    loop {
        let key = next();
        let value = next();
        if key.is_empty() && value.is_empty() {
            return headers;
        }
        let value = (value.first() != Some(&1)).then(|| value.to_vec());
        headers.push((String::from_utf8_lossy(key).into_owned(), value));
    }
}

fuzz_target!(|input: &[u8]| {
    let split = input.iter().position(|&b| b == 0xFF).unwrap_or(input.len());
    let key = &input[..split];
    let originals = parse_headers(input.get(split + 1..).unwrap_or_default());
    let mut owned = OwnedHeaders::new_with_capacity(originals.len());
    for (name, value) in &originals {
        owned = owned.insert(Header {
            key: name.as_str(),
            value: value.as_deref(),
        });
    }
    let record = OwnedMessage::new(
        None,
        Some(key.to_vec()),
        "users.raw".into(),
        Timestamp::NotAvailable,
        3,
        1234,
        Some(owned),
    );

    let first = |name: &str| {
        originals
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
    };
    for (name, _) in &originals {
        assert_eq!(header_bytes(&record, name), first(name));
    }
    let number = |name| first(name).and_then(|v| std::str::from_utf8(v).ok()?.parse().ok());
    assert_eq!(run_id(&record), number(RUN_ID_HEADER));
    assert_eq!(staged_at_ms(&record), number(STAGED_AT_HEADER));
    assert_eq!(
        header(&record, RUN_ID_HEADER),
        first(RUN_ID_HEADER).and_then(|v| std::str::from_utf8(v).ok())
    );
    let _ = user_id(&record);

    let dlq = dlq_headers(&record, "poison: fuzzed");
    let copied: Vec<(String, Option<Vec<u8>>)> = dlq
        .iter()
        .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
        .collect();
    assert_eq!(copied.len(), originals.len() + 4);
    assert_eq!(copied[..originals.len()], originals[..]);
    let added: Vec<(&str, Option<&[u8]>)> = copied[originals.len()..]
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_deref()))
        .collect();
    assert_eq!(
        added,
        [
            (ERROR_HEADER, Some(&b"poison: fuzzed"[..])),
            (SOURCE_TOPIC_HEADER, Some(&b"users.raw"[..])),
            (SOURCE_PARTITION_HEADER, Some(&b"3"[..])),
            (SOURCE_OFFSET_HEADER, Some(&b"1234"[..])),
        ]
    );
});
