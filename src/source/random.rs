//! Deterministic randomness for the embedded source: splitmix64 seeded with FNV-1a (the
//! same seed gives the same users on every Rust version and machine), and the templates
//! the API's formats are written in.

use chrono::{DateTime, Utc};

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

    pub(super) fn digit(&mut self) -> char {
        char::from(b'0' + self.below(10) as u8)
    }

    pub(super) fn digits(&mut self, n: usize) -> String {
        (0..n).map(|_| self.digit()).collect()
    }

    pub(super) fn letter(&mut self) -> char {
        char::from(b'A' + self.below(26) as u8)
    }

    pub(super) fn hex(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from_digit(self.below(16) as u32, 16).unwrap_or('0'))
            .collect()
    }

    pub(super) fn alnum(&mut self, len: usize) -> String {
        const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        (0..len).map(|_| char::from(*self.pick(CHARS))).collect()
    }

    pub(super) fn uuid_v4(&mut self) -> uuid::Uuid {
        let bytes = (u128::from(self.next_u64()) << 64 | u128::from(self.next_u64())).to_be_bytes();
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    pub(super) fn date_ms(&mut self, (from, to): (i64, i64)) -> DateTime<Utc> {
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
