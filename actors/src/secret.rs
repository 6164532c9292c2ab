//! Credentials that must never reach a log line or an error message.

use serde::{Deserialize, Deserializer};
use std::fmt;

/// A password or other credential.
///
/// `Debug` and `Display` print `[redacted]`; the value is reachable only through
/// [`Secret::expose`], so a config struct can derive `Debug` and be logged whole.
/// Config loading refuses secrets written in config files: they come from the
/// environment or from a file named by a `*_file` key.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The credential itself, for handing to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// Reads a secret from `file` when set, else takes `inline` (which config loading only
/// accepts from the environment). Trailing newlines are trimmed: secret files written by
/// `echo` or by orchestrators end with one.
///
/// # Errors
/// The file cannot be read; the message names the file, never its content.
pub fn resolve(
    inline: &Option<Secret>,
    file: &Option<std::path::PathBuf>,
) -> std::io::Result<Option<Secret>> {
    match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            Ok(Some(Secret(text.trim_end_matches(['\n', '\r']).to_owned())))
        }
        None => Ok(inline.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn file_wins_over_inline_and_is_trimmed() {
        let dir = std::env::temp_dir().join(format!("tributary-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pw");
        std::fs::write(&path, "from-file\n").unwrap();
        let got = resolve(&Some(Secret::new("inline")), &Some(path)).unwrap();
        assert_eq!(got.unwrap().expose(), "from-file");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = resolve(&None, &Some("/nonexistent/tributary-pw".into())).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/tributary-pw"),
            "{err}"
        );
    }
}
