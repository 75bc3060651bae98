//! What an assessment says in words: each sentence is a machine-readable
//! code with named parameters (the values it speaks of, as they are written
//! on the wire: codes, dates, record ids, points) and its rendering in
//! English and in Chinese (zh-CN), so a platform can render the code itself
//! and a person reading the payload reads either language.

/// One parameter of a sentence: `name` is a fixed lower-case word
/// (`credit_code`, `region`, `date`, `record_id`, …), `value` the value as
/// written elsewhere in the statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// The parameter's fixed lower-case name, as the sentence's texts use it.
    pub name: &'static str,
    /// The value as its `Display` writes it.
    pub value: String,
}

impl Param {
    /// `value` by its `Display` form, under `name`.
    pub fn new(name: &'static str, value: &impl std::fmt::Display) -> Param {
        Param { name, value: value.to_string() }
    }
}

/// A sentence: its parameters, and its text in English and in Chinese.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sentence {
    /// Its parameters, in the order the sentence binds them.
    pub params: Vec<Param>,
    /// The sentence in English.
    pub en: String,
    /// The sentence in Chinese (zh-CN).
    pub zh: String,
}

impl Sentence {
    /// Appends another sentence's parameters and text (`; ` in English, `；` in Chinese).
    pub fn and(mut self, more: Sentence) -> Sentence {
        self.params.extend(more.params);
        self.en.push_str("; ");
        self.en.push_str(&more.en);
        self.zh.push('；');
        self.zh.push_str(&more.zh);
        self
    }
}

/// `sentence!("english {name}", "中文 {name}", name = value, …)`: binds each
/// parameter once, records it by name, and formats both texts (which may also
/// name other variables in scope, such as a Chinese rendering of a value).
macro_rules! sentence {
    ($en:literal, $zh:literal $(, $name:ident = $value:expr)* $(,)?) => {{
        // `name = name` is the usual call: binding it again is the point (once, by name).
        $(#[allow(clippy::redundant_locals)] let $name = $value;)*
        $crate::policy::Sentence {
            params: vec![$($crate::policy::Param::new(stringify!($name), &$name)),*],
            en: format!($en),
            zh: format!($zh),
        }
    }};
}

pub(crate) use sentence;

#[cfg(test)]
mod tests {
    #[test]
    fn a_sentence_keeps_its_parameters_and_both_texts() {
        let region_zh = "山西省太原市";
        let s = sentence!("no D in {region}", "{region_zh}（{region}）无动态D级", region = 140100);
        assert_eq!(s.params, vec![super::Param { name: "region", value: "140100".into() }]);
        assert_eq!((s.en.as_str(), s.zh.as_str()), ("no D in 140100", "山西省太原市（140100）无动态D级"));
    }
}
