//! The source's response body, as the fetcher reads it: a page, checked against its
//! request, split into records, each parsed and validated as staging does.
//!
//! Beyond "no panic": a page is never taken for the answer to a request for another
//! page, and every record staging would accept must encode into users.raw's Avro schema
//! and decode back to the same user (the producer treats a failed encode as a bug, so
//! nothing staging accepts may fail it).
#![no_main]

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tributary_actors::format::avro;
use tributary_actors::model::RawUser;
use tributary_actors::model::raw_user::{PageRequest, parse_page};

fn writer() -> &'static GenericDatumWriter<'static> {
    static WRITER: OnceLock<GenericDatumWriter<'static>> = OnceLock::new();
    WRITER.get_or_init(|| avro::writer(avro::user_schema()).expect("users.raw's schema"))
}

fn reader() -> &'static GenericDatumReader<'static> {
    static READER: OnceLock<GenericDatumReader<'static>> = OnceLock::new();
    READER.get_or_init(|| avro::reader(avro::user_schema()).expect("users.raw's schema"))
}

fuzz_target!(|body: &[u8]| {
    let Ok(page) = parse_page(body) else {
        return;
    };
    let asked = |page_number: u32| PageRequest {
        seed: page.info.seed.clone(),
        page: page_number,
        results: page.info.results,
    };
    let _ = asked(page.info.page).check(&page);
    assert!(
        asked(page.info.page.wrapping_add(1)).check(&page).is_err(),
        "a page taken for the answer to a request for the next page"
    );
    for raw in &page.results {
        let Ok(user) = RawUser::parse(raw.get()) else {
            continue;
        };
        let datum = avro::encode(writer(), &user)
            .unwrap_or_else(|e| panic!("a user staging accepts does not encode: {e}"));
        let mut value = Value::Null;
        let decoded = avro::decode(reader(), &datum, &mut value)
            .unwrap_or_else(|e| panic!("a user's own datum does not decode: {e}"));
        assert_eq!(decoded, user, "Avro round trip changed the user");
    }
});
