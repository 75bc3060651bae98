//! Bonus points, kept in hundredths so that sums and caps are exact.

/// Points in hundredths of a point (1.5 points = `Points(150)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Points(pub i32);

impl Points {
    /// From a decimal with at most two places; refuses anything finer.
    pub fn from_decimal(v: f64) -> Result<Points, String> {
        let h = (v * 100.0).round();
        if !v.is_finite() || (h - v * 100.0).abs() > 1e-6 || h.abs() > 1_000_000.0 {
            return Err(format!("{v} must be a number of points with at most two decimals"));
        }
        Ok(Points(h as i32))
    }

    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 100.0
    }
}

impl std::fmt::Display for Points {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.2}", self.as_f64())
    }
}
