//! Start-up validation of configuration values, shared by every component's `Config`.
//!
//! Serde already rejects unknown keys and values of the wrong type; these checks cover
//! what types cannot say (ranges, name syntax). Each finding names the full key, so the
//! user knows exactly which line to fix.

use std::fmt;

/// One configuration value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Dotted path of the key, e.g. `kafka.topics.raw.partitions`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Whether `value` names an http:// or https:// URL.
pub fn is_http_url(value: &str) -> bool {
    value.starts_with("http://") || value.starts_with("https://")
}

/// Why `value` is not a URL tributary may connect to, if it is not: not http(s), or
/// carrying a user name or password (`https://user:pass@host/`). Credentials come only
/// from the environment or files, and a URL is shown as written — `config show`, logs,
/// `/api/status`, the dashboard — so one with credentials is refused, without echoing
/// them.
pub fn http_url_problem(value: &str) -> Option<String> {
    // Credentials first, whatever the scheme: the other message echoes the value.
    let after_scheme = value.split_once("://").map_or("", |(_, rest)| rest);
    let authority = after_scheme
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    if authority.contains('@') {
        return Some(
            "must not carry a user name or password (`user:pass@`): a URL is shown as \
             written in `config show`, logs and status, and credentials come only from the \
             environment or files"
                .to_owned(),
        );
    }
    (!is_http_url(value)).then(|| format!("{value:?} must be an http:// or https:// URL"))
}

/// Collects every finding, so one start-up reports all bad keys at once.
#[derive(Debug, Default)]
pub struct Findings {
    prefix: Vec<String>,
    pub found: Vec<Invalid>,
}

impl Findings {
    /// Runs `f` with `section` appended to the key prefix.
    pub fn section(&mut self, section: &str, f: impl FnOnce(&mut Self)) {
        self.prefix.push(section.to_owned());
        f(self);
        self.prefix.pop();
    }

    pub fn invalid(&mut self, key: &str, message: impl Into<String>) {
        let mut path = self.prefix.join(".");
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
        self.found.push(Invalid {
            key: path,
            message: message.into(),
        });
    }

    /// `value` must lie in `min..=max`.
    pub fn range<T: PartialOrd + fmt::Display>(&mut self, key: &str, value: T, min: T, max: T) {
        if value < min || value > max {
            self.invalid(
                key,
                format!("{value} is out of range: expected {min} to {max}"),
            );
        }
    }

    /// `value` must be an http:// or https:// URL without credentials (the rest is
    /// checked by the client that connects to it, with an error naming the address).
    pub fn http_url(&mut self, key: &str, value: &str) {
        if let Some(problem) = http_url_problem(value) {
            self.invalid(key, problem);
        }
    }

    pub fn non_empty(&mut self, key: &str, value: &str) {
        if value.trim().is_empty() {
            self.invalid(key, "must not be empty");
        }
    }

    /// An unquoted identifier for PostgreSQL schemas and Cassandra keyspaces/tables:
    /// a letter, then letters, digits or `_`, at most `max_len` characters. Lower case
    /// only, because both stores fold unquoted names to lower case.
    pub fn identifier(&mut self, key: &str, value: &str, max_len: usize) {
        let mut chars = value.chars();
        let ok = matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && value.len() <= max_len;
        if !ok {
            self.invalid(
                key,
                format!(
                    "{value:?} is not a valid name: use a lower-case letter, then lower-case \
                     letters, digits or '_', at most {max_len} characters"
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_their_section_path() {
        let mut f = Findings::default();
        f.section("kafka", |f| {
            f.section("topics", |f| f.range("partitions", 0, 1, 10))
        });
        assert_eq!(f.found.len(), 1);
        assert_eq!(f.found[0].key, "kafka.topics.partitions");
        assert!(f.found[0].message.contains("out of range"));
    }

    #[test]
    fn urls_with_credentials_are_refused_without_showing_them() {
        for ok in [
            "http://127.0.0.1:16686",
            "https://jaeger.example/api?x=a@b",
            "http://host/path/@me#frag@x",
        ] {
            assert_eq!(http_url_problem(ok), None, "{ok}");
        }
        for bad in [
            "http://admin:hunter2@jaeger.example:16686",
            "https://hunter2@jaeger.example/",
            "http://u:hunter2@host?q",
            // Not http(s) either: still refused for the credentials, never echoed.
            " https://u:hunter2@host",
            "HTTP://u:hunter2@host",
            "htps://u:hunter2@host",
        ] {
            let problem = http_url_problem(bad).expect(bad);
            assert!(problem.contains("user name or password"), "{problem}");
            assert!(!problem.contains("hunter2"), "{problem}");
        }
        assert!(http_url_problem("ftp://host").unwrap().contains("http://"));
    }

    #[test]
    fn identifiers() {
        let mut f = Findings::default();
        f.identifier("ok", "tributary_test_1", 48);
        assert!(f.found.is_empty());
        for bad in ["", "1abc", "Tributary", "a-b", "a b", &"a".repeat(49)] {
            f.identifier("bad", bad, 48);
        }
        assert_eq!(f.found.len(), 6);
    }
}
