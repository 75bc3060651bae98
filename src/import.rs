//! Reading record files: JSON Lines (one record per line, tagged by `type`)
//! and CSV tables of evaluation results as they are published.
//!
//! Files stream: each line is parsed, validated and handed to the store's
//! write transaction as it is read, so memory stays flat however large the
//! file. A file is all-or-nothing: any bad line rolls the whole file back.
//!
//! Files are read as spreadsheets write them ([`decode`]): UTF-8 with or
//! without a byte-order mark, UTF-16 with one, or GB18030/GBK when the
//! operator says so; CRLF, LF or CR line ends; tables separated by commas or
//! (Excel's "Unicode text") tabs. Every line number reported is the one an
//! editor shows.

pub(crate) mod decode;

use crate::domain::Record;
use crate::domain::input::{FieldError, InputRules, parse_record};
use crate::store::{Store, StoreError, WriteMode, WriteOutcome};
use serde_json::{Map, Value};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// One problem at one line of one file, shown as `FILE:LINE: field: reason`
/// (`FILE: field: reason` for the file as a whole, line 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// The file, as named on the command line.
    pub file: PathBuf,
    /// 1-based line (for CSV, the line the row starts on); 0 for the whole file.
    pub line: u64,
    /// The field and why it is refused.
    pub violation: FieldError,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            0 => write!(f, "{}: {}", self.file.display(), self.violation),
            line => write!(f, "{}:{line}: {}", self.file.display(), self.violation),
        }
    }
}

pub use crate::domain::text::io_reason;

/// The two file forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON record per line (`PutRecords`' record shape).
    JsonLines,
    /// A published evaluation result table: [`CSV_COLUMNS`], then
    /// [`CSV_OPTIONAL_COLUMNS`]; comma- or tab-separated.
    Csv,
}

impl Format {
    /// By extension: `.jsonl`/`.ndjson`, or a table: `.csv` (or `.tsv`,
    /// `.txt`: Excel's "Unicode text" is tab-separated).
    pub fn of(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" => Some(Format::JsonLines),
            "csv" | "tsv" | "txt" => Some(Format::Csv),
            _ => None,
        }
    }
}

/// The columns of a published evaluation result table, in this order.
pub const CSV_COLUMNS: &[&str] = &["credit_code", "entity_name", "domain", "issuer", "year", "grade", "score", "valid_from", "valid_to"];
/// Columns a table may add after those: the record id (default
/// `eval:ISSUER:DOMAIN:YEAR:CODE`) and the announcement it comes from.
pub const CSV_OPTIONAL_COLUMNS: &[&str] = &["id", "document_ref"];

/// How one file went.
#[derive(Debug)]
pub enum FileOutcome {
    /// Every record was stored, in one transaction.
    Imported(WriteOutcome),
    /// Dry run: what a real import would have done; nothing was kept.
    Checked(WriteOutcome),
    /// Nothing was stored: every refused line, in file order.
    Rejected(Vec<LineError>),
    /// The file could not be opened (missing, not permitted, a directory): why.
    Unreadable(String),
}

/// Options that apply to every file of one import.
pub struct ImportOptions<'a> {
    /// The rule files that validate each record (credit-code allow-list,
    /// score bands, publication periods).
    pub rules: InputRules<'a>,
    /// Whether a record id already stored is refused or versioned.
    pub mode: WriteMode,
    /// Used for CSV rows without a `document_ref` column.
    pub document_ref: Option<&'a str>,
    /// The encoding of files without a byte-order mark (default UTF-8).
    pub encoding: Option<&'static encoding_rs::Encoding>,
    /// Called with the bytes read so far, for a progress display.
    pub progress: &'a (dyn Fn(u64) + Sync),
}

/// Imports one file as one data version, or not at all.
// Long because: one file as one data version (read, check each line, stage, commit or roll back), with each step's progress and errors.
pub async fn import_file(store: &Store, path: &Path, opts: &ImportOptions<'_>) -> Result<FileOutcome, StoreError> {
    let reject = |line: u64, field: &str, reason: String| {
        Ok(FileOutcome::Rejected(vec![LineError { file: path.to_owned(), line, violation: FieldError::new(field, reason) }]))
    };
    let Some(format) = Format::of(path) else {
        return reject(
            0,
            "file",
            "unknown file type: name it .jsonl (or .ndjson) for JSON Lines, .csv (or .tsv, .txt) for an evaluation table".into(),
        );
    };
    let file =
        match File::open(path).and_then(|f| if f.metadata()?.is_dir() { Err(std::io::ErrorKind::IsADirectory.into()) } else { Ok(f) }) {
            Ok(f) => f,
            Err(e) => return Ok(FileOutcome::Unreadable(io_reason(&e))),
        };
    // The file is read and parsed on a thread of its own while this one
    // hands the parsed records to the store (whose SQLite runs on a third):
    // the two halves of an import take about as long as each other, and
    // overlap. At most PARSED_AHEAD chunks wait between them, so memory
    // stays flat however large the file.
    let rules = OwnedRules {
        allow_list: opts.rules.allow_list.clone(),
        score_bands: opts.rules.score_bands.clone(),
        publication: opts.rules.publication.clone(),
    };
    let document_ref = opts.document_ref.map(str::to_owned);
    let encoding = opts.encoding;
    let read = Arc::new(AtomicU64::new(0));
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<Item>, (u64, FieldError)>>(PARSED_AHEAD);
    let parser = {
        let read = read.clone();
        std::thread::Builder::new().name("import-parser".into()).spawn(move || {
            let rules = rules.input();
            let reader = match decode::Decoded::open(CountingReader { inner: file, read }, encoding) {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Err((e.line, FieldError::new("encoding", e.reason))));
                    return;
                }
            };
            let lines: Box<dyn Iterator<Item = Item>> = match format {
                Format::JsonLines => Box::new(JsonLines::new(BufReader::with_capacity(1 << 16, reader), rules)),
                Format::Csv => match CsvRows::new(reader, rules, document_ref.as_deref()) {
                    Ok(rows) => Box::new(rows),
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                },
            };
            let mut chunk = Vec::with_capacity(PARSED_CHUNK);
            for item in lines {
                chunk.push(item);
                // A closed channel: the store stopped taking records.
                if chunk.len() == PARSED_CHUNK && tx.send(Ok(std::mem::replace(&mut chunk, Vec::with_capacity(PARSED_CHUNK)))).is_err() {
                    return;
                }
            }
            if !chunk.is_empty() {
                let _ = tx.send(Ok(chunk));
            }
        })
    };
    let parser = match parser {
        Ok(p) => p,
        Err(e) => return reject(0, "file", format!("cannot start reading: {e}")),
    };
    // A bad CSV header is known before any record.
    let first = match rx.recv() {
        Ok(Err((line, v))) => {
            let _ = parser.join();
            return reject(line, &v.field, v.reason);
        }
        Ok(Ok(chunk)) => chunk,
        Err(_) => Vec::new(),
    };
    let progress = opts.progress;
    let chunks = std::iter::once(first).chain(rx.into_iter().map_while(Result::ok)).inspect(|_| progress(read.load(Ordering::Relaxed)));
    let mut lines = chunks.flatten();
    let mut seen_any = false;
    let mut counted = std::iter::from_fn(|| {
        let item = lines.next();
        seen_any |= item.is_some();
        item
    });
    let source = format!("import:{}", path.file_name().and_then(|n| n.to_str()).unwrap_or("file"));
    // The operator: any owner, but no record may change owner (domain::ownership).
    let result = store.write(&crate::domain::ownership::Writer::operator(source), &mut counted, opts.mode).await;
    // Unblocks the parser if the store stopped taking records early.
    drop(lines);
    if parser.join().is_err() {
        return Err(StoreError::Corrupt(format!("reading {} failed unexpectedly", path.display())));
    }
    match result {
        Ok(_) if !seen_any => reject(1, "file", "is empty: no records".into()),
        Ok(outcome) if opts.mode == WriteMode::DryRun => Ok(FileOutcome::Checked(outcome)),
        Ok(outcome) => Ok(FileOutcome::Imported(outcome)),
        Err(StoreError::Rejected(problems) | StoreError::NotOwner(problems)) => Ok(FileOutcome::Rejected(
            problems.into_iter().map(|(line, violation)| LineError { file: path.to_owned(), line, violation }).collect(),
        )),
        Err(e) => Err(e),
    }
}

/// A parsed line: its number, and the record or what is wrong with it.
type Item = (u64, Result<Record, Vec<FieldError>>);

/// Lines parsed per hand-over to the store's side.
const PARSED_CHUNK: usize = 256;
/// Chunks parsed ahead of the store at most.
const PARSED_AHEAD: usize = 8;

/// The input rules, owned by the parsing thread.
struct OwnedRules {
    allow_list: crate::domain::credit_code::AllowList,
    score_bands: crate::domain::score_bands::ScoreBands,
    publication: crate::domain::publication::PublicationPeriods,
}

impl OwnedRules {
    fn input(&self) -> InputRules<'_> {
        InputRules { allow_list: &self.allow_list, score_bands: &self.score_bands, publication: &self.publication }
    }
}

/// Counts bytes read, for progress.
struct CountingReader<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// JSON Lines: blank lines are skipped; every other line is one record.
struct JsonLines<'a, R> {
    reader: R,
    rules: InputRules<'a>,
    line: u64,
    buf: Vec<u8>,
    done: bool,
}

impl<'a, R: BufRead> JsonLines<'a, R> {
    fn new(reader: R, rules: InputRules<'a>) -> Self {
        JsonLines { reader, rules, line: 0, buf: Vec::with_capacity(1024), done: false }
    }
}

fn one(field: &str, reason: impl Into<String>) -> Vec<FieldError> {
    vec![FieldError::new(field, reason)]
}

/// Parses one line of JSON Lines into a record.
pub fn parse_json_line(bytes: &[u8], rules: InputRules<'_>) -> Option<Result<Record, Vec<FieldError>>> {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => return Some(Err(one("encoding", format!("invalid UTF-8 at byte {} of the line", e.valid_up_to() + 1)))),
    };
    let text = text.trim_start_matches('\u{feff}').trim();
    if text.is_empty() {
        return None;
    }
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return Some(Err(one("json", format!("malformed JSON: {e}")))),
    };
    let Value::Object(obj) = value else {
        return Some(Err(one("json", "expected one JSON object per line")));
    };
    if !obj.contains_key("type") {
        return Some(Err(one("type", format!("is required, one of: {}", crate::domain::RecordType::expected()))));
    }
    Some(parse_record(&obj, rules).map(|p| p.record))
}

impl<R: BufRead> Iterator for JsonLines<'_, R> {
    type Item = (u64, Result<Record, Vec<FieldError>>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            self.buf.clear();
            self.line += 1;
            match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => {
                    // A decoding error ends the file: nothing after it can be trusted.
                    let why = match e.get_ref().and_then(|inner| inner.downcast_ref::<decode::DecodeError>()) {
                        Some(d) => one("encoding", d.reason.clone()),
                        None => one("file", format!("read failed: {e}")),
                    };
                    self.done = true;
                    return Some((self.line, Err(why)));
                }
            }
            if let Some(result) = parse_json_line(&self.buf, self.rules) {
                return Some((self.line, result));
            }
        }
    }
}

/// CSV evaluation tables: a header naming [`CSV_COLUMNS`], then one result per row.
struct CsvRows<'a, R: Read> {
    reader: csv::Reader<Quotes<BufReader<decode::Decoded<R>>>>,
    /// Editors' line numbers for the csv crate's byte offsets.
    lines: std::sync::Arc<std::sync::Mutex<decode::Lines>>,
    failure: std::sync::Arc<std::sync::Mutex<Option<decode::DecodeError>>>,
    rules: InputRules<'a>,
    /// The header's names, without the empty columns a spreadsheet leaves
    /// at its end (Excel writes `a,b,c,,,` for formatted empty columns).
    columns: Vec<String>,
    document_ref: Option<&'a str>,
    record: csv::ByteRecord,
    /// The row as the record parser reads it, reused from row to row.
    obj: Map<String, Value>,
    done: bool,
}

impl<'a, R: Read> CsvRows<'a, R> {
    fn new(inner: decode::Decoded<R>, rules: InputRules<'a>, document_ref: Option<&'a str>) -> Result<Self, (u64, FieldError)> {
        let (lines, failure) = (inner.lines(), inner.failure());
        let mut inner = BufReader::with_capacity(1 << 16, inner);
        // Commas, or tabs (Excel's "Unicode text"): as the header line has them.
        let head = inner.fill_buf().map_err(|e| (failure_line(&failure), read_error(&e)))?;
        let first = head.split(|&b| b == b'\n' || b == b'\r').next().unwrap_or_default();
        let delimiter = if first.contains(&b'\t') && !first.contains(&b',') { b'\t' } else { b',' };
        let inner = Quotes { inner, delimiter, state: QuoteState::StartField, offset: 0, open_at: 0, eof: false };
        let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(true).delimiter(delimiter).from_reader(inner);
        let header = match reader.byte_headers() {
            Ok(h) => h.clone(),
            Err(e) => return Err(csv_failure(e, &failure, &lines)),
        };
        let line = header.position().map_or(1, |p| lines.lock().expect("lines lock").line_at(p.byte()));
        if header.is_empty() {
            return Err((line, FieldError::new("file", "is empty: no header and no records")));
        }
        let mut columns = Vec::new();
        for (i, raw) in header.iter().enumerate() {
            let name =
                std::str::from_utf8(raw).map_err(|_| (line, FieldError::new("header", format!("column {} is not valid UTF-8", i + 1))))?;
            columns.push(name.trim_start_matches('\u{feff}').trim().to_ascii_lowercase());
        }
        while columns.last().is_some_and(String::is_empty) {
            columns.pop();
        }
        let expected = CSV_COLUMNS.join(",");
        let head_ok = columns.len() >= CSV_COLUMNS.len()
            && columns.iter().zip(CSV_COLUMNS).all(|(a, b)| a == b)
            && columns[CSV_COLUMNS.len()..].iter().all(|c| CSV_OPTIONAL_COLUMNS.contains(&c.as_str()));
        if !head_ok {
            let shown: String = columns.join(",");
            return Err((
                line,
                FieldError::new(
                    "header",
                    format!(
                        "unexpected header '{}': expected '{expected}', optionally followed by {}",
                        crate::domain::text::shown(&shown),
                        CSV_OPTIONAL_COLUMNS.join(", ")
                    ),
                ),
            ));
        }
        Ok(CsvRows { reader, lines, failure, rules, columns, document_ref, record: csv::ByteRecord::new(), obj: Map::new(), done: false })
    }

    fn row(&mut self) -> Result<Record, Vec<FieldError>> {
        // Cells under the header's trailing empty columns must be empty too.
        let filled = self.record.iter().rposition(|f| !f.trim_ascii().is_empty()).map_or(0, |i| i + 1);
        if self.record.len() < self.columns.len() {
            return Err(one("row", format!("has {} fields, the header has {}", self.record.len(), self.columns.len())));
        }
        if filled > self.columns.len() {
            return Err(one(
                "row",
                format!("has a value in column {filled}, which the header does not name (it names {})", self.columns.len()),
            ));
        }
        // One object serves every row: its keys and strings are written over
        // in place, not allocated anew per row (a million rows, ten fields).
        let obj = &mut self.obj;
        set(obj, "type", "evaluation");
        // Empty until a column or the default below fills them.
        set(obj, "document_ref", "");
        set(obj, "id", "");
        for (name, raw) in self.columns.iter().zip(self.record.iter()) {
            let text = std::str::from_utf8(raw).map_err(|_| one(name, "is not valid UTF-8"))?;
            set(obj, name, text);
        }
        if obj.get("document_ref").is_none_or(|v| v.as_str().is_none_or(|s| s.trim().is_empty())) {
            match self.document_ref {
                Some(d) => set(obj, "document_ref", d),
                None => return Err(one("document_ref", "is required: add a document_ref column or pass --document-ref")),
            }
        }
        if obj.get("id").is_none_or(|v| v.as_str().is_none_or(|s| s.trim().is_empty())) {
            let get = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or("").trim();
            let code = crate::domain::credit_code::compact(get("credit_code"));
            let id = format!("eval:{}:{}:{}:{}", get("issuer"), get("domain"), get("year"), code);
            set(obj, "id", &id);
        }
        parse_record(obj, self.rules).map(|p| p.record)
    }
}

/// Sets `obj[key]` to the string `value`, reusing the key and the string
/// already there.
fn set(obj: &mut Map<String, Value>, key: &str, value: &str) {
    match obj.get_mut(key) {
        Some(Value::String(s)) => {
            s.clear();
            s.push_str(value);
        }
        _ => {
            obj.insert(key.to_owned(), Value::String(value.to_owned()));
        }
    }
}

/// The line of the first decoding error (its text stops there).
fn failure_line(failure: &std::sync::Mutex<Option<decode::DecodeError>>) -> u64 {
    failure.lock().expect("failure lock").as_ref().map_or(0, |e| e.line)
}

fn read_error(e: &std::io::Error) -> FieldError {
    match e.get_ref().and_then(|inner| inner.downcast_ref::<decode::DecodeError>()) {
        Some(d) => FieldError::new("encoding", d.reason.clone()),
        None => FieldError::new("file", format!("read failed: {e}")),
    }
}

/// A hard csv error, at its line: a decoding error where the text stopped,
/// any other where the csv crate stopped.
fn csv_failure(
    e: csv::Error,
    failure: &std::sync::Mutex<Option<decode::DecodeError>>,
    lines: &std::sync::Mutex<decode::Lines>,
) -> (u64, FieldError) {
    match e.kind() {
        csv::ErrorKind::Io(io) => (failure_line(failure), read_error(io)),
        _ => {
            let line = e.position().map_or(0, |p| lines.lock().expect("lines lock").line_at(p.byte()));
            (line, FieldError::new("csv", format!("malformed CSV: {e}")))
        }
    }
}

impl<R: Read> Iterator for CsvRows<'_, R> {
    type Item = (u64, Result<Record, Vec<FieldError>>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            match self.reader.read_byte_record(&mut self.record) {
                Ok(false) => return None,
                // A row of empty cells is what a spreadsheet writes for a
                // formatted but empty row: nothing to import.
                Ok(true) if self.record.iter().all(|f| f.trim_ascii().is_empty()) => continue,
                Ok(true) => {
                    let start = self.record.position().map_or(0, |p| p.byte());
                    let line = self.lines.lock().expect("lines lock").line_at(start);
                    // A quote never closed took the rest of the file into
                    // this record: report the quote, not what it swallowed.
                    let quotes = self.reader.get_ref();
                    if let Some(open) = quotes.unclosed()
                        && start <= open
                        && self.reader.position().byte() >= quotes.offset
                    {
                        self.done = true;
                        let at = self.lines.lock().expect("lines lock").line_at(open);
                        let why = "a quoted cell opened on this line is never closed, so the rest of the file would be one cell: close the quote (\") or remove it";
                        return Some((at, Err(one("csv", why))));
                    }
                    return Some((line, self.row()));
                }
                Err(e) => {
                    // The csv reader cannot resync after a hard error: stop here.
                    self.done = true;
                    let (line, why) = csv_failure(e, &self.failure, &self.lines);
                    return Some((line, Err(vec![why])));
                }
            }
        }
    }
}

/// Where a CSV reader is in a record, as the csv crate reads one (RFC 4180,
/// with its leniencies): only to find a quote that is never closed, which
/// the csv crate accepts silently at the end of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QuoteState {
    StartField,
    Unquoted,
    Quoted,
    /// A quote inside a quoted cell: its end, or the first of `""`.
    QuoteInQuoted,
}

/// Passes the decoded text through to the csv reader, following quotes.
struct Quotes<R> {
    inner: R,
    delimiter: u8,
    state: QuoteState,
    /// Bytes passed through.
    offset: u64,
    /// Offset of the quote that opened the current quoted cell.
    open_at: u64,
    eof: bool,
}

impl<R> Quotes<R> {
    /// The offset of a quote still open at the end of the text.
    fn unclosed(&self) -> Option<u64> {
        (self.eof && self.state == QuoteState::Quoted).then_some(self.open_at)
    }
}

impl<R: Read> Read for Quotes<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.eof |= n == 0;
        for (i, &b) in buf[..n].iter().enumerate() {
            let end = b == self.delimiter || b == b'\n' || b == b'\r';
            self.state = match (self.state, b) {
                (QuoteState::StartField, b'"') => {
                    self.open_at = self.offset + i as u64;
                    QuoteState::Quoted
                }
                (QuoteState::StartField | QuoteState::Unquoted, _) if end => QuoteState::StartField,
                (QuoteState::StartField | QuoteState::Unquoted, _) => QuoteState::Unquoted,
                (QuoteState::Quoted, b'"') => QuoteState::QuoteInQuoted,
                (QuoteState::Quoted, _) => QuoteState::Quoted,
                (QuoteState::QuoteInQuoted, b'"') => QuoteState::Quoted,
                (QuoteState::QuoteInQuoted, _) if end => QuoteState::StartField,
                (QuoteState::QuoteInQuoted, _) => QuoteState::Unquoted,
            };
        }
        self.offset += n as u64;
        Ok(n)
    }
}

/// A file's rows, each parsed or refused, by line.
#[cfg(test)]
pub(crate) type ParsedRows = Vec<(u64, Result<Record, Vec<FieldError>>)>;

/// Every line of a JSON Lines file, parsed (for the fuzz tests).
#[cfg(test)]
pub(crate) fn json_lines(bytes: &[u8], rules: InputRules<'_>) -> Result<ParsedRows, (u64, FieldError)> {
    let decoded = decode::Decoded::open(bytes, None).map_err(|e| (e.line, FieldError::new("encoding", e.reason)))?;
    Ok(JsonLines::new(BufReader::new(decoded), rules).collect())
}

/// Every row of a CSV evaluation table, parsed (for the fuzz tests).
#[cfg(test)]
pub(crate) fn csv_rows(bytes: &[u8], rules: InputRules<'_>) -> Result<ParsedRows, (u64, FieldError)> {
    let decoded = decode::Decoded::open(bytes, None).map_err(|e| (e.line, FieldError::new("encoding", e.reason)))?;
    Ok(CsvRows::new(decoded, rules, Some("r"))?.collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The row object is reused: nothing of one row shows through in the next.
    #[test]
    fn each_row_stands_alone() {
        let rules = crate::rules::Rules::shipped();
        let header = "credit_code,entity_name,domain,issuer,year,grade,score,valid_from,valid_to,id,document_ref\n";
        let rows = "91440300192317458F,甲,highway_construction,440000,2025,A,,2026-03-01,2027-02-28,given-id,doc-1\n\
                    91110000100000000R,乙,highway_construction,440000,2025,B,,2026-03-01,2027-02-28,,\n";
        let parsed = csv_rows(format!("{header}{rows}").as_bytes(), rules.input()).unwrap();
        let records: Vec<Record> = parsed.into_iter().map(|(_, r)| r.unwrap()).collect();
        assert_eq!(records[0].id().as_str(), "given-id");
        assert_eq!(records[1].id().as_str(), "eval:440000:highway_construction:2025:91110000100000000R");
        let json = |r: &Record| serde_json::to_value(r).unwrap();
        assert_eq!(json(&records[0])["document_ref"], "doc-1");
        assert_eq!(json(&records[1])["document_ref"], "r", "the default, not the row before's");
        assert_eq!(json(&records[1])["entity_name"], "乙");
    }
}
