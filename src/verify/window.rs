//! Which runs a check covers: `--since DURATION`, `--runs FROM..TO`, or all retained.

use std::fmt;

/// Which runs a check covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Every run the ledger still holds, and everything no run claims.
    Retained,
    /// Runs scheduled within this long.
    Since(std::time::Duration),
    /// Runs with ids in `from..=to`.
    Runs(i64, i64),
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Window::Retained => f.write_str("everything retained"),
            Window::Since(d) => write!(f, "runs of the last {} s", d.as_secs()),
            Window::Runs(a, b) => write!(f, "runs {a}..{b}"),
        }
    }
}

/// Parses `--since`: a whole number and a unit (`s`, `m`, `h`, `d`), as in `90m` or `7d`.
///
/// # Errors
/// A message naming the accepted form.
pub fn parse_since(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("'{text}' has no unit: write it as 90s, 30m, 12h or 7d"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' does not start with a whole number (as in 30m or 7d)"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("'{text}': unit '{unit}' is not one of s, m, h, d")),
    };
    if number == 0 {
        return Err(format!("'{text}' is an empty window"));
    }
    number
        .checked_mul(seconds)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| format!("'{text}' is too long"))
}

/// Parses `--runs`: `FROM..TO`, both run ids, inclusive.
///
/// # Errors
/// A message naming the accepted form.
pub fn parse_runs(text: &str) -> Result<(i64, i64), String> {
    let (from, to) = text
        .split_once("..")
        .ok_or_else(|| format!("'{text}' is not FROM..TO (as in 100..250)"))?;
    let id = |part: &str| {
        part.trim()
            .parse::<i64>()
            .map_err(|_| format!("'{part}' in '{text}' is not a run id"))
    };
    let (from, to) = (id(from)?, id(to)?);
    if from > to {
        return Err(format!("'{text}': {from} comes after {to}"));
    }
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn since_takes_a_number_and_a_unit() {
        assert_eq!(parse_since("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_since("30m"), Ok(Duration::from_secs(1_800)));
        assert_eq!(parse_since("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_since("7d"), Ok(Duration::from_secs(604_800)));
        for bad in ["7", "d", "7w", "0m", "-1h", "1.5h", "99999999999999999999d"] {
            assert!(parse_since(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn runs_take_an_inclusive_range() {
        assert_eq!(parse_runs("100..250"), Ok((100, 250)));
        assert_eq!(parse_runs("7..7"), Ok((7, 7)));
        for bad in ["100", "250..100", "a..b", "1...3"] {
            assert!(parse_runs(bad).is_err(), "{bad} accepted");
        }
    }
}
