//! The commands that work on files and the store without a server:
//! `import` (all or nothing, then the write-ahead log settled) and `keygen`.

use super::exit::Exit;
use super::open::{DEFAULT_DB, RuleArgs, load_rules, open_store_with, store_url};
use super::out::{errln, outln};
use crate::import::{FileOutcome, ImportOptions, import_file};
use crate::store::{Store, WriteMode};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the key; refused if the file exists. Missing parent
    /// folders are created (mode 0700).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// `import --encoding`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Encoding {
    #[value(name = "utf-8", alias = "utf8")]
    Utf8,
    /// GB18030; GBK, GB2312 and code page 936 are its subsets.
    #[value(name = "gb18030", aliases = ["gbk", "gb2312", "cp936", "gb-18030"])]
    Gb18030,
}

impl Encoding {
    fn get(self) -> &'static encoding_rs::Encoding {
        match self {
            Encoding::Utf8 => encoding_rs::UTF_8,
            Encoding::Gb18030 => encoding_rs::GB18030,
        }
    }
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Files to import: .jsonl/.ndjson (records tagged by "type") or .csv (evaluation tables).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Credit store: sqlite://PATH (created if missing, except by --dry-run) or postgres://…
    #[arg(long, env = "CREDIT_TENDER_DB", default_value = DEFAULT_DB, value_parser = store_url)]
    pub db: String,
    /// Check every line, including conflicts with stored records, and store
    /// nothing. Only reads: the store must exist, and is never migrated.
    #[arg(long)]
    pub dry_run: bool,
    /// Document reference for CSV rows that have no document_ref column.
    #[arg(long, value_name = "REF")]
    pub document_ref: Option<String>,
    /// The character encoding of files that are not UTF-8: GB18030, a
    /// superset of GBK, which Excel writes for "CSV" on Chinese Windows (or
    /// utf-8, the default); any letter case. A byte-order mark (UTF-8 or
    /// UTF-16) always wins, and a file that is valid UTF-8 is read as UTF-8.
    #[arg(long, value_enum, ignore_case = true, value_name = "ENCODING")]
    pub encoding: Option<Encoding>,
    /// Milliseconds each file waits for its turn while another process (a
    /// server's write, another import) holds the store's write lock.
    #[arg(long, default_value_t = IMPORT_WRITE_WAIT_MS, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    pub write_wait_ms: u64,
    #[command(flatten)]
    pub rules: RuleArgs,
}

/// How long an import waits for another import to finish by default: ten
/// minutes, about sixty million rows at the rate in BENCHMARKS.md.
const IMPORT_WRITE_WAIT_MS: u64 = 600_000;

pub(super) async fn import(args: ImportArgs) -> Result<(), Exit> {
    let rules = load_rules(&args.rules)?;
    // A dry run only reads: it never creates or migrates a store.
    let mode = if args.dry_run { crate::store::OpenMode::Existing { read_only: false } } else { crate::store::OpenMode::Create };
    let options = crate::store::StoreOptions { write_wait: Duration::from_millis(args.write_wait_ms), mode, ..Default::default() };
    let store = open_store_with(&args.db, options).await?;
    let mode = if args.dry_run { WriteMode::DryRun } else { WriteMode::Commit };
    let (mut rejected, mut unreadable) = (0usize, 0usize);
    for path in &args.files {
        if store.is_own_file(path) {
            // Opening it here would drop this process's SQLite locks on it when closed.
            rejected += 1;
            errln!("{}: is the credit store's own database file (given to --db); nothing was imported from it", path.display());
            continue;
        }
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let bar = indicatif::ProgressBar::with_draw_target(Some(size), indicatif::ProgressDrawTarget::stderr());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_message(path.display().to_string());
        let progress = |read: u64| bar.set_position(read);
        let opts = ImportOptions {
            rules: rules.input(),
            mode,
            document_ref: args.document_ref.as_deref(),
            encoding: args.encoding.map(Encoding::get),
            progress: &progress,
        };
        let outcome = import_file(&store, path, &opts).await;
        bar.finish_and_clear();
        match outcome.map_err(|e| Exit::unavailable(format!("{}: store failed: {e}", path.display())))? {
            FileOutcome::Imported(o) if o.created => {
                outln!("{}: imported {} record(s) as data version {} ({} unchanged)", path.display(), o.stored, o.data_version, o.unchanged)
            }
            FileOutcome::Imported(o) => {
                outln!("{}: nothing new: all {} record(s) already stored (data version {})", path.display(), o.unchanged, o.data_version)
            }
            FileOutcome::Checked(o) => outln!(
                "{}: valid: {} record(s) would be stored, {} unchanged (dry run, nothing stored)",
                path.display(),
                o.stored,
                o.unchanged
            ),
            FileOutcome::Unreadable(why) => {
                unreadable += 1;
                errln!("{}: cannot read: {why}", path.display());
            }
            FileOutcome::Rejected(errors) => {
                rejected += 1;
                for e in &errors {
                    errln!("{e}");
                }
                errln!("{}: rejected, nothing from this file was stored ({} problem(s))", path.display(), errors.len());
            }
        }
    }
    if !args.dry_run {
        settle_log(&store).await;
    }
    let files = args.files.len();
    match (unreadable, rejected) {
        (0, 0) => Ok(()),
        (0, n) => Err(Exit::data(format!("{n} of {files} file(s) rejected"))),
        (n, 0) => Err(Exit::no_input(format!("{n} of {files} file(s) could not be read"))),
        (n, m) => Err(Exit::no_input(format!("{n} of {files} file(s) could not be read, {m} rejected"))),
    }
}

/// How long an import's last checkpoint waits for another process's read
/// or write to end before leaving the log to the server's checkpointer.
const SETTLE_WAIT: Duration = Duration::from_secs(2);

/// An import's last step (SQLite): its pages copied from the write-ahead
/// log into the database and the log cut to zero bytes, so that no later
/// write, in the server or anywhere, is the one that copies them (see
/// [`crate::store::StoreUpkeep::wal_checkpoint`]). What is imported is
/// committed already: a log still in use is left to the server's
/// background checkpointer, and said at debug level only.
async fn settle_log(store: &Store) {
    use crate::store::WalMode;
    // PASSIVE first: it copies without holding up anyone's write.
    let passive = store.wal_checkpoint(WalMode::Passive).await;
    match store.wal_checkpoint(WalMode::Truncate(SETTLE_WAIT)).await {
        Ok(Some(c)) if !c.busy => tracing::debug!("the write-ahead log is copied into the store and truncated"),
        Ok(Some(c)) => tracing::debug!(frames = c.frames, "the write-ahead log is in use by another process; left to its checkpointer"),
        Ok(None) => {}
        Err(e) => {
            tracing::debug!(error = %e, passive_ok = passive.is_ok(), "the write-ahead log could not be truncated; left to the server's checkpointer")
        }
    }
}

pub(super) fn keygen(args: &KeygenArgs) -> Result<(), Exit> {
    use std::io::Write;
    let pkcs8 = crate::signing::generate_pkcs8();
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(&pkcs8).expect("generated key is valid");
    // Missing parent folders are made (only the owner may enter them: they hold keys).
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
        let mut dirs = std::fs::DirBuilder::new();
        dirs.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            dirs.mode(0o700);
        }
        dirs.create(parent).map_err(|e| Exit::creating(parent, &e))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&args.out).map_err(|e| Exit::creating(&args.out, &e))?;
    file.write_all(&pkcs8)
        .and_then(|()| file.sync_all())
        .map_err(|e| Exit::io(format!("{}: cannot write: {}", args.out.display(), super::exit::io_reason(&e))))?;
    use ring::signature::KeyPair;
    outln!("{}", crate::signing::key_id(pair.public_key().as_ref()));
    errln!(
        "wrote {} (PKCS#8 v2, Ed25519). Add it to the keys file as status = \"active\" (with role = \"log\" for the transparency log's checkpoint key), mark the previous key of that role \"verify_only\", then send SIGHUP to the server.",
        args.out.display()
    );
    Ok(())
}
