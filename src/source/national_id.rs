//! `id.name` and `id.value` of a generated user: each nationality's national number,
//! from a template or, where the number has check digits, a rule.

use super::data::{IdRule, Nationality};
use super::random::{Rng, fill};
use chrono::{DateTime, Datelike, Utc};
use std::fmt::Write as _;

/// `id.value`: from the nationality's template or rule; `None` (JSON null) without.
pub(super) fn national_id(
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
