//! Checks on request fields, before anything is looked up or signed.
//!
//! Every value here comes straight from a gRPC peer. Each check bounds a
//! length or a range and turns the field into a typed value; a failure is an
//! [`InputError`] naming the field, which the service answers with
//! `INVALID_ARGUMENT`. Nothing here reads the clock, the ledger or a key.

use chipward_proto::grpc::{IssueLicenseRequest, ListLicensesRequest, Site};
use chipward_proto::ids::IdError;
use chipward_proto::license::SiteClaim;
use chipward_proto::result::MAX_RESULT_LEN;
use chipward_proto::{ChipId, TokenId};
use thiserror::Error;

use crate::config::IssuerSettings;
use crate::host_enrolment::EnrolmentId;
use crate::ledger::LicenseFilter;

/// Most certificates an enrolment chain may hold, vendor root included.
pub const MAX_CHAIN_LEN: usize = 8;
/// Most licenses one list call returns.
pub const MAX_LIST_LIMIT: usize = 1000;
/// Most entitlements one license may carry.
pub const MAX_ENTITLEMENTS: usize = 32;
/// Longest entitlement, in bytes of UTF-8, besides its 64 characters: 64
/// characters of four bytes each, 32 times over, make a license larger
/// than any verifier accepts (`license::MAX_TOKEN_LEN`); with this bound
/// the widest license a request can ask for fits with room to spare.
pub const MAX_ENTITLEMENT_BYTES: usize = 64;
/// Largest TPM2B_PUBLIC accepted, in bytes: the size field and the largest
/// TPMT_PUBLIC the parser reads.
pub const MAX_TPM_PUBLIC_LEN: usize = 2 + 1024;
/// Largest credential accepted back from a host, in bytes: a TPM2B_DIGEST
/// holds at most a SHA-512 digest.
pub const MAX_CREDENTIAL_LEN: usize = 64;

/// Tenants are lowercase identifiers: the verifier and every log compare
/// them byte for byte, so look-alikes (case, invisible or bidirectional
/// characters, spaces) must not exist in the first place.
const TENANT: Identifier = Identifier {
    field: "tenant",
    max_bytes: 64,
    uppercase: false,
    rule: "1 to 64 bytes of lowercase ascii letters, digits, '.', '_' or '-', \
           starting with a letter or digit",
};
/// Site ids keep the upper-case letters they always allowed.
const SITE_ID: Identifier = Identifier {
    field: "site.id",
    max_bytes: 64,
    uppercase: true,
    rule: "1 to 64 bytes of ascii letters, digits, '.', '_' or '-', \
           starting with a letter or digit",
};
const ENTITLEMENT_CHARS: (usize, usize) = (1, 64);
const ECCN_CHARS: (usize, usize) = (0, 32);
const REASON_CHARS: (usize, usize) = (0, 256);
const MAX_RADIUS_KM: f64 = 20_000.0;

/// A request field that is missing, malformed or out of range.
#[derive(Debug, Error, PartialEq)]
#[non_exhaustive]
pub enum InputError {
    /// A required field was left empty.
    #[error("{field} is required")]
    Missing {
        /// The field.
        field: &'static str,
    },
    /// An id is not the right number of hex digits.
    #[error("{field} is not a valid id")]
    BadId {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        #[source]
        source: IdError,
    },
    /// Text is too short or too long, counted in characters.
    #[error("{field} must be {min} to {max} characters long, got {got}")]
    Length {
        /// The field.
        field: &'static str,
        /// Fewest allowed.
        min: usize,
        /// Most allowed.
        max: usize,
        /// Given, counted in full.
        got: usize,
    },
    /// An identifier or an entitlement is empty or too long, counted in
    /// bytes of UTF-8 (as the verifier counts them).
    #[error("{field} must be 1 to {max} bytes long, got {got}")]
    ByteLength {
        /// The field.
        field: &'static str,
        /// Most allowed.
        max: usize,
        /// Given, counted in full.
        got: usize,
    },
    /// An identifier holds a byte its rule does not allow.
    #[error("{field} must be {rule}; byte {at} is not allowed")]
    NotIdentifier {
        /// The field.
        field: &'static str,
        /// The rule, in words.
        rule: &'static str,
        /// Offset of the first byte that breaks the rule.
        at: usize,
    },
    /// Text holds a character the field does not allow.
    #[error("{field} contains a character that is not allowed")]
    Characters {
        /// The field.
        field: &'static str,
    },
    /// A number is outside its range or not finite.
    #[error("{field} must be {allowed}")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// The allowed range, in words.
        allowed: &'static str,
    },
    /// A byte field is larger than allowed.
    #[error("{field} is {got} bytes, at most {max} allowed")]
    TooLarge {
        /// The field.
        field: &'static str,
        /// Most allowed, bytes.
        max: usize,
        /// Given, bytes.
        got: usize,
    },
    /// A list has too many entries.
    #[error("{field} has {got} entries, at most {max} allowed")]
    TooMany {
        /// The field.
        field: &'static str,
        /// Most allowed.
        max: usize,
        /// Given.
        got: usize,
    },
    /// The requested lifetime is negative or longer than allowed.
    #[error("lifetime_seconds must be 0 for the default or 1 to {max}, got {got}")]
    Lifetime {
        /// Given, seconds.
        got: i64,
        /// Most allowed, seconds.
        max: i64,
    },
    /// `not_before` lies further in the past than allowed.
    #[error("not_before {not_before} is earlier than the allowed {earliest}")]
    BackdatedTooFar {
        /// Given, Unix seconds.
        not_before: i64,
        /// Earliest allowed, Unix seconds.
        earliest: i64,
    },
    /// A field that breaks a rule of its own.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// The rule, in words.
        reason: &'static str,
    },
    /// `not_before` lies further in the future than allowed.
    #[error("not_before {not_before} is later than the allowed {latest}")]
    StartsTooLate {
        /// Given, Unix seconds.
        not_before: i64,
        /// Latest allowed, Unix seconds.
        latest: i64,
    },
}

/// The terms of a license to mint, every field checked.
#[derive(Clone, Debug, PartialEq)]
pub struct IssueTerms {
    /// The chip.
    pub chip_id: ChipId,
    /// The tenant.
    pub tenant: String,
    /// The permitted site.
    pub site: SiteClaim,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub expires_at: i64,
    /// Entitlements, in request order.
    pub entitlements: Vec<String>,
    /// Export classification; may be empty.
    pub eccn: String,
}

/// Checks an issue request against the settings at time `now`.
pub fn issue_terms(
    req: &IssueLicenseRequest,
    now: i64,
    settings: &IssuerSettings,
) -> Result<IssueTerms, InputError> {
    let chip_id = chip_id(&req.chip_id, "chip_id")?;
    let tenant = identifier(&req.tenant, &TENANT)?;
    let site = site(req.site.as_ref())?;
    let lifetime = lifetime(req.lifetime_seconds, settings)?;

    let not_before = if req.not_before == 0 {
        now
    } else {
        req.not_before
    };
    let earliest = now.saturating_sub(settings.max_backdate_secs);
    let latest = now.saturating_add(settings.max_future_start_secs);
    if not_before < earliest {
        return Err(InputError::BackdatedTooFar {
            not_before,
            earliest,
        });
    }
    if not_before > latest {
        return Err(InputError::StartsTooLate { not_before, latest });
    }

    if req.entitlements.len() > MAX_ENTITLEMENTS {
        return Err(InputError::TooMany {
            field: "entitlements",
            max: MAX_ENTITLEMENTS,
            got: req.entitlements.len(),
        });
    }
    let entitlements = req
        .entitlements
        .iter()
        .map(|e| entitlement(e))
        .collect::<Result<_, _>>()?;

    Ok(IssueTerms {
        chip_id,
        tenant,
        site,
        not_before,
        expires_at: not_before.saturating_add(lifetime),
        entitlements,
        eccn: text(&req.eccn, "eccn", ECCN_CHARS)?,
    })
}

/// The lifetime to grant, in seconds: the default for 0, else 1 to the
/// configured maximum.
pub fn lifetime(requested: i64, settings: &IssuerSettings) -> Result<i64, InputError> {
    match requested {
        0 => Ok(settings.default_lifetime_secs),
        s if (1..=settings.max_lifetime_secs).contains(&s) => Ok(s),
        got => Err(InputError::Lifetime {
            got,
            max: settings.max_lifetime_secs,
        }),
    }
}

/// Parses a chip id field.
pub fn chip_id(text: &str, field: &'static str) -> Result<ChipId, InputError> {
    if text.is_empty() {
        return Err(InputError::Missing { field });
    }
    text.parse()
        .map_err(|source| InputError::BadId { field, source })
}

/// Parses a token id field.
pub fn token_id(text: &str, field: &'static str) -> Result<TokenId, InputError> {
    if text.is_empty() {
        return Err(InputError::Missing { field });
    }
    text.parse()
        .map_err(|source| InputError::BadId { field, source })
}

/// Checks that an attestation result is present and no larger than any
/// verifier writes, before it is parsed.
pub fn attestation_result(bytes: &[u8]) -> Result<(), InputError> {
    match bytes.len() {
        0 => Err(InputError::Missing {
            field: "attestation_result",
        }),
        n if n > MAX_RESULT_LEN => Err(InputError::TooLarge {
            field: "attestation_result",
            max: MAX_RESULT_LEN,
            got: n,
        }),
        _ => Ok(()),
    }
}

/// Checks the length of an enrolment chain (`cert_chain` or
/// `ek_cert_chain`) before any certificate is read.
pub fn chain_len(chain: &[Vec<u8>], field: &'static str) -> Result<(), InputError> {
    match chain.len() {
        0 => Err(InputError::Missing { field }),
        n if n > MAX_CHAIN_LEN => Err(InputError::TooMany {
            field,
            max: MAX_CHAIN_LEN,
            got: n,
        }),
        _ => Ok(()),
    }
}

/// Checks that a TPM2B_PUBLIC field is present and no larger than any TPM
/// writes, before it is parsed.
pub fn tpm_public(bytes: &[u8], field: &'static str) -> Result<(), InputError> {
    bounded_bytes(bytes, field, MAX_TPM_PUBLIC_LEN)
}

/// Parses a host enrolment id.
pub fn enrolment_id(text: &str) -> Result<EnrolmentId, InputError> {
    let field = "enrolment_id";
    if text.is_empty() {
        return Err(InputError::Missing { field });
    }
    EnrolmentId::parse(text).map_err(|source| InputError::BadId { field, source })
}

/// Checks that a returned credential is present and no longer than a TPM
/// can return.
pub fn credential(bytes: &[u8]) -> Result<(), InputError> {
    bounded_bytes(bytes, "credential", MAX_CREDENTIAL_LEN)
}

fn bounded_bytes(bytes: &[u8], field: &'static str, max: usize) -> Result<(), InputError> {
    match bytes.len() {
        0 => Err(InputError::Missing { field }),
        got if got > max => Err(InputError::TooLarge { field, max, got }),
        _ => Ok(()),
    }
}

/// The filter and limit of a list request; a limit of 0 or above
/// [`MAX_LIST_LIMIT`] becomes [`MAX_LIST_LIMIT`].
pub fn list_filter(req: &ListLicensesRequest) -> Result<(LicenseFilter, usize), InputError> {
    let chip_id = match req.chip_id.as_str() {
        "" => None,
        text => Some(chip_id(text, "chip_id")?),
    };
    let tenant = match req.tenant.as_str() {
        "" => None,
        t => Some(identifier(t, &TENANT)?),
    };
    let limit = match usize::try_from(req.limit) {
        Ok(0) | Err(_) => MAX_LIST_LIMIT,
        Ok(n) => n.min(MAX_LIST_LIMIT),
    };
    Ok((LicenseFilter { chip_id, tenant }, limit))
}

/// Checks a tenant named outside a license request (a legal hold).
pub fn tenant(text: &str) -> Result<String, InputError> {
    identifier(text, &TENANT)
}

/// Checks a party's name named outside a license request (a reviewer
/// override): the same 1 to 256 characters an issue request allows.
pub fn party_name(text_in: &str, field: &'static str) -> Result<String, InputError> {
    text(text_in, field, PARTY_NAME_CHARS)
}

/// Checks a revocation reason; it may be empty.
pub fn reason(text_in: &str) -> Result<String, InputError> {
    text(text_in, "reason", REASON_CHARS)
}

fn site(site: Option<&Site>) -> Result<SiteClaim, InputError> {
    let site = site.ok_or(InputError::Missing { field: "site" })?;
    let id = identifier(&site.id, &SITE_ID)?;
    // NaN fails every range test, so `contains` also refuses it.
    if !(-90.0..=90.0).contains(&site.latitude) {
        return Err(InputError::OutOfRange {
            field: "site.latitude",
            allowed: "a number from -90 to 90",
        });
    }
    if !(-180.0..=180.0).contains(&site.longitude) {
        return Err(InputError::OutOfRange {
            field: "site.longitude",
            allowed: "a number from -180 to 180",
        });
    }
    if !(site.radius_km > 0.0 && site.radius_km <= MAX_RADIUS_KM) {
        return Err(InputError::OutOfRange {
            field: "site.radius_km",
            allowed: "more than 0 and at most 20000",
        });
    }
    Ok(SiteClaim {
        id,
        latitude: site.latitude,
        longitude: site.longitude,
        radius_km: site.radius_km,
    })
}

/// What an identifier field may hold.
struct Identifier {
    field: &'static str,
    max_bytes: usize,
    /// Whether `A`-`Z` are allowed besides `a`-`z`.
    uppercase: bool,
    /// The rule in words, for the error message.
    rule: &'static str,
}

/// Checks a site id.
pub fn site_id(text: &str) -> Result<String, InputError> {
    identifier(text, &SITE_ID)
}

/// A party to screen, every field checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartyInput {
    /// Legal name.
    pub name: String,
    /// Postal address; may be empty.
    pub address: String,
    /// ISO 3166 alpha-2, or empty.
    pub country: String,
}

const PARTY_NAME_CHARS: (usize, usize) = (1, 256);
const PARTY_ADDRESS_CHARS: (usize, usize) = (0, 512);

/// Checks a party; `None` when the request left it out.
pub fn party(
    party: Option<&chipward_proto::grpc::Party>,
    field: &'static str,
) -> Result<Option<PartyInput>, InputError> {
    let Some(p) = party else {
        return Ok(None);
    };
    let country = p.country.trim().to_ascii_uppercase();
    if !(country.is_empty()
        || country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()))
    {
        return Err(InputError::Invalid {
            field,
            reason: "country must be an ISO 3166 alpha-2 code or empty",
        });
    }
    Ok(Some(PartyInput {
        name: text(&p.name, field, PARTY_NAME_CHARS)?,
        address: text(&p.address, field, PARTY_ADDRESS_CHARS)?,
        country,
    }))
}

/// Checks an identifier: 1 to `max_bytes` bytes, each an ASCII letter
/// (lowercase only unless the rule allows both), digit, `.`, `_` or `-`,
/// the first a letter or digit. Being ASCII, bytes and characters agree.
fn identifier(value: &str, id: &Identifier) -> Result<String, InputError> {
    // The request is already bounded by the message size, so the full
    // length is cheap and the error reports what was really sent.
    let got = value.len();
    if got == 0 || got > id.max_bytes {
        return Err(InputError::ByteLength {
            field: id.field,
            max: id.max_bytes,
            got,
        });
    }

    let allowed = |(at, b): (usize, &u8)| match b {
        b'a'..=b'z' | b'0'..=b'9' => true,
        b'A'..=b'Z' => id.uppercase,
        b'.' | b'_' | b'-' => at > 0,
        _ => false,
    };
    if let Some(at) = value
        .as_bytes()
        .iter()
        .enumerate()
        .position(|c| !allowed(c))
    {
        return Err(InputError::NotIdentifier {
            field: id.field,
            rule: id.rule,
            at,
        });
    }
    Ok(value.to_owned())
}

/// Checks one entitlement: free text of 1 to 64 characters, and at most
/// [`MAX_ENTITLEMENT_BYTES`] bytes.
fn entitlement(value: &str) -> Result<String, InputError> {
    let value = text(value, "entitlements", ENTITLEMENT_CHARS)?;
    if value.len() > MAX_ENTITLEMENT_BYTES {
        return Err(InputError::ByteLength {
            field: "entitlements",
            max: MAX_ENTITLEMENT_BYTES,
            got: value.len(),
        });
    }
    Ok(value)
}

/// Checks a free-text field's length in characters and refuses control
/// characters, which have no place in names and would garble logs.
fn text(
    value: &str,
    field: &'static str,
    (min, max): (usize, usize),
) -> Result<String, InputError> {
    // Counted in full so the error says what was sent; the message size
    // limit already bounds the work.
    let got = value.chars().count();
    if got < min || got > max {
        return Err(InputError::Length {
            field,
            min,
            max,
            got,
        });
    }
    if value.chars().any(char::is_control) {
        return Err(InputError::Characters { field });
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn request() -> IssueLicenseRequest {
        IssueLicenseRequest {
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
            entitlements: vec!["fp8".into()],
            eccn: "3A090.a".into(),
            tenant_party: None,
            end_user: None,
        }
    }

    fn refused(edit: impl FnOnce(&mut IssueLicenseRequest)) -> InputError {
        let mut req = request();
        edit(&mut req);
        issue_terms(&req, NOW, &IssuerSettings::default()).unwrap_err()
    }

    #[test]
    fn defaults_start_now_and_last_one_day() {
        let terms = issue_terms(&request(), NOW, &IssuerSettings::default()).unwrap();
        assert_eq!(terms.chip_id, ChipId([0xab; 32]));
        assert_eq!(terms.not_before, NOW);
        assert_eq!(terms.expires_at, NOW + 86_400);
        assert_eq!(terms.site.id, "fra-1");
        assert_eq!(terms.entitlements, ["fp8"]);
    }

    #[test]
    fn accepts_the_edges_of_every_range() {
        let mut req = request();
        req.not_before = NOW - 30 * 86_400;
        req.lifetime_seconds = 30 * 86_400;
        req.tenant = "t".repeat(64);
        req.eccn = String::new();
        req.entitlements = vec!["e".repeat(64); 32];
        let site = req.site.as_mut().unwrap();
        (site.latitude, site.longitude, site.radius_km) = (-90.0, 180.0, 20_000.0);
        site.id = "A.z_9-".repeat(10) + "abcd";
        let terms = issue_terms(&req, NOW, &IssuerSettings::default()).unwrap();
        assert_eq!(terms.expires_at, NOW);

        req.not_before = NOW + 86_400;
        let terms = issue_terms(&req, NOW, &IssuerSettings::default()).unwrap();
        assert_eq!(terms.not_before, NOW + 86_400);
    }

    #[test]
    fn refuses_bad_chip_ids() {
        assert_eq!(
            refused(|r| r.chip_id.clear()),
            InputError::Missing { field: "chip_id" }
        );
        assert!(matches!(
            refused(|r| r.chip_id = "zz".repeat(32)),
            InputError::BadId {
                field: "chip_id",
                ..
            }
        ));
        assert!(matches!(
            refused(|r| r.chip_id = "ab".into()),
            InputError::BadId {
                field: "chip_id",
                ..
            }
        ));
    }

    #[test]
    fn accepts_lowercase_identifier_tenants() {
        for tenant in ["acme-ai", "a", "0day.labs_2", &"t".repeat(64)] {
            let mut req = request();
            req.tenant = tenant.to_owned();
            let terms = issue_terms(&req, NOW, &IssuerSettings::default()).unwrap();
            assert_eq!(terms.tenant, tenant);
        }
    }

    #[test]
    fn refuses_look_alike_tenants() {
        let not_identifier = |at| InputError::NotIdentifier {
            field: "tenant",
            rule: TENANT.rule,
            at,
        };
        // Right-to-left override: renders as "acme-ai".
        assert_eq!(
            refused(|r| r.tenant = "acme\u{202e}ia-".into()),
            not_identifier(4)
        );
        // A zero-width space after an otherwise valid name.
        assert_eq!(
            refused(|r| r.tenant = "acme-ai\u{200b}".into()),
            not_identifier(7)
        );
        assert_eq!(refused(|r| r.tenant = "   ".into()), not_identifier(0));
        assert_eq!(refused(|r| r.tenant = "ACME-AI".into()), not_identifier(0));
        assert_eq!(refused(|r| r.tenant = "acme-Ai".into()), not_identifier(5));
        assert_eq!(refused(|r| r.tenant = "-acme".into()), not_identifier(0));
        assert_eq!(refused(|r| r.tenant = ".acme".into()), not_identifier(0));
        assert_eq!(refused(|r| r.tenant = "ac\nme".into()), not_identifier(2));
    }

    #[test]
    fn refuses_tenants_by_their_length_in_bytes() {
        let too_long = |got| InputError::ByteLength {
            field: "tenant",
            max: 64,
            got,
        };
        assert_eq!(refused(|r| r.tenant.clear()), too_long(0));
        assert_eq!(refused(|r| r.tenant = "t".repeat(65)), too_long(65));
        // 64 characters but 128 bytes: the verifier counts bytes, so do we.
        assert_eq!(refused(|r| r.tenant = "é".repeat(64)), too_long(128));
        let err = refused(|r| r.tenant = "é".repeat(128));
        assert_eq!(err, too_long(256));
        assert_eq!(
            err.to_string(),
            "tenant must be 1 to 64 bytes long, got 256"
        );
        // The whole length is reported, not where counting gave up.
        assert_eq!(
            refused(|r| r.tenant = "t".repeat(1_000_000)),
            too_long(1_000_000)
        );
    }

    #[test]
    fn names_the_tenant_rule_in_the_message() {
        let err = refused(|r| r.tenant = "Acme".into());
        assert_eq!(
            err.to_string(),
            "tenant must be 1 to 64 bytes of lowercase ascii letters, digits, '.', '_' or '-', \
             starting with a letter or digit; byte 0 is not allowed"
        );
    }

    #[test]
    fn list_filters_apply_the_tenant_rule() {
        let req = |tenant: &str| ListLicensesRequest {
            chip_id: String::new(),
            tenant: tenant.into(),
            limit: 0,
        };
        assert!(list_filter(&req("acme-ai")).is_ok());
        assert!(matches!(
            list_filter(&req("ACME-AI")),
            Err(InputError::NotIdentifier {
                field: "tenant",
                ..
            })
        ));
    }

    #[test]
    fn refuses_bad_sites() {
        assert_eq!(
            refused(|r| r.site = None),
            InputError::Missing { field: "site" }
        );
        let site = |edit: fn(&mut Site)| {
            refused(|r| {
                let mut s = r.site.clone().unwrap();
                edit(&mut s);
                r.site = Some(s);
            })
        };
        let not_identifier = |at| InputError::NotIdentifier {
            field: "site.id",
            rule: SITE_ID.rule,
            at,
        };
        assert_eq!(site(|s| s.id = "fra 1".into()), not_identifier(3));
        assert_eq!(site(|s| s.id = "-fra".into()), not_identifier(0));
        assert_eq!(site(|s| s.id = "frá".into()), not_identifier(2));
        assert_eq!(
            site(|s| s.id = "x".repeat(65)),
            InputError::ByteLength {
                field: "site.id",
                max: 64,
                got: 65
            }
        );
        assert_eq!(
            site(|s| s.id.clear()),
            InputError::ByteLength {
                field: "site.id",
                max: 64,
                got: 0
            }
        );
        for bad in [90.5, -90.01, f64::NAN, f64::INFINITY] {
            let err = refused(|r| r.site.as_mut().unwrap().latitude = bad);
            assert!(
                matches!(
                    err,
                    InputError::OutOfRange {
                        field: "site.latitude",
                        ..
                    }
                ),
                "{bad}"
            );
        }
        for bad in [180.5, -181.0, f64::NAN, f64::NEG_INFINITY] {
            let err = refused(|r| r.site.as_mut().unwrap().longitude = bad);
            assert!(
                matches!(
                    err,
                    InputError::OutOfRange {
                        field: "site.longitude",
                        ..
                    }
                ),
                "{bad}"
            );
        }
        for bad in [0.0, -1.0, 20_000.1, f64::NAN, f64::INFINITY] {
            let err = refused(|r| r.site.as_mut().unwrap().radius_km = bad);
            assert!(
                matches!(
                    err,
                    InputError::OutOfRange {
                        field: "site.radius_km",
                        ..
                    }
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn refuses_lifetimes_outside_the_configured_range() {
        assert_eq!(
            refused(|r| r.lifetime_seconds = 30 * 86_400 + 1),
            InputError::Lifetime {
                got: 2_592_001,
                max: 2_592_000
            }
        );
        assert_eq!(
            refused(|r| r.lifetime_seconds = -5),
            InputError::Lifetime {
                got: -5,
                max: 2_592_000
            }
        );
    }

    #[test]
    fn refuses_start_times_too_early_or_too_late() {
        assert_eq!(
            refused(|r| r.not_before = NOW - 30 * 86_400 - 1),
            InputError::BackdatedTooFar {
                not_before: NOW - 2_592_001,
                earliest: NOW - 2_592_000
            }
        );
        assert_eq!(
            refused(|r| r.not_before = NOW + 86_401),
            InputError::StartsTooLate {
                not_before: NOW + 86_401,
                latest: NOW + 86_400
            }
        );
        assert!(matches!(
            refused(|r| r.not_before = i64::MIN),
            InputError::BackdatedTooFar { .. }
        ));
    }

    #[test]
    fn refuses_bad_entitlements_and_eccn() {
        assert_eq!(
            refused(|r| r.entitlements = vec!["e".into(); 33]),
            InputError::TooMany {
                field: "entitlements",
                max: 32,
                got: 33
            }
        );
        assert!(matches!(
            refused(|r| r.entitlements = vec![String::new()]),
            InputError::Length {
                field: "entitlements",
                ..
            }
        ));
        assert!(matches!(
            refused(|r| r.eccn = "x".repeat(33)),
            InputError::Length { field: "eccn", .. }
        ));
    }

    #[test]
    fn refuses_entitlements_too_wide_for_a_license_token() {
        // 64 characters of four bytes: within the character bound, but 32
        // of them made a license of 8,815 bytes, which no verifier reads.
        let wide = "\u{1D53D}".repeat(64);
        assert_eq!(
            refused(|r| r.entitlements = vec![wide.clone(); 32]),
            InputError::ByteLength {
                field: "entitlements",
                max: 64,
                got: 256
            }
        );
        assert_eq!(
            refused(|r| r.entitlements = vec!["\u{e9}".repeat(33)]),
            InputError::ByteLength {
                field: "entitlements",
                max: 64,
                got: 66
            }
        );
        let mut req = request();
        req.entitlements = vec!["\u{e9}".repeat(32)];
        assert!(issue_terms(&req, NOW, &IssuerSettings::default()).is_ok());
    }

    #[test]
    fn the_widest_accepted_request_makes_a_license_every_verifier_reads() {
        use chipward_proto::cose::TrustedKeys;
        use chipward_proto::license::{self, LicenseClaims, MAX_TOKEN_LEN};
        use ring::signature::{Ed25519KeyPair, KeyPair};

        // Every text at its longest, in characters of four bytes wherever
        // characters are counted; issuer and audience at 256 bytes.
        let four = |n: usize| "\u{1D53D}".repeat(n);
        let settings = IssuerSettings {
            issuer_name: "i".repeat(256),
            audience: "a".repeat(256),
            ..IssuerSettings::default()
        };
        let mut req = request();
        req.tenant = "t".repeat(64);
        req.site.as_mut().unwrap().id = "s".repeat(64);
        req.entitlements = vec![four(16); 32];
        req.eccn = four(32);
        let terms = issue_terms(&req, NOW, &settings).unwrap();

        let key = Ed25519KeyPair::from_seed_unchecked(&[7; 32]).unwrap();
        let claims = LicenseClaims {
            issuer: settings.issuer_name.clone(),
            chip_id: terms.chip_id,
            audience: settings.audience.clone(),
            issued_at: i64::MIN,
            not_before: terms.not_before,
            expires_at: terms.expires_at,
            token_id: TokenId([0xff; 16]),
            tenant: terms.tenant,
            site: terms.site,
            entitlements: terms.entitlements,
            eccn: terms.eccn,
        };
        let key_id = "0123456789abcdef";
        let token = claims.sign(key_id, |m| key.sign(m).as_ref().to_vec());
        assert!(token.len() <= MAX_TOKEN_LEN, "{} bytes", token.len());
        let public = key.public_key().as_ref().try_into().unwrap();
        let verified = license::verify(&token, &TrustedKeys::new().with(key_id, public)).unwrap();
        assert_eq!(verified.claims(), &claims);
    }

    #[test]
    fn list_limits_are_clamped_and_filters_parsed() {
        let req = |limit, chip: &str, tenant: &str| ListLicensesRequest {
            chip_id: chip.into(),
            tenant: tenant.into(),
            limit,
        };
        assert_eq!(list_filter(&req(0, "", "")).unwrap().1, 1000);
        assert_eq!(list_filter(&req(5000, "", "")).unwrap().1, 1000);
        assert_eq!(list_filter(&req(7, "", "")).unwrap().1, 7);
        let (filter, _) = list_filter(&req(1, &"01".repeat(32), "acme")).unwrap();
        assert_eq!(filter.chip_id, Some(ChipId([1; 32])));
        assert_eq!(filter.tenant.as_deref(), Some("acme"));
        assert!(matches!(
            list_filter(&req(1, "xyz", "")),
            Err(InputError::BadId { .. })
        ));
    }

    #[test]
    fn chains_must_hold_one_to_eight_certificates() {
        assert_eq!(
            chain_len(&[], "cert_chain"),
            Err(InputError::Missing {
                field: "cert_chain"
            })
        );
        assert!(chain_len(&vec![vec![0]; 8], "cert_chain").is_ok());
        assert_eq!(
            chain_len(&vec![vec![0]; 9], "ek_cert_chain"),
            Err(InputError::TooMany {
                field: "ek_cert_chain",
                max: 8,
                got: 9
            })
        );
    }

    #[test]
    fn host_enrolment_fields_are_present_and_bounded() {
        assert_eq!(
            tpm_public(&[], "ak_public"),
            Err(InputError::Missing { field: "ak_public" })
        );
        assert!(tpm_public(&[0; MAX_TPM_PUBLIC_LEN], "ek_public").is_ok());
        assert_eq!(
            tpm_public(&[0; MAX_TPM_PUBLIC_LEN + 1], "ek_public")
                .unwrap_err()
                .to_string(),
            "ek_public is 1027 bytes, at most 1026 allowed"
        );
        assert_eq!(
            credential(&[]),
            Err(InputError::Missing {
                field: "credential"
            })
        );
        assert!(credential(&[7; 64]).is_ok());
        assert!(matches!(
            credential(&[7; 65]),
            Err(InputError::TooLarge {
                max: 64,
                got: 65,
                ..
            })
        ));
    }

    #[test]
    fn enrolment_ids_are_32_hex_digits() {
        assert_eq!(
            enrolment_id(&"a0".repeat(16)).unwrap(),
            EnrolmentId([0xa0; 16])
        );
        assert_eq!(
            enrolment_id(""),
            Err(InputError::Missing {
                field: "enrolment_id"
            })
        );
        for bad in ["a0", &"zz".repeat(16), &"a0".repeat(17), &"é".repeat(16)] {
            let err = enrolment_id(bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    InputError::BadId {
                        field: "enrolment_id",
                        ..
                    }
                ),
                "{bad}: {err:?}"
            );
        }
    }

    #[test]
    fn attestation_results_must_be_present_and_bounded() {
        assert_eq!(
            attestation_result(&[]),
            Err(InputError::Missing {
                field: "attestation_result"
            })
        );
        assert!(attestation_result(&vec![0; MAX_RESULT_LEN]).is_ok());
        let err = attestation_result(&vec![0; MAX_RESULT_LEN + 1]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "attestation_result is 65537 bytes, at most 65536 allowed"
        );
    }

    #[test]
    fn token_ids_and_reasons_are_checked() {
        assert_eq!(
            token_id(&"0a".repeat(16), "token_id").unwrap(),
            TokenId([10; 16])
        );
        assert!(matches!(
            token_id("0a0g", "token_id"),
            Err(InputError::BadId { .. })
        ));
        assert_eq!(
            token_id("", "token_id"),
            Err(InputError::Missing { field: "token_id" })
        );
        assert_eq!(reason("").unwrap(), "");
        assert!(matches!(
            reason(&"r".repeat(257)),
            Err(InputError::Length {
                field: "reason",
                ..
            })
        ));
    }
}
