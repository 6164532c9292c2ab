//! A user as written to Cassandra's `created_users`: the classic pipeline's columns, with
//! Cassandra's real types, plus where the record came from.

use super::raw_user::RawUser;
use chrono::{DateTime, Utc};

/// Where a record was read from; its Kafka timestamp makes replays write identical cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The Kafka record's timestamp (producer create time), in milliseconds.
    pub timestamp_ms: i64,
    /// When the record was staged in PostgreSQL (`tributary-staged-at` header), in
    /// milliseconds: the start of its end-to-end latency.
    pub staged_at_ms: Option<i64>,
    /// The run it was fetched in (`tributary-run-id` header): the row's `run_id`, by
    /// which verification and the reconciler count a run's rows.
    pub run_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreatedUser {
    /// The source's `login.uuid`: stable across replays, never a fresh random id.
    pub id: uuid::Uuid,
    pub first_name: String,
    pub last_name: String,
    pub gender: String,
    /// `"number street, city, state, country"`, as the classic job builds it.
    pub address: String,
    pub country: String,
    pub post_code: String,
    pub email: String,
    pub username: String,
    pub dob: DateTime<Utc>,
    pub registered_date: DateTime<Utc>,
    pub phone: String,
    pub picture: String,
    pub provenance: Provenance,
}

impl CreatedUser {
    /// # Errors
    /// A date that is not RFC 3339 (RawUser::parse already checked, so only for
    /// records built another way).
    pub fn from_raw(raw: &RawUser<'_>, provenance: Provenance) -> Result<CreatedUser, String> {
        let date = |field: &str, value: &str| {
            DateTime::parse_from_rfc3339(value)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| format!("{field}: {value:?} is not an RFC 3339 timestamp: {e}"))
        };
        let location = &raw.location;
        Ok(CreatedUser {
            id: raw.uuid(),
            first_name: raw.name.first.to_string(),
            last_name: raw.name.last.to_string(),
            gender: raw.gender.to_string(),
            address: format!(
                "{} {}, {}, {}, {}",
                location.street.number,
                location.street.name,
                location.city,
                location.state,
                location.country
            ),
            country: location.country.to_string(),
            post_code: location.postcode.to_string(),
            email: raw.email.to_string(),
            username: raw.login.username.to_string(),
            dob: date("dob.date", &raw.dob.date)?,
            registered_date: date("registered.date", &raw.registered.date)?,
            phone: raw.phone.to_string(),
            picture: raw.picture.medium.to_string(),
            provenance,
        })
    }

    /// The aggregate buckets this user counts in.
    pub fn buckets(&self) -> [String; 2] {
        [
            format!("country:{}", self.country),
            format!("gender:{}", self.gender),
        ]
    }

    /// Write timestamp of the row's cells, in microseconds: derived from the Kafka
    /// record, so a replay of the same record rewrites identical cells.
    pub fn write_timestamp_micros(&self) -> i64 {
        self.provenance.timestamp_ms.saturating_mul(1_000)
    }

    /// When the record entered Kafka: the `ingested_at` column (not the wall clock at
    /// write time, which a replay would change).
    pub fn ingested_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.provenance.timestamp_ms).unwrap_or_default()
    }
}

#[cfg(test)]
impl CreatedUser {
    /// A user for unit tests: `id`, `country`, `gender`, read at `offset` in run `run`;
    /// every other field empty.
    pub fn for_test(
        id: uuid::Uuid,
        country: &str,
        gender: &str,
        offset: i64,
        run: Option<i64>,
    ) -> CreatedUser {
        let at = DateTime::from_timestamp_millis(0).unwrap_or_default();
        CreatedUser {
            id,
            first_name: String::new(),
            last_name: String::new(),
            gender: gender.into(),
            address: String::new(),
            country: country.into(),
            post_code: String::new(),
            email: String::new(),
            username: String::new(),
            dob: at,
            registered_date: at,
            phone: String::new(),
            picture: String::new(),
            provenance: Provenance {
                topic: "t".into(),
                partition: 0,
                offset,
                timestamp_ms: 0,
                staged_at_ms: None,
                run_id: run,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::raw_user::tests::SAMPLE;

    #[test]
    fn classic_columns() {
        let raw = RawUser::parse(SAMPLE).unwrap();
        let provenance = Provenance {
            topic: "users.raw".into(),
            partition: 3,
            offset: 42,
            timestamp_ms: 1_700_000_000_123,
            staged_at_ms: None,
            run_id: Some(7),
        };
        let user = CreatedUser::from_raw(&raw, provenance).unwrap();
        assert_eq!(user.id.to_string(), "7a0eed16-9430-4d68-901f-c0d4c1c3bf00");
        assert_eq!(
            user.address,
            "8929 Valwood Pkwy, Billings, Michigan, United States"
        );
        assert_eq!(user.post_code, "63104");
        assert_eq!(
            user.picture,
            "https://randomuser.me/api/portraits/med/women/75.jpg"
        );
        assert_eq!(user.dob.to_rfc3339(), "1992-03-08T15:13:16.688+00:00");
        assert_eq!(user.buckets(), ["country:United States", "gender:female"]);
        assert_eq!(user.write_timestamp_micros(), 1_700_000_000_123_000);
        assert_eq!(user.ingested_at().timestamp_millis(), 1_700_000_000_123);
    }
}
