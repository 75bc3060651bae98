//! What a command that runs in this process opens: the rule files, and the
//! credit store (its URL checked first, its password hidden in messages).

use super::exit::Exit;
use crate::rules::Rules;
use crate::store::Store;
use clap::Args;
use std::path::PathBuf;

/// `--db` when neither it nor `CREDIT_TENDER_DB` is given: a SQLite file
/// in the working folder.
pub(super) const DEFAULT_DB: &str = "sqlite://credit-tender.db";

#[derive(Debug, Args)]
pub struct RuleArgs {
    /// Allow-list of genuine credit codes that fail the checksum (default: the shipped list).
    #[arg(long, value_name = "FILE")]
    pub allow_list: Option<PathBuf>,
    /// Score bands per domain (default: the shipped policies/score-bands.toml).
    #[arg(long, value_name = "FILE")]
    pub score_bands: Option<PathBuf>,
    /// Penalty publication periods per category (default: the shipped
    /// policies/publication-periods.toml).
    #[arg(long, value_name = "FILE")]
    pub publication_periods: Option<PathBuf>,
}

/// The rule files named (the shipped ones where none is).
pub(super) fn load_rules(args: &RuleArgs) -> Result<Rules, Exit> {
    let paths = crate::rules::RulePaths {
        allow_list: args.allow_list.as_deref(),
        score_bands: args.score_bands.as_deref(),
        publication_periods: args.publication_periods.as_deref(),
    };
    Rules::load(paths).map_err(|e| Exit::config(e.to_string()))
}

pub(super) fn store_failed(e: crate::store::StoreError) -> Exit {
    Exit::unavailable(format!("store failed: {e}"))
}

/// `--db`: a URL with a scheme this build knows, or a usage error that says
/// how to write it (a bare path is the usual slip).
pub(super) fn store_url(s: &str) -> Result<String, String> {
    if crate::store::supported_url(s) {
        return Ok(s.to_owned());
    }
    match s.split_once("://") {
        Some((scheme, _)) => Err(format!("'{scheme}' is not a store this build has: use sqlite://PATH or postgres://…")),
        None => Err(format!("'{s}' has no scheme: use sqlite://{s} for a SQLite file, or postgres://… for PostgreSQL")),
    }
}

/// A store URL with its password hidden, for messages.
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, _)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{}", &rest[userinfo.len() + 1..])
        }
        _ => url.to_owned(),
    }
}

/// Why a store could not be opened, in words, with its row of the exit table.
pub(super) fn open_failed(url: &str, e: crate::store::StoreError) -> Exit {
    use crate::store::StoreError;
    let url = redacted(url);
    match e {
        StoreError::UnsupportedUrl(_) => Exit::usage(format!("--db {url}: use sqlite://PATH or postgres://…")),
        StoreError::Missing(why) => Exit::no_input(format!("--db {url}: {why}")),
        StoreError::Schema(why) => Exit::unavailable(format!("--db {url}: {why}")),
        // EX_CONFIG: the store is set up wrong, not the data in it.
        StoreError::Unsafe(why) => Exit::config(format!("--db {url}: {why}")),
        StoreError::Unavailable(cause) => Exit::unavailable(format!("cannot open store {url}: {}", connect_reason(&cause))),
        other => {
            let cause = std::error::Error::source(&other).map(|c| format!(": {c}")).unwrap_or_default();
            Exit::unavailable(format!("cannot open store {url}: {other}{cause}"))
        }
    }
}

/// A connection error as a sentence: "connection refused", not sqlx's wrapping.
fn connect_reason(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused: nothing listens there (is PostgreSQL running, on that host and port?)".into()
        }
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::Database(d) => d.message().to_owned(),
        sqlx::Error::PoolTimedOut => "no connection within the time-out".into(),
        other => other.to_string(),
    }
}

pub(super) async fn open_store(url: &str, mode: crate::store::OpenMode) -> Result<Store, Exit> {
    open_store_with(url, crate::store::StoreOptions { mode, ..crate::store::StoreOptions::default() }).await
}

pub(super) async fn open_store_with(url: &str, options: crate::store::StoreOptions) -> Result<Store, Exit> {
    Store::open_options(url, options).await.map_err(|e| open_failed(url, e))
}
