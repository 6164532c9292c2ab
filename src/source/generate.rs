//! Deterministic randomuser.me-compatible users: the same seed, page and position always
//! give the same user, `login.uuid` included, so a refetched page stages nothing new.
//!
//! Each nationality's formats follow API 1.4 (`data.rs`); records serialise with the
//! API's field order (gender, name, location, email, login, dob, registered, phone,
//! cell, id, picture, nat).

use super::data::{self, IdRule, Nationality};
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

    /// A number in `low..=high`.
    pub fn range(&mut self, low: i64, high: i64) -> i64 {
        let span = high.saturating_sub(low).saturating_add(1).max(1);
        low + self.below(span.unsigned_abs()) as i64
    }

    /// A uniform number in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1_u64 << 53) as f64
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    fn digit(&mut self) -> char {
        char::from(b'0' + self.below(10) as u8)
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n).map(|_| self.digit()).collect()
    }

    fn letter(&mut self) -> char {
        char::from(b'A' + self.below(26) as u8)
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

    fn uuid_v4(&mut self) -> uuid::Uuid {
        let bytes = (u128::from(self.next_u64()) << 64 | u128::from(self.next_u64())).to_be_bytes();
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    fn date_ms(&mut self, (from, to): (i64, i64)) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.range(from, to)).unwrap_or_default()
    }
}

/// The letters of a British postcode's unit (its last two characters).
const GB_UNIT_LETTERS: &[u8] = b"ABDEFGHJLNPQRSTUWXYZ";

/// Fills a template: `#` a digit, `%` a digit 2–9, `@` a letter A–Z, `&` a letter of a
/// British postcode unit, `{a|b|c}` one of the alternatives; anything else is kept.
pub fn fill(rng: &mut Rng, template: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        match c {
            '#' => out.push(rng.digit()),
            '%' => out.push(char::from(b'2' + rng.below(8) as u8)),
            '@' => out.push(rng.letter()),
            '&' => out.push(char::from(*rng.pick(GB_UNIT_LETTERS))),
            '{' => {
                let group: String = chars.by_ref().take_while(|&c| c != '}').collect();
                let choices: Vec<&str> = group.split('|').collect();
                out.push_str(rng.pick::<&str>(&choices));
            }
            other => out.push(other),
        }
    }
    out
}

/// An ASCII form of a name for the e-mail address, as the API's transliteration does:
/// diacritics dropped (`Barış` → `baris`), Cyrillic and Persian romanised (Persian to
/// its consonants: `فاطمه` → `ftmh`), anything else left out.
pub fn transliterate(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_ascii() {
            out.push(c);
            continue;
        }
        let ascii: &str = match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
            'æ' => "ae",
            'ç' | 'ć' | 'č' => "c",
            'ď' | 'đ' | 'ð' => "d",
            'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' => "e",
            'ğ' => "g",
            'ì' | 'í' | 'î' | 'ï' | 'ı' | 'ī' | 'į' => "i",
            'ł' => "l",
            'ñ' | 'ń' | 'ň' => "n",
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => "o",
            'ř' => "r",
            'ß' => "ss",
            'ś' | 'ş' | 'š' => "s",
            'ť' => "t",
            'þ' => "th",
            'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' => "u",
            'ý' | 'ÿ' => "y",
            'ź' | 'ż' | 'ž' => "z",
            '’' => "'",
            // Cyrillic (Serbian and Ukrainian letters included).
            'а' => "a",
            'б' => "b",
            'в' => "v",
            'г' | 'ґ' => "g",
            'д' => "d",
            'ђ' => "dj",
            'е' => "e",
            'є' => "ie",
            'ж' => "zh",
            'з' => "z",
            'и' | 'і' => "i",
            'ї' => "yi",
            'й' | 'ј' => "j",
            'к' => "k",
            'л' => "l",
            'љ' => "lj",
            'м' => "m",
            'н' => "n",
            'њ' => "nj",
            'о' => "o",
            'п' => "p",
            'р' => "r",
            'с' => "s",
            'т' => "t",
            'ћ' => "c",
            'у' => "u",
            'ф' => "f",
            'х' => "h",
            'ц' => "c",
            'ч' => "ch",
            'џ' => "dz",
            'ш' => "sh",
            'щ' => "shch",
            'ю' => "yu",
            'я' => "ya",
            // Persian and Arabic letters: consonants only, as the API's library gives.
            'آ' => "a",
            'ب' => "b",
            'پ' => "p",
            'ت' | 'ط' => "t",
            'ث' | 'س' | 'ص' => "s",
            'ج' => "j",
            'چ' => "ch",
            'ح' | 'ه' | 'ة' => "h",
            'خ' => "kh",
            'د' => "d",
            'ذ' | 'ز' | 'ض' | 'ظ' => "z",
            'ر' => "r",
            'ژ' => "zh",
            'ش' => "sh",
            'غ' => "gh",
            'ف' => "f",
            'ق' => "q",
            'ک' | 'ك' => "k",
            'گ' => "g",
            'ل' => "l",
            'م' => "m",
            'ن' => "n",
            'و' => "v",
            'ی' | 'ي' | 'ى' => "y",
            // Alef, ain, hamza, combining marks (the dot of a lower-cased İ) …: nothing.
            _ => "",
        };
        out.push_str(ascii);
    }
    out
}

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

/// `id.value`: from the nationality's template or rule; `None` (JSON null) without.
fn national_id(
    rng: &mut Rng,
    nat: &Nationality,
    male: bool,
    dob: DateTime<Utc>,
    last: &str,
) -> Option<String> {
    if let Some(template) = &nat.id_value {
        return Some(fill(rng, template));
    }
    let (day, month) = (dob.day(), dob.month());
    // JavaScript's Date.getYear(): years since 1900, unpadded (2000 → "100").
    let js_year = dob.year() - 1900;
    Some(match nat.id_rule? {
        IdRule::Sin => {
            let digits: Vec<u32> = (0..8).map(|_| rng.below(10) as u32).collect();
            let sum: u32 = digits
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let p = d * if i % 2 == 0 { 1 } else { 2 };
                    p / 10 + p % 10
                })
                .sum();
            let check = (10 - sum % 10) % 10;
            digits
                .iter()
                .chain(std::iter::once(&check))
                .map(|d| char::from_digit(*d, 10).unwrap_or('0'))
                .collect()
        }
        IdRule::Ssn => format!(
            "{:03}-{:02}-{:04}",
            // Area 001–899 without 666, group 01–99, serial 0001–9999: issued numbers.
            match rng.range(1, 898) {
                666 => 899,
                area => area,
            },
            rng.range(1, 99),
            rng.range(1, 9_999)
        ),
        IdRule::Nino => {
            const FIRST: &[u8] = b"ABCEGHJKLMNOPRSTWXYZ";
            const SECOND: &[u8] = b"ABCEGHJKLMNPRSTWXYZ";
            format!(
                "{}{} {} {} {} {}",
                char::from(*rng.pick(FIRST)),
                char::from(*rng.pick(SECOND)),
                rng.digits(2),
                rng.digits(2),
                rng.digits(2),
                rng.letter()
            )
        }
        IdRule::Svnr => {
            const AREAS: &[u8] = &[
                2, 3, 4, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 23, 24, 25, 26, 28,
                29, 38, 39, 40, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58,
                59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79,
                80, 81, 82, 89,
            ];
            let serial = if male {
                rng.range(0, 49)
            } else {
                rng.range(50, 99)
            };
            format!(
                "{:02} {day:02}{month:02}{js_year} {} {serial:02}{}",
                rng.pick(AREAS),
                last.chars().next().unwrap_or('X'),
                rng.digit()
            )
        }
        IdRule::Cpr => format!("{day:02}{month:02}{js_year}-{}", rng.digits(4)),
        IdRule::Insee => {
            let body = format!(
                "{}{js_year}{:02}{}",
                if male { 1 } else { 2 },
                month - 1,
                rng.digits(8)
            );
            let key = 97 - body.parse::<u64>().unwrap_or(0) % 97;
            format!("{body} {key:02}")
        }
        IdRule::Fodselsnummer => fodselsnummer(rng, male, dob),
        IdRule::Hetu => format!(
            "NaNNA{}{}undefined",
            rng.digits(2),
            2 * rng.below(5) + u64::from(male)
        ),
    })
}

/// A Norwegian birth number: DDMMYY, an individual number in the range of the birth
/// century whose parity is the gender (odd for men), and two mod-11 check digits; drawn
/// again while a check digit would be 10 (no such number exists).
fn fodselsnummer(rng: &mut Rng, male: bool, dob: DateTime<Utc>) -> String {
    const K1: [u32; 9] = [3, 7, 6, 1, 8, 9, 4, 5, 2];
    const K2: [u32; 10] = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];
    let check = |digits: &[u32], weights: &[u32]| {
        let sum: u32 = digits.iter().zip(weights).map(|(d, w)| d * w).sum();
        (11 - sum % 11) % 11
    };
    let date = format!("{:02}{:02}{:02}", dob.day(), dob.month(), dob.year() % 100);
    let mut number = String::new();
    for _ in 0..1_000 {
        let mut individual = if dob.year() >= 2000 {
            rng.range(500, 999)
        } else {
            rng.range(0, 499)
        };
        if (individual % 2 == 1) != male {
            individual = if individual == 0 { 1 } else { individual - 1 };
        }
        number = format!("{date}{individual:03}");
        let mut digits: Vec<u32> = number.chars().filter_map(|c| c.to_digit(10)).collect();
        let k1 = check(&digits, &K1);
        digits.push(k1);
        let k2 = check(&digits, &K2);
        if k1 < 10 && k2 < 10 {
            let _ = write!(number, "{k1}{k2}");
            return number;
        }
    }
    number
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
