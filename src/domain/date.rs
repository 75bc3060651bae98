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

/// Every date and instant the API accepts lies in this range (inclusive,
/// Shanghai calendar dates): wide enough for any credit record or tender,
/// narrow enough that every client can print it (RFC 3339 needs four-digit
/// years) and date arithmetic never overflows.
pub const DATE_RANGE: (&str, &str) = ("2000-01-01", "2100-12-31");

fn range() -> (NaiveDate, NaiveDate) {
    let d = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("the range's dates are valid");
    (d(DATE_RANGE.0), d(DATE_RANGE.1))
}

/// Refuses a date outside [`DATE_RANGE`], with a reason fit for an error message.
pub fn check_date(d: NaiveDate) -> Result<NaiveDate, String> {
    let (first, last) = range();
    if d < first || d > last {
        return Err(format!("{d} is outside the dates this service accepts ({first} to {last})"));
    }
    Ok(d)
}

/// Refuses an instant whose Shanghai date is outside [`DATE_RANGE`].
pub fn check_instant(at: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    check_date(shanghai_date(at)).map(|_| at)
}

/// Parses `YYYY-MM-DD` within [`DATE_RANGE`], with a reason fit for an error message.
pub fn parse_date(s: &str) -> Result<NaiveDate, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("is required (YYYY-MM-DD)".into());
    }
    let d = iso_date(t)
        .or_else(|| NaiveDate::parse_from_str(t, "%Y-%m-%d").ok())
        .ok_or_else(|| format!("'{}' is not a date of the form YYYY-MM-DD", super::text::shown(t)))?;
    check_date(d)
}

/// `YYYY-MM-DD` exactly, without interpreting a format string (the common
/// case of an import's millions of dates); `None` leaves it to chrono.
fn iso_date(t: &str) -> Option<NaiveDate> {
    let b = t.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| b[r].iter().try_fold(0u32, |n, c| c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0')));
    NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)
}

/// An inclusive range of calendar dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Validity {
    /// The first day in force.
    pub from: NaiveDate,
    /// The last day in force (inclusive).
    pub to: NaiveDate,
}

impl Validity {
    /// Whether `d` lies within `from..=to`.
    pub fn contains(&self, d: NaiveDate) -> bool {
        self.from <= d && d <= self.to
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_fast_date_path_accepts_and_refuses_what_chrono_does() {
        for t in [
            "2026-03-01",
            "2026-3-1",
            "2026-02-30",
            "2026-13-01",
            "20260301",
            "2026-03-0x",
            "2026/03/01",
            "+2026-03-01",
            "2024-02-29",
            "2023-02-29",
        ] {
            let chrono = NaiveDate::parse_from_str(t, "%Y-%m-%d").ok();
            let ours = iso_date(t).or_else(|| NaiveDate::parse_from_str(t, "%Y-%m-%d").ok());
            assert_eq!(ours, chrono, "{t}");
        }
        assert_eq!(iso_date("2026-03-01"), NaiveDate::from_ymd_opt(2026, 3, 1));
    }

    #[test]
    fn dates_outside_the_range_are_refused_by_name() {
        assert_eq!(
            parse_date("1999-12-31").unwrap_err(),
            "1999-12-31 is outside the dates this service accepts (2000-01-01 to 2100-12-31)"
        );
        assert!(parse_date("2101-01-01").is_err());
        assert!(parse_date("2100-12-31").is_ok() && parse_date("2000-01-01").is_ok());
        let late = Utc.with_ymd_and_hms(2100, 12, 31, 16, 0, 0).unwrap(); // 2101-01-01 in Shanghai
        assert!(check_instant(late).is_err());
    }

    #[test]
    fn late_utc_evening_is_next_shanghai_day() {
        let at = Utc.with_ymd_and_hms(2026, 3, 31, 16, 30, 0).unwrap();
        assert_eq!(shanghai_date(at), NaiveDate::from_ymd_opt(2026, 4, 1).unwrap());
    }
}
