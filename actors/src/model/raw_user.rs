//! A user as the randomuser.me API (or the embedded source) returns it, typed.
//!
//! Parsing is per record: a page is first split into raw JSON records, then each record
//! is parsed and validated on its own, so one malformed record goes to quarantine with
//! its reason and its exact bytes while the rest of the page proceeds.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// Highest page randomuser.me serves for a seed; it answers any other page with page 1.
pub const MAX_PAGE: u32 = 10_000;
/// Most users randomuser.me serves per request; it answers any other count with one user.
pub const MAX_RESULTS: u32 = 5_000;

/// randomuser.me reads a seed of exactly this many characters as a 16-character seed
/// followed by a nationality code (two hex digits).
pub const NAT_SEED_LENGTH: usize = 18;

/// A text's length as randomuser.me (JavaScript) counts it: in UTF-16 code units.
pub fn api_length(text: &str) -> usize {
    text.encode_utf16().count()
}

/// What one fetch asks the source for. The real API answers a request it cannot serve
/// (a page past 10,000, too many results) with something else rather than an error, so
/// every response is checked against its request before anything is staged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub seed: String,
    pub page: u32,
    pub results: u32,
}

impl PageRequest {
    /// # Errors
    /// Why `page` is not the answer to this request: its `info` names another seed,
    /// page or count, or it holds another number of records.
    pub fn check(&self, page: &SourcePage) -> Result<(), String> {
        let info = &page.info;
        let mut wrong = Vec::new();
        if info.seed != self.seed {
            wrong.push(format!("info.seed {:?} (asked {:?})", info.seed, self.seed));
        }
        if info.page != self.page {
            wrong.push(format!("info.page {} (asked {})", info.page, self.page));
        }
        if info.results != self.results {
            wrong.push(format!(
                "info.results {} (asked {})",
                info.results, self.results
            ));
        }
        if page.results.len() != self.results as usize {
            wrong.push(format!(
                "{} records (asked {})",
                page.results.len(),
                self.results
            ));
        }
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "response does not match its request: {}",
                wrong.join(", ")
            ))
        }
    }
}

/// One response page: raw records plus the `info` block.
#[derive(Debug, Deserialize)]
pub struct SourcePage {
    pub results: Vec<Box<RawValue>>,
    pub info: PageInfo,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageInfo {
    pub seed: String,
    pub results: u32,
    pub page: u32,
    pub version: String,
}

/// A record that cannot be staged: why, and the bytes as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub reason: String,
    pub raw: Vec<u8>,
}

/// Text fields borrow from the record's JSON where they can (`Cow::Borrowed`, no
/// allocation) and own only what JSON escapes (the real API writes `https:\/\/…`): the
/// consume path parses every record and keeps a dozen of its ~35 strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawUser<'a> {
    #[serde(borrow)]
    pub gender: Cow<'a, str>,
    #[serde(borrow)]
    pub name: Name<'a>,
    #[serde(borrow)]
    pub location: Location<'a>,
    #[serde(borrow)]
    pub email: Cow<'a, str>,
    #[serde(borrow)]
    pub login: Login<'a>,
    #[serde(borrow)]
    pub dob: DatedAge<'a>,
    #[serde(borrow)]
    pub registered: DatedAge<'a>,
    #[serde(borrow)]
    pub phone: Cow<'a, str>,
    #[serde(borrow)]
    pub cell: Cow<'a, str>,
    #[serde(borrow)]
    pub id: NationalId<'a>,
    #[serde(borrow)]
    pub picture: Picture<'a>,
    #[serde(borrow)]
    pub nat: Cow<'a, str>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Name<'a> {
    #[serde(borrow)]
    pub title: Cow<'a, str>,
    #[serde(borrow)]
    pub first: Cow<'a, str>,
    #[serde(borrow)]
    pub last: Cow<'a, str>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location<'a> {
    #[serde(borrow)]
    pub street: Street<'a>,
    #[serde(borrow)]
    pub city: Cow<'a, str>,
    #[serde(borrow)]
    pub state: Cow<'a, str>,
    #[serde(borrow)]
    pub country: Cow<'a, str>,
    /// A number for some nationalities (US, DE, …), a string for others (GB, CA, …).
    #[serde(borrow)]
    pub postcode: Postcode<'a>,
    #[serde(borrow)]
    pub coordinates: Coordinates<'a>,
    #[serde(borrow)]
    pub timezone: Timezone<'a>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Postcode<'a> {
    Number(u64),
    Text(Cow<'a, str>),
}

/// By hand rather than `#[serde(untagged)]`: untagged buffers the value and tries each
/// variant, building an error for every miss — measurable on the consume path.
impl<'de: 'a, 'a> Deserialize<'de> for Postcode<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Postcode<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a postcode: a non-negative integer or a string")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Postcode<'de>, E> {
                Ok(Postcode::Number(n))
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                s: &'de str,
            ) -> Result<Postcode<'de>, E> {
                Ok(Postcode::Text(Cow::Borrowed(s)))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Postcode<'de>, E> {
                Ok(Postcode::Text(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Postcode<'de>, E> {
                Ok(Postcode::Text(Cow::Owned(s)))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl std::fmt::Display for Postcode<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Postcode::Number(n) => write!(f, "{n}"),
            Postcode::Text(s) => f.write_str(s),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Street<'a> {
    pub number: u32,
    #[serde(borrow)]
    pub name: Cow<'a, str>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coordinates<'a> {
    #[serde(borrow)]
    pub latitude: Cow<'a, str>,
    #[serde(borrow)]
    pub longitude: Cow<'a, str>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timezone<'a> {
    #[serde(borrow)]
    pub offset: Cow<'a, str>,
    #[serde(borrow)]
    pub description: Cow<'a, str>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Login<'a> {
    #[serde(borrow)]
    pub uuid: Cow<'a, str>,
    #[serde(borrow)]
    pub username: Cow<'a, str>,
    #[serde(borrow)]
    pub password: Cow<'a, str>,
    #[serde(borrow)]
    pub salt: Cow<'a, str>,
    #[serde(borrow)]
    pub md5: Cow<'a, str>,
    #[serde(borrow)]
    pub sha1: Cow<'a, str>,
    #[serde(borrow)]
    pub sha256: Cow<'a, str>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatedAge<'a> {
    /// RFC 3339 timestamp, e.g. `1992-03-08T15:13:16.688Z`.
    #[serde(borrow)]
    pub date: Cow<'a, str>,
    pub age: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NationalId<'a> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// The API returns null for nationalities without a national id scheme.
    #[serde(borrow)]
    pub value: Option<Cow<'a, str>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Picture<'a> {
    #[serde(borrow)]
    pub large: Cow<'a, str>,
    #[serde(borrow)]
    pub medium: Cow<'a, str>,
    #[serde(borrow)]
    pub thumbnail: Cow<'a, str>,
}

impl<'a> RawUser<'a> {
    /// Parses and validates one record; the error is a reason fit for the quarantine
    /// table, naming the field (e.g. `login.uuid: missing field`).
    pub fn parse(raw: &'a str) -> Result<RawUser<'a>, String> {
        // Path tracking costs on every field of every record: only a record that fails
        // is parsed a second time, with it, to name the field in the reason.
        let user: RawUser<'a> = serde_json::from_str(raw).map_err(|e| Self::reason(raw, &e))?;
        user.validate()?;
        Ok(user)
    }

    /// Why `raw` is not a user, naming the field where serde_path_to_error can.
    fn reason(raw: &str, error: &serde_json::Error) -> String {
        let deserializer = &mut serde_json::Deserializer::from_str(raw);
        match serde_path_to_error::deserialize::<_, RawUser<'_>>(deserializer) {
            Err(e) if e.path().to_string() != "." => format!("{}: {}", e.path(), e.inner()),
            Err(e) => e.into_inner().to_string(),
            // Not expected (the same parser failed once): the first error then.
            Ok(_) => error.to_string(),
        }
    }

    /// The user's id: the source's `login.uuid`, parsed.
    pub fn uuid(&self) -> uuid::Uuid {
        // validate() checked it parses; a RawUser is only built through parse().
        uuid::Uuid::parse_str(&self.login.uuid).unwrap_or_default()
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        uuid::Uuid::parse_str(&self.login.uuid)
            .map_err(|e| format!("login.uuid: not a UUID: {e}"))?;
        if !self.email.contains('@') {
            return Err(format!("email: {:?} is not an email address", self.email));
        }
        for (field, value) in [
            ("dob.date", &self.dob.date),
            ("registered.date", &self.registered.date),
        ] {
            chrono::DateTime::parse_from_rfc3339(value)
                .map_err(|e| format!("{field}: {value:?} is not an RFC 3339 timestamp: {e}"))?;
        }
        if self.name.first.trim().is_empty() || self.name.last.trim().is_empty() {
            return Err("name: first and last name are required".into());
        }
        // Avro's long (users.raw's schema) holds every postcode a staged record has.
        if let Postcode::Number(n) = self.location.postcode
            && i64::try_from(n).is_err()
        {
            return Err(format!(
                "location.postcode: {n} is out of range (at most {})",
                i64::MAX
            ));
        }
        Ok(())
    }
}

/// Splits a response body into records. An error means the body as a whole is not a
/// page (truncated, malformed): the fetch is retried, then quarantined whole.
pub fn parse_page(body: &[u8]) -> Result<SourcePage, String> {
    serde_json::from_slice(body).map_err(|e| format!("response is not a valid page: {e}"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const SAMPLE: &str = r#"{
      "gender": "female",
      "name": {"title": "Miss", "first": "Jennie", "last": "Nichols"},
      "location": {
        "street": {"number": 8929, "name": "Valwood Pkwy"},
        "city": "Billings", "state": "Michigan", "country": "United States",
        "postcode": 63104,
        "coordinates": {"latitude": "-69.8246", "longitude": "134.8719"},
        "timezone": {"offset": "+9:30", "description": "Adelaide, Darwin"}
      },
      "email": "jennie.nichols@example.com",
      "login": {"uuid": "7a0eed16-9430-4d68-901f-c0d4c1c3bf00", "username": "yellowpeacock117",
                "password": "addison", "salt": "sld1yGtd", "md5": "ab54ac4c0be9480ae8fa5e9e2a5196a3",
                "sha1": "edcf2ce613cbdea349133c52dc2f3b83168dc51b",
                "sha256": "48df5229235ada28389b91e60a935e4f9b73eb4bdb855ef9258a1751f10bdc5d"},
      "dob": {"date": "1992-03-08T15:13:16.688Z", "age": 30},
      "registered": {"date": "2007-07-09T05:51:59.390Z", "age": 14},
      "phone": "(272) 790-0888", "cell": "(489) 330-2385",
      "id": {"name": "SSN", "value": null},
      "picture": {"large": "https://randomuser.me/api/portraits/women/75.jpg",
                  "medium": "https://randomuser.me/api/portraits/med/women/75.jpg",
                  "thumbnail": "https://randomuser.me/api/portraits/thumb/women/75.jpg"},
      "nat": "US"
    }"#;

    #[test]
    fn parses_the_api_shape() {
        let user = RawUser::parse(SAMPLE).unwrap();
        assert_eq!(user.name.first, "Jennie");
        assert_eq!(user.location.postcode, Postcode::Number(63104));
        assert_eq!(user.id.value, None);
        assert_eq!(
            user.uuid().to_string(),
            "7a0eed16-9430-4d68-901f-c0d4c1c3bf00"
        );
    }

    #[test]
    fn escaped_text_is_unescaped_and_plain_text_borrowed() {
        // The real API escapes slashes (PHP's json_encode): such fields cannot borrow.
        let raw = SAMPLE.replace(
            "https://randomuser.me/api/portraits/med/",
            r"https:\/\/randomuser.me\/api\/portraits\/med\/",
        );
        let user = RawUser::parse(&raw).unwrap();
        assert_eq!(
            user.picture.medium,
            "https://randomuser.me/api/portraits/med/women/75.jpg"
        );
        assert!(matches!(user.picture.medium, Cow::Owned(_)));
        assert!(matches!(user.name.first, Cow::Borrowed("Jennie")));
    }

    #[test]
    fn string_postcodes_are_accepted() {
        let raw = SAMPLE.replace("63104", "\"SW1A 1AA\"");
        assert_eq!(
            RawUser::parse(&raw).unwrap().location.postcode,
            Postcode::Text("SW1A 1AA".into())
        );
    }

    #[test]
    fn reasons_name_the_field() {
        let missing = SAMPLE.replace(r#""uuid": "7a0eed16-9430-4d68-901f-c0d4c1c3bf00", "#, "");
        let err = RawUser::parse(&missing).unwrap_err();
        assert!(err.starts_with("login: missing field `uuid`"), "{err}");
        let wrong_type = SAMPLE.replace(r#""age": 30"#, r#""age": "thirty""#);
        let err = RawUser::parse(&wrong_type).unwrap_err();
        assert!(err.starts_with("dob.age: invalid type"), "{err}");
        let bad_uuid = SAMPLE.replace("7a0eed16-9430-4d68-901f-c0d4c1c3bf00", "not-a-uuid");
        assert!(
            RawUser::parse(&bad_uuid)
                .unwrap_err()
                .starts_with("login.uuid: not a UUID")
        );
        let huge_postcode = SAMPLE.replace(
            r#""postcode": 63104"#,
            r#""postcode": 18446744073709551615"#,
        );
        let err = RawUser::parse(&huge_postcode).unwrap_err();
        assert!(
            err.starts_with("location.postcode: 18446744073709551615 is out of range"),
            "{err}"
        );
        let negative_postcode = SAMPLE.replace(r#""postcode": 63104"#, r#""postcode": -5"#);
        let err = RawUser::parse(&negative_postcode).unwrap_err();
        assert!(err.starts_with("location.postcode: invalid type"), "{err}");
        assert!(err.contains("a postcode"), "{err}");
        let bad_date = SAMPLE.replace("1992-03-08T15:13:16.688Z", "yesterday");
        assert!(
            RawUser::parse(&bad_date)
                .unwrap_err()
                .starts_with("dob.date")
        );
    }

    #[test]
    fn a_response_must_answer_its_request() {
        let body = format!(
            r#"{{"results": [{SAMPLE}], "info": {{"seed": "s", "results": 1, "page": 1, "version": "1.4"}}}}"#
        );
        let page = parse_page(body.as_bytes()).unwrap();
        let asked = |seed: &str, page: u32, results: u32| PageRequest {
            seed: seed.into(),
            page,
            results,
        };
        assert_eq!(asked("s", 1, 1).check(&page), Ok(()));
        // What the real API does with a page past 10,000: it answers page 1.
        let err = asked("s", 10_001, 1).check(&page).unwrap_err();
        assert!(err.contains("info.page 1 (asked 10001)"), "{err}");
        let err = asked("t", 1, 1).check(&page).unwrap_err();
        assert!(err.contains("info.seed"), "{err}");
        let err = asked("s", 1, 2).check(&page).unwrap_err();
        assert!(err.contains("info.results 1 (asked 2)"), "{err}");
        assert!(err.contains("1 records (asked 2)"), "{err}");
    }

    #[test]
    fn a_page_keeps_each_record_raw() {
        let body = format!(
            r#"{{"results": [{SAMPLE}, {{"broken": true}}], "info": {{"seed": "s", "results": 2, "page": 1, "version": "1.4"}}}}"#
        );
        let page = parse_page(body.as_bytes()).unwrap();
        assert_eq!(page.results.len(), 2);
        assert!(RawUser::parse(page.results[0].get()).is_ok());
        assert!(RawUser::parse(page.results[1].get()).is_err());
        assert!(parse_page(&body.as_bytes()[..body.len() / 2]).is_err());
    }
}
