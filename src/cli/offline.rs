//! The commands that work on files and the store without a server:
//! `import` (all or nothing, then the write-ahead log settled) and `keygen`.

use super::*;

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
        .map_err(|e| Exit::io(format!("{}: cannot write: {}", args.out.display(), exit::io_reason(&e))))?;
    use ring::signature::KeyPair;
    outln!("{}", crate::signing::key_id(pair.public_key().as_ref()));
    errln!(
        "wrote {} (PKCS#8 v2, Ed25519). Add it to the keys file as status = \"active\" (with role = \"log\" for the transparency log's checkpoint key), mark the previous key of that role \"verify_only\", then send SIGHUP to the server.",
        args.out.display()
    );
    Ok(())
}
