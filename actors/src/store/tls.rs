//! TLS to a store, one way for every store: the same two settings in each store's
//! section, `sslmode` and `sslrootcert` (libpq's names), checked here; for PostgreSQL
//! and Cassandra also turned into a rustls client configuration here (Kafka's client,
//! librdkafka, is given the CA file after this module has read it).

use super::{Service, StoreError};
use crate::validate::Findings;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `<store>.sslmode`. libpq's `prefer`, `require` and `verify-ca` are left out: the first
/// two accept any certificate (anyone on the path can read the traffic), the last one a
/// certificate of another host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Plaintext (the local stacks).
    #[default]
    Disable,
    /// TLS; the server's certificate must chain to `sslrootcert` and name the host
    /// connected to (for Cassandra, whose driver connects to the addresses nodes report,
    /// the node's IP address).
    VerifyFull,
}

/// The two settings as a store's section holds them, for validation and set-up.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    /// The section's name (`postgres`, `kafka`, `cassandra`), for messages.
    pub section: &'static str,
    /// `<section>.sslmode`.
    pub sslmode: SslMode,
    /// `<section>.sslrootcert`: the PEM file of the CAs a server's certificate must
    /// chain to.
    pub sslrootcert: Option<&'a PathBuf>,
}

impl Settings<'_> {
    /// A root file without encryption, or encryption without one, is a mistake.
    pub fn validate(&self, f: &mut Findings) {
        let section = self.section;
        match (self.sslmode, self.sslrootcert) {
            (SslMode::VerifyFull, None) => f.invalid(
                "sslrootcert",
                format!(
                    "required when {section}.sslmode is \"verify-full\": the PEM file of \
                     the CA that signed the server's certificate"
                ),
            ),
            (SslMode::Disable, Some(_)) => f.invalid(
                "sslrootcert",
                format!(
                    "set, but {section}.sslmode is \"disable\": the connection would not \
                     be encrypted (set sslmode = \"verify-full\")"
                ),
            ),
            _ => {}
        }
    }

    /// The rustls client configuration: trusting only the authorities in `sslrootcert`
    /// (none with `disable`, where no handshake ever happens).
    ///
    /// # Errors
    /// [`StoreError::Tls`]: `sslrootcert` cannot be read or holds no certificate.
    pub fn client_config(&self, service: Service) -> Result<rustls::ClientConfig, StoreError> {
        let roots = match (self.sslmode, self.sslrootcert) {
            (SslMode::VerifyFull, Some(path)) => self.trusted_roots(service, path)?,
            _ => rustls::RootCertStore::empty(),
        };
        crate::install_tls_provider();
        Ok(rustls::ClientConfig::builder()
            .with_root_certificates(Arc::new(roots))
            .with_no_client_auth())
    }

    /// The authorities of `sslrootcert`, a PEM file of certificates.
    fn trusted_roots(
        &self,
        service: Service,
        path: &Path,
    ) -> Result<rustls::RootCertStore, StoreError> {
        use rustls::pki_types::pem::PemObject;
        let tls_error = |what: String| StoreError::Tls {
            service,
            what: format!("{}.sslrootcert {}: {what}", self.section, path.display()),
        };
        let certificates = rustls::pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| tls_error(format!("cannot read it: {e}")))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| tls_error(format!("not a PEM file of certificates: {e}")))?;
        if certificates.is_empty() {
            return Err(tls_error("holds no certificate".into()));
        }
        let mut roots = rustls::RootCertStore::empty();
        for certificate in certificates {
            roots
                .add(certificate)
                .map_err(|e| tls_error(e.to_string()))?;
        }
        Ok(roots)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(sslmode: SslMode, sslrootcert: Option<&str>) -> Vec<String> {
        let path = sslrootcert.map(PathBuf::from);
        let settings = Settings {
            section: "cassandra",
            sslmode,
            sslrootcert: path.as_ref(),
        };
        let mut f = Findings::default();
        settings.validate(&mut f);
        f.found.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn verify_full_needs_a_ca_and_a_ca_needs_verify_full() {
        assert!(findings(SslMode::Disable, None).is_empty());
        assert!(findings(SslMode::VerifyFull, Some("/ca.pem")).is_empty());
        let missing = findings(SslMode::VerifyFull, None);
        assert_eq!(missing.len(), 1);
        assert!(
            missing[0].starts_with("sslrootcert: required when cassandra.sslmode"),
            "{missing:?}"
        );
        let unused = findings(SslMode::Disable, Some("/ca.pem"));
        assert_eq!(unused.len(), 1);
        assert!(unused[0].contains("would not be encrypted"), "{unused:?}");
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_naming_it() {
        let path = std::env::temp_dir().join(format!("tributary-no-ca-{}.pem", std::process::id()));
        std::fs::write(&path, "not a certificate\n").unwrap();
        let settings = Settings {
            section: "postgres",
            sslmode: SslMode::VerifyFull,
            sslrootcert: Some(&path),
        };
        let error = settings
            .client_config(Service::Postgres)
            .expect_err("no certificate in the file");
        std::fs::remove_file(&path).unwrap();
        let text = error.to_string();
        assert!(
            text.starts_with("postgresql: TLS: postgres.sslrootcert"),
            "{text}"
        );
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("holds no certificate"), "{text}");
    }
}
