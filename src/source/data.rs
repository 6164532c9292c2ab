//! What the embedded source draws users from: the 21 nationalities of randomuser.me API
//! 1.4, one data file each under `nationalities/` (compiled in, parsed once), and the
//! lists every nationality shares (titles, timezones, usernames, passwords).
//!
//! The formats (phone, cell, national id, postcode and its JSON type, titles) follow the
//! real API's per-nationality rules; the word lists are samples of its data files in
//! their scripts (Persian for IR, Serbian Latin for RS, …). See `nationalities/README.md`.

use serde::Deserialize;
use std::sync::OnceLock;

/// One nationality as the API serves it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nationality {
    /// The `nat` code, upper case.
    pub code: String,
    /// `location.country`.
    pub country: String,
    /// Phone number templates (see [`super::random::fill`]); one is drawn per user.
    pub phone: Vec<String>,
    pub cell: Vec<String>,
    /// `id.name`; empty for nationalities whose `id` is `{"name": "", "value": null}`.
    pub id_name: String,
    /// `id.value` as a template; with neither this nor `id_rule`, the value is null.
    #[serde(default)]
    pub id_value: Option<String>,
    /// An `id.value` computed from the user (birth date, gender, name, check digits).
    #[serde(default)]
    pub id_rule: Option<IdRule>,
    /// A numeric postcode drawn from this range (inclusive); the API's default is
    /// 10000..=99999.
    #[serde(default)]
    pub postcode_range: Option<[u32; 2]>,
    /// A postcode given as a JSON string, from one of these templates; it wins over
    /// `postcode_range`.
    #[serde(default)]
    pub postcode_text: Vec<String>,
    /// Titles replacing the API's common ones (Mr; Miss, Mrs, Ms), as CH does.
    #[serde(default)]
    pub title_male: Vec<String>,
    #[serde(default)]
    pub title_female: Vec<String>,
    pub states: Vec<String>,
    pub cities: Vec<String>,
    pub streets: Vec<String>,
    pub male_first: Vec<String>,
    pub female_first: Vec<String>,
    pub last: Vec<String>,
}

/// National ids the API computes rather than draws from a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdRule {
    /// CA: nine digits that pass the SIN's Luhn check.
    Sin,
    /// US: `DDD-DD-DDDD` without the area, group and serial numbers never issued.
    Ssn,
    /// GB: National Insurance number `XX DD DD DD X` with the letters it allows.
    Nino,
    /// DE: Sozialversicherungsnummer `PP DDMMYY L GGC` from birth date, surname, gender.
    Svnr,
    /// DK: CPR `DDMMYY-DDDD`, the year as JavaScript's `getYear()` gives it.
    Cpr,
    /// FR: INSEE number from gender, birth year and (0-based) month, with its mod-97 key.
    Insee,
    /// NO: fødselsnummer: birth date, individual number (odd for men) and two mod-11
    /// check digits.
    Fodselsnummer,
    /// FI: what API 1.4 really serves — `NaNNA`, two digits, a gender digit and
    /// `undefined` (its HETU code reads a date from an object and gets NaN).
    Hetu,
}

const FILES: [&str; 21] = [
    include_str!("nationalities/au.toml"),
    include_str!("nationalities/br.toml"),
    include_str!("nationalities/ca.toml"),
    include_str!("nationalities/ch.toml"),
    include_str!("nationalities/de.toml"),
    include_str!("nationalities/dk.toml"),
    include_str!("nationalities/es.toml"),
    include_str!("nationalities/fi.toml"),
    include_str!("nationalities/fr.toml"),
    include_str!("nationalities/gb.toml"),
    include_str!("nationalities/ie.toml"),
    include_str!("nationalities/in.toml"),
    include_str!("nationalities/ir.toml"),
    include_str!("nationalities/mx.toml"),
    include_str!("nationalities/nl.toml"),
    include_str!("nationalities/no.toml"),
    include_str!("nationalities/nz.toml"),
    include_str!("nationalities/rs.toml"),
    include_str!("nationalities/tr.toml"),
    include_str!("nationalities/ua.toml"),
    include_str!("nationalities/us.toml"),
];

/// The 21 nationalities, in the API's order (alphabetical by code).
///
/// # Panics
/// If a compiled-in data file does not parse: a build defect, which the unit tests
/// catch before anything ships.
pub fn nationalities() -> &'static [Nationality] {
    static PARSED: OnceLock<Vec<Nationality>> = OnceLock::new();
    PARSED.get_or_init(|| {
        FILES
            .iter()
            .map(|text| {
                toml::from_str(text)
                    .unwrap_or_else(|e| panic!("a compiled-in nationality file is broken: {e}"))
            })
            .collect()
    })
}

/// The nationality of a code, case-insensitively.
pub fn nationality(code: &str) -> Option<&'static Nationality> {
    nationalities()
        .iter()
        .find(|n| n.code.eq_ignore_ascii_case(code))
}

/// Female titles of every nationality without its own (men are all "Mr").
pub const TITLES_FEMALE: &[&str] = &["Miss", "Mrs", "Ms"];
pub const TITLE_MALE: &str = "Mr";

/// `login.username` is one of these, one of the next list and a number 100–999.
pub const USERNAME_ADJECTIVES: &[&str] = &[
    "angry",
    "beautiful",
    "big",
    "black",
    "blue",
    "brown",
    "crazy",
    "golden",
    "green",
    "happy",
    "heavy",
    "lazy",
    "orange",
    "organic",
    "purple",
    "red",
    "sad",
    "silver",
    "small",
    "ticklish",
    "tiny",
    "white",
    "yellow",
];
pub const USERNAME_ANIMALS: &[&str] = &[
    "bear",
    "bird",
    "butterfly",
    "cat",
    "dog",
    "duck",
    "elephant",
    "fish",
    "frog",
    "goose",
    "gorilla",
    "koala",
    "ladybug",
    "leopard",
    "lion",
    "meercat",
    "mouse",
    "ostrich",
    "panda",
    "peacock",
    "rabbit",
    "snake",
    "swan",
    "tiger",
    "wolf",
    "zebra",
];
/// A sample of the most used passwords the API draws from.
pub const PASSWORDS: &[&str] = &[
    "addison", "dragon", "sunshine", "letmein", "monkey", "shadow", "master", "tigger", "qwerty",
    "football", "baseball", "welcome", "trustno1", "iloveyou", "princess", "cowboy", "hunter",
    "michael", "jordan", "pepper",
];

/// The API's timezones: unrelated to the nationality (a Norwegian may be at +6:00).
pub const TIMEZONES: &[(&str, &str)] = &[
    ("-12:00", "Eniwetok, Kwajalein"),
    ("-11:00", "Midway Island, Samoa"),
    ("-10:00", "Hawaii"),
    ("-9:00", "Alaska"),
    ("-8:00", "Pacific Time (US & Canada)"),
    ("-7:00", "Mountain Time (US & Canada)"),
    ("-6:00", "Central Time (US & Canada), Mexico City"),
    ("-5:00", "Eastern Time (US & Canada), Bogota, Lima"),
    ("-4:00", "Atlantic Time (Canada), Caracas, La Paz"),
    ("-3:30", "Newfoundland"),
    ("-3:00", "Brazil, Buenos Aires, Georgetown"),
    ("-2:00", "Mid-Atlantic"),
    ("-1:00", "Azores, Cape Verde Islands"),
    ("0:00", "Western Europe Time, London, Lisbon, Casablanca"),
    ("+1:00", "Brussels, Copenhagen, Madrid, Paris"),
    ("+2:00", "Kaliningrad, South Africa"),
    ("+3:00", "Baghdad, Riyadh, Moscow, St. Petersburg"),
    ("+3:30", "Tehran"),
    ("+4:00", "Abu Dhabi, Muscat, Baku, Tbilisi"),
    ("+4:30", "Kabul"),
    ("+5:00", "Ekaterinburg, Islamabad, Karachi, Tashkent"),
    ("+5:30", "Bombay, Calcutta, Madras, New Delhi"),
    ("+5:45", "Kathmandu"),
    ("+6:00", "Almaty, Dhaka, Colombo"),
    ("+7:00", "Bangkok, Hanoi, Jakarta"),
    ("+8:00", "Beijing, Perth, Singapore, Hong Kong"),
    ("+9:00", "Tokyo, Seoul, Osaka, Sapporo, Yakutsk"),
    ("+9:30", "Adelaide, Darwin"),
    ("+10:00", "Eastern Australia, Guam, Vladivostok"),
    ("+11:00", "Magadan, Solomon Islands, New Caledonia"),
    ("+12:00", "Auckland, Wellington, Fiji, Kamchatka"),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// API 1.4's nationalities, exactly.
    const API_1_4: [&str; 21] = [
        "AU", "BR", "CA", "CH", "DE", "DK", "ES", "FI", "FR", "GB", "IE", "IN", "IR", "MX", "NL",
        "NO", "NZ", "RS", "TR", "UA", "US",
    ];

    #[test]
    fn every_file_parses_and_the_codes_are_api_1_4s() {
        let codes: Vec<&str> = nationalities().iter().map(|n| n.code.as_str()).collect();
        assert_eq!(codes, API_1_4);
        for nat in nationalities() {
            for (list, items) in [
                ("phone", &nat.phone),
                ("cell", &nat.cell),
                ("states", &nat.states),
                ("cities", &nat.cities),
                ("streets", &nat.streets),
                ("male_first", &nat.male_first),
                ("female_first", &nat.female_first),
                ("last", &nat.last),
            ] {
                assert!(!items.is_empty(), "{}: {list} is empty", nat.code);
            }
            assert!(
                nat.id_value.is_none() || nat.id_rule.is_none(),
                "{}: id_value and id_rule both set",
                nat.code
            );
            if let Some([low, high]) = nat.postcode_range {
                assert!(low <= high, "{}: postcode_range", nat.code);
            }
        }
    }

    #[test]
    fn lookup_ignores_case() {
        assert_eq!(nationality("ir").map(|n| n.country.as_str()), Some("Iran"));
        assert!(nationality("XX").is_none());
    }
}
