//! Small gRPC clients: `assess` and `keys`, writing the JSON forms `verify` reads.

use super::log::{Connect, connect};
use super::out::{outln, outp};
use super::{Exit, render};
use crate::proto::v1 as pb;
use clap::Args;

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

#[derive(Debug, Args)]
pub struct AssessArgs {
    #[command(flatten)]
    pub connect: Connect,
    #[arg(long)]
    pub tender: String,
    /// The bidder's credit code; a consortium as CODE,CODE,… with the lead first.
    #[arg(long)]
    pub bidder: String,
    /// The contract price in fen, to have the performance bond given in fen too.
    #[arg(long, value_name = "FEN")]
    pub contract_price_fen: Option<i64>,
    /// Print the DSSE envelope as JSON (what `verify` reads), with the
    /// statement's `logIndex` beside its fields, instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(flatten)]
    pub connect: Connect,
}

/// Asks for one bidder's statement and prints it: as text with its log
/// index, or (`--json`) as the envelope with `logIndex` added, which
/// `verify` reads and `proof --index` takes.
pub async fn assess(args: &AssessArgs) -> Result<(), Exit> {
    let server = args.connect.server.as_str();
    let mut client = pb::assessment_service_client::AssessmentServiceClient::new(connect(&args.connect).await?);
    let bidder = pb::Bidder { credit_codes: args.bidder.split(',').map(|s| s.trim().to_owned()).collect() };
    let r = client
        .assess(pb::AssessRequest { tender_id: args.tender.clone(), bidder: Some(bidder), contract_price_fen: args.contract_price_fen })
        .await
        .map_err(|e| Exit::from_status(server, &e))?
        .into_inner();
    if args.json {
        let env = r.envelope.ok_or_else(|| Exit::software("the server sent no envelope"))?;
        let mut json = serde_json::to_value(&env).expect("envelopes serialise");
        if let (Some(index), Some(fields)) = (r.log_index, json.as_object_mut()) {
            // As a string, the JSON mapping's form for a 64-bit integer.
            fields.insert("logIndex".into(), serde_json::Value::String(index.to_string()));
        }
        outln!("{}", serde_json::to_string_pretty(&json).expect("envelopes serialise"));
    } else if let Some(s) = &r.statement {
        outp!("{}", render::assessment(s));
        match r.log_index {
            Some(index) => outln!("Log index   {index} (credit-tender proof --index {index})"),
            None => outln!("Log index   none (the server keeps no transparency log)"),
        }
    }
    Ok(())
}

pub async fn keys(args: &KeysArgs) -> Result<(), Exit> {
    let mut client = pb::key_service_client::KeyServiceClient::new(connect(&args.connect).await?);
    let r = client.list_keys(pb::ListKeysRequest {}).await.map_err(|e| Exit::from_status(&args.connect.server, &e))?.into_inner();
    outln!("{}", serde_json::to_string_pretty(&r).expect("keys serialise"));
    Ok(())
}
