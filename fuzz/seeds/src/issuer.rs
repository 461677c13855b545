//! Seeds for the issuer's own parsers: restricted-party lists in both
//! forms. None depends on a fresh key or certificate, so these are written
//! in every run, `--fixed-only` included.

use crate::Out;

/// Writes every seed of this module.
pub(crate) fn seeds(out: &Out) -> anyhow::Result<()> {
    screening_seeds(out)
}

/// The committed test lists and the demo's list, then hand-made edge cases
/// of each form.
fn screening_seeds(out: &Out) -> anyhow::Result<()> {
    let tests = include_bytes!("../../../issuer/tests/data/screening/list.json");
    out.seed("screening_json", "test-list.json", tests)?;
    let demo = include_bytes!("../../../device-sim/data/demo-screening-list.json");
    out.seed("screening_json", "demo-list.json", demo)?;
    let json: [(&str, &str); 4] = [
        (
            "numeric-ids.json",
            r#"{"results":[{"id":7,"entity_number":-3,"name":"Kestrel"}]}"#,
        ),
        (
            "underscore-id-nulls.json",
            r#"{"results":[{"_id":"x-1","name":" OOO Granit ","programs":null,"alt_names":["", "Granite"],"addresses":[{"country":"ru","city":null}],"remarks":null}]}"#,
        ),
        ("empty-results.json", r#"{"results":[],"total":0}"#),
        (
            "wrong-type.json",
            r#"{"results":[{"id":"1","name":["not","text"]}]}"#,
        ),
    ];
    for (name, text) in json {
        out.seed("screening_json", name, text.as_bytes())?;
    }

    let tests = include_bytes!("../../../issuer/tests/data/screening/list.csv");
    out.seed("screening_csv", "test-list.csv", tests)?;
    let csv: [(&str, &str); 4] = [
        (
            "bom-lf-id-column.csv",
            "\u{feff}id,name,alt_names,addresses\nA1,Zephyr Dynamics GmbH,Zephyr; ZD,\"2 Weg, Stadt\"\n",
        ),
        (
            "quoted-breaks.csv",
            "_id,name,remarks\r\n\"q\"\"1\",\"MARLOWE,\r\nTobias\",\"a \"\"b\"\"\"\r\n",
        ),
        ("header-only.csv", "_id,source,name\r\n"),
        ("ragged.csv", "_id,name\r\n1,Acme,extra\r\n"),
    ];
    for (name, text) in csv {
        out.seed("screening_csv", name, text.as_bytes())?;
    }
    Ok(())
}
