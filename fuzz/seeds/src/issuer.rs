//! Seeds for the issuer's own parsers: restricted-party lists in both
//! forms, the configuration and compliance policy files, request messages
//! as a gRPC peer encodes them, and hand-made TPM public areas for host
//! enrolment. None depends on a fresh key or certificate, so these are
//! written in every run, `--fixed-only` included.

use chipward_fuzz::NOW_UNIX;
use chipward_proto::grpc::{
    CompleteHostEnrolmentRequest, IssueLicenseRequest, ListLicensesRequest, Party,
    RevokeLicenseRequest, Site,
};
use prost::Message;

use crate::Out;

/// Writes every seed of this module.
pub(crate) fn seeds(out: &Out) -> anyhow::Result<()> {
    screening_seeds(out)?;
    config_seeds(out)?;
    policy_seeds(out)?;
    request_seeds(out)?;
    host_key_seeds(out)
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
    // Passwords the driver reads where a URL parser would not: past a '/'
    // and '?', and under an escaped parameter name.
    let hidden = "postgres://issuer:ab/c?d@127.0.0.1:5432/ledger?pass%77ord=x";
    out.seed(
        "issuer_config",
        "postgres-odd-passwords-url",
        hidden.as_bytes(),
    )?;
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

/// One message of each kind the `issuer_request` target reads, behind the
/// byte that picks it; the issue request also at the edge of every range
/// its checks accept.
fn request_seeds(out: &Out) -> anyhow::Result<()> {
    let party = |name: &str, country: &str| Party {
        name: name.into(),
        address: "1 Test Quay, Exampletown".into(),
        country: country.into(),
    };
    let issue = IssueLicenseRequest {
        chip_id: "ab".repeat(32),
        tenant: "acme".into(),
        site: Some(Site {
            id: "fra-1".into(),
            latitude: 50.11,
            longitude: 8.68,
            radius_km: 25.0,
        }),
        not_before: 0,
        lifetime_seconds: 0,
        entitlements: vec!["inference".into(), "fp8".into()],
        eccn: "3A090.a".into(),
        tenant_party: Some(party("Acme Rocketworks Ltd", "fr")),
        end_user: Some(party("Zephyr Dynamics GmbH", " DE ")),
    };
    request(out, "issue", 0, &issue)?;

    // The widest request the checks accept: every text at its longest, in
    // characters of four bytes where characters are counted (entitlements
    // are bounded in bytes too).
    let wide = '\u{1D53D}';
    let widest = IssueLicenseRequest {
        chip_id: "AB".repeat(32),
        tenant: "t".repeat(64),
        site: Some(Site {
            id: "A.z_9-".repeat(10) + "abcd",
            latitude: -90.0,
            longitude: 180.0,
            radius_km: 20_000.0,
        }),
        not_before: NOW_UNIX - 30 * 86_400,
        lifetime_seconds: 30 * 86_400,
        entitlements: vec![wide.to_string().repeat(16); 32],
        eccn: wide.to_string().repeat(32),
        tenant_party: None,
        end_user: None,
    };
    request(out, "issue-widest", 0, &widest)?;
    // Entitlements of 64 such characters: accepted once, and then too wide
    // for a license token.
    let too_wide = IssueLicenseRequest {
        entitlements: vec![wide.to_string().repeat(64); 32],
        ..widest
    };
    request(out, "issue-entitlements-too-wide", 0, &too_wide)?;

    let list = ListLicensesRequest {
        chip_id: "cd".repeat(32),
        tenant: "acme".into(),
        limit: 5000,
    };
    request(out, "list", 1, &list)?;
    let revoke = RevokeLicenseRequest {
        token_id: "07".repeat(16),
        reason: "contract ended".into(),
    };
    request(out, "revoke", 2, &revoke)?;
    let complete = CompleteHostEnrolmentRequest {
        enrolment_id: "5E".repeat(16),
        credential: vec![0x42; 32],
    };
    request(out, "complete-host", 3, &complete)
}

fn request(out: &Out, name: &str, kind: u8, message: &impl Message) -> anyhow::Result<()> {
    out.seed(
        "issuer_request",
        name,
        &[&[kind][..], &message.encode_to_vec()].concat(),
    )
}

/// TPM2B_PUBLIC areas made by hand: an EK in the TCG default RSA template
/// followed by an RSA AK, and an AK whose decrypt attribute is set.
fn host_key_seeds(out: &Out) -> anyhow::Result<()> {
    // fixedTPM, fixedParent, sensitiveDataOrigin, adminWithPolicy,
    // restricted, decrypt; AES-128-CFB; RSA-2048, exponent 65537.
    let ek = rsa_public(
        0x0003_00B2,
        &[0x00, 0x06, 0x00, 0x80, 0x00, 0x43],
        &[0x00, 0x10],
    );
    // fixedTPM, fixedParent, sensitiveDataOrigin, userWithAuth,
    // restricted, sign; RSASSA with SHA-256.
    let ak = rsa_public(0x0005_0072, &[0x00, 0x10], &[0x00, 0x14, 0x00, 0x0B]);
    out.seed(
        "host_keys",
        "handmade-ek-rsa-ak",
        &[ek.clone(), ak].concat(),
    )?;
    let decrypting_ak = rsa_public(0x0007_0072, &[0x00, 0x10], &[0x00, 0x10]);
    out.seed(
        "host_keys",
        "handmade-ek-decrypting-ak",
        &[ek, decrypting_ak].concat(),
    )
}

/// An RSA-2048 TPM2B_PUBLIC with nameAlg SHA-256, the given attributes,
/// symmetric definition and scheme, and a 32-byte authPolicy.
fn rsa_public(attributes: u32, symmetric: &[u8], scheme: &[u8]) -> Vec<u8> {
    let mut t = vec![0x00, 0x01, 0x00, 0x0B];
    t.extend_from_slice(&attributes.to_be_bytes());
    t.extend_from_slice(&[0x00, 0x20]);
    t.extend_from_slice(&[0x83; 32]);
    t.extend_from_slice(symmetric);
    t.extend_from_slice(scheme);
    t.extend_from_slice(&[0x08, 0x00, 0, 0, 0, 0, 0x01, 0x00]);
    t.extend_from_slice(&[0xC5; 256]);
    let len = u16::try_from(t.len()).expect("a public area is small");
    [len.to_be_bytes().to_vec(), t].concat()
}
