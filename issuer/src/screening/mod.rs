//! Restricted-party screening: is a tenant or end user on a restricted-party
//! list?
//!
//! [`ScreeningList`] loads a list in the form of the US Consolidated
//! Screening List (JSON or CSV) and records the SHA-256 of its bytes, the
//! publication date and a label. [`Screener`] prepares it once; then
//! [`Screener::screen`] turns a [`Party`] into a [`ScreeningDecision`] that
//! names the list by digest and date, says whether the party hit and lists
//! the closest entries, and [`rescreen`] runs a batch and keeps the hits.
//!
//! Names are compared after [`normalize`]: case folding, transliteration of
//! Latin diacritics and Cyrillic, punctuation and legal-form words removed,
//! words sorted. Scores are Jaro-Winkler similarities ([`jaro_winkler`])
//! on whole names and word by word; see [`matcher`] for the rule and
//! [`DEFAULT_THRESHOLD`] for the default hit threshold.
//!
//! List bytes are untrusted and bounded ([`ListLimits`]); party fields come
//! from the issuer's caller and are bounded too. Everything here is pure:
//! no I/O, no clock, no logging. The caller decides what a hit means for a
//! license and records each decision.
//!
//! Limitation: a decision is as good as the name matching. Heavily
//! abbreviated names, names in scripts without a transliteration table, and
//! names that differ only by a transposition in very short words can be
//! missed; a hit is a reason for a person to look, not a finding.

mod csv;
mod csv_list;
mod index;
pub mod jaro_winkler;
mod json_list;
pub mod list;
pub mod matcher;
pub mod normalize;

pub use csv::CsvProblem;
pub use index::{MAX_SCORED, MIN_DICE};
pub use list::{Address, ListEntry, ListError, ListFormat, ListLimits, RowRef, ScreeningList};
pub use matcher::{
    Candidate, ConfigError, DEFAULT_MAX_CANDIDATES, DEFAULT_REPORT_FLOOR, DEFAULT_THRESHOLD,
    MAX_PARTY_ADDRESS_BYTES, MAX_PARTY_NAME_BYTES, Party, PartyRole, RescreenError, ScreenError,
    Screener, ScreenerConfig, ScreeningDecision, WHOLE_COVERAGE, WHOLE_MIN_TOKEN_SET, WORD_FLOOR,
    rescreen,
};

#[cfg(test)]
mod list_tests;
#[cfg(test)]
mod tests;
