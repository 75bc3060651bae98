//! Money in integer fen (分). Never floats.

use std::fmt;

/// An amount of money in fen; 100 fen = 1 yuan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Fen(pub i64);

impl Fen {
    /// `yuan` whole yuan, as fen (×100). Overflows past about 9.2e16 yuan.
    pub fn yuan(yuan: i64) -> Fen {
        Fen(yuan * 100)
    }
}

impl fmt::Display for Fen {
    /// `¥1,234.56`-style: yuan with thousands separators and two decimals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let yuan = (abs / 100).to_string();
        let mut grouped = String::new();
        for (i, ch) in yuan.chars().enumerate() {
            if i > 0 && (yuan.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(ch);
        }
        write!(f, "{sign}¥{grouped}.{:02}", abs % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_yuan() {
        assert_eq!(Fen(123_456_789).to_string(), "¥1,234,567.89");
        assert_eq!(Fen(-5).to_string(), "-¥0.05");
    }
}
