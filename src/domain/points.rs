//! Bonus points, kept in hundredths so that sums and caps are exact.
//!
//! Every figure a statement shows (each stage, the total, the cap) is a whole
//! number of hundredths, so "the stages add up to the total" is an integer
//! equality, never a float comparison. The statement writes them as decimals
//! with at most two places, which a double holds and prints back exactly.

/// Points in hundredths of a point (1.5 points = `Points(150)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Points(pub i32);

impl Points {
    /// No points.
    pub const ZERO: Points = Points(0);

    /// The most points a policy value may be: 10,000.00 (refused above, so
    /// that no sum of a few of them can overflow).
    pub const MAX: Points = Points(1_000_000);

    /// From a decimal with at most two places; refuses anything finer, and
    /// anything beyond ±[`Points::MAX`].
    pub fn from_decimal(v: f64) -> Result<Points, String> {
        let h = (v * 100.0).round();
        if !v.is_finite() || (h - v * 100.0).abs() > 1e-6 {
            return Err(format!("{v} must be a number of points with at most two decimals"));
        }
        if h.abs() > f64::from(Points::MAX.0) {
            return Err(format!("{v} is beyond ±{} points", Points::MAX));
        }
        Ok(Points(h as i32))
    }

    /// As a decimal number of points, exact to two places (for JSON and display).
    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 100.0
    }

    /// `self` less `other`, but never below zero: what is left of a limit.
    pub fn room_under(self, limit: Points) -> Points {
        Points((limit.0 - self.0).max(0))
    }

    /// Of `self` wanted, what fits in `room`: (given, cut), with
    /// `given + cut == self` for any `self >= 0`.
    pub fn fit(self, room: Points) -> (Points, Points) {
        let given = Points(self.0.clamp(0, room.0.max(0)));
        (given, Points(self.0 - given.0))
    }
}

impl std::ops::Add for Points {
    type Output = Points;

    fn add(self, other: Points) -> Points {
        Points(self.0 + other.0)
    }
}

impl std::iter::Sum for Points {
    fn sum<I: Iterator<Item = Points>>(iter: I) -> Points {
        iter.fold(Points::ZERO, |a, b| a + b)
    }
}

impl std::fmt::Display for Points {
    /// Two decimals, from the integer hundredths (no float rounding).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_gives_what_the_room_holds_and_cuts_the_rest() {
        assert_eq!(Points(50).fit(Points(0)), (Points(0), Points(50)));
        assert_eq!(Points(50).fit(Points(20)), (Points(20), Points(30)));
        assert_eq!(Points(50).fit(Points(80)), (Points(50), Points(0)));
        assert_eq!(Points(50).fit(Points(-5)), (Points(0), Points(50)), "no room is no room");
        assert_eq!(Points(100).room_under(Points(300)), Points(200));
        assert_eq!(Points(350).room_under(Points(300)), Points(0));
    }

    #[test]
    fn display_is_exact_hundredths() {
        assert_eq!(Points(5).to_string(), "0.05");
        assert_eq!(Points(250).to_string(), "2.50");
        assert_eq!(Points(-105).to_string(), "-1.05");
        assert_eq!(Points::from_decimal(0.29).unwrap(), Points(29));
        assert!(Points::from_decimal(0.291).is_err());
        assert_eq!(Points::from_decimal(100_000.0).unwrap_err(), "100000 is beyond ±10000.00 points");
    }
}
