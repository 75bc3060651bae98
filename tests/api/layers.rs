//! The crate's layers as its doc lists them (src/lib.rs, "# Layout"): every
//! module of `src/` imports only modules listed above it, and every module is
//! listed. Read from the source text: a `crate::NAME` path outside comments
//! and outside `#[cfg(test)]` modules is an import of `NAME`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The Layout list's module names, in order.
fn layout() -> Vec<String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).expect("src/lib.rs");
    let section = lib.split("//! # Layout").nth(1).expect("a Layout section in the crate doc");
    let mut names = Vec::new();
    for line in section.lines().skip(1).take_while(|l| l.starts_with("//!")) {
        let Some(item) = line.strip_prefix("//! - ") else { continue };
        let name: String = item.trim_start_matches(['[', '`']).chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        names.push(name);
    }
    names
}

/// The modules `lib.rs` declares.
fn declared() -> BTreeSet<String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).expect("src/lib.rs");
    lib.lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod ").or_else(|| l.trim().strip_prefix("mod ")))
        .map(|l| l.trim_end_matches(';').to_owned())
        .collect()
}

/// `text` without `//` comments and without the bodies of `#[cfg(test)]`
/// modules (brace-matched; the source's strings hold balanced braces).
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            let next = lines.peek().map(|l| l.trim_start()).unwrap_or("");
            if next.contains("mod ") && next.trim_end().ends_with('{') {
                let mut depth = 0i32;
                for body in lines.by_ref() {
                    depth += body.matches('{').count() as i32 - body.matches('}').count() as i32;
                    if depth <= 0 {
                        break;
                    }
                }
            }
            continue;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        let code = match line.find("//") {
            // A `//` inside a string (a URL) is kept: only a comment after code is cut.
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// Files under `dir` that are compiled outside tests: a file declared
/// `#[cfg(test)] mod NAME;` is left out.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut test_only = BTreeSet::new();
    for entry in std::fs::read_dir(dir).expect("a source folder") {
        let path = entry.expect("a folder entry").path();
        if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("a source file");
            let lines: Vec<&str> = text.lines().collect();
            for pair in lines.windows(2) {
                if pair[0].trim() == "#[cfg(test)]"
                    && let Some(name) = pair[1].trim().trim_start_matches("pub(crate) ").strip_prefix("mod ")
                    && let Some(name) = name.strip_suffix(';')
                {
                    test_only.insert(name.to_owned());
                }
            }
        }
    }
    for entry in std::fs::read_dir(dir).expect("a source folder") {
        let path = entry.expect("a folder entry").path();
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("").to_owned();
        if test_only.contains(&stem) {
            continue;
        }
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Module → the crate modules it imports, outside its tests.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut all = Vec::new();
    files(&src(), &mut all);
    for path in all {
        let rel = path.strip_prefix(src()).expect("under src/");
        let top = rel.components().next().expect("a first component").as_os_str().to_string_lossy().trim_end_matches(".rs").to_owned();
        if top == "lib" || top == "main" {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(&path).expect("a source file"));
        let entry = found.entry(top.clone()).or_default();
        for (at, _) in code.match_indices("crate::") {
            let name: String = code[at + 7..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if name != top && !name.is_empty() {
                entry.insert(name);
            }
        }
    }
    found
}

#[test]
fn every_module_imports_only_the_layers_listed_above_it() {
    let order = layout();
    let position: BTreeMap<&str, usize> = order.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
    let declared = declared();
    let unlisted: Vec<&String> = declared.iter().filter(|m| !position.contains_key(m.as_str())).collect();
    assert!(unlisted.is_empty(), "modules missing from the crate doc's Layout: {unlisted:?}");
    let stale: Vec<&String> = order.iter().filter(|m| !declared.contains(*m)).collect();
    assert!(stale.is_empty(), "the Layout lists modules lib.rs does not declare: {stale:?}");

    let mut upward = Vec::new();
    for (module, used) in imports() {
        let Some(&mine) = position.get(module.as_str()) else { continue };
        for name in used {
            match position.get(name.as_str()) {
                Some(&theirs) if theirs < mine => {}
                Some(_) => upward.push(format!("{module} imports {name}, listed below it")),
                None => upward.push(format!("{module} imports crate::{name}, which is no module of the Layout")),
            }
        }
    }
    assert!(upward.is_empty(), "imports against the layer order:\n{}", upward.join("\n"));
}

/// The check itself finds an upward import and skips tests and comments.
#[test]
fn the_layer_check_reads_code_not_comments_or_tests() {
    let text = "use crate::a::X; // crate::b in a comment\n//! crate::c in a doc\nfn f() {}\n#[cfg(test)]\nmod tests {\n    use crate::d;\n    fn g() { let s = \"{}\"; }\n}\n";
    let code = code_of(text);
    assert!(code.contains("crate::a"));
    for hidden in ["crate::b", "crate::c", "crate::d"] {
        assert!(!code.contains(hidden), "{hidden} should not count: {code}");
    }
}
