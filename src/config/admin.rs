//! `[admin]`: the admin HTTP server's address and token.

use serde::Deserialize;
use std::path::PathBuf;
use tributary_actors::secret::{self, Secret};
use tributary_actors::validate::Findings;

/// `[admin]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the admin HTTP server; empty turns it off. Port 0 picks a free port
    /// (logged at start). A non-loopback address requires `token`.
    #[serde(default = "default_bind")]
    pub bind: String,
    /// Bearer token required by every route but the probes. A secret: set it with
    /// `TRIBUTARY__ADMIN__TOKEN` or `token_file`, never in a config file.
    #[serde(default)]
    pub token: Option<Secret>,
    /// File holding the token; wins over `token`.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

fn default_bind() -> String {
    "127.0.0.1:9464".into()
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: default_bind(),
            token: None,
            token_file: None,
        }
    }
}

impl Config {
    pub fn validate(&self, f: &mut Findings) {
        if self.bind.is_empty() {
            return;
        }
        match self.bind.parse::<std::net::SocketAddr>() {
            Err(_) => f.invalid(
                "bind",
                format!(
                    "{:?} is not an ip:port address (or empty to turn it off)",
                    self.bind
                ),
            ),
            Ok(address) => {
                let has_token = self.token.as_ref().is_some_and(|t| !t.expose().is_empty())
                    || self.token_file.is_some();
                if !address.ip().is_loopback() && !has_token {
                    f.invalid(
                        "token",
                        format!(
                            "required because admin.bind {} is not a loopback address: set \
                             TRIBUTARY__ADMIN__TOKEN or admin.token_file",
                            self.bind
                        ),
                    );
                }
            }
        }
    }

    /// The token, read from `token_file` when set.
    ///
    /// # Errors
    /// The token file cannot be read.
    pub fn resolve_token(&self) -> std::io::Result<Option<Secret>> {
        Ok(secret::resolve(&self.token, &self.token_file)?.filter(|t| !t.expose().is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_bind_without_token_names_the_key() {
        let mut config = Config {
            bind: "0.0.0.0:9464".into(),
            ..Config::default()
        };
        let mut findings = Findings::default();
        config.validate(&mut findings);
        let text = format!("{findings:?}");
        assert!(text.contains("token"), "{text}");
        config.token = Some(Secret::new("t0ken"));
        let mut findings = Findings::default();
        config.validate(&mut findings);
        assert!(findings.found.is_empty(), "{findings:?}");
    }
}
