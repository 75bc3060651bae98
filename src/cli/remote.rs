//! How every client command reaches a server: `--server`, `--ca` and
//! `--token`, checked before anything connects, and an unreachable server
//! said in a sentence.

use super::exit::Exit;
use crate::proto::Bearer;
use clap::Args;
use std::path::PathBuf;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// How every client command (`assess`, `keys`, `proof`, `audit`) reaches the
/// server: its URL, the CA to trust for https://, and the caller's token,
/// each also from the environment as the example client reads them.
#[derive(Debug, Args)]
pub struct Connect {
    /// The server to ask: http://HOST:PORT or https://HOST:PORT.
    #[arg(long, default_value = "http://127.0.0.1:50051", env = "CREDIT_TENDER_SERVER", value_parser = server_url)]
    pub server: String,
    /// CA certificate (PEM) to trust, for an https:// server.
    #[arg(long, value_name = "FILE", env = "CREDIT_TENDER_CA")]
    pub ca: Option<PathBuf>,
    /// Bearer token of the caller's principal (a platform's to assess, a
    /// supervisor's to read the log's entries).
    #[arg(long, env = "CREDIT_TENDER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

pub(super) type Ch = InterceptedService<Channel, Bearer>;

pub(super) async fn connect(c: &Connect) -> Result<Ch, Exit> {
    let mut endpoint = tonic::transport::Endpoint::from_shared(c.server.clone())
        .map_err(|_| Exit::usage(format!("--server {}: not a URL: use http://HOST:PORT", c.server)))?;
    if let Some(ca) = &c.ca {
        let pem = std::fs::read(ca).map_err(|e| Exit::reading(ca, &e))?;
        let tls = tonic::transport::ClientTlsConfig::new().ca_certificate(tonic::transport::Certificate::from_pem(pem));
        endpoint = endpoint.tls_config(tls).map_err(|e| Exit::usage(format!("--ca {}: {e}", ca.display())))?;
    }
    let channel = endpoint.connect().await.map_err(|e| unreachable(&c.server, &e))?;
    let bearer = Bearer::new(c.token.as_deref()).map_err(|_| Exit::usage("--token is not a valid header value"))?;
    Ok(InterceptedService::new(channel, bearer))
}

/// Why `server` could not be reached, in a sentence: a certificate for
/// another name says so and what to do, instead of rustls' Debug dump.
pub(super) fn unreachable(server: &str, e: &tonic::transport::Error) -> Exit {
    use tokio_rustls::rustls::{CertificateError, Error as TlsError};
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(cause) = source {
        // tokio-rustls hands rustls' error up inside an io::Error.
        let tls = cause.downcast_ref::<TlsError>().or_else(|| {
            cause.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).and_then(|inner| inner.downcast_ref::<TlsError>())
        });
        if let Some(tls) = tls {
            return Exit::unavailable(match tls {
                TlsError::InvalidCertificate(CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }) => {
                    let host = server_host(server);
                    let names = match tls {
                        TlsError::InvalidCertificate(CertificateError::NotValidForNameContext { presented, .. })
                            if !presented.is_empty() =>
                        {
                            // rustls describes each name as Debug (`DnsName("x")`): keep the name.
                            let names: Vec<&str> = presented
                                .iter()
                                .map(|n| n.split_once('(').map_or(n.as_str(), |(_, rest)| rest.trim_end_matches(')').trim_matches('"')))
                                .collect();
                            format!(" (it is for {})", names.join(", "))
                        }
                        _ => String::new(),
                    };
                    format!(
                        "cannot reach {server}: the server's certificate is not valid for '{host}'{names}. Connect with --server \
                         to a name the certificate lists, or issue the certificate for this name (`credit-tender cert --host {host}`)"
                    )
                }
                TlsError::InvalidCertificate(CertificateError::UnknownIssuer) => {
                    format!("cannot reach {server}: the server's certificate is not signed by the CA given with --ca (or --ca is missing)")
                }
                TlsError::InvalidCertificate(CertificateError::Expired | CertificateError::ExpiredContext { .. }) => {
                    format!("cannot reach {server}: the server's certificate has expired")
                }
                other => format!("cannot reach {server}: TLS failed: {other}"),
            });
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return Exit::unavailable(format!("cannot reach {server}: connection refused (is the server running, on that port?)"));
        }
        source = cause.source();
    }
    let chain =
        std::iter::successors(Some(e as &dyn std::error::Error), |c| c.source()).map(ToString::to_string).collect::<Vec<_>>().join(": ");
    Exit::unavailable(format!("cannot reach {server}: {chain}"))
}

/// The host part of a server URL.
fn server_host(server: &str) -> &str {
    let rest = server.split_once("://").map_or(server, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    }
}

/// `--server`: an http:// or https:// URL with a host and nothing after the
/// port, checked before anything connects (a bare `host:port` is the usual
/// slip, and would otherwise fail later as "unreachable").
pub(crate) fn server_url(s: &str) -> Result<String, String> {
    let shown = crate::domain::text::shown(s);
    let usage = "use http://HOST:PORT, or https://HOST:PORT for a server with TLS";
    let uri: tonic::codegen::http::Uri = s.parse().map_err(|_| format!("'{shown}' is not a URL: {usage}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => return Err(format!("'{shown}' has the scheme '{other}': {usage}")),
        None => return Err(format!("'{shown}' has no scheme: {usage}")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("'{shown}' names no host: {usage}"));
    }
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err(format!("'{shown}' has a path: the gRPC methods' paths are the client's to add; {usage}"));
    }
    Ok(s.trim_end_matches('/').to_owned())
}

/// What every client command checks of `--server` and `--ca` before it
/// connects, so that a slip reads as a sentence saying what to pass (the
/// transport would say "Connecting to HTTPS without TLS enabled" for a
/// missing --ca, and "not signed by the CA" for a file that is no
/// certificate at all).
pub(super) fn check_connect(c: &Connect) -> Result<(), Exit> {
    if c.server.starts_with("https://") && c.ca.is_none() {
        return Err(Exit::usage(format!(
            "--server {}: an https:// server needs the CA certificate it was issued from: pass --ca FILE (or set \
             CREDIT_TENDER_CA=FILE) with that CA's certificate in PEM, as `credit-tender cert` writes it",
            c.server
        )));
    }
    if let Some(ca) = &c.ca {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        let pem = std::fs::read(ca).map_err(|e| Exit::reading(ca, &e))?;
        let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem).collect();
        if certs.is_empty() || certs.iter().any(Result::is_err) {
            return Err(Exit::usage(format!(
                "--ca {}: the file is not a PEM certificate (it has no valid -----BEGIN CERTIFICATE----- block): give the \
                 certificate of the CA that issued the server's certificate",
                ca.display()
            )));
        }
    }
    Ok(())
}
