//! What the suite promises about itself, checked when the test binary exits:
//!
//! - **Skips are said, once, where they are seen.** A test that skips a part
//!   (no PostgreSQL, no browser, no grpcio) records it with [`skipped`]. The
//!   harness hides what passing tests print, so the binary writes one
//!   summary line to its standard error as it exits, after libtest's result
//!   line: plain `cargo test` shows it.
//! - **No process outlives the suite.** The binary is made the subreaper of
//!   everything it starts (Linux `PR_SET_CHILD_SUBREAPER`), so a process
//!   whose parent died (a browser whose driver was killed) stays its
//!   descendant instead of vanishing under init. At exit any descendant
//!   still running is listed, killed, and the binary exits 1: a leak fails
//!   the run that caused it.
//!
//! Both run from an `atexit` handler registered before `main` (an
//! `.init_array` entry, as the `ctor` crate does), since libtest has no
//! hook after its last test.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::Mutex;

/// What a skipped part needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Needs {
    Postgres,
    Browser,
    PythonGrpc,
    Python,
    Node,
    Java,
}

impl Needs {
    fn what(self, n: usize) -> String {
        let (one, many) = match self {
            Needs::Postgres => ("PostgreSQL part", "PostgreSQL parts"),
            Needs::Browser => ("browser test", "browser tests"),
            Needs::PythonGrpc => ("Python grpcio test", "Python grpcio tests"),
            Needs::Python => ("Python test", "Python tests"),
            Needs::Node => ("npm client test", "npm client tests"),
            Needs::Java => ("Java client test", "Java client tests"),
        };
        format!("{n} {}", if n == 1 { one } else { many })
    }
}

/// Skips so far: per need, how many and the first reason given.
static SKIPS: Mutex<BTreeMap<Needs, (usize, String)>> = Mutex::new(BTreeMap::new());

/// Records that a part of a test did not run for want of `needs`.
pub(crate) fn skipped(needs: Needs, why: &str) {
    let mut skips = SKIPS.lock().unwrap_or_else(|e| e.into_inner());
    skips.entry(needs).or_insert_with(|| (0, why.to_owned())).0 += 1;
}

/// The one line that says what did not run, if anything did not.
fn skip_summary() -> Option<String> {
    let skips = SKIPS.lock().unwrap_or_else(|e| e.into_inner());
    if skips.is_empty() {
        return None;
    }
    let parts: Vec<String> = skips.iter().map(|(needs, (n, why))| format!("{} ({why})", needs.what(*n))).collect();
    Some(format!("credit-tender tests: SKIPPED {}; `.ci/run` runs them all (README, \"Tests\")", parts.join(", ")))
}

/// One process as /proc shows it.
#[derive(Debug, Clone)]
pub(crate) struct Proc {
    pub pid: u32,
    pub ppid: u32,
    /// `Z` for a zombie: dead, waiting to be reaped.
    pub state: char,
    pub name: String,
}

/// Every process on the machine (those that vanish while read are skipped).
pub(crate) fn processes() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // "pid (name) state ppid …": the name may hold spaces and parentheses.
        let (open, close) = (stat.find('(')?, stat.rfind(')')?);
        let mut rest = stat[close + 1..].split_whitespace();
        let state = rest.next()?.chars().next()?;
        let ppid = rest.next()?.parse().ok()?;
        Some(Proc { pid, ppid, state, name: stat[open + 1..close].to_owned() })
    })
    .collect()
}

/// The live (not zombie) descendants of `root`, children before theirs.
pub(crate) fn descendants(root: u32) -> Vec<Proc> {
    let all = processes();
    let mut children: HashMap<u32, Vec<&Proc>> = HashMap::new();
    for p in &all {
        children.entry(p.ppid).or_default().push(p);
    }
    let mut out = Vec::new();
    let mut next = vec![root];
    while let Some(pid) = next.pop() {
        for child in children.get(&pid).into_iter().flatten() {
            next.push(child.pid);
            if child.state != 'Z' {
                out.push((*child).clone());
            }
        }
    }
    out
}

/// The live descendants of this test binary whose environment has
/// `name=value`: what a child started with that variable has started in
/// turn, even when a middle process is gone or a grandchild left its
/// process group (Chromium's crash handler does both).
pub(crate) fn marked(name: &str, value: &str) -> Vec<Proc> {
    let want = format!("{name}={value}");
    descendants(std::process::id())
        .into_iter()
        .filter(|p| {
            std::fs::read(format!("/proc/{}/environ", p.pid)).is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == want.as_bytes()))
        })
        .collect()
}

/// Whether `pid` is a live process (a zombie is not).
pub(crate) fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').and_then(|i| s[i + 1..].split_whitespace().next().map(|st| st != "Z")))
        .unwrap_or(false)
}

/// SIGKILL to `pid`, or to process group `-pid` (no libc call needed for a test).
pub(crate) fn kill(pid: i64) {
    let _ = std::process::Command::new("kill").args(["-KILL", "--", &pid.to_string()]).stderr(std::process::Stdio::null()).status();
}

extern "C" fn at_exit() {
    let mut stderr = std::io::stderr();
    if let Some(line) = skip_summary() {
        let _ = writeln!(stderr, "{line}");
    }
    let left = descendants(std::process::id());
    if !left.is_empty() {
        let list: Vec<String> = left.iter().map(|p| format!("{} {}", p.pid, p.name)).collect();
        let _ = writeln!(
            stderr,
            "credit-tender tests: FAILED: {} process(es) left running by the tests, now killed: {}",
            left.len(),
            list.join(", ")
        );
        for p in &left {
            kill(i64::from(p.pid));
        }
        // SIGKILL lands asynchronously; see them gone (a zombie is gone) before
        // saying so with the exit status. Not children, so not awaitable: looked
        // for every 10 ms, for up to 5 s.
        for _ in 0..500 {
            if left.iter().all(|p| !alive(p.pid)) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // SAFETY: ends the process at once, as exit() would, with status 1;
        // nothing after an atexit handler needs to run.
        unsafe { libc::_exit(1) };
    }
}

extern "C" fn init() {
    // SAFETY: plain system calls with constant arguments, before any thread exists.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        libc::atexit(at_exit);
    }
}

/// Runs [`init`] when the binary loads, before `main`.
#[used]
#[unsafe(link_section = ".init_array")]
static INIT: extern "C" fn() = init;
