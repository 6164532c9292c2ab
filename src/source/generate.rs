//! Deterministic randomuser.me-compatible users: the same seed, page and position always
//! give the same user, `login.uuid` included, so a refetched page stages nothing new.

use super::data::{self, Nationality};
use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use serde_json::{Value, json};

/// API version reported in `info.version`, as the real API does.
pub const API_VERSION: &str = "1.4";

/// Ages are computed against a fixed date, not the clock, so responses never change.
fn reference_date() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

/// splitmix64: small, fast and good enough for test data; seeded per user.
pub struct Rng(u64);

impl Rng {
    pub fn new(parts: &[&[u8]]) -> Self {
        // FNV-1a: stable across Rust versions, unlike std's DefaultHasher.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for part in parts {
            for &b in *part {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            h ^= 0xff;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        Rng(h)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A uniform number in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1_u64 << 53) as f64
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    fn hex(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from_digit(self.below(16) as u32, 16).unwrap_or('0'))
            .collect()
    }

    fn alnum(&mut self, len: usize) -> String {
        const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        (0..len).map(|_| char::from(*self.pick(CHARS))).collect()
    }

    /// Fills a pattern: `9` → digit, `A` → upper-case letter, anything else kept.
    fn pattern(&mut self, pattern: &str) -> String {
        pattern
            .chars()
            .map(|c| match c {
                '9' => char::from(b'0' + self.below(10) as u8),
                'A' => char::from(b'A' + self.below(26) as u8),
                other => other,
            })
            .collect()
    }

    fn uuid_v4(&mut self) -> uuid::Uuid {
        let bytes = (u128::from(self.next_u64()) << 64 | u128::from(self.next_u64())).to_be_bytes();
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    fn date_between(&mut self, from_year: i32, to_year: i32) -> DateTime<Utc> {
        let start = Utc
            .with_ymd_and_hms(from_year, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or_default();
        let end = Utc
            .with_ymd_and_hms(to_year, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or_default();
        let span_ms = (end - start).num_milliseconds().max(1) as u64;
        start + Duration::milliseconds(self.below(span_ms) as i64)
    }
}

fn years_between(earlier: DateTime<Utc>, later: DateTime<Utc>) -> i64 {
    let mut years = i64::from(later.year() - earlier.year());
    if (later.month(), later.day()) < (earlier.month(), earlier.day()) {
        years -= 1;
    }
    years
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The user at `index` of `page` for `seed`, restricted to `nationalities` (all when
/// empty).
pub fn user(seed: &str, page: u32, index: u32, nationalities: &[&'static Nationality]) -> Value {
    let mut rng = Rng::new(&[seed.as_bytes(), &page.to_be_bytes(), &index.to_be_bytes()]);
    let nat: &Nationality = match nationalities {
        [] => rng.pick(data::NATIONALITIES),
        some => rng.pick::<&Nationality>(some),
    };
    let female = rng.below(2) == 0;
    let (gender, first, title, portraits) = if female {
        (
            "female",
            *rng.pick(data::FEMALE_FIRST),
            *rng.pick(data::TITLES_FEMALE),
            "women",
        )
    } else {
        (
            "male",
            *rng.pick(data::MALE_FIRST),
            *rng.pick(data::TITLES_MALE),
            "men",
        )
    };
    let last = *rng.pick(data::LAST);
    let postcode_text = rng.pattern(nat.postcode);
    let postcode = match (nat.postcode_is_number, postcode_text.parse::<u64>()) {
        (true, Ok(number)) => json!(number),
        _ => json!(postcode_text),
    };
    let (tz_offset, tz_description) = *rng.pick(data::TIMEZONES);
    let dob = rng.date_between(1945, 2005);
    let registered = rng.date_between(2002, 2025);
    let now = reference_date();
    let password = *rng.pick(data::PASSWORDS);
    let username = format!(
        "{}{}{}",
        rng.pick(data::USERNAME_ADJECTIVES),
        rng.pick(data::USERNAME_ANIMALS),
        rng.below(1000)
    );
    let ascii = |s: &str| {
        s.chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_lowercase()
    };
    let picture = rng.below(100);
    json!({
        "gender": gender,
        "name": {"title": title, "first": first, "last": last},
        "location": {
            "street": {"number": 1 + rng.below(9999), "name": rng.pick(nat.streets)},
            "city": rng.pick(nat.cities),
            "state": rng.pick(nat.states),
            "country": nat.country,
            "postcode": postcode,
            "coordinates": {
                "latitude": format!("{:.4}", rng.unit() * 180.0 - 90.0),
                "longitude": format!("{:.4}", rng.unit() * 360.0 - 180.0),
            },
            "timezone": {"offset": tz_offset, "description": tz_description},
        },
        "email": format!("{}.{}@example.com", ascii(first), ascii(last)),
        "login": {
            "uuid": rng.uuid_v4().to_string(),
            "username": username,
            "password": password,
            "salt": rng.alnum(8),
            "md5": rng.hex(32),
            "sha1": rng.hex(40),
            "sha256": rng.hex(64),
        },
        "dob": {"date": timestamp(dob), "age": years_between(dob, now)},
        "registered": {"date": timestamp(registered), "age": years_between(registered, now)},
        "phone": rng.pattern(nat.phone),
        "cell": rng.pattern(nat.phone),
        "id": {"name": nat.id_name, "value": nat.id_value.map(|p| rng.pattern(p))},
        "picture": {
            "large": format!("https://randomuser.me/api/portraits/{portraits}/{picture}.jpg"),
            "medium": format!("https://randomuser.me/api/portraits/med/{portraits}/{picture}.jpg"),
            "thumbnail": format!("https://randomuser.me/api/portraits/thumb/{portraits}/{picture}.jpg"),
        },
        "nat": nat.code,
    })
}

/// Breaks a record the way a faulty upstream might: a missing or wrongly typed field.
/// Deterministic per record, so the same records are broken on every fetch.
pub fn corrupt(user: &mut Value, seed: &str, page: u32, index: u32) {
    let mut rng = Rng::new(&[
        b"corrupt",
        seed.as_bytes(),
        &page.to_be_bytes(),
        &index.to_be_bytes(),
    ]);
    match rng.below(5) {
        0 => {
            user["login"]
                .as_object_mut()
                .map(|login| login.remove("uuid"));
        }
        1 => user["dob"]["age"] = json!("unknown"),
        2 => user["email"] = json!(42),
        3 => {
            user.as_object_mut().map(|u| u.remove("name"));
        }
        _ => user["login"]["uuid"] = json!("not-a-uuid"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_actors::model::RawUser;

    #[test]
    fn same_seed_page_and_index_give_the_same_user() {
        assert_eq!(user("abc", 3, 7, &[]), user("abc", 3, 7, &[]));
        assert_ne!(user("abc", 3, 7, &[]), user("abc", 3, 8, &[]));
        assert_ne!(user("abc", 3, 7, &[]), user("abc", 4, 7, &[]));
        assert_ne!(user("abc", 3, 7, &[]), user("abd", 3, 7, &[]));
    }

    #[test]
    fn generated_users_parse_and_are_unique() {
        let mut ids = std::collections::HashSet::new();
        for i in 0..2_000 {
            let raw = user("unique", 1, i, &[]).to_string();
            let parsed = RawUser::parse(&raw).unwrap_or_else(|e| panic!("{e}: {raw}"));
            assert!(ids.insert(parsed.login.uuid.into_owned()));
        }
    }

    #[test]
    fn postcode_type_follows_nationality() {
        let gb = data::NATIONALITIES.iter().find(|n| n.code == "GB").unwrap();
        let us = data::NATIONALITIES.iter().find(|n| n.code == "US").unwrap();
        assert!(user("s", 1, 1, &[gb])["location"]["postcode"].is_string());
        assert!(user("s", 1, 1, &[us])["location"]["postcode"].is_number());
    }

    #[test]
    fn corrupted_users_are_rejected_with_a_reason() {
        for i in 0..50 {
            let mut u = user("bad", 1, i, &[]);
            corrupt(&mut u, "bad", 1, i);
            assert!(RawUser::parse(&u.to_string()).is_err(), "{u}");
        }
    }
}
