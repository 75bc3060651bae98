//! The by-hand checks of the draw in the README and in docs/zh-CN: every
//! inline `printf … | sha256sum` runs as written in bash and gives the hash
//! the text states, the same in both languages.

use std::path::Path;

/// The example's seed and firm, as the READMEs give them.
const SEED: &str = "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d";
const CODE: &str = "91440300MA000107XR";

/// Each inline code span `printf … | sha256sum` of `file`, and what bash prints for it.
fn hand_checks(file: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
    let spans: Vec<&str> = text
        .split('`')
        .enumerate()
        .filter(|(i, s)| i % 2 == 1 && s.starts_with("printf") && s.ends_with("| sha256sum"))
        .map(|(_, s)| s)
        .collect();
    spans
        .into_iter()
        .map(|command| {
            let out = std::process::Command::new("bash")
                .args(["-e", "-u", "-o", "pipefail", "-c", command])
                .env("SEED", SEED)
                .env("CODE", CODE)
                .output()
                .expect("run bash");
            assert!(out.status.success(), "{file}: `{command}`: {}", String::from_utf8_lossy(&out.stderr));
            (command.to_owned(), String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap_or("").to_owned())
        })
        .collect()
}

#[test]
fn the_readme_hand_checks_run_in_bash_and_agree_in_both_languages() {
    let en = hand_checks("README.md");
    let zh = hand_checks("docs/zh-CN/README.md");
    assert_eq!(en.len(), 3, "{en:?}");
    assert_eq!(zh, en, "the Chinese README's commands and hashes are the English ones");
    let hashes: Vec<&str> = en.iter().map(|(_, h)| h.as_str()).collect();
    assert!(hashes.contains(&"c0fc618379dc8caca6efd936cc74803209f4c6f6d80dd37e7b23082445afc7ff"), "{en:?}");
    assert!(hashes.iter().any(|h| h.starts_with("5c2995ae")), "GD0001's rank as stated: {en:?}");
    for file in ["README.md", "docs/zh-CN/README.md"] {
        let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
        assert!(text.contains("c0fc618379dc8caca6efd936cc74803209f4c6f6d80dd37e7b23082445afc7ff") && text.contains("5c2995ae"), "{file}");
    }
}
