//! The supervision platform's checks from the command line: `verify-draw`
//! recomputes an inspection draw offline, `outcomes` sums what credit
//! changed from a verified copy of the log's entries.

use super::exit::Exit;
use super::out::{errln, outln};
use super::remote::{Ch, Connect, connect};
use super::verify::{keys_file, keys_of, verified_checkpoint};
use crate::proto::v1 as pb;
use crate::signing::{PublicKeyInfo, verify_each};
use crate::supervision::draw::{self, Member};
use crate::supervision::inspectors::{self, Inspector};
use crate::supervision::risk::RiskClass;
use crate::supervision::{COMMIT_PAYLOAD_TYPE, DRAW_PAYLOAD_TYPE};
use crate::tlog::tree::{self, Known};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct VerifyDrawArgs {
    /// The DrawInspection answer, as JSON (protobuf's JSON mapping).
    pub draw: PathBuf,
    /// The keys to trust (a ListKeys answer as JSON, e.g. from `credit-tender keys`).
    #[arg(long, value_name = "KEYS.json")]
    pub keys: PathBuf,
    /// The population to recompute from: a JSON array of {"creditCode", "riskClass"}
    /// (default: the one in the answer).
    #[arg(long, value_name = "POPULATION.json")]
    pub population: Option<PathBuf>,
    /// The signed checkpoint whose root is the seed (default: the one in the answer).
    #[arg(long, value_name = "CHECKPOINT")]
    pub checkpoint: Option<PathBuf>,
    /// The inspector list to recompute from: the CSV file the supervisor
    /// imported (default: the list in the answer).
    #[arg(long, value_name = "INSPECTORS.csv")]
    pub inspectors: Option<PathBuf>,
    /// The inspector file's encoding when it has no byte-order mark: utf-8
    /// (default) or gb18030 (GBK, as Excel saves "CSV" on Chinese Windows).
    #[arg(long, value_name = "ENCODING")]
    pub encoding: Option<String>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T, Exit> {
    let text = crate::rules::read_text(path).map_err(|e| Exit::reading(path, &e))?;
    serde_json::from_str(&text).map_err(|e| Exit::data(format!("{}:{}: not {what}: {e}", path.display(), e.line())))
}

/// Whether every signature of `env` verifies with a listed statement key: why not.
fn signature(env: Option<&pb::Envelope>, keys: &[PublicKeyInfo], what: &str) -> Option<String> {
    let Some(env) = env else { return Some(format!("{what}: the answer has no envelope")) };
    let results = verify_each(&crate::service::envelope_from_proto(env), keys, None);
    if results.is_empty() {
        return Some(format!("{what}: unsigned"));
    }
    let bad: Vec<String> = results.iter().filter_map(|(_, r)| r.as_ref().err().map(ToString::to_string)).collect();
    (!bad.is_empty()).then(|| format!("{what}: a signature does not verify: {}", bad.join("; ")))
}

fn payload<T: serde::de::DeserializeOwned>(env: Option<&pb::Envelope>, payload_type: &str, what: &str) -> Result<T, Exit> {
    let env = env.ok_or_else(|| Exit::data(format!("the answer has no {what} envelope")))?;
    if env.payload_type != payload_type {
        return Err(Exit::data(format!("the {what} envelope's payload type is '{}', not {payload_type}", env.payload_type)));
    }
    serde_json::from_slice(&env.payload).map_err(|e| Exit::data(format!("the {what} statement does not parse: {e}")))
}

fn members(entries: &[pb::PopulationEntry], source: &str) -> Result<Vec<Member>, Exit> {
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let class = RiskClass::parse(&e.risk_class).ok_or_else(|| {
                Exit::data(format!("{source}: population[{i}].riskClass '{}' is not one of: {}", e.risk_class, RiskClass::expected()))
            })?;
            Ok(Member { credit_code: e.credit_code.clone(), class })
        })
        .collect()
}

/// The top-level fields where `copy` and `signed` differ, as JSON (every
/// field, `chosen` and `ratios` included, compared whole).
fn differing_fields<T: serde::Serialize>(copy: &T, signed: &T) -> Vec<String> {
    let (serde_json::Value::Object(a), serde_json::Value::Object(b)) =
        (serde_json::to_value(copy).expect("serialises"), serde_json::to_value(signed).expect("serialises"))
    else {
        return vec!["(whole)".into()];
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter().filter(|k| a.get(*k) != b.get(*k)).cloned().collect()
}

/// The answer's unsigned copies (`commit`, `draw`, `commitLogIndex`,
/// `drawLogIndex`) against the signed statements: each disagreement names
/// its field. A reader of the file sees those copies, so a file whose
/// copies were edited is not IDENTICAL, whatever the signed part says.
fn unsigned_copies(answer: &pb::DrawInspectionResponse, commit: &pb::InspectionCommit, drawn: &pb::InspectionDraw) -> Vec<String> {
    let mut differs = Vec::new();
    match &answer.commit {
        None => differs.push("commit: the answer has no unsigned copy of the commit statement".to_owned()),
        Some(copy) => differs.extend(
            differing_fields(copy, commit).into_iter().map(|f| format!("commit.{f}: the unsigned copy differs from the signed commit")),
        ),
    }
    match &answer.draw {
        None => differs.push("draw: the answer has no unsigned copy of the draw statement".to_owned()),
        Some(copy) => differs
            .extend(differing_fields(copy, drawn).into_iter().map(|f| format!("draw.{f}: the unsigned copy differs from the signed draw"))),
    }
    if answer.commit_log_index != drawn.commit_log_index {
        differs.push(format!(
            "commitLogIndex: the answer says {}, the signed draw names commit leaf {}",
            answer.commit_log_index, drawn.commit_log_index
        ));
    }
    // The draw's own index is signed nowhere; it can still be impossible:
    // the draw is appended after the checkpoint that seeds it.
    if answer.draw_log_index < drawn.seed_tree_size {
        differs.push(format!(
            "drawLogIndex: the answer says {}, but the draw was appended after its seed checkpoint of {} leaves",
            answer.draw_log_index, drawn.seed_tree_size
        ));
    }
    differs
}

/// Recomputes a draw from its population, its seed checkpoint and the
/// procedure; IDENTICAL, or every place it differs.
// Long because: one straight pass, check after check in the order the README lists them.
pub(super) fn verify_draw(args: &VerifyDrawArgs) -> Result<(), Exit> {
    let answer: pb::DrawInspectionResponse = read_json(&args.draw, "a DrawInspection answer")?;
    let keys = keys_file(&args.keys)?;
    let mut differs: Vec<String> = Vec::new();
    differs.extend(signature(answer.commit_envelope.as_ref(), &keys, "the commit"));
    differs.extend(signature(answer.draw_envelope.as_ref(), &keys, "the draw"));
    let commit: pb::InspectionCommit = payload(answer.commit_envelope.as_ref(), COMMIT_PAYLOAD_TYPE, "commit")?;
    let drawn: pb::InspectionDraw = payload(answer.draw_envelope.as_ref(), DRAW_PAYLOAD_TYPE, "draw")?;
    if drawn.procedure != draw::PROCEDURE {
        return Err(Exit::data(format!("the draw follows procedure '{}'; this release knows {}", drawn.procedure, draw::PROCEDURE)));
    }
    differs.extend(unsigned_copies(&answer, &commit, &drawn));
    let commit_leaf = crate::log::leaf(answer.commit_envelope.as_ref().expect("checked above"));
    let commit_hash = tree::leaf_hash(&commit_leaf);
    if hex::encode(commit_hash.0) != drawn.commit_leaf_hash {
        differs.push(format!(
            "commit: the draw names commit leaf {}, the commit given hashes to {}",
            drawn.commit_leaf_hash,
            hex::encode(commit_hash.0)
        ));
    }
    let same = |what: &str, a: &str, b: &str, differs: &mut Vec<String>| {
        if a != b {
            differs.push(format!("{what}: the commit says '{a}', the draw '{b}'"));
        }
    };
    same("region", &commit.region, &drawn.region, &mut differs);
    same("domain", &commit.domain, &drawn.domain, &mut differs);
    same("date", &commit.date, &drawn.date, &mut differs);
    same("policy", &commit.policy_digest, &drawn.policy_digest, &mut differs);
    same("population digest", &commit.population_digest, &drawn.population_digest, &mut differs);
    let ratio_of = |r: &[pb::ClassRatio]| {
        r.iter().map(|r| format!("{} {}% of {}", r.risk_class, r.ratio_percent, r.population)).collect::<Vec<_>>().join(", ")
    };
    same("ratios", &ratio_of(&commit.ratios), &ratio_of(&drawn.ratios), &mut differs);

    // The seed: the root of a signed checkpoint whose tree holds the commit.
    let (note, note_source) = match &args.checkpoint {
        Some(p) => (crate::rules::read_text(p).map_err(|e| Exit::reading(p, &e))?, p.display().to_string()),
        None => (answer.seed_checkpoint.clone(), "the answer's seed checkpoint".to_owned()),
    };
    let checkpoint = verified_checkpoint(&note, &keys, &note_source)?;
    let seed = hex::encode(checkpoint.root.0);
    if checkpoint.size != drawn.seed_tree_size {
        differs.push(format!("seed: the checkpoint is of {} leaves, the draw names the one of {}", checkpoint.size, drawn.seed_tree_size));
    }
    if seed != drawn.seed {
        differs.push(format!("seed: the checkpoint's root is {seed}, the draw's seed {}", drawn.seed));
    }
    if checkpoint.size <= drawn.commit_log_index {
        differs
            .push(format!("seed: the checkpoint of {} leaves does not hold the commit (leaf {})", checkpoint.size, drawn.commit_log_index));
    } else {
        let proof: Option<Vec<tree::Hash>> =
            drawn.seed_inclusion_proof.iter().map(|h| hex::decode(h).ok().and_then(|b| tree::hash_from_bytes(&b))).collect();
        let held =
            proof.is_some_and(|p| tree::check_inclusion(&p, drawn.commit_log_index, checkpoint.size, checkpoint.root, commit_hash).is_ok());
        if !held {
            differs
                .push(format!("seed: the inclusion proof does not place the commit at leaf {} of the seed's tree", drawn.commit_log_index));
        }
    }

    // The population and the choice.
    let population = match &args.population {
        Some(p) => members(&read_json::<Vec<pb::PopulationEntry>>(p, "a population (JSON array)")?, &p.display().to_string())?,
        None => members(&answer.population, "the answer")?,
    };
    let digest = draw::population_digest(&population);
    if digest != commit.population_digest {
        differs.push(format!(
            "population: its digest is {digest} ({} firms), the commit's {} ({} firms)",
            population.len(),
            commit.population_digest,
            commit.population_size
        ));
    }
    let ratio = |c: RiskClass| drawn.ratios.iter().find(|r| r.risk_class == c.as_str()).map_or(0, |r| r.ratio_percent);
    let chosen = draw::choose(&population, &seed, ratio);
    let recomputed: Vec<&str> = chosen.iter().map(|c| c.credit_code.as_str()).collect();
    let signed: Vec<&str> = drawn.chosen.iter().map(|c| c.credit_code.as_str()).collect();
    if recomputed != signed {
        let missing: Vec<&str> = signed.iter().filter(|c| !recomputed.contains(c)).copied().collect();
        let extra: Vec<&str> = recomputed.iter().filter(|c| !signed.contains(c)).copied().collect();
        differs.push(format!(
            "chosen: the recomputed draw chooses {} firm(s), the signed one {}; signed but not recomputed: [{}]; recomputed but not signed: [{}]",
            recomputed.len(),
            signed.len(),
            missing.join(", "),
            extra.join(", ")
        ));
    }
    let assignments = inspectors(args, &answer, &commit, &drawn, &seed, &mut differs)?;
    if differs.is_empty() {
        outln!(
            "IDENTICAL: {} firm(s) drawn from a population of {} (digest {}), seed {} (checkpoint of {} leaves, holding the commit at leaf {})",
            signed.len(),
            population.len(),
            digest,
            seed,
            checkpoint.size,
            drawn.commit_log_index
        );
        for c in &chosen {
            outln!("{} {} {}", c.credit_code, c.class, c.rank);
            for i in assignments.iter().filter(|a| a.credit_code == c.credit_code).flat_map(|a| &a.inspectors) {
                outln!("  inspector {} {} {}", i.inspector_id, i.name, i.rank);
            }
        }
        outln!(
            "not checked here: drawLogIndex {} is signed nowhere; `credit-tender proof --index {}` and `verify` show the draw is that leaf",
            answer.draw_log_index,
            answer.draw_log_index
        );
        return Ok(());
    }
    for d in &differs {
        errln!("DIFFERS {d}");
    }
    Err(Exit::verdict(format!("the draw does not recompute: {} difference(s)", differs.len())))
}

/// The inspector list of the answer (or `--inspectors`), as `Inspector`s.
fn inspector_list(args: &VerifyDrawArgs, answer: &pb::DrawInspectionResponse) -> Result<Vec<Inspector>, Exit> {
    let Some(path) = &args.inspectors else {
        return Ok(answer
            .inspectors
            .iter()
            .map(|i| Inspector {
                id: i.inspector_id.clone(),
                name: i.name.clone(),
                conflicts: i.conflicted_codes.iter().cloned().collect(),
            })
            .collect());
    };
    let encoding = match args.encoding.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("utf-8" | "utf8") => None,
        Some("gb18030" | "gbk") => Some(encoding_rs::GB18030),
        Some(other) => return Err(Exit::usage(format!("--encoding '{other}': expected utf-8 or gb18030"))),
    };
    let bytes = std::fs::read(path).map_err(|e| Exit::reading(path, &e))?;
    inspectors::parse_csv(&bytes, encoding, &crate::rules::Rules::shipped().allow_list)
        .map_err(|problems| Exit::data(problems.iter().map(|p| format!("{}: {p}", path.display())).collect::<Vec<_>>().join("\n")))
}

/// The inspector draw recomputed: the list's digest against the commit's,
/// and who inspects each chosen firm against the signed assignments. Gives
/// the recomputed assignments.
fn inspectors(
    args: &VerifyDrawArgs,
    answer: &pb::DrawInspectionResponse,
    commit: &pb::InspectionCommit,
    drawn: &pb::InspectionDraw,
    seed: &str,
    differs: &mut Vec<String>,
) -> Result<Vec<pb::FirmInspectors>, Exit> {
    let committed = commit.inspectors.clone().unwrap_or_default();
    if drawn.inspectors.clone().unwrap_or_default() != committed {
        differs.push("inspectors: the commit's inspector list (digest, size, per firm) is not the draw's".into());
    }
    if commit.inspectors.is_none() && args.inspectors.is_none() {
        if !drawn.assignments.is_empty() {
            differs.push("inspectors: the draw assigns inspectors, but its commit names no inspector list".into());
        }
        return Ok(Vec::new());
    }
    let list = inspector_list(args, answer)?;
    let digest = inspectors::list_digest(&list);
    if digest != committed.digest {
        differs.push(format!(
            "inspectors: the list's digest is {digest} ({} inspectors), the commit's {} ({} inspectors)",
            list.len(),
            committed.digest,
            committed.size
        ));
    }
    let recomputed = crate::supervision::assignments(&match_chosen(drawn), &list, seed, committed.per_firm);
    let who = |a: &pb::FirmInspectors| a.inspectors.iter().map(|i| i.inspector_id.as_str()).collect::<Vec<_>>().join(", ");
    for r in &recomputed {
        let signed = drawn.assignments.iter().find(|a| a.credit_code == r.credit_code);
        let signed_who = signed.map(who).unwrap_or_default();
        if signed_who != who(r) {
            differs.push(format!("inspectors of {}: signed [{signed_who}], recomputed [{}]", r.credit_code, who(r)));
        }
    }
    if drawn.assignments.len() != recomputed.len() {
        differs.push(format!("inspectors: the draw assigns {} firm(s), recomputed {}", drawn.assignments.len(), recomputed.len()));
    }
    Ok(recomputed)
}

/// The signed chosen firms, in their order, as the procedure's input.
fn match_chosen(drawn: &pb::InspectionDraw) -> Vec<draw::Chosen> {
    drawn
        .chosen
        .iter()
        .map(|c| draw::Chosen {
            credit_code: c.credit_code.clone(),
            class: RiskClass::parse(&c.risk_class).unwrap_or(RiskClass::High),
            rank: c.rank.clone(),
        })
        .collect()
}

#[derive(Debug, Args)]
pub struct OutcomesArgs {
    #[command(flatten)]
    pub connect: Connect,
    /// Digits a tender's region starts with ("" for every region).
    #[arg(long, default_value = "")]
    pub region_prefix: String,
    /// A credit domain word (default: every domain).
    #[arg(long, default_value = "")]
    pub domain: String,
    /// First bid-deadline date, YYYY-MM-DD (Asia/Shanghai).
    #[arg(long)]
    pub from: String,
    /// Last bid-deadline date, YYYY-MM-DD, inclusive.
    #[arg(long)]
    pub to: String,
    /// The keys to trust (a ListKeys answer as JSON); default: the server's.
    #[arg(long, value_name = "KEYS.json")]
    pub keys: Option<PathBuf>,
    /// Sum the tree of the checkpoint of this size (default: the newest).
    #[arg(long)]
    pub tree_size: Option<u64>,
    /// Print the figures as JSON (the GetOutcomes answer's form).
    #[arg(long)]
    pub json: bool,
}

async fn outcome_keys(args: &OutcomesArgs, ch: &Ch) -> Result<Vec<PublicKeyInfo>, Exit> {
    if let Some(path) = &args.keys {
        return keys_file(path);
    }
    let listed = pb::key_service_client::KeyServiceClient::new(ch.clone())
        .list_keys(pb::ListKeysRequest {})
        .await
        .map_err(|e| Exit::from_status(&args.connect.server, &e))?
        .into_inner();
    keys_of(listed, Path::new("the server's ListKeys"))
}

/// Fetches the log's entries up to a signed checkpoint, checks they hash to
/// its root and that every statement's signature verifies, then sums them.
// Long because: one straight pass (fetch, check the root, check each signature, sum), each step using the last one's values.
pub(super) async fn outcomes(args: &OutcomesArgs) -> Result<(), Exit> {
    let request = pb::GetOutcomesRequest {
        region_prefix: args.region_prefix.clone(),
        domain: args.domain.clone(),
        from: args.from.clone(),
        to: args.to.clone(),
    };
    let query = crate::supervision::outcomes_query(&request).map_err(|e| {
        let problems: Vec<String> =
            e.into_field_errors().iter().map(|f| format!("--{}: {}", f.field.replace('_', "-"), f.reason)).collect();
        Exit::usage(problems.join("; "))
    })?;
    if args.tree_size == Some(0) {
        return Err(Exit::usage(
            "--tree-size 0: the empty tree holds no statement; give the tree_size of an earlier answer, or leave it out for the newest checkpoint",
        ));
    }
    let status = |e: tonic::Status| Exit::from_status(&args.connect.server, &e);
    let ch = connect(&args.connect).await?;
    let keys = outcome_keys(args, &ch).await?;
    let mut log = pb::log_service_client::LogServiceClient::new(ch);
    let cp = log.get_checkpoint(pb::GetCheckpointRequest { tree_size: args.tree_size }).await.map_err(status)?.into_inner();
    let checkpoint = verified_checkpoint(&cp.note, &keys, "the server's checkpoint")?;
    let mut leaves: Vec<Vec<u8>> = Vec::with_capacity(checkpoint.size as usize);
    while (leaves.len() as u64) < checkpoint.size {
        let start = leaves.len() as u64;
        let got = log.get_entries(pb::GetEntriesRequest { start, end: checkpoint.size }).await.map_err(status)?.into_inner();
        if got.entries.is_empty() {
            return Err(Exit::verdict(format!(
                "ALARM: the server sent no entries from {start} though its checkpoint has {}",
                checkpoint.size
            )));
        }
        leaves.extend(got.entries.into_iter().map(|e| e.to_vec()));
    }
    leaves.truncate(checkpoint.size as usize);
    let mut hashes: Vec<tree::Hash> = Vec::new();
    for (n, leaf) in leaves.iter().enumerate() {
        let lh = [tree::leaf_hash(leaf)];
        let mut known = Known::default();
        for i in tree::append_reads(n as u64, &lh) {
            known.0.insert(i, hashes[i as usize]);
        }
        for (_, h) in tree::append(n as u64, &lh, known).map_err(|e| Exit::software(e.to_string()))? {
            hashes.push(h);
        }
    }
    let known = Known(tree::root_reads(checkpoint.size).into_iter().filter_map(|i| Some((i, *hashes.get(i as usize)?))).collect());
    let root = tree::root(checkpoint.size, &known).map_err(|e| Exit::software(e.to_string()))?;
    if root != checkpoint.root {
        return Err(Exit::verdict(format!("ALARM: the entries served do not hash to the checkpoint's root (size {})", checkpoint.size)));
    }
    let mut unsigned = Vec::new();
    for (i, leaf) in leaves.iter().enumerate() {
        let env = crate::log::envelope_of_leaf(leaf).map_err(|e| Exit::verdict(format!("ALARM: leaf {i}: {e}")))?;
        if signature(Some(&env), &keys, &format!("leaf {i}")).is_some() {
            unsigned.push(i.to_string());
        }
    }
    if !unsigned.is_empty() {
        return Err(Exit::verdict(format!("ALARM: the signatures of leaves {} do not verify: nothing summed", unsigned.join(", "))));
    }
    let o = crate::supervision::outcomes::tally(leaves.iter().enumerate().map(|(i, l)| (i as u64, l.as_slice())), &query, checkpoint.size);
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&o).expect("outcomes serialise"));
        return Ok(());
    }
    let f = o.total.clone().unwrap_or_default();
    let yuan = |fen: i64| format!("{}.{:02}", fen / 100, (fen % 100).abs());
    outln!("log verified: {} leaves, checkpoint signed by the log key", o.tree_size);
    outln!("tenders {} (deadline {} to {}, region '{}')", f.tenders, o.from, o.to, o.region_prefix);
    outln!("bids assessed {}; with credit benefit {}", f.bids_assessed, f.bidders_with_credit_benefit);
    outln!(
        "points: qualification {:.2} ({} bids), evaluation {:.2} ({} bids)",
        f.qualification_points_centi as f64 / 100.0,
        f.bidders_with_qualification_points,
        f.evaluation_points_centi as f64 / 100.0,
        f.bidders_with_evaluation_points
    );
    outln!(
        "deposits: waived {}, reduced {}, full {}; nominal {} yuan, owed {} yuan, saved {} yuan",
        f.deposits_waived,
        f.deposits_reduced,
        f.deposits_full,
        yuan(f.nominal_deposit_fen),
        yuan(f.deposit_owed_fen),
        yuan(f.deposit_saved_fen)
    );
    outln!("credit guarantees {} for {} yuan", f.credit_guarantees, yuan(f.credit_guarantee_fen));
    outln!("excluded {}; not qualified {}", f.excluded, f.not_qualified);
    for r in &f.exclusions_by_reason {
        outln!("  {} {}", r.code, r.count);
    }
    outln!("red-list rewards {}", f.rewards);
    for r in &f.rewards_by_reason {
        outln!("  {} {}", r.code, r.count);
    }
    Ok(())
}
