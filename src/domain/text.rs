//! Text a person will read — names, titles, ids — made safe to show: one
//! Unicode form, and nothing invisible that could make two strings look the
//! same or reorder what is shown.

use unicode_normalization::UnicodeNormalization;

/// Why a text was refused, if it was: control characters, zero-width
/// characters, or bidirectional controls. Checked after NFC normalisation.
fn invisible(c: char) -> Option<&'static str> {
    match c {
        c if c.is_control() => Some("control characters"),
        '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{180E}' => Some("zero-width characters"),
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}' => {
            Some("bidirectional control characters")
        }
        _ => None,
    }
}

/// The text in NFC, trimmed, or why it cannot be shown as it is.
pub fn clean(s: &str) -> Result<String, String> {
    let trimmed = s.trim();
    // Most text is NFC already (all ASCII is): the quick check says so
    // without composing it again.
    let t: String = match unicode_normalization::is_nfc_quick(trimmed.chars()) {
        unicode_normalization::IsNormalized::Yes => trimmed.to_owned(),
        _ => trimmed.nfc().collect(),
    };
    if let Some(why) = t.chars().find_map(invisible) {
        return Err(format!("contains {why}"));
    }
    Ok(t)
}

/// An identifier (an inspector's certificate number) in its one canonical
/// form: NFKC (full-width `ＧＤ０００１` is `GD0001`), trimmed, upper-cased,
/// as credit codes are ([`crate::domain::credit_code::compact`]). Refused
/// when it holds a format or control character (general category Cf or Cc:
/// U+200B, U+FEFF, bidirectional controls, tabs), which would make two ids
/// that look the same differ, or when it starts with `=`, `+`, `-` or `@`,
/// which a spreadsheet opening a CSV file runs as a formula.
pub fn canonical_id(s: &str) -> Result<String, String> {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    if let Some(c) = s.chars().find(|c| matches!(c.general_category(), GeneralCategory::Format | GeneralCategory::Control)) {
        return Err(format!("contains the invisible character U+{:04X}", c as u32));
    }
    let id: String = s.nfkc().collect::<String>().trim().to_uppercase();
    if let Some(c) = id.chars().find(|c| matches!(c.general_category(), GeneralCategory::Format | GeneralCategory::Control)) {
        return Err(format!("contains the invisible character U+{:04X}", c as u32));
    }
    if id.starts_with(['=', '+', '-', '@']) {
        return Err("starts with =, +, - or @, which spreadsheets read as a formula".into());
    }
    Ok(id)
}

/// A value with its invisible characters (Cf, Cc) written as `\u{200b}`,
/// so that an error about them shows where they are.
pub fn visible(s: &str) -> String {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    s.chars()
        .map(|c| match c.general_category() {
            GeneralCategory::Format | GeneralCategory::Control => c.escape_unicode().to_string(),
            _ => c.to_string(),
        })
        .collect()
}

/// Characters of a value echoed in an error at most.
pub const SHOWN_CHARS: usize = 64;

/// A value as an error message echoes it: whole when short, else its first
/// [`SHOWN_CHARS`] characters, an ellipsis and its length. An error echoes
/// input in its message and again in its details, percent-encoded in gRPC
/// trailers (a Chinese character takes 9 bytes there); grpcio refuses
/// trailers over 16 KiB as RESOURCE_EXHAUSTED, which clients retry, so an
/// unbounded echo turned a permanently bad request into one that is resent.
pub fn shown(value: &str) -> std::borrow::Cow<'_, str> {
    let mut chars = value.char_indices();
    match chars.nth(SHOWN_CHARS) {
        None => std::borrow::Cow::Borrowed(value),
        Some((cut, _)) => std::borrow::Cow::Owned(format!("{}… ({} characters)", &value[..cut], value.chars().count())),
    }
}

/// The alphabet of tender ids: ASCII letters, digits and `-_.:`, so that
/// two ids that look alike are alike.
pub const TENDER_ID_ALPHABET: &str = "A-Z a-z 0-9 - _ . :";

/// Whether `c` is in [`TENDER_ID_ALPHABET`].
pub fn is_tender_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.:".contains(c)
}

/// An I/O error as a sentence, without Rust's "(os error N)".
pub fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::AlreadyExists => "it already exists".into(),
        std::io::ErrorKind::IsADirectory => "it is a directory".into(),
        // Rust's "(os error N)" is for programmers; the words are enough.
        _ => {
            let text = e.to_string();
            match text.rfind(" (os error ") {
                Some(at) if text.ends_with(')') => text[..at].to_lowercase(),
                _ => text,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_shown_by_their_start_and_length() {
        assert_eq!(shown("AA"), "AA");
        let s = "x".repeat(SHOWN_CHARS);
        assert_eq!(shown(&s), s, "exactly the limit is shown whole");
        let long = "甲".repeat(3000);
        assert_eq!(shown(&long), format!("{}… (3000 characters)", "甲".repeat(SHOWN_CHARS)));
    }

    #[test]
    fn invisible_and_reordering_characters_are_refused() {
        assert_eq!(clean("演示\u{200B}").unwrap_err(), "contains zero-width characters");
        assert_eq!(clean("abc\u{202E}def").unwrap_err(), "contains bidirectional control characters");
        assert_eq!(clean("a\u{0}b").unwrap_err(), "contains control characters");
        // Decomposed é becomes the one composed character.
        assert_eq!(clean(" e\u{0301} ").unwrap(), "\u{e9}");
    }

    #[test]
    fn ids_are_one_form_and_invisible_or_formula_ids_are_refused() {
        assert_eq!(canonical_id(" ＧＤ０００１ ").unwrap(), "GD0001");
        assert_eq!(canonical_id("gd0001").unwrap(), "GD0001");
        assert_eq!(canonical_id("GD0001\u{200B}").unwrap_err(), "contains the invisible character U+200B");
        assert_eq!(canonical_id("\u{FEFF}GD1").unwrap_err(), "contains the invisible character U+FEFF");
        assert!(canonical_id("GD\u{7}1").is_err());
        assert!(canonical_id("=cmd|' /C calc'!A0").unwrap_err().contains("formula"));
        assert!(canonical_id("＠SUM(1)").unwrap_err().contains("formula"), "full-width @ is @");
    }
}
