//! What an e-tender platform does with credit-tender: register a tender, record
//! bids as they arrive, assess them, check a deposit at submission, and print
//! the evaluation committee's table.
//!
//! ```sh
//! cargo run --release -- demo &            # a server with the demo firms
//! cargo run --example platform_client      # or: -- http://HOST:PORT [TENDER_ID]
//!
//! # a deployed server: TLS (trusting its CA) and the platform's bearer token
//! CREDIT_TENDER_CA=ca.pem CREDIT_TENDER_TOKEN=ct_… \
//!   cargo run --example platform_client -- https://credit.example.gov.cn:50051
//! ```
//!
//! Each run registers a new tender (`EXAMPLE-` with the time and the process
//! id, or the TENDER_ID given), so it can be run again and again.

use credit_tender::domain::Fen;
use credit_tender::proto::Bearer;
use credit_tender::proto::v1 as pb;
use pb::assessment_service_client::AssessmentServiceClient;
use pb::tender_service_client::TenderServiceClient;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = std::env::args().nth(1).unwrap_or_else(|| "http://127.0.0.1:50051".into());
    let mut endpoint = tonic::transport::Endpoint::from_shared(server.clone())?;
    // An empty variable counts as unset, as the CLI reads it.
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(ca) = var("CREDIT_TENDER_CA") {
        let ca = tonic::transport::Certificate::from_pem(std::fs::read(ca)?);
        endpoint = endpoint.tls_config(tonic::transport::ClientTlsConfig::new().ca_certificate(ca))?;
    }
    let channel = endpoint.connect().await?;
    let token = Bearer::new(var("CREDIT_TENDER_TOKEN").as_deref())?;
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
        .await?
        .into_inner();
    println!("registered {} v{} bound to policy {} ({})", tender.tender_id, tender.version, tender.policy_id, &tender.policy_digest[..12]);

    // Bids as the platform receives them: three firms and a consortium (demo codes).
    let bids: &[&[&str]] =
        &[&["91140100MA000101X5"], &["91140100MA000131X6"], &["91110105MA000125XG"], &["91320100MA000143X3", "91440300MA000107XR"]];
    for codes in bids {
        let bidder = pb::Bidder { credit_codes: codes.iter().map(|c| c.to_string()).collect() };
        let bid = tenders.register_bid(pb::RegisterBidRequest { tender_id: tender_id.clone(), bidder: Some(bidder) }).await?.into_inner();
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
        .await?
        .into_inner();
    if let Some(c) = check.check {
        println!("deposit check for {}: {}", bids[0][0], c.message);
    }

    // The committee's table.
    let table =
        assessments.assess_tender(pb::AssessTenderRequest { tender_id: tender_id.clone(), ..Default::default() }).await?.into_inner();
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
