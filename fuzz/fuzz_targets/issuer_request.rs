//! Issuer requests as a gRPC peer sends them: protobuf bytes decoded with
//! prost, then the issuer's field checks (`chipward_issuer::request`). The
//! first byte, modulo 4, picks the message for the rest:
//!
//! - 0: `IssueLicenseRequest`, [`issue_terms`] at a fixed time with the
//!   default settings, and both parties. Accepted terms lie inside the
//!   configured window and lifetime, and become a license token, signed as
//!   the issuer signs one, that verifies to exactly those terms: a request
//!   the checks accept must never yield a token the verifier refuses.
//! - 1: `ListLicensesRequest`, [`list_filter`].
//! - 2: `RevokeLicenseRequest`, the token id and the reason.
//! - 3: `CompleteHostEnrolmentRequest`, the enrolment id and the
//!   credential.
//!
//! Checks refuse bad fields with an error, and what they accept is the
//! field as sent, in the typed form (ids read back as the hex sent, case
//! aside).

#![no_main]

use chipward_fuzz::{ISSUER_KEY_ID, NOW_UNIX, issuer_key, trusted};
use chipward_issuer::IssuerSettings;
use chipward_issuer::request::{
    self, MAX_CREDENTIAL_LEN, MAX_ENTITLEMENTS, MAX_LIST_LIMIT, issue_terms, list_filter,
};
use chipward_proto::grpc::{
    CompleteHostEnrolmentRequest, IssueLicenseRequest, ListLicensesRequest, RevokeLicenseRequest,
};
use chipward_proto::ids::TokenId;
use chipward_proto::license::{self, LicenseClaims};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            if let Ok(req) = IssueLicenseRequest::decode(rest) {
                issue(&req);
            }
        }
        1 => {
            if let Ok(req) = ListLicensesRequest::decode(rest) {
                list(&req);
            }
        }
        2 => {
            if let Ok(req) = RevokeLicenseRequest::decode(rest) {
                revoke(&req);
            }
        }
        _ => {
            if let Ok(req) = CompleteHostEnrolmentRequest::decode(rest) {
                complete_host(&req);
            }
        }
    }
});

fn issue(req: &IssueLicenseRequest) {
    for party in [&req.tenant_party, &req.end_user] {
        if let Ok(Some(p)) = request::party(party.as_ref(), "party") {
            let given = party.as_ref().expect("a checked party was given");
            assert_eq!(p.name, given.name);
            assert!(p.country.is_empty() || p.country.eq_ignore_ascii_case(given.country.trim()));
        }
    }

    let settings = IssuerSettings::default();
    let Ok(terms) = issue_terms(req, NOW_UNIX, &settings) else {
        return;
    };
    assert_eq!(terms.chip_id.to_hex(), req.chip_id.to_ascii_lowercase());
    assert_eq!(terms.tenant, req.tenant);
    assert!(terms.not_before >= NOW_UNIX - settings.max_backdate_secs);
    assert!(terms.not_before <= NOW_UNIX + settings.max_future_start_secs);
    let lifetime = terms.expires_at - terms.not_before;
    assert!((1..=settings.max_lifetime_secs).contains(&lifetime));
    assert!(terms.entitlements.len() <= MAX_ENTITLEMENTS);
    assert_eq!(terms.entitlements, req.entitlements);

    // Minted as the issuer mints it, the token verifies to these terms.
    let key = issuer_key();
    let claims = LicenseClaims {
        issuer: settings.issuer_name.clone(),
        chip_id: terms.chip_id,
        audience: settings.audience.clone(),
        issued_at: NOW_UNIX,
        not_before: terms.not_before,
        expires_at: terms.expires_at,
        token_id: TokenId([0x5C; 16]),
        tenant: terms.tenant,
        site: terms.site,
        entitlements: terms.entitlements,
        eccn: terms.eccn,
    };
    let token = claims.sign(ISSUER_KEY_ID, |m| key.sign(m).as_ref().to_vec());
    let verified = license::verify(&token, &trusted(&key, ISSUER_KEY_ID));
    let verified = verified.unwrap_or_else(|e| {
        panic!(
            "a license of {} bytes from accepted terms is refused: {e}",
            token.len()
        )
    });
    assert_eq!(verified.claims(), &claims);
}

fn list(req: &ListLicensesRequest) {
    let Ok((filter, limit)) = list_filter(req) else {
        return;
    };
    assert!((1..=MAX_LIST_LIMIT).contains(&limit));
    match &filter.chip_id {
        Some(id) => assert_eq!(id.to_hex(), req.chip_id.to_ascii_lowercase()),
        None => assert!(req.chip_id.is_empty()),
    }
    assert_eq!(filter.tenant.unwrap_or_default(), req.tenant);
}

fn revoke(req: &RevokeLicenseRequest) {
    if let Ok(id) = request::token_id(&req.token_id, "token_id") {
        assert_eq!(id.to_hex(), req.token_id.to_ascii_lowercase());
    }
    if let Ok(reason) = request::reason(&req.reason) {
        assert_eq!(reason, req.reason);
        assert!(reason.chars().count() <= 256);
        assert!(!reason.chars().any(char::is_control));
    }
}

fn complete_host(req: &CompleteHostEnrolmentRequest) {
    if let Ok(id) = request::enrolment_id(&req.enrolment_id) {
        assert_eq!(id.to_hex(), req.enrolment_id.to_ascii_lowercase());
    }
    let accepted = request::credential(&req.credential).is_ok();
    assert_eq!(
        accepted,
        (1..=MAX_CREDENTIAL_LEN).contains(&req.credential.len())
    );
}
