//! List loading tests over the hand-written fixtures in
//! `issuer/tests/data/screening/`, and every way a list is refused. Every
//! listed name is invented.

use super::tests::{CSV_SHA256, JSON_SHA256, csv_list, json_list};
use super::*;

fn json_err(text: &str) -> ListError {
    ScreeningList::parse(ListFormat::Json, "T", "2026-12-01", text.as_bytes()).unwrap_err()
}

fn csv_err(text: &str) -> ListError {
    ScreeningList::parse(ListFormat::Csv, "T", "2026-12-01", text.as_bytes()).unwrap_err()
}

#[test]
fn loads_json_list_with_digest_date_label_and_fields() {
    let list = json_list();
    assert_eq!(list.digest(), JSON_SHA256);
    assert_eq!(list.date(), "2026-12-01");
    assert_eq!(list.label(), "TEST-CSL");
    assert_eq!(list.entries().len(), 7);

    let acme = &list.entries()[0];
    assert_eq!(acme.id, "tel-0001");
    assert_eq!(acme.entity_number.as_deref(), Some("101"));
    assert_eq!(acme.entry_type.as_deref(), Some("Entity"));
    assert_eq!(acme.programs, ["EAR"]);
    assert_eq!(acme.alt_names, ["Acme Propulsion Bureau"]);
    assert_eq!(acme.addresses[0].postal_code.as_deref(), Some("00001"));
    assert_eq!(acme.addresses[0].state, None);
    assert_eq!(acme.start_date.as_deref(), Some("2026-01-15"));
    assert_eq!(acme.countries(), ["FR"]);
    // `_id` stands in for `id`.
    assert_eq!(list.entries()[4].id, "tel-0005");
}

#[test]
fn loads_csv_list_splitting_multi_valued_cells() {
    let list = csv_list();
    assert_eq!(list.digest(), CSV_SHA256);
    assert_eq!(list.entries().len(), 3);

    let kestrel = &list.entries()[0];
    assert_eq!(kestrel.name, "Kestrel Avionics, Ltd.");
    assert_eq!(kestrel.programs, ["EAR", "MEU"]);
    assert_eq!(
        kestrel.alt_names,
        ["Kestrel Avionic Systems", "KAS Trading"]
    );
    assert_eq!(kestrel.addresses.len(), 2);
    assert_eq!(
        kestrel.addresses[0].address.as_deref(),
        Some("3 Test Road, Exampleton, EX1 0AA, GB")
    );
    assert_eq!(kestrel.remarks.as_deref(), Some("Invented; for tests"));
    assert_eq!(
        list.entries()[1].alt_names,
        ["Granit Optika", "\"Granite Optics\""]
    );
    assert_eq!(
        list.entries()[2].remarks.as_deref(),
        Some("multi-line\nremark")
    );
}

#[test]
fn list_refuses_malformed_json_naming_where() {
    assert!(matches!(
        json_err("{\"results\": [\n{]}"),
        ListError::Json { line: 2, .. }
    ));
    assert!(matches!(json_err("[]"), ListError::NoResults));
    assert!(matches!(
        json_err(r#"{"results": {}}"#),
        ListError::NoResults
    ));
    assert!(matches!(
        json_err(r#"{"results": [{"id": "a", "name": "x"}, 7]}"#),
        ListError::NotAnObject {
            row: RowRef::JsonResult(1)
        }
    ));
}

#[test]
fn list_refuses_json_entries_missing_required_fields() {
    let missing_name = r#"{"results": [{"id": "a", "name": "x"}, {"id": "b", "name": "  "}]}"#;
    assert!(matches!(
        json_err(missing_name),
        ListError::MissingField {
            row: RowRef::JsonResult(1),
            field: "name"
        }
    ));
    assert!(matches!(
        json_err(r#"{"results": [{"name": "x"}]}"#),
        ListError::MissingField {
            row: RowRef::JsonResult(0),
            field: "id"
        }
    ));
    let e = json_err(missing_name);
    assert_eq!(e.to_string(), "results[1] has no name");
}

#[test]
fn list_refuses_json_fields_of_the_wrong_type() {
    let cases = [
        (r#"{"id": "a", "name": 5}"#, "name"),
        (r#"{"id": 1.5, "name": "x"}"#, "id"),
        (r#"{"id": "a", "name": "x", "alt_names": "y"}"#, "alt_names"),
        (r#"{"id": "a", "name": "x", "programs": [1]}"#, "programs"),
        (
            r#"{"id": "a", "name": "x", "addresses": ["street"]}"#,
            "addresses",
        ),
        (
            r#"{"id": "a", "name": "x", "addresses": [{"country": 1}]}"#,
            "addresses",
        ),
    ];
    for (entry, want) in cases {
        let e = json_err(&format!(r#"{{"results": [{entry}]}}"#));
        assert!(
            matches!(e, ListError::WrongType { row: RowRef::JsonResult(0), field, .. } if field == want),
            "{entry}: {e:?}"
        );
    }
}

#[test]
fn list_refuses_malformed_csv_naming_where() {
    let unbalanced = "_id,name\na,\"Open Quote Trading\nb,Other\n";
    assert!(matches!(
        csv_err(unbalanced),
        ListError::Csv {
            line: 2,
            problem: CsvProblem::UnterminatedQuote
        }
    ));
    assert!(matches!(
        csv_err("_id,source\na,b\n"),
        ListError::MissingColumn { column: "name" }
    ));
    assert!(matches!(
        csv_err("source,name\nb,c\n"),
        ListError::MissingColumn { column: "_id" }
    ));
    assert!(matches!(
        csv_err("_id,name,name\na,b,c\n"),
        ListError::DuplicateColumn { .. }
    ));
    assert!(matches!(
        csv_err("_id,name\na,b\nc\n"),
        ListError::CellCount {
            row: RowRef::CsvLine(3),
            expected: 2,
            found: 1
        }
    ));
    assert!(matches!(
        csv_err("_id,name\na,b\nc,\n"),
        ListError::MissingField {
            row: RowRef::CsvLine(3),
            field: "name"
        }
    ));
    assert!(matches!(csv_err(""), ListError::NoHeader));
    assert!(matches!(
        ScreeningList::parse(ListFormat::Csv, "T", "2026-12-01", b"_id,name\na,\xff\n"),
        Err(ListError::NotUtf8 { valid_up_to: 11 })
    ));
}

#[test]
fn list_refuses_oversize_input() {
    let limits = ListLimits {
        max_bytes: 100,
        max_entries: 2,
        max_name_bytes: 8,
        max_field_bytes: 16,
        max_values: 3,
    };
    let parse = |format, text: &str| {
        ScreeningList::parse_with_limits(format, "T", "2026-12-01", text.as_bytes(), &limits)
            .unwrap_err()
    };
    let big = format!("_id,name\n{}", "a,b\n".repeat(30));
    assert!(matches!(
        parse(ListFormat::Csv, &big),
        ListError::TooLarge {
            bytes: 129,
            max: 100
        }
    ));
    assert!(matches!(
        parse(ListFormat::Csv, "_id,name\na,b\nc,d\ne,f\n"),
        ListError::TooManyEntries { max: 2 }
    ));
    assert!(matches!(
        parse(
            ListFormat::Json,
            r#"{"results": [{"id":"a","name":"x"},{},{}]}"#
        ),
        ListError::TooManyEntries { max: 2 }
    ));
    assert!(matches!(
        parse(ListFormat::Csv, "_id,name\na,Long Name Ltd\n"),
        ListError::FieldTooLong {
            row: RowRef::CsvLine(2),
            field: "name",
            max: 8
        }
    ));
    assert!(matches!(
        parse(ListFormat::Csv, "_id,name,alt_names\na,b,x; y; z; w\n"),
        ListError::TooManyValues {
            row: RowRef::CsvLine(2),
            field: "alt_names",
            max: 3
        }
    ));
    assert!(matches!(
        parse(
            ListFormat::Json,
            r#"{"results": [{"id":"a","name":"x","programs":["1","2","3","4"]}]}"#
        ),
        ListError::TooManyValues {
            row: RowRef::JsonResult(0),
            field: "programs",
            max: 3
        }
    ));
    assert!(matches!(
        parse(ListFormat::Csv, "_id,name,remarks\na,b,seventeen bytes!!\n"),
        ListError::Csv {
            line: 2,
            problem: CsvProblem::CellTooLong { max: 16 }
        }
    ));
    assert!(matches!(
        parse(ListFormat::Csv, "_id,name,x,y\n"),
        ListError::Csv {
            line: 1,
            problem: CsvProblem::TooManyCells { max: 3 }
        }
    ));
}

#[test]
fn list_refuses_bad_label_or_date() {
    let ok = br#"{"results": []}"#;
    let parse = |label: &str, date: &str| ScreeningList::parse(ListFormat::Json, label, date, ok);
    assert!(parse("CSL", "2026-12-01").is_ok());
    assert!(matches!(parse("", "2026-12-01"), Err(ListError::BadLabel)));
    assert!(matches!(
        parse(&"L".repeat(257), "2026-12-01"),
        Err(ListError::BadLabel)
    ));
    assert!(matches!(
        parse("CSL", "1 Dec 2026"),
        Err(ListError::BadDate { .. })
    ));
}
