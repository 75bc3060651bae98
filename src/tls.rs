//! TLS on the one port: certificates from PEM files, optional client
//! certificates (mutual TLS), reloaded on SIGHUP, and the accept loop that
//! hands each handshaken stream to the same router.
//!
//! ring is the one crypto provider (rustls through tokio-rustls' `ring`
//! feature; nothing pulls in aws-lc-rs).

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};

/// Where the server's certificate, key and (optionally) client CA come from.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain, the server's own certificate first.
    pub cert: PathBuf,
    /// PEM private key matching the first certificate.
    pub key: PathBuf,
    /// Client certificates signed by this CA identify their callers; a
    /// caller may still come without one and use a token.
    pub client_ca: Option<PathBuf>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: cannot read certificates: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not a PEM certificate: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in the file", path.display()));
    }
    Ok(certs)
}

/// Refuses a certificate outside its validity period, with the dates.
fn check_validity(path: &Path, cert: &CertificateDer<'_>) -> Result<(), String> {
    let (_, parsed) =
        x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|e| format!("{}: unreadable certificate: {e}", path.display()))?;
    let validity = parsed.validity();
    let now = x509_parser::time::ASN1Time::now();
    if now < validity.not_before || now > validity.not_after {
        return Err(format!(
            "{}: certificate is not valid now: valid from {} to {}",
            path.display(),
            validity.not_before,
            validity.not_after
        ));
    }
    Ok(())
}

/// Builds the server's TLS configuration, refusing a key that does not
/// match the certificate, an expired or not yet valid certificate, and an
/// unreadable client CA.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, String> {
    let chain = certs(&files.cert)?;
    check_validity(&files.cert, &chain[0])?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| format!("{}: not a PEM private key: {e}", files.key.display()))?;
    let builder = ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions().map_err(|e| format!("TLS: {e}"))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in certs(ca)? {
                roots.add(c).map_err(|e| format!("{}: not a CA certificate: {e}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .allow_unauthenticated()
                .build()
                .map_err(|e| format!("{}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => {
            format!("{}: the key does not match the certificate {}", files.key.display(), files.cert.display())
        }
        e => format!("{}: {e}", files.key.display()),
    })?;
    // gRPC needs h2; the committee's browser may speak either.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The TLS configuration in use; new connections take the newest.
#[derive(Debug)]
pub struct SharedTls {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
}

impl SharedTls {
    /// Reads and checks the files ([`server_config`]); the error is one
    /// sentence naming the file at fault ("PATH: not a PEM private key: …").
    pub fn load(files: TlsFiles) -> Result<Arc<SharedTls>, String> {
        let config = server_config(&files)?;
        Ok(Arc::new(SharedTls { files, current: RwLock::new(config) }))
    }

    /// Reads the files again; on error the configuration in use stays.
    /// Established connections keep the certificate they started with.
    pub fn reload(&self) -> Result<(), String> {
        let config = server_config(&self.files)?;
        *self.current.write().expect("tls lock") = config;
        Ok(())
    }

    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().expect("tls lock").clone())
    }
}

/// The subject of a client certificate, as the principals file names it
/// (RFC 4514 form, e.g. `CN=sx-provider,O=Shanxi`).
pub fn certificate_subject(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    Some(parsed.subject().to_string())
}
