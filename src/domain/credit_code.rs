//! The unified social credit code (统一社会信用代码, GB 32100-2015).
//!
//! Eighteen characters over `0-9A-Z` without I, O, Z, S and V: registration
//! authority, entity type, a six-digit GB/T 2260 region code, the nine-character
//! organisation code and a check character computed with weights 3^(i-1) mod 31.

use std::collections::BTreeSet;
use std::fmt;

/// The 31 characters a code may use, in order of their values 0..=30.
const ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// A credit code in canonical upper-case form whose check character is right,
/// or which an operator has allow-listed (see [`CodeCheck::AllowListed`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CreditCode(String);

/// Why a string is not a credit code. Each variant names one defect so that
/// callers can report it precisely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreditCodeError {
    #[error("is empty")]
    Empty,
    #[error("has {0} characters, a credit code has 18")]
    WrongLength(usize),
    #[error("has forbidden character '{ch}' at position {position} (I, O, Z, S, V and punctuation are not used)")]
    ForbiddenCharacter { ch: char, position: usize },
    #[error("has a non-digit region code '{0}' at positions 3-8")]
    NonDigitRegion(String),
    #[error("has check character '{found}' but the checksum gives '{expected}'")]
    WrongCheckCharacter { found: char, expected: char },
}

/// How a code passed: on its checksum, or only through the operator's allow-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeCheck {
    Valid,
    /// A genuine early pilot-region code that fails the checksum; every
    /// statement that uses it must carry a warning.
    AllowListed,
}

/// Operator-maintained list of genuine codes that fail the checksum.
#[derive(Debug, Clone, Default)]
pub struct AllowList(BTreeSet<String>);

fn value(ch: u8) -> Option<u32> {
    ALPHABET.iter().position(|&c| c == ch).map(|v| v as u32)
}

/// The check character for the first 17 characters of a canonical code.
fn check_character(body: &[u8]) -> char {
    let mut weight = 1u32;
    let mut sum = 0u32;
    for &c in &body[..17] {
        sum += value(c).unwrap_or(0) * weight;
        weight = weight * 3 % 31;
    }
    ALPHABET[((31 - sum % 31) % 31) as usize] as char
}

/// Strips spaces and hyphens and upper-cases, as python-stdnum's `compact()`.
pub fn compact(input: &str) -> String {
    input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_uppercase)
        .collect()
}

impl CreditCode {
    /// Parses a code, accepting a failing checksum only when `allow` lists it.
    pub fn parse(input: &str, allow: &AllowList) -> Result<(CreditCode, CodeCheck), CreditCodeError> {
        let code = compact(input);
        match Self::check(&code) {
            Ok(()) => Ok((CreditCode(code), CodeCheck::Valid)),
            Err(CreditCodeError::WrongCheckCharacter { .. }) if allow.0.contains(&code) => {
                Ok((CreditCode(code), CodeCheck::AllowListed))
            }
            Err(e) => Err(e),
        }
    }

    /// Parses a code that must pass its checksum.
    pub fn parse_strict(input: &str) -> Result<CreditCode, CreditCodeError> {
        Self::parse(input, &AllowList::default()).map(|(c, _)| c)
    }

    fn check(code: &str) -> Result<(), CreditCodeError> {
        if code.is_empty() {
            return Err(CreditCodeError::Empty);
        }
        let chars = code.chars().count();
        if chars != 18 {
            return Err(CreditCodeError::WrongLength(chars));
        }
        let bytes = code.as_bytes();
        if let Some((i, ch)) = code.chars().enumerate().find(|(_, c)| !c.is_ascii() || value(*c as u8).is_none()) {
            return Err(CreditCodeError::ForbiddenCharacter { ch, position: i + 1 });
        }
        let region = &code[2..8];
        if !region.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CreditCodeError::NonDigitRegion(region.to_owned()));
        }
        let expected = check_character(bytes);
        let found = bytes[17] as char;
        if found != expected {
            return Err(CreditCodeError::WrongCheckCharacter { found, expected });
        }
        Ok(())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the check character is right; a code that is not passed only
    /// through the operator's allow-list (or was stored when it was).
    pub fn passes_checksum(&self) -> bool {
        Self::check(&self.0).is_ok()
    }

    /// The six-digit region code (positions 3-8) of the registering authority.
    pub fn region(&self) -> &str {
        &self.0[2..8]
    }

    /// Builds a valid code from its first 17 characters by appending the check
    /// character; used by tests and by the demo-data generator.
    pub fn with_check_character(first17: &str) -> Result<CreditCode, CreditCodeError> {
        let mut code = compact(first17);
        if code.len() != 17 {
            return Err(CreditCodeError::WrongLength(code.chars().count() + 1));
        }
        if let Some((i, ch)) = code.chars().enumerate().find(|(_, c)| !c.is_ascii() || value(*c as u8).is_none()) {
            return Err(CreditCodeError::ForbiddenCharacter { ch, position: i + 1 });
        }
        code.push(check_character(code.as_bytes()));
        CreditCode::parse_strict(&code)
    }
}

impl fmt::Display for CreditCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<CreditCode> for String {
    fn from(c: CreditCode) -> String {
        c.0
    }
}

/// Deserialising trusts the store: codes there were checked when written, and
/// an allow-listed code must stay readable even if the allow-list later shrinks.
impl TryFrom<String> for CreditCode {
    type Error = CreditCodeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        let code = compact(&s);
        match Self::check(&code) {
            Ok(()) | Err(CreditCodeError::WrongCheckCharacter { .. }) => Ok(CreditCode(code)),
            Err(e) => Err(e),
        }
    }
}

impl AllowList {
    /// Builds the list; each entry must be well formed apart from its checksum.
    pub fn new<I, S>(codes: I) -> Result<AllowList, (String, CreditCodeError)>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut set = BTreeSet::new();
        for raw in codes {
            let code = compact(raw.as_ref());
            match CreditCode::check(&code) {
                Err(CreditCodeError::WrongCheckCharacter { .. }) => {
                    set.insert(code);
                }
                Ok(()) => {
                    // A valid code needs no allow-listing; keeping it is harmless.
                    set.insert(code);
                }
                Err(e) => return Err((raw.as_ref().to_owned(), e)),
            }
        }
        Ok(AllowList(set))
    }

    /// Parses the allow-list file: one code per line, `#` starts a comment.
    pub fn parse_file(text: &str) -> Result<AllowList, (usize, CreditCodeError)> {
        let mut set = BTreeSet::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let list = AllowList::new([line]).map_err(|(_, e)| (i + 1, e))?;
            set.extend(list.0);
        }
        Ok(AllowList(set))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// A valid code: 17 characters over the alphabet (digits where the region goes) and its check character.
    fn valid() -> impl Strategy<Value = CreditCode> {
        let alphabet = proptest::sample::select(ALPHABET.to_vec());
        let digit = proptest::sample::select(b"0123456789".to_vec());
        (proptest::collection::vec(alphabet.clone(), 2), proptest::collection::vec(digit, 6), proptest::collection::vec(alphabet, 9))
            .prop_map(|(a, b, c)| {
                let first17: String = a.into_iter().chain(b).chain(c).map(char::from).collect();
                CreditCode::with_check_character(&first17).expect("built valid")
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// GB 32100's check character catches every single-character substitution.
        #[test]
        fn every_single_substitution_is_refused(code in valid(), position in 0..18usize, replacement in proptest::sample::select(ALPHABET.to_vec())) {
            let mut bytes = code.as_str().as_bytes().to_vec();
            prop_assume!(bytes[position] != replacement);
            bytes[position] = replacement;
            let altered = String::from_utf8(bytes).unwrap();
            prop_assert!(CreditCode::parse_strict(&altered).is_err(), "{altered} passed for {code}");
        }

        /// Lower case, spaces and hyphens are normalised to the canonical form.
        #[test]
        fn lower_case_spaces_and_hyphens_are_normalised(code in valid(), cuts in proptest::collection::vec((0..18usize, prop_oneof![Just(" "), Just("-"), Just("  ")]), 0..4)) {
            let mut text = code.as_str().to_lowercase();
            let mut cuts = cuts;
            cuts.sort_by_key(|c| std::cmp::Reverse(c.0));
            for (at, sep) in cuts {
                text.insert_str(at, sep);
            }
            prop_assert_eq!(CreditCode::parse_strict(&text).unwrap(), code);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_codes_pass() {
        for c in ["914403001922038216", "91440300192317458F", "91110000802100433B", "91520000214434146R"] {
            assert_eq!(CreditCode::parse_strict(c).unwrap().as_str(), c);
        }
    }

    #[test]
    fn compact_form_is_canonical() {
        let c = CreditCode::parse_strict(" 9144-0300 192317458f ").unwrap();
        assert_eq!(c.as_str(), "91440300192317458F");
    }

    #[test]
    fn each_defect_is_named() {
        assert_eq!(CreditCode::parse_strict(""), Err(CreditCodeError::Empty));
        assert_eq!(CreditCode::parse_strict("91440300192317458"), Err(CreditCodeError::WrongLength(17)));
        assert_eq!(CreditCode::parse_strict("91440300192317458FF"), Err(CreditCodeError::WrongLength(19)));
        assert_eq!(
            CreditCode::parse_strict("91440300I92317458F"),
            Err(CreditCodeError::ForbiddenCharacter { ch: 'I', position: 9 })
        );
        assert_eq!(
            CreditCode::parse_strict("9144A300192317458F"),
            Err(CreditCodeError::NonDigitRegion("44A300".into()))
        );
        assert_eq!(
            CreditCode::parse_strict("914403001923174580"),
            Err(CreditCodeError::WrongCheckCharacter { found: '0', expected: 'F' })
        );
    }

    #[test]
    fn pilot_codes_need_the_allow_list() {
        let pilot = "91350100M0001TGQXM";
        assert!(matches!(
            CreditCode::parse_strict(pilot),
            Err(CreditCodeError::WrongCheckCharacter { .. })
        ));
        let allow = AllowList::new([pilot]).unwrap();
        let (code, check) = CreditCode::parse(pilot, &allow).unwrap();
        assert_eq!((code.as_str(), check), (pilot, CodeCheck::AllowListed));
    }

    #[test]
    fn check_character_is_appended() {
        assert_eq!(CreditCode::with_check_character("91440300192317458").unwrap().as_str(), "91440300192317458F");
    }
}
