//! Signatures end to end: `verify` offline, tampering, and key rotation on a
//! running `serve` process (SIGHUP, no restart).

use crate::assessment::{code, terms};
use crate::helpers::*;
use credit_tender::proto::v1 as pb;
use serde_json::json;
use std::path::Path;

fn write_json<T: serde::Serialize>(dir: &Path, name: &str, v: &T) -> String {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    p.to_str().unwrap().to_owned()
}

fn verify_cli(envelope: &str, keys: &str) -> std::process::Output {
    cli(&["verify", envelope, "--keys", keys])
}

#[tokio::test]
async fn verify_accepts_the_statement_and_refuses_any_flipped_byte() {
    let db = sqlite_db();
    let mut f = crate::assessment::Fixture::new(&db).await;
    let c = code(91);
    f.put(&[evaluation_json("e", &c, json!({"grade": "AA", "score": 96}))]).await;
    f.tender("T1", "national-template", "440300", "2026-12-15").await;
    let (_, envelope) = f.assess("T1", &[&c]).await;
    let mut keys_client = pb::key_service_client::KeyServiceClient::new(f.server.channel().await);
    let keys = keys_client.list_keys(pb::ListKeysRequest {}).await.unwrap().into_inner();
    let dir = tempfile::tempdir().unwrap();
    let keys_path = write_json(dir.path(), "keys.json", &keys);

    let ok = verify_cli(&write_json(dir.path(), "ok.json", &envelope), &keys_path);
    assert!(ok.status.success(), "{}", stderr(&ok));
    let text = stdout(&ok);
    assert!(text.contains("Signature   valid") && text.contains("Grade       AA") && text.contains(&c), "{text}");

    // The JSON on disk is the standard DSSE form.
    let raw: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("ok.json")).unwrap()).unwrap();
    assert!(raw["payloadType"].is_string() && raw["payload"].is_string() && raw["signatures"][0]["keyid"].is_string());

    let mut tampered = Vec::new();
    for i in [0, envelope.payload.len() / 2, envelope.payload.len() - 1] {
        let mut e = envelope.clone();
        let mut p = e.payload.to_vec();
        p[i] ^= 0x01;
        e.payload = p.into();
        tampered.push(("payload", e));
    }
    let mut e = envelope.clone();
    e.payload_type.push('x');
    tampered.push(("payload type", e));
    for i in [0, 63] {
        let mut e = envelope.clone();
        let mut s = e.signatures[0].sig.to_vec();
        s[i] ^= 0x80;
        e.signatures[0].sig = s.into();
        tampered.push(("signature", e));
    }
    for (n, (what, e)) in tampered.iter().enumerate() {
        let out = verify_cli(&write_json(dir.path(), &format!("bad{n}.json"), e), &keys_path);
        assert_eq!(out.status.code(), Some(1), "a flipped byte in the {what} verified");
        assert!(stderr(&out).contains("INVALID: the signature by key"), "{}", stderr(&out));
    }
    let mut e = envelope.clone();
    e.signatures[0].keyid = "00".repeat(32);
    let out = verify_cli(&write_json(dir.path(), "unknown.json", &e), &keys_path);
    assert!(stderr(&out).contains("INVALID: no listed key has id 0000"), "{}", stderr(&out));
    let out = verify_cli(&keys_path, &keys_path);
    assert_eq!(out.status.code(), Some(65), "not an envelope: input data refused; {}", stderr(&out));
}

fn keygen(dir: &Path, name: &str) -> String {
    let out = cli(&["keygen", "--out", dir.join(name).to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).trim().to_owned()
}

async fn signer_of(channel: tonic::transport::Channel) -> (String, pb::Envelope) {
    let mut a = pb::assessment_service_client::AssessmentServiceClient::new(channel);
    let r = a
        .assess(pb::AssessRequest {
            tender_id: "T1".into(),
            bidder: Some(pb::Bidder { credit_codes: vec![code(92)] }),
            contract_price_fen: None,
        })
        .await
        .unwrap()
        .into_inner();
    let e = r.envelope.unwrap();
    (e.signatures[0].keyid.clone(), e)
}

#[tokio::test]
async fn keys_rotate_without_a_restart() {
    let db = sqlite_db();
    let dir = tempfile::tempdir().unwrap();
    let k1 = keygen(dir.path(), "k1.pk8");
    let k2 = keygen(dir.path(), "k2.pk8");
    assert_ne!(k1, k2);
    let again = cli(&["keygen", "--out", dir.path().join("k1.pk8").to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(73), "keygen must not overwrite a key (cannot create)");
    let config = dir.path().join("keys.toml");
    let log_key = log_key_toml(dir.path());
    std::fs::write(&config, format!("[[key]]\nfile = \"k1.pk8\"\nstatus = \"active\"\n{log_key}")).unwrap();

    let server = CliServer::spawn(&["serve", "--db", &db.url, "--keys", config.to_str().unwrap()]).await;
    let channel = server.channel.clone();
    let mut tenders = pb::tender_service_client::TenderServiceClient::new(channel.clone());
    tenders
        .register_tender(pb::RegisterTenderRequest {
            tender_id: "T1".into(),
            terms: Some(terms("440300", "2026-12-15")),
            policy_id: "national-template".into(),
        })
        .await
        .unwrap();
    let mut data = pb::credit_data_service_client::CreditDataServiceClient::new(channel.clone());
    data.put_records(pb::PutRecordsRequest { records: vec![to_proto(evaluation_json("e", &code(92), json!({})))], source: String::new() })
        .await
        .unwrap();
    let (signer, old_envelope) = signer_of(channel.clone()).await;
    assert_eq!(signer, k1);

    // The rotation instant ends k1's validity and starts k2's: what k1 signed before it still verifies.
    let rotated_at = (chrono::Utc::now() + chrono::Duration::seconds(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    std::fs::write(
        &config,
        format!(
            "[[key]]\nfile = \"k2.pk8\"\nstatus = \"active\"\nvalid_from = \"{rotated_at}\"\n\n\
             [[key]]\nfile = \"k1.pk8\"\nstatus = \"verify_only\"\nvalid_to = \"{rotated_at}\"\n{log_key}"
        ),
    )
    .unwrap();
    let hup = std::process::Command::new("kill").args(["-HUP", &server.child.id().to_string()]).status().unwrap();
    assert!(hup.success());
    server.log_line("keys reloaded").await;
    let mut keys_client = pb::key_service_client::KeyServiceClient::new(channel.clone());
    let keys = keys_client.list_keys(pb::ListKeysRequest {}).await.unwrap().into_inner();
    assert!(keys.keys.iter().any(|k| k.keyid == k2), "the new key appeared without a restart");
    let status: Vec<(String, String)> =
        keys.keys.iter().filter(|k| k.role == "statement").map(|k| (k.keyid.clone(), k.status.clone())).collect();
    assert_eq!(status, vec![(k2.clone(), "active".into()), (k1.clone(), "verify_only".into())]);

    let (signer, _) = signer_of(channel.clone()).await;
    assert_eq!(signer, k2, "the rotated-out key no longer signs");
    let out_dir = tempfile::tempdir().unwrap();
    let keys_path = write_json(out_dir.path(), "keys.json", &keys);
    let out = verify_cli(&write_json(out_dir.path(), "old.json", &old_envelope), &keys_path);
    assert!(out.status.success(), "a statement signed before rotation still verifies: {}", stderr(&out));

    // A broken configuration leaves the keys in use: once the server has
    // said the reload failed, it still signs with k2 and lists the same keys.
    std::fs::write(&config, "[[key]]\nfile = \"missing.pk8\"\nstatus = \"active\"\n").unwrap();
    assert!(std::process::Command::new("kill").args(["-HUP", &server.child.id().to_string()]).status().unwrap().success());
    let failed = server.log_line("key reload failed").await;
    assert!(failed.contains("missing.pk8"), "the failure names the key file: {failed}");
    let (signer, _) = signer_of(channel.clone()).await;
    assert_eq!(signer, k2, "a failed reload changed the signing key");
    let after = keys_client.list_keys(pb::ListKeysRequest {}).await.unwrap().into_inner();
    assert_eq!(after, keys, "a failed reload changed the listed keys");
}
