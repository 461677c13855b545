//! The blocking index: which listed names are worth scoring for a query.
//!
//! Every normalised word is padded with a space on each side and cut into
//! character trigrams (`zephyr` → ` ze`, `zep`, `eph`, `phy`, `hyr`, `yr `).
//! The index maps each trigram to the names that contain it: a slot per
//! distinct trigram, and a posting list of name ids per slot.
//!
//! Each trigram weighs `1 + ln((n + 1) / (f + 1))` for `n` names of which
//! `f` contain it, so the trigrams of words many names share ("trading",
//! "international") count for little. A name is a candidate when the
//! weighted Dice coefficient of its trigram set and the query's,
//! `2·w(shared) / (w(query) + w(name)) ≥ MIN_DICE`, or when its words
//! joined without spaces equal the query's (kept in a separate exact table,
//! so an exact normalised match is never missed, whatever the trigrams
//! say). Candidates are scored from the most similar down, at most
//! [`MAX_SCORED`] of them.
//!
//! Limitation: blocking is a heuristic. A very short name whose only
//! difference is a transposition in every word (`abcd` / `acbd`) can share
//! too few trigrams to be scored, even though Jaro-Winkler would rate the
//! pair high; names of four or more characters per word with one typo per
//! word share well above the bound. And on a list where more than
//! [`MAX_SCORED`] names resemble a query more closely by trigrams than a
//! true match does, that match is not scored.

use std::collections::HashMap;

/// Smallest weighted Dice coefficient of trigram sets for a name to be
/// scored.
pub const MIN_DICE: f64 = 0.25;

/// Most names scored for one query, exact matches included.
pub const MAX_SCORED: usize = 256;

/// A trigram packed into one integer: three 21-bit code points.
type Gram = u64;

/// Names by trigram, and by their words joined without spaces.
#[derive(Debug, Default)]
pub(crate) struct Index {
    /// Each distinct trigram of the list and its slot.
    slots: HashMap<Gram, u32>,
    /// Slot `s` owns `postings[starts[s]..starts[s + 1]]`.
    starts: Vec<u32>,
    /// Name ids, ascending within each slot.
    postings: Vec<u32>,
    /// Weight of each slot's trigram.
    weights: Vec<f64>,
    /// Total trigram weight of each name.
    name_weights: Vec<f64>,
    /// Weight of a trigram no listed name has.
    unseen_weight: f64,
    /// Names by their words joined without spaces.
    exact: HashMap<String, Vec<u32>>,
}

impl Index {
    /// Builds the index over names given as their sorted words; name `i`
    /// in the iteration is name id `i`.
    ///
    /// The list's byte bound keeps every count here far below `u32::MAX`:
    /// a name has fewer trigrams than its text has bytes plus words.
    pub(crate) fn build<'a>(names: impl Iterator<Item = &'a [String]>) -> Self {
        // 1. Give each distinct trigram a slot; note every name's slots.
        let mut slots: HashMap<Gram, u32> = HashMap::new();
        let mut name_slots: Vec<u32> = Vec::new();
        let mut gram_counts: Vec<usize> = Vec::new();
        let mut exact: HashMap<String, Vec<u32>> = HashMap::new();
        for (id, words) in names.enumerate() {
            let grams = grams(words);
            gram_counts.push(grams.len());
            for g in grams {
                let next = count(slots.len());
                name_slots.push(*slots.entry(g).or_insert(next));
            }
            exact.entry(words.concat()).or_default().push(count(id));
        }

        // 2. Size each slot's posting list, then fill them in name order.
        let mut starts = vec![0u32; slots.len() + 1];
        for &s in &name_slots {
            starts[s as usize + 1] += 1;
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        let mut next = starts.clone();
        let mut postings = vec![0u32; name_slots.len()];
        let mut own = name_slots.iter();
        for (id, &n) in gram_counts.iter().enumerate() {
            for &s in own.by_ref().take(n) {
                postings[next[s as usize] as usize] = count(id);
                next[s as usize] += 1;
            }
        }

        // 3. Weigh the trigrams, then the names.
        let n = gram_counts.len() as f64;
        let weight = |f: f64| 1.0 + ((n + 1.0) / (f + 1.0)).ln();
        let weights: Vec<f64> = starts
            .windows(2)
            .map(|w| weight(f64::from(w[1] - w[0])))
            .collect();
        let mut own = name_slots.iter();
        let name_weights = gram_counts
            .iter()
            .map(|&k| own.by_ref().take(k).map(|&s| weights[s as usize]).sum())
            .collect();
        Self {
            slots,
            starts,
            postings,
            weights,
            name_weights,
            unseen_weight: weight(0.0),
            exact,
        }
    }

    /// The names worth scoring against a query given as its sorted words:
    /// every exact match, then the names at or above [`MIN_DICE`] from the
    /// most similar down, at most [`MAX_SCORED`] in all. Each comes with
    /// whether it is an exact match.
    pub(crate) fn candidates(&self, words: &[String]) -> Vec<(u32, bool)> {
        // 1. Sum the weights of shared trigrams, noting which names were
        //    touched.
        let mut shared = vec![0.0f64; self.name_weights.len()];
        let mut touched = Vec::new();
        let mut query_weight = 0.0;
        for g in grams(words) {
            let Some(&k) = self.slots.get(&g) else {
                query_weight += self.unseen_weight;
                continue;
            };
            let k = k as usize;
            query_weight += self.weights[k];
            for &id in &self.postings[self.starts[k] as usize..self.starts[k + 1] as usize] {
                if shared[id as usize] == 0.0 {
                    touched.push(id);
                }
                shared[id as usize] += self.weights[k];
            }
        }

        // 2. Exact matches first, then the rest by falling Dice.
        let exact = self
            .exact
            .get(&words.concat())
            .map_or(&[][..], Vec::as_slice);
        let mut ranked: Vec<(f64, u32)> = touched
            .into_iter()
            .filter(|id| !exact.contains(id))
            .map(|id| {
                let name_weight = self.name_weights[id as usize];
                (2.0 * shared[id as usize] / (query_weight + name_weight), id)
            })
            .filter(|(dice, _)| *dice >= MIN_DICE)
            .collect();
        ranked.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));

        let room = MAX_SCORED.saturating_sub(exact.len());
        let mut out: Vec<(u32, bool)> = exact.iter().map(|&id| (id, true)).collect();
        out.extend(ranked.into_iter().take(room).map(|(_, id)| (id, false)));
        out
    }
}

/// A count or id as stored; see [`Index::build`] for why it fits.
fn count(n: usize) -> u32 {
    u32::try_from(n).expect("list byte bound keeps counts below u32::MAX")
}

/// The distinct trigrams of space-padded words, sorted.
fn grams(words: &[String]) -> Vec<Gram> {
    let mut out = Vec::new();
    for word in words {
        // Slide a window of three over " word ".
        let (mut x, mut y) = (u64::from(' '), None::<u64>);
        for c in word
            .chars()
            .map(u64::from)
            .chain(std::iter::once(u64::from(' ')))
        {
            if let Some(y) = y {
                out.push((x << 42) | (y << 21) | c);
                x = y;
            }
            y = Some(c);
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn trigrams_of_padded_words() {
        // " ab", "ab ", " c " (c: one letter gives one padded trigram).
        assert_eq!(grams(&words("ab c")).len(), 3);
        // "zephyr" padded: " ze", "zep", "eph", "phy", "hyr", "yr ".
        assert_eq!(grams(&words("zephyr")).len(), 6);
    }

    #[test]
    fn finds_similar_names_and_skips_unrelated_ones() {
        let names = [
            words("dynamics zephyr"),
            words("orbit"),
            words("dinamics zefyr"),
        ];
        let index = Index::build(names.iter().map(Vec::as_slice));
        let got: Vec<u32> = index
            .candidates(&words("dynamics zephyr"))
            .iter()
            .map(|c| c.0)
            .collect();
        assert_eq!(got, [0, 2]);
        assert_eq!(index.candidates(&words("dynamics zephyr"))[0], (0, true));
    }

    #[test]
    fn exact_joined_words_are_always_candidates() {
        // No trigram in common: " a ", " b ", ... against " ab", "abc", ...
        let names = [words("a b c d"), words("xyz")];
        let index = Index::build(names.iter().map(Vec::as_slice));
        assert_eq!(index.candidates(&words("abcd")), [(0, true)]);
    }
}
