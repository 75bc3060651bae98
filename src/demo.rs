//! The shipped demo data (`examples/data/`): about sixty clearly fictional
//! firms (names start with 演示, "demo") with valid credit codes, loaded
//! through the same importer users run.

use crate::import::{FileOutcome, ImportOptions, import_file};
use crate::rules::Rules;
use crate::store::{Store, WriteMode};

/// The demo files, compiled in so that `credit-tender demo` works from anywhere.
pub const FILES: &[(&str, &str)] = &[
    ("demo-evaluations-2025.csv", include_str!("../examples/data/demo-evaluations-2025.csv")),
    ("demo-records.jsonl", include_str!("../examples/data/demo-records.jsonl")),
];

/// Imports the demo files into `store`; returns the data version reached.
pub async fn load(store: &Store, rules: &Rules) -> anyhow::Result<u64> {
    let dir = tempfile::tempdir()?;
    let mut version = store.current_version().await?;
    for (name, text) in FILES {
        let path = dir.path().join(name);
        std::fs::write(&path, text)?;
        let opts = ImportOptions { rules: rules.input(), mode: WriteMode::Commit, document_ref: None, encoding: None, progress: &|_| {} };
        match import_file(store, &path, &opts).await? {
            FileOutcome::Imported(o) | FileOutcome::Checked(o) => version = o.data_version,
            FileOutcome::Rejected(errors) => {
                let list: Vec<String> = errors.iter().map(|e| format!("{name}:{}: {}", e.line, e.violation)).collect();
                anyhow::bail!("shipped demo data is invalid:\n{}", list.join("\n"));
            }
            FileOutcome::Unreadable(why) => anyhow::bail!("{name}: cannot read the demo data just written: {why}"),
        }
    }
    Ok(version)
}

/// A demo tender as written below.
pub struct DemoTender {
    /// The tender id, `DEMO-…`.
    pub id: &'static str,
    /// The title, marked 演示 (demo).
    pub title: &'static str,
    /// Six-digit GB/T 2260 code of where the works are.
    pub region: &'static str,
    /// A shipped policy's id; its current version is bound at registration.
    pub policy_id: &'static str,
    /// RFC 3339.
    pub deadline: &'static str,
    /// Estimated price in fen.
    pub estimated_price_fen: i64,
    /// Bid deposit before any credit reduction, in fen; at most 2% of the price.
    pub nominal_deposit_fen: i64,
    /// Each bidder's key: codes joined by '+', lead first.
    pub bidders: &'static [&'static str],
}

/// The demo tenders.
pub const TENDERS: &[DemoTender] = &[
    DemoTender {
        id: "DEMO-SX-2026-001",
        title: "演示 晋中至某地高速公路路面工程施工第3标段",
        region: "140100",
        policy_id: "shanxi-highway-construction",
        deadline: "2026-12-15T10:00:00+08:00",
        estimated_price_fen: 12_000_000_000,
        nominal_deposit_fen: 80_000_000,
        bidders: &[
            "91140100MA000101X5",
            "91140100MA000131X6",
            "91320100MA000113X2",
            "91110105MA000125XG",
            "91350100M0001TGQXM",
            "91320100MA000143X3+91440300MA000107XR",
            "91140100MA000102X6",
        ],
    },
    DemoTender {
        id: "DEMO-GD-2026-002",
        title: "演示 深圳某互通立交改造工程施工",
        region: "440300",
        policy_id: "national-template",
        deadline: "2026-12-20T10:00:00+08:00",
        estimated_price_fen: 5_000_000_000,
        nominal_deposit_fen: 50_000_000,
        bidders: &["91440300MA000137XT", "91110105MA000155XH", "91510100MA000119XH", "91510100MA000149XJ", "91510100MA000124X2"],
    },
    DemoTender {
        id: "DEMO-JS-2027-003",
        title: "演示 南京某国道改扩建工程施工第1标段",
        region: "320100",
        policy_id: "national-template",
        deadline: "2027-03-10T09:30:00+08:00",
        estimated_price_fen: 30_000_000_000,
        // 800,000 yuan: the most a bid deposit may be (policies: deposit.max_nominal_fen).
        nominal_deposit_fen: 80_000_000,
        bidders: &["91320100MA000113X2", "91320100MA000143X3", "91140100MA000101X5+91320100MA000143X3"],
    },
];

/// Registers the demo tenders and their bids (idempotent).
pub async fn register_tenders(store: &Store, policies: &crate::service::PolicySet) -> anyhow::Result<usize> {
    use crate::domain::{CreditDomain, EvaluationMethod, Fen, RegionCode, Tender, TenderTerms};
    for DemoTender { id, title, region, policy_id, deadline, estimated_price_fen, nominal_deposit_fen, bidders } in TENDERS {
        let policy = policies.current(policy_id).ok_or_else(|| anyhow::anyhow!("demo policy {policy_id} is not loaded"))?;
        let tender = Tender {
            tender_id: crate::domain::TenderId::parse(id).map_err(|e| anyhow::anyhow!("demo tender {id}: {e}"))?,
            version: 1,
            terms: TenderTerms {
                title: (*title).to_owned(),
                domain: CreditDomain::HighwayConstruction,
                region: RegionCode::parse(region)?,
                bid_deadline: chrono::DateTime::parse_from_rfc3339(deadline)?.with_timezone(&chrono::Utc),
                estimated_price: Fen(*estimated_price_fen),
                nominal_deposit: Fen(*nominal_deposit_fen),
                evaluation_method: EvaluationMethod::ComprehensiveScoring,
            },
            policy_id: policy.id.clone(),
            policy_digest: policy.digest.clone(),
            registered_at: chrono::Utc::now(),
        };
        tender.terms.check().map_err(|e| anyhow::anyhow!("demo tender {id}: {e}"))?;
        crate::service::check_against_policy(&tender.terms, &policy).map_err(|e| anyhow::anyhow!("demo tender {id}: {e}"))?;
        store.insert_tender(&tender).await?;
        for b in bidders.iter() {
            let bidder = crate::domain::Bidder::from_key(b).map_err(|e| anyhow::anyhow!("demo bid {b}: {e}"))?;
            store.register_bid(&tender.tender_id, &bidder).await?;
        }
    }
    Ok(TENDERS.len())
}
