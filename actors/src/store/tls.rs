//! TLS to a store, one way for every store: the same settings in each store's section,
//! `sslmode` and `sslrootcert`, and for a server that asks for a client certificate
//! `sslcert` and `sslkey` (libpq's names), checked here; for PostgreSQL and Cassandra
//! also turned into a rustls client configuration here (Kafka's client, librdkafka, is
//! given the files after this module has read them).

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

/// The settings as a store's section holds them, for validation and set-up.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    /// The section's name (`postgres`, `kafka`, `cassandra`), for messages.
    pub section: &'static str,
    /// `<section>.sslmode`.
    pub sslmode: SslMode,
    /// `<section>.sslrootcert`: the PEM file of the CAs a server's certificate must
    /// chain to.
    pub sslrootcert: Option<&'a PathBuf>,
    /// `<section>.sslcert`: the PEM file of the client's certificate (then its
    /// intermediates), presented when the server asks for one.
    pub sslcert: Option<&'a PathBuf>,
    /// `<section>.sslkey`: the PEM file of that certificate's private key.
    pub sslkey: Option<&'a PathBuf>,
}

impl Settings<'_> {
    /// A root file without encryption, encryption without one, a certificate without
    /// its key (or the other way round), or either without encryption, is a mistake.
    pub fn validate(&self, f: &mut Findings) {
        let section = self.section;
        match (self.sslcert, self.sslkey) {
            (Some(_), None) => f.invalid(
                "sslkey",
                format!("required when {section}.sslcert is set: the certificate's private key"),
            ),
            (None, Some(_)) => f.invalid(
                "sslcert",
                format!("required when {section}.sslkey is set: the client certificate"),
            ),
            (Some(_), Some(_)) if self.sslmode == SslMode::Disable => f.invalid(
                "sslcert",
                format!(
                    "set, but {section}.sslmode is \"disable\": no certificate is presented \
                     without TLS (set sslmode = \"verify-full\")"
                ),
            ),
            _ => {}
        }
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
    /// (none with `disable`, where no handshake ever happens), presenting `sslcert` with
    /// `sslkey` when both are set.
    ///
    /// # Errors
    /// [`StoreError::Tls`]: a file cannot be read or does not hold what it should, or
    /// the key does not fit the certificate.
    pub fn client_config(&self, service: Service) -> Result<rustls::ClientConfig, StoreError> {
        let roots = match (self.sslmode, self.sslrootcert) {
            (SslMode::VerifyFull, Some(path)) => self.trusted_roots(service, path)?,
            _ => rustls::RootCertStore::empty(),
        };
        crate::install_tls_provider();
        let builder = rustls::ClientConfig::builder().with_root_certificates(Arc::new(roots));
        match self.client_identity() {
            Some((cert, key)) => {
                let chain = self.certificates(service, "sslcert", cert)?;
                let private_key = self.private_key(service, key)?;
                builder
                    .with_client_auth_cert(chain, private_key)
                    .map_err(|e| self.error(service, "sslkey", key, &e.to_string()))
            }
            None => Ok(builder.with_no_client_auth()),
        }
    }

    /// The client's certificate and key files, when it presents them (`verify-full`
    /// with both set); librdkafka is given them after [`Settings::client_config`] has
    /// read them.
    pub fn client_identity(&self) -> Option<(&PathBuf, &PathBuf)> {
        match (self.sslmode, self.sslcert, self.sslkey) {
            (SslMode::VerifyFull, Some(cert), Some(key)) => Some((cert, key)),
            _ => None,
        }
    }

    fn error(&self, service: Service, key: &str, path: &Path, what: &str) -> StoreError {
        StoreError::Tls {
            service,
            what: format!("{}.{key} {}: {what}", self.section, path.display()),
        }
    }

    /// The certificates of a PEM file, at least one.
    fn certificates(
        &self,
        service: Service,
        key: &str,
        path: &Path,
    ) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, StoreError> {
        use rustls::pki_types::pem::PemObject;
        let certificates = rustls::pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| self.error(service, key, path, &format!("cannot read it: {e}")))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                self.error(
                    service,
                    key,
                    path,
                    &format!("not a PEM file of certificates: {e}"),
                )
            })?;
        if certificates.is_empty() {
            return Err(self.error(service, key, path, "holds no certificate"));
        }
        Ok(certificates)
    }

    /// The private key of `sslkey` (PKCS#8, PKCS#1 or SEC1 PEM).
    fn private_key(
        &self,
        service: Service,
        path: &Path,
    ) -> Result<rustls::pki_types::PrivateKeyDer<'static>, StoreError> {
        use rustls::pki_types::pem::{Error, PemObject};
        // The parser's error names what it did not find; it never holds key material.
        rustls::pki_types::PrivateKeyDer::from_pem_file(path).map_err(|e| {
            let what = match e {
                Error::Io(e) => format!("cannot read it: {e}"),
                e => format!("not a PEM private key: {e}"),
            };
            self.error(service, "sslkey", path, &what)
        })
    }

    /// The authorities of `sslrootcert`, a PEM file of certificates.
    fn trusted_roots(
        &self,
        service: Service,
        path: &Path,
    ) -> Result<rustls::RootCertStore, StoreError> {
        let certificates = self.certificates(service, "sslrootcert", path)?;
        let tls_error = |what: String| self.error(service, "sslrootcert", path, &what);
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
            sslcert: None,
            sslkey: None,
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
            sslcert: None,
            sslkey: None,
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

    #[test]
    fn a_client_certificate_needs_its_key_and_tls() {
        let file = PathBuf::from("/x.pem");
        let found = |sslmode, sslcert, sslkey| {
            let settings = Settings {
                section: "kafka",
                sslmode,
                sslrootcert: (sslmode == SslMode::VerifyFull).then_some(&file),
                sslcert,
                sslkey,
            };
            let mut f = Findings::default();
            settings.validate(&mut f);
            f.found.iter().map(ToString::to_string).collect::<Vec<_>>()
        };
        assert!(found(SslMode::VerifyFull, Some(&file), Some(&file)).is_empty());
        assert!(found(SslMode::VerifyFull, None, None).is_empty());
        let no_key = found(SslMode::VerifyFull, Some(&file), None);
        assert!(
            no_key[0].starts_with("sslkey: required when kafka.sslcert"),
            "{no_key:?}"
        );
        let no_cert = found(SslMode::VerifyFull, None, Some(&file));
        assert!(
            no_cert[0].starts_with("sslcert: required when kafka.sslkey"),
            "{no_cert:?}"
        );
        let plaintext = found(SslMode::Disable, Some(&file), Some(&file));
        assert!(
            plaintext[0].contains("no certificate is presented"),
            "{plaintext:?}"
        );
    }
}
