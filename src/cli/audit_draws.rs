//! What `credit-tender audit` checks of the supervision statements (issue
//! 24): risk classifications, inspection commits and inspection draws parse;
//! every draw names a commit logged before it, with the same parameters;
//! its seed is the root of the first checkpoint published after the commit
//! (the auditor hashes the tree itself and asks the log which checkpoints
//! exist); and its choice follows `sha256-rank/v1` as far as the log holds
//! it (every rank, every count, the order). The population itself is not
//! in the log, only its digest: the whole choice is recomputed by
//! `credit-tender verify-draw` from the DrawInspection answer.
//!
//! A commit without a draw is a warning while it is younger than the grace
//! (`--draw-grace-seconds`), an alarm after: the server completes an
//! orphaned commit at its next start or the next draw with its parameters.

use super::exit::Exit;
use super::remote::Ch;
use super::verify::verified_checkpoint;
use crate::proto::v1 as pb;
use crate::signing::PublicKeyInfo;
use crate::supervision::draw;
use crate::supervision::risk::RiskClass;
use crate::supervision::{CLASSIFICATION_PAYLOAD_TYPE, COMMIT_PAYLOAD_TYPE, DRAW_PAYLOAD_TYPE};
use crate::tlog::tree::{self, Hash, Known};
use std::collections::BTreeMap;

/// Checkpoint sizes asked for at most between a commit and its draw's seed
/// (to show none of them was published): beyond, a warning says so.
const MAX_GAP_LOOKUPS: u64 = 4096;

/// An inspection commit the auditor has seen.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct CommitSeen {
    leaf_hash: String,
    /// Region, domain, date, policy, population and ratios, as one line.
    params: String,
    issued_at: i64,
}

/// The supervision part of the auditor's state.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(super) struct DrawState {
    #[serde(default)]
    commits: BTreeMap<u64, CommitSeen>,
    /// Each draw's leaf: the commit it names and its chosen codes.
    #[serde(default)]
    draws: BTreeMap<u64, (u64, String)>,
    /// Draws read in this run, checked once the tree is verified.
    #[serde(skip)]
    pending: Vec<(u64, pb::InspectionDraw)>,
}

/// What the audit found: alarms fail it, warnings do not.
#[derive(Default)]
pub(super) struct Findings {
    pub alarms: Vec<String>,
    pub warnings: Vec<String>,
}

fn commit_params(
    region: &str,
    domain: &str,
    date: &str,
    policy_digest: &str,
    population_digest: &str,
    size: u32,
    ratios: &[pb::ClassRatio],
) -> String {
    let ratios: Vec<String> = ratios.iter().map(|r| format!("{} {}% of {}", r.risk_class, r.ratio_percent, r.population)).collect();
    format!("{region} {domain} {date} policy {policy_digest} population {population_digest} ({size}) {}", ratios.join(", "))
}

/// Reads one supervision statement: `None` if `env` is not one, else
/// whether it parses (why not).
pub(super) fn statement(index: u64, leaf: &[u8], env: &pb::Envelope, state: &mut DrawState) -> Option<Result<(), String>> {
    let parse = |what: &str| format!("the {what} statement does not parse");
    match env.payload_type.as_str() {
        CLASSIFICATION_PAYLOAD_TYPE => Some(
            serde_json::from_slice::<pb::Classification>(&env.payload)
                .map_err(|e| format!("{}: {e}", parse("risk-classification")))
                .and_then(|c| match RiskClass::parse(&c.risk_class) {
                    Some(_) if !c.credit_code.is_empty() => Ok(()),
                    _ => Err(format!("the classification of '{}' names no known class ('{}')", c.credit_code, c.risk_class)),
                }),
        ),
        COMMIT_PAYLOAD_TYPE => Some(
            serde_json::from_slice::<pb::InspectionCommit>(&env.payload).map_err(|e| format!("{}: {e}", parse("inspection-commit"))).map(
                |c| {
                    let params =
                        commit_params(&c.region, &c.domain, &c.date, &c.policy_digest, &c.population_digest, c.population_size, &c.ratios);
                    let issued_at = c.issued_at.map_or(0, |t| t.seconds);
                    state.commits.insert(index, CommitSeen { leaf_hash: hex::encode(tree::leaf_hash(leaf).0), params, issued_at });
                },
            ),
        ),
        DRAW_PAYLOAD_TYPE => Some(
            serde_json::from_slice::<pb::InspectionDraw>(&env.payload).map_err(|e| format!("{}: {e}", parse("inspection-draw"))).map(|d| {
                let chosen: Vec<&str> = d.chosen.iter().map(|c| c.credit_code.as_str()).collect();
                state.draws.insert(index, (d.commit_log_index, chosen.join(" ")));
                state.pending.push((index, d));
            }),
        ),
        _ => None,
    }
}

/// The root of the first `size` leaves, from the auditor's own hashes.
fn root_at(hashes: &[Hash], size: u64) -> Option<Hash> {
    let known = Known(tree::root_reads(size).into_iter().filter_map(|i| Some((i, *hashes.get(i as usize)?))).collect());
    tree::root(size, &known).ok()
}

/// The draw's choice as far as the log holds it: the procedure, each
/// rank, each class's count at its ratio, the order (class, then rank).
fn choice(d: &pb::InspectionDraw) -> Vec<String> {
    let mut why = Vec::new();
    if d.procedure != draw::PROCEDURE {
        why.push(format!("it follows procedure '{}', not {}", d.procedure, draw::PROCEDURE));
        return why;
    }
    let class_order = |c: &str| RiskClass::ALL.iter().position(|k| k.as_str() == c).unwrap_or(usize::MAX);
    for c in &d.chosen {
        if c.rank != draw::rank(&d.seed, &c.credit_code) {
            why.push(format!("{}'s rank is not SHA-256(seed:code)", c.credit_code));
        }
    }
    let ordered = d.chosen.windows(2).all(|w| (class_order(&w[0].risk_class), &w[0].rank) < (class_order(&w[1].risk_class), &w[1].rank));
    if !ordered {
        why.push("the chosen firms are not by class, then by rank, each once".into());
    }
    for r in &d.ratios {
        let n = d.chosen.iter().filter(|c| c.risk_class == r.risk_class).count() as u32;
        let want = draw::drawn_count(r.population, r.ratio_percent);
        if n != want || r.drawn != n {
            why.push(format!("class {}: {n} chosen (said {}), {}% of {} is {want}", r.risk_class, r.drawn, r.ratio_percent, r.population));
        }
    }
    if d.ratios.iter().map(|r| r.population).sum::<u32>() != d.population_size {
        why.push(format!("the classes' populations do not add up to {}", d.population_size));
    }
    why
}

/// Checks the draws read in this run against their commits, the tree and
/// the log's checkpoints, and reports commits still without a draw.
pub(super) async fn check(
    state: &mut DrawState,
    hashes: &[Hash],
    log: &mut pb::log_service_client::LogServiceClient<Ch>,
    keys: &[PublicKeyInfo],
    grace_seconds: i64,
) -> Result<Findings, Exit> {
    let mut f = Findings::default();
    for (index, d) in std::mem::take(&mut state.pending) {
        for why in check_draw(index, &d, state, hashes, log, keys, &mut f.warnings).await? {
            f.alarms.push(format!("leaf {index} (inspection draw): {why}"));
        }
    }
    let mut by_commit: BTreeMap<u64, Vec<(u64, &String)>> = BTreeMap::new();
    for (draw, (commit, chosen)) in &state.draws {
        by_commit.entry(*commit).or_default().push((*draw, chosen));
    }
    for (commit, draws) in &by_commit {
        if draws.len() > 1 {
            let leaves: Vec<String> = draws.iter().map(|(d, _)| d.to_string()).collect();
            let msg = format!("commit leaf {commit} has {} draws: leaves {}", draws.len(), leaves.join(", "));
            if draws.iter().all(|(_, c)| *c == draws[0].1) {
                f.warnings.push(format!("{msg} (choosing the same firms)"))
            } else {
                f.alarms.push(format!("{msg}, choosing different firms"))
            }
        }
    }
    let now = chrono::Utc::now().timestamp();
    for (index, c) in &state.commits {
        if by_commit.contains_key(index) {
            continue;
        }
        let age = now - c.issued_at;
        let msg = format!("leaf {index}: an inspection commit without a draw, {age} s old ({})", c.params);
        if age < grace_seconds { f.warnings.push(format!("{msg}: its draw may still come")) } else { f.alarms.push(msg) }
    }
    Ok(f)
}

/// One draw's problems (none if it holds).
async fn check_draw(
    index: u64,
    d: &pb::InspectionDraw,
    state: &DrawState,
    hashes: &[Hash],
    log: &mut pb::log_service_client::LogServiceClient<Ch>,
    keys: &[PublicKeyInfo],
    warnings: &mut Vec<String>,
) -> Result<Vec<String>, Exit> {
    let mut why = Vec::new();
    let at = d.commit_log_index;
    match state.commits.get(&at) {
        None => why.push(format!("it names commit leaf {at}, which is not an inspection commit")),
        Some(_) if at >= index => why.push(format!("its commit, leaf {at}, does not precede it")),
        Some(c) => {
            if c.leaf_hash != d.commit_leaf_hash {
                why.push(format!("it names commit leaf hash {}, leaf {at} hashes to {}", d.commit_leaf_hash, c.leaf_hash));
            }
            let params = commit_params(&d.region, &d.domain, &d.date, &d.policy_digest, &d.population_digest, d.population_size, &d.ratios);
            if params != c.params {
                why.push(format!("its parameters ({params}) are not its commit's ({})", c.params));
            }
        }
    }
    let size = d.seed_tree_size;
    if size <= at || size > index {
        why.push(format!("its seed checkpoint of {size} leaves does not hold the commit (leaf {at}) or is not before the draw"));
        return Ok(why);
    }
    let root = root_at(hashes, size).ok_or_else(|| Exit::software(format!("no root of {size} leaves from the kept hashes")))?;
    if hex::encode(root.0) != d.seed {
        why.push(format!("its seed {} is not the root of the tree of {size} leaves ({})", d.seed, hex::encode(root.0)));
    }
    let proof: Option<Vec<Hash>> =
        d.seed_inclusion_proof.iter().map(|h| hex::decode(h).ok().and_then(|b| tree::hash_from_bytes(&b))).collect();
    let leaf = hex::decode(&d.commit_leaf_hash).ok().and_then(|b| tree::hash_from_bytes(&b));
    if !matches!((proof, leaf), (Some(p), Some(l)) if tree::check_inclusion(&p, at, size, root, l).is_ok()) {
        why.push(format!("its inclusion proof does not place the commit at leaf {at} of the seed's tree"));
    }
    match log.get_checkpoint(pb::GetCheckpointRequest { tree_size: Some(size) }).await {
        Ok(cp) => {
            let cp = verified_checkpoint(&cp.get_ref().note, keys, &format!("the checkpoint of {size} leaves"))?;
            if cp.root != root {
                why.push(format!("the log's signed checkpoint of {size} leaves has another root than the entries give"));
            }
        }
        Err(e) if e.code() == tonic::Code::NotFound => why.push(format!("the log published no checkpoint of {size} leaves, its seed")),
        Err(e) => return Err(Exit::from_status("the server", &e)),
    }
    if size - at - 1 > MAX_GAP_LOOKUPS {
        warnings.push(format!(
            "leaf {index}: {} tree sizes between the commit and the seed; not asked whether one was published",
            size - at - 1
        ));
    } else {
        for earlier in at + 1..size {
            match log.get_checkpoint(pb::GetCheckpointRequest { tree_size: Some(earlier) }).await {
                Ok(_) => {
                    why.push(format!(
                        "a checkpoint of {earlier} leaves, before its seed's, already held the commit: the seed is not the first"
                    ));
                    break;
                }
                Err(e) if e.code() == tonic::Code::NotFound => {}
                Err(e) => return Err(Exit::from_status("the server", &e)),
            }
        }
    }
    why.extend(choice(d));
    Ok(why)
}
