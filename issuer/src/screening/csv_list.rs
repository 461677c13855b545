//! Entries from the CSV form of a CSL list.
//!
//! The first record is the header; columns are found by name (trimmed), so
//! their order does not matter and unknown columns are skipped. `name` and
//! an id column (`_id`, or `id`) are required; a column named twice is
//! refused. Every record must have as many cells as the header. The
//! multi-valued columns `programs`, `alt_names` and `addresses` split on
//! `;` with surrounding spaces trimmed (the CSL writes `; `).
//!
//! A leading UTF-8 byte-order mark is skipped. The caller has bounded the
//! input size; the reader bounds cells and columns, this module entries and
//! values.

use super::csv::{CsvError, Reader, Record};
use super::list::{Address, ListEntry, ListError, ListLimits, RowRef, bounded};

/// The entries of a CSV list, in order.
pub(crate) fn entries(bytes: &[u8], limits: &ListLimits) -> Result<Vec<ListEntry>, ListError> {
    let text = std::str::from_utf8(bytes).map_err(|e| ListError::NotUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = Reader::new(text, limits.max_field_bytes, limits.max_values);

    let header = reader
        .next_record()
        .ok_or(ListError::NoHeader)?
        .map_err(syntax)?;
    let columns = Columns::find(&header.cells)?;

    let mut out = Vec::new();
    while let Some(record) = reader.next_record() {
        if out.len() == limits.max_entries {
            return Err(ListError::TooManyEntries {
                max: limits.max_entries,
            });
        }
        let record = record.map_err(syntax)?;
        out.push(columns.entry(&record, limits)?);
    }
    Ok(out)
}

fn syntax(e: CsvError) -> ListError {
    ListError::Csv {
        line: e.line,
        problem: e.problem,
    }
}

/// Positions of the kept columns in the header.
struct Columns {
    count: usize,
    id: usize,
    name: usize,
    source: Option<usize>,
    entity_number: Option<usize>,
    entry_type: Option<usize>,
    programs: Option<usize>,
    alt_names: Option<usize>,
    addresses: Option<usize>,
    start_date: Option<usize>,
    remarks: Option<usize>,
}

impl Columns {
    fn find(header: &[String]) -> Result<Self, ListError> {
        let names: Vec<&str> = header.iter().map(|h| h.trim()).collect();
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return Err(ListError::DuplicateColumn {
                    column: n.chars().take(64).collect(),
                });
            }
        }
        let at = |n: &str| names.iter().position(|h| *h == n);

        Ok(Self {
            count: names.len(),
            id: at("_id")
                .or_else(|| at("id"))
                .ok_or(ListError::MissingColumn { column: "_id" })?,
            name: at("name").ok_or(ListError::MissingColumn { column: "name" })?,
            source: at("source"),
            entity_number: at("entity_number"),
            entry_type: at("type"),
            programs: at("programs"),
            alt_names: at("alt_names"),
            addresses: at("addresses"),
            start_date: at("start_date"),
            remarks: at("remarks"),
        })
    }

    fn entry(&self, record: &Record, limits: &ListLimits) -> Result<ListEntry, ListError> {
        let row = RowRef::CsvLine(record.line);
        if record.cells.len() != self.count {
            return Err(ListError::CellCount {
                row,
                expected: self.count,
                found: record.cells.len(),
            });
        }
        let cells = Cells {
            row,
            cells: &record.cells,
            limits,
        };

        Ok(ListEntry {
            id: cells
                .text(Some(self.id), "id")?
                .ok_or(ListError::MissingField { row, field: "id" })?,
            source: cells.text(self.source, "source")?.unwrap_or_default(),
            entity_number: cells.text(self.entity_number, "entity_number")?,
            entry_type: cells.text(self.entry_type, "type")?,
            programs: cells.list(self.programs, "programs")?,
            name: cells
                .text(Some(self.name), "name")?
                .ok_or(ListError::MissingField { row, field: "name" })?,
            alt_names: cells.list(self.alt_names, "alt_names")?,
            // Limitation: the CSV gives each address as one line of text;
            // it is not split into parts, so CSV entries carry no country.
            addresses: cells
                .list(self.addresses, "addresses")?
                .into_iter()
                .map(|a| Address {
                    address: Some(a),
                    ..Address::default()
                })
                .collect(),
            start_date: cells.text(self.start_date, "start_date")?,
            remarks: cells.text(self.remarks, "remarks")?,
        })
    }
}

/// The cells of one record, with what is needed to report errors.
struct Cells<'a> {
    row: RowRef,
    cells: &'a [String],
    limits: &'a ListLimits,
}

impl Cells<'_> {
    /// A trimmed cell, `None` when the column is absent or the cell blank.
    fn text(&self, at: Option<usize>, field: &'static str) -> Result<Option<String>, ListError> {
        let Some(cell) = at.and_then(|i| self.cells.get(i)) else {
            return Ok(None);
        };
        bounded(self.row, field, cell, self.limits)?;
        let cell = cell.trim();
        Ok((!cell.is_empty()).then(|| cell.to_owned()))
    }

    /// A `;`-separated cell, items trimmed and blanks dropped.
    fn list(&self, at: Option<usize>, field: &'static str) -> Result<Vec<String>, ListError> {
        let Some(cell) = at.and_then(|i| self.cells.get(i)) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for item in cell.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            if out.len() == self.limits.max_values {
                return Err(ListError::TooManyValues {
                    row: self.row,
                    field,
                    max: self.limits.max_values,
                });
            }
            bounded(self.row, field, item, self.limits)?;
            out.push(item.to_owned());
        }
        Ok(out)
    }
}
