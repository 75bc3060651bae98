//! The README as a newcomer meets it: its two-host walkthrough, the shell
//! block under "A two-host deployment, step by step", run as written (read
//! from README.md, so the two change together) on loopback, with TLS and
//! tokens, from certificates to a verified `assess --json` → `keys` →
//! `verify`, a `proof` of the printed log index, and the SIGHUP by pid file.

use crate::helpers::*;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

const README: &str = include_str!("../../README.md");

/// The first ```sh block after the walkthrough's heading.
fn walkthrough() -> &'static str {
    sh_block("### A two-host deployment, step by step")
}

/// The first ```sh block after `heading`.
fn sh_block(heading: &str) -> &'static str {
    let at = README.find(heading).unwrap_or_else(|| panic!("the README has {heading}"));
    let rest = &README[at..];
    let start = rest.find("```sh\n").expect("the walkthrough has a sh block") + "```sh\n".len();
    let end = rest[start..].find("\n```").expect("the sh block ends");
    &rest[start..start + end]
}

/// The example platform client `cargo test` built beside this test binary.
fn examples_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("examples")
}

/// Run after the walkthrough in its shell (its variables set): the example
/// client again and again (each run a new tender), and `assess` as text
/// with `--server`, `--ca` and `--token` given as flags instead of variables.
const EPILOGUE: &str = r#"
platform_client "$CREDIT_TENDER_SERVER" > again-1.txt
platform_client "$CREDIT_TENDER_SERVER" > again-2.txt
env -u CREDIT_TENDER_SERVER -u CREDIT_TENDER_CA -u CREDIT_TENDER_TOKEN credit-tender assess \
  --server "$CREDIT_TENDER_SERVER" --ca "$CREDIT_TENDER_CA" --token "$CREDIT_TENDER_TOKEN" \
  --tender "$TENDER" --bidder 91140100MA000101X5 > assess.txt
"#;

/// The README's curl block for every RPC, run after the walkthrough in its shell.
const CURL_HEADING: &str = "### Every call from any HTTP client: curl";

#[tokio::test]
async fn the_two_host_walkthrough_runs_as_written_on_loopback() {
    let script = walkthrough();
    let commands = || script.lines().filter(|l| !l.trim_start().starts_with('#'));
    assert!(commands().any(|l| l.contains("cert --host \"$HOST\"")) && !commands().any(|l| l.contains("pidof")), "{script}");
    let platform_client = examples_dir().join("platform_client");
    assert!(platform_client.exists(), "{} is missing: `cargo test` builds the examples", platform_client.display());
    let bin = Path::new(env!("CARGO_BIN_EXE_credit-tender")).parent().unwrap().to_path_buf();

    let dir = tempfile::tempdir().unwrap();
    // Run from a copy of the repository's view: the demo records it imports.
    std::os::unix::fs::symlink(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples"), dir.path().join("examples")).unwrap();
    let etc = dir.path().join("etc");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let path = format!("{}:{}:{}", bin.display(), examples_dir().display(), std::env::var("PATH").unwrap_or_default());
    let mut command = std::process::Command::new("bash");
    command
        .args(["-e", "-o", "pipefail", "-c", &format!("{script}\n{EPILOGUE}\n{}", sh_block(CURL_HEADING))])
        .current_dir(dir.path())
        .env("PATH", path)
        .env("ETC", &etc)
        .env("HOST", "localhost")
        .env("PORT", port.to_string())
        .env("DB", format!("sqlite://{}", dir.path().join("credit.db").display()))
        .env("LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("CREDIT_TENDER_")) {
        command.env_remove(k);
    }
    // The commands as written; the machine's environment set for a test
    // machine whose cores are shared by the whole suite, where a request's
    // task can wait far past the 5 ms a production server refuses at (the
    // walkthrough's CLI calls do not retry a shed call).
    command.env("CREDIT_TENDER_QUEUE_TARGET_MS", "10000");
    let child = command.spawn().expect("run bash");
    let shell = child.id();
    let run = tokio::time::timeout(Duration::from_secs(180), tokio::task::spawn_blocking(move || child.wait_with_output())).await;
    let server = std::fs::read_to_string(etc.join("credit-tender.pid")).ok().and_then(|p| p.trim().parse::<u32>().ok());
    let log = std::fs::read_to_string(etc.join("serve.log")).unwrap_or_default();
    let stop = |pid: Option<u32>| {
        if let Some(pid) = pid {
            crate::harness::kill(i64::from(pid));
        }
    };
    let Ok(out) = run else {
        stop(Some(shell));
        stop(server);
        panic!("the walkthrough did not finish in 180 s; the server said:\n{log}");
    };
    let out = out.unwrap().unwrap();
    let (printed, complaints) = (stdout(&out), stderr(&out));
    if !out.status.success() {
        stop(server);
        panic!("the walkthrough failed ({}):\n--- stdout\n{printed}\n--- stderr\n{complaints}\n--- serve.log\n{log}", out.status);
    }
    let server = server.expect("the walkthrough wrote the server's pid file");

    // What it printed: the platform's run, both verifications, the proof of the printed index.
    assert!(printed.contains("registered EXAMPLE-") && printed.contains("bid 4 from"), "{printed}");
    assert_eq!(printed.matches("Signature   valid").count(), 2, "{printed}");
    let st = std::fs::read_to_string(dir.path().join("st.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&st).unwrap();
    let index = json["logIndex"].as_str().expect("assess --json carries the log index").to_owned();
    assert!(printed.contains(&format!("Log index   {index} ")), "verify shows the index: {printed}");
    assert!(printed.contains(&format!("leaf {index} in the tree of")), "proof of the printed index: {printed}");
    assert!(printed.contains(&format!("Logged      leaf {index} of the tree of")), "verified in the log: {printed}");
    assert!(printed.contains("Domain      highway_construction in 山西省太原市（140100）"), "{printed}");
    // curl over the Connect protocol: the same statement, with its log index, in JSON.
    let connect: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("st-connect.json")).unwrap()).unwrap();
    assert_eq!(connect["logIndex"], json["logIndex"], "{connect}");
    for field in ["payload", "payloadType", "signatures"] {
        assert_eq!(connect["envelope"][field], json[field], "{field}: curl's statement is assess --json's");
    }
    // curl: every RPC, each answer the JSON of its method's response.
    let answers = dir.path().join("answers");
    let answer = |m: &str| -> serde_json::Value {
        let path = answers.join(format!("{m}.json"));
        serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
            .unwrap_or_else(|e| panic!("{m}: not JSON: {e}"))
    };
    let curl_block = sh_block(CURL_HEADING);
    for rpc in rpc_paths() {
        let method = rpc.rsplit('/').next().unwrap();
        let service_method = rpc.trim_start_matches("/credit_tender.v1.");
        assert!(curl_block.contains(service_method), "the README's curl block has no call of {rpc}");
        answer(method);
    }
    use credit_tender::proto::v1 as pb;
    let assessed: pb::AssessResponse = serde_json::from_value(answer("Assess")).unwrap();
    let from_assess_json: serde_json::Value = json.clone();
    assert_eq!(
        assessed.log_index.map(|i| i.to_string()),
        from_assess_json["logIndex"].as_str().map(str::to_owned),
        "curl's Assess is the statement assess --json printed"
    );
    let amended: pb::Tender = serde_json::from_value(answer("AmendTender")).unwrap();
    assert_eq!((amended.version, amended.terms.unwrap().estimated_price_fen), (2, 3_200_000_000));
    let revoked: pb::CommitteeGrant = serde_json::from_value(answer("RevokeCommitteeAccess")).unwrap();
    assert!(revoked.revoked);
    let put: pb::PutRecordsResponse = serde_json::from_value(answer("PutRecords")).unwrap();
    assert!(put.data_version > 0, "{put:?}");
    let error = "{\"code\":\"not_found\",\"message\":\"no tender 'NO-SUCH'\"}\nexit 22\n";
    assert!(printed.contains(error), "the 404's body is printed and curl exits 22: {printed}");
    // The example client ran twice more, each time registering a tender of its own.
    let again: Vec<String> = (1..=2).map(|i| std::fs::read_to_string(dir.path().join(format!("again-{i}.txt"))).unwrap()).collect();
    let registered = |t: &str| t.lines().find(|l| l.starts_with("registered ")).map(|l| l.split(' ').nth(1).unwrap().to_owned()).unwrap();
    assert_ne!(registered(&again[0]), registered(&again[1]), "{again:?}");
    // assess as text, with flags: the statement and its log index.
    let text = std::fs::read_to_string(dir.path().join("assess.txt")).unwrap();
    assert!(
        text.contains("Grade       ") && text.contains(&format!("Log index   {index} (credit-tender proof --index {index})")),
        "{text}"
    );

    // The SIGHUP went to this server, which reloaded and still serves.
    let reloaded = async {
        loop {
            let log = std::fs::read_to_string(etc.join("serve.log")).unwrap_or_default();
            if log.contains("keys reloaded") {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(100)).await; // a log file cannot be awaited
        }
    };
    let after = tokio::time::timeout(Duration::from_secs(10), reloaded).await;
    assert!(crate::harness::alive(server), "the server survived its SIGHUP");
    let keys = cli(&["keys", "--server", &format!("https://localhost:{port}"), "--ca", etc.join("tls/ca.pem").to_str().unwrap()]);
    stop(Some(server));
    assert!(after.is_ok(), "the server logged no reload after SIGHUP: {log}");
    assert!(keys.status.success() && stdout(&keys).contains("keyid"), "{}", stderr(&keys));
    for _ in 0..500 {
        if !crate::harness::alive(server) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await; // not our child: its end cannot be awaited
    }
    panic!("the walkthrough's server {server} is still running");
}
