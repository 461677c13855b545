//! The TLS PKI of a deployment: one CA, a certificate per server, and a
//! certificate per client that carries its role and scope (see
//! `chipward_proto::access` for the URIs).
//!
//! Files in one folder, the layout `chipward_proto::tls::TlsFiles::in_dir`
//! reads: `ca.pem` and `ca.key`, then `<name>.pem` and `<name>.key` per
//! party. Keys are ECDSA P-256, PKCS#8 PEM, mode 0600; nothing is ever
//! overwritten. Certificates are valid for [`TLS_VALIDITY_DAYS`] from the
//! day they are made.
//!
//! Attacker-controlled input: none; names and scopes come from the
//! operator's command line and are checked before they reach a certificate.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chipward_proto::access::{Caller, Role, URN_PREFIX};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use zeroize::Zeroizing;

use super::{PkiError, create_private_dir, exists, write_public};
use crate::keys::write_private_key_file;

/// Days a TLS certificate is valid.
pub const TLS_VALIDITY_DAYS: u64 = 825;
/// The CA certificate file.
pub const TLS_CA_CERT_FILE: &str = "ca.pem";
/// The CA key file.
pub const TLS_CA_KEY_FILE: &str = "ca.key";
/// Longest party name (file stem and common name).
const MAX_NAME_LEN: usize = 48;

/// What one client certificate grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The role.
    pub role: Role,
    /// Tenants an operator acts for.
    pub tenants: Vec<String>,
    /// Sites an operator is limited to; empty means all of its tenants'.
    pub sites: Vec<String>,
    /// Chips a device is.
    pub chips: Vec<String>,
}

impl Grant {
    /// A grant of `role` with no scope.
    pub fn role(role: Role) -> Self {
        Self {
            role,
            tenants: Vec::new(),
            sites: Vec::new(),
            chips: Vec::new(),
        }
    }

    /// The subject alternative name URIs that carry this grant.
    pub fn uris(&self) -> Vec<String> {
        let mut out = vec![format!("{URN_PREFIX}role:{}", self.role)];
        let scoped = [
            ("tenant", &self.tenants),
            ("site", &self.sites),
            ("chip", &self.chips),
        ];
        for (kind, values) in scoped {
            out.extend(values.iter().map(|v| format!("{URN_PREFIX}{kind}:{v}")));
        }
        out
    }

    /// Refuses a grant the servers would refuse, before it is signed.
    fn check(&self) -> Result<(), PkiError> {
        let uris = self.uris();
        let refs: Vec<&str> = uris.iter().map(String::as_str).collect();
        Caller::from_uris(&refs, String::new())
            .map(|_| ())
            .map_err(|e| PkiError::Tls(e.to_string()))
    }
}

/// The CA of one TLS folder, loaded to sign.
pub struct TlsCa {
    dir: PathBuf,
    cert_der: Vec<u8>,
    key: Zeroizing<KeyPair>,
}

impl std::fmt::Debug for TlsCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsCa")
            .field("dir", &self.dir)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl TlsCa {
    /// Makes a new CA in `dir` (created with mode 0700 if missing).
    pub fn create(dir: &Path) -> Result<Self, PkiError> {
        create_private_dir(dir)?;
        for file in [TLS_CA_CERT_FILE, TLS_CA_KEY_FILE] {
            let path = dir.join(file);
            if exists(&path) {
                return Err(PkiError::AlreadyExists { path });
            }
        }
        let build = |source| PkiError::Build {
            what: "tls ca",
            source,
        };
        let key = new_key().map_err(build)?;
        let mut params = params("Chipward TLS CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&*key).map_err(build)?;
        write_public(dir, TLS_CA_CERT_FILE, &cert.pem())?;
        write_key(dir, TLS_CA_KEY_FILE, &key)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            cert_der: cert.der().to_vec(),
            key,
        })
    }

    /// Loads the CA of `dir`.
    pub fn load(dir: &Path) -> Result<Self, PkiError> {
        let read = |file: &str| {
            let path = dir.join(file);
            std::fs::read_to_string(&path)
                .map(Zeroizing::new)
                .map_err(|source| PkiError::ReadFile { path, source })
        };
        let cert_pem = read(TLS_CA_CERT_FILE)?;
        let key_pem = read(TLS_CA_KEY_FILE)?;
        let bad = |why: &str| PkiError::Tls(format!("{}: {why}", dir.display()));
        let certs =
            crate::pem::parse_certificates(&cert_pem).map_err(|_| bad("ca.pem is not PEM"))?;
        let [cert_der] =
            <[Vec<u8>; 1]>::try_from(certs).map_err(|_| bad("ca.pem must hold one certificate"))?;
        let key = KeyPair::from_pem(&key_pem)
            .map(Zeroizing::new)
            .map_err(|_| bad("ca.key is not a PKCS#8 P-256 key"))?;
        let ca = Self {
            dir: dir.to_path_buf(),
            cert_der,
            key,
        };
        // The key must be the certificate's, or nothing it signs verifies.
        let issuer = ca.issuer()?;
        drop(issuer);
        let (_, parsed) = x509_parser::parse_x509_certificate(&ca.cert_der)
            .map_err(|_| bad("ca.pem does not parse"))?;
        if parsed.public_key().subject_public_key.data.as_ref() != ca.key.public_key_raw() {
            return Err(bad("ca.key does not belong to ca.pem"));
        }
        Ok(ca)
    }

    /// Issues `<name>.pem` and `<name>.key` for a server reachable as each of
    /// `hosts` (DNS names or IP addresses), usable also as a client with
    /// `grant` (a verifier fetching the issuer's revocation list).
    pub fn issue_server(
        &self,
        name: &str,
        hosts: &[String],
        grant: &Grant,
    ) -> Result<PathBuf, PkiError> {
        if hosts.is_empty() {
            return Err(PkiError::Tls(
                "a server certificate needs a host name".into(),
            ));
        }
        grant.check()?;
        let mut params = params(name);
        for host in hosts {
            let san = match host.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(
                    host.as_str()
                        .try_into()
                        .map_err(|_| PkiError::Tls(format!("host {host:?} is not a DNS name")))?,
                ),
            };
            params.subject_alt_names.push(san);
        }
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        self.issue(name, params, grant)
    }

    /// Issues `<name>.pem` and `<name>.key` for a client with `grant`.
    pub fn issue_client(&self, name: &str, grant: &Grant) -> Result<PathBuf, PkiError> {
        grant.check()?;
        let mut params = params(name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(name, params, grant)
    }

    fn issue(
        &self,
        name: &str,
        mut params: CertificateParams,
        grant: &Grant,
    ) -> Result<PathBuf, PkiError> {
        check_name(name)?;
        let (cert_file, key_file) = (format!("{name}.pem"), format!("{name}.key"));
        for file in [&cert_file, &key_file] {
            let path = self.dir.join(file);
            if exists(&path) {
                return Err(PkiError::AlreadyExists { path });
            }
        }
        let build = |source| PkiError::Build {
            what: "tls certificate",
            source,
        };
        for uri in grant.uris() {
            let uri = uri
                .as_str()
                .try_into()
                .map_err(|_| PkiError::Tls(format!("grant URI {uri:?} is not ASCII")))?;
            params.subject_alt_names.push(SanType::URI(uri));
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let key = new_key().map_err(build)?;
        let issuer = self.issuer()?;
        let cert = params.signed_by(&*key, &issuer).map_err(build)?;
        write_public(&self.dir, &cert_file, &cert.pem())?;
        write_key(&self.dir, &key_file, &key)?;
        Ok(self.dir.join(cert_file))
    }

    fn issuer(&self) -> Result<Issuer<'_, &KeyPair>, PkiError> {
        Issuer::from_ca_cert_der(&self.cert_der.as_slice().into(), &*self.key).map_err(|source| {
            PkiError::Build {
                what: "tls ca",
                source,
            }
        })
    }
}

/// Creates a TLS folder for a whole deployment on one machine: the CA;
/// `issuer` and `verifier` server certificates for `localhost` and
/// 127.0.0.1 (the verifier's with the verifier role, to fetch revocation
/// lists); clients `admin`, `reviewer`, `auditor` and `landmark`; and, when
/// `tenants` is not empty, `operator` acting for every one of them.
pub fn create_local_deployment(dir: &Path, tenants: &[&str]) -> Result<TlsCa, PkiError> {
    let ca = TlsCa::create(dir)?;
    let hosts = ["localhost".to_owned(), "127.0.0.1".to_owned()];
    ca.issue_server("issuer", &hosts, &Grant::role(Role::VendorAdmin))?;
    ca.issue_server("verifier", &hosts, &Grant::role(Role::Verifier))?;
    ca.issue_client("admin", &Grant::role(Role::VendorAdmin))?;
    ca.issue_client("reviewer", &Grant::role(Role::Reviewer))?;
    ca.issue_client("auditor", &Grant::role(Role::Auditor))?;
    ca.issue_client("landmark", &Grant::role(Role::Landmark))?;
    if tenants.is_empty() {
        return Ok(ca);
    }
    let operator = Grant {
        tenants: tenants.iter().map(|t| (*t).to_owned()).collect(),
        ..Grant::role(Role::Operator)
    };
    ca.issue_client("operator", &operator)?;
    Ok(ca)
}

fn params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, super::DEV_ORGANIZATION);
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    let now = time_now();
    params.not_before = now - Duration::from_secs(3600);
    params.not_after = now + Duration::from_secs(TLS_VALIDITY_DAYS * 86_400);
    params
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn new_key() -> Result<Zeroizing<KeyPair>, rcgen::Error> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map(Zeroizing::new)
}

fn write_key(dir: &Path, file: &str, key: &KeyPair) -> Result<(), PkiError> {
    let der = Zeroizing::new(key.serialize_der());
    let path = dir.join(file);
    write_private_key_file(&path, "PRIVATE KEY", &der)
        .map_err(|source| PkiError::WriteFile { path, source })
}

/// Party names: `[a-z0-9._-]`, 1 to 48 bytes, so they are safe file stems.
fn check_name(name: &str) -> Result<(), PkiError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
    if ok && name != "ca" {
        Ok(())
    } else {
        Err(PkiError::Tls(format!(
            "name {name:?} must be 1 to {MAX_NAME_LEN} of [a-z0-9._-], not starting with '.', not \"ca\""
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_folder_holds_every_party_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        create_local_deployment(&tls, &["acme", "globex"]).unwrap();
        for name in [
            "ca", "issuer", "verifier", "admin", "reviewer", "auditor", "landmark", "operator",
        ] {
            assert!(tls.join(format!("{name}.pem")).exists(), "{name}");
            let mode = std::os::unix::fs::PermissionsExt::mode(
                &std::fs::metadata(tls.join(format!("{name}.key")))
                    .unwrap()
                    .permissions(),
            );
            assert_eq!(mode & 0o077, 0, "{name}.key is readable by others");
        }
        let again = create_local_deployment(&tls, &["acme"]).unwrap_err();
        assert!(matches!(again, PkiError::AlreadyExists { .. }), "{again}");

        let ca = TlsCa::load(&tls).unwrap();
        let err = ca
            .issue_client("operator", &Grant::role(Role::Auditor))
            .unwrap_err();
        assert!(matches!(err, PkiError::AlreadyExists { .. }), "{err}");
    }

    #[test]
    fn the_operator_certificate_carries_its_tenants() {
        let dir = tempfile::tempdir().unwrap();
        create_local_deployment(dir.path(), &["acme", "globex"]).unwrap();
        let pem = std::fs::read_to_string(dir.path().join("operator.pem")).unwrap();
        let der = crate::pem::parse_certificates(&pem).unwrap().remove(0);
        let caller = Caller::from_certificate(&der).unwrap();
        assert_eq!(caller.role(), Role::Operator);
        assert_eq!(caller.tenants(), ["acme", "globex"]);
        assert!(caller.require_scope("globex", "any", "").is_ok());
        assert!(caller.require_scope("initech", "any", "").is_err());
    }

    #[test]
    fn grants_and_names_the_servers_would_refuse_are_not_signed() {
        let dir = tempfile::tempdir().unwrap();
        let ca = TlsCa::create(dir.path()).unwrap();
        let no_tenant = ca.issue_client("op", &Grant::role(Role::Operator));
        assert!(matches!(no_tenant, Err(PkiError::Tls(_))));
        let bad_tenant = Grant {
            tenants: vec!["Acme Corp".into()],
            ..Grant::role(Role::Operator)
        };
        assert!(matches!(
            ca.issue_client("op", &bad_tenant),
            Err(PkiError::Tls(_))
        ));
        for name in ["", "../x", "ca", ".hidden", "UPPER"] {
            let r = ca.issue_client(name, &Grant::role(Role::Auditor));
            assert!(matches!(r, Err(PkiError::Tls(_))), "{name:?}");
        }
        assert!(!dir.path().join("op.pem").exists());
    }

    #[test]
    fn a_key_that_is_not_the_cas_is_refused_on_load() {
        let dir = tempfile::tempdir().unwrap();
        let ca = TlsCa::create(dir.path()).unwrap();
        ca.issue_client("other", &Grant::role(Role::Auditor))
            .unwrap();
        std::fs::remove_file(dir.path().join("ca.key")).unwrap();
        std::fs::copy(dir.path().join("other.key"), dir.path().join("ca.key")).unwrap();
        let err = TlsCa::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("does not belong"), "{err}");
    }
}
