//! Who issues a grade: the Ministry (national) or a province, by region code.

use std::fmt;

/// A six-digit GB/T 2260 administrative region code, e.g. `140000` for Shanxi.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RegionCode(u32);

/// Why a region code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionError {
    /// Not six ASCII digits after trimming; holds the input as shown.
    #[error("must be six digits (GB/T 2260), got '{0}'")]
    NotSixDigits(String),
    /// The first two digits name no GB/T 2260 province; holds them.
    #[error("province part '{0}' is not a GB/T 2260 province (11-65, 71, 81, 82)")]
    UnknownProvince(String),
}

/// Province-level prefixes of GB/T 2260.
const PROVINCES: &[u32] = &[
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82,
];

impl RegionCode {
    /// Parses six digits (surrounding space trimmed) whose first two name a
    /// GB/T 2260 province-level division. Whether the full code is still in
    /// GB/T 2260 is not checked: retired codes stay in old records.
    pub fn parse(s: &str) -> Result<RegionCode, RegionError> {
        let s = s.trim();
        if s.len() != 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RegionError::NotSixDigits(super::text::shown(s).into_owned()));
        }
        let n: u32 = s.parse().map_err(|_| RegionError::NotSixDigits(s.to_owned()))?;
        if !PROVINCES.contains(&(n / 10_000)) {
            return Err(RegionError::UnknownProvince(s[..2].to_owned()));
        }
        Ok(RegionCode(n))
    }

    /// The province this region belongs to (`140100` → `140000`).
    pub fn province(self) -> RegionCode {
        RegionCode(self.0 / 10_000 * 10_000)
    }

    /// Whether `other` lies within this region: a province holds its
    /// cities and counties, a city (`xxxx00`) its counties, a county itself.
    pub fn contains(self, other: RegionCode) -> bool {
        if self.is_province() {
            other.province() == self
        } else if self.0.is_multiple_of(100) {
            other.0 / 100 == self.0 / 100
        } else {
            other == self
        }
    }

    /// Whether this is a province-level code (`xx0000`).
    pub fn is_province(self) -> bool {
        self.0.is_multiple_of(10_000)
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}", self.0)
    }
}

impl From<RegionCode> for String {
    fn from(r: RegionCode) -> String {
        r.to_string()
    }
}

impl TryFrom<String> for RegionCode {
    type Error = RegionError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        RegionCode::parse(&s)
    }
}

/// Who issued an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Issuer {
    /// The Ministry of Transport (交通运输部).
    National,
    /// A provincial transport department, by its province code.
    Province(RegionCode),
}

/// Why an issuer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssuerError {
    /// Not a region code at all.
    #[error("{0}")]
    Region(#[from] RegionError),
    /// A valid region below province level; holds the input.
    #[error("'{0}' is a city or county; grades are issued nationally or by a province (use its code ending in 0000)")]
    NotProvince(String),
}

impl Issuer {
    /// Parses `national` (any case) or a province-level region code
    /// (`140000`); a city or county code is refused, since grades are issued
    /// only nationally or by a province (DOMAIN.md, "Who grades whom").
    pub fn parse(s: &str) -> Result<Issuer, IssuerError> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("national") {
            return Ok(Issuer::National);
        }
        let r = RegionCode::parse(t)?;
        if !r.is_province() {
            return Err(IssuerError::NotProvince(t.to_owned()));
        }
        Ok(Issuer::Province(r))
    }
}

impl fmt::Display for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Issuer::National => f.write_str("national"),
            Issuer::Province(r) => r.fmt(f),
        }
    }
}

impl From<Issuer> for String {
    fn from(i: Issuer) -> String {
        i.to_string()
    }
}

impl TryFrom<String> for Issuer {
    type Error = IssuerError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Issuer::parse(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_contain_their_cities_and_counties() {
        let r = |s: &str| RegionCode::parse(s).unwrap();
        assert!(r("440000").contains(r("440305")) && r("440000").contains(r("440000")));
        assert!(r("440300").contains(r("440305")) && r("440300").contains(r("440300")));
        assert!(!r("440300").contains(r("440100")) && !r("440300").contains(r("440000")));
        assert!(r("440305").contains(r("440305")) && !r("440305").contains(r("440306")));
        assert!(!r("440000").contains(r("140100")));
    }

    #[test]
    fn issuers() {
        assert_eq!(Issuer::parse("national").unwrap(), Issuer::National);
        assert_eq!(Issuer::parse("140000").unwrap().to_string(), "140000");
        assert!(matches!(Issuer::parse("140100"), Err(IssuerError::NotProvince(_))));
        assert!(matches!(Issuer::parse("990000"), Err(IssuerError::Region(RegionError::UnknownProvince(_)))));
        assert_eq!(RegionCode::parse("140105").unwrap().province().to_string(), "140000");
    }
}
