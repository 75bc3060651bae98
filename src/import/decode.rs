//! Reading what spreadsheets write: the character encoding, and line numbers
//! as an editor shows them.
//!
//! Excel and WPS on Chinese Windows save "CSV" in the system code page
//! (GBK, code page 936) without a byte-order mark, "CSV UTF-8" as UTF-8 with
//! one, and "Unicode text" as UTF-16 LE with one (tab-separated); every row
//! ends in CRLF, a line break inside a cell is a bare LF within quotes, and
//! the file ends with a line break.
//!
//! - **Encoding.** A byte-order mark decides (UTF-8, UTF-16 LE or BE).
//!   Without one the file is read as UTF-8, or as GB18030 (a superset of GBK
//!   and GB2312) when the operator says so (`--encoding gb18030`) and the
//!   file is not UTF-8 (its first non-ASCII bytes decide: Chinese text in
//!   GBK is practically never valid UTF-8, so a batch imported with the flag
//!   keeps its UTF-8 files intact). A file
//!   that is not UTF-8 but reads as GB18030 is refused with that advice
//!   rather than decoded on a guess: the same bytes are also valid Big5 or
//!   Shift_JIS, and a wrong guess would store garbled names for good
//!   (nothing stored is ever deleted), in statements that are signed.
//! - **Lines.** The csv crate's positions are off for CRLF files and after
//!   blank lines (rust-csv issues 208 and 395: a record is placed at the
//!   line break before it), so lines are counted here, on the decoded text,
//!   as an editor counts them: CRLF, LF and a lone CR each end a line, and a
//!   record is on the line where its first character is.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::{Arc, Mutex};

/// Bytes read ahead to recognise the encoding (and reused as the first input).
const SNIFF: usize = 64 * 1024;
/// Bytes read ahead, at most, for the first non-ASCII byte of a file given
/// a legacy `--encoding`, to tell UTF-8 from it.
const UTF8_LOOKAHEAD: usize = 4 * 1024 * 1024;

/// Whether `head` is UTF-8, allowing a character cut off at its end when
/// more follows.
fn is_utf8_so_far(head: &[u8], eof: bool) -> bool {
    match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && !eof,
    }
}

/// Why a file's bytes are not text in the encoding it is read in; the line
/// is counted on the text decoded before the bad bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub(crate) struct DecodeError {
    pub line: u64,
    pub reason: String,
}

/// Advice for a file that is not UTF-8.
const GB18030_ADVICE: &str =
    "Excel and WPS save \"CSV\" on Chinese Windows in GBK: pass --encoding gb18030 (GBK's superset), or save the file as \"CSV UTF-8\"";

/// Where line breaks and runs of them are in the decoded text, so that a
/// byte offset (the csv crate's record position) becomes an editor's line.
/// Offsets are consumed in order, so it holds only what lies between the
/// last record asked about and what has been read ahead.
#[derive(Debug, Default)]
pub(crate) struct Lines {
    /// Offset just past each line break not yet counted.
    breaks: VecDeque<u64>,
    /// Runs of CR and LF bytes: (first, one past the last).
    runs: VecDeque<(u64, u64)>,
    /// Line breaks before the last offset asked about.
    counted: u64,
    offset: u64,
    /// A CR at the end of the last chunk: CRLF or a lone CR, seen with the next byte.
    pending_cr: Option<u64>,
    run_start: Option<u64>,
}

impl Lines {
    /// Takes note of the next decoded bytes.
    pub(crate) fn scan(&mut self, bytes: &[u8]) {
        for &b in bytes {
            let at = self.offset;
            if let Some(cr) = self.pending_cr.take() {
                // CRLF is one break, ending after the LF; a lone CR ends its own.
                self.breaks.push_back(if b == b'\n' { at + 1 } else { cr + 1 });
                if b == b'\n' {
                    self.offset += 1;
                    continue;
                }
            }
            match b {
                b'\r' => {
                    self.pending_cr = Some(at);
                    self.run_start.get_or_insert(at);
                }
                b'\n' => {
                    self.breaks.push_back(at + 1);
                    self.run_start.get_or_insert(at);
                }
                _ => {
                    if let Some(start) = self.run_start.take() {
                        self.runs.push_back((start, at));
                    }
                }
            }
            self.offset += 1;
        }
    }

    /// The text ended: a CR at the very end is a line break.
    pub(crate) fn finish(&mut self) {
        if let Some(cr) = self.pending_cr.take() {
            self.breaks.push_back(cr + 1);
        }
    }

    /// The 1-based line of the first character at or after `offset`
    /// (skipping line breaks: the csv crate may place a record on the break
    /// or blank lines before it). Offsets must not decrease from call to call.
    pub(crate) fn line_at(&mut self, offset: u64) -> u64 {
        while self.runs.front().is_some_and(|&(_, end)| end <= offset) {
            self.runs.pop_front();
        }
        let first = match self.runs.front() {
            Some(&(start, end)) if start <= offset => end,
            _ => offset,
        };
        while self.breaks.front().is_some_and(|&end| end <= first) {
            self.breaks.pop_front();
            self.counted += 1;
        }
        self.counted + 1
    }

    /// Lines begun so far (for an error in the middle of decoding).
    fn current_line(&self) -> u64 {
        self.counted + self.breaks.len() as u64 + 1
    }
}

/// The encoding a file is read in, and how it was chosen.
fn described(encoding: &'static encoding_rs::Encoding, by_bom: bool) -> String {
    let name = match encoding.name() {
        "gb18030" | "GB18030" => "GB18030",
        other => other,
    };
    if by_bom { format!("{name} (by its byte-order mark)") } else { name.to_owned() }
}

/// A reader of any encoding that yields UTF-8, counting lines as it goes.
pub(crate) struct Decoded<R> {
    inner: R,
    decoder: encoding_rs::Decoder,
    what: String,
    input: Vec<u8>,
    in_start: usize,
    in_end: usize,
    eof: bool,
    output: Vec<u8>,
    out_start: usize,
    out_end: usize,
    done: bool,
    lines: Arc<Mutex<Lines>>,
    /// The first decoding error, for the caller to report with its line.
    failed: Arc<Mutex<Option<DecodeError>>>,
}

impl<R: Read> Decoded<R> {
    /// Reads the start of `inner` to choose the encoding: a byte-order mark,
    /// else `chosen` (the operator's `--encoding`), else UTF-8. A file that
    /// is not UTF-8 when no encoding was chosen is refused at once, with
    /// GB18030 named when its bytes read as GB18030.
    pub(crate) fn open(mut inner: R, chosen: Option<&'static encoding_rs::Encoding>) -> Result<Decoded<R>, DecodeError> {
        let mut input = vec![0; SNIFF];
        let mut filled = 0;
        let mut eof = false;
        while filled < SNIFF {
            match inner.read(&mut input[filled..]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(DecodeError { line: 0, reason: format!("read failed: {e}") }),
            }
        }
        let bom = encoding_rs::Encoding::for_bom(&input[..filled]);
        // A legacy encoding applies only to a file that is not UTF-8: the
        // operator who passes --encoding gb18030 for a whole batch must not
        // have its UTF-8 files garbled. ASCII reads the same in both, so the
        // decision waits for the first non-ASCII byte (read ahead up to
        // UTF8_LOOKAHEAD; a table's names come in its first rows).
        if bom.is_none() && chosen.is_some_and(|e| e != encoding_rs::UTF_8) {
            while !eof && input[..filled].is_ascii() && filled < UTF8_LOOKAHEAD {
                if filled == input.len() {
                    input.resize(input.len() * 2, 0);
                }
                match inner.read(&mut input[filled..]) {
                    Ok(0) => eof = true,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(DecodeError { line: 0, reason: format!("read failed: {e}") }),
                }
            }
        }
        let head = &input[..filled];
        let encoding = match (bom, chosen) {
            (Some((e, _)), _) => e,
            (None, Some(e)) if e != encoding_rs::UTF_8 && !head.is_ascii() && is_utf8_so_far(head, eof) => encoding_rs::UTF_8,
            (None, Some(e)) => e,
            (None, None) => {
                if let Some(refusal) = not_utf8(head, eof) {
                    return Err(refusal);
                }
                encoding_rs::UTF_8
            }
        };
        Ok(Decoded {
            inner,
            // BOM sniffing: the mark decides, and is removed.
            decoder: encoding.new_decoder(),
            what: described(encoding, bom.is_some()),
            input,
            in_start: 0,
            in_end: filled,
            eof,
            output: vec![0; SNIFF],
            out_start: 0,
            out_end: 0,
            done: false,
            lines: Arc::new(Mutex::new(Lines::default())),
            failed: Arc::new(Mutex::new(None)),
        })
    }

    /// The line counter, shared with whoever maps offsets to lines.
    pub(crate) fn lines(&self) -> Arc<Mutex<Lines>> {
        self.lines.clone()
    }

    /// Where the first decoding error will be put.
    pub(crate) fn failure(&self) -> Arc<Mutex<Option<DecodeError>>> {
        self.failed.clone()
    }

    fn fail(&mut self, reason: String) -> std::io::Error {
        let line = self.lines.lock().expect("lines lock").current_line();
        let e = DecodeError { line, reason };
        self.failed.lock().expect("failure lock").get_or_insert(e.clone());
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }

    /// Decodes more input into `output`; false at the end of the text.
    fn fill(&mut self) -> std::io::Result<bool> {
        use encoding_rs::DecoderResult;
        loop {
            if self.done {
                return Ok(false);
            }
            if self.in_start == self.in_end && !self.eof {
                self.in_start = 0;
                self.in_end = loop {
                    match self.inner.read(&mut self.input) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                };
                self.eof = self.in_end == 0;
            }
            let (result, read, written) =
                self.decoder.decode_to_utf8_without_replacement(&self.input[self.in_start..self.in_end], &mut self.output, self.eof);
            self.in_start += read;
            (self.out_start, self.out_end) = (0, written);
            self.lines.lock().expect("lines lock").scan(&self.output[..written]);
            match result {
                DecoderResult::Malformed(bad, _) => {
                    let hint = if self.what == "UTF-8" { format!(": {GB18030_ADVICE}") } else { String::new() };
                    return Err(self.fail(format!("has {bad} byte(s) that are not {}{hint}", self.what)));
                }
                // With `last`, the decoder has given everything it had.
                DecoderResult::InputEmpty if self.eof => {
                    self.done = true;
                    self.lines.lock().expect("lines lock").finish();
                }
                DecoderResult::InputEmpty | DecoderResult::OutputFull => {}
            }
            if written > 0 {
                return Ok(true);
            }
        }
    }
}

impl<R: Read> Read for Decoded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.out_start == self.out_end && !self.fill()? {
            return Ok(0);
        }
        let n = buf.len().min(self.out_end - self.out_start);
        buf[..n].copy_from_slice(&self.output[self.out_start..self.out_start + n]);
        self.out_start += n;
        Ok(n)
    }
}

/// Why `head` (the start of a file with no byte-order mark) is not UTF-8,
/// naming GB18030 when it reads as GB18030; `None` if it is UTF-8 so far.
fn not_utf8(head: &[u8], eof: bool) -> Option<DecodeError> {
    let e = match std::str::from_utf8(head) {
        Ok(_) => return None,
        // Only cut off at the end of what was read ahead: the rest follows.
        Err(e) if e.error_len().is_none() && !eof => return None,
        Err(e) => e,
    };
    let before = &head[..e.valid_up_to()];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count() as u64;
    let column = before.len() - before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) + 1;
    // The read-ahead may end inside a two- or four-byte GB18030 character.
    let cut = if eof { 0..1 } else { 0..4 };
    let gb18030 = cut.into_iter().any(|k| {
        head.len() >= k && encoding_rs::GB18030.decode_without_bom_handling_and_without_replacement(&head[..head.len() - k]).is_some()
    });
    let reason = if gb18030 {
        format!("the file is not UTF-8; it reads as GB18030 (GBK). {GB18030_ADVICE}")
    } else {
        format!("the file is not UTF-8 (byte {column} of line {line} is not), nor UTF-16 with a byte-order mark, nor GB18030")
    };
    Some(DecodeError { line, reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8], chosen: Option<&'static encoding_rs::Encoding>) -> Result<String, DecodeError> {
        let mut d = Decoded::open(bytes, chosen)?;
        let failure = d.failure();
        let mut out = String::new();
        match d.read_to_string(&mut out) {
            Ok(_) => Ok(out),
            Err(_) => Err(failure.lock().unwrap().clone().unwrap()),
        }
    }

    #[test]
    fn each_encoding_a_spreadsheet_writes_becomes_the_same_text() {
        let text = "名称,代码\r\n山西路桥,1\r\n";
        let (gbk, _, _) = encoding_rs::GBK.encode(text);
        assert_eq!(decode(&gbk, Some(encoding_rs::GB18030)).unwrap(), text);
        let mut utf8_bom = vec![0xEF, 0xBB, 0xBF];
        utf8_bom.extend_from_slice(text.as_bytes());
        assert_eq!(decode(&utf8_bom, None).unwrap(), text, "the BOM is removed");
        let mut utf16 = vec![0xFF, 0xFE];
        utf16.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(decode(&utf16, None).unwrap(), text);
        assert_eq!(decode(&utf16, Some(encoding_rs::GB18030)).unwrap(), text, "the BOM wins over --encoding");
    }

    #[test]
    fn gbk_without_the_flag_is_named_with_the_way_out() {
        let (gbk, _, _) = encoding_rs::GBK.encode("credit_code,entity_name\r\n914403001922038216,山西路桥\r\n");
        let e = decode(&gbk, None).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.reason.contains("GB18030") && e.reason.contains("--encoding gb18030"), "{}", e.reason);
    }

    #[test]
    fn lines_are_counted_as_an_editor_counts_them() {
        let text = b"h\r\n\r\na,\"x\ny\"\rb\n\nc";
        let mut lines = Lines::default();
        lines.scan(text);
        lines.finish();
        // The csv crate may report a record at the break before it.
        assert_eq!(lines.line_at(3), 3, "after CRLF and a blank CRLF line");
        assert_eq!(lines.line_at(12), 5, "after a quoted LF (line 4) and a lone CR");
        assert_eq!(lines.line_at(14), 7, "after a blank LF line");
    }
}
