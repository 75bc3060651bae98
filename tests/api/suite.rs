//! The suite's promises about itself (tests/api/harness.rs), checked by
//! running this test binary as a child: what a run skips is said in one
//! line that plain `cargo test` shows, and a process left running fails the
//! run that left it.

use std::process::{Command, Output};

/// This test binary, run with `args`, without the variables that make the
/// PostgreSQL, browser and grpcio tests required (as on a developer's machine).
fn this_binary(args: &[&str]) -> Command {
    let mut c = Command::new(std::env::current_exe().expect("the test binary's path"));
    c.args(args);
    for var in ["DATABASE_URL", "CREDIT_TENDER_REQUIRE_PG", "CREDIT_TENDER_REQUIRE_BROWSER", "CREDIT_TENDER_REQUIRE_PYTHON_GRPC"] {
        c.env_remove(var);
    }
    c
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn a_run_without_postgresql_and_grpcio_says_what_it_skipped_in_one_line() {
    // A PostgreSQL-only test and the grpcio test, with no DATABASE_URL and no python3 on the PATH.
    let out = this_binary(&[
        "--exact",
        "store::a_bulk_write_refreshes_the_planners_statistics",
        "clients::a_python_grpcio_client_by_reflection_gets_the_same_answers_field_for_field",
    ])
    .env("PATH", "/nonexistent")
    .output()
    .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("2 passed"), "both tests ran: {stdout}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("SKIPPED")).collect();
    assert_eq!(lines.len(), 1, "one summary line, not one per skip: {stderr}");
    let line = lines[0];
    for want in ["1 PostgreSQL part (DATABASE_URL is not set)", "1 Python grpcio test (python3 cannot import grpc", ".ci/run"] {
        assert!(line.contains(want), "the summary lacks '{want}': {line}");
    }
    // Nothing skipped, nothing said.
    let out = this_binary(&["--exact", "suite::a_test_that_needs_nothing"]).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success() && stdout.contains("1 passed"), "{stdout}\n{stderr}");
    assert!(!stderr.contains("SKIPPED"), "{stderr}");
}

#[test]
fn a_test_that_needs_nothing() {
    assert_eq!(crate::helpers::knob("CREDIT_TENDER_NO_SUCH_KNOB", 7, 1), 7);
}

#[test]
fn a_process_left_running_fails_the_run_and_is_ended() {
    let out = this_binary(&["--exact", "--ignored", "suite::leaks_a_process_on_purpose"]).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(stdout.contains("1 passed"), "the leaking test itself passes: {stdout}");
    assert_eq!(out.status.code(), Some(1), "a run that left a process running must fail: {stdout}\n{stderr}");
    let line = stderr.lines().find(|l| l.contains("left running")).unwrap_or_else(|| panic!("no line names the leak: {stderr}"));
    assert!(line.contains("1 process(es)") && line.contains("sleep"), "{line}");
    let pid: u32 =
        line.rsplit(": ").next().and_then(|l| l.split_whitespace().next()).and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("{line}"));
    assert!(!crate::harness::alive(pid), "the leaked process {pid} is still running");
}

/// Leaves a `sleep` running, as a test that forgot its child would.
#[test]
#[ignore = "run by a_process_left_running_fails_the_run_and_is_ended, which expects this run to fail"]
fn leaks_a_process_on_purpose() {
    let child = Command::new("sleep").arg("600").spawn().unwrap();
    std::mem::forget(child);
}
