//! The shipped demo data (`examples/data/`): about sixty clearly fictional
//! firms (names start with 演示, "demo") with valid credit codes, loaded
//! through the same importer users run.

use crate::config::Rules;
use crate::import::{import_file, FileOutcome, ImportOptions};
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
        let opts = ImportOptions { rules: rules.input(), mode: WriteMode::Commit, document_ref: None, progress: &|_| {} };
        match import_file(store, &path, &opts).await? {
            FileOutcome::Imported(o) | FileOutcome::Checked(o) => version = o.data_version,
            FileOutcome::Rejected(errors) => {
                let list: Vec<String> = errors.iter().map(|e| format!("{name}:{}: {}", e.line, e.violation)).collect();
                anyhow::bail!("shipped demo data is invalid:\n{}", list.join("\n"));
            }
        }
    }
    Ok(version)
}

/// Demo tenders: (id, title, region, policy id, deadline RFC 3339, estimated
/// price fen, nominal deposit fen, bidders as '+'-joined codes, lead first).
pub const TENDERS: &[(&str, &str, &str, &str, &str, i64, i64, &[&str])] = &[
    (
        "DEMO-SX-2026-001",
        "演示 晋中至某地高速公路路面工程施工第3标段",
        "140100",
        "shanxi-highway-construction",
        "2026-12-15T10:00:00+08:00",
        12_000_000_000,
        80_000_000,
        &[
            "91140100MA000101X5",
            "91140100MA000131X6",
            "91320100MA000113X2",
            "91110105MA000125XG",
            "91350100M0001TGQXM",
            "91320100MA000143X3+91440300MA000107XR",
            "91140100MA000102X6",
        ],
    ),
    (
        "DEMO-GD-2026-002",
        "演示 深圳某互通立交改造工程施工",
        "440300",
        "national-template",
        "2026-12-20T10:00:00+08:00",
        5_000_000_000,
        50_000_000,
        &["91440300MA000137XT", "91110105MA000155XH", "91510100MA000119XH", "91510100MA000149XJ", "91510100MA000124X2"],
    ),
    (
        "DEMO-JS-2027-003",
        "演示 南京某国道改扩建工程施工第1标段",
        "320100",
        "national-template",
        "2027-03-10T09:30:00+08:00",
        30_000_000_000,
        200_000_000,
        &["91320100MA000113X2", "91320100MA000143X3", "91140100MA000101X5+91320100MA000143X3"],
    ),
];

/// Registers the demo tenders and their bids (idempotent).
pub async fn register_tenders(store: &Store, policies: &crate::service::PolicySet) -> anyhow::Result<usize> {
    use crate::domain::{CreditDomain, EvaluationMethod, Fen, RegionCode, Tender, TenderTerms};
    for (id, title, region, policy_id, deadline, estimate, deposit, bidders) in TENDERS {
        let policy = policies.current(policy_id).ok_or_else(|| anyhow::anyhow!("demo policy {policy_id} is not loaded"))?;
        let tender = Tender {
            tender_id: crate::domain::TenderId::parse(id).map_err(|e| anyhow::anyhow!("demo tender {id}: {e}"))?,
            version: 1,
            terms: TenderTerms {
                title: (*title).to_owned(),
                domain: CreditDomain::HighwayConstruction,
                region: RegionCode::parse(region)?,
                bid_deadline: chrono::DateTime::parse_from_rfc3339(deadline)?.with_timezone(&chrono::Utc),
                estimated_price: Fen(*estimate),
                nominal_deposit: Fen(*deposit),
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
