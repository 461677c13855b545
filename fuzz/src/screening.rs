//! What the two restricted-party list targets check of a list the issuer
//! accepted: every bound held, tighter limits only refuse, the entries
//! written out again read back the same (as JSON from either form, and as
//! CSV from CSV), and every listed name, screened as it is listed, is a hit.
//!
//! The writers here are the targets' own: the issuer only reads lists. They
//! quote every CSV cell and write every JSON field as a string, so what
//! they write is the plainest form of the entries, not a copy of the input.

use chipward_issuer::screening::{
    Address, DEFAULT_MAX_CANDIDATES, DEFAULT_REPORT_FLOOR, ListEntry, ListFormat, ListLimits,
    MAX_PARTY_NAME_BYTES, Party, PartyRole, Screener, ScreeningList, normalize,
};
use ring::digest;

/// Label of every list the targets load.
pub const LABEL: &str = "CSL";
/// Publication date of every list the targets load.
pub const DATE: &str = "2026-12-01";

/// Listed entries whose names the targets screen, per input: screening
/// costs a normalisation and an index walk per name.
pub const SCREENED_ENTRIES: usize = 8;

/// Tight limits, so that short inputs reach every bound.
pub fn tight_limits() -> ListLimits {
    ListLimits {
        max_bytes: 4096,
        max_entries: 4,
        max_name_bytes: 24,
        max_field_bytes: 48,
        max_values: 3,
    }
}

/// Loads `bytes` in `format` with default and with tight limits and checks
/// everything the module notes list.
///
/// # Panics
///
/// When a check fails: that is the finding.
pub fn check(format: ListFormat, bytes: &[u8]) {
    let loaded = ScreeningList::parse(format, LABEL, DATE, bytes);
    let tight = ScreeningList::parse_with_limits(format, LABEL, DATE, bytes, &tight_limits());

    // Limits refuse; they never change what is read.
    if let Ok(tight) = &tight {
        let loaded = loaded.as_ref().expect("a list within tight limits loads");
        assert_eq!(tight, loaded);
        assert_bounded(tight.entries(), &tight_limits());
    }
    let Ok(list) = loaded else {
        return;
    };

    assert_eq!(list.digest(), hex_sha256(bytes));
    assert_eq!((list.label(), list.date()), (LABEL, DATE));
    assert_bounded(list.entries(), &ListLimits::default());

    // JSON holds whatever either form holds; CSV holds what CSV held (one
    // line per address, no `;` inside a value).
    let mut rewritten = vec![(ListFormat::Json, to_json(list.entries()))];
    if format == ListFormat::Csv {
        rewritten.push((ListFormat::Csv, to_csv(list.entries()).into_bytes()));
    }
    for (form, written) in rewritten {
        let reread = ScreeningList::parse(form, LABEL, DATE, &written);
        let reread = reread.unwrap_or_else(|e| panic!("{form:?} rewriting refused: {e}"));
        assert_eq!(reread.entries(), list.entries(), "{form:?} rewriting");
    }

    screen_listed_names(list);
}

/// Every kept value is trimmed, non-blank and within `limits`, and every
/// required field is present.
fn assert_bounded(entries: &[ListEntry], limits: &ListLimits) {
    assert!(entries.len() <= limits.max_entries);
    let kept = |value: &str, max: usize| {
        assert!(!value.is_empty() && value.len() <= max, "{value:?}");
        assert_eq!(value.trim(), value);
    };
    for e in entries {
        kept(&e.id, limits.max_field_bytes);
        kept(&e.name, limits.max_name_bytes);
        let optional = [&e.entity_number, &e.entry_type, &e.start_date, &e.remarks];
        for value in optional.into_iter().flatten() {
            kept(value, limits.max_field_bytes);
        }
        if !e.source.is_empty() {
            kept(&e.source, limits.max_field_bytes);
        }
        for (values, max) in [
            (&e.programs, limits.max_field_bytes),
            (&e.alt_names, limits.max_name_bytes),
        ] {
            assert!(values.len() <= limits.max_values);
            values.iter().for_each(|v| kept(v, max));
        }
        assert!(e.addresses.len() <= limits.max_values);
        for a in &e.addresses {
            for part in address_parts(a).into_iter().flatten() {
                kept(part, limits.max_field_bytes);
            }
        }
    }
}

/// Screens the first [`SCREENED_ENTRIES`] entries' names and alternative
/// names as parties: each that has anything to screen must be a hit.
fn screen_listed_names(list: ScreeningList) {
    let entries = list.entries().to_vec();
    let screener = Screener::new(list);
    for e in entries.iter().take(SCREENED_ENTRIES) {
        for name in std::iter::once(&e.name).chain(&e.alt_names) {
            if name.len() > MAX_PARTY_NAME_BYTES || normalize::tokens(name).is_empty() {
                continue;
            }
            let party = Party {
                role: PartyRole::EndUser,
                name: name.clone(),
                address: None,
                country: None,
            };
            let decision = screener
                .screen(&party)
                .expect("a listed name can be screened");
            assert!(decision.hit, "listed name {name:?} is not a hit");
            assert!(!decision.candidates.is_empty());
            assert!(decision.candidates.len() <= DEFAULT_MAX_CANDIDATES);
            let scores: Vec<f64> = decision.candidates.iter().map(|c| c.score).collect();
            assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
            assert!(
                scores
                    .iter()
                    .all(|s| (DEFAULT_REPORT_FLOOR..=1.0).contains(s)),
                "{scores:?}"
            );
        }
    }
}

/// The entries as a CSL JSON document, every field a string.
pub fn to_json(entries: &[ListEntry]) -> Vec<u8> {
    use serde_json::{Map, Value, json};

    let text = |v: &Option<String>| v.clone().map_or(Value::Null, Value::String);
    let results: Vec<Value> = entries
        .iter()
        .map(|e| {
            let addresses: Vec<Value> = e
                .addresses
                .iter()
                .map(|a| {
                    let [address, city, state, postal_code, country] = address_parts(a);
                    let mut obj = Map::new();
                    for (key, value) in [
                        ("address", address),
                        ("city", city),
                        ("state", state),
                        ("postal_code", postal_code),
                        ("country", country),
                    ] {
                        obj.insert(key.into(), value.map_or(Value::Null, Value::from));
                    }
                    Value::Object(obj)
                })
                .collect();
            json!({
                "id": e.id,
                "source": e.source,
                "entity_number": text(&e.entity_number),
                "type": text(&e.entry_type),
                "programs": e.programs,
                "name": e.name,
                "alt_names": e.alt_names,
                "addresses": addresses,
                "start_date": text(&e.start_date),
                "remarks": text(&e.remarks),
            })
        })
        .collect();
    serde_json::to_vec(&json!({ "results": results })).expect("a json value always serialises")
}

/// The entries as a CSL CSV file, every cell quoted, multi-valued cells
/// joined with `; `. An address is written as its parts joined by `, `:
/// the CSV form has one line of text per address.
pub fn to_csv(entries: &[ListEntry]) -> String {
    let mut out = String::from(
        "_id,source,entity_number,type,programs,name,alt_names,addresses,start_date,remarks\r\n",
    );
    for e in entries {
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        let addresses: Vec<String> = e.addresses.iter().map(address_line).collect();
        let cells = [
            e.id.clone(),
            e.source.clone(),
            opt(&e.entity_number),
            opt(&e.entry_type),
            e.programs.join("; "),
            e.name.clone(),
            e.alt_names.join("; "),
            addresses.join("; "),
            opt(&e.start_date),
            opt(&e.remarks),
        ];
        let quoted: Vec<String> = cells
            .iter()
            .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
            .collect();
        out.push_str(&quoted.join(","));
        out.push_str("\r\n");
    }
    out
}

/// An address as the CSV form holds it.
fn address_line(a: &Address) -> String {
    let parts: Vec<&str> = address_parts(a).into_iter().flatten().collect();
    parts.join(", ")
}

fn address_parts(a: &Address) -> [Option<&str>; 5] {
    [
        a.address.as_deref(),
        a.city.as_deref(),
        a.state.as_deref(),
        a.postal_code.as_deref(),
        a.country.as_deref(),
    ]
}

fn hex_sha256(bytes: &[u8]) -> String {
    let d = digest::digest(&digest::SHA256, bytes);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}
