//! Seeds for the issuer's own parsers: restricted-party lists in both
//! forms, and the configuration and compliance policy files. None depends
//! on a fresh key or certificate, so these are written in every run,
//! `--fixed-only` included.

use chipward_fuzz::NOW_UNIX;

use crate::Out;

/// Writes every seed of this module.
pub(crate) fn seeds(out: &Out) -> anyhow::Result<()> {
    screening_seeds(out)?;
    config_seeds(out)?;
    policy_seeds(out)
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

/// The example file, then every key set away from its default, a
/// PostgreSQL ledger with passwords in both places a URL holds them, and a
/// range refused.
fn config_seeds(out: &Out) -> anyhow::Result<()> {
    let example = include_str!("../../../issuer/issuer.example.toml");
    out.seed("issuer_config", "issuer-example.toml", example.as_bytes())?;

    let every_key = r#"listen = "[::1]:7501"
metrics_listen = "127.0.0.1:9401"
database = "sqlite:postgres://not-a-url"
database_connections = 100
pki_dir = "/etc/chipward/pki"
trusted_verifier_keys = ["a.pub", "b.pub"]
issuer_name = "issuer-eu"
audience = "verifier-eu"
default_lifetime_secs = 3600
max_lifetime_secs = 315360000
max_backdate_secs = 0
max_future_start_secs = 60
renewal_max_result_age_secs = 1
clock_skew_secs = 0
max_message_bytes = 4096
tpm_roots = ["tpm-roots.pem"]
host_enrolment_ttl_secs = 86400
ak_binding_lifetime_secs = 1
compliance_policy = "compliance.toml"
screening_list = "csl.json"
screening_list_label = "CSL"
screening_list_date = "2026-12-01"
"#;
    out.seed("issuer_config", "every-key.toml", every_key.as_bytes())?;

    let postgres = "database = \"postgres://issuer:s3cr%40t@127.0.0.1:5432,localhost/ledger\
                    ?password=other&application_name=cw&connect_timeout=3\"\n";
    out.seed("issuer_config", "postgres.toml", postgres.as_bytes())?;
    let socket = "postgresql://issuer@%2Frun%2Fpostgresql/ledger?hostaddr=127.0.0.1";
    out.seed("issuer_config", "postgres-socket-url", socket.as_bytes())?;
    out.seed(
        "issuer_config",
        "out-of-range.toml",
        b"default_lifetime_secs = 0\nmax_message_bytes = 18446744073709551615\n",
    )
}

/// The example policy with queries for a claimed and a measured tier, and
/// a policy whose tier names a tier that does not exist.
fn policy_seeds(out: &Out) -> anyhow::Result<()> {
    let example = include_str!("../../../issuer/compliance.example.toml");
    let queries = [
        (
            "example-claimed",
            query(
                0,
                NOW_UNIX - 86_400,
                NOW_UNIX,
                false,
                "CW-100 Provisioner CA",
                "fra-1",
                "acme",
                "",
            ),
        ),
        (
            "example-measured-late",
            query(
                86_400,
                NOW_UNIX - 7_776_000,
                NOW_UNIX,
                true,
                "CW-100X Provisioner CA",
                "sin-1",
                "acme",
                "3A090.a",
            ),
        ),
    ];
    for (name, q) in queries {
        out.seed(
            "compliance_policy",
            name,
            &[example.as_bytes(), &q].concat(),
        )?;
    }
    out.seed("compliance_policy", "example.toml", example.as_bytes())?;
    let unknown_tier = "default_partner_tier = \"gold\"\n[[tier]]\nname = \"silver\"\n\
                        max_lifetime_secs = 10\nattestation_interval_secs = 10\nlocation = \"claimed\"\n";
    out.seed(
        "compliance_policy",
        "unknown-tier.toml",
        unknown_tier.as_bytes(),
    )
}

/// A `compliance_policy` query (see the target): a NUL, then its fields.
#[expect(
    clippy::too_many_arguments,
    reason = "one argument per field of the query"
)]
fn query(
    requested: u32,
    started_at: i64,
    now: i64,
    measured: bool,
    model: &str,
    site: &str,
    tenant: &str,
    classification: &str,
) -> Vec<u8> {
    let texts = [model, site, tenant, classification].join("\0");
    [
        &[0][..],
        &requested.to_be_bytes(),
        &started_at.to_be_bytes(),
        &now.to_be_bytes(),
        &[u8::from(measured)],
        texts.as_bytes(),
    ]
    .concat()
}
