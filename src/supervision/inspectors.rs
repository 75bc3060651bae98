//! The second random choice of 双随机: inspectors for the firms drawn, from
//! a list the supervisor imports with the draw. Pure, like [`super::draw`],
//! whose ranking it reuses, so the server and `credit-tender verify-draw`
//! run the same steps.
//!
//! **The list** is a CSV file as Excel or WPS writes it (UTF-8 with or
//! without a byte-order mark, UTF-16 with one, or GBK/GB18030 when the
//! request says so; CRLF or LF; commas, or tabs for "Unicode text"), with a
//! header row naming its columns:
//! - `inspector_id` (or `执法证号`): the inspector's identifier, e.g. the law
//!   enforcement certificate number; unique in the list;
//! - `name` (or `姓名`);
//! - `conflicted_codes` (or `回避企业`, optional): unified social credit codes
//!   of firms the inspector must not inspect (回避), separated by `;`, `；`,
//!   `、` or spaces.
//!
//! **The procedure**, `sha256-rank/v1` continued:
//! 1. The list's text is one line per inspector, sorted by id:
//!    `ID<TAB>NAME<TAB>CODES\n`, CODES the conflicted codes sorted and joined
//!    by `,` (empty when none). Its hex SHA-256 ([`list_digest`]) is in the
//!    commit, with the list's size and the inspectors per firm.
//! 2. The seed is the firm draw's seed.
//! 3. For each chosen firm, every inspector not conflicted with it is ranked
//!    by the hex SHA-256 of `SEED:CODE:ID`, e.g.
//!    `printf '%s:%s:%s' "$SEED" "$CODE" "$ID" | sha256sum`; the
//!    `per_firm` smallest ranks inspect it ([`assign`]).
//!
//! Before the commit, every firm of the population must have `per_firm`
//! inspectors it is not conflicted with ([`short_of`]): the draw cannot fail
//! after the seed is known.

use super::draw::{sha256_hex, smallest_ranks};
use crate::domain::text::{canonical_id, clean, shown, visible};
use crate::domain::{CreditCode, FieldError};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

/// The most inspectors a list may hold.
pub const MAX_INSPECTORS: usize = 10_000;
pub use super::risk::MAX_PER_FIRM;
/// Problems reported at once for a bad list.
const MAX_PROBLEMS: usize = 20;
/// The request field the list comes in, as errors name it.
pub const FIELD: &str = "inspectors_csv";

/// One inspector of the imported list.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Inspector {
    /// `inspector_id` (执法证号), unique in the list.
    pub id: String,
    /// `name` (姓名), as the list gives it.
    pub name: String,
    /// Credit codes of the firms the inspector must not inspect.
    pub conflicts: BTreeSet<String>,
}

/// The inspectors given to one chosen firm, each with the rank that chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The chosen firm.
    pub credit_code: String,
    /// Its `per_firm` inspectors, smallest rank first, each with its rank
    /// (hex SHA-256 of `SEED:CODE:ID`).
    pub inspectors: Vec<(Inspector, String)>,
}

/// The list as the text its digest is of: by id.
pub fn list_text(list: &[Inspector]) -> String {
    let mut sorted: Vec<&Inspector> = list.iter().collect();
    sorted.sort();
    sorted.iter().map(|i| format!("{}\t{}\t{}\n", i.id, i.name, i.conflicts.iter().cloned().collect::<Vec<_>>().join(","))).collect()
}

/// Step 1: hex SHA-256 of [`list_text`], as the commit records it.
pub fn list_digest(list: &[Inspector]) -> String {
    sha256_hex(list_text(list).as_bytes())
}

/// Step 3: for each chosen firm, in the order given, the `per_firm`
/// inspectors not conflicted with it that rank first.
pub fn assign(firms: &[String], list: &[Inspector], seed: &str, per_firm: u32) -> Vec<Assignment> {
    firms
        .iter()
        .map(|code| {
            let free = list.iter().filter(|i| !i.conflicts.contains(code));
            let chosen = smallest_ranks(free, seed, |i| format!("{code}:{}", i.id), per_firm as usize);
            Assignment { credit_code: code.clone(), inspectors: chosen.into_iter().map(|(i, rank)| (i.clone(), rank)).collect() }
        })
        .collect()
}

/// A firm of `population` with fewer than `per_firm` inspectors it is not
/// conflicted with, and how many it has.
pub fn short_of<'a>(population: impl IntoIterator<Item = &'a str>, list: &[Inspector], per_firm: u32) -> Option<(&'a str, usize)> {
    population
        .into_iter()
        .map(|code| (code, list.iter().filter(|i| !i.conflicts.contains(code)).count()))
        .find(|(_, n)| *n < per_firm as usize)
}

/// Which of the header's columns holds what.
struct Columns {
    /// The header's columns: a row's cells beyond them must be empty.
    width: usize,
    id: usize,
    name: usize,
    conflicts: Option<usize>,
}

fn columns(header: &csv::StringRecord) -> Result<Columns, String> {
    let mut named = BTreeMap::new();
    for (i, h) in header.iter().enumerate().filter(|(_, h)| !h.trim().is_empty()) {
        if let Some(first) = named.insert(h.trim(), i) {
            return Err(format!("line 1: the header names the column '{}' twice (columns {} and {})", shown(h.trim()), first + 1, i + 1));
        }
    }
    for names in [["inspector_id", "执法证号"], ["name", "姓名"], ["conflicted_codes", "回避企业"]] {
        if let [Some(a), Some(b)] = names.map(|n| named.get(n)) {
            return Err(format!(
                "line 1: the header names the column {} twice, as '{}' and '{}' (columns {} and {})",
                names[0],
                names[0],
                names[1],
                a + 1,
                b + 1
            ));
        }
    }
    let find = |names: &[&str]| header.iter().position(|h| names.contains(&h.trim()));
    let id = find(&["inspector_id", "执法证号"]);
    let name = find(&["name", "姓名"]);
    match (id, name) {
        (Some(id), Some(name)) => Ok(Columns { width: header.len(), id, name, conflicts: find(&["conflicted_codes", "回避企业"]) }),
        _ => Err(format!(
            "line 1: the header must name the columns inspector_id (or 执法证号) and name (or 姓名), and may name conflicted_codes (or 回避企业); it has: {}",
            shown(&header.iter().collect::<Vec<_>>().join(","))
        )),
    }
}

/// Decodes the list's bytes. Without `encoding`: a byte-order mark decides,
/// else UTF-8 (a GBK file is refused with advice). With one (GB18030):
/// exactly that, never UTF-8 first — a short GBK list can be valid UTF-8
/// too (史伟 reads as ʷΰ) — and a byte-order mark contradicts it.
fn decode(bytes: &[u8], encoding: Option<&'static encoding_rs::Encoding>) -> Result<String, String> {
    if let Some(enc) = encoding.filter(|e| *e != encoding_rs::UTF_8) {
        if let Some((bom, _)) = encoding_rs::Encoding::for_bom(bytes) {
            return Err(format!(
                "line 1: the file starts with a {} byte-order mark, but inspectors_encoding says {}; leave inspectors_encoding empty",
                bom.name(),
                enc.name()
            ));
        }
        return match enc.decode_without_bom_handling_and_without_replacement(bytes) {
            Some(text) => Ok(text.into_owned()),
            None => {
                // The line is that of the first bytes that are not GB18030.
                let mut decoder = enc.new_decoder_without_bom_handling();
                let mut text = String::with_capacity(bytes.len() * 2);
                let (_, read) = decoder.decode_to_string_without_replacement(bytes, &mut text, true);
                let mut lines = crate::import::decode::Lines::default();
                lines.scan(text.as_bytes());
                lines.finish();
                let line = lines.line_at(text.len() as u64);
                Err(format!("line {line}: byte {} is not {} text", read + 1, enc.name()))
            }
        };
    }
    let mut decoded = crate::import::decode::Decoded::open(bytes, None).map_err(|e| e.reason)?;
    let mut text = String::new();
    if let Err(e) = decoded.read_to_string(&mut text) {
        let failure = decoded.failure().lock().expect("failure lock").clone();
        return Err(failure.map_or_else(|| e.to_string(), |f| format!("line {}: {}", f.line, f.reason)));
    }
    Ok(text)
}

/// One row's cells checked; problems pushed as `line N: ...`.
fn row(
    line: u64,
    record: &csv::StringRecord,
    c: &Columns,
    allow: &crate::domain::AllowList,
    problems: &mut Vec<String>,
) -> Option<Inspector> {
    let cell = |i: usize| record.get(i).unwrap_or("").trim();
    let before = problems.len();
    if let Some(extra) = (c.width..record.len()).find(|&i| !cell(i).is_empty()) {
        problems.push(format!(
            "line {line}: field {} '{}' is beyond the header's {} columns (a comma in a value? quote it)",
            extra + 1,
            shown(cell(extra)),
            c.width
        ));
    }
    let raw = cell(c.id);
    let id = match canonical_id(raw) {
        Ok(id) if !id.is_empty() && id.chars().count() <= 64 => id,
        Ok(_) => {
            problems.push(format!("line {line}: inspector_id '{}' must be 1 to 64 characters", shown(raw)));
            String::new()
        }
        Err(why) => {
            problems.push(format!("line {line}: inspector_id '{}' {why}", visible(&shown(raw))));
            String::new()
        }
    };
    let name = match clean(cell(c.name)) {
        Ok(name) if !name.is_empty() && name.chars().count() <= 64 => name,
        Ok(name) => {
            problems.push(format!("line {line}: name '{}' must be 1 to 64 characters", shown(&name)));
            String::new()
        }
        Err(why) => {
            problems.push(format!("line {line}: name '{}' {why}", visible(&shown(cell(c.name)))));
            String::new()
        }
    };
    let mut conflicts = BTreeSet::new();
    let text = c.conflicts.map_or("", cell);
    for code in text.split(|ch: char| ch == ';' || ch == '；' || ch == '、' || ch.is_whitespace()).filter(|s| !s.is_empty()) {
        match CreditCode::parse(code, allow) {
            Ok((code, _)) => {
                conflicts.insert(code.to_string());
            }
            Err(e) => problems.push(format!("line {line}: conflicted_codes '{}': credit code {e}", shown(code))),
        }
    }
    (problems.len() == before).then_some(Inspector { id, name, conflicts })
}

/// Reads an imported list; every problem (up to 20) with its line, as
/// editors count lines. An empty list is refused.
pub fn parse_csv(
    bytes: &[u8],
    encoding: Option<&'static encoding_rs::Encoding>,
    allow: &crate::domain::AllowList,
) -> Result<Vec<Inspector>, Vec<String>> {
    let text = decode(bytes, encoding).map_err(|e| vec![e])?;
    let mut lines = crate::import::decode::Lines::default();
    lines.scan(text.as_bytes());
    lines.finish();
    let first = text.lines().next().unwrap_or("");
    let delimiter = if first.contains('\t') && !first.contains(',') { b'\t' } else { b',' };
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(true).delimiter(delimiter).from_reader(text.as_bytes());
    let header = reader.headers().map_err(|e| vec![format!("line 1: {e}")])?.clone();
    let c = columns(&header).map_err(|e| vec![e])?;
    let mut problems = Vec::new();
    let mut list = Vec::new();
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| lines.line_at(p.byte()));
                problems.push(format!("line {line}: {e}"));
                break;
            }
        };
        let line = record.position().map_or(0, |p| lines.line_at(p.byte()));
        if record.iter().all(|cell| cell.trim().is_empty()) {
            continue;
        }
        if let Some(i) = row(line, &record, &c, allow, &mut problems) {
            if let Some(&first) = seen.get(&i.id) {
                problems.push(format!("line {line}: inspector_id '{}' is listed already on line {first}", shown(&i.id)));
            } else {
                seen.insert(i.id.clone(), line);
                list.push(i);
            }
        }
        if problems.len() >= MAX_PROBLEMS || list.len() > MAX_INSPECTORS {
            break;
        }
    }
    if list.len() > MAX_INSPECTORS {
        problems.push(format!("the list has more than {MAX_INSPECTORS} inspectors"));
    }
    if problems.is_empty() && list.is_empty() {
        problems.push("the list has a header and no inspector".into());
    }
    if problems.is_empty() { Ok(list) } else { Err(problems) }
}

/// The list's problems as field violations of the request.
pub fn field_errors(problems: Vec<String>) -> Vec<FieldError> {
    problems.into_iter().map(|p| FieldError::new(FIELD, p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow() -> crate::domain::AllowList {
        crate::domain::AllowList::new(Vec::<String>::new()).unwrap()
    }

    fn code(n: u32) -> String {
        CreditCode::with_check_character(&format!("91440300MA{n:07}")).unwrap().to_string()
    }

    fn list(n: usize) -> Vec<Inspector> {
        (0..n).map(|i| Inspector { id: format!("GD{i:04}"), name: format!("检查员{i}"), conflicts: BTreeSet::new() }).collect()
    }

    const SEED: &str = "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d";

    fn ids(a: &[Assignment]) -> Vec<Vec<String>> {
        a.iter().map(|a| a.inspectors.iter().map(|(i, _)| i.id.clone()).collect()).collect()
    }

    #[test]
    fn excel_csv_in_gbk_with_crlf_reads_with_lines_as_an_editor_counts_them() {
        let firm = code(1);
        let text = format!("执法证号,姓名,回避企业\r\nGD0002,李四,\r\n\r\nGD0001,张三,{firm}；{}\r\n", code(2));
        let (gbk, _, _) = encoding_rs::GBK.encode(&text);
        let got = parse_csv(&gbk, Some(encoding_rs::GB18030), &allow()).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].conflicts, [firm.clone(), code(2)].into_iter().collect());
        assert_eq!(list_text(&got), format!("GD0001\t张三\t{},{}\nGD0002\t李四\t\n", firm.clone().min(code(2)), firm.clone().max(code(2))));
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice(text.as_bytes());
        assert_eq!(parse_csv(&bom, None, &allow()).unwrap(), got, "UTF-8 with a BOM reads the same");
        let e = parse_csv(&gbk, None, &allow()).unwrap_err();
        assert!(e[0].contains("GB18030"), "{e:?}");
        let bad = "inspector_id,name,conflicted_codes\r\nGD1,甲,\r\n\r\nGD1,乙,\r\nGD3,,91440300MA0000001X\r\n";
        let e = parse_csv(bad.as_bytes(), None, &allow()).unwrap_err();
        assert!(e[0].starts_with("line 4: inspector_id 'GD1' is listed already on line 2"), "{e:?}");
        assert!(e[1].starts_with("line 5: name ''"), "{e:?}");
        assert!(e[2].starts_with("line 5: conflicted_codes '91440300MA0000001X'"), "{e:?}");
        assert!(parse_csv(b"id,who\r\n", None, &allow()).unwrap_err()[0].contains("inspector_id (or"));
    }

    #[test]
    fn inspectors_rank_by_seed_code_and_id_and_never_meet_a_conflicted_firm() {
        let firms: Vec<String> = (1..=5).map(code).collect();
        let mut l = list(8);
        l[0].conflicts.insert(firms[0].clone());
        let a = assign(&firms, &l, SEED, 2);
        assert_eq!(a.len(), 5);
        assert!(a[0].inspectors.iter().all(|(i, _)| i.id != "GD0000"));
        let (first, rank) = &a[1].inspectors[0];
        assert_eq!(rank, &sha256_hex(format!("{SEED}:{}:{}", firms[1], first.id).as_bytes()));
        assert!(a[1].inspectors[0].1 < a[1].inspectors[1].1);
        assert_eq!(short_of(firms.iter().map(String::as_str), &l, 8), Some((firms[0].as_str(), 7)));
        assert_eq!(short_of(firms.iter().map(String::as_str), &l, 7), None);
    }

    /// Changing one inspector, the seed or the count changes who inspects.
    #[test]
    fn one_inspector_the_seed_or_the_count_changed_changes_the_chosen_set() {
        let firms: Vec<String> = (1..=5).map(code).collect();
        let l = list(12);
        let before = ids(&assign(&firms, &l, SEED, 2));
        let chosen = &before[0][0];
        let mut renamed = l.clone();
        renamed.iter_mut().find(|i| &i.id == chosen).unwrap().id = "GD9999".into();
        assert_ne!(ids(&assign(&firms, &renamed, SEED, 2)), before);
        assert_ne!(list_digest(&renamed), list_digest(&l));
        let mut conflicted = l.clone();
        conflicted.iter_mut().find(|i| &i.id == chosen).unwrap().conflicts.insert(firms[0].clone());
        assert_ne!(ids(&assign(&firms, &conflicted, SEED, 2)), before);
        for n in 0..20 {
            let seed = sha256_hex(format!("other seed {n}").as_bytes());
            assert_ne!(ids(&assign(&firms, &l, &seed, 2)), before, "seed {seed}");
        }
        assert_ne!(ids(&assign(&firms, &l, SEED, 3)), before);
        assert_eq!(ids(&assign(&firms, &l, SEED, 2)), before, "the same inputs, the same inspectors");
    }
}
