//! Fuzzing on stable Rust: generated inputs to every decoder, asserting no
//! panic and a named error. `FUZZ_CASES` sets the cases per decoder (256 by
//! default, what CI runs); the long run in BENCHMARKS.md is
//! `FUZZ_CASES=200000 cargo test --release --lib fuzz` (1,000,000 inputs over
//! the five decoders; the log's checkpoint and proof checks run as well).

use crate::access::principals::Principals;
use crate::config::Rules;
use crate::policy::Policy;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn cases() -> u32 {
    std::env::var("FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

const FIELDS: &[&str] = &[
    "type", "id", "document_ref", "credit_code", "entity_name", "domain", "issuer", "year", "grade", "score", "valid_from",
    "valid_to", "evaluation_kind", "region", "status", "list", "authority", "decision_number", "listed_on", "expires_on",
    "decided_on", "category", "min_publication_end", "max_publication_end", "commitment_kind", "made_on", "breached_on",
    "target_id", "event", "effective_on",
];

/// Plausible and implausible values: the words the vocabularies know, dates,
/// codes, numbers, and arbitrary text and JSON.
fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec![
            "evaluation", "list_entry", "penalty", "commitment", "event", "AA", "A", "D", "national", "440000", "440300",
            "highway_construction", "transport_blacklist", "repair", "objection_upheld", "general", "2026-03-01", "2027-02-28",
            "91440300192317458F", "dynamic_d", "breached", "", " ", "NaN", "1e309", "2026-02-30", "0000-01-01",
        ])
        .prop_map(|s| json!(s)),
        any::<String>().prop_map(Value::String),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)),
        Just(Value::Null),
        Just(json!([1, "x"])),
        Just(json!({"nested": true})),
    ]
}

fn record_object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec((prop::sample::select(FIELDS.to_vec()), value()), 0..16)
        .prop_map(|kv| kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// `text` with random edits: characters deleted, duplicated or replaced.
fn mutated(text: &'static str) -> impl Strategy<Value = String> {
    prop::collection::vec((any::<prop::sample::Index>(), 0..3u8, any::<char>()), 1..6).prop_map(move |edits| {
        let mut chars: Vec<char> = text.chars().collect();
        for (at, op, c) in edits {
            if chars.is_empty() {
                break;
            }
            let i = at.index(chars.len());
            match op {
                0 => {
                    chars.remove(i);
                }
                1 => chars.insert(i, chars[i]),
                _ => chars[i] = c,
            }
        }
        chars.into_iter().collect()
    })
}

fn named(errors: &[crate::domain::FieldError]) -> bool {
    !errors.is_empty() && errors.iter().all(|e| !e.field.is_empty() && !e.reason.is_empty())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn fuzz_record_objects(obj in record_object()) {
        let rules = Rules::shipped();
        if let Err(errors) = crate::domain::input::parse_record(&obj, rules.input()) {
            prop_assert!(named(&errors), "{errors:?}");
        }
    }

    #[test]
    fn fuzz_json_lines(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let rules = Rules::shipped();
        if let Some(Err(errors)) = crate::import::parse_json_line(&bytes, rules.input()) {
            prop_assert!(named(&errors), "{errors:?}");
        }
    }

    #[test]
    fn fuzz_csv_tables(rows in prop::collection::vec(prop::collection::vec(any::<String>(), 0..12), 0..4)) {
        let rules = Rules::shipped();
        let mut text = "credit_code,entity_name,domain,issuer,year,grade,score,valid_from,valid_to\n".to_owned();
        for r in rows {
            text.push_str(&r.join(","));
            text.push('\n');
        }
        match crate::import::csv_rows(text.as_bytes(), rules.input()) {
            Ok(rows) => for (_, r) in rows {
                if let Err(errors) = r {
                    prop_assert!(named(&errors), "{errors:?}");
                }
            },
            Err((_, e)) => prop_assert!(!e.field.is_empty()),
        }
    }

    #[test]
    fn fuzz_policy_files(text in mutated(include_str!("../policies/national-template.toml"))) {
        if let Err(e) = Policy::from_toml(&text) {
            prop_assert!(!e.is_empty());
        }
    }

    #[test]
    fn fuzz_principals_files(text in mutated("[limits.platform]\nrequests_per_second = 5\nburst = 5\nconcurrent = 2\n\n[[principal]]\nname = \"p\"\nrole = \"platform\"\nregions = [\"440000\"]\ntoken_sha256 = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\n")) {
        if let Err(e) = Principals::from_toml(&text) {
            prop_assert!(e.starts_with("line ") || e.contains(':'), "{e}");
        }
    }

    #[test]
    fn fuzz_envelopes(payload in prop::collection::vec(any::<u8>(), 0..64), sigs in prop::collection::vec((any::<String>(), prop::collection::vec(any::<u8>(), 0..80)), 0..3)) {
        let env = crate::signing::Envelope { payload_type: "application/vnd.credit-tender.assessment.v1+json".into(), payload, signatures: sigs };
        let keys = crate::signing::Keyring::ephemeral().public_keys();
        for (_, r) in crate::signing::verify_each(&env, &keys, None) {
            prop_assert!(r.is_err(), "a random signature verified");
        }
    }

    #[test]
    fn fuzz_checkpoints(text in prop_oneof![
        mutated("credit-tender.local/statements\n42\nq6F2cJ5u0zVqfO2j7b8FZ5P3nGQqz0dJ1Yx3dQyv1ss=\n\n\u{2014} credit-tender.local/statements AAAAAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0A=\n"),
        any::<String>(),
    ]) {
        let key = crate::log::note::NoteKey { name: "credit-tender.local/statements".into(), public_key: vec![1; 32] };
        prop_assert!(crate::log::verify_checkpoint(&text, &key).is_err(), "a mutated checkpoint verified");
        let _ = crate::log::checkpoint_origin(&text);
    }

    #[test]
    fn fuzz_proofs(index in any::<u64>(), size in any::<u64>(), old in any::<u64>(), proof in prop::collection::vec(any::<[u8; 32]>(), 0..70)) {
        use crate::log::tree;
        let hashes: Vec<tree::Hash> = proof.into_iter().map(tlog_tiles::Hash).collect();
        let root = tree::leaf_hash(b"root");
        prop_assert!(tree::check_inclusion(&hashes, index, size, root, tree::leaf_hash(b"leaf")).is_err());
        prop_assert!(tree::check_consistency(&hashes, old, tree::leaf_hash(b"old"), size, root).is_err() || old == size);
        let _ = tree::inclusion_reads(index, size);
        let _ = tree::consistency_reads(old, size);
    }
}
