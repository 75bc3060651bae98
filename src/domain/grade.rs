//! Credit grades and the credit domains they are given in.

use super::vocab::vocabulary;

vocabulary! {
    /// A transport credit grade. Declared best first; use [`Grade::rank`] to
    /// compare, where a higher rank is a better grade.
    Grade {
        /// The best grade.
        AA => "AA",
        /// Second best; also the default for a new entrant with no bad record (DOMAIN.md).
        A => "A",
        /// Middle grade.
        B => "B",
        /// Poor; also national C for a firm set to D by one province.
        C => "C",
        /// The worst grade; also what a dynamic downgrade sets.
        D => "D",
    }
}

impl Grade {
    /// 4 for AA down to 0 for D.
    pub fn rank(self) -> u8 {
        match self {
            Grade::AA => 4,
            Grade::A => 3,
            Grade::B => 2,
            Grade::C => 1,
            Grade::D => 0,
        }
    }

    /// The worse of two grades (a consortium takes its members' lowest).
    ///
    /// Named so because the derived `Ord` follows declaration order, AA
    /// first: there `min` would give the *better* grade. Compare grades by
    /// [`Grade::rank`] or with this, never with `Ord`.
    pub fn worse_of(self, other: Grade) -> Grade {
        if self.rank() <= other.rank() { self } else { other }
    }
}

/// Grades of the water-resources sector (水利), which uses its own AAA scale and
/// is not transport credit: refused with a reason rather than mapped.
pub const WATER_RESOURCES_WORDS: &[&str] = &["water_resources", "水利", "AAA"];

vocabulary! {
    /// A credit domain in which the Ministry of Transport and the provinces grade firms.
    CreditDomain {
        /// 公路施工.
        HighwayConstruction => "highway_construction",
        /// 公路设计.
        HighwayDesign => "highway_design",
        /// 水运工程施工.
        WaterwayConstruction => "waterway_construction",
        /// 水运工程设计.
        WaterwayDesign => "waterway_design",
        /// 监理 (交质监发〔2012〕774号).
        Supervision => "supervision",
        /// 公路水运工程试验检测.
        TestingInspection => "testing_inspection",
    }
}

impl CreditDomain {
    /// The domain's name as the committee reads it.
    pub fn chinese_name(self) -> &'static str {
        match self {
            CreditDomain::HighwayConstruction => "公路施工",
            CreditDomain::HighwayDesign => "公路设计",
            CreditDomain::WaterwayConstruction => "水运工程施工",
            CreditDomain::WaterwayDesign => "水运工程设计",
            CreditDomain::Supervision => "监理",
            CreditDomain::TestingInspection => "试验检测",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grades_order_aa_best() {
        assert!(Grade::AA.rank() > Grade::A.rank());
        assert_eq!(Grade::A.worse_of(Grade::C), Grade::C);
        assert_eq!(Grade::C.worse_of(Grade::A), Grade::C);
        assert_eq!(Grade::AA.worse_of(Grade::AA), Grade::AA);
        // The trap this name avoids: the derived order puts AA first.
        assert_eq!([Grade::A, Grade::C].into_iter().min(), Some(Grade::A));
        assert_eq!([Grade::A, Grade::C, Grade::B].into_iter().reduce(Grade::worse_of), Some(Grade::C));
        assert_eq!(Grade::parse(" aa "), Some(Grade::AA));
        assert_eq!(Grade::parse("AAA"), None);
    }
}
