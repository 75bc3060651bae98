//! Exit statuses: one table for every command, from BSD's sysexits.h, so
//! that a script can tell "the answer is no" from "you called it wrong"
//! from "try again later". The README's table is this one.
//!
//! | status | meaning |
//! | --- | --- |
//! | 0 | done |
//! | 1 | a check said no: `verify` (invalid signature, not in the log), `audit` (an alarm), `recompute` (fields differ) |
//! | 64 (EX_USAGE) | the command line is wrong: unknown flag, missing or bad value (`--db` without a scheme, `--listen` that does not resolve) |
//! | 65 (EX_DATAERR) | input data refused: an import file's lines, a malformed envelope, proof or key list, a request the server refused as invalid or unknown |
//! | 66 (EX_NOINPUT) | an input file, or the store a read-only command reads, does not exist or cannot be read |
//! | 69 (EX_UNAVAILABLE) | the store, the server or the port cannot be had: refused, unreachable, in use, not migrated |
//! | 70 (EX_SOFTWARE) | an internal error: a bug, to be reported (the server's INTERNAL, a panic) |
//! | 73 (EX_CANTCREAT) | an output file cannot be created (it exists, or the directory is missing) |
//! | 74 (EX_IOERR) | output cannot be written (stdout on a full disk, the auditor's state) |
//! | 77 (EX_NOPERM) | the server does not know the caller or does not allow it |
//! | 78 (EX_CONFIG) | a configuration file is wrong: keys (a log key missing), principals, TLS, policies, rule files |
//!
//! A reader that goes away (`| head`) changes none of these: see [`super::out`].

/// A failure with the exit status it should produce.
#[derive(Debug)]
pub struct Exit {
    pub status: i32,
    pub message: String,
}

/// The table, as `--help` prints it.
pub(super) const HELP: &str = "Exit status: 0 done; 1 a check said no (verify, audit, recompute); 64 bad command line; \
65 input data refused; 66 an input file or store does not exist; 69 store, server or port unavailable; \
70 internal error; 73 cannot create an output file; 74 cannot write output; 77 caller unknown or not allowed; \
78 configuration file wrong.";

impl Exit {
    pub const VERDICT: i32 = 1;
    pub const USAGE: i32 = 64;
    pub const DATA: i32 = 65;
    pub const NO_INPUT: i32 = 66;
    pub const UNAVAILABLE: i32 = 69;
    pub const SOFTWARE: i32 = 70;
    pub const CANT_CREATE: i32 = 73;
    pub const IO: i32 = 74;
    pub const NO_PERM: i32 = 77;
    pub const CONFIG: i32 = 78;

    fn with(status: i32, message: impl Into<String>) -> Exit {
        Exit { status, message: message.into() }
    }
    /// A check's answer is no (not an error of the command).
    pub(crate) fn verdict(message: impl Into<String>) -> Exit {
        Exit::with(Exit::VERDICT, message)
    }
    pub(crate) fn usage(message: impl Into<String>) -> Exit {
        Exit::with(Exit::USAGE, message)
    }
    pub(crate) fn data(message: impl Into<String>) -> Exit {
        Exit::with(Exit::DATA, message)
    }
    pub(crate) fn no_input(message: impl Into<String>) -> Exit {
        Exit::with(Exit::NO_INPUT, message)
    }
    pub(crate) fn unavailable(message: impl Into<String>) -> Exit {
        Exit::with(Exit::UNAVAILABLE, message)
    }
    pub(crate) fn software(message: impl Into<String>) -> Exit {
        Exit::with(Exit::SOFTWARE, message)
    }
    pub(crate) fn cant_create(message: impl Into<String>) -> Exit {
        Exit::with(Exit::CANT_CREATE, message)
    }
    pub(crate) fn io(message: impl Into<String>) -> Exit {
        Exit::with(Exit::IO, message)
    }
    pub(crate) fn config(message: impl Into<String>) -> Exit {
        Exit::with(Exit::CONFIG, message)
    }

    /// Reading an input file failed: missing or unreadable is 66, not text
    /// (not UTF-8) is 65, anything else 74.
    pub(crate) fn reading(path: &std::path::Path, e: &std::io::Error) -> Exit {
        let message = format!("{}: cannot read: {}", path.display(), io_reason(e));
        match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::IsADirectory => {
                Exit::no_input(message)
            }
            std::io::ErrorKind::InvalidData => Exit::data(message),
            _ => Exit::io(message),
        }
    }

    /// Creating an output file failed.
    pub(crate) fn creating(path: &std::path::Path, e: &std::io::Error) -> Exit {
        Exit::cant_create(format!("{}: cannot create: {}", path.display(), io_reason(e)))
    }

    /// A gRPC error from `server`, as a sentence with the code's canonical
    /// name (not Rust's), and the row of the table it belongs to.
    pub(crate) fn from_status(server: &str, e: &tonic::Status) -> Exit {
        use tonic::Code;
        if let Some(why) = not_grpc(e) {
            return Exit::unavailable(format!(
                "{server} did not answer as a gRPC server ({why}): is it the right port, or an HTTP port or proxy that does not pass gRPC (HTTP/2)?"
            ));
        }
        let name = code_name(e.code());
        let message =
            if e.message().is_empty() { format!("{server} answered {name}") } else { format!("{server} answered {name}: {}", e.message()) };
        let status = match e.code() {
            Code::InvalidArgument | Code::NotFound | Code::AlreadyExists | Code::FailedPrecondition | Code::OutOfRange => Exit::DATA,
            Code::Unauthenticated | Code::PermissionDenied => Exit::NO_PERM,
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Cancelled
            | Code::Unimplemented => Exit::UNAVAILABLE,
            Code::Ok | Code::Unknown | Code::Internal | Code::DataLoss => Exit::SOFTWARE,
        };
        Exit::with(status, message)
    }
}

pub(crate) use crate::import::io_reason;

/// Why an error is not a gRPC server's answer but the connection's: an
/// HTTP/1 or non-gRPC HTTP/2 server at the address (tonic then makes a
/// status from the HTTP status or the broken HTTP/2 stream).
fn not_grpc(e: &tonic::Status) -> Option<String> {
    let message = e.message();
    if let Some(at) = message.find("mapped from HTTP status code ") {
        let code = message[at + "mapped from HTTP status code ".len()..].split_whitespace().next().unwrap_or("");
        return Some(format!("it answered with HTTP status {code} and no gRPC status"));
    }
    let chain: Vec<String> = std::iter::successors(std::error::Error::source(e), |c| c.source()).map(ToString::to_string).collect();
    let broken = |m: &str| m.contains("h2 protocol error") || m.contains("http2 error") || m.starts_with("transport error");
    if broken(message) || chain.iter().any(|m| broken(m)) {
        return Some("the connection broke off in HTTP/2's framing".into());
    }
    None
}

/// gRPC's canonical name of a status code (grpc/doc/statuscodes.md).
pub(crate) fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_errors_name_their_code_as_grpc_does() {
        let e = Exit::from_status("http://x", &tonic::Status::not_found("no tender 'T'"));
        assert_eq!((e.status, e.message.as_str()), (Exit::DATA, "http://x answered NOT_FOUND: no tender 'T'"));
        assert_eq!(Exit::from_status("s", &tonic::Status::unauthenticated("who")).status, Exit::NO_PERM);
        assert_eq!(Exit::from_status("s", &tonic::Status::unavailable("down")).status, Exit::UNAVAILABLE);
        assert_eq!(Exit::from_status("s", &tonic::Status::internal("bug")).status, Exit::SOFTWARE);
    }
}
