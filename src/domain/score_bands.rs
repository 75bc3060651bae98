//! Score bands: which score range each grade covers in a credit domain.
//!
//! The numbers are data, read from a policy file (`policies/score-bands.toml`),
//! because only some are sourced: see that file's comments.

use super::grade::{CreditDomain, Grade};
use std::collections::BTreeMap;

/// For each domain that has published bands, the lowest score of each grade.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScoreBands {
    floors: BTreeMap<CreditDomain, Vec<(Grade, f64)>>,
    max_score: f64,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    max_score: f64,
    #[serde(default)]
    domain: BTreeMap<String, BTreeMap<String, f64>>,
}

impl ScoreBands {
    /// Parses the TOML form; errors name the key and the reason.
    pub fn from_toml(text: &str) -> Result<ScoreBands, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        if file.max_score.is_nan() || file.max_score <= 0.0 {
            return Err("max_score: must be positive".into());
        }
        let mut floors = BTreeMap::new();
        for (dname, grades) in file.domain {
            let domain = CreditDomain::parse(&dname)
                .ok_or_else(|| format!("domain.{dname}: unknown credit domain, expected one of: {}", CreditDomain::expected()))?;
            let mut list = Vec::new();
            for (gname, floor) in grades {
                let grade = Grade::parse(&gname)
                    .ok_or_else(|| format!("domain.{dname}.{gname}: unknown grade, expected one of: {}", Grade::expected()))?;
                if !(0.0..=file.max_score).contains(&floor) {
                    return Err(format!("domain.{dname}.{gname}: floor {floor} is outside 0..={}", file.max_score));
                }
                list.push((grade, floor));
            }
            list.sort_by_key(|(g, _)| std::cmp::Reverse(g.rank()));
            for pair in list.windows(2) {
                if pair[0].1 <= pair[1].1 {
                    return Err(format!(
                        "domain.{dname}.{}: floor {} must be above the floor of {} ({})",
                        pair[0].0, pair[0].1, pair[1].0, pair[1].1
                    ));
                }
            }
            if list.len() != Grade::ALL.len() {
                return Err(format!("domain.{dname}: give a floor for every grade (AA, A, B, C, D)"));
            }
            floors.insert(domain, list);
        }
        Ok(ScoreBands { floors, max_score: file.max_score })
    }

    /// The grade a score falls in, where the domain has bands.
    pub fn grade_for(&self, domain: CreditDomain, score: f64) -> Option<Grade> {
        let list = self.floors.get(&domain)?;
        list.iter().find(|(_, floor)| score >= *floor).map(|(g, _)| *g)
    }

    /// Checks that `score` lies in `grade`'s band; domains without bands pass.
    pub fn check(&self, domain: CreditDomain, grade: Grade, score: f64) -> Result<(), String> {
        if !self.floors.contains_key(&domain) {
            return Ok(());
        }
        if score < 0.0 || score > self.max_score {
            return Err(format!("{score} is outside 0..={}", self.max_score));
        }
        match self.grade_for(domain, score) {
            Some(g) if g == grade => Ok(()),
            Some(g) => {
                let (lo, hi) = self.band(domain, grade).expect("domain has bands");
                Err(format!("{score} lies in grade {g}'s band, not {grade}'s ({lo} to below {hi} in {domain})"))
            }
            None => Err(format!("{score} is below every band of {domain}")),
        }
    }

    fn band(&self, domain: CreditDomain, grade: Grade) -> Option<(f64, f64)> {
        let list = self.floors.get(&domain)?;
        let i = list.iter().position(|(g, _)| *g == grade)?;
        let hi = if i == 0 { self.max_score } else { list[i - 1].1 };
        Some((list[i].1, hi))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"
max_score = 100
[domain.highway_construction]
AA = 95
A = 85
B = 75
C = 60
D = 0
"#;

    #[test]
    fn lower_bound_inclusive() {
        let b = ScoreBands::from_toml(TEXT).unwrap();
        let hc = CreditDomain::HighwayConstruction;
        assert_eq!(b.grade_for(hc, 95.0), Some(Grade::AA));
        assert_eq!(b.grade_for(hc, 94.99), Some(Grade::A));
        assert!(b.check(hc, Grade::A, 96.0).is_err());
        assert!(b.check(hc, Grade::AA, 100.0).is_ok());
        assert!(b.check(hc, Grade::AA, 100.5).is_err());
        assert!(b.check(CreditDomain::Supervision, Grade::AA, 10.0).is_ok());
    }

    #[test]
    fn bad_file_names_key() {
        let err = ScoreBands::from_toml("max_score = 100\n[domain.highway_construction]\nAAA = 95\n").unwrap_err();
        assert!(err.starts_with("domain.highway_construction.AAA"), "{err}");
    }
}
