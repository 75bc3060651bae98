//! No tender existence oracle: for every tender RPC and page, a tender out
//! of the caller's scope (Shanxi's SX-T1, to the Guangdong platform) and an
//! id that exists nowhere (SX-T9) get the same code and the same message,
//! byte for byte but for the id asked about; so do callers whose role may
//! not act on tenders at all. A platform moving its own tender out of its
//! regions is refused naming the rule, as registering one there is.

use crate::access::{
    Certs, Creds, OTHER_PLATFORM_TOKEN, PLATFORM_TOKEN, PROVIDER_TOKEN, SUPERVISOR_TOKEN, clients, grant, https_get, spawn_secure, terms,
    tls_channel,
};
use crate::helpers::*;
use credit_tender::proto::Bearer;
use credit_tender::proto::v1 as pb;
use pb::assessment_service_client::AssessmentServiceClient;
use pb::tender_service_client::TenderServiceClient;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

const KNOWN: &str = "SX-T1";
const UNKNOWN: &str = "SX-T9";

/// The tender RPCs, by name (ListTenders lists only what the caller may see).
const RPCS: [&str; 10] = [
    "GetTender",
    "GetTender@1",
    "AmendTender",
    "RegisterBid",
    "Assess",
    "AssessTender",
    "WatchTender",
    "CheckDeposit",
    "GrantCommitteeAccess",
    "RevokeCommitteeAccess",
];

type Tenders = TenderServiceClient<InterceptedService<Channel, Creds>>;
type Assessments = AssessmentServiceClient<InterceptedService<Channel, Creds>>;

/// Calls `rpc` on tender `id` (a grant id, for RevokeCommitteeAccess); the code and message.
async fn call(t: &mut Tenders, a: &mut Assessments, rpc: &str, id: &str, code: &str) -> (Code, String) {
    let bidder = || Some(pb::Bidder { credit_codes: vec![code.to_owned()] });
    let expires = chrono::Utc::now() + chrono::Duration::hours(1);
    let tid = id.to_owned();
    let result: Result<(), tonic::Status> = match rpc {
        "GetTender" => t.get_tender(pb::GetTenderRequest { tender_id: tid, version: 0 }).await.map(drop),
        "GetTender@1" => t.get_tender(pb::GetTenderRequest { tender_id: tid, version: 1 }).await.map(drop),
        "AmendTender" => t.amend_tender(pb::AmendTenderRequest { tender_id: tid, terms: Some(terms("440300")) }).await.map(drop),
        "RegisterBid" => t.register_bid(pb::RegisterBidRequest { tender_id: tid, bidder: bidder() }).await.map(drop),
        "Assess" => a.assess(pb::AssessRequest { tender_id: tid, bidder: bidder(), contract_price_fen: None }).await.map(drop),
        "AssessTender" => a.assess_tender(pb::AssessTenderRequest { tender_id: tid, ..Default::default() }).await.map(drop),
        "WatchTender" => a.watch_tender(pb::WatchTenderRequest { tender_id: tid, after: None }).await.map(drop),
        "CheckDeposit" => a
            .check_deposit(pb::CheckDepositRequest {
                tender_id: tid,
                bidder: bidder(),
                offered_fen: 0,
                form: String::new(),
                contract_price_fen: None,
            })
            .await
            .map(drop),
        "GrantCommitteeAccess" => t
            .grant_committee_access(pb::GrantCommitteeAccessRequest {
                tender_id: tid,
                member_ref: "expert-9".into(),
                expires_at: Some(pbjson_types::Timestamp { seconds: expires.timestamp(), nanos: 0 }),
            })
            .await
            .map(drop),
        "RevokeCommitteeAccess" => t.revoke_committee_access(pb::RevokeCommitteeAccessRequest { grant_id: tid }).await.map(drop),
        other => panic!("{other}"),
    };
    match result {
        Ok(()) => (Code::Ok, String::new()),
        Err(s) => (s.code(), s.message().to_owned()),
    }
}

#[tokio::test]
async fn out_of_scope_and_unknown_tenders_get_one_answer_on_every_rpc_and_page() {
    for db in backends().await {
        let certs = Certs::make();
        let server = spawn_secure(&db, &certs).await;
        let ch = tls_channel(server.addr, &certs, None).await;
        let code = crate::assessment::code(1803);
        // Shanxi's tender with a bid and a committee grant; Guangdong's own tender.
        let mut sx = clients(&ch, Some(OTHER_PLATFORM_TOKEN));
        let register = |id: &str, region: &str| pb::RegisterTenderRequest {
            tender_id: id.into(),
            terms: Some(terms(region)),
            policy_id: "national-template".into(),
        };
        sx.tenders.register_tender(register(KNOWN, "140100")).await.unwrap();
        sx.tenders
            .register_bid(pb::RegisterBidRequest { tender_id: KNOWN.into(), bidder: Some(pb::Bidder { credit_codes: vec![code.clone()] }) })
            .await
            .unwrap();
        let expires = chrono::Utc::now() + chrono::Duration::hours(1);
        let sx_grant = sx
            .tenders
            .grant_committee_access(pb::GrantCommitteeAccessRequest {
                tender_id: KNOWN.into(),
                member_ref: "expert-1".into(),
                expires_at: Some(pbjson_types::Timestamp { seconds: expires.timestamp(), nanos: 0 }),
            })
            .await
            .unwrap()
            .into_inner()
            .grant_id;
        let mut gd = clients(&ch, Some(PLATFORM_TOKEN));
        gd.tenders.register_tender(register("GD-T1", "440300")).await.unwrap();
        // A committee member of Guangdong's tender.
        let (_, link) = grant(&ch, "GD-T1", 3600).await;
        let (_, head, _) = https_get(server.addr, &certs, &link, &[]).await;
        let cookie = head.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).expect("a session cookie");
        let cookie = cookie.split_once(':').unwrap().1.trim().split(';').next().unwrap().to_owned();

        let token = |t: Option<&str>| Creds::Token(Bearer::new(t).unwrap());
        let callers: Vec<(&str, Creds, &[&str])> = vec![
            ("the other province's platform", token(Some(PLATFORM_TOKEN)), &RPCS),
            ("a provider", token(Some(PROVIDER_TOKEN)), &RPCS),
            ("a committee member of another tender", Creds::Cookie(cookie.parse().unwrap()), &RPCS),
            ("no one", token(None), &RPCS),
            ("an unknown token", token(Some("ct_nobody")), &RPCS),
            // A supervisor sees every tender; it writes none.
            (
                "a supervisor",
                token(Some(SUPERVISOR_TOKEN)),
                &["AmendTender", "RegisterBid", "GrantCommitteeAccess", "RevokeCommitteeAccess"],
            ),
        ];
        let mut compared = 0;
        for (who, creds, rpcs) in callers {
            let mut t = TenderServiceClient::with_interceptor(ch.clone(), creds.clone());
            let mut a = AssessmentServiceClient::with_interceptor(ch.clone(), creds.clone());
            for rpc in rpcs {
                let (known, unknown) =
                    if *rpc == "RevokeCommitteeAccess" { (sx_grant.as_str(), "0123456789abcdef") } else { (KNOWN, UNKNOWN) };
                let (k_code, k_msg) = call(&mut t, &mut a, rpc, known, &code).await;
                let (u_code, u_msg) = call(&mut t, &mut a, rpc, unknown, &code).await;
                assert_ne!(k_code, Code::Ok, "[{}] {who} {rpc} {known}", db.backend);
                assert_eq!(
                    (k_code, k_msg.replace(known, "…")),
                    (u_code, u_msg.replace(unknown, "…")),
                    "[{}] {who} calling {rpc}: out of scope and unknown differ",
                    db.backend
                );
                compared += 1;
            }
        }
        assert_eq!(compared, 5 * RPCS.len() + 4);

        // Pages: the committee's page and its statements, to each caller who may not see SX-T1.
        let auth = |t: &str| format!("Bearer {t}");
        let (platform, provider) = (auth(PLATFORM_TOKEN), auth(PROVIDER_TOKEN));
        let page_callers: Vec<(&str, Vec<(&str, &str)>)> = vec![
            ("the other province's platform", vec![("authorization", platform.as_str())]),
            ("a provider", vec![("authorization", provider.as_str())]),
            ("a committee member of another tender", vec![("cookie", cookie.as_str())]),
            ("no one", vec![]),
        ];
        for (who, headers) in page_callers {
            for page in ["/tenders/{}", "/api/tenders/{}/statements"] {
                let (k_status, _, k_body) = https_get(server.addr, &certs, &page.replace("{}", KNOWN), &headers).await;
                let (u_status, _, u_body) = https_get(server.addr, &certs, &page.replace("{}", UNKNOWN), &headers).await;
                assert!(k_status >= 400, "[{}] {who} {page}: {k_status}", db.backend);
                assert_eq!(
                    (k_status, k_body.replace(KNOWN, "…")),
                    (u_status, u_body.replace(UNKNOWN, "…")),
                    "[{}] {who} on {page}",
                    db.backend
                );
            }
        }

        // Its own tender, moved out of its regions: refused, naming the rule.
        let status =
            gd.tenders.amend_tender(pb::AmendTenderRequest { tender_id: "GD-T1".into(), terms: Some(terms("140100")) }).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        assert_eq!(
            status.message(),
            "platform 'gd-platform' keeps tenders only in its regions (440000): 'GD-T1' may not be placed in 140100"
        );
        let status = gd.tenders.register_tender(register("GD-T2", "140100")).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied);
        assert!(status.message().ends_with("'GD-T2' may not be placed in 140100"), "{}", status.message());
        // A version its tender does not have: said as such, once the tender is its.
        let status = gd.tenders.get_tender(pb::GetTenderRequest { tender_id: "GD-T1".into(), version: 7 }).await.unwrap_err();
        assert_eq!((status.code(), status.message()), (Code::NotFound, "tender 'GD-T1' has no version 7; its newest is version 1"));
        // Tender ids are one namespace: a taken id is said to be taken, and no more.
        let status = gd.tenders.register_tender(register(KNOWN, "440300")).await.unwrap_err();
        assert_eq!(
            (status.code(), status.message()),
            (Code::AlreadyExists, "tender id 'SX-T1' is taken; register the tender under another id")
        );
        let unchanged = sx.tenders.get_tender(pb::GetTenderRequest { tender_id: KNOWN.into(), version: 0 }).await.unwrap().into_inner();
        assert_eq!((unchanged.version, unchanged.terms.unwrap().region.as_str()), (1, "140100"));
    }
}
