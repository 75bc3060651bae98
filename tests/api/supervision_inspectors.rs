//! The second random choice of 双随机 (issue 24): inspectors drawn for the
//! firms drawn, from a list the supervisor imports with the draw, through
//! gRPC on 127.0.0.1 and `credit-tender verify-draw`.

use crate::helpers::*;
use crate::supervision::{client, draw_population, draw_request, keys_json, spawn};
use credit_tender::proto::v1 as pb;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use tonic::Code;
use tonic_types::StatusExt;

/// Twelve inspectors as Excel on Chinese Windows saves "CSV": GBK, CRLF.
/// GD0000 is conflicted with every firm of `codes` and so never drawn.
fn inspectors_csv(codes: &[String], rename: Option<(&str, &str)>) -> Vec<u8> {
    let mut text = String::from("执法证号,姓名,回避企业\r\n");
    for i in 0..12 {
        let mut id = format!("GD{i:04}");
        if let Some((from, to)) = rename
            && id == from
        {
            id = to.to_owned();
        }
        let conflicts = if i == 0 { codes.join("；") } else { String::new() };
        text.push_str(&format!("{id},检查员{i},{conflicts}\r\n"));
    }
    encoding_rs::GBK.encode(&text).0.into_owned()
}

fn request(csv: Vec<u8>) -> pb::DrawInspectionRequest {
    pb::DrawInspectionRequest { inspectors_csv: csv.into(), inspectors_encoding: "gb18030".into(), ..draw_request() }
}

fn assigned(draw: &pb::InspectionDraw) -> Vec<(String, Vec<String>)> {
    draw.assignments.iter().map(|a| (a.credit_code.clone(), a.inspectors.iter().map(|i| i.inspector_id.clone()).collect())).collect()
}

/// The inspectors drawn recompute offline to IDENTICAL; one inspector of
/// the list, the seed or the count per firm changed each change who
/// inspects, and verify-draw says where; no inspector meets a firm it is
/// conflicted with; a second draw shows in the log beside the first.
#[tokio::test]
async fn inspectors_drawn_verify_offline_change_with_any_input_and_every_draw_is_logged() {
    let db = sqlite_db();
    let server = spawn(&db, None).await;
    let codes = draw_population(&server).await;
    let mut sup = client(&server, None);
    let first = sup.draw_inspection(request(inspectors_csv(&codes, None))).await.unwrap().into_inner();
    let draw = first.draw.clone().unwrap();
    let commit = first.commit.clone().unwrap();
    let list = commit.inspectors.clone().expect("the commit names the list");
    assert_eq!((list.size, list.per_firm), (12, 2), "the policy's two per firm");
    assert_eq!(draw.inspectors.as_ref(), Some(&list));
    assert_eq!(first.inspectors.len(), 12);
    assert_eq!(first.inspectors[0].conflicted_codes.len(), 40, "GD0000's conflicts, as imported from GBK");
    assert_eq!(first.inspectors[1].name, "检查员1");
    let a = assigned(&draw);
    assert_eq!(a.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>(), draw.chosen.iter().map(|c| c.credit_code.clone()).collect::<Vec<_>>());
    for (code, who) in &a {
        assert_eq!(who.len(), 2, "{code}");
        assert!(!who.contains(&"GD0000".to_owned()), "a conflicted inspector inspects {code}");
    }
    // A rank a supervisor can redo by hand: sha256("SEED:CODE:ID").
    let one = &draw.assignments[0].inspectors[0];
    let text = format!("{}:{}:{}", draw.seed, draw.assignments[0].credit_code, one.inspector_id);
    assert_eq!(one.rank, hex::encode(ring::digest::digest(&ring::digest::SHA256, text.as_bytes())));

    let dir = tempfile::tempdir().unwrap();
    let keys = keys_json(&server, dir.path()).await;
    let drawn = json_file(dir.path(), "draw.json", &first);
    let run = |answer: &std::path::Path, extra: &[&str]| {
        let mut args = vec!["verify-draw", answer.to_str().unwrap(), "--keys", keys.to_str().unwrap()];
        args.extend_from_slice(extra);
        cli(&args)
    };
    let out = run(&drawn, &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).starts_with("IDENTICAL: 10 firm(s)"), "{}", stdout(&out));
    assert_eq!(stdout(&out).matches("\n  inspector GD").count(), 20, "{}", stdout(&out));

    // The list the supervisor imported, as a file: IDENTICAL.
    let same = file(dir.path(), "inspectors.csv", inspectors_csv(&codes, None));
    let out = run(&drawn, &["--inspectors", same.to_str().unwrap(), "--encoding", "gb18030"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    // One inspector changed: the first one drawn for the first firm renamed.
    let (firm, who) = &a[0];
    let renamed = file(dir.path(), "renamed.csv", inspectors_csv(&codes, Some((&who[0], "GD9999"))));
    let out = run(&drawn, &["--inspectors", renamed.to_str().unwrap(), "--encoding", "gb18030"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("DIFFERS inspectors: the list's digest is"), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("DIFFERS inspectors of {firm}: signed [{}]", who.join(", "))), "{}", stderr(&out));

    // The seed: a later checkpoint (the draw itself grew the tree).
    let mut published = server.cache.metrics().checkpoints();
    let after = first.draw_log_index + 1;
    tokio::time::timeout(std::time::Duration::from_secs(10), published.wait_for(|n| *n >= after)).await.unwrap().unwrap();
    let mut log = pb::log_service_client::LogServiceClient::new(server.channel.clone());
    let later = log.get_checkpoint(pb::GetCheckpointRequest { tree_size: Some(after) }).await.unwrap().into_inner();
    let later = file(dir.path(), "later.cp", &later.note);
    let out = run(&drawn, &["--checkpoint", later.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("DIFFERS inspectors of"), "{}", stderr(&out));

    // The count: the statements edited to three per firm.
    let mut edited = first.clone();
    for env in [edited.commit_envelope.as_mut().unwrap(), edited.draw_envelope.as_mut().unwrap()] {
        let mut payload: Value = serde_json::from_slice(&env.payload).unwrap();
        payload["inspectors"]["perFirm"] = json!(3);
        env.payload = serde_json::to_vec(&payload).unwrap().into();
    }
    let edited = json_file(dir.path(), "edited.json", &edited);
    let out = run(&edited, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("DIFFERS the draw: a signature does not verify"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("DIFFERS inspectors of {firm}: signed [{}], recomputed [{}, ", who.join(", "), who.join(", "))),
        "{}",
        stderr(&out)
    );

    // The count asked for: three per firm.
    let three = pb::DrawInspectionRequest { inspectors_per_firm: 3, ..request(inspectors_csv(&codes, None)) };
    let second = sup.draw_inspection(three).await.unwrap().into_inner();
    let second_draw = second.draw.clone().unwrap();
    assert_eq!(second_draw.inspectors.as_ref().map(|l| (l.digest.as_str(), l.per_firm)), Some((list.digest.as_str(), 3)));
    assert!(second_draw.assignments.iter().all(|a| a.inspectors.len() == 3));
    assert_ne!(assigned(&second_draw), a);

    // Both draws are in the log, each with its commit naming the same list.
    tokio::time::timeout(std::time::Duration::from_secs(10), published.wait_for(|n| *n > second.draw_log_index)).await.unwrap().unwrap();
    let size = log.get_checkpoint(pb::GetCheckpointRequest { tree_size: None }).await.unwrap().into_inner().tree_size;
    let entries = log.get_entries(pb::GetEntriesRequest { start: 0, end: size }).await.unwrap().into_inner().entries;
    let mut commits = Vec::new();
    let mut draws = Vec::new();
    for (i, leaf) in entries.iter().enumerate() {
        let env = credit_tender::log::envelope_of_leaf(leaf).unwrap();
        let v: Value = serde_json::from_slice(&env.payload).unwrap();
        match env.payload_type.as_str() {
            "application/vnd.credit-tender.inspection-commit.v1+json" => {
                assert_eq!(v["inspectors"]["digest"], json!(list.digest));
                commits.push(i as u64);
            }
            "application/vnd.credit-tender.inspection-draw.v1+json" => {
                assert_eq!(v["assignments"].as_array().unwrap().len(), 10);
                draws.push(v["commitLogIndex"].as_str().unwrap().parse::<u64>().unwrap());
            }
            _ => {}
        }
    }
    assert_eq!(commits, vec![first.commit_log_index, second.commit_log_index]);
    assert_eq!(draws, commits, "each draw names its own commit");
}

/// A bad list is refused before anything is logged, every problem named with
/// its line as an editor counts lines; a list too short for a conflicted
/// firm is refused before the commit too.
#[tokio::test]
async fn a_bad_inspector_list_is_refused_with_its_lines_and_nothing_is_logged() {
    let db = sqlite_db();
    let server = spawn(&db, None).await;
    let codes = draw_population(&server).await;
    let mut sup = client(&server, None);
    let mut log = pb::log_service_client::LogServiceClient::new(server.channel.clone());
    let size = |log: &mut pb::log_service_client::LogServiceClient<_>| {
        let mut log = log.clone();
        async move { log.get_checkpoint(pb::GetCheckpointRequest { tree_size: None }).await.map(|c| c.into_inner().tree_size).unwrap_or(0) }
    };
    let before = size(&mut log).await;
    let violations = |e: tonic::Status| -> Vec<(String, String)> {
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        e.get_details_bad_request().unwrap().field_violations.into_iter().map(|v| (v.field, v.description)).collect()
    };

    let bad = "\u{feff}inspector_id,name,conflicted_codes\r\nGD1,甲,\r\n\r\nGD1,乙,\r\nGD3,丙,91440300MA0000001X\r\n";
    let e = sup.draw_inspection(pb::DrawInspectionRequest { inspectors_csv: bad.into(), ..draw_request() }).await.unwrap_err();
    let v = violations(e);
    assert_eq!(v.iter().map(|(f, _)| f.as_str()).collect::<BTreeSet<_>>(), ["inspectors_csv"].into_iter().collect());
    assert!(v[0].1.starts_with("line 4: inspector_id 'GD1' is listed already on line 2"), "{v:?}");
    assert!(v[1].1.starts_with("line 5: conflicted_codes '91440300MA0000001X'"), "{v:?}");

    // GBK without saying so: refused with the way out.
    let gbk = encoding_rs::GBK.encode("执法证号,姓名\r\nGD1,张三\r\n").0.into_owned();
    let e = sup.draw_inspection(pb::DrawInspectionRequest { inspectors_csv: gbk.into(), ..draw_request() }).await.unwrap_err();
    assert!(violations(e)[0].1.contains("gb18030"), "names the encoding to pass");

    // Two inspectors, one conflicted with the first firm: it would have one.
    let short = format!("inspector_id,name,conflicted_codes\nGD1,甲,{}\nGD2,乙,\n", codes[0]);
    let e = sup.draw_inspection(pb::DrawInspectionRequest { inspectors_csv: short.into(), ..draw_request() }).await.unwrap_err();
    let v = violations(e);
    assert_eq!(v[0].0, "inspectors_csv");
    assert!(v[0].1.contains(&format!("firm {} of the population has 1 inspector(s)", codes[0])), "{v:?}");

    let e = sup.draw_inspection(pb::DrawInspectionRequest { inspectors_per_firm: 2, ..draw_request() }).await.unwrap_err();
    assert_eq!(violations(e)[0].0, "inspectors_per_firm");
    assert_eq!(size(&mut log).await, before, "nothing logged");
}

/// Inspector ids are one canonical form (NFKC, trimmed, upper-case) before
/// the digest, the dedupe and the draw: a full-width or lower-case copy of
/// an id is a duplicate naming both lines; invisible characters and
/// formula-like ids are refused with their line; a header naming a column
/// twice and a row with more fields than the header are refused.
#[tokio::test]
async fn inspector_ids_are_canonical_and_lookalikes_invisible_or_formula_ids_are_refused() {
    let db = sqlite_db();
    let server = spawn(&db, None).await;
    draw_population(&server).await;
    let mut sup = client(&server, None);
    let mut log = pb::log_service_client::LogServiceClient::new(server.channel.clone());
    let before = log.get_checkpoint(pb::GetCheckpointRequest { tree_size: None }).await.unwrap().into_inner().tree_size;
    let refused = |e: tonic::Status| -> Vec<String> {
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        let v = e.get_details_bad_request().unwrap().field_violations;
        assert!(v.iter().all(|v| v.field == "inspectors_csv"), "{v:?}");
        v.into_iter().map(|v| v.description).collect()
    };
    let csv = |text: &str| pb::DrawInspectionRequest { inspectors_csv: text.as_bytes().to_vec().into(), ..draw_request() };

    let text =
        "inspector_id,name\nGD0001,甲\nＧＤ０００１,乙\n gd0001 ,丙\nGD0002\u{200B},丁\n=cmd|' /C calc'!A0,戊\nGD0003,己,多余\nGD0004,庚\n";
    let v = refused(sup.draw_inspection(csv(text)).await.unwrap_err());
    assert_eq!(v[0], "line 3: inspector_id 'GD0001' is listed already on line 2", "{v:?}");
    assert_eq!(v[1], "line 4: inspector_id 'GD0001' is listed already on line 2", "{v:?}");
    assert!(v[2].starts_with("line 5: inspector_id 'GD0002\\u{200b}' contains the invisible character U+200B"), "{v:?}");
    assert!(v[3].starts_with("line 6: inspector_id '=cmd") && v[3].contains("formula"), "{v:?}");
    assert!(v[4].starts_with("line 7: field 3 '多余' is beyond the header's 2 columns"), "{v:?}");
    assert_eq!(v.len(), 5, "{v:?}");

    let v = refused(sup.draw_inspection(csv("inspector_id,name,name\nGD1,甲,乙\nGD2,丙,丁\n")).await.unwrap_err());
    assert_eq!(v, ["line 1: the header names the column 'name' twice (columns 2 and 3)"]);
    let v = refused(sup.draw_inspection(csv("inspector_id,执法证号,name\nGD1,GD9,甲\nGD2,GD8,乙\n")).await.unwrap_err());
    assert!(v[0].starts_with("line 1: the header names the column inspector_id twice"), "{v:?}");
    let after = log.get_checkpoint(pb::GetCheckpointRequest { tree_size: None }).await.unwrap().into_inner().tree_size;
    assert_eq!(after, before, "nothing logged");

    // The canonical form is what is committed and drawn: ids as typed in
    // full width or lower case come back upper-case ASCII.
    let ok = "inspector_id,name\nｇｄ０００１,甲\ngd0002,乙\nGD0003,丙\n,,\n";
    let r = sup.draw_inspection(csv(ok)).await.unwrap().into_inner();
    let ids: Vec<&str> = r.inspectors.iter().map(|i| i.inspector_id.as_str()).collect();
    assert_eq!(ids, ["GD0001", "GD0002", "GD0003"], "a row of only separators is skipped");
    assert!(assigned(r.draw.as_ref().unwrap()).iter().flat_map(|(_, ids)| ids).all(|id| id.starts_with("GD000")));
}

/// A list said to be GB18030 is read as GB18030, even when its bytes
/// happen to be valid UTF-8 too: 史伟 in GBK is the UTF-8 of ʷΰ.
#[tokio::test]
async fn a_list_labelled_gb18030_is_read_as_gb18030_even_when_its_bytes_are_valid_utf8() {
    let db = sqlite_db();
    let server = spawn(&db, None).await;
    draw_population(&server).await;
    let mut sup = client(&server, None);
    let gbk = encoding_rs::GBK.encode("inspector_id,name\r\nGD1,史伟\r\nGD2,史伟\r\nGD3,史伟\r\n").0.into_owned();
    assert!(std::str::from_utf8(&gbk).is_ok(), "the bytes are valid UTF-8 as well");
    let r = sup.draw_inspection(request(gbk.clone())).await.unwrap().into_inner();
    assert!(r.inspectors.iter().all(|i| i.name == "史伟"), "{:?}", r.inspectors);
    // Unlabelled, the same bytes are UTF-8 (today's default, unchanged).
    let r = sup.draw_inspection(pb::DrawInspectionRequest { inspectors_csv: gbk.into(), ..draw_request() }).await.unwrap().into_inner();
    assert!(r.inspectors.iter().all(|i| i.name == "ʷΰ"), "{:?}", r.inspectors);
    // A byte-order mark contradicts the label: refused, not guessed.
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice("inspector_id,name\nGD1,甲\nGD2,乙\n".as_bytes());
    let e = sup.draw_inspection(request(bom)).await.unwrap_err();
    let v = e.get_details_bad_request().unwrap().field_violations;
    assert!(v[0].description.contains("UTF-8 byte-order mark, but inspectors_encoding says gb18030"), "{v:?}");
}
