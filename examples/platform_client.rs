//! What an e-tender platform does with credit-tender: register a tender, record
//! bids as they arrive, assess them, check a deposit at submission, and print
//! the evaluation committee's table.
//!
//! ```sh
//! cargo run --release -- demo &            # a server with the demo firms
//! cargo run --example platform_client      # or: -- http://HOST:PORT [TENDER_ID]
//!
//! # a deployed server: its address, TLS (trusting its CA) and the platform's
//! # bearer token, as every client command of credit-tender reads them
//! CREDIT_TENDER_SERVER=https://credit.example.gov.cn:50051 \
//!   CREDIT_TENDER_CA=ca.pem CREDIT_TENDER_TOKEN=ct_… cargo run --example platform_client
//! ```
//!
//! Each run registers a new tender (`EXAMPLE-` with the time and the process
//! id, or the TENDER_ID given), so it can be run again and again.

use credit_tender::domain::Fen;
use credit_tender::proto::Bearer;
use credit_tender::proto::v1 as pb;
use pb::assessment_service_client::AssessmentServiceClient;
use pb::tender_service_client::TenderServiceClient;

/// Where the run stopped, as a sentence for the operator.
type Failed = String;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("platform_client: {why}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// An empty variable or argument counts as unset, as the CLI reads them.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A refusal from the server as a sentence: its message and what the code means.
fn refused(server: &str, what: &str, e: tonic::Status) -> Failed {
    format!("{server} refused to {what}: {} ({})", e.message(), e.code().description())
}

/// Why `server` could not be reached: each cause once, in its own words
/// (tonic's own error reads "transport error" and nothing more).
fn unreachable(server: &str, e: &tonic::transport::Error) -> Failed {
    let mut causes: Vec<String> = Vec::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !causes.iter().any(|c| c.contains(&text)) {
            causes.push(text);
        }
        source = cause.source();
    }
    if causes.is_empty() {
        causes.push(e.to_string());
    }
    format!("cannot reach {server}: {}", causes.join(": "))
}

async fn run() -> Result<(), Failed> {
    // The server: the first argument, else CREDIT_TENDER_SERVER, else the demo's address.
    let server = std::env::args().nth(1).filter(|s| !s.is_empty()).or_else(|| var("CREDIT_TENDER_SERVER"));
    let server = server.unwrap_or_else(|| "http://127.0.0.1:50051".into());
    let mut endpoint = tonic::transport::Endpoint::from_shared(server.clone())
        .map_err(|_| format!("'{server}' is not a URL: use http://HOST:PORT, or https://HOST:PORT for a server with TLS"))?;
    match var("CREDIT_TENDER_CA") {
        Some(ca) => {
            use rustls_pki_types::CertificateDer;
            use rustls_pki_types::pem::PemObject;
            let pem = std::fs::read(&ca).map_err(|e| format!("CREDIT_TENDER_CA={ca}: cannot read the file: {e}"))?;
            let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem).collect();
            if certs.is_empty() || certs.iter().any(Result::is_err) {
                return Err(format!(
                    "CREDIT_TENDER_CA={ca}: the file is not a PEM certificate: give the certificate of the CA that issued the server's"
                ));
            }
            let tls = tonic::transport::ClientTlsConfig::new().ca_certificate(tonic::transport::Certificate::from_pem(pem));
            endpoint = endpoint.tls_config(tls).map_err(|e| format!("CREDIT_TENDER_CA={ca}: {e}"))?;
        }
        None if server.starts_with("https://") => {
            return Err(format!(
                "{server} is an https:// server: set CREDIT_TENDER_CA to the file with the CA certificate (PEM) it was issued from"
            ));
        }
        None => {}
    }
    let channel = endpoint.connect().await.map_err(|e| unreachable(&server, &e))?;
    let token = Bearer::new(var("CREDIT_TENDER_TOKEN").as_deref())
        .map_err(|_| "CREDIT_TENDER_TOKEN: not a valid token (it must be printable ASCII)".to_owned())?;
    let mut tenders = TenderServiceClient::with_interceptor(channel.clone(), token.clone());
    let mut assessments = AssessmentServiceClient::with_interceptor(channel, token);

    // A tender 30 days from now, in Taiyuan, under the national template.
    let deadline = chrono::Utc::now() + chrono::Duration::days(30);
    let tender_id =
        std::env::args().nth(2).unwrap_or_else(|| format!("EXAMPLE-{}-{}", chrono::Utc::now().format("%Y%m%d%H%M%S"), std::process::id()));
    let tender = tenders
        .register_tender(pb::RegisterTenderRequest {
            tender_id: tender_id.clone(),
            policy_id: "national-template".into(),
            terms: Some(pb::TenderTerms {
                title: "示例 太原某快速路改造工程施工".into(),
                domain: "highway_construction".into(),
                region: "140100".into(),
                bid_deadline: Some(pbjson_types::Timestamp { seconds: deadline.timestamp(), nanos: 0 }),
                estimated_price_fen: 8_000_000_000,
                nominal_deposit_fen: 60_000_000,
                evaluation_method: "comprehensive_scoring".into(),
            }),
        })
        .await
        .map_err(|e| refused(&server, &format!("register tender {tender_id}"), e))?
        .into_inner();
    println!("registered {} v{} bound to policy {} ({})", tender.tender_id, tender.version, tender.policy_id, &tender.policy_digest[..12]);

    // Bids as the platform receives them: three firms and a consortium (demo codes).
    let bids: &[&[&str]] =
        &[&["91140100MA000101X5"], &["91140100MA000131X6"], &["91110105MA000125XG"], &["91320100MA000143X3", "91440300MA000107XR"]];
    for codes in bids {
        let bidder = pb::Bidder { credit_codes: codes.iter().map(|c| c.to_string()).collect() };
        let bid = tenders
            .register_bid(pb::RegisterBidRequest { tender_id: tender_id.clone(), bidder: Some(bidder) })
            .await
            .map_err(|e| refused(&server, &format!("register the bid of {}", codes.join(" + ")), e))?
            .into_inner();
        println!("bid {} from {}", bid.sequence, codes.join(" + "));
    }

    // At submission: does the first bidder's offer cover its deposit?
    let check = assessments
        .check_deposit(pb::CheckDepositRequest {
            tender_id: tender_id.clone(),
            bidder: Some(pb::Bidder { credit_codes: vec![bids[0][0].into()] }),
            offered_fen: 20_000_000,
            form: "cash".into(),
            contract_price_fen: None,
        })
        .await
        .map_err(|e| refused(&server, "check a deposit", e))?
        .into_inner();
    if let Some(c) = check.check {
        println!("deposit check for {}: {}", bids[0][0], c.message);
    }

    // The committee's table.
    let table = assessments
        .assess_tender(pb::AssessTenderRequest { tender_id: tender_id.clone(), ..Default::default() })
        .await
        .map_err(|e| refused(&server, &format!("assess tender {tender_id}"), e))?
        .into_inner();
    println!("\n{:<3} {:<40} {:<5} {:<9} {:>6} {:>16} {:<8}", "#", "bidder", "grade", "eligible", "points", "deposit owed", "keyid");
    for b in &table.bids {
        let (Some(bid), Some(a)) = (&b.bid, &b.assessment) else { continue };
        let (Some(s), Some(e)) = (&a.statement, &a.envelope) else { continue };
        let names: Vec<String> =
            s.members.iter().map(|m| if m.entity_name.is_empty() { m.credit_code.clone() } else { m.entity_name.clone() }).collect();
        println!(
            "{:<3} {:<40} {:<5} {:<9} {:>6.2} {:>16} {:<8}",
            bid.sequence,
            names.join(" + "),
            s.applied_grade,
            match (s.eligible, s.qualified) {
                (false, _) => "excluded",
                (true, false) => "not qual.",
                _ => "yes",
            },
            s.total_points,
            Fen(s.deposit_owed_fen).to_string(),
            &e.signatures[0].keyid[..8]
        );
    }
    Ok(())
}
