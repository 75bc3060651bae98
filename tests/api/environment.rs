//! The CLI's `CREDIT_TENDER_*` variables, through the binary: one set to the
//! empty string (a unit file's `Environment=CREDIT_TENDER_CA=`, a profile's
//! `export CREDIT_TENDER_TOKEN=`) counts as unset, for every variable any
//! command reads.

use crate::helpers::*;
use std::process::Command;

/// Every variable the command line reads, from its definition: a variable
/// added later is covered without editing this test.
fn variables() -> Vec<String> {
    fn walk(cmd: &clap::Command, out: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            if let Some(name) = arg.get_env() {
                out.push(name.to_string_lossy().into_owned());
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut out = Vec::new();
    walk(&<credit_tender::cli::Cli as clap::CommandFactory>::command(), &mut out);
    out.sort();
    out.dedup();
    out
}

/// Runs `command` off the test's runtime thread (the server under test
/// answers on that runtime, which a blocking wait would stall).
async fn output(mut command: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || command.output().expect("run credit-tender")).await.unwrap()
}

/// The binary with every `CREDIT_TENDER_*` variable the CLI reads set to "".
fn with_every_variable_empty() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_credit-tender"));
    c.env("RUST_LOG", "warn");
    for name in variables() {
        c.env(name, "");
    }
    c
}

#[tokio::test]
async fn an_empty_variable_counts_as_unset_for_every_client_command() {
    let names = variables();
    for want in [
        "CREDIT_TENDER_CA",
        "CREDIT_TENDER_TOKEN",
        "CREDIT_TENDER_SERVER",
        "CREDIT_TENDER_DB",
        "CREDIT_TENDER_KEYS",
        "CREDIT_TENDER_LISTEN",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} is not among the CLI's variables: {names:?}");
    }
    let (server, table, _db) = crate::web::demo_server(Default::default()).await;
    let url = format!("http://{}", server.addr);
    let logged = table.bids[0].assessment.as_ref().unwrap().log_index.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (checkpoint, proof) = (dir.path().join("cp"), dir.path().join("proof.json"));
    let index = logged.to_string();
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("keys", vec!["keys", "--server", &url]),
        ("assess", vec!["assess", "--server", &url, "--tender", crate::web::DEMO_TENDER, "--bidder", "91140100MA000101X5", "--json"]),
        (
            "proof",
            vec![
                "proof",
                "--server",
                &url,
                "--index",
                &index,
                "--checkpoint",
                checkpoint.to_str().unwrap(),
                "--proof",
                proof.to_str().unwrap(),
            ],
        ),
    ];
    for (what, args) in cases {
        let mut command = with_every_variable_empty();
        command.args(&args);
        let out = output(command).await;
        assert!(out.status.success(), "{what} with every CREDIT_TENDER_* empty: {}\n{}", stderr(&out), stdout(&out));
    }
    // No --server and an empty CREDIT_TENDER_SERVER: the default address,
    // not a usage error about an empty URL.
    let mut command = with_every_variable_empty();
    command.arg("keys");
    let out = output(command).await;
    assert_ne!(out.status.code(), Some(64), "an empty CREDIT_TENDER_SERVER is not a bad --server: {}", stderr(&out));
    assert!(out.status.success() || stderr(&out).contains("127.0.0.1:50051"), "{}", stderr(&out));
    // An empty CREDIT_TENDER_DB: the default database, in the working folder.
    let records = file(dir.path(), "records.jsonl", format!("{}\n", evaluation_json("e1", CODE_A, serde_json::json!({}))));
    let mut command = with_every_variable_empty();
    command.current_dir(dir.path()).args(["import", records.to_str().unwrap()]);
    let out = output(command).await;
    assert!(out.status.success(), "import with CREDIT_TENDER_DB empty: {}", stderr(&out));
    assert!(dir.path().join("credit-tender.db").exists(), "the default store was used");
}
