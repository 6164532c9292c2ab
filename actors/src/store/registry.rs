//! A client of a Confluent-compatible schema registry's REST API (Confluent Schema
//! Registry, Apicurio's `/apis/ccompat/v7`, Karapace): register a schema under a
//! subject, set the subject's compatibility, look a schema's id up, fetch a schema by
//! id. Schemas fetched by id are cached for the client's life: an id names one schema
//! for good, and a topic's records name a handful of versions.

use super::{Service, StoreError};
use apache_avro::Schema;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `[kafka.registry]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Base URL of the Confluent-compatible API (for Apicurio Registry:
    /// `http://host:port/apis/ccompat/v7`). Empty: no registry.
    #[serde(default = "default_url")]
    pub url: String,
    /// How long one registry request may take.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
}

fn default_url() -> String {
    "http://127.0.0.1:18081/apis/ccompat/v7".into()
}

fn default_request_timeout_ms() -> u64 {
    5_000
}

impl Default for Config {
    fn default() -> Self {
        Config {
            url: default_url(),
            request_timeout_ms: default_request_timeout_ms(),
        }
    }
}

impl Config {
    pub fn validate(&self, f: &mut crate::validate::Findings) {
        if !self.url.is_empty() {
            f.http_url("url", &self.url);
        }
        f.range("request_timeout_ms", self.request_timeout_ms, 100, 600_000);
    }
}

/// The registry's content type for requests and answers.
const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Confluent's error codes of a subject, version or schema the registry does not hold
/// (with HTTP 404). An incompatible schema is HTTP 409, an invalid one 422.
const NOT_FOUND_CODES: [i64; 3] = [40401, 40402, 40403];

/// The registry's error body.
#[derive(Debug, Deserialize)]
struct ApiError {
    #[serde(default)]
    error_code: i64,
    #[serde(default)]
    message: String,
}

/// What a registry request ended with, when it did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The subject's compatibility rule refused the schema (HTTP 409).
    #[error("the registry refuses the schema for subject {subject}: {message}")]
    Incompatible { subject: String, message: String },
    /// Not registered (HTTP 404): the subject, the schema under it, or the id.
    #[error("{0}")]
    NotFound(String),
    /// Unreachable, timed out, or another answer: retrying may help, or an operator must.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A registry client with its cache of schemas by id.
pub struct Registry {
    base: String,
    http: reqwest::Client,
    schemas: Mutex<HashMap<u32, Arc<Schema>>>,
}

impl Registry {
    /// `None` when `config.url` is empty.
    ///
    /// # Errors
    /// The HTTP client cannot be built (its TLS back end).
    pub fn new(config: &Config) -> Result<Option<Registry>, StoreError> {
        if config.url.is_empty() {
            return Ok(None);
        }
        crate::install_tls_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.request_timeout_ms))
            .user_agent(concat!("tributary/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                StoreError::request(Service::Registry, "cannot build the HTTP client", e)
            })?;
        Ok(Some(Registry {
            base: config.url.trim_end_matches('/').to_owned(),
            http,
            schemas: Mutex::new(HashMap::new()),
        }))
    }

    /// The API's base URL, for messages.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Sets `subject`'s compatibility rule (e.g. `BACKWARD`); allowed before the subject
    /// has a schema.
    ///
    /// # Errors
    /// As [`Registry::call`].
    pub async fn set_compatibility(&self, subject: &str, level: &str) -> Result<(), RegistryError> {
        let url = format!("{}/config/{}", self.base, path(subject));
        self.call(self.http.put(url), Some(json!({ "compatibility": level })))
            .await
            .map(drop)
    }

    /// `subject`'s compatibility rule, if it has its own.
    ///
    /// # Errors
    /// As [`Registry::call`], except that a subject without a rule is `None`.
    pub async fn compatibility(&self, subject: &str) -> Result<Option<String>, RegistryError> {
        let url = format!("{}/config/{}", self.base, path(subject));
        match self.call(self.http.get(url), None).await {
            Ok(body) => Ok(body
                .get("compatibilityLevel")
                .or_else(|| body.get("compatibility"))
                .and_then(|v| v.as_str())
                .map(str::to_owned)),
            Err(RegistryError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Registers `schema` under `subject` (idempotent: a schema already there keeps its
    /// id) and returns its id.
    ///
    /// # Errors
    /// [`RegistryError::Incompatible`] when the subject's rule refuses it.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let url = format!("{}/subjects/{}/versions", self.base, path(subject));
        let body = self
            .call(self.http.post(url), Some(json!({ "schema": schema })))
            .await
            .map_err(|e| match e {
                RegistryError::Incompatible { message, .. } => RegistryError::Incompatible {
                    subject: subject.to_owned(),
                    message,
                },
                other => other,
            })?;
        id_of(&body)
    }

    /// The id `schema` has under `subject`, or `None` if it is not registered there.
    ///
    /// # Errors
    /// As [`Registry::call`].
    pub async fn lookup(&self, subject: &str, schema: &str) -> Result<Option<u32>, RegistryError> {
        let url = format!("{}/subjects/{}", self.base, path(subject));
        match self
            .call(self.http.post(url), Some(json!({ "schema": schema })))
            .await
        {
            Ok(body) => id_of(&body).map(Some),
            Err(RegistryError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The schema registered with `id` (cached).
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] for an id the registry does not know (a record that
    /// names it is poison); the others may pass.
    pub async fn schema(&self, id: u32) -> Result<Arc<Schema>, RegistryError> {
        if let Some(schema) = self.cached(id) {
            return Ok(schema);
        }
        let body = self
            .call(
                self.http.get(format!("{}/schemas/ids/{id}", self.base)),
                None,
            )
            .await?;
        let text = body
            .get("schema")
            .and_then(|s| s.as_str())
            .ok_or_else(|| bad_answer(format!("schema {id}: the answer has no \"schema\"")))?;
        // The registry's answer for good: records naming this id cannot be read by us.
        let schema = Schema::parse_str(text).map_err(|e| {
            RegistryError::NotFound(format!(
                "schema id {id} is not an Avro schema tributary can read: {e}"
            ))
        })?;
        let schema = Arc::new(schema);
        self.schemas
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id, schema.clone());
        Ok(schema)
    }

    /// Every subject the registry holds, soft-deleted ones included (so a deletion that
    /// stopped halfway is finished by the next sweep).
    ///
    /// # Errors
    /// As [`Registry::call`].
    pub async fn subjects(&self) -> Result<Vec<String>, RegistryError> {
        let body = self
            .call(
                self.http
                    .get(format!("{}/subjects", self.base))
                    .query(&[("deleted", "true")]),
                None,
            )
            .await?;
        serde_json::from_value(body)
            .map_err(|e| bad_answer(format!("the subject list is not a list of names: {e}")))
    }

    /// Deletes `subject` and its schemas for good (a soft delete, then the permanent
    /// one the API requires after it); a subject that is not there is no error.
    ///
    /// # Errors
    /// As [`Registry::call`].
    pub async fn delete_subject(&self, subject: &str) -> Result<(), RegistryError> {
        let url = format!("{}/subjects/{}", self.base, path(subject));
        for request in [
            self.http.delete(&url),
            self.http.delete(&url).query(&[("permanent", "true")]),
        ] {
            match self.call(request, None).await {
                Ok(_) | Err(RegistryError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The schema with `id` if it was fetched before.
    pub fn cached(&self, id: u32) -> Option<Arc<Schema>> {
        self.schemas
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&id)
            .cloned()
    }

    /// Sends one request (with `body` as the registry's JSON) and reads its JSON answer.
    ///
    /// # Errors
    /// The registry's own "not found" (HTTP 404 with error code 40401, 40402 or 40403:
    /// no such subject, version or schema) is [`RegistryError::NotFound`]; any other 404
    /// (a wrong base URL, a proxy in front of a registry that is down) is a request
    /// error, which callers retry or report, never take for an answer. 409 is
    /// [`RegistryError::Incompatible`] (its subject filled in by the caller); no answer
    /// is `Unreachable`; any other failure a request error naming the status and the
    /// registry's message.
    async fn call(
        &self,
        request: reqwest::RequestBuilder,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, RegistryError> {
        let mut request = request.header(reqwest::header::ACCEPT, CONTENT_TYPE);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
                .body(body.to_string());
        }
        let response = request
            .send()
            .await
            .map_err(|e| StoreError::unreachable(Service::Registry, self.base.clone(), e))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| StoreError::unreachable(Service::Registry, self.base.clone(), e))?;
        if status.is_success() {
            return serde_json::from_slice(&body)
                .map_err(|e| bad_answer(format!("the answer is not JSON: {e}")));
        }
        let error: ApiError = serde_json::from_slice(&body).unwrap_or(ApiError {
            error_code: 0,
            message: String::from_utf8_lossy(&body).chars().take(300).collect(),
        });
        Err(match status.as_u16() {
            404 if NOT_FOUND_CODES.contains(&error.error_code) => {
                RegistryError::NotFound(format!("{} ({})", error.message, error.error_code))
            }
            409 => RegistryError::Incompatible {
                subject: String::new(),
                message: error.message,
            },
            code => RegistryError::Store(StoreError::request(
                Service::Registry,
                format!("HTTP {code}: {} ({})", error.message, error.error_code),
                format!("{} answered {status}", self.base),
            )),
        })
    }
}

/// A subject as one path segment (`users.raw-value` needs no escaping; a `/` would).
fn path(subject: &str) -> String {
    subject.replace('%', "%25").replace('/', "%2F")
}

fn id_of(body: &serde_json::Value) -> Result<u32, RegistryError> {
    body.get("id")
        .and_then(serde_json::Value::as_u64)
        .and_then(|id| u32::try_from(id).ok())
        .ok_or_else(|| bad_answer(format!("no schema id in the answer {body}")))
}

fn bad_answer(what: String) -> RegistryError {
    RegistryError::Store(StoreError::request(
        Service::Registry,
        what,
        "unexpected answer",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_one_path_segment() {
        assert_eq!(path("users.raw-value"), "users.raw-value");
        assert_eq!(path("a/b%"), "a%2Fb%25");
    }

    #[tokio::test]
    async fn a_registry_that_does_not_answer_is_an_outage_not_an_answer() {
        // A port nothing listens on: the error is Unreachable (the transformer fails its
        // batch and retries), never NotFound (which would dead-letter records).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let registry = Registry::new(&Config {
            url: format!("http://127.0.0.1:{port}/apis/ccompat/v7"),
            request_timeout_ms: 2_000,
        })
        .unwrap()
        .unwrap();
        match registry.schema(1).await {
            Err(RegistryError::Store(e)) => {
                assert!(matches!(e, StoreError::Unreachable { .. }), "{e}");
            }
            other => panic!("expected an outage, got {other:?}"),
        }
        let fetched = crate::format::WriterSchemas::fetch(Some(&registry), [1]).await;
        assert!(fetched.is_err(), "a batch waits for the registry");
        let none = crate::format::WriterSchemas::fetch(None, [1]).await;
        assert!(
            none.is_err(),
            "Avro records without a registry wait for an operator"
        );
    }

    #[test]
    fn no_url_means_no_registry() {
        let config = Config {
            url: String::new(),
            ..Config::default()
        };
        assert!(Registry::new(&config).unwrap().is_none());
    }
}
