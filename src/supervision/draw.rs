//! The inspection draw's procedure, `sha256-rank/v1`: pure, so that the
//! server and `credit-tender verify-draw` run the very same steps, and short
//! enough to redo by hand with `sha256sum`.
//!
//! 1. **Population.** The firms in scope, each with its class, sorted by
//!    credit code, written one line `CODE CLASS\n` each (class as its word:
//!    `low`, `general`, `fairly_high`, `high`). Its digest is the hex SHA-256
//!    of that text ([`population_digest`]); the commit statement logs it.
//! 2. **Seed.** The root hash (hex, lower case) of the first checkpoint
//!    published after the commit's leaf: a tree that contains the commit, so
//!    no one could know it when committing.
//! 3. **Count.** Per class, `ceil(n × ratio / 100)` of its `n` firms
//!    ([`drawn_count`]).
//! 4. **Rank.** Each firm's rank is the hex SHA-256 of the text
//!    `SEED:CODE` ([`rank`]), e.g. `printf '%s:%s' "$SEED" "$CODE" | sha256sum`.
//! 5. **Choose.** Per class, the firms with the smallest ranks (compared as
//!    text, which is as numbers for equal-length hex), as many as counted.
//!    The chosen list is by class (low to high), then by rank.

use super::risk::RiskClass;

/// The procedure's name, as draw statements write it.
pub const PROCEDURE: &str = "sha256-rank/v1";

/// One firm of a population.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Member {
    /// The firm's credit code, canonical.
    pub credit_code: String,
    /// Its class on the draw's date under the draw's risk policy.
    pub class: RiskClass,
}

/// One chosen firm, with the rank that chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    /// The firm's credit code.
    pub credit_code: String,
    /// The class it was drawn in.
    pub class: RiskClass,
    /// Its [`rank`]: 64 lower-case hex digits.
    pub rank: String,
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

/// The population as the text its digest is of: sorted by credit code.
pub fn population_text(population: &[Member]) -> String {
    let mut sorted: Vec<&Member> = population.iter().collect();
    sorted.sort_by(|a, b| a.credit_code.cmp(&b.credit_code));
    sorted.iter().map(|m| format!("{} {}\n", m.credit_code, m.class)).collect()
}

/// Step 1: hex SHA-256 of [`population_text`].
pub fn population_digest(population: &[Member]) -> String {
    sha256_hex(population_text(population).as_bytes())
}

/// `ceil(n × ratio_percent / 100)`.
pub fn drawn_count(n: u32, ratio_percent: u32) -> u32 {
    ((u64::from(n) * u64::from(ratio_percent)).div_ceil(100)) as u32
}

/// Step 4: hex SHA-256 of `SEED:CODE`.
pub fn rank(seed: &str, credit_code: &str) -> String {
    sha256_hex(format!("{seed}:{credit_code}").as_bytes())
}

/// Firms per class in `population`, every class listed.
pub fn class_counts(population: &[Member]) -> Vec<(RiskClass, u32)> {
    RiskClass::ALL.iter().map(|c| (*c, population.iter().filter(|m| m.class == *c).count() as u32)).collect()
}

/// Step 5, shared by the firm draw and the inspector draw: the `k` items
/// with the smallest ranks `rank(seed, key(item))`, smallest first (equal
/// ranks, which SHA-256 makes practically impossible, by key), each with its
/// rank.
pub fn smallest_ranks<'a, T>(
    items: impl IntoIterator<Item = &'a T>,
    seed: &str,
    key: impl Fn(&T) -> String,
    k: usize,
) -> Vec<(&'a T, String)> {
    let mut ranked: Vec<(&T, String, String)> = items
        .into_iter()
        .map(|item| {
            let key = key(item);
            (item, rank(seed, &key), key)
        })
        .collect();
    ranked.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.2.cmp(&b.2)));
    ranked.truncate(k);
    ranked.into_iter().map(|(item, rank, _)| (item, rank)).collect()
}

/// The chosen firms: per class, the `drawn_count` smallest ranks.
pub fn choose(population: &[Member], seed: &str, ratio_percent: impl Fn(RiskClass) -> u32) -> Vec<Chosen> {
    let mut out = Vec::new();
    for class in RiskClass::ALL {
        let members: Vec<&Member> = population.iter().filter(|m| m.class == *class).collect();
        let k = drawn_count(members.len() as u32, ratio_percent(*class)) as usize;
        out.extend(smallest_ranks(members.iter().copied(), seed, |m| m.credit_code.clone(), k).into_iter().map(|(m, rank)| Chosen {
            credit_code: m.credit_code.clone(),
            class: *class,
            rank,
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn population(n: usize) -> Vec<Member> {
        (0..n)
            .map(|i| Member {
                credit_code: format!("9114010000000{i:04}X"),
                class: [RiskClass::Low, RiskClass::General, RiskClass::High][i % 3],
            })
            .collect()
    }

    fn ratios(c: RiskClass) -> u32 {
        match c {
            RiskClass::Low => 10,
            RiskClass::General => 20,
            RiskClass::FairlyHigh => 30,
            RiskClass::High => 50,
        }
    }

    const SEED: &str = "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d";

    fn codes(c: &[Chosen]) -> Vec<&str> {
        c.iter().map(|c| c.credit_code.as_str()).collect()
    }

    #[test]
    fn counts_round_up_and_a_rank_is_sha256_of_seed_colon_code() {
        assert_eq!((drawn_count(0, 50), drawn_count(1, 5), drawn_count(20, 5), drawn_count(21, 5), drawn_count(7, 100)), (0, 1, 1, 2, 7));
        // printf '%s:%s' abc 914403001922038216 | sha256sum
        assert_eq!(rank("abc", "914403001922038216"), sha256_hex(b"abc:914403001922038216"));
        let p = population(3);
        assert_eq!(population_text(&p[..2]), "91140100000000000X low\n91140100000000001X general\n");
    }

    #[test]
    fn the_same_inputs_choose_the_same_firms_in_any_order() {
        let p = population(60);
        let mut reversed = p.clone();
        reversed.reverse();
        assert_eq!(choose(&p, SEED, ratios), choose(&reversed, SEED, ratios));
        assert_eq!(population_digest(&p), population_digest(&reversed));
        let chosen = choose(&p, SEED, ratios);
        assert_eq!(chosen.len(), 2 + 4 + 10);
    }

    /// Changing any one input changes what is chosen: the seed, a ratio, or
    /// the population (a chosen firm's class, or a firm added that ranks
    /// before the last chosen of its class).
    #[test]
    fn any_one_input_changed_changes_the_chosen_set() {
        let p = population(60);
        let chosen = codes(&choose(&p, SEED, ratios)).into_iter().map(str::to_owned).collect::<Vec<_>>();
        for i in 0..20 {
            let seed = sha256_hex(format!("other seed {i}").as_bytes());
            assert_ne!(codes(&choose(&p, &seed, ratios)), chosen, "seed {seed}");
        }
        let more_low = |c: RiskClass| if c == RiskClass::Low { 20 } else { ratios(c) };
        assert_ne!(codes(&choose(&p, SEED, more_low)), chosen);
        let mut reclassed = p.clone();
        let first = reclassed.iter_mut().find(|m| m.credit_code == chosen[0]).unwrap();
        first.class = RiskClass::High;
        assert_ne!(codes(&choose(&reclassed, SEED, ratios)), chosen);
        let last_low = choose(&p, SEED, ratios).into_iter().rfind(|c| c.class == RiskClass::Low).unwrap();
        let newcomer =
            (0..10_000).map(|i| format!("9144030000000{i:04}Y")).find(|c| rank(SEED, c) < last_low.rank).expect("a code that ranks early");
        let mut grown = p.clone();
        grown.push(Member { credit_code: newcomer, class: RiskClass::Low });
        assert_ne!(codes(&choose(&grown, SEED, ratios)), chosen);
        assert_ne!(population_digest(&grown), population_digest(&p));
    }
}
