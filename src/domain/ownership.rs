//! Whose a credit record is, and who may change it.
//!
//! **The rule.** A record id belongs to the owner its *first* version
//! names: the issuer of an evaluation, the authority of a list entry or a
//! penalty. A commitment names neither, so it belongs to the writer of its
//! first version (a provider's principal name, or the source an operator's
//! import recorded). An event belongs to the owner of the record it targets.
//! Every later version of an id, every event on it (repair, removal,
//! objections) and every later version of such an event must keep that
//! owner, and must come from a writer whose scope covers it: a provider's
//! `issuers` and `authorities`, or, for a commitment, the provider that
//! wrote it. The operator (`credit-tender import`, or a server without
//! principals) covers every owner, but may not move a record to another
//! owner either. A refusal names the record id, its owner and this rule.
//!
//! Why: ids are chosen by providers, so two of them can choose the same one.
//! Before this rule a provider could overwrite another authority's blacklist
//! entry, or another province's grade, by reusing its id with its own
//! authority or issuer; each check looked only at the new version, never at
//! whose record it versioned, and statements then certified data that nobody
//! with authority over it had written.
//!
//! The store applies the rule in its write path (every entry point: gRPC and
//! `import` alike), from the stored first versions; nothing needs a column of
//! its own, so data written before the rule keeps every row, and a record
//! overwritten then still belongs to the owner of its first version.

use super::issuer::Issuer;
use super::records::Record;
use std::fmt;

/// Who owns a record id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// An evaluation's issuer.
    Issuer(Issuer),
    /// A list entry's or a penalty's authority.
    Authority(String),
    /// The writer of a commitment's first version (the data version's source).
    Writer(String),
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::Issuer(i) => write!(f, "issuer {i}"),
            Owner::Authority(a) => write!(f, "authority '{a}'"),
            Owner::Writer(w) => write!(f, "writer '{w}'"),
        }
    }
}

impl Owner {
    /// The owner `record` names when `source` writes it as the first version
    /// of its id; `None` for an event, whose owner is its target's.
    pub fn named_by(record: &Record, source: &str) -> Option<Owner> {
        match record {
            Record::Evaluation(e) => Some(Owner::Issuer(e.issuer)),
            Record::ListEntry(l) => Some(Owner::Authority(l.authority.clone())),
            Record::Penalty(p) => Some(Owner::Authority(p.authority.clone())),
            Record::Commitment(_) => Some(Owner::Writer(source.to_owned())),
            Record::Event(_) => None,
        }
    }

    /// The owner a *new version* of `record` claims: what it names, for the
    /// record types that name one (a commitment names none; an event's is
    /// its target's).
    pub fn claimed_by(record: &Record) -> Option<Owner> {
        match record {
            Record::Commitment(_) | Record::Event(_) => None,
            r => Owner::named_by(r, ""),
        }
    }

    /// The field of a record that names its owner, for error reports.
    pub fn field(record: &Record) -> &'static str {
        match record {
            Record::Evaluation(_) => "issuer",
            Record::ListEntry(_) | Record::Penalty(_) => "authority",
            Record::Commitment(_) => "id",
            Record::Event(_) => "target_id",
        }
    }
}

/// Who writes, and so which owners it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Writer {
    /// The operator: a CLI import or a server without principals. Covers
    /// every owner; `source` is what the data version records.
    Operator {
        /// What the data version records as its source (e.g. the import file).
        source: String,
    },
    /// A provider principal and its scope (the principals file).
    Provider {
        /// The principal's name, recorded as the data version's source.
        name: String,
        /// The issuers whose evaluations it may write.
        issuers: Vec<Issuer>,
        /// The authorities whose list entries and penalties it may write.
        authorities: Vec<String>,
        /// Whether it may write commitments (then only its own).
        commitments: bool,
    },
}

impl Writer {
    /// The operator, recording `source` as the data version's source.
    pub fn operator(source: impl Into<String>) -> Writer {
        Writer::Operator { source: source.into() }
    }

    /// Whether this is the operator, whose scope covers every owner.
    pub fn is_operator(&self) -> bool {
        matches!(self, Writer::Operator { .. })
    }

    /// What the data version records as its source.
    pub fn source(&self) -> &str {
        match self {
            Writer::Operator { source } => source,
            Writer::Provider { name, .. } => name,
        }
    }

    /// Whether this writer's scope covers `owner`.
    pub fn covers(&self, owner: &Owner) -> bool {
        match (self, owner) {
            (Writer::Operator { .. }, _) => true,
            (Writer::Provider { issuers, .. }, Owner::Issuer(i)) => issuers.contains(i),
            (Writer::Provider { authorities, .. }, Owner::Authority(a)) => authorities.iter().any(|x| x == a),
            (Writer::Provider { name, commitments, .. }, Owner::Writer(w)) => *commitments && name == w,
        }
    }

    /// The writer and its scope, for refusals.
    fn describe(&self) -> String {
        match self {
            Writer::Operator { source } => format!("the operator ('{source}')"),
            Writer::Provider { name, issuers, authorities, commitments } => format!(
                "provider '{name}' (issuers [{}], authorities [{}]{})",
                issuers.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                authorities.join(", "),
                if *commitments { ", its own commitments" } else { "" }
            ),
        }
    }

    /// Why this writer may not write the first version of an id naming
    /// `owner`, if it may not.
    pub fn refuse_new(&self, id: &str, owner: &Owner) -> Option<String> {
        (!self.covers(owner)).then(|| format!("'{id}' would belong to {owner}, which is outside the scope of {}", self.describe()))
    }

    /// Why this writer may not write a new version of `id`, which belongs to
    /// `owner`, claiming `claimed` (None: the version names no owner), if it
    /// may not. `what` says what is being written ("a new version of", "an
    /// event on").
    pub fn refuse_change(&self, what: &str, id: &str, owner: &Owner, claimed: Option<&Owner>) -> Option<String> {
        if !self.covers(owner) {
            return Some(format!(
                "'{id}' belongs to {owner}, named by its first version; {} may not write {what} it: a record is changed only by a writer whose scope covers its owner",
                self.describe()
            ));
        }
        match claimed {
            Some(c) if c != owner => {
                Some(format!("'{id}' belongs to {owner}, named by its first version; {what} it may not name {c}: a record keeps its owner"))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shanxi() -> Writer {
        Writer::Provider {
            name: "sx".into(),
            issuers: vec![Issuer::parse("140000").unwrap()],
            authorities: vec!["山西省交通运输厅".into()],
            commitments: true,
        }
    }

    #[test]
    fn a_provider_covers_its_issuers_authorities_and_own_commitments_only() {
        let w = shanxi();
        assert!(w.covers(&Owner::Issuer(Issuer::parse("140000").unwrap())));
        assert!(!w.covers(&Owner::Issuer(Issuer::parse("440000").unwrap())));
        assert!(w.covers(&Owner::Authority("山西省交通运输厅".into())));
        assert!(!w.covers(&Owner::Authority("广东省交通运输厅".into())));
        assert!(w.covers(&Owner::Writer("sx".into())));
        assert!(!w.covers(&Owner::Writer("gd".into())));
        assert!(Writer::operator("import:x").covers(&Owner::Writer("gd".into())));
    }

    #[test]
    fn a_change_keeps_the_owner_and_needs_its_scope() {
        let sx = Owner::Authority("山西省交通运输厅".into());
        let gd = Owner::Authority("广东省交通运输厅".into());
        assert_eq!(shanxi().refuse_change("a new version of", "SX-1", &sx, Some(&sx)), None);
        let why = shanxi().refuse_change("a new version of", "GD-1", &gd, Some(&gd)).unwrap();
        assert!(why.starts_with("'GD-1' belongs to authority '广东省交通运输厅', named by its first version; provider 'sx'"), "{why}");
        let why = Writer::operator("import:a.jsonl").refuse_change("a new version of", "SX-1", &sx, Some(&gd)).unwrap();
        assert!(why.ends_with("a new version of it may not name authority '广东省交通运输厅': a record keeps its owner"), "{why}");
        assert_eq!(Writer::operator("import:b.jsonl").refuse_change("a new version of", "C-1", &Owner::Writer("sx".into()), None), None);
    }
}
