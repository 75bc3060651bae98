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

/// The module path of a file under `src/` (`store/sql.rs` → `store::sql`,
/// `store/mod.rs` → `store`); `None` for the crate root.
fn module_of(rel: &Path) -> Option<Vec<String>> {
    let mut parts: Vec<String> = rel.iter().map(|c| c.to_string_lossy().trim_end_matches(".rs").to_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    match parts.as_slice() {
        [] => None,
        [only] if only == "lib" || only == "main" => None,
        _ => Some(parts),
    }
}

/// The file that holds module `path` or, failing that, the nearest module
/// above it that has a file (an item's path names its module's file).
fn file_of(path: &[String]) -> Option<PathBuf> {
    (1..=path.len()).rev().find_map(|k| {
        let dir = path[..k].iter().fold(src(), |p, s| p.join(s));
        let file = dir.with_extension("rs");
        if file.is_file() {
            return Some(file);
        }
        let module = dir.join("mod.rs");
        module.is_file().then_some(module)
    })
}

/// The identifier paths that start at byte `at` of `code`: `a::b::C` is
/// one; `a::{b::C, d}` is `a::b::C` and `a::d`.
fn paths_at(code: &str, at: usize) -> Vec<Vec<String>> {
    let mut prefix = Vec::new();
    let mut rest = &code[at..];
    loop {
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if name.is_empty() {
            // A glob (`super::*`) imports from the module it names.
            if rest.starts_with('*') && !prefix.is_empty() {
                prefix.push("*".to_owned());
                return vec![prefix];
            }
            break;
        }
        rest = &rest[name.len()..];
        prefix.push(name);
        match rest.strip_prefix("::") {
            Some(more) => rest = more,
            None => return vec![prefix],
        }
    }
    let Some(group) = rest.strip_prefix('{') else { return vec![prefix] };
    // The group's items, split at its own commas.
    let (mut depth, mut items, mut start) = (0, Vec::new(), 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(&group[start..i]);
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for item in items {
        let item = item.trim_start();
        for tail in paths_at(item, 0) {
            out.push(prefix.iter().cloned().chain(tail).collect());
        }
    }
    out
}

/// File → the files of the crate it imports, outside its tests: what its
/// `crate::`, `super::` and `self::` paths name, and (in a module with
/// submodules) the paths that start with a submodule's name. A `mod`
/// declaration is no import.
fn file_imports() -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let mut all = Vec::new();
    files(&src(), &mut all);
    let mut graph = BTreeMap::new();
    for path in all {
        let rel = path.strip_prefix(src()).expect("under src/").to_owned();
        let Some(module) = module_of(&rel) else { continue };
        let code = code_of(&std::fs::read_to_string(&path).expect("a source file"));
        let children_dir = module.iter().fold(src(), |p, s| p.join(s));
        let mut used = BTreeSet::new();
        let bytes = code.as_bytes();
        for (at, _) in code.char_indices() {
            let before = if at == 0 { b' ' } else { bytes[at - 1] };
            if before.is_ascii_alphanumeric() || before == b'_' || before == b':' || before == b'$' {
                continue;
            }
            for mut names in paths_at(&code, at) {
                if names.len() < 2 {
                    continue;
                }
                let target: Vec<String> = match names[0].as_str() {
                    "crate" => names.split_off(1),
                    "self" => module.iter().cloned().chain(names.into_iter().skip(1)).collect(),
                    "super" => {
                        let ups = names.iter().take_while(|n| *n == "super").count();
                        let Some(base) = module.len().checked_sub(ups) else { continue };
                        module[..base].iter().cloned().chain(names.into_iter().skip(ups)).collect()
                    }
                    child if children_dir.join(format!("{child}.rs")).is_file() || children_dir.join(child).join("mod.rs").is_file() => {
                        module.iter().cloned().chain(names).collect()
                    }
                    _ => continue,
                };
                if let Some(file) = file_of(&target)
                    && file != path
                {
                    used.insert(file);
                }
            }
        }
        graph.insert(path, used);
    }
    graph
}

/// Every cycle of imports between files, each as the files round it (one
/// cycle per strongly connected set of files, found by depth-first search).
fn file_cycles(graph: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<Vec<PathBuf>> {
    fn reach(
        graph: &BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        from: &PathBuf,
        to: &PathBuf,
        seen: &mut BTreeSet<PathBuf>,
    ) -> Option<Vec<PathBuf>> {
        for next in graph.get(from).into_iter().flatten() {
            if next == to {
                return Some(vec![from.clone()]);
            }
            if seen.insert(next.clone())
                && let Some(mut way) = reach(graph, next, to, seen)
            {
                way.insert(0, from.clone());
                return Some(way);
            }
        }
        None
    }
    let mut cycles: Vec<Vec<PathBuf>> = Vec::new();
    for file in graph.keys() {
        if cycles.iter().any(|c| c.contains(file)) {
            continue;
        }
        if let Some(cycle) = reach(graph, file, file, &mut BTreeSet::new()) {
            cycles.push(cycle);
        }
    }
    cycles
}

/// No two files of `src/` import each other, directly or round about: each
/// file can be read knowing only the files it imports. (`cargo test --test
/// api layers` runs this with the layer check.)
#[test]
fn no_file_imports_a_file_that_imports_it() {
    let graph = file_imports();
    let shown = |p: &PathBuf| p.strip_prefix(src()).unwrap_or(p).display().to_string();
    let cycles: Vec<String> =
        file_cycles(&graph).iter().map(|cycle| cycle.iter().chain(cycle.first()).map(shown).collect::<Vec<_>>().join(" → ")).collect();
    assert!(cycles.is_empty(), "files that import each other (src/):\n{}", cycles.join("\n"));
}

/// The file check finds a cycle through `super::`, `crate::` and a
/// submodule's name, and none where the imports go one way.
#[test]
fn the_file_check_finds_a_cycle_and_only_a_cycle() {
    let p = |s: &str| PathBuf::from(s);
    let mut graph: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    graph.insert(p("a/mod.rs"), [p("a/x.rs")].into());
    graph.insert(p("a/x.rs"), [p("a/y.rs")].into());
    graph.insert(p("a/y.rs"), BTreeSet::new());
    assert!(file_cycles(&graph).is_empty());
    graph.insert(p("a/y.rs"), [p("a/mod.rs")].into());
    assert_eq!(file_cycles(&graph), vec![vec![p("a/mod.rs"), p("a/x.rs"), p("a/y.rs")]]);
    assert_eq!(paths_at("super::dialect::Backend;", 0), [["super", "dialect", "Backend"]]);
    assert_eq!(paths_at("super::*;", 0), [["super", "*"]]);
    assert_eq!(paths_at("super::{a::{B, C}, d};", 0), vec![vec!["super", "a", "B"], vec!["super", "a", "C"], vec!["super", "d"]]);
    assert_eq!(module_of(Path::new("store/mod.rs")), Some(vec!["store".to_owned()]));
    assert_eq!(file_of(&["store".to_owned(), "sql".to_owned(), "SqlStore".to_owned()]), Some(src().join("store/sql.rs")));
}

/// The longest a function may be, in lines from its `fn` to its closing
/// brace, without a comment above it that says why (`// Long because: …`).
const LONG_FN_LINES: usize = 80;

/// `text` with the insides of strings, chars and comments blanked out (line
/// breaks kept), so that braces can be counted.
fn blank_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied().unwrap_or(' ');
        if c == '/' && next == '/' {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == '*' {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == '"' || next == '#')
            && !chars.get(i.wrapping_sub(1)).is_some_and(|p| p.is_alphanumeric() || *p == '_')
        {
            // A raw string: r"…", r#"…"#, …
            let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
            if chars.get(i + 1 + hashes) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            out.push(' ');
            i += 2 + hashes;
            let close: String = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
            while i < chars.len() && !chars[i..].iter().take(close.len()).copied().eq(close.chars()) {
                out.push(blank(chars[i]));
                i += 1;
            }
            i += close.len();
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
            i += 1;
        } else if c == '\'' && (chars.get(i + 2) == Some(&'\'') || (next == '\\' && chars[i + 2..].iter().take(10).any(|c| *c == '\''))) {
            // A char literal ('{', '\n', '\u{7b}'), not a lifetime.
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                out.push(' ');
                i += 1;
            }
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Each function of `text` longer than [`LONG_FN_LINES`] with no `Long
/// because` in the comments and attributes right above it: its name, first
/// line (from 1) and length in lines.
fn long_functions(text: &str) -> Vec<(String, usize, usize)> {
    let code = blank_literals(text);
    let lines: Vec<&str> = code.lines().collect();
    let original: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (at, line) in lines.iter().enumerate() {
        let Some(pos) = line.find("fn ") else { continue };
        if pos > 0 && line[..pos].chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = line[pos + 3..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if name.is_empty() {
            continue;
        }
        // The body: the first `{` at depth 0 of the signature (a `;` first is a declaration).
        let (mut depth, mut opened, mut end) = (0i32, false, None);
        'scan: for (k, l) in lines.iter().enumerate().skip(at) {
            let from = if k == at { pos } else { 0 };
            for c in l[from..].chars() {
                match c {
                    '(' | '[' | '<' if !opened => {}
                    ';' if !opened && depth == 0 => break 'scan,
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => {
                        depth -= 1;
                        if opened && depth == 0 {
                            end = Some(k);
                            break 'scan;
                        }
                    }
                    _ => {}
                }
            }
        }
        let Some(end) = end else { continue };
        let length = end - at + 1;
        if length <= LONG_FN_LINES {
            continue;
        }
        let above = original[..at].iter().rev().map(|l| l.trim()).take_while(|l| l.starts_with("//") || l.starts_with("#["));
        if !above.into_iter().any(|l| l.contains("Long because")) {
            found.push((name, at + 1, length));
        }
    }
    found
}

/// No function in `src/` is longer than [`LONG_FN_LINES`] lines unless a
/// comment right above it says why (`// Long because: …`): a long one is
/// usually steps that want names.
#[test]
fn no_function_is_long_without_saying_why() {
    let mut all = Vec::new();
    files_all(&src(), &mut all);
    let mut long = Vec::new();
    for path in all {
        let text = std::fs::read_to_string(&path).expect("a source file");
        for (name, line, length) in long_functions(&text) {
            long.push(format!("{}:{line} fn {name}: {length} lines", path.strip_prefix(src()).unwrap_or(&path).display()));
        }
    }
    assert!(long.is_empty(), "functions over {LONG_FN_LINES} lines with no `// Long because:` above them:\n{}", long.join("\n"));
}

/// The most lines a file of `src/` may have: past it, a file holds more
/// than one thing a reader must keep in mind at once.
const MAX_FILE_LINES: usize = 600;

/// No file in `src/` is over [`MAX_FILE_LINES`] lines (generated code is
/// not in `src/`).
#[test]
fn no_file_is_over_six_hundred_lines() {
    let mut all = Vec::new();
    files_all(&src(), &mut all);
    let mut long: Vec<String> = all
        .iter()
        .filter_map(|path| {
            let lines = std::fs::read_to_string(path).expect("a source file").lines().count();
            (lines > MAX_FILE_LINES).then(|| format!("{}: {lines} lines", path.strip_prefix(src()).unwrap_or(path).display()))
        })
        .collect();
    long.sort();
    assert!(long.is_empty(), "files over {MAX_FILE_LINES} lines:\n{}", long.join("\n"));
}

/// Every `.rs` file under `dir`, tests included.
fn files_all(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a source folder") {
        let path = entry.expect("a folder entry").path();
        if path.is_dir() {
            files_all(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The length check counts a body's lines, sees past braces in strings,
/// chars and comments, skips declarations, and takes a reason above.
#[test]
fn the_length_check_counts_bodies_and_reads_reasons() {
    let body = |n: usize| "    let x = 1;\n".repeat(n);
    let long = format!("fn long() {{\n{}}}\n", body(LONG_FN_LINES - 1));
    assert_eq!(long_functions(&long), [("long".to_owned(), 1, LONG_FN_LINES + 1)]);
    let fits = format!("fn fits() {{\n{}}}\n", body(LONG_FN_LINES - 2));
    assert!(long_functions(&fits).is_empty());
    let tricky =
        format!("fn tricky() {{\n    let s = \"}}\"; let c = '}}'; // }}\n    let r = r#\"}}\"#;\n{}}}\n", body(LONG_FN_LINES - 3));
    assert_eq!(long_functions(&tricky), [("tricky".to_owned(), 1, LONG_FN_LINES + 1)]);
    let said = format!("// Long because: one arm per variant.\n#[allow(dead_code)]\n{long}");
    assert!(long_functions(&said).is_empty());
    assert!(long_functions("trait T {\n    fn f(&self) -> u32;\n}\n").is_empty());
}
