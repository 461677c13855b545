//! Restricted-party lists in the form of the US Consolidated Screening List
//! (CSL) that the International Trade Administration publishes, loaded from
//! its JSON or its CSV download.
//!
//! Field names follow the CSL as published. JSON: an object whose `results`
//! array holds one object per party with `id`, `source`, `entity_number`,
//! `type`, `programs`, `name`, `title`, `addresses` (objects with `address`,
//! `city`, `state`, `postal_code`, `country`), `federal_register_notice`,
//! `start_date`, `end_date`, ..., `remarks`, `source_list_url`, `alt_names`,
//! `ids`, ... CSV: a header row `_id, source, entity_number, type, programs,
//! name, title, addresses, federal_register_notice, start_date, end_date,
//! standard_order, license_requirement, license_policy, call_sign,
//! vessel_type, gross_tonnage, gross_registered_tonnage, vessel_flag,
//! vessel_owner, remarks, source_list_url, alt_names, citizenships,
//! dates_of_birth, nationalities, places_of_birth, source_information_url,
//! ids`, multi-valued cells joined with `; `. Sources: the CSL data model
//! derived from ITA's API metadata and the bulk file `consolidated.json` (API
//! Evangelist, "bureau-of-industry-and-security" data model, 2026-09-05), and
//! the column order documented by moov-io/watchman's `pkg/csl` (pkg.go.dev),
//! whose newer files add the leading `_id`.
//!
//! What is kept: the id (`id` or `_id`), source, entity number, type,
//! programs, name, alternative names, addresses, start date and remarks.
//! Other fields and columns are ignored, whatever they hold. `name` and an
//! id are required; a missing one is an error naming the row.
//!
//! The bytes are untrusted: every size is bounded by [`ListLimits`], and a
//! list that breaks a bound is refused whole rather than cut short, so a
//! screening never runs against part of a list. The SHA-256 of the exact
//! bytes identifies the list in every decision.

use std::fmt;

use ring::digest;
use thiserror::Error;

use super::csv::CsvProblem;

/// Bounds on what a list may contain. A list beyond any of them is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListLimits {
    /// Largest accepted file, in bytes. Default 64 MiB: the full CSL is a
    /// few tens of megabytes in either form.
    pub max_bytes: usize,
    /// Most entries (JSON results or CSV records). Default 200,000, about
    /// eight times the CSL today.
    pub max_entries: usize,
    /// Longest name or alternative name, in bytes. Default 1,024.
    pub max_name_bytes: usize,
    /// Longest value of any other kept field, and longest CSV cell of any
    /// column, in bytes. Default 64 KiB.
    pub max_field_bytes: usize,
    /// Most values in one multi-valued field (programs, alternative names,
    /// addresses) and most CSV columns. Default 512.
    pub max_values: usize,
}

impl Default for ListLimits {
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024 * 1024,
            max_entries: 200_000,
            max_name_bytes: 1024,
            max_field_bytes: 64 * 1024,
            max_values: 512,
        }
    }
}

/// The form a list is published in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    /// An object with a `results` array.
    Json,
    /// RFC 4180 CSV with a header row.
    Csv,
}

/// One listed party.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    /// The list's own id for the entry (`id` in JSON, `_id` in CSV).
    pub id: String,
    /// The source list, e.g. "Entity List (EL) - Bureau of Industry and
    /// Security"; empty when not given.
    pub source: String,
    /// The number the source list gave the party, not unique across
    /// sources.
    pub entity_number: Option<String>,
    /// The party type (Individual, Entity, Vessel, Aircraft), if given.
    pub entry_type: Option<String>,
    /// Sanctions or control programs.
    pub programs: Vec<String>,
    /// The primary name, as listed.
    pub name: String,
    /// Alternative names, as listed.
    pub alt_names: Vec<String>,
    /// Known addresses.
    pub addresses: Vec<Address>,
    /// When the listing took effect, as listed.
    pub start_date: Option<String>,
    /// Free-text remarks.
    pub remarks: Option<String>,
}

impl ListEntry {
    /// The distinct ISO 3166 alpha-2 country codes of the entry's
    /// addresses, upper case and sorted.
    pub fn countries(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .addresses
            .iter()
            .filter_map(|a| a.country.as_deref())
            .filter(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()))
            .map(str::to_ascii_uppercase)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// A listed address. The CSV form gives each address as one line of text,
/// kept in `address` with the other fields empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Address {
    /// Street address, or the whole address in the CSV form.
    pub address: Option<String>,
    /// City.
    pub city: Option<String>,
    /// State or province.
    pub state: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
    /// Country, ISO 3166 alpha-2 in the CSL.
    pub country: Option<String>,
}

/// A loaded list: its entries and what identifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScreeningList {
    digest: String,
    date: String,
    label: String,
    entries: Vec<ListEntry>,
}

impl ScreeningList {
    /// Loads a list in `format` from `bytes`, with default limits.
    ///
    /// `label` names the list (e.g. "CSL"), `date` is its publication date
    /// as `YYYY-MM-DD`; both come from the caller, not the file.
    pub fn parse(
        format: ListFormat,
        label: &str,
        date: &str,
        bytes: &[u8],
    ) -> Result<Self, ListError> {
        Self::parse_with_limits(format, label, date, bytes, &ListLimits::default())
    }

    /// Loads a list in `format` from `bytes` within `limits`.
    pub fn parse_with_limits(
        format: ListFormat,
        label: &str,
        date: &str,
        bytes: &[u8],
        limits: &ListLimits,
    ) -> Result<Self, ListError> {
        check_label(label)?;
        check_date(date)?;
        if bytes.len() > limits.max_bytes {
            return Err(ListError::TooLarge {
                bytes: bytes.len(),
                max: limits.max_bytes,
            });
        }

        let entries = match format {
            ListFormat::Json => super::json_list::entries(bytes, limits)?,
            ListFormat::Csv => super::csv_list::entries(bytes, limits)?,
        };
        Ok(Self {
            digest: hex::encode(digest::digest(&digest::SHA256, bytes)),
            date: date.to_owned(),
            label: label.to_owned(),
            entries,
        })
    }

    /// SHA-256 of the raw list bytes, lower-case hex.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Publication date given by the caller, `YYYY-MM-DD`.
    pub fn date(&self) -> &str {
        &self.date
    }

    /// Name or source label given by the caller.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The entries, in file order.
    pub fn entries(&self) -> &[ListEntry] {
        &self.entries
    }
}

/// Where in a list a problem was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowRef {
    /// The 0-based index in the JSON `results` array.
    JsonResult(usize),
    /// The 1-based line on which the CSV record starts (the header is
    /// line 1).
    CsvLine(usize),
}

impl fmt::Display for RowRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::JsonResult(i) => write!(f, "results[{i}]"),
            Self::CsvLine(l) => write!(f, "line {l}"),
        }
    }
}

/// Why a list was refused.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ListError {
    /// The label is empty or longer than 256 bytes.
    #[error("list label must be 1 to 256 bytes")]
    BadLabel,
    /// The publication date is not `YYYY-MM-DD`.
    #[error("list date {date:?} is not YYYY-MM-DD")]
    BadDate {
        /// The date as given, cut to 32 bytes.
        date: String,
    },
    /// The file is larger than allowed.
    #[error("list is {bytes} bytes, more than {max}")]
    TooLarge {
        /// Its size.
        bytes: usize,
        /// The bound.
        max: usize,
    },
    /// The JSON does not parse.
    #[error("list is not valid json at line {line}, column {column}")]
    Json {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The JSON is valid but not an object with a `results` array.
    #[error("json list has no results array")]
    NoResults,
    /// The CSV is not UTF-8.
    #[error("csv list is not utf-8 after byte {valid_up_to}")]
    NotUtf8 {
        /// Length of the valid prefix.
        valid_up_to: usize,
    },
    /// The CSV breaks RFC 4180 or a size bound.
    #[error("csv syntax error at line {line}")]
    Csv {
        /// 1-based line of the error.
        line: usize,
        /// What was wrong.
        #[source]
        problem: CsvProblem,
    },
    /// The CSV has no header row.
    #[error("csv list is empty")]
    NoHeader,
    /// A required CSV column is missing from the header.
    #[error("csv header has no {column:?} column")]
    MissingColumn {
        /// The column.
        column: &'static str,
    },
    /// A CSV column name appears twice in the header.
    #[error("csv header names column {column:?} twice")]
    DuplicateColumn {
        /// The column, cut to 64 bytes.
        column: String,
    },
    /// A CSV record does not have as many cells as the header.
    #[error("{row} has {found} cells, the header has {expected}")]
    CellCount {
        /// The record.
        row: RowRef,
        /// Cells in the header.
        expected: usize,
        /// Cells in the record.
        found: usize,
    },
    /// A list entry is not a JSON object.
    #[error("{row} is not an object")]
    NotAnObject {
        /// The entry.
        row: RowRef,
    },
    /// A required field is absent, null or empty.
    #[error("{row} has no {field}")]
    MissingField {
        /// The entry.
        row: RowRef,
        /// The field.
        field: &'static str,
    },
    /// A kept field has the wrong JSON type.
    #[error("{row}: {field} is not {expected}")]
    WrongType {
        /// The entry.
        row: RowRef,
        /// The field.
        field: &'static str,
        /// What it should be.
        expected: &'static str,
    },
    /// A kept field is longer than allowed.
    #[error("{row}: {field} is longer than {max} bytes")]
    FieldTooLong {
        /// The entry.
        row: RowRef,
        /// The field.
        field: &'static str,
        /// The bound.
        max: usize,
    },
    /// A multi-valued field has more values than allowed.
    #[error("{row}: {field} has more than {max} values")]
    TooManyValues {
        /// The entry.
        row: RowRef,
        /// The field.
        field: &'static str,
        /// The bound.
        max: usize,
    },
    /// The list has more entries than allowed.
    #[error("list has more than {max} entries")]
    TooManyEntries {
        /// The bound.
        max: usize,
    },
}

/// Checks a kept text value against its bound. `name` fields use the name
/// bound, others the field bound.
pub(crate) fn bounded(
    row: RowRef,
    field: &'static str,
    value: &str,
    limits: &ListLimits,
) -> Result<(), ListError> {
    let max = if matches!(field, "name" | "alt_names") {
        limits.max_name_bytes
    } else {
        limits.max_field_bytes
    };
    if value.len() > max {
        return Err(ListError::FieldTooLong { row, field, max });
    }
    Ok(())
}

fn check_label(label: &str) -> Result<(), ListError> {
    if label.is_empty() || label.len() > 256 {
        return Err(ListError::BadLabel);
    }
    Ok(())
}

/// Checks `YYYY-MM-DD` with a month of 1 to 12 and a day of 1 to 31.
// Limitation: days past the end of a short month (2026-02-31) pass; the
// date is a label for the decision record, not used in arithmetic.
fn check_date(date: &str) -> Result<(), ListError> {
    let b = date.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let number =
        |r: std::ops::Range<usize>| b[r].iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && digits(0..4)
        && digits(5..7)
        && digits(8..10);
    if shape && (1..=12).contains(&number(5..7)) && (1..=31).contains(&number(8..10)) {
        return Ok(());
    }
    Err(ListError::BadDate {
        date: date.chars().take(32).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_iso_dates_only() {
        assert!(check_date("2026-12-01").is_ok());
        for bad in [
            "2026-13-01",
            "2026-12-00",
            "26-12-01",
            "2026/12/01",
            "2026-1-01",
            "",
        ] {
            assert!(
                matches!(check_date(bad), Err(ListError::BadDate { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn countries_are_upper_case_distinct_and_two_letters() {
        let at = |c: &str| Address {
            country: Some(c.to_owned()),
            ..Address::default()
        };
        let entry = ListEntry {
            id: "1".into(),
            source: String::new(),
            entity_number: None,
            entry_type: None,
            programs: vec![],
            name: "x".into(),
            alt_names: vec![],
            addresses: vec![at("ru"), at("RU"), at("Narnia"), at("DE")],
            start_date: None,
            remarks: None,
        };
        assert_eq!(entry.countries(), ["DE", "RU"]);
    }

    #[test]
    fn row_refs_name_their_place() {
        assert_eq!(RowRef::JsonResult(3).to_string(), "results[3]");
        assert_eq!(RowRef::CsvLine(7).to_string(), "line 7");
    }
}
