//! Deterministic randomuser.me-compatible users: the same seed, page and position always
//! give the same user, `login.uuid` included, so a refetched page stages nothing new.
//!
//! Each nationality's formats follow API 1.4 (`data.rs`); records serialise with the
//! API's field order (gender, name, location, email, login, dob, registered, phone,
//! cell, id, picture, nat).

use super::data::{self, Nationality};
use super::national_id::national_id;
use super::random::{Rng, fill};
use super::transliterate::transliterate;
use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde::Serialize;
use std::fmt::Write as _;

/// API version reported in `info.version`, as the real API does.
pub const API_VERSION: &str = "1.4";

/// Ages are computed against a fixed date, not the clock, so responses never change
/// (the real API's ages drift with time; its dates do not).
fn reference_date() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

/// The API's birth dates: 1944-08-25 to 2001-05-28 (milliseconds since the epoch).
const DOB_MS: (i64, i64) = (-800_000_000_000, 1_653_344_189_000 - 86_400_000 * 365 * 21);
/// The API's registration dates: 2002-03-21 to 2022-05-23.
const REGISTERED_MS: (i64, i64) = (1_016_688_461_000, 1_653_344_189_000);

/// `location.postcode`: a number or a string, by nationality.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Postcode {
    Number(u32),
    Text(String),
}

/// One generated user, fields in the API's order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct User {
    pub gender: &'static str,
    pub name: Name,
    pub location: Location,
    pub email: String,
    pub login: Login,
    pub dob: DatedAge,
    pub registered: DatedAge,
    pub phone: String,
    pub cell: String,
    pub id: NationalId,
    pub picture: Picture,
    pub nat: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Name {
    pub title: String,
    pub first: String,
    pub last: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Location {
    pub street: Street,
    pub city: String,
    pub state: String,
    pub country: String,
    pub postcode: Postcode,
    pub coordinates: Coordinates,
    pub timezone: Timezone,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Street {
    pub number: u32,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Coordinates {
    pub latitude: String,
    pub longitude: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timezone {
    pub offset: &'static str,
    pub description: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Login {
    pub uuid: String,
    pub username: String,
    pub password: &'static str,
    pub salt: String,
    pub md5: String,
    pub sha1: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatedAge {
    pub date: String,
    pub age: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NationalId {
    pub name: String,
    /// null where the API has no id for the nationality.
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Picture {
    pub large: String,
    pub medium: String,
    pub thumbnail: String,
}

/// The top-level fields, in the API's order: what `inc` and `exc` name.
pub const FIELDS: [&str; 12] = [
    "gender",
    "name",
    "location",
    "email",
    "login",
    "dob",
    "registered",
    "phone",
    "cell",
    "id",
    "picture",
    "nat",
];

impl User {
    /// The record as the API writes it, with only the fields `keep` accepts.
    pub fn to_json_with(&self, keep: impl Fn(&str) -> bool) -> String {
        let mut out = String::from("{");
        let mut field = |name: &str, value: Result<String, serde_json::Error>| {
            if keep(name) {
                if out.len() > 1 {
                    out.push(',');
                }
                let _ = write!(out, "\"{name}\":{}", value.unwrap_or_default());
            }
        };
        field("gender", serde_json::to_string(&self.gender));
        field("name", serde_json::to_string(&self.name));
        field("location", serde_json::to_string(&self.location));
        field("email", serde_json::to_string(&self.email));
        field("login", serde_json::to_string(&self.login));
        field("dob", serde_json::to_string(&self.dob));
        field("registered", serde_json::to_string(&self.registered));
        field("phone", serde_json::to_string(&self.phone));
        field("cell", serde_json::to_string(&self.cell));
        field("id", serde_json::to_string(&self.id));
        field("picture", serde_json::to_string(&self.picture));
        field("nat", serde_json::to_string(&self.nat));
        out.push('}');
        out
    }

    /// The whole record as the API writes it.
    pub fn to_json(&self) -> String {
        self.to_json_with(|_| true)
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

/// What the real API draws a page's users from: the seed, followed by the page number
/// unless it is page 1. So (`s-1`, 23) and (`s-12`, 3) give the same users there, and
/// here: a pipeline that maps runs onto such pairs repeats itself against either.
pub fn drawn_from(seed: &str, page: u32) -> String {
    if page == 1 {
        seed.to_owned()
    } else {
        format!("{seed}{page}")
    }
}

/// The user at `index` of `page` for `seed`, of one of `nationalities` (any of the 21
/// when empty).
pub fn user(seed: &str, page: u32, index: u32, nationalities: &[&'static Nationality]) -> User {
    let mut rng = Rng::new(&[drawn_from(seed, page).as_bytes(), &index.to_be_bytes()]);
    let nat: &Nationality = match nationalities {
        [] => rng.pick(data::nationalities()),
        some => rng.pick::<&Nationality>(some),
    };
    let male = rng.below(2) == 0;
    let (first, titles): (&String, &[String]) = if male {
        (rng.pick(&nat.male_first), &nat.title_male)
    } else {
        (rng.pick(&nat.female_first), &nat.title_female)
    };
    let last = rng.pick(&nat.last).clone();
    let title = match (titles.is_empty(), male) {
        (false, _) => rng.pick(titles).clone(),
        (true, true) => data::TITLE_MALE.to_owned(),
        (true, false) => (*rng.pick(data::TITLES_FEMALE)).to_owned(),
    };
    let (offset, description) = *rng.pick(data::TIMEZONES);
    let street = Street {
        number: rng.range(1, 9_999) as u32,
        name: rng.pick(&nat.streets).clone(),
    };
    let city = rng.pick(&nat.cities).clone();
    let state = rng.pick(&nat.states).clone();
    let postcode = if nat.postcode_text.is_empty() {
        let [low, high] = nat.postcode_range.unwrap_or([10_000, 99_999]);
        Postcode::Number(rng.range(i64::from(low), i64::from(high)) as u32)
    } else {
        let template = rng.pick(&nat.postcode_text).clone();
        Postcode::Text(fill(&mut rng, &template))
    };
    let coordinates = Coordinates {
        latitude: format!("{:.4}", rng.unit() * 180.0 - 90.0),
        longitude: format!("{:.4}", rng.unit() * 360.0 - 180.0),
    };
    let local = |part: &str| {
        let ascii: String = transliterate(part)
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if ascii.is_empty() {
            "user".to_owned()
        } else {
            ascii
        }
    };
    let email = format!("{}.{}@example.com", local(first), local(&last));
    let login = Login {
        uuid: rng.uuid_v4().to_string(),
        username: format!(
            "{}{}{}",
            rng.pick(data::USERNAME_ADJECTIVES),
            rng.pick(data::USERNAME_ANIMALS),
            rng.range(100, 999)
        ),
        password: rng.pick::<&str>(data::PASSWORDS),
        salt: rng.alnum(8),
        md5: rng.hex(32),
        sha1: rng.hex(40),
        sha256: rng.hex(64),
    };
    let (dob, registered) = (rng.date_ms(DOB_MS), rng.date_ms(REGISTERED_MS));
    let now = reference_date();
    let phone_template = rng.pick(&nat.phone).clone();
    let phone = fill(&mut rng, &phone_template);
    let cell_template = rng.pick(&nat.cell).clone();
    let cell = fill(&mut rng, &cell_template);
    let id_value = national_id(&mut rng, nat, male, dob, &last);
    let picture = rng.range(0, if male { 99 } else { 96 });
    let folder = if male { "men" } else { "women" };
    User {
        gender: if male { "male" } else { "female" },
        name: Name {
            title,
            first: first.clone(),
            last,
        },
        location: Location {
            street,
            city,
            state,
            country: nat.country.clone(),
            postcode,
            coordinates,
            timezone: Timezone {
                offset,
                description,
            },
        },
        email,
        login,
        dob: DatedAge {
            date: timestamp(dob),
            age: years_between(dob, now),
        },
        registered: DatedAge {
            date: timestamp(registered),
            age: years_between(registered, now),
        },
        phone,
        cell,
        id: NationalId {
            name: nat.id_name.clone(),
            value: id_value,
        },
        picture: Picture {
            large: format!("https://randomuser.me/api/portraits/{folder}/{picture}.jpg"),
            medium: format!("https://randomuser.me/api/portraits/med/{folder}/{picture}.jpg"),
            thumbnail: format!("https://randomuser.me/api/portraits/thumb/{folder}/{picture}.jpg"),
        },
        nat: nat.code.clone(),
    }
}

/// Breaks a record the way a faulty upstream might: a missing or wrongly typed field.
/// Deterministic per record, so the same records are broken on every fetch.
pub fn corrupt(user: &mut serde_json::Value, seed: &str, page: u32, index: u32) {
    use serde_json::json;
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
    use tributary_actors::model::raw_user::Postcode as RawPostcode;

    fn nat(code: &str) -> &'static Nationality {
        data::nationality(code).unwrap()
    }

    #[test]
    fn same_seed_page_and_index_give_the_same_user() {
        assert_eq!(user("abc", 3, 7, &[]), user("abc", 3, 7, &[]));
        assert_ne!(user("abc", 3, 7, &[]), user("abc", 3, 8, &[]));
        assert_ne!(user("abc", 3, 7, &[]), user("abc", 4, 7, &[]));
        assert_ne!(user("abc", 3, 7, &[]), user("abd", 3, 7, &[]));
    }

    #[test]
    fn users_are_drawn_from_seed_and_page_as_the_real_api_draws_them() {
        assert_eq!(user("s-1", 23, 0, &[]), user("s-12", 3, 0, &[]));
        assert_ne!(user("s", 1, 4, &[]), user("s1", 1, 4, &[]));
        assert_ne!(user("s", 2, 4, &[]), user("s", 1, 4, &[]));
    }

    #[test]
    fn generated_users_of_every_nationality_parse_and_are_unique() {
        let mut ids = std::collections::HashSet::new();
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..4_000 {
            let raw = user("unique", 1, i, &[]).to_json();
            let parsed = RawUser::parse(&raw).unwrap_or_else(|e| panic!("{e}: {raw}"));
            assert!(ids.insert(parsed.login.uuid.into_owned()));
            seen.insert(parsed.nat.into_owned());
        }
        assert_eq!(seen.len(), 21, "{seen:?}");
    }

    #[test]
    fn fields_come_in_the_apis_order() {
        let json = user("order", 1, 0, &[]).to_json();
        let positions: Vec<usize> = FIELDS
            .iter()
            .map(|f| json.find(&format!("\"{f}\":")).unwrap())
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{json}");
        let only = user("order", 1, 0, &[]).to_json_with(|f| f == "nat" || f == "email");
        let value: serde_json::Value = serde_json::from_str(&only).unwrap();
        assert_eq!(value.as_object().unwrap().len(), 2, "{only}");
    }

    #[test]
    fn postcode_types_follow_the_nationality() {
        for (code, text) in [
            ("GB", true),
            ("CA", true),
            ("NL", true),
            ("NO", true),
            ("US", false),
            ("DE", false),
            ("AU", false),
            ("CH", false),
        ] {
            for i in 0..20 {
                let raw = user("pc", 1, i, &[nat(code)]).to_json();
                let parsed = RawUser::parse(&raw).unwrap();
                match parsed.location.postcode {
                    RawPostcode::Text(_) => assert!(text, "{code}: {raw}"),
                    RawPostcode::Number(n) => {
                        assert!(!text, "{code}: {raw}");
                        if code == "AU" {
                            assert!((200..=9_999).contains(&n));
                        } else if code == "CH" {
                            assert!((1_000..=9_999).contains(&n));
                        } else {
                            assert!((10_000..=99_999).contains(&n));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn ids_are_null_where_the_api_has_none() {
        for code in ["NZ", "TR", "IR", "UA"] {
            let u = user("id", 1, 1, &[nat(code)]);
            assert_eq!((u.id.name.as_str(), u.id.value), ("", None), "{code}");
        }
        let u = user("id", 1, 1, &[nat("US")]);
        assert_eq!(u.id.name, "SSN");
        assert!(u.id.value.is_some());
    }

    #[test]
    fn computed_ids_have_their_formats() {
        for i in 0..200 {
            let ca = user("ids", 1, i, &[nat("CA")]);
            let sin = ca.id.value.unwrap();
            let luhn: u32 = sin
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    let p = c.to_digit(10).unwrap() * if i % 2 == 0 { 1 } else { 2 };
                    p / 10 + p % 10
                })
                .sum();
            assert_eq!((sin.len(), luhn % 10), (9, 0), "{sin}");

            let no = user("ids", 1, i, &[nat("NO")]);
            let fnr = no.id.value.unwrap();
            assert_eq!(fnr.len(), 11, "{fnr}");
            let individual = fnr[8..9].parse::<u32>().unwrap();
            assert_eq!(individual % 2 == 1, no.gender == "male", "{fnr}");
            assert_eq!(&fnr[..2], &no.dob.date[8..10], "day of birth");

            let fr = user("ids", 1, i, &[nat("FR")]);
            let insee = fr.id.value.unwrap();
            let (body, key) = insee.split_once(' ').unwrap();
            let key: u64 = key.parse().unwrap();
            assert_eq!(97 - body.parse::<u64>().unwrap() % 97, key, "{insee}");
            assert_eq!(body.starts_with('1'), fr.gender == "male");

            let de = user("ids", 1, i, &[nat("DE")]);
            let svnr = de.id.value.unwrap();
            let parts: Vec<&str> = svnr.split(' ').collect();
            assert_eq!(parts.len(), 4, "{svnr}");
            assert_eq!(parts[2].chars().next(), de.name.last.chars().next());

            let fi = user("ids", 1, i, &[nat("FI")]).id.value.unwrap();
            assert!(fi.starts_with("NaNNA") && fi.ends_with("undefined"), "{fi}");
        }
    }

    #[test]
    fn titles_follow_the_nationality() {
        for i in 0..50 {
            let ch = user("t", 1, i, &[nat("CH")]);
            let expected: &[&str] = if ch.gender == "male" {
                &["Monsieur"]
            } else {
                &["Mademoiselle", "Madame"]
            };
            assert!(
                expected.contains(&ch.name.title.as_str()),
                "{}",
                ch.name.title
            );
            let us = user("t", 1, i, &[nat("US")]);
            let expected: &[&str] = if us.gender == "male" {
                &["Mr"]
            } else {
                &["Miss", "Mrs", "Ms"]
            };
            assert!(expected.contains(&us.name.title.as_str()));
        }
    }

    #[test]
    fn iranian_users_keep_persian_script_and_get_an_ascii_email() {
        let ir = user("fa", 1, 3, &[nat("IR")]);
        assert!(
            ir.name.first.chars().all(|c| !c.is_ascii()),
            "{}",
            ir.name.first
        );
        assert!(ir.email.is_ascii(), "{}", ir.email);
        assert!(!ir.email.starts_with('.'), "{}", ir.email);
    }

    #[test]
    fn transliteration() {
        assert_eq!(transliterate("Barış Toraman"), "baris toraman");
        assert_eq!(transliterate("فاطمه"), "ftmh");
        assert_eq!(transliterate("Jørgensen"), "jorgensen");
        assert_eq!(transliterate("Aßmann"), "assmann");
        assert_eq!(transliterate("Ali\u{307}"), "ali");
        assert_eq!(transliterate("Тарас"), "taras");
    }

    #[test]
    fn templates_fill() {
        let mut rng = Rng::new(&[b"t"]);
        for _ in 0..100 {
            let phone = fill(&mut rng, "(0{66|67}) @##-####");
            assert!(
                phone.starts_with("(066) ") || phone.starts_with("(067) "),
                "{phone}"
            );
            assert!(phone.as_bytes()[6].is_ascii_uppercase());
            let us = fill(&mut rng, "(%##)");
            assert!(us.as_bytes()[1] >= b'2', "{us}");
        }
    }

    #[test]
    fn corrupted_users_are_rejected_with_a_reason() {
        for i in 0..50 {
            let mut u: serde_json::Value =
                serde_json::from_str(&user("bad", 1, i, &[]).to_json()).unwrap();
            corrupt(&mut u, "bad", 1, i);
            assert!(RawUser::parse(&u.to_string()).is_err(), "{u}");
        }
    }
}
