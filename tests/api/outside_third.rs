//! Faults a second outside attack on issue 22 found in the clients: each
//! test is one kind of fault, driven through the binaries.

use crate::helpers::*;
use std::process::Command;

/// The binary, with no client variables from the test's environment.
fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_credit-tender"));
    c.env("RUST_LOG", "warn");
    for v in ["CREDIT_TENDER_SERVER", "CREDIT_TENDER_CA", "CREDIT_TENDER_TOKEN"] {
        c.env_remove(v);
    }
    c
}

/// Every client command, with what it needs besides `--server`, `--ca` and `--token`.
fn client_commands(d: &std::path::Path) -> Vec<Vec<String>> {
    let p = |name: &str| d.join(name).display().to_string();
    [
        vec!["assess", "--tender", "T-1", "--bidder", "91140100MA000101X5"].into_iter().map(String::from).collect(),
        vec!["keys".to_owned()],
        vec!["proof".into(), "--index".into(), "0".into(), "--checkpoint".into(), p("cp"), "--proof".into(), p("proof.json")],
        vec!["audit".into(), "--state".into(), p("audit")],
        vec!["outcomes".into(), "--from".into(), "2026-01-01".into(), "--to".into(), "2026-12-31".into()],
    ]
    .into()
}

/// Asserts `text` reads as a sentence, not as the transport's words.
fn reads_as_a_sentence(text: &str) {
    for rust in ["transport error", "Connecting to HTTPS without TLS enabled", "Error {", "Kind(", "Some(", "(os error"] {
        assert!(!text.contains(rust), "'{rust}' is not a sentence for an operator: {text}");
    }
}

/// An https:// server with no CA to trust: every client command says to
/// pass --ca (or CREDIT_TENDER_CA) with the server's CA certificate; a --ca
/// that is no PEM certificate is named as such, whether given as a flag or
/// in the variable.
#[test]
fn client_commands_say_what_to_pass_for_https_and_name_a_ca_file_that_is_not_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let not_pem = d.join("hostname");
    std::fs::write(&not_pem, "evaluation-room-3\n").unwrap();
    for command in client_commands(d) {
        let name = &command[0];
        let out = bin().args(&command).args(["--server", "https://127.0.0.1:1"]).output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(64), "{name}: {err}");
        assert!(err.contains("--ca FILE") && err.contains("CREDIT_TENDER_CA") && err.contains("CA certificate"), "{name}: {err}");
        reads_as_a_sentence(&err);

        let out = bin().args(&command).args(["--server", "https://127.0.0.1:1", "--ca", not_pem.to_str().unwrap()]).output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(64), "{name}: {err}");
        assert!(err.contains(&format!("--ca {}: the file is not a PEM certificate", not_pem.display())), "{name}: {err}");
        assert!(!err.contains("not signed by the CA"), "{name}: {err}");
        reads_as_a_sentence(&err);

        let out =
            bin().args(&command).env("CREDIT_TENDER_SERVER", "https://127.0.0.1:1").env("CREDIT_TENDER_CA", &not_pem).output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(64), "{name}: {err}");
        assert!(err.contains(&format!("{}: the file is not a PEM certificate", not_pem.display())), "{name}: {err}");
    }
}

/// `platform_client` reads its server from CREDIT_TENDER_SERVER when no
/// argument gives one (an empty argument or variable counts as unset), as
/// the README says the other clients do, and says in a sentence why it
/// stopped, not the transport's Debug text.
#[test]
fn platform_client_reads_the_server_from_the_environment_and_fails_in_a_sentence() {
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_credit-tender")).parent().unwrap().join("examples").join("platform_client");
    assert!(exe.exists(), "{} is missing: `cargo test` builds the examples", exe.display());
    let run = |args: &[&str], vars: &[(&str, &str)]| {
        let mut c = Command::new(&exe);
        c.args(args);
        for v in ["CREDIT_TENDER_SERVER", "CREDIT_TENDER_CA", "CREDIT_TENDER_TOKEN"] {
            c.env_remove(v);
        }
        for (k, v) in vars {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    // Port 1: nothing listens there; refused at once.
    let out = run(&[], &[("CREDIT_TENDER_SERVER", "http://127.0.0.1:1")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("platform_client: cannot reach http://127.0.0.1:1"), "{err}");
    assert!(!err.contains("tonic::transport") && !err.contains("ConnectError("), "{err}");
    let out = run(&[""], &[("CREDIT_TENDER_SERVER", "http://127.0.0.1:1")]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach http://127.0.0.1:1"), "an empty argument counts as unset");
    let out = run(&[], &[("CREDIT_TENDER_SERVER", "https://127.0.0.1:1"), ("CREDIT_TENDER_CA", "")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is an https:// server: set CREDIT_TENDER_CA"), "{err}");
}
