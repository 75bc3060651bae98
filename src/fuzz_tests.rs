//! Fuzzing on stable Rust: generated inputs to every decoder, asserting no
//! panic and a named error; and mutations of genuine signed inputs
//! (envelopes, checkpoints, proofs), asserting that the genuine one verifies
//! and every mutation is refused. A verifier that refused everything, or
//! accepted a mutation, fails here.
//!
//! - `FUZZ_CASES` sets the cases per property (256 by default, what CI
//!   runs; 0 or a non-number is refused). The long run in BENCHMARKS.md is
//!   `FUZZ_CASES=200000 cargo test --release --lib fuzz`.
//! - `FUZZ_SEED` fixes the random seed (`.ci/run` draws one per run and
//!   prints it); without it each run draws its own. Every failure message
//!   names the seed, so `FUZZ_SEED=<seed> cargo test --lib fuzz` replays it.
//! - A failing case is also kept in `proptest-regressions/fuzz_tests.txt`
//!   (proptest's file; commit it) and replayed first by every later run.

use crate::access::principals::Principals;
use crate::policy::Policy;
use crate::rules::Rules;
use crate::tlog::tree;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use serde_json::{Map, Value, json};
use std::sync::OnceLock;

fn cases() -> u32 {
    match std::env::var("FUZZ_CASES") {
        Err(_) => 256,
        Ok(v) => match v.trim().parse::<u32>() {
            Ok(0) => panic!("FUZZ_CASES=0 would fuzz nothing: unset it or give at least 1"),
            Ok(n) => n,
            Err(_) => panic!("FUZZ_CASES='{v}' is not a whole number"),
        },
    }
}

/// This run's seed: `FUZZ_SEED`, or one drawn once per process.
fn seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| match std::env::var("FUZZ_SEED") {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| panic!("FUZZ_SEED='{v}' is not a whole number")),
        Err(_) => {
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new().build_hasher().finish()
        }
    })
}

/// A panic in the code under test fails a property without passing through
/// a `prop_assert!` and its [`replay`] text: this hook names the seed (once
/// per process) for a panic on a fuzz test's thread, then reports the panic
/// as before.
fn seed_on_panic() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let seed = seed();
        let previous = std::panic::take_hook();
        let named = std::sync::atomic::AtomicBool::new(false);
        std::panic::set_hook(Box::new(move |info| {
            let fuzzing = std::thread::current().name().is_some_and(|n| n.contains("fuzz_tests::"));
            if fuzzing && !named.swap(true, std::sync::atomic::Ordering::Relaxed) {
                eprintln!("fuzz: a panic while fuzzing (replay with FUZZ_SEED={seed} cargo test --lib fuzz)");
            }
            previous(info);
        }));
    });
}

/// Appended to every failure: how to replay this run.
fn replay() -> String {
    format!("(replay with FUZZ_SEED={} cargo test --lib fuzz)", seed())
}

fn config() -> ProptestConfig {
    seed_on_panic();
    // Failures are kept in proptest-regressions/ (the default persistence).
    ProptestConfig { cases: cases(), rng_seed: RngSeed::Fixed(seed()), ..ProptestConfig::default() }
}

const FIELDS: &[&str] = &[
    "type",
    "id",
    "document_ref",
    "credit_code",
    "entity_name",
    "domain",
    "issuer",
    "year",
    "grade",
    "score",
    "valid_from",
    "valid_to",
    "evaluation_kind",
    "region",
    "status",
    "list",
    "authority",
    "decision_number",
    "listed_on",
    "expires_on",
    "decided_on",
    "category",
    "min_publication_end",
    "max_publication_end",
    "commitment_kind",
    "made_on",
    "breached_on",
    "target_id",
    "event",
    "effective_on",
];

/// Plausible and implausible values: the words the vocabularies know, dates,
/// codes, numbers, and arbitrary text and JSON.
fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec![
            "evaluation",
            "list_entry",
            "penalty",
            "commitment",
            "event",
            "AA",
            "A",
            "D",
            "national",
            "440000",
            "440300",
            "highway_construction",
            "transport_blacklist",
            "repair",
            "objection_upheld",
            "general",
            "2026-03-01",
            "2027-02-28",
            "91440300192317458F",
            "dynamic_d",
            "breached",
            "",
            " ",
            "NaN",
            "1e309",
            "2026-02-30",
            "0000-01-01",
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

/// A line JSON Lines skips: empty once a byte-order mark and white space
/// are taken off.
fn blank(line: &[u8]) -> bool {
    std::str::from_utf8(line).is_ok_and(|t| t.trim_start_matches('\u{feff}').trim().is_empty())
}

/// One line of a JSON Lines file: a record-like object, another JSON value
/// (an array, a string, a number, null), arbitrary text, or a blank line.
fn json_line() -> impl Strategy<Value = String> {
    prop_oneof![
        record_object().prop_map(|o| Value::Object(o).to_string()),
        value().prop_map(|v| v.to_string()),
        Just("[1]".to_owned()),
        Just("{}".to_owned()),
        Just(r#"{"id": "e1", "credit_code": "91440300192317458F"}"#.to_owned()),
        any::<String>().prop_map(|s| s.replace(['\n', '\r'], " ")),
        prop::sample::select(vec!["", " ", "\t", "\u{feff}", "  \u{3000}"]).prop_map(str::to_owned),
    ]
}

/// Random character edits: (where, what: delete, duplicate or replace, the replacement).
type Edits = Vec<(prop::sample::Index, u8, char)>;

fn edits() -> impl Strategy<Value = Edits> {
    prop::collection::vec((any::<prop::sample::Index>(), 0..3u8, any::<char>()), 1..6)
}

/// `text` with `edits` applied.
fn edit(text: &str, edits: &Edits) -> String {
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
            _ => chars[i] = *c,
        }
    }
    chars.into_iter().collect()
}

fn named(errors: &[crate::domain::FieldError]) -> bool {
    !errors.is_empty() && errors.iter().all(|e| !e.field.is_empty() && !e.reason.is_empty())
}

/// Whether a refusal of a file names where: a TOML position, or a key path
/// (`deposit.share_percent.A: …`) before the reason.
fn names_a_key_or_a_position(e: &str) -> bool {
    if e.starts_with("TOML parse error at line ") {
        return true;
    }
    e.split_once(": ").is_some_and(|(key, reason)| {
        !key.is_empty() && !reason.trim().is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    })
}

const POLICY: &str = include_str!("../policies/national-template.toml");

const PRINCIPALS: &str = "[limits.platform]\nrequests_per_second = 5\nburst = 5\nconcurrent = 2\n\n[[principal]]\nname = \"p\"\nrole = \"platform\"\nregions = [\"440000\"]\ntoken_sha256 = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\n\n[[principal]]\nname = \"q\"\nrole = \"provider\"\nissuers = [\"440000\"]\ncertificate_subject = \"CN=q\"\n";

/// The keys that sign the fuzzed envelopes and checkpoints: made once per run.
fn keys() -> &'static crate::signing::Keyring {
    static KEYS: OnceLock<crate::signing::Keyring> = OnceLock::new();
    KEYS.get_or_init(crate::signing::Keyring::ephemeral)
}

const ORIGIN: &str = "credit-tender.local/statements";

fn log_key() -> crate::tlog::note::NoteKey {
    let (_, info) = keys().log_signer().expect("an ephemeral keyring has a log key");
    crate::tlog::note::NoteKey { name: ORIGIN.into(), public_key: info.public_key.clone() }
}

/// How a genuine envelope is altered.
#[derive(Debug, Clone)]
enum EnvelopeChange {
    /// Flip bit `bit` of the payload byte at an index (or append a byte to an empty payload).
    PayloadBit(prop::sample::Index, u8),
    /// Append a byte to the payload.
    PayloadLonger(u8),
    /// Drop the payload's last byte (or, when empty, add one).
    PayloadShorter,
    /// Append a character to the payload type.
    PayloadType(char),
    /// Flip a bit of the signature.
    SignatureBit(prop::sample::Index, u8),
    /// Cut the signature short by this many bytes (1..=64).
    SignatureShorter(u8),
}

fn envelope_change() -> impl Strategy<Value = EnvelopeChange> {
    prop_oneof![
        (any::<prop::sample::Index>(), 0..8u8).prop_map(|(i, b)| EnvelopeChange::PayloadBit(i, b)),
        any::<u8>().prop_map(EnvelopeChange::PayloadLonger),
        Just(EnvelopeChange::PayloadShorter),
        any::<char>().prop_map(EnvelopeChange::PayloadType),
        (any::<prop::sample::Index>(), 0..8u8).prop_map(|(i, b)| EnvelopeChange::SignatureBit(i, b)),
        (1..=64u8).prop_map(EnvelopeChange::SignatureShorter),
    ]
}

fn change(env: &mut crate::signing::Envelope, how: &EnvelopeChange) {
    let sig = &mut env.signatures[0].1;
    match how {
        EnvelopeChange::PayloadBit(_, b) if env.payload.is_empty() => env.payload.push(1 << b),
        EnvelopeChange::PayloadBit(i, b) => {
            let at = i.index(env.payload.len());
            env.payload[at] ^= 1 << b;
        }
        EnvelopeChange::PayloadLonger(x) => env.payload.push(*x),
        EnvelopeChange::PayloadShorter => {
            if env.payload.pop().is_none() {
                env.payload.push(0);
            }
        }
        EnvelopeChange::PayloadType(c) => env.payload_type.push(*c),
        EnvelopeChange::SignatureBit(i, b) => {
            let at = i.index(sig.len());
            sig[at] ^= 1 << b;
        }
        EnvelopeChange::SignatureShorter(n) => sig.truncate(sig.len().saturating_sub(usize::from(*n))),
    }
}

/// How a genuine proof is altered.
#[derive(Debug, Clone)]
enum ProofChange {
    /// Flip a bit of one of the proof's hashes (or, for an empty proof, add a hash).
    HashBit(prop::sample::Index, u8),
    /// Drop the last hash (or, for an empty proof, add one).
    Shorter,
    /// Add a hash at the end.
    Longer([u8; 32]),
    /// Check against another root (inclusion) or another old root (consistency).
    OtherRoot([u8; 32]),
    /// Check another leaf (inclusion) or another new root (consistency).
    OtherLeaf([u8; 32]),
}

fn proof_change() -> impl Strategy<Value = ProofChange> {
    prop_oneof![
        (any::<prop::sample::Index>(), 0..8u8).prop_map(|(i, b)| ProofChange::HashBit(i, b)),
        Just(ProofChange::Shorter),
        any::<[u8; 32]>().prop_map(ProofChange::Longer),
        any::<[u8; 32]>().prop_map(ProofChange::OtherRoot),
        any::<[u8; 32]>().prop_map(ProofChange::OtherLeaf),
    ]
}

/// `proof` altered as `how` says, with the (root, leaf) to check it against.
fn changed(proof: &[tree::Hash], root: tree::Hash, leaf: tree::Hash, how: &ProofChange) -> (Vec<tree::Hash>, tree::Hash, tree::Hash) {
    let mut p = proof.to_vec();
    let (mut root, mut leaf) = (root, leaf);
    // A replacement equal to the genuine value changes nothing: flip one bit of it.
    let other = |x: &[u8; 32], genuine: tree::Hash| {
        if *x == genuine.0 {
            let mut y = *x;
            y[0] ^= 1;
            tree::Hash(y)
        } else {
            tree::Hash(*x)
        }
    };
    match how {
        ProofChange::HashBit(..) | ProofChange::Shorter if p.is_empty() => p.push(tree::Hash([0; 32])),
        ProofChange::HashBit(i, b) => {
            let at = i.index(p.len());
            p[at].0[0] ^= 1 << b;
        }
        ProofChange::Shorter => {
            p.pop();
        }
        ProofChange::Longer(h) => p.push(tree::Hash(*h)),
        ProofChange::OtherRoot(h) => root = other(h, root),
        ProofChange::OtherLeaf(h) => leaf = other(h, leaf),
    }
    (p, root, leaf)
}

/// The stored hashes of a tree of `n` distinct leaves (salted), as the store keeps them.
fn tree_of(n: u64, salt: u64) -> (Vec<tree::Hash>, tree::Known) {
    let leaves: Vec<tree::Hash> = (0..n).map(|i| tree::leaf_hash(format!("{salt}/{i}").as_bytes())).collect();
    let added = tree::append(0, &leaves, tree::Known::default()).expect("a tree from its first leaf");
    (leaves, tree::Known(added.into_iter().collect()))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_record_objects(obj in record_object()) {
        let rules = Rules::shipped();
        if let Err(errors) = crate::domain::input::parse_record(&obj, rules.input()) {
            prop_assert!(named(&errors), "{errors:?} {}", replay());
        }
    }

    /// Any bytes as one line: a record or a named error, never nothing
    /// unless the line is blank (the one kind of line JSON Lines skips).
    #[test]
    fn fuzz_json_lines(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let rules = Rules::shipped();
        match crate::import::parse_json_line(&bytes, rules.input()) {
            Some(Err(errors)) => prop_assert!(named(&errors), "{errors:?} {}", replay()),
            Some(Ok(_)) => {}
            None => prop_assert!(blank(&bytes), "a line that is not blank was skipped: {:?} {}", String::from_utf8_lossy(&bytes), replay()),
        }
    }

    /// A JSON Lines file of records, objects of any fields, other JSON
    /// values, text and blank lines: every line that is not blank gives
    /// exactly one result, a record or a named error, at its own line
    /// number; no line is skipped, none counted twice.
    #[test]
    fn fuzz_json_lines_files(lines in prop::collection::vec(json_line(), 0..24)) {
        let rules = Rules::shipped();
        let text = lines.join("\n");
        let parsed = crate::import::json_lines(text.as_bytes(), rules.input());
        let parsed = match parsed {
            Ok(p) => p,
            Err(e) => return Err(TestCaseError::fail(format!("a UTF-8 file refused as a whole: {e:?} {}", replay()))),
        };
        let expected: Vec<u64> = (1..).zip(&lines).filter(|(_, l)| !blank(l.as_bytes())).map(|(n, _)| n).collect();
        let got: Vec<u64> = parsed.iter().map(|(n, _)| *n).collect();
        prop_assert_eq!(&got, &expected, "one result per line that is not blank, by line number {}", replay());
        for (n, r) in &parsed {
            if let Err(errors) = r {
                prop_assert!(named(errors), "line {}: {:?} {}", n, errors, replay());
            }
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
                    prop_assert!(named(&errors), "{errors:?} {}", replay());
                }
            },
            Err((_, e)) => prop_assert!(!e.field.is_empty() && !e.reason.is_empty(), "{e:?} {}", replay()),
        }
    }

    /// The shipped policy loads; a mutated one is either refused naming the
    /// key or position, or accepted only within every limit the loader
    /// promises (the cap, the legal deposit and bond ceilings).
    #[test]
    fn fuzz_policy_files(edits in edits()) {
        prop_assert!(Policy::from_toml(POLICY).is_ok(), "the shipped policy is refused {}", replay());
        let text = edit(POLICY, &edits);
        match Policy::from_toml(&text) {
            Err(e) => prop_assert!(names_a_key_or_a_position(&e), "a refusal that names no key: {e} {}", replay()),
            Ok(p) => {
                use crate::domain::Grade;
                use crate::policy::{LEGAL_MAX_DEPOSIT_BP, LEGAL_MAX_PERFORMANCE_BOND_BP};
                for g in Grade::ALL {
                    let (q, e) = (p.qualification_points.get(*g), p.evaluation_points.get(*g));
                    prop_assert!(q.0 >= 0 && e.0 >= 0 && q.0 + e.0 <= p.cap.0, "grade {g}: {q} + {e} above the cap {} accepted {}", p.cap, replay());
                    prop_assert!(p.deposit_share_percent.get(*g) <= 100, "grade {g}: deposit share above 100% accepted {}", replay());
                    prop_assert!(p.bond_rate_bp.get(*g) <= LEGAL_MAX_PERFORMANCE_BOND_BP, "grade {g}: bond above 10% accepted {}", replay());
                }
                prop_assert!(p.max_nominal_deposit_bp <= LEGAL_MAX_DEPOSIT_BP, "a deposit above 2% accepted {}", replay());
                prop_assert!(p.no_benefit_bond_rate_bp <= LEGAL_MAX_PERFORMANCE_BOND_BP, "a bond above 10% accepted {}", replay());
                prop_assert!(p.max_nominal_deposit.0 > 0, "a non-positive deposit ceiling accepted {}", replay());
                prop_assert!(p.reward_extra_evaluation_points.0 >= 0 && p.reward_extra_evaluation_points <= p.cap, "reward points outside 0..=cap accepted {}", replay());
            }
        }
    }

    /// The principals file loads; a mutated one is either refused naming
    /// its line (or the limits key), or accepted with every principal named
    /// once and every limit positive.
    #[test]
    fn fuzz_principals_files(edits in edits()) {
        prop_assert!(Principals::from_toml(PRINCIPALS).is_ok(), "the base file is refused {}", replay());
        let text = edit(PRINCIPALS, &edits);
        match Principals::from_toml(&text) {
            Err(e) => {
                let lines = text.lines().count() + 1;
                let at_line = e.strip_prefix("line ").and_then(|r| r.split_once(": ")).and_then(|(n, why)| {
                    n.parse::<usize>().ok().filter(|n| (1..=lines).contains(n) && !why.trim().is_empty())
                });
                let at_limits = e.starts_with("limits.") && names_a_key_or_a_position(&e);
                prop_assert!(at_line.is_some() || at_limits, "a refusal that names no line: {e} {}", replay());
            }
            Ok(p) => {
                for role in crate::access::Role::ALL {
                    let l = p.limits(*role);
                    prop_assert!(l.requests_per_second > 0 && l.burst > 0 && l.concurrent > 0, "{role}: a zero limit accepted {}", replay());
                }
                prop_assert!(p.len() <= 2, "{} principals from a file of two {}", p.len(), replay());
            }
        }
    }

    /// A genuine envelope verifies; after any change to its payload, payload
    /// type or signature, its signature does not; random extra signatures
    /// never verify.
    #[test]
    fn fuzz_envelopes(
        payload in prop::collection::vec(any::<u8>(), 0..64),
        how in envelope_change(),
        extra in prop::collection::vec((any::<String>(), prop::collection::vec(any::<u8>(), 0..80)), 0..3),
    ) {
        let keyring = keys();
        let public = keyring.public_keys();
        let genuine = keyring.sign("application/vnd.credit-tender.assessment.v1+json", payload);
        let results = crate::signing::verify_each(&genuine, &public, None);
        prop_assert_eq!(results.len(), genuine.signatures.len(), "one result per signature on the genuine envelope {}", replay());
        for (keyid, r) in results {
            prop_assert!(r.is_ok(), "the genuine signature by {keyid} is refused: {r:?} {}", replay());
        }
        let mut env = genuine.clone();
        change(&mut env, &how);
        prop_assert_ne!(&env, &genuine);
        let active = keyring.active_key_id().to_owned();
        env.signatures.extend(extra.into_iter().map(|(k, s)| (if k.is_empty() { active.clone() } else { k }, s)));
        // One result per signature, in order: a verifier that dropped a
        // signature (a short one, say) would let a caller that requires
        // every signature accept an envelope it should refuse.
        let results = crate::signing::verify_each(&env, &public, None);
        prop_assert_eq!(results.len(), env.signatures.len(), "a signature has no result after {:?} {}", how, replay());
        for (i, ((keyid, r), (signed_by, _))) in results.into_iter().zip(&env.signatures).enumerate() {
            prop_assert_eq!(&keyid, signed_by, "result {} is not signature {}'s {}", i, i, replay());
            prop_assert!(r.is_err(), "signature {i} by {keyid} verified after {how:?} {}", replay());
        }
    }

    /// A genuine signed checkpoint verifies and says what was signed; any
    /// edit of it is refused.
    #[test]
    fn fuzz_checkpoints(size in any::<u64>(), root in any::<[u8; 32]>(), edits in edits(), garbage in any::<String>()) {
        let key = log_key();
        let (pair, _) = keys().log_signer().expect("a log key");
        let genuine = crate::tlog::note::sign(&crate::log::checkpoint_text(ORIGIN, size, &tree::Hash(root)), ORIGIN, pair).expect("signs");
        let verified = crate::log::verify_checkpoint(&genuine, &key);
        prop_assert_eq!(verified, Ok(crate::log::VerifiedCheckpoint { origin: ORIGIN.into(), size, root: tree::Hash(root) }), "{}", replay());
        let text = edit(&genuine, &edits);
        if text != genuine {
            prop_assert!(crate::log::verify_checkpoint(&text, &key).is_err(), "a mutated checkpoint verified: {text:?} {}", replay());
        }
        prop_assert!(crate::log::verify_checkpoint(&garbage, &key).is_err(), "{}", replay());
        let _ = crate::log::checkpoint_origin(&text);
    }

    /// In a real tree, the genuine inclusion and consistency proofs check
    /// and any change to a proof, its root or its leaf is refused; random
    /// proofs and sizes never check and never panic.
    #[test]
    fn fuzz_proofs(
        n in 1..=96u64,
        at in any::<prop::sample::Index>(),
        old_at in any::<prop::sample::Index>(),
        salt in any::<u64>(),
        how in proof_change(),
        index in any::<u64>(),
        size in any::<u64>(),
        old in any::<u64>(),
        random in prop::collection::vec(any::<[u8; 32]>(), 0..70),
    ) {
        let (leaves, known) = tree_of(n, salt);
        let root = tree::root(n, &known).expect("a root");
        let m = at.index(n as usize) as u64;
        let proof = tree::inclusion(m, n, &known).expect("an inclusion proof");
        prop_assert!(tree::check_inclusion(&proof, m, n, root, leaves[m as usize]).is_ok(), "genuine inclusion of {m} in {n} refused {}", replay());
        let (p, r, l) = changed(&proof, root, leaves[m as usize], &how);
        prop_assert!(tree::check_inclusion(&p, m, n, r, l).is_err(), "inclusion of {m} in {n} checked after {how:?} {}", replay());

        let o = old_at.index(n as usize) as u64 + 1;
        let old_root = tree::root(o, &known).expect("an old root");
        let proof = tree::consistency(o, n, &known).expect("a consistency proof");
        prop_assert!(tree::check_consistency(&proof, o, old_root, n, root).is_ok(), "genuine consistency {o} -> {n} refused {}", replay());
        let (p, old_r, new_r) = changed(&proof, old_root, root, &how);
        prop_assert!(tree::check_consistency(&p, o, old_r, n, new_r).is_err(), "consistency {o} -> {n} checked after {how:?} {}", replay());

        let hashes: Vec<tree::Hash> = random.into_iter().map(tree::Hash).collect();
        prop_assert!(tree::check_inclusion(&hashes, index, size, root, tree::leaf_hash(b"not a leaf")).is_err(), "{}", replay());
        let _ = tree::check_consistency(&hashes, old, tree::leaf_hash(b"old"), size, root);
        let _ = tree::inclusion_reads(index, size);
        let _ = tree::consistency_reads(old, size);
    }
}
