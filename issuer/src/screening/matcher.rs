//! Screening one party, or many, against a loaded list.
//!
//! A [`Screener`] normalises every listed name and alternative name once
//! ([`super::normalize`]) and indexes them by character trigram, with
//! trigrams of common words weighted down.
//! Screening a party then scores only the names the index proposes:
//!
//! 1. Normalise the party's name; refuse it if nothing is left or it is
//!    too long, and refuse a country that is not two letters.
//! 2. Ask the index for candidate names: those whose trigrams resemble the
//!    party's by a weighted Dice coefficient of at least
//!    [`MIN_DICE`](super::MIN_DICE), most similar first, at most
//!    [`MAX_SCORED`](super::MAX_SCORED); and those whose words, joined,
//!    equal the party's, which are exact matches and score 1.
//! 3. Score every other candidate as the larger of
//!    - the whole-name score: Jaro-Winkler on the two sorted, space-joined
//!      word strings, counted only when at least [`WHOLE_COVERAGE`] of the
//!      longer string's characters match (see below), and
//!    - a token-set score: each word is credited with its best
//!      Jaro-Winkler against the other side's words (0 if below
//!      [`WORD_FLOOR`]), weighted by its length in characters and by how
//!      rare it is among listed names, over the total weight of both
//!      sides. Extra or missing words lower it in proportion to their
//!      weight; word order never matters.
//! 4. Keep each entry's best name; report entries scoring at least the
//!    reporting floor, best first (ties by entry id), at most
//!    `max_candidates`. The decision is a hit when any entry reaches the
//!    threshold or matches exactly.
//!
//! Why the coverage condition: on whole multi-word names, Jaro-Winkler is
//! generous. When the first sorted word is shared and long, the prefix
//! bonus and the wide match window lift two different names past 0.90
//! (`alpha kestrelworks` / `alpha tovmira`-like pairs, or two names sharing
//! only "international investment"); on generated lists that alone flagged
//! one random name in five. Requiring most characters to match keeps the
//! whole-name score for what it is good at (typos spread over a name,
//! words split or joined: `acme rocket werks` / `acme rocketworks`), and
//! leaves the rest to the token-set score, which gives a word no credit
//! unless it has a close partner.
//!
//! Countries: when the party and a matched entry both give countries and
//! the party's is not among the entry's, the candidate says so
//! (`country_differs`) but the hit stands. A listed party can trade from
//! anywhere, and a wrong or missing address on either side must not clear
//! a name match; a person decides.
//!
//! Limitation: the party's address is carried into the decision for the
//! record but not compared with listed addresses.

use std::collections::HashMap;

use serde::Serialize;
use thiserror::Error;

use super::index::Index;
use super::jaro_winkler::{jaro_winkler_and_coverage, jaro_winkler_chars};
use super::list::ScreeningList;
use super::normalize;

/// Default score at or above which a candidate is a hit.
///
/// 0.90 admits one or two typos or a swapped letter pair in a name of ten
/// or more letters, a compounded or split word, and an extra short word,
/// while names that merely share a prefix or a common word stay below it.
pub const DEFAULT_THRESHOLD: f64 = 0.90;

/// Default score at or above which a candidate is reported.
pub const DEFAULT_REPORT_FLOOR: f64 = 0.80;

/// Default number of candidates reported.
pub const DEFAULT_MAX_CANDIDATES: usize = 10;

/// Word-to-word Jaro-Winkler below which a word earns no credit in the
/// token-set score.
pub const WORD_FLOOR: f64 = 0.80;

/// Share of the longer whole name's characters that must match before the
/// whole-name Jaro-Winkler counts.
pub const WHOLE_COVERAGE: f64 = 0.85;

/// Token-set score below which the whole-name Jaro-Winkler does not count.
pub const WHOLE_MIN_TOKEN_SET: f64 = 0.6;

/// Longest party name, in bytes.
pub const MAX_PARTY_NAME_BYTES: usize = 1024;

/// Longest party address, in bytes.
pub const MAX_PARTY_ADDRESS_BYTES: usize = 4096;

/// Whose name is screened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PartyRole {
    /// The tenant a license is issued to.
    Tenant,
    /// The end user of the licensed chips.
    EndUser,
}

/// A party to screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Party {
    /// Whose name this is.
    pub role: PartyRole,
    /// The name as given.
    pub name: String,
    /// The address as given, kept for the record.
    pub address: Option<String>,
    /// ISO 3166 alpha-2 country code, either case.
    pub country: Option<String>,
}

/// Thresholds and limits of a [`Screener`].
#[derive(Debug, Clone, PartialEq)]
pub struct ScreenerConfig {
    /// Score at or above which a candidate is a hit; default
    /// [`DEFAULT_THRESHOLD`].
    pub threshold: f64,
    /// Score at or above which a candidate is reported; default
    /// [`DEFAULT_REPORT_FLOOR`]. At most `threshold`.
    pub report_floor: f64,
    /// Most candidates in a decision, at least 1; default
    /// [`DEFAULT_MAX_CANDIDATES`].
    pub max_candidates: usize,
}

impl Default for ScreenerConfig {
    fn default() -> Self {
        Self {
            threshold: DEFAULT_THRESHOLD,
            report_floor: DEFAULT_REPORT_FLOOR,
            max_candidates: DEFAULT_MAX_CANDIDATES,
        }
    }
}

/// One listed entry that resembles the party.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    /// The entry's id in the list.
    pub entry_id: String,
    /// The entry's source list.
    pub source: String,
    /// The entry's primary name, as listed.
    pub listed_name: String,
    /// The name or alternative name that scored best, as listed.
    pub matched_name: String,
    /// Its score in `[0, 1]`.
    pub score: f64,
    /// Whether the normalised names are equal.
    pub exact: bool,
    /// The entry's address countries, upper case.
    pub listed_countries: Vec<String>,
    /// Whether the party gave a country, the entry lists some, and the
    /// party's is not among them. Informational: it does not clear a hit.
    pub country_differs: bool,
}

/// The outcome of screening one party against one list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScreeningDecision {
    /// The list's label.
    pub list_label: String,
    /// SHA-256 of the list bytes, hex.
    pub list_digest: String,
    /// The list's publication date, `YYYY-MM-DD`.
    pub list_date: String,
    /// The party screened.
    pub party: Party,
    /// Whether any candidate reached the threshold or matched exactly.
    pub hit: bool,
    /// The threshold applied.
    pub threshold: f64,
    /// Reported candidates, best first.
    pub candidates: Vec<Candidate>,
}

/// Why a party could not be screened.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ScreenError {
    /// The name has no letters or digits.
    #[error("party name has nothing to screen")]
    UnscreenableName,
    /// The name is longer than [`MAX_PARTY_NAME_BYTES`].
    #[error("party name is longer than {max} bytes")]
    NameTooLong {
        /// The bound.
        max: usize,
    },
    /// The address is longer than [`MAX_PARTY_ADDRESS_BYTES`].
    #[error("party address is longer than {max} bytes")]
    AddressTooLong {
        /// The bound.
        max: usize,
    },
    /// The country is not two ASCII letters.
    #[error("party country is not an iso 3166 alpha-2 code")]
    BadCountry,
}

/// A party in a batch could not be screened.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("party {index} could not be screened")]
pub struct RescreenError {
    /// Its position in the batch.
    pub index: usize,
    /// Why.
    #[source]
    pub source: ScreenError,
}

/// The configuration was inconsistent.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("screener needs 0 <= report_floor <= threshold <= 1 and max_candidates >= 1")]
pub struct ConfigError;

/// One listed name, normalised.
#[derive(Debug)]
struct Name {
    /// Index of the entry in the list.
    entry: usize,
    /// `None` for the primary name, else the index in `alt_names`.
    alt: Option<usize>,
    /// The sorted words joined by spaces.
    joined: Vec<char>,
    /// The sorted words.
    words: Vec<Word>,
}

/// A normalised word and its weight in the token-set score.
#[derive(Debug)]
pub(crate) struct Word {
    chars: Vec<char>,
    weight: f64,
}

/// A list prepared for fast screening.
#[derive(Debug)]
pub struct Screener {
    list: ScreeningList,
    config: ScreenerConfig,
    names: Vec<Name>,
    countries: Vec<Vec<String>>,
    index: Index,
    /// In how many listed names each normalised word occurs.
    frequency: HashMap<String, u32>,
}

impl Screener {
    /// Prepares `list` with the default configuration.
    pub fn new(list: ScreeningList) -> Self {
        Self::build(list, ScreenerConfig::default())
    }

    /// Prepares `list` with `config`.
    pub fn with_config(list: ScreeningList, config: ScreenerConfig) -> Result<Self, ConfigError> {
        let ok = (0.0..=1.0).contains(&config.report_floor)
            && (0.0..=1.0).contains(&config.threshold)
            && config.report_floor <= config.threshold
            && config.max_candidates >= 1;
        if !ok {
            return Err(ConfigError);
        }
        Ok(Self::build(list, config))
    }

    fn build(list: ScreeningList, config: ScreenerConfig) -> Self {
        // 1. Normalise every name (a name of punctuation alone has nothing
        //    to compare and is skipped) and count word frequencies.
        let mut tokens = Vec::new();
        let mut frequency: HashMap<String, u32> = HashMap::new();
        for (entry, e) in list.entries().iter().enumerate() {
            let alts = e.alt_names.iter().enumerate().map(|(i, n)| (Some(i), n));
            for (alt, name) in std::iter::once((None, &e.name)).chain(alts) {
                let words = normalize::tokens(name);
                for w in &words {
                    *frequency.entry(w.clone()).or_default() += 1;
                }
                if !words.is_empty() {
                    tokens.push((entry, alt, words));
                }
            }
        }

        // 2. Weigh the words and index the names.
        let mut screener = Self {
            index: Index::build(tokens.iter().map(|t| t.2.as_slice())),
            countries: list.entries().iter().map(|e| e.countries()).collect(),
            list,
            config,
            names: Vec::with_capacity(tokens.len()),
            frequency,
        };
        for (entry, alt, words) in tokens {
            let name = Name {
                entry,
                alt,
                joined: words.join(" ").chars().collect(),
                words: screener.weigh(&words),
            };
            screener.names.push(name);
        }
        screener
    }

    /// The words with their token-set weights: length in characters times
    /// `1 + ln((n + 1) / (f + 1))`, for `n` listed names of which `f`
    /// contain the word. Words that many listed names share ("trading",
    /// "international") count for less than rare ones.
    fn weigh(&self, words: &[String]) -> Vec<Word> {
        let n = self.names.capacity() as f64;
        words
            .iter()
            .map(|w| {
                let f = self.frequency.get(w).copied().map_or(0.0, f64::from);
                let chars: Vec<char> = w.chars().collect();
                let weight = chars.len() as f64 * (1.0 + ((n + 1.0) / (f + 1.0)).ln());
                Word { chars, weight }
            })
            .collect()
    }

    /// The list being screened against.
    pub fn list(&self) -> &ScreeningList {
        &self.list
    }

    /// The configuration in force.
    pub fn config(&self) -> &ScreenerConfig {
        &self.config
    }

    /// Screens one party.
    pub fn screen(&self, party: &Party) -> Result<ScreeningDecision, ScreenError> {
        // 1. Check and normalise the party.
        let country = check_party(party)?;
        let words = normalize::tokens(&party.name);
        if words.is_empty() {
            return Err(ScreenError::UnscreenableName);
        }
        let joined: Vec<char> = words.join(" ").chars().collect();
        let weighed = self.weigh(&words);

        // 2-3. Score the proposed names; keep each entry's best.
        let mut best: Vec<(usize, usize, f64, bool)> = Vec::new();
        for (id, exact) in self.index.candidates(&words) {
            let name = &self.names[id as usize];
            let score = if exact {
                1.0
            } else {
                score(&joined, &weighed, name)
            };
            if score < self.config.report_floor {
                continue;
            }
            match best.iter_mut().find(|b| b.0 == name.entry) {
                Some(b) if score > b.2 => *b = (name.entry, id as usize, score, exact),
                Some(_) => {}
                None => best.push((name.entry, id as usize, score, exact)),
            }
        }

        // 4. Rank, cut and describe.
        let entries = self.list.entries();
        best.sort_by(|a, b| {
            b.2.total_cmp(&a.2)
                .then_with(|| entries[a.0].id.cmp(&entries[b.0].id))
        });
        let hit = best.iter().any(|b| b.3 || b.2 >= self.config.threshold);
        best.truncate(self.config.max_candidates);
        let candidates = best
            .into_iter()
            .map(|(entry, id, score, exact)| {
                self.candidate(entry, id, score, exact, country.as_deref())
            })
            .collect();
        Ok(ScreeningDecision {
            list_label: self.list.label().to_owned(),
            list_digest: self.list.digest().to_owned(),
            list_date: self.list.date().to_owned(),
            party: party.clone(),
            hit,
            threshold: self.config.threshold,
            candidates,
        })
    }

    fn candidate(
        &self,
        entry: usize,
        name_id: usize,
        score: f64,
        exact: bool,
        country: Option<&str>,
    ) -> Candidate {
        let e = &self.list.entries()[entry];
        let matched = match self.names[name_id].alt {
            None => &e.name,
            Some(i) => &e.alt_names[i],
        };
        let listed = &self.countries[entry];
        Candidate {
            entry_id: e.id.clone(),
            source: e.source.clone(),
            listed_name: e.name.clone(),
            matched_name: matched.clone(),
            score,
            exact,
            listed_countries: listed.clone(),
            country_differs: country
                .is_some_and(|c| !listed.is_empty() && !listed.iter().any(|l| l == c)),
        }
    }
}

/// Screens every party again (say, against a newer list) and returns those
/// that now hit, with their position in `parties`.
///
/// Fails on the first party that cannot be screened, naming it, rather than
/// passing over it.
pub fn rescreen(
    screener: &Screener,
    parties: &[Party],
) -> Result<Vec<(usize, ScreeningDecision)>, RescreenError> {
    let mut out = Vec::new();
    for (index, party) in parties.iter().enumerate() {
        let decision = screener
            .screen(party)
            .map_err(|source| RescreenError { index, source })?;
        if decision.hit {
            out.push((index, decision));
        }
    }
    Ok(out)
}

/// Checks a party's bounds and returns its country in upper case.
fn check_party(party: &Party) -> Result<Option<String>, ScreenError> {
    if party.name.len() > MAX_PARTY_NAME_BYTES {
        return Err(ScreenError::NameTooLong {
            max: MAX_PARTY_NAME_BYTES,
        });
    }
    if party
        .address
        .as_ref()
        .is_some_and(|a| a.len() > MAX_PARTY_ADDRESS_BYTES)
    {
        return Err(ScreenError::AddressTooLong {
            max: MAX_PARTY_ADDRESS_BYTES,
        });
    }
    match party.country.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(c) if c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()) => {
            Ok(Some(c.to_ascii_uppercase()))
        }
        Some(_) => Err(ScreenError::BadCountry),
    }
}

/// The score of a party (sorted words joined, and the words) against a
/// listed name that is not an exact match; see the module notes.
fn score(joined: &[char], words: &[Word], name: &Name) -> f64 {
    let tokens = token_set(words, &name.words);
    if words.len() == name.words.len() || tokens < WHOLE_MIN_TOKEN_SET {
        return tokens;
    }
    let (whole, coverage) = jaro_winkler_and_coverage(joined, &name.joined);
    if coverage >= WHOLE_COVERAGE {
        whole.max(tokens)
    } else {
        tokens
    }
}

/// The token-set score of two word lists; see the module notes. Each pair
/// of words is compared once, crediting both sides.
fn token_set(a: &[Word], b: &[Word]) -> f64 {
    let credit = |best: f64, weight: f64| {
        if best >= WORD_FLOOR {
            best * weight
        } else {
            0.0
        }
    };
    let mut best_b = vec![0.0f64; b.len()];
    let mut earned = 0.0;
    for w in a {
        let mut best_w = 0.0f64;
        for (v, best_v) in b.iter().zip(best_b.iter_mut()) {
            let s = jaro_winkler_chars(&w.chars, &v.chars);
            best_w = best_w.max(s);
            *best_v = best_v.max(s);
        }
        earned += credit(best_w, w.weight);
    }
    earned += b
        .iter()
        .zip(&best_b)
        .map(|(v, &s)| credit(s, v.weight))
        .sum::<f64>();

    let total: f64 = a.iter().chain(b).map(|w| w.weight).sum();
    if total > 0.0 { earned / total } else { 0.0 }
}
