//! The format of `users.raw` records: their headers, and their payload in one of two
//! encodings the `tributary-schema` header names.
//!
//! - `avro` (the default): the user in Avro ([`avro::USER_SCHEMA`]) in the Confluent wire
//!   format, its schema registered in a Confluent-compatible registry under the topic's
//!   subject (`<topic>-value`) — what Spark's `from_avro`, Kafka Connect and ksqlDB read.
//! - `1`: the API's JSON as fetched (`kafka.record_format = "json"`, for users without a
//!   registry).
//!
//! The producer writes the configured encoding; the transformer reads both, so a topic
//! that switched keeps its older records readable.

pub mod avro;
pub mod headers;

pub use crate::store::kafka::RecordFormat;
pub use headers::{
    AVRO, JSON_V1, OUTBOX_ID_HEADER, RUN_ID_HEADER, SCHEMA_HEADER, STAGED_AT_HEADER,
};

use crate::model::RawUser;
use crate::store::StoreError;
use crate::store::registry::{Registry, RegistryError};
use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use std::collections::HashMap;
use std::sync::Arc;

/// The registry subject of a topic's record values (Confluent's TopicNameStrategy).
pub fn subject(topic: &str) -> String {
    format!("{topic}-value")
}

/// The producer's side: what it writes for one outbox row.
pub enum Encoder {
    Json,
    Avro {
        /// Our schema's id in the registry, framed into every record.
        id: u32,
        writer: GenericDatumWriter<'static>,
    },
}

impl Encoder {
    /// The encoder of `format`; for Avro, the id our schema has under `topic`'s subject.
    ///
    /// # Errors
    /// No registry is configured, it cannot be reached, or our schema is not registered
    /// under the subject (`tributary schema apply` registers it).
    pub async fn new(
        format: RecordFormat,
        registry: Option<&Registry>,
        topic: &str,
    ) -> Result<Encoder, String> {
        if format == RecordFormat::Json {
            return Ok(Encoder::Json);
        }
        let registry = registry.ok_or(
            "kafka.record_format = \"avro\" needs a schema registry: set kafka.registry.url",
        )?;
        let subject = subject(topic);
        match registry.lookup(&subject, avro::USER_SCHEMA).await {
            Ok(Some(id)) => Ok(Encoder::Avro {
                id,
                writer: avro::writer(avro::user_schema())?,
            }),
            Ok(None) => Err(format!(
                "tributary's Avro schema is not registered under subject {subject} at {}: \
                 run `tributary schema apply`",
                registry.url()
            )),
            Err(e) => Err(crate::error_chain(&e)),
        }
    }

    /// The [`SCHEMA_HEADER`] value and the payload for a staged record's JSON.
    ///
    /// # Errors
    /// The record does not fit the Avro schema. Staging validated it as a [`RawUser`],
    /// which refuses everything the schema cannot hold, so this is a bug: the batch is
    /// not published (nothing is dropped, nothing goes out in another format) and the
    /// producer's failure says why.
    pub fn encode<'p>(
        &self,
        json: &'p str,
    ) -> Result<(&'static str, std::borrow::Cow<'p, [u8]>), String> {
        let Encoder::Avro { id, writer } = self else {
            return Ok((JSON_V1, json.as_bytes().into()));
        };
        let user =
            RawUser::parse(json).map_err(|e| format!("a staged record is not a user: {e}"))?;
        let datum = avro::encode(writer, &user)?;
        Ok((AVRO, avro::frame(*id, &datum).into()))
    }
}

/// The transformer's side: the writer schemas a batch's Avro records name, fetched
/// before the batch is decoded. An id the registry does not know makes its records
/// poison; a registry that cannot answer fails the batch (it is retried, never
/// dead-lettered for an outage).
#[derive(Default)]
pub struct WriterSchemas {
    by_id: HashMap<u32, Result<Arc<Schema>, String>>,
}

impl WriterSchemas {
    /// The schemas of `ids`, from `registry`'s cache or the registry.
    ///
    /// # Errors
    /// The registry cannot be reached or fails, or none is configured while the batch
    /// holds Avro records: the batch must wait for an operator, not go to the DLQ.
    pub async fn fetch(
        registry: Option<&Registry>,
        ids: impl IntoIterator<Item = u32>,
    ) -> Result<WriterSchemas, StoreError> {
        let mut by_id = HashMap::new();
        for id in ids {
            if by_id.contains_key(&id) {
                continue;
            }
            let Some(registry) = registry else {
                return Err(StoreError::Refused {
                    service: crate::store::Service::Registry,
                    what: format!(
                        "users.raw holds Avro records (schema id {id}) and no registry is \
                         configured to read them: set kafka.registry.url"
                    ),
                });
            };
            let schema = match registry.schema(id).await {
                Ok(schema) => Ok(schema),
                // The registry's own answer that it has no such schema: the record names
                // a schema nobody registered, and no retry will change that.
                Err(RegistryError::NotFound(why)) => Err(why),
                Err(RegistryError::Store(e)) => return Err(e),
                Err(e @ RegistryError::Incompatible { .. }) => Err(e.to_string()),
            };
            by_id.insert(id, schema);
        }
        Ok(WriterSchemas { by_id })
    }

    /// `schemas` known already, by id (tests, and readers that bring their own).
    pub fn known(schemas: impl IntoIterator<Item = (u32, Arc<Schema>)>) -> WriterSchemas {
        WriterSchemas {
            by_id: schemas.into_iter().map(|(id, s)| (id, Ok(s))).collect(),
        }
    }

    /// A reader per schema, for one batch (a reader resolves its schema's named types
    /// once, not per record).
    pub fn readers(&self) -> Readers<'_> {
        Readers {
            by_id: self
                .by_id
                .iter()
                .map(|(id, schema)| {
                    let reader = match schema {
                        Ok(schema) => avro::reader(schema),
                        Err(why) => Err(why.clone()),
                    };
                    (*id, reader)
                })
                .collect(),
        }
    }
}

/// Readers of a batch's writer schemas, by id ([`WriterSchemas::readers`]).
pub struct Readers<'s> {
    by_id: HashMap<u32, Result<GenericDatumReader<'s>, String>>,
}

impl Readers<'_> {
    /// The reader of the schema with `id`.
    ///
    /// # Errors
    /// Why the records naming `id` cannot be read.
    pub fn get(&self, id: u32) -> Result<&GenericDatumReader<'_>, String> {
        match self.by_id.get(&id) {
            Some(Ok(reader)) => Ok(reader),
            Some(Err(why)) => Err(why.clone()),
            None => Err(format!("schema id {id} was not fetched")),
        }
    }
}
