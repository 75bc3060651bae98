//! Operator-supplied rule files read at start-up: the credit-code allow-list,
//! the score bands and the publication periods of penalties. Each ships in
//! `policies/` and is compiled in as a default; a path on the command line
//! replaces it.

use crate::domain::input::InputRules;
use crate::domain::{AllowList, PublicationPeriods, ScoreBands};
use std::path::{Path, PathBuf};

/// `policies/score-bands.toml` as shipped: the lowest score of each grade per
/// domain (DOMAIN.md: highway construction's bands are `[W]`; see the file).
pub const SHIPPED_SCORE_BANDS: &str = include_str!("../policies/score-bands.toml");
/// `policies/allow-list.txt` as shipped: genuine credit codes that fail the
/// GB 32100 checksum (Fujian pilot codes, DOMAIN.md), one per line.
pub const SHIPPED_ALLOW_LIST: &str = include_str!("../policies/allow-list.txt");
/// `policies/publication-periods.toml` as shipped: a penalty's shortest
/// publication per category and the longest, in months (双公示).
pub const SHIPPED_PUBLICATION_PERIODS: &str = include_str!("../policies/publication-periods.toml");

/// A rule file that could not be used, naming the file, the place and the reason.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {}", crate::domain::text::io_reason(source))]
    /// The file could not be read.
    Read {
        /// The file named on the command line (or in the configuration).
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read but is not valid; a shipped default is named by
    /// its `policies/` path.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong, with the line where there is one ("line 3: …").
        reason: String,
    },
    /// The file is fine; the store it is recorded in could not take it
    /// (busy, unreachable): not a configuration fault.
    #[error("cannot record {what} in the store: {reason}")]
    Store {
        /// What was being recorded, e.g. "policy 'national-template'".
        what: String,
        /// The store's error, as a sentence.
        reason: String,
    },
}

/// The validation rules every record passes through.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Genuine credit codes that fail the GB 32100 checksum.
    pub allow_list: AllowList,
    /// Which score each grade covers, per credit domain.
    pub score_bands: ScoreBands,
    /// Shortest and longest publication of a penalty, in months.
    pub publication: PublicationPeriods,
}

/// Where each rule file comes from: a path, or the shipped default.
#[derive(Debug, Clone, Copy, Default)]
pub struct RulePaths<'a> {
    /// Replaces [`SHIPPED_ALLOW_LIST`]: one code per line, `#` comments.
    pub allow_list: Option<&'a Path>,
    /// Replaces [`SHIPPED_SCORE_BANDS`] (TOML).
    pub score_bands: Option<&'a Path>,
    /// Replaces [`SHIPPED_PUBLICATION_PERIODS`] (TOML).
    pub publication_periods: Option<&'a Path>,
}

impl Rules {
    /// The shipped rule files.
    pub fn shipped() -> Rules {
        Rules::load(RulePaths::default()).expect("shipped rule files are valid")
    }

    /// Reads each file given, or the shipped default, and checks it; the
    /// first file at fault is the error. Nothing is half-loaded.
    pub fn load(paths: RulePaths<'_>) -> Result<Rules, ConfigError> {
        let (allow_text, allow_name) = read_or(paths.allow_list, SHIPPED_ALLOW_LIST, "policies/allow-list.txt")?;
        let allow_list = AllowList::parse_file(&allow_text)
            .map_err(|(line, e)| ConfigError::Invalid { path: allow_name.clone(), reason: format!("line {line}: credit code {e}") })?;
        let (bands_text, bands_name) = read_or(paths.score_bands, SHIPPED_SCORE_BANDS, "policies/score-bands.toml")?;
        let score_bands = ScoreBands::from_toml(&bands_text).map_err(|reason| ConfigError::Invalid { path: bands_name, reason })?;
        let (periods_text, periods_name) =
            read_or(paths.publication_periods, SHIPPED_PUBLICATION_PERIODS, "policies/publication-periods.toml")?;
        let publication =
            PublicationPeriods::from_toml(&periods_text).map_err(|reason| ConfigError::Invalid { path: periods_name, reason })?;
        Ok(Rules { allow_list, score_bands, publication })
    }

    /// The rules as [`crate::domain::input`] takes them.
    pub fn input(&self) -> InputRules<'_> {
        InputRules { allow_list: &self.allow_list, score_bands: &self.score_bands, publication: &self.publication }
    }
}

fn read_or(path: Option<&Path>, shipped: &str, shipped_name: &str) -> Result<(String, PathBuf), ConfigError> {
    match path {
        Some(p) => read_text(p).map(|t| (t, p.to_owned())).map_err(|source| ConfigError::Read { path: p.to_owned(), source }),
        None => Ok((shipped.to_owned(), PathBuf::from(shipped_name))),
    }
}

/// Policies shipped in `policies/`, compiled in: (file name, text).
pub const SHIPPED_POLICIES: &[(&str, &str)] = &[
    ("policies/national-template.toml", include_str!("../policies/national-template.toml")),
    ("policies/shanxi-highway-construction.toml", include_str!("../policies/shanxi-highway-construction.toml")),
];

/// Reads a text configuration file (TOML, JSON, a list): UTF-8, with or
/// without the byte-order mark Windows Notepad writes, which is removed
/// (TOML and JSON parsers refuse it as a stray character). A file that is
/// not UTF-8 is `InvalidData` with a sentence saying so.
pub fn read_text(path: &Path) -> std::io::Result<String> {
    let bytes = std::fs::read(path)?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF".as_slice()).map(<[u8]>::to_vec).unwrap_or(bytes);
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("it is not UTF-8 text (byte {} is not): save it as UTF-8", at + 1))
    })
}
