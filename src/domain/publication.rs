//! Publication periods of administrative penalties, by category.
//!
//! The numbers are data, read from `policies/publication-periods.toml`, so
//! that an operator can follow a rule change without a release.

use super::records::PenaltyCategory;
use chrono::{Months, NaiveDate};
use std::collections::BTreeMap;

/// The shortest publication per category and the longest for all, in months
/// from the decision date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicationPeriods {
    min_months: BTreeMap<PenaltyCategory, u32>,
    max_months: u32,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    max_months: u32,
    min_months: BTreeMap<String, u32>,
}

impl PublicationPeriods {
    /// Parses the TOML form; errors name the key and the reason. Every
    /// category needs a minimum, and no minimum may exceed the maximum.
    pub fn from_toml(text: &str) -> Result<PublicationPeriods, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())?;
        if file.max_months == 0 {
            return Err("max_months: must be positive".into());
        }
        let mut min_months = BTreeMap::new();
        for (name, months) in file.min_months {
            let category = PenaltyCategory::parse(&name)
                .ok_or_else(|| format!("min_months.{name}: unknown penalty category, expected one of: {}", PenaltyCategory::expected()))?;
            if months > file.max_months {
                return Err(format!("min_months.{name}: {months} months is above max_months ({})", file.max_months));
            }
            min_months.insert(category, months);
        }
        if let Some(missing) = PenaltyCategory::ALL.iter().find(|c| !min_months.contains_key(c)) {
            return Err(format!("min_months: no value for category {missing}; give every category"));
        }
        Ok(PublicationPeriods { min_months, max_months: file.max_months })
    }

    /// Why a penalty's publication ends contradict its category, if they do:
    /// (field, reason).
    pub fn check(
        &self,
        category: PenaltyCategory,
        decided_on: NaiveDate,
        min_end: NaiveDate,
        max_end: NaiveDate,
    ) -> Option<(&'static str, String)> {
        let months = self.min_months[&category];
        let shortest = decided_on.checked_add_months(Months::new(months)).unwrap_or(NaiveDate::MAX);
        let longest = decided_on.checked_add_months(Months::new(self.max_months)).unwrap_or(NaiveDate::MAX);
        if min_end < shortest {
            return Some((
                "min_publication_end",
                format!(
                    "{min_end} is less than {months} months after decided_on {decided_on}: a {category} penalty is \
                     published until {shortest} at the earliest"
                ),
            ));
        }
        if max_end > longest {
            return Some((
                "max_publication_end",
                format!(
                    "{max_end} is more than {} months after decided_on {decided_on}: a {category} penalty is \
                     published until {longest} at the latest",
                    self.max_months
                ),
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> PublicationPeriods {
        PublicationPeriods::from_toml(include_str!("../../policies/publication-periods.toml")).unwrap()
    }

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn minimum_by_category_and_maximum_for_all() {
        let p = shipped();
        let d = date("2026-06-01");
        assert_eq!(p.check(PenaltyCategory::General, d, date("2026-09-01"), date("2029-06-01")), None);
        let (field, reason) = p.check(PenaltyCategory::WorkSafety, d, date("2026-09-01"), date("2029-06-01")).unwrap();
        assert_eq!(field, "min_publication_end");
        assert!(reason.contains("12 months") && reason.contains("work_safety") && reason.contains("2027-06-01"), "{reason}");
        let (field, reason) = p.check(PenaltyCategory::General, d, date("2026-09-01"), date("2029-06-02")).unwrap();
        assert_eq!(field, "max_publication_end");
        assert!(reason.contains("2029-06-01"), "{reason}");
    }

    #[test]
    fn bad_files_name_the_key() {
        let text = include_str!("../../policies/publication-periods.toml");
        let err = PublicationPeriods::from_toml(&text.replace("fire = 12 ", "")).unwrap_err();
        assert!(err.starts_with("min_months: no value for category fire"), "{err}");
        let err = PublicationPeriods::from_toml(&text.replace("general = 3 ", "general = 40 ")).unwrap_err();
        assert!(err.starts_with("min_months.general: 40 months is above max_months"), "{err}");
    }
}
