//! Calendar dates of validity, and how an instant becomes one.
//!
//! Validity dates are inclusive calendar dates in Asia/Shanghai. Shanghai has
//! kept UTC+8 without daylight saving since 1991, which covers every date this
//! service deals with, so a fixed offset is exact and needs no tz database.

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};

pub use chrono::NaiveDate as Date;

/// UTC+8, Asia/Shanghai since 1991.
pub fn shanghai() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("valid offset")
}

/// The Shanghai calendar date of an instant.
pub fn shanghai_date(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&shanghai()).date_naive()
}

/// Parses `YYYY-MM-DD`, with a reason fit for an error message.
pub fn parse_date(s: &str) -> Result<NaiveDate, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("is required (YYYY-MM-DD)".into());
    }
    NaiveDate::parse_from_str(t, "%Y-%m-%d").map_err(|_| format!("'{t}' is not a date of the form YYYY-MM-DD"))
}

/// An inclusive range of calendar dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Validity {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Validity {
    pub fn contains(&self, d: NaiveDate) -> bool {
        self.from <= d && d <= self.to
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn late_utc_evening_is_next_shanghai_day() {
        let at = Utc.with_ymd_and_hms(2026, 3, 31, 16, 30, 0).unwrap();
        assert_eq!(shanghai_date(at), NaiveDate::from_ymd_opt(2026, 4, 1).unwrap());
    }
}
