//! What commands print, without `println!`: it panics when the reader has
//! gone (`credit-tender verify … | head -1`), and a panic exits 101, so a
//! script with `pipefail` read a valid signature as a failure.
//!
//! Here a closed pipe (EPIPE) only stops the printing: the command goes on
//! to its end and exits with the status its work earned, as if the reader
//! had read everything. Any other write error (a full disk under `> file`)
//! is kept, and [`finish`] turns it into exit status 74, so that output
//! lost is never reported as done.

use super::exit::Exit;
use std::io::Write;
use std::sync::Mutex;

/// The first write error other than a closed pipe, per stream.
static FAILED: Mutex<Option<String>> = Mutex::new(None);

/// Writes to stdout; a closed pipe ends output quietly.
pub(crate) fn out(args: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    let result = stdout.write_fmt(args).and_then(|()| stdout.flush());
    note(result, "stdout");
}

/// Writes to stderr; a closed pipe ends output quietly.
pub(crate) fn err(args: std::fmt::Arguments<'_>) {
    let mut stderr = std::io::stderr().lock();
    note(stderr.write_fmt(args), "stderr");
}

fn note(result: std::io::Result<()>, stream: &str) {
    match result {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => {
            let mut failed = FAILED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            failed.get_or_insert_with(|| format!("cannot write to {stream}: {}", super::exit::io_reason(&e)));
        }
    }
}

/// The command's result, unless output was lost to a write error (74).
pub(crate) fn finish(result: Result<(), Exit>) -> Result<(), Exit> {
    let failed = FAILED.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
    match (result, failed) {
        (Ok(()), Some(why)) => Err(Exit::io(why)),
        (result, _) => result,
    }
}

/// `println!` that survives a reader going away.
macro_rules! outln {
    ($($arg:tt)*) => { $crate::cli::out::out(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `print!` that survives a reader going away.
macro_rules! outp {
    ($($arg:tt)*) => { $crate::cli::out::out(format_args!($($arg)*)) };
}

/// `eprintln!` that survives a reader going away.
macro_rules! errln {
    ($($arg:tt)*) => { $crate::cli::out::err(format_args!("{}\n", format_args!($($arg)*))) };
}

pub(crate) use {errln, outln, outp};
