//! Micro benchmarks of the pieces on the hot path: policy evaluation, signing,
//! and a profile cache hit. `cargo bench --bench core`.

use credit_tender::cache::{CacheConfig, CreditCache};
use credit_tender::domain::input::parse_record;
use credit_tender::domain::profile::{Profile, StoredRecord};
use credit_tender::domain::*;
use credit_tender::metrics::Metrics;
use credit_tender::policy::{MemberInput, Policy, evaluate};
use credit_tender::rules::{Rules, SHIPPED_POLICIES};
use credit_tender::signing::Keyring;
use credit_tender::store::{Store, WriteMode};
use criterion::{Criterion, black_box, criterion_group, criterion_main};
use std::sync::Arc;

fn record(line: &str) -> Record {
    let rules = Rules::shipped();
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    parse_record(v.as_object().unwrap(), rules.input()).unwrap().record
}

const CODE: &str = "91440300192317458F";

fn profile() -> Profile {
    let lines = [
        r#"{"type":"evaluation","id":"p","document_ref":"d","credit_code":"91440300192317458F","entity_name":"x","domain":"highway_construction","issuer":"440000","year":2025,"grade":"A","valid_from":"2026-01-01","valid_to":"2027-12-31"}"#,
        r#"{"type":"evaluation","id":"n","document_ref":"d","credit_code":"91440300192317458F","entity_name":"x","domain":"highway_construction","issuer":"national","year":2025,"grade":"AA","valid_from":"2026-01-01","valid_to":"2027-12-31"}"#,
        r#"{"type":"list_entry","id":"l","document_ref":"d","credit_code":"91440300192317458F","entity_name":"x","list":"key_attention","authority":"a","decision_number":"n","listed_on":"2024-01-01","expires_on":"2025-01-01"}"#,
        r#"{"type":"penalty","id":"pe","document_ref":"d","credit_code":"91440300192317458F","entity_name":"x","decision_number":"n","authority":"a","decided_on":"2022-01-01","category":"general","min_publication_end":"2022-04-01","max_publication_end":"2024-12-31"}"#,
    ];
    Profile {
        credit_code: CreditCode::parse_strict(CODE).unwrap(),
        data_version: 1,
        records: lines.iter().map(|l| StoredRecord { record: record(l), recorded_version: 1, digest: String::new() }).collect(),
        events: vec![],
        history: vec![],
    }
}

fn tender(policy: &Policy) -> Tender {
    Tender {
        tender_id: credit_tender::domain::TenderId::parse("T").unwrap(),
        version: 1,
        terms: TenderTerms {
            title: "t".into(),
            domain: CreditDomain::HighwayConstruction,
            region: RegionCode::parse("440300").unwrap(),
            bid_deadline: chrono::DateTime::parse_from_rfc3339("2026-12-15T10:00:00+08:00").unwrap().into(),
            estimated_price: Fen(1_000_000_000),
            nominal_deposit: Fen(10_000_000),
            evaluation_method: EvaluationMethod::ComprehensiveScoring,
        },
        policy_id: policy.id.clone(),
        policy_digest: policy.digest.clone(),
        registered_at: chrono::Utc::now(),
    }
}

fn benches(c: &mut Criterion) {
    let policy = Policy::from_toml(SHIPPED_POLICIES[0].1).unwrap();
    let p = profile();
    let t = tender(&policy);
    let code = p.credit_code.clone();
    c.bench_function("policy evaluate (one firm, 4 records)", |b| {
        b.iter(|| {
            let members = [MemberInput { code: &code, profile: &p }];
            black_box(evaluate(black_box(&t), &policy, &members, None))
        })
    });

    let keys = Keyring::ephemeral();
    let payload = vec![b'x'; 2048];
    c.bench_function("sign a 2 KiB statement (Ed25519, DSSE PAE)", |b| {
        b.iter(|| black_box(keys.sign("application/vnd.credit-tender.assessment.v1+json", payload.clone())))
    });

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = rt.block_on(async {
        let store = Store::open(&format!("sqlite://{}", dir.path().join("b.db").display())).await.unwrap();
        let mut items = p.records.iter().enumerate().map(|(i, s)| (i as u64, Ok(s.record.clone())));
        store.write(&credit_tender::domain::ownership::Writer::operator("bench"), &mut items, WriteMode::Commit).await.unwrap();
        CreditCache::<()>::new(store, CacheConfig::default(), Arc::new(Metrics::new()), |_| 1).await.unwrap()
    });
    let v = rt.block_on(cache.data_version()).unwrap();
    rt.block_on(cache.profile(&code, v)).unwrap();
    c.bench_function("profile cache hit", |b| b.iter(|| rt.block_on(cache.profile(black_box(&code), v)).unwrap()));
}

// criterion_group! makes a pub fn it cannot document.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group!(core, benches);
}
use group::core;
criterion_main!(core);
