//! The policy file's checks and the terms it gives, on the example file
//! shipped with the issuer.

use super::*;

const EXAMPLE: &str = EXAMPLE_POLICY;

fn example() -> CompliancePolicy {
    CompliancePolicy::from_toml(EXAMPLE).unwrap()
}

#[test]
fn the_stricter_of_site_and_partner_tier_applies() {
    let p = example();
    let t = p
        .terms("CW-100 Provisioner CA", "fra-1", "acme-ai")
        .unwrap();
    assert_eq!(
        (t.tier.name.as_str(), t.country, t.classification),
        ("allied", "DE", "3A090.a")
    );
    // An allied site, a controlled partner.
    let t = p
        .terms("CW-100 Provisioner CA", "fra-1", "ember-systems")
        .unwrap();
    assert_eq!(t.tier.name, "controlled");
    // A controlled site, an allied partner.
    let t = p
        .terms("CW-100X Provisioner CA", "sin-1", "acme-ai")
        .unwrap();
    assert_eq!(
        (t.tier.name.as_str(), t.classification),
        ("controlled", "4A090.a")
    );
}

#[test]
fn unknown_models_and_sites_get_no_terms() {
    let p = example();
    assert_eq!(
        p.terms("CW-200 Provisioner CA", "fra-1", "acme-ai")
            .unwrap_err(),
        ComplianceError::UnclassifiedModel {
            model: "CW-200 Provisioner CA".into()
        }
    );
    assert_eq!(
        p.terms("CW-100 Provisioner CA", "mos-1", "acme-ai")
            .unwrap_err(),
        ComplianceError::UnknownSite {
            site: "mos-1".into()
        }
    );
}

#[test]
fn a_request_repeats_the_classification_or_leaves_it_out() {
    let p = example();
    let t = p
        .terms("CW-100 Provisioner CA", "fra-1", "acme-ai")
        .unwrap();
    assert_eq!(t.classification_for("CW-100", "").unwrap(), "3A090.a");
    assert_eq!(
        t.classification_for("CW-100", "3A090.a").unwrap(),
        "3A090.a"
    );
    let err = t.classification_for("CW-100", "4A090.a").unwrap_err();
    assert_eq!(
        err.to_string(),
        "chip model \"CW-100\" is classified 3A090.a, the request says 4A090.a"
    );
}

#[test]
fn tokens_run_at_most_one_attestation_interval() {
    let p = example();
    let controlled = p
        .terms("CW-100 Provisioner CA", "sin-1", "acme-ai")
        .unwrap();
    assert_eq!(controlled.lifetime(0).unwrap(), 21_600);
    assert_eq!(controlled.lifetime(3_600).unwrap(), 3_600);
    assert_eq!(
        controlled.lifetime(21_601).unwrap_err(),
        ComplianceError::Lifetime {
            tier: "controlled".into(),
            max: 21_600,
            requested: 21_601
        }
    );
}

#[test]
fn renewals_stop_at_the_end_of_the_term_and_never_run_past_it() {
    let p = example();
    let t = p
        .terms("CW-100 Provisioner CA", "sin-1", "acme-ai")
        .unwrap();
    let start = 1_000_000;
    let term = 7_776_000;
    // Early in the term: one interval.
    assert_eq!(
        t.renewal_expiry(start, start + 10, 0, true).unwrap(),
        start + 10 + 21_600
    );
    // An hour before the end: cut at the end.
    let late = start + term - 3_600;
    assert_eq!(
        t.renewal_expiry(start, late, 0, true).unwrap(),
        start + term
    );
    // At the end: refused.
    assert_eq!(
        t.renewal_expiry(start, start + term, 0, true).unwrap_err(),
        ComplianceError::TermEnded {
            tier: "controlled".into(),
            max: term
        }
    );
}

#[test]
fn measured_tiers_renew_only_on_a_passing_location_claim() {
    let p = example();
    let controlled = p
        .terms("CW-100 Provisioner CA", "sin-1", "acme-ai")
        .unwrap();
    assert_eq!(
        controlled.renewal_expiry(0, 10, 0, false).unwrap_err(),
        ComplianceError::LocationNotMeasured {
            tier: "controlled".into()
        }
    );
    let allied = p
        .terms("CW-100 Provisioner CA", "fra-1", "acme-ai")
        .unwrap();
    assert_eq!(allied.renewal_expiry(0, 10, 0, false).unwrap(), 10 + 86_400);
}

#[test]
fn refuses_broken_policy_files() {
    let tier = "[[tier]]\nname = \"a\"\nmax_lifetime_secs = 100\nattestation_interval_secs = 10\nlocation = \"claimed\"\n";
    let head = |tier: &str| format!("default_partner_tier = \"{tier}\"\n");
    let ok = format!("{}{tier}", head("a"));
    assert!(CompliancePolicy::from_toml(&ok).is_ok());

    let cases = [
        (format!("{ok}{tier}"), "tier \"a\" is defined twice"),
        (
            format!("{}{tier}", head("b")),
            "default \"default_partner_tier\" names unknown tier \"b\"",
        ),
        (
            format!("{ok}[[site]]\nid = \"x\"\ncountry = \"DE\"\ntier = \"z\"\n"),
            "site \"x\" names unknown tier \"z\"",
        ),
        (
            format!("{ok}[[site]]\nid = \"x\"\ncountry = \"Germany\"\ntier = \"a\"\n"),
            "country of \"x\" is out of range: must be an ISO 3166 alpha-2 code",
        ),
        (
            ok.replace(
                "attestation_interval_secs = 10",
                "attestation_interval_secs = 1000",
            ),
            "attestation_interval_secs of \"a\" is out of range: must not exceed max_lifetime_secs",
        ),
        (
            ok.replace("max_lifetime_secs = 100", "max_lifetime_secs = 0"),
            "max_lifetime_secs of \"a\" is out of range: must be 1 s to 10 years",
        ),
        (
            ok.replace("location = \"claimed\"", "location = \"guessed\""),
            "compliance policy is not valid",
        ),
        (
            format!("colour = \"red\"\n{ok}"),
            "compliance policy is not valid",
        ),
        (tier.to_owned(), "compliance policy is not valid"),
    ];
    for (text, want) in cases {
        let err = CompliancePolicy::from_toml(&text).unwrap_err();
        assert_eq!(err.to_string(), want, "{text}");
    }
}
