//! The shipped demo data (`examples/data/`): about sixty clearly fictional
//! firms (names start with 演示, "demo") with valid credit codes, loaded
//! through the same importer users run.

use crate::config::Rules;
use crate::import::{import_file, FileOutcome, ImportOptions};
use crate::store::{Store, WriteMode};

/// The demo files, compiled in so that `credit-tender demo` works from anywhere.
pub const FILES: &[(&str, &str)] = &[
    ("demo-evaluations-2025.csv", include_str!("../examples/data/demo-evaluations-2025.csv")),
    ("demo-records.jsonl", include_str!("../examples/data/demo-records.jsonl")),
];

/// Imports the demo files into `store`; returns the data version reached.
pub async fn load(store: &Store, rules: &Rules) -> anyhow::Result<u64> {
    let dir = tempfile::tempdir()?;
    let mut version = store.current_version().await?;
    for (name, text) in FILES {
        let path = dir.path().join(name);
        std::fs::write(&path, text)?;
        let opts = ImportOptions { rules: rules.input(), mode: WriteMode::Commit, document_ref: None, progress: &|_| {} };
        match import_file(store, &path, &opts).await? {
            FileOutcome::Imported(o) | FileOutcome::Checked(o) => version = o.data_version,
            FileOutcome::Rejected(errors) => {
                let list: Vec<String> = errors.iter().map(|e| format!("{name}:{}: {}", e.line, e.violation)).collect();
                anyhow::bail!("shipped demo data is invalid:\n{}", list.join("\n"));
            }
        }
    }
    Ok(version)
}
