//! Entries from the JSON form of a CSL list: `{"results": [{...}, ...]}`.
//!
//! Each result is read field by field from a parsed `serde_json::Value`, so
//! that a wrong type is reported with its row and field. Ids and entity
//! numbers may be strings or numbers; `null` counts as absent everywhere.
//! Fields not kept are never looked at. The caller has bounded the input
//! size; this module bounds entries, values and field lengths.

use serde_json::{Map, Value};

use super::list::{Address, ListEntry, ListError, ListLimits, RowRef, bounded};

/// The entries of a JSON list, in order.
pub(crate) fn entries(bytes: &[u8], limits: &ListLimits) -> Result<Vec<ListEntry>, ListError> {
    let root: Value = serde_json::from_slice(bytes).map_err(|source| ListError::Json {
        line: source.line(),
        column: source.column(),
        source,
    })?;
    let results = root
        .get("results")
        .and_then(Value::as_array)
        .ok_or(ListError::NoResults)?;
    if results.len() > limits.max_entries {
        return Err(ListError::TooManyEntries {
            max: limits.max_entries,
        });
    }

    results
        .iter()
        .enumerate()
        .map(|(i, v)| entry(RowRef::JsonResult(i), v, limits))
        .collect()
}

fn entry(row: RowRef, value: &Value, limits: &ListLimits) -> Result<ListEntry, ListError> {
    let obj = value.as_object().ok_or(ListError::NotAnObject { row })?;
    let f = Fields { row, obj, limits };

    let id = match f.id("id")? {
        Some(id) => Some(id),
        None => f.id("_id")?,
    };
    Ok(ListEntry {
        id: id.ok_or(ListError::MissingField { row, field: "id" })?,
        source: f.text("source")?.unwrap_or_default(),
        entity_number: f.id("entity_number")?,
        entry_type: f.text("type")?,
        programs: f.texts("programs")?,
        name: f
            .text("name")?
            .ok_or(ListError::MissingField { row, field: "name" })?,
        alt_names: f.texts("alt_names")?,
        addresses: f.addresses()?,
        start_date: f.text("start_date")?,
        remarks: f.text("remarks")?,
    })
}

/// The fields of one result, with what is needed to report errors.
struct Fields<'a> {
    row: RowRef,
    obj: &'a Map<String, Value>,
    limits: &'a ListLimits,
}

impl Fields<'_> {
    /// A string field; absent, null and blank are `None`.
    fn text(&self, field: &'static str) -> Result<Option<String>, ListError> {
        match self.obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => self.kept(field, s),
            Some(_) => Err(self.wrong(field, "a string")),
        }
    }

    /// An identifier: a string or an integer.
    fn id(&self, field: &'static str) -> Result<Option<String>, ListError> {
        match self.obj.get(field) {
            Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Ok(Some(n.to_string())),
            Some(Value::Number(_)) => Err(self.wrong(field, "a string or an integer")),
            _ => self.text(field),
        }
    }

    /// An array of strings; absent and null are empty, blank items dropped.
    fn texts(&self, field: &'static str) -> Result<Vec<String>, ListError> {
        let items = self.array(field)?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let Value::String(s) = item else {
                return Err(self.wrong(field, "an array of strings"));
            };
            out.extend(self.kept(field, s)?);
        }
        Ok(out)
    }

    /// The `addresses` array of objects.
    fn addresses(&self) -> Result<Vec<Address>, ListError> {
        let field = "addresses";
        let mut out = Vec::new();
        for item in self.array(field)? {
            let Some(obj) = item.as_object() else {
                return Err(self.wrong(field, "an array of objects"));
            };
            let part = |key: &str| match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => self.kept(field, s),
                Some(_) => Err(self.wrong(field, "objects of strings")),
            };
            out.push(Address {
                address: part("address")?,
                city: part("city")?,
                state: part("state")?,
                postal_code: part("postal_code")?,
                country: part("country")?,
            });
        }
        Ok(out)
    }

    fn array(&self, field: &'static str) -> Result<&[Value], ListError> {
        let items = match self.obj.get(field) {
            None | Some(Value::Null) => return Ok(&[]),
            Some(Value::Array(items)) => items,
            Some(_) => return Err(self.wrong(field, "an array")),
        };
        if items.len() > self.limits.max_values {
            return Err(ListError::TooManyValues {
                row: self.row,
                field,
                max: self.limits.max_values,
            });
        }
        Ok(items)
    }

    /// A trimmed value within its bound, `None` when blank.
    fn kept(&self, field: &'static str, s: &str) -> Result<Option<String>, ListError> {
        bounded(self.row, field, s, self.limits)?;
        let s = s.trim();
        Ok((!s.is_empty()).then(|| s.to_owned()))
    }

    fn wrong(&self, field: &'static str, expected: &'static str) -> ListError {
        ListError::WrongType {
            row: self.row,
            field,
            expected,
        }
    }
}
