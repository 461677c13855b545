//! Who is calling: the role and scope a client certificate grants, and the
//! checks every RPC makes before it reads or changes anything.
//!
//! Every gRPC connection is mutually authenticated TLS ([`crate::tls`]); the
//! client's leaf certificate, already verified by rustls against the
//! deployment's TLS CA, carries its grant as subject alternative name URIs:
//!
//! | URI                              | meaning                                  |
//! |----------------------------------|------------------------------------------|
//! | `urn:chipward:role:<role>`       | exactly one: the role (see [`Role`])     |
//! | `urn:chipward:tenant:<tenant>`   | an operator may act for this tenant      |
//! | `urn:chipward:site:<site>`       | an operator may act at this site only    |
//! | `urn:chipward:chip:<chip id>`    | a device is this chip                    |
//!
//! An operator needs at least one tenant; without site URIs it covers every
//! site of its tenants. A device needs at least one chip. A certificate with
//! no role URI, two role URIs, an unknown role or a malformed scope value is
//! refused as a whole (`UNAUTHENTICATED`), never read as a lesser grant.
//!
//! Limitation: client certificates cannot be revoked; a leaked one is good
//! until it expires (825 days from `chipward-pki`) or the CA is replaced.
//!
//! In-process callers (benchmarks driving a service without a socket) put a
//! [`Caller`] into the request's extensions; a remote peer cannot set
//! extensions, so this grants nothing over the network.

use std::fmt;

use ring::digest::{SHA256, digest};
use thiserror::Error;
use tonic::{Code, Request, Status};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Prefix of every grant URI.
pub const URN_PREFIX: &str = "urn:chipward:";
/// Most scope URIs one certificate may carry.
pub const MAX_SCOPE_ENTRIES: usize = 256;
/// Longest scope value (tenant, site or chip id).
pub const MAX_SCOPE_LEN: usize = 64;

/// What a certificate lets its holder do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The vendor's administrator: enrols chips and hosts, issues and
    /// revokes licenses, loads screening lists, purges expired records.
    VendorAdmin,
    /// A screening reviewer: overrides screening hits with a reason, places
    /// and lifts legal holds, reads licenses and the log.
    Reviewer,
    /// A data-center operator: appraises, renews and records results for
    /// its tenants' chips at its sites, enrols its hosts.
    Operator,
    /// An auditor: reads licenses, the log, proofs and bundles; changes
    /// nothing.
    Auditor,
    /// A location landmark: reads the revocation list and the verifier's
    /// description, nothing else.
    Landmark,
    /// One chip (or a few): challenges and appraises itself, reads its own
    /// licenses and the revocation list.
    Device,
    /// A verifier service: fetches the issuer's revocation list.
    Verifier,
}

impl Role {
    /// Every role, in a fixed order.
    pub const ALL: [Self; 7] = [
        Self::VendorAdmin,
        Self::Reviewer,
        Self::Operator,
        Self::Auditor,
        Self::Landmark,
        Self::Device,
        Self::Verifier,
    ];

    /// The name used in certificates and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VendorAdmin => "vendor-admin",
            Self::Reviewer => "reviewer",
            Self::Operator => "operator",
            Self::Auditor => "auditor",
            Self::Landmark => "landmark",
            Self::Device => "device",
            Self::Verifier => "verifier",
        }
    }

    /// The role named `name` exactly (lowercase), if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a caller may not make a call.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AccessError {
    /// No verified client certificate came with the call.
    #[error("no client certificate: every call needs mutual TLS")]
    NoCertificate,
    /// The certificate's grant could not be read.
    #[error("client certificate refused: {0}")]
    BadGrant(String),
    /// The caller's role may not make this call.
    #[error("role {role} may not call {rpc}")]
    Role {
        /// The caller's role.
        role: Role,
        /// The call refused.
        rpc: &'static str,
    },
    /// The call concerns a tenant, site or chip outside the caller's scope.
    #[error("{what} is outside the scope of this {role} certificate")]
    Scope {
        /// The caller's role.
        role: Role,
        /// What was out of scope, for example `tenant "acme"`.
        what: String,
    },
}

impl AccessError {
    /// The stable code clients and logs see.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoCertificate | Self::BadGrant(_) => "CW-AUTH-CERT",
            Self::Role { .. } => "CW-AUTH-ROLE",
            Self::Scope { .. } => "CW-AUTH-SCOPE",
        }
    }

    /// The gRPC code: `UNAUTHENTICATED` when the caller is unknown,
    /// `PERMISSION_DENIED` when it is known but not allowed.
    pub fn grpc_code(&self) -> Code {
        match self {
            Self::NoCertificate | Self::BadGrant(_) => Code::Unauthenticated,
            Self::Role { .. } | Self::Scope { .. } => Code::PermissionDenied,
        }
    }
}

impl From<AccessError> for Status {
    fn from(e: AccessError) -> Self {
        Self::new(e.grpc_code(), format!("{}: {e}", e.code()))
    }
}

/// An authenticated caller: role, scope and a stable key for rate limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    role: Role,
    tenants: Vec<String>,
    sites: Vec<String>,
    chips: Vec<String>,
    /// Lowercase hex SHA-256 of the certificate (or a name in process).
    key: String,
}

impl Caller {
    /// Reads the grant of a verified client certificate (DER).
    pub fn from_certificate(der: &[u8]) -> Result<Self, AccessError> {
        let bad = |why: &str| AccessError::BadGrant(why.to_owned());
        let (rest, cert) =
            X509Certificate::from_der(der).map_err(|_| bad("certificate does not parse"))?;
        if !rest.is_empty() {
            return Err(bad("bytes after the certificate"));
        }
        let mut uris = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                if let GeneralName::URI(uri) = name {
                    uris.push(*uri);
                }
            }
        }
        let key = hex::encode(digest(&SHA256, der));
        Self::from_uris(&uris, key)
    }

    /// Reads a grant from the certificate's URIs; `key` names the caller.
    pub fn from_uris(uris: &[&str], key: String) -> Result<Self, AccessError> {
        let bad = |why: String| AccessError::BadGrant(why);
        let mut role = None;
        let (mut tenants, mut sites, mut chips) = (Vec::new(), Vec::new(), Vec::new());
        let mut scopes = 0usize;
        for uri in uris {
            let Some(grant) = uri.strip_prefix(URN_PREFIX) else {
                continue;
            };
            let (kind, value) = grant
                .split_once(':')
                .ok_or_else(|| bad(format!("grant URI {uri:?} has no value")))?;
            if kind == "role" {
                let r = Role::parse(value).ok_or_else(|| bad(format!("unknown role {value:?}")))?;
                if role.replace(r).is_some() {
                    return Err(bad("more than one role".into()));
                }
                continue;
            }
            scopes += 1;
            if scopes > MAX_SCOPE_ENTRIES {
                return Err(bad(format!("more than {MAX_SCOPE_ENTRIES} scope URIs")));
            }
            if !plain(value) {
                return Err(bad(format!("malformed {kind} value in {uri:?}")));
            }
            match kind {
                "tenant" => tenants.push(value.to_owned()),
                "site" => sites.push(value.to_owned()),
                "chip" => chips.push(value.to_owned()),
                _ => return Err(bad(format!("unknown grant kind {kind:?}"))),
            }
        }
        let role = role.ok_or_else(|| bad("no role URI".into()))?;
        match role {
            Role::Operator if tenants.is_empty() => {
                return Err(bad("an operator certificate names no tenant".into()));
            }
            Role::Device if chips.is_empty() => {
                return Err(bad("a device certificate names no chip".into()));
            }
            _ => {}
        }
        Ok(Self {
            role,
            tenants,
            sites,
            chips,
            key,
        })
    }

    /// A caller made in process, for benchmarks and tools that drive a
    /// service without a socket; insert it into the request's extensions.
    pub fn in_process(role: Role, tenants: &[&str], sites: &[&str], chips: &[&str]) -> Self {
        let own = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
        Self {
            role,
            tenants: own(tenants),
            sites: own(sites),
            chips: own(chips),
            key: format!("in-process:{role}"),
        }
    }

    /// The caller of `request`: one put into its extensions in process,
    /// otherwise the grant of the peer's verified leaf certificate.
    pub fn of<T>(request: &Request<T>) -> Result<Self, AccessError> {
        if let Some(caller) = request.extensions().get::<Self>() {
            return Ok(caller.clone());
        }
        let certs = request.peer_certs().ok_or(AccessError::NoCertificate)?;
        let leaf = certs.first().ok_or(AccessError::NoCertificate)?;
        Self::from_certificate(leaf.as_ref())
    }

    /// The caller's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// A stable key for this caller (the certificate's SHA-256 in hex):
    /// what per-client limits count against.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The tenants an operator acts for.
    pub fn tenants(&self) -> &[String] {
        &self.tenants
    }

    /// Refuses unless the caller has one of `roles`.
    pub fn require(&self, rpc: &'static str, roles: &[Role]) -> Result<(), AccessError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(AccessError::Role {
                role: self.role,
                rpc,
            })
        }
    }

    /// True when the caller sees everything (administration, review, audit).
    pub fn sees_everything(&self) -> bool {
        matches!(
            self.role,
            Role::VendorAdmin | Role::Reviewer | Role::Auditor
        )
    }

    /// Refuses unless a chip of `tenant` at `site` with id `chip` is within
    /// the caller's scope: always for administration, review and audit;
    /// tenant and site for an operator; the chip for a device; never for
    /// landmarks and verifiers.
    pub fn require_scope(&self, tenant: &str, site: &str, chip: &str) -> Result<(), AccessError> {
        let out = |what: String| AccessError::Scope {
            role: self.role,
            what,
        };
        match self.role {
            Role::VendorAdmin | Role::Reviewer | Role::Auditor => Ok(()),
            Role::Operator => {
                if !self.tenants.iter().any(|t| t == tenant) {
                    return Err(out(format!("tenant {tenant:?}")));
                }
                if !self.sites.is_empty() && !self.sites.iter().any(|s| s == site) {
                    return Err(out(format!("site {site:?}")));
                }
                Ok(())
            }
            Role::Device => {
                if self.chips.iter().any(|c| c == chip) {
                    Ok(())
                } else {
                    Err(out(format!("chip {chip:?}")))
                }
            }
            Role::Landmark | Role::Verifier => Err(out("every chip".into())),
        }
    }

    /// Refuses unless the caller may act for `tenant` (at some site).
    pub fn require_tenant(&self, tenant: &str) -> Result<(), AccessError> {
        match self.role {
            Role::VendorAdmin | Role::Reviewer | Role::Auditor => Ok(()),
            Role::Operator if self.tenants.iter().any(|t| t == tenant) => Ok(()),
            _ => Err(AccessError::Scope {
                role: self.role,
                what: format!("tenant {tenant:?}"),
            }),
        }
    }

    /// Refuses unless the caller may act for chip `chip` of some tenant:
    /// used where the chip is named before its licenses are read.
    pub fn require_chip(&self, chip: &str) -> Result<(), AccessError> {
        match self.role {
            Role::VendorAdmin | Role::Reviewer | Role::Auditor | Role::Operator => Ok(()),
            Role::Device if self.chips.iter().any(|c| c == chip) => Ok(()),
            _ => Err(AccessError::Scope {
                role: self.role,
                what: format!("chip {chip:?}"),
            }),
        }
    }
}

/// Tenant, site and chip ids in grants: `[a-z0-9._-]`, 1 to 64 bytes.
fn plain(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_SCOPE_LEN
        && value.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(uris: &[&str]) -> Result<Caller, AccessError> {
        Caller::from_uris(uris, "k".into())
    }

    #[test]
    fn an_operator_is_limited_to_its_tenants_and_sites() {
        let c = grant(&[
            "urn:chipward:role:operator",
            "urn:chipward:tenant:acme",
            "urn:chipward:site:fra-1",
        ])
        .unwrap();
        assert_eq!(c.role(), Role::Operator);
        assert!(c.require_scope("acme", "fra-1", "00").is_ok());
        let e = c.require_scope("acme", "ams-1", "00").unwrap_err();
        assert_eq!(e.code(), "CW-AUTH-SCOPE");
        assert!(e.to_string().contains("\"ams-1\""), "{e}");
        assert!(c.require_scope("globex", "fra-1", "00").is_err());
        assert!(c.require_tenant("acme").is_ok());
        assert!(c.require_tenant("globex").is_err());
    }

    #[test]
    fn an_operator_without_sites_covers_every_site_of_its_tenants() {
        let c = grant(&["urn:chipward:role:operator", "urn:chipward:tenant:acme"]).unwrap();
        assert!(c.require_scope("acme", "anywhere", "00").is_ok());
        assert!(c.require_scope("acmex", "anywhere", "00").is_err());
    }

    #[test]
    fn a_device_is_limited_to_its_chips() {
        let c = grant(&["urn:chipward:role:device", "urn:chipward:chip:ab12"]).unwrap();
        assert!(c.require_scope("any", "any", "ab12").is_ok());
        assert!(c.require_scope("any", "any", "ab13").is_err());
        assert!(c.require_chip("ab12").is_ok());
        assert!(c.require_chip("ab1").is_err());
        assert!(c.require_tenant("any").is_err());
    }

    #[test]
    fn roles_are_checked_by_name() {
        let c = grant(&["urn:chipward:role:auditor"]).unwrap();
        assert!(c.require("GetEntries", &[Role::Auditor]).is_ok());
        let e = c
            .require("RevokeLicense", &[Role::VendorAdmin])
            .unwrap_err();
        assert_eq!(e.to_string(), "role auditor may not call RevokeLicense");
        assert_eq!(e.grpc_code(), Code::PermissionDenied);
    }

    #[test]
    fn landmarks_and_verifiers_have_no_chip_scope() {
        for role in ["landmark", "verifier"] {
            let c = grant(&[&format!("urn:chipward:role:{role}")]).unwrap();
            assert!(c.require_scope("a", "b", "c").is_err());
            assert!(c.require_chip("c").is_err());
        }
    }

    #[test]
    fn malformed_grants_are_refused_whole() {
        let cases: [&[&str]; 9] = [
            &[],
            &["urn:chipward:tenant:acme"],
            &["urn:chipward:role:root"],
            &["urn:chipward:role:Operator", "urn:chipward:tenant:acme"],
            &[
                "urn:chipward:role:auditor",
                "urn:chipward:role:vendor-admin",
            ],
            &["urn:chipward:role:operator"],
            &["urn:chipward:role:device"],
            &["urn:chipward:role:operator", "urn:chipward:tenant:ACME"],
            &["urn:chipward:role:auditor", "urn:chipward:colour:red"],
        ];
        for uris in cases {
            let e = grant(uris).unwrap_err();
            assert!(matches!(e, AccessError::BadGrant(_)), "{uris:?}: {e:?}");
            assert_eq!(e.grpc_code(), Code::Unauthenticated);
        }
    }

    #[test]
    fn other_uris_are_ignored() {
        let c = grant(&["https://example.invalid/x", "urn:chipward:role:reviewer"]).unwrap();
        assert_eq!(c.role(), Role::Reviewer);
        assert!(c.sees_everything());
    }

    #[test]
    fn too_many_scope_uris_are_refused() {
        let mut uris = vec!["urn:chipward:role:operator".to_owned()];
        uris.extend((0..=MAX_SCOPE_ENTRIES).map(|i| format!("urn:chipward:tenant:t{i}")));
        let refs: Vec<&str> = uris.iter().map(String::as_str).collect();
        assert!(grant(&refs).is_err());
        assert!(grant(&refs[..MAX_SCOPE_ENTRIES + 1]).is_ok());
    }

    #[test]
    fn a_request_without_a_certificate_is_unauthenticated() {
        let e = Caller::of(&Request::new(())).unwrap_err();
        assert_eq!(e, AccessError::NoCertificate);
        let mut r = Request::new(());
        let c = Caller::in_process(Role::Auditor, &[], &[], &[]);
        r.extensions_mut().insert(c.clone());
        assert_eq!(Caller::of(&r).unwrap(), c);
    }
}
