//! The unified social credit code (统一社会信用代码, GB 32100-2015).
//!
//! Eighteen characters over `0-9A-Z` without I, O, Z, S and V: registration
//! authority, entity type, a six-digit GB/T 2260 region code, the nine-character
//! organisation code and a check character computed with weights 3^(i-1) mod 31.
//!
//! Beyond the checksum (all that python-stdnum's `cn.uscc` checks: it
//! accepts both strings below), a code must name a registration department
//! and one of the organisation categories that department issues (positions
//! 1 and 2, [`DEPARTMENTS`]), and its region (positions 3-8) must begin with
//! a province-level division code. Otherwise a resident ID number whose last
//! character happens to fit the checksum (`140105198503121539`), or
//! `000000000000000000`, would be stored as a firm's code. Only the province
//! is checked, not the full GB/T 2260 list: codes issued under county codes
//! since retired stay valid for life.
//!
//! A string in the shape of a resident ID number (GB 11643-1999: a
//! six-digit region beginning with a province, an eight-digit birth date,
//! a three-digit sequence and a check digit 0-9 or X) is refused as one,
//! with that said: when it fails any check above, or when its ID check digit
//! (ISO 7064 MOD 11-2) is right. A genuine code of that shape whose ID check
//! digit happens to fit can be allow-listed.
//!
//! Full-width characters, as a Chinese input method types them into a
//! spreadsheet (`９１４４…`, `ｆ`, the ideographic space), are read as
//! their ASCII forms (the ASCII half of Unicode's NFKC), on every way in.

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
    /// Nothing was left after spaces and hyphens were stripped.
    #[error("is empty")]
    Empty,
    /// The code, once compacted, is not 18 characters long; holds the count.
    #[error("has {0} characters, a credit code has 18")]
    WrongLength(usize),
    #[error("has forbidden character '{ch}' at position {position} (I, O, Z, S, V and punctuation are not used)")]
    /// A character outside GB 32100's alphabet of 31 (`0-9`, `A-Z` less I, O, Z, S, V).
    ForbiddenCharacter {
        /// The character, after upper-casing and full-width folding.
        ch: char,
        /// Its position, counted from 1.
        position: usize,
    },
    /// Positions 3-8, the GB/T 2260 region code, are not all digits; holds them.
    #[error("has a non-digit region code '{0}' at positions 3-8")]
    NonDigitRegion(String),
    /// Position 1 is no registration department of GB 32100; holds it.
    #[error("has '{0}' at position 1, which is no registration department of GB 32100 (1-9, A, N or Y)")]
    UnknownDepartment(char),
    /// Position 2 is no organisation category that position 1's department issues.
    #[error("has '{category}' at position 2, which is no category the {department} department registers ({allowed})")]
    UnknownCategory {
        /// The department's name, from [`DEPARTMENTS`].
        department: &'static str,
        /// The character found at position 2.
        category: char,
        /// The categories that department issues, e.g. `"123"`.
        allowed: &'static str,
    },
    /// The region (positions 3-8) does not begin with a province-level
    /// division of GB/T 2260, nor with `10` (national); holds the region.
    #[error("has region '{0}' at positions 3-8, which does not begin with a province-level division code of GB/T 2260 (or 10, national)")]
    UnknownProvince(String),
    /// The check character (position 18) disagrees with the checksum.
    #[error("has check character '{found}' but the checksum gives '{expected}'")]
    WrongCheckCharacter {
        /// The 18th character as given.
        found: char,
        /// The one the weights 3^(i-1) mod 31 give for the first 17.
        expected: char,
    },
    /// The string has the shape of a GB 11643 resident ID number and fails
    /// as a credit code, or its ID check digit is right (see the module doc).
    #[error(
        "looks like a resident ID number (GB 11643: a region, a birth date, a sequence number and a check digit), not a unified social credit code: use the firm's 18-character credit code"
    )]
    ResidentId,
}

/// GB 32100-2015's registration departments (position 1) and the
/// organisation categories each issues (position 2), with its amendment
/// No. 1 (2016). [S: GB 32100-2015 appendix, as restated by public
/// validators and the State Council's code scheme, 国发〔2015〕33号]
pub const DEPARTMENTS: &[(u8, &str, &str)] = &[
    (b'1', "institutional establishment (机构编制)", "1239"),
    (b'2', "foreign affairs (外交)", "19"),
    (b'3', "justice (司法行政)", "123459"),
    (b'4', "culture (文化)", "19"),
    (b'5', "civil affairs (民政)", "1239"),
    (b'6', "tourism (旅游)", "129"),
    (b'7', "religious affairs (宗教)", "129"),
    (b'8', "trade unions (工会)", "19"),
    (b'9', "market regulation (工商)", "123"),
    (b'A', "Central Military Commission (中央军委改革和编制办公室)", "19"),
    (b'N', "agriculture (农业)", "1239"),
    (b'Y', "other (其他)", "1"),
];

/// The first two digits of GB/T 2260's province-level divisions, and `10`,
/// which codes issued by national registration authorities carry (100000).
/// [S: GB/T 2260; GB 32100's explanation: "国家用100000"]
const PROVINCES: &[&str] = &[
    "10", "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41", "42", "43", "44", "45", "46",
    "50", "51", "52", "53", "54", "61", "62", "63", "64", "65", "71", "81", "82",
];

/// How a code passed: on its checksum, or only through the operator's allow-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeCheck {
    /// The check character is right.
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

/// Strips spaces and hyphens and upper-cases, as python-stdnum's `compact()`;
/// full-width forms (U+FF01..U+FF5E, typed with a Chinese input method) are
/// read as the ASCII characters they stand for first.
pub fn compact(input: &str) -> String {
    input.chars().map(ascii_form).filter(|c| !c.is_whitespace() && *c != '-').flat_map(char::to_uppercase).collect()
}

/// A full-width ASCII form as its ASCII character (NFKC on that block);
/// anything else as it is.
fn ascii_form(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        _ => c,
    }
}

/// GB 11643-1999's check digit (ISO 7064 MOD 11-2) of a resident ID number's first 17 digits.
fn resident_id_check(body: &[u8]) -> u8 {
    let sum: u32 = body[..17].iter().enumerate().map(|(i, d)| u32::from(d - b'0') * ((1u32 << (17 - i)) % 11)).sum();
    b"10X98765432"[(sum % 11) as usize]
}

/// Whether `code` has a resident ID number's shape (GB 11643-1999): 17
/// digits and a digit or X, a region beginning with a province, and a
/// birth date from 1800 to 2099 at positions 7-14. Its check digit is
/// returned too: whether it fits.
fn resident_id_shape(code: &str) -> Option<bool> {
    let b = code.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) || !(b[17].is_ascii_digit() || b[17] == b'X') {
        return None;
    }
    if code[..2] == *"10" || !PROVINCES.contains(&&code[..2]) {
        return None;
    }
    let (year, month, day) = (code[6..10].parse::<i32>().ok()?, code[10..12].parse::<u32>().ok()?, code[12..14].parse::<u32>().ok()?);
    if !(1800..=2099).contains(&year) || chrono::NaiveDate::from_ymd_opt(year, month, day).is_none() {
        return None;
    }
    Some(resident_id_check(b) == b[17])
}

impl CreditCode {
    /// Parses a code. A well-formed code that fails the checksum or the
    /// department, category and province table passes only when `allow`
    /// lists it (genuine early pilot-region codes).
    pub fn parse(input: &str, allow: &AllowList) -> Result<(CreditCode, CodeCheck), CreditCodeError> {
        let code = compact(input);
        match Self::check(&code) {
            Ok(()) => Ok((CreditCode(code), CodeCheck::Valid)),
            Err(e) if e.is_listable() && allow.0.contains(&code) => Ok((CreditCode(code), CodeCheck::AllowListed)),
            Err(e) => Err(e),
        }
    }

    /// Parses a code that must pass its checksum.
    pub fn parse_strict(input: &str) -> Result<CreditCode, CreditCodeError> {
        Self::parse(input, &AllowList::default()).map(|(c, _)| c)
    }

    fn check(code: &str) -> Result<(), CreditCodeError> {
        Self::check_form(code)?;
        match (resident_id_shape(code), Self::check_table(code)) {
            (Some(true), _) | (Some(false), Err(_)) => Err(CreditCodeError::ResidentId),
            (_, result) => result,
        }
    }

    /// GB 32100's table of departments and categories, the province and the check character.
    fn check_table(code: &str) -> Result<(), CreditCodeError> {
        let bytes = code.as_bytes();
        let (department, category) = (bytes[0], bytes[1]);
        let Some((_, name, allowed)) = DEPARTMENTS.iter().find(|(d, _, _)| *d == department) else {
            return Err(CreditCodeError::UnknownDepartment(department as char));
        };
        if !allowed.as_bytes().contains(&category) {
            return Err(CreditCodeError::UnknownCategory { department: name, category: category as char, allowed });
        }
        if !PROVINCES.contains(&&code[2..4]) {
            return Err(CreditCodeError::UnknownProvince(code[2..8].to_owned()));
        }
        let expected = check_character(bytes);
        let found = bytes[17] as char;
        if found != expected {
            return Err(CreditCodeError::WrongCheckCharacter { found, expected });
        }
        Ok(())
    }

    /// Eighteen characters of the alphabet, digits where the region goes:
    /// what any code, even an allow-listed or stored one, must be.
    fn check_form(code: &str) -> Result<(), CreditCodeError> {
        if code.is_empty() {
            return Err(CreditCodeError::Empty);
        }
        let chars = code.chars().count();
        if chars != 18 {
            return Err(CreditCodeError::WrongLength(chars));
        }
        if let Some((i, ch)) = code.chars().enumerate().find(|(_, c)| !c.is_ascii() || value(*c as u8).is_none()) {
            return Err(CreditCodeError::ForbiddenCharacter { ch, position: i + 1 });
        }
        let region = &code[2..8];
        if !region.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CreditCodeError::NonDigitRegion(region.to_owned()));
        }
        Ok(())
    }

    /// The canonical form: 18 upper-case ASCII characters.
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
/// an allow-listed code (or one stored before the department and province
/// table was checked) must stay readable even if the rules later tighten.
impl TryFrom<String> for CreditCode {
    type Error = CreditCodeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        let code = compact(&s);
        Self::check_form(&code)?;
        Ok(CreditCode(code))
    }
}

impl CreditCodeError {
    /// Whether an operator may allow-list a code with this defect: a
    /// well-formed code that fails the checksum or the GB 32100 table.
    fn is_listable(&self) -> bool {
        matches!(
            self,
            CreditCodeError::WrongCheckCharacter { .. }
                | CreditCodeError::UnknownDepartment(_)
                | CreditCodeError::UnknownCategory { .. }
                | CreditCodeError::UnknownProvince(_)
                | CreditCodeError::ResidentId
        )
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
                // A valid code needs no allow-listing; keeping it is harmless.
                Ok(()) => {
                    set.insert(code);
                }
                Err(e) if e.is_listable() => {
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

    /// How many codes the list holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the list holds no code.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// A valid code: a department and one of its categories, a province, four
    /// more digits, nine characters over the alphabet and its check character.
    fn valid() -> impl Strategy<Value = CreditCode> {
        let alphabet = proptest::sample::select(ALPHABET.to_vec());
        let digit = proptest::sample::select(b"0123456789".to_vec());
        let kind = proptest::sample::select(DEPARTMENTS.to_vec())
            .prop_flat_map(|(d, _, cats)| proptest::sample::select(cats.as_bytes().to_vec()).prop_map(move |c| [d, c]));
        let province = proptest::sample::select(PROVINCES.to_vec());
        (kind, province, proptest::collection::vec(digit, 4), proptest::collection::vec(alphabet, 9)).prop_map(|(k, p, b, c)| {
            let first17: String = k.into_iter().chain(p.bytes()).chain(b).chain(c).map(char::from).collect();
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
        assert_eq!(CreditCode::parse_strict("91440300I92317458F"), Err(CreditCodeError::ForbiddenCharacter { ch: 'I', position: 9 }));
        assert_eq!(CreditCode::parse_strict("9144A300192317458F"), Err(CreditCodeError::NonDigitRegion("44A300".into())));
        assert_eq!(CreditCode::parse_strict("914403001923174580"), Err(CreditCodeError::WrongCheckCharacter { found: '0', expected: 'F' }));
    }

    #[test]
    fn pilot_codes_need_the_allow_list() {
        let pilot = "91350100M0001TGQXM";
        assert!(matches!(CreditCode::parse_strict(pilot), Err(CreditCodeError::WrongCheckCharacter { .. })));
        let allow = AllowList::new([pilot]).unwrap();
        let (code, check) = CreditCode::parse(pilot, &allow).unwrap();
        assert_eq!((code.as_str(), check), (pilot, CodeCheck::AllowListed));
    }

    #[test]
    fn strings_that_pass_the_checksum_but_are_no_credit_code_are_refused() {
        // A resident ID number (Taiyuan, born 1985) whose last character fits
        // the checksum, and eighteen zeros: python-stdnum accepts both.
        assert_eq!(CreditCode::parse_strict("140105198503121539"), Err(CreditCodeError::ResidentId));
        assert_eq!(CreditCode::parse_strict("000000000000000000"), Err(CreditCodeError::UnknownDepartment('0')));
        let no_province = CreditCode::with_check_character("91990000192317458");
        assert_eq!(no_province, Err(CreditCodeError::UnknownProvince("990000".into())));
        // National registration authorities use 100000.
        assert!(CreditCode::with_check_character("11100000000013127").is_ok());
        // An operator can still list a genuine code the table does not know.
        let odd = format!("Z{}", &"91440300192317458F"[1..]);
        assert!(matches!(CreditCode::parse_strict(&odd), Err(CreditCodeError::ForbiddenCharacter { .. })));
        let listed = "54440106MJH1234567";
        assert!(CreditCode::parse_strict(listed).is_err());
        let allow = AllowList::new([listed]).unwrap();
        assert_eq!(CreditCode::parse(listed, &allow).unwrap().1, CodeCheck::AllowListed);
    }

    #[test]
    fn resident_id_numbers_are_named_as_such() {
        // GB 11643's own example (a Beijing number), with its check digit X.
        assert_eq!(resident_id_check(b"11010519491231002X"), b'X');
        for id in ["11010519491231002X", "440524188001010014", "140105198503121531"] {
            assert_eq!(CreditCode::parse_strict(id), Err(CreditCodeError::ResidentId), "{id}");
        }
        // Not a date at positions 7-14: a genuine code's digits, judged as a code.
        assert!(CreditCode::parse_strict("914403001922038216").is_ok());
        assert!(CreditCode::parse_strict("91110000802100433B").is_ok());
    }

    #[test]
    fn full_width_forms_read_as_ascii() {
        let typed = "\u{FF19}\u{FF11}\u{FF14}\u{FF14}\u{FF10}\u{FF13}\u{FF10}\u{FF10}\u{FF11}\u{FF19}\u{FF12}\u{FF13}\u{FF11}\u{FF17}\u{FF14}\u{FF15}\u{FF18}\u{FF46}";
        assert_eq!(CreditCode::parse_strict(typed).unwrap().as_str(), "91440300192317458F");
        assert_eq!(compact("9144\u{3000}0300\u{FF0D}192317458F"), "91440300192317458F");
    }

    #[test]
    fn check_character_is_appended() {
        assert_eq!(CreditCode::with_check_character("91440300192317458").unwrap().as_str(), "91440300192317458F");
    }
}
