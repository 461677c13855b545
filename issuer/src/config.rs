//! The issuer's configuration: a TOML file read at start-up, and the PKI
//! material it points at.
//!
//! The file and the key files are trusted (they come from the operator), but
//! they are still checked: unknown keys and out-of-range values are refused
//! at start-up rather than discovered by a request. Relative paths are taken
//! from the working directory. `issuer.example.toml` lists every key.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use chipward_certs::chain::{ChainError, TrustAnchor};
use chipward_certs::keys::{Ed25519Key, KeyError, key_id_for};
use chipward_certs::pem::{self, PemError};
use chipward_proto::cose::TrustedKeys;
use serde::Deserialize;
use thiserror::Error;

use crate::compliance::CompliancePolicy;
use crate::ledger::{LedgerLocation, PostgresOptions};
use crate::rate_limits::{RateLimitSettings, RateLimitsConfig};

/// The vendor root file in the PKI folder.
pub const VENDOR_ROOT_FILE: &str = "vendor-root.pem";
/// The token-signing key file in the PKI folder.
pub const TOKEN_KEY_FILE: &str = "issuer-token.key";
/// The verifier's result key, trusted when no other keys are listed.
pub const VERIFIER_KEY_FILE: &str = "verifier-result.pub";

/// Longest lifetime, backdate or look-ahead the configuration may allow:
/// ten years, in seconds.
const MAX_CONFIGURED_SPAN: u64 = 10 * 365 * 86_400;
/// Longest a host enrolment may wait for its credential: one day, in
/// seconds.
const MAX_HOST_ENROLMENT_TTL: i64 = 86_400;
/// Longest grace period a stop may give the calls in flight: one hour, in
/// seconds.
const MAX_SHUTDOWN_GRACE_SECS: u64 = 3_600;

/// The configuration file, as written. Every key is optional.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct IssuerConfig {
    /// Address the gRPC server listens on. Default `127.0.0.1:7401`.
    pub listen: SocketAddr,
    /// Loopback address (host:port) of the Prometheus metrics endpoint,
    /// plain HTTP `GET /metrics`. Default none: no metrics endpoint. A
    /// non-loopback address is refused at start-up.
    pub metrics_listen: Option<SocketAddr>,
    /// The ledger: a SQLite file path (created if missing), or a
    /// `postgres://user@127.0.0.1:5432/db` URL of an existing database on
    /// this machine; see [`LedgerLocation`]. Default
    /// `./chipward-issuer.sqlite`.
    pub database: LedgerLocation,
    /// Most connections the issuer keeps open to a PostgreSQL ledger.
    /// Default 8; 1 to 100. Unused with SQLite.
    pub database_connections: u64,
    /// Folder holding `vendor-root.pem` and `issuer-token.key` (and, unless
    /// `trusted_verifier_keys` is set, `verifier-result.pub`). Default `./pki`.
    pub pki_dir: PathBuf,
    /// PEM Ed25519 public keys whose attestation results renewals accept.
    /// Default empty, meaning `<pki_dir>/verifier-result.pub`.
    pub trusted_verifier_keys: Vec<PathBuf>,
    /// The `iss` claim of every token. Default `chipward-issuer`.
    pub issuer_name: String,
    /// The `aud` claim of every token. Default `chipward-verifier`.
    pub audience: String,
    /// Lifetime of a license when a request asks for 0, in seconds.
    /// Default 86400 (one day).
    pub default_lifetime_secs: u64,
    /// Longest lifetime a request may ask for, in seconds. Default 2592000
    /// (30 days).
    pub max_lifetime_secs: u64,
    /// How far before now a license's `not_before` may lie, in seconds.
    /// Default 2592000 (30 days).
    pub max_backdate_secs: u64,
    /// How far after now a license's `not_before` may lie, in seconds.
    /// Default 86400 (one day).
    pub max_future_start_secs: u64,
    /// Oldest attestation result a renewal accepts, in seconds since its
    /// `appraised_at`. Default 300.
    pub renewal_max_result_age_secs: u64,
    /// Oldest attestation result `RecordResult` accepts, in seconds since
    /// its `appraised_at`. Default 3600.
    pub record_max_result_age_secs: u64,
    /// How far in the future an attestation result's `appraised_at` may lie,
    /// for clocks that disagree, in seconds. Default 60.
    pub clock_skew_secs: u64,
    /// Largest gRPC request the server decodes, in bytes. Default 1048576
    /// (1 MiB).
    pub max_message_bytes: u64,
    /// How long a stop (SIGINT or SIGTERM) waits for the calls in flight,
    /// in seconds; calls still open then are cut. Default 20; at most
    /// 3600.
    pub shutdown_grace_secs: u64,
    /// PEM files of TPM manufacturer CA certificates that host EK
    /// certificate chains must reach; each file may hold several
    /// certificates, every one of which becomes a trust anchor. Default
    /// empty, which refuses every host enrolment.
    pub tpm_roots: Vec<PathBuf>,
    /// How long a begun host enrolment waits for its credential, in seconds.
    /// Default 300; at most 86400.
    pub host_enrolment_ttl_secs: u64,
    /// Lifetime of an AK binding, in seconds. Default 2592000 (30 days).
    pub ak_binding_lifetime_secs: u64,
    /// The compliance policy file: model classifications and license tiers
    /// (see `compliance.example.toml`). Default none: no classification or
    /// tier is enforced.
    pub compliance_policy: Option<PathBuf>,
    /// A restricted-party list in the US Consolidated Screening List format
    /// (`.json` or `.csv`), loaded at start. Default none: nothing is
    /// screened until a list is loaded over gRPC.
    pub screening_list: Option<PathBuf>,
    /// The list's label in decisions and the log. Default `CSL`.
    pub screening_list_label: String,
    /// The list's publication date, `YYYY-MM-DD`; required with
    /// `screening_list`.
    pub screening_list_date: String,
    /// CA certificate (PEM) every client certificate must chain to.
    /// Default `./pki/tls/ca.pem`.
    pub tls_ca: PathBuf,
    /// The issuer's server certificate (PEM). Default `./pki/tls/issuer.pem`.
    pub tls_cert: PathBuf,
    /// Its private key (PKCS#8 PEM). Default `./pki/tls/issuer.key`.
    pub tls_key: PathBuf,
    /// Budgets per client and per chip or host (`[rate_limits]`); see
    /// [`RateLimitsConfig`] for each key and its default.
    pub rate_limits: RateLimitsConfig,
}

impl Default for IssuerConfig {
    fn default() -> Self {
        let settings = IssuerSettings::default();
        let secs = |s: i64| u64::try_from(s).unwrap_or(0);
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 7401)),
            metrics_listen: None,
            database: LedgerLocation::Sqlite(PathBuf::from("./chipward-issuer.sqlite")),
            database_connections: PostgresOptions::default().max_connections as u64,
            pki_dir: PathBuf::from("./pki"),
            trusted_verifier_keys: Vec::new(),
            issuer_name: settings.issuer_name,
            audience: settings.audience,
            default_lifetime_secs: secs(settings.default_lifetime_secs),
            max_lifetime_secs: secs(settings.max_lifetime_secs),
            max_backdate_secs: secs(settings.max_backdate_secs),
            max_future_start_secs: secs(settings.max_future_start_secs),
            renewal_max_result_age_secs: secs(settings.renewal_max_result_age_secs),
            record_max_result_age_secs: secs(settings.record_max_result_age_secs),
            clock_skew_secs: secs(settings.clock_skew_secs),
            max_message_bytes: settings.max_message_bytes as u64,
            shutdown_grace_secs: 20,
            tpm_roots: Vec::new(),
            host_enrolment_ttl_secs: secs(settings.host_enrolment_ttl_secs),
            ak_binding_lifetime_secs: secs(settings.ak_binding_lifetime_secs),
            compliance_policy: None,
            screening_list: None,
            screening_list_label: "CSL".into(),
            screening_list_date: String::new(),
            tls_ca: PathBuf::from("./pki/tls/ca.pem"),
            tls_cert: PathBuf::from("./pki/tls/issuer.pem"),
            tls_key: PathBuf::from("./pki/tls/issuer.key"),
            rate_limits: RateLimitsConfig::default(),
        }
    }
}

/// What the service needs to know at run time, checked and in the units it
/// computes with. Build one with [`IssuerConfig::settings`] or start from
/// [`IssuerSettings::default`]; the field docs of [`IssuerConfig`] give the
/// meaning of each value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerSettings {
    /// The `iss` claim. Default `chipward-issuer`.
    pub issuer_name: String,
    /// The `aud` claim. Default `chipward-verifier`.
    pub audience: String,
    /// Seconds; default 86400.
    pub default_lifetime_secs: i64,
    /// Seconds; default 2592000.
    pub max_lifetime_secs: i64,
    /// Seconds; default 2592000.
    pub max_backdate_secs: i64,
    /// Seconds; default 86400.
    pub max_future_start_secs: i64,
    /// Seconds; default 300.
    pub renewal_max_result_age_secs: i64,
    /// Seconds; default 3600.
    pub record_max_result_age_secs: i64,
    /// Seconds; default 60.
    pub clock_skew_secs: i64,
    /// Bytes; default 1048576.
    pub max_message_bytes: usize,
    /// Seconds; default 300, at most 86400.
    pub host_enrolment_ttl_secs: i64,
    /// Seconds; default 2592000.
    pub ak_binding_lifetime_secs: i64,
    /// Budgets per client and per chip or host.
    pub rate_limits: RateLimitSettings,
}

impl Default for IssuerSettings {
    fn default() -> Self {
        Self {
            issuer_name: "chipward-issuer".into(),
            audience: "chipward-verifier".into(),
            default_lifetime_secs: 86_400,
            max_lifetime_secs: 30 * 86_400,
            max_backdate_secs: 30 * 86_400,
            max_future_start_secs: 86_400,
            renewal_max_result_age_secs: 300,
            record_max_result_age_secs: 3600,
            clock_skew_secs: 60,
            max_message_bytes: 1024 * 1024,
            host_enrolment_ttl_secs: 300,
            ak_binding_lifetime_secs: 30 * 86_400,
            rate_limits: RateLimitSettings::default(),
        }
    }
}

/// The keys and anchor the service signs and checks with.
#[derive(Debug)]
pub struct PkiMaterial {
    /// Signs license tokens and revocation lists.
    pub token_key: Ed25519Key,
    /// The vendor root that chip chains must end at.
    pub anchor: TrustAnchor,
    /// Verifier keys whose attestation results renewals accept.
    pub verifier_keys: TrustedKeys,
}

/// Why the configuration could not be used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The compliance policy file is refused.
    #[error("compliance policy {} refused", path.display())]
    Policy {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: crate::compliance::PolicyError,
    },
    /// The configuration file is not valid TOML for [`IssuerConfig`].
    #[error("cannot parse {}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where and why.
        #[source]
        source: toml::de::Error,
    },
    /// A value is out of its allowed range.
    #[error("{key}: {reason}")]
    Invalid {
        /// The configuration key.
        key: &'static str,
        /// What is allowed.
        reason: &'static str,
    },
    /// A PEM file is malformed.
    #[error("{} is not valid pem", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: PemError,
    },
    /// The vendor root file does not hold exactly one certificate.
    #[error("{} holds {count} certificates, expected one", path.display())]
    RootCount {
        /// The file.
        path: PathBuf,
        /// How many it holds.
        count: usize,
    },
    /// The vendor root cannot serve as a trust anchor.
    #[error("{} is not a usable trust anchor", path.display())]
    Anchor {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: ChainError,
    },
    /// The token key is not an Ed25519 PKCS#8 key.
    #[error("{} is not an ed25519 private key", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: KeyError,
    },
}

impl IssuerConfig {
    /// Reads and parses a configuration file; see [`Self::settings`] for the
    /// range checks.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = read(path)?;
        Self::parse(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Parses configuration text.
    pub fn parse(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// The run-time settings, after checking every range.
    pub fn settings(&self) -> Result<IssuerSettings, ConfigError> {
        let span = |key, value: u64| {
            if value > MAX_CONFIGURED_SPAN {
                return Err(ConfigError::Invalid {
                    key,
                    reason: "must be at most ten years",
                });
            }
            i64::try_from(value).map_err(|_| ConfigError::Invalid {
                key,
                reason: "out of range",
            })
        };
        let settings = IssuerSettings {
            issuer_name: self.issuer_name.clone(),
            audience: self.audience.clone(),
            default_lifetime_secs: span("default_lifetime_secs", self.default_lifetime_secs)?,
            max_lifetime_secs: span("max_lifetime_secs", self.max_lifetime_secs)?,
            max_backdate_secs: span("max_backdate_secs", self.max_backdate_secs)?,
            max_future_start_secs: span("max_future_start_secs", self.max_future_start_secs)?,
            renewal_max_result_age_secs: span(
                "renewal_max_result_age_secs",
                self.renewal_max_result_age_secs,
            )?,
            record_max_result_age_secs: span(
                "record_max_result_age_secs",
                self.record_max_result_age_secs,
            )?,
            clock_skew_secs: span("clock_skew_secs", self.clock_skew_secs)?,
            max_message_bytes: usize::try_from(self.max_message_bytes).map_err(|_| {
                ConfigError::Invalid {
                    key: "max_message_bytes",
                    reason: "out of range",
                }
            })?,
            host_enrolment_ttl_secs: span("host_enrolment_ttl_secs", self.host_enrolment_ttl_secs)?,
            ak_binding_lifetime_secs: span(
                "ak_binding_lifetime_secs",
                self.ak_binding_lifetime_secs,
            )?,
            rate_limits: self.rate_limits.settings()?,
        };
        settings.check()?;
        Ok(settings)
    }

    /// How long a stop waits for the calls in flight, after checking the
    /// range.
    pub fn shutdown_grace(&self) -> Result<std::time::Duration, ConfigError> {
        if self.shutdown_grace_secs > MAX_SHUTDOWN_GRACE_SECS {
            return Err(ConfigError::Invalid {
                key: "shutdown_grace_secs",
                reason: "must be at most 3600",
            });
        }
        Ok(std::time::Duration::from_secs(self.shutdown_grace_secs))
    }

    /// How a PostgreSQL ledger connects, after checking the range.
    pub fn postgres_options(&self) -> Result<PostgresOptions, ConfigError> {
        if !(1..=100).contains(&self.database_connections) {
            return Err(ConfigError::Invalid {
                key: "database_connections",
                reason: "must be 1 to 100",
            });
        }
        Ok(PostgresOptions {
            max_connections: usize::try_from(self.database_connections).unwrap_or(1),
            ..PostgresOptions::default()
        })
    }

    /// Reads the vendor root, the token key and the trusted verifier keys.
    pub fn load_pki(&self) -> Result<PkiMaterial, ConfigError> {
        let root_path = self.pki_dir.join(VENDOR_ROOT_FILE);
        let certs =
            pem::parse_certificates(&read(&root_path)?).map_err(|source| ConfigError::Pem {
                path: root_path.clone(),
                source,
            })?;
        let [root] = certs.as_slice() else {
            return Err(ConfigError::RootCount {
                path: root_path,
                count: certs.len(),
            });
        };
        let anchor = TrustAnchor::from_der(root).map_err(|source| ConfigError::Anchor {
            path: root_path.clone(),
            source,
        })?;

        let key_path = self.pki_dir.join(TOKEN_KEY_FILE);
        let der = pem::parse_private_key(&read(&key_path)?).map_err(|source| ConfigError::Pem {
            path: key_path.clone(),
            source,
        })?;
        let token_key = Ed25519Key::from_pkcs8_der(&der).map_err(|source| ConfigError::Key {
            path: key_path,
            source,
        })?;

        let verifier_keys = self.load_verifier_keys()?;
        Ok(PkiMaterial {
            token_key,
            anchor,
            verifier_keys,
        })
    }

    /// The TLS files the issuer serves with.
    pub fn tls_files(&self) -> chipward_proto::tls::TlsFiles {
        chipward_proto::tls::TlsFiles {
            ca: self.tls_ca.clone(),
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
        }
    }

    /// Reads every certificate in every `tpm_roots` file as a trust anchor
    /// for host EK certificate chains, in file order.
    pub fn load_tpm_roots(&self) -> Result<Vec<TrustAnchor>, ConfigError> {
        let mut anchors = Vec::new();
        for path in &self.tpm_roots {
            let certs =
                pem::parse_certificates(&read(path)?).map_err(|source| ConfigError::Pem {
                    path: path.clone(),
                    source,
                })?;
            for der in certs {
                let anchor = TrustAnchor::from_der(&der).map_err(|source| ConfigError::Anchor {
                    path: path.clone(),
                    source,
                })?;
                anchors.push(anchor);
            }
        }
        Ok(anchors)
    }

    /// Reads the compliance policy, if one is configured, with the SHA-256
    /// of its file (logged with every decision it shapes).
    pub fn load_compliance(&self) -> Result<Option<(CompliancePolicy, [u8; 32])>, ConfigError> {
        let Some(path) = &self.compliance_policy else {
            return Ok(None);
        };
        let text = read(path)?;
        let policy = CompliancePolicy::from_toml(&text).map_err(|source| ConfigError::Policy {
            path: path.clone(),
            source,
        })?;
        Ok(Some((
            policy,
            chipward_certs::keys::sha256(text.as_bytes()),
        )))
    }

    /// The configured screening list: its bytes and format (`json` or
    /// `csv`, from the file's extension), if one is set.
    pub fn load_screening_list(&self) -> Result<Option<(Vec<u8>, &'static str)>, ConfigError> {
        let Some(path) = &self.screening_list else {
            return Ok(None);
        };
        let format = match path.extension().and_then(|e| e.to_str()) {
            Some("json") => "json",
            Some("csv") => "csv",
            _ => {
                return Err(ConfigError::Invalid {
                    key: "screening_list",
                    reason: "must be a .json or .csv file",
                });
            }
        };
        if self.screening_list_date.is_empty() {
            return Err(ConfigError::Invalid {
                key: "screening_list_date",
                reason: "is required with screening_list",
            });
        }
        let bytes = fs::read(path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        Ok(Some((bytes, format)))
    }

    fn load_verifier_keys(&self) -> Result<TrustedKeys, ConfigError> {
        let default = [self.pki_dir.join(VERIFIER_KEY_FILE)];
        let paths = if self.trusted_verifier_keys.is_empty() {
            &default[..]
        } else {
            &self.trusted_verifier_keys[..]
        };
        let mut keys = TrustedKeys::new();
        for path in paths {
            let public =
                pem::parse_ed25519_public(&read(path)?).map_err(|source| ConfigError::Pem {
                    path: path.clone(),
                    source,
                })?;
            keys = keys.with(key_id_for(&public), public);
        }
        Ok(keys)
    }
}

impl IssuerSettings {
    /// Checks that the values make sense together.
    pub fn check(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason| Err(ConfigError::Invalid { key, reason });
        if self.issuer_name.is_empty() || self.issuer_name.len() > 256 {
            return invalid("issuer_name", "must be 1 to 256 bytes");
        }
        if self.audience.is_empty() || self.audience.len() > 256 {
            return invalid("audience", "must be 1 to 256 bytes");
        }
        if self.max_lifetime_secs < 1 {
            return invalid("max_lifetime_secs", "must be at least 1");
        }
        if !(1..=self.max_lifetime_secs).contains(&self.default_lifetime_secs) {
            return invalid("default_lifetime_secs", "must be 1 to max_lifetime_secs");
        }
        if self.record_max_result_age_secs < 1 {
            return invalid("record_max_result_age_secs", "must be at least 1");
        }
        if self.renewal_max_result_age_secs < 1 {
            return invalid("renewal_max_result_age_secs", "must be at least 1");
        }
        if !(4096..=64 * 1024 * 1024).contains(&self.max_message_bytes) {
            return invalid("max_message_bytes", "must be 4096 to 67108864");
        }
        if !(1..=MAX_HOST_ENROLMENT_TTL).contains(&self.host_enrolment_ttl_secs) {
            return invalid("host_enrolment_ttl_secs", "must be 1 to 86400");
        }
        if self.ak_binding_lifetime_secs < 1 {
            return invalid("ak_binding_lifetime_secs", "must be at least 1");
        }
        let spans = [
            ("max_backdate_secs", self.max_backdate_secs),
            ("max_future_start_secs", self.max_future_start_secs),
            ("clock_skew_secs", self.clock_skew_secs),
        ];
        if let Some((key, _)) = spans.iter().find(|(_, s)| *s < 0) {
            return invalid(key, "must not be negative");
        }
        Ok(())
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use chipward_certs::pki::DevPki;

    use super::*;

    #[test]
    fn an_empty_file_gives_the_documented_defaults() {
        let config = IssuerConfig::parse("").unwrap();
        assert_eq!(config.listen, "127.0.0.1:7401".parse().unwrap());
        assert_eq!(config.metrics_listen, None);
        assert_eq!(
            config.database,
            LedgerLocation::Sqlite(PathBuf::from("./chipward-issuer.sqlite"))
        );
        assert_eq!(config.postgres_options().unwrap().max_connections, 8);
        assert_eq!(config.pki_dir, PathBuf::from("./pki"));
        assert!(config.trusted_verifier_keys.is_empty());
        let s = config.settings().unwrap();
        assert_eq!(s.issuer_name, "chipward-issuer");
        assert_eq!(s.audience, "chipward-verifier");
        assert_eq!(s.default_lifetime_secs, 86_400);
        assert_eq!(s.max_lifetime_secs, 2_592_000);
        assert_eq!(s.max_backdate_secs, 2_592_000);
        assert_eq!(s.max_future_start_secs, 86_400);
        assert_eq!(s.renewal_max_result_age_secs, 300);
        assert_eq!(s.clock_skew_secs, 60);
        assert_eq!(s.max_message_bytes, 1_048_576);
        assert!(config.tpm_roots.is_empty());
        assert_eq!(s.host_enrolment_ttl_secs, 300);
        assert_eq!(s.ak_binding_lifetime_secs, 2_592_000);
    }

    #[test]
    fn reads_overrides() {
        let config = IssuerConfig::parse(
            "listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:9401\"\nissuer_name = \"vendor\"\nmax_lifetime_secs = 7200\n\
             default_lifetime_secs = 3600\ntrusted_verifier_keys = [\"a.pub\", \"b.pub\"]\n",
        )
        .unwrap();
        let s = config.settings().unwrap();
        assert_eq!(config.listen.port(), 0);
        assert_eq!(
            config.metrics_listen,
            Some("127.0.0.1:9401".parse().unwrap())
        );
        assert_eq!(s.issuer_name, "vendor");
        assert_eq!((s.default_lifetime_secs, s.max_lifetime_secs), (3600, 7200));
        assert_eq!(config.trusted_verifier_keys.len(), 2);
    }

    #[test]
    fn reads_sqlite_paths_and_postgres_urls_as_the_database() {
        let sqlite = IssuerConfig::parse("database = \"/var/lib/cw/ledger.sqlite\"").unwrap();
        assert_eq!(
            sqlite.database,
            LedgerLocation::Sqlite(PathBuf::from("/var/lib/cw/ledger.sqlite"))
        );
        let url = "postgres://issuer@127.0.0.1:5432/chipward";
        let pg = IssuerConfig::parse(&format!("database = \"{url}\"\ndatabase_connections = 3"))
            .unwrap();
        assert_eq!(pg.database, LedgerLocation::Postgres(url.parse().unwrap()));
        assert_eq!(pg.postgres_options().unwrap().max_connections, 3);

        let remote = IssuerConfig::parse("database = \"postgres://issuer@192.0.2.9/cw\"");
        let err = remote.unwrap_err().to_string();
        assert!(err.contains("not loopback"), "{err}");
        for count in [0, 101] {
            let config = IssuerConfig::parse(&format!("database_connections = {count}")).unwrap();
            let err = config.postgres_options().unwrap_err();
            assert!(
                matches!(
                    err,
                    ConfigError::Invalid {
                        key: "database_connections",
                        ..
                    }
                ),
                "{count}: {err:?}"
            );
        }
    }

    #[test]
    fn reads_rate_limits_and_refuses_unknown_ones() {
        use crate::rate_limits::Limit;

        let config = IssuerConfig::parse(
            "[rate_limits]\nmax_tracked_keys = 500\n\
             renew_per_chip = { burst = 2, interval_ms = 30000 }\n",
        )
        .unwrap();
        let limits = config.settings().unwrap().rate_limits;
        assert_eq!(limits.max_tracked_keys, 500);
        let renew = limits.rate(Limit::RenewPerChip);
        assert_eq!(
            (renew.burst(), renew.interval()),
            (2, std::time::Duration::from_secs(30))
        );
        assert_eq!(
            limits.rate(Limit::EnrolChipPerChip),
            RateLimitSettings::default().rate(Limit::EnrolChipPerChip)
        );

        assert!(
            IssuerConfig::parse("[rate_limits]\nrenew_per_chips = { burst = 1, interval_ms = 1 }")
                .is_err()
        );
        assert!(
            IssuerConfig::parse("[rate_limits]\nrenew_per_chip = { interval_ms = 1 }").is_err()
        );
        let zero =
            IssuerConfig::parse("[rate_limits]\nrenew_per_chip = { burst = 0, interval_ms = 1 }")
                .unwrap();
        assert!(matches!(
            zero.settings().unwrap_err(),
            ConfigError::Invalid {
                key: "rate_limits.renew_per_chip",
                ..
            }
        ));
    }

    #[test]
    fn reads_the_shutdown_grace_period_and_refuses_more_than_an_hour() {
        let default = IssuerConfig::parse("").unwrap().shutdown_grace().unwrap();
        assert_eq!(default, std::time::Duration::from_secs(20));
        for (secs, expected) in [(0, Some(0)), (3600, Some(3600)), (3601, None)] {
            let config = IssuerConfig::parse(&format!("shutdown_grace_secs = {secs}")).unwrap();
            let grace = config.shutdown_grace();
            match expected {
                Some(s) => assert_eq!(grace.unwrap(), std::time::Duration::from_secs(s)),
                None => assert!(matches!(
                    grace.unwrap_err(),
                    ConfigError::Invalid {
                        key: "shutdown_grace_secs",
                        ..
                    }
                )),
            }
        }
    }

    #[test]
    fn refuses_unknown_keys_and_negative_spans() {
        assert!(IssuerConfig::parse("lisen = \"127.0.0.1:1\"").is_err());
        assert!(IssuerConfig::parse("clock_skew_secs = -1").is_err());
    }

    #[test]
    fn refuses_inconsistent_values() {
        let cases = [
            (
                "default_lifetime_secs = 100\nmax_lifetime_secs = 50",
                "default_lifetime_secs",
            ),
            ("default_lifetime_secs = 0", "default_lifetime_secs"),
            ("max_lifetime_secs = 0", "max_lifetime_secs"),
            ("max_backdate_secs = 999999999999", "max_backdate_secs"),
            ("max_message_bytes = 10", "max_message_bytes"),
            (
                "renewal_max_result_age_secs = 0",
                "renewal_max_result_age_secs",
            ),
            ("issuer_name = \"\"", "issuer_name"),
            ("audience = \"\"", "audience"),
            ("clock_skew_secs = 999999999999", "clock_skew_secs"),
            ("host_enrolment_ttl_secs = 0", "host_enrolment_ttl_secs"),
            ("host_enrolment_ttl_secs = 86401", "host_enrolment_ttl_secs"),
            ("ak_binding_lifetime_secs = 0", "ak_binding_lifetime_secs"),
            (
                "ak_binding_lifetime_secs = 999999999999",
                "ak_binding_lifetime_secs",
            ),
        ];
        for (text, key) in cases {
            let err = IssuerConfig::parse(text).unwrap().settings().unwrap_err();
            assert!(
                matches!(err, ConfigError::Invalid { key: k, .. } if k == key),
                "{text}: {err:?}"
            );
        }
    }

    #[test]
    fn settings_refuse_negative_spans() {
        for key in [
            "max_backdate_secs",
            "max_future_start_secs",
            "clock_skew_secs",
        ] {
            let mut s = IssuerSettings::default();
            match key {
                "max_backdate_secs" => s.max_backdate_secs = -1,
                "max_future_start_secs" => s.max_future_start_secs = -1,
                _ => s.clock_skew_secs = -1,
            }
            let err = s.check().unwrap_err();
            assert!(
                matches!(err, ConfigError::Invalid { key: k, .. } if k == key),
                "{err:?}"
            );
        }
        assert!(IssuerSettings::default().check().is_ok());
    }

    #[test]
    fn loads_the_pki_files_of_a_dev_pki() {
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::create(&dir.path().join("pki"), "CW-100").unwrap();
        let config = IssuerConfig {
            pki_dir: dir.path().join("pki"),
            ..IssuerConfig::default()
        };
        let material = config.load_pki().unwrap();
        assert_eq!(
            material.token_key.public_key(),
            pki.issuer_token_key.public_key()
        );
        assert_eq!(material.anchor.der(), pki.root_cert_der());

        // The default verifier key is trusted: a result it signs verifies.
        let signed = sample_result().sign(&pki.verifier_result_key.key_id(), |m| {
            pki.verifier_result_key.sign(m)
        });
        assert!(chipward_proto::result::verify(&signed, &material.verifier_keys).is_ok());
    }

    #[test]
    fn an_explicit_key_list_replaces_the_default_verifier_key() {
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::create(&dir.path().join("pki"), "CW-100").unwrap();
        let other = Ed25519Key::generate().unwrap();
        let other_path = dir.path().join("other.pub");
        fs::write(&other_path, pem::ed25519_public_to_pem(&other.public_key())).unwrap();
        let config = IssuerConfig {
            pki_dir: dir.path().join("pki"),
            trusted_verifier_keys: vec![other_path],
            ..IssuerConfig::default()
        };
        let keys = config.load_pki().unwrap().verifier_keys;

        let by_other = sample_result().sign(&other.key_id(), |m| other.sign(m));
        let by_default = sample_result().sign(&pki.verifier_result_key.key_id(), |m| {
            pki.verifier_result_key.sign(m)
        });
        assert!(chipward_proto::result::verify(&by_other, &keys).is_ok());
        assert!(chipward_proto::result::verify(&by_default, &keys).is_err());
    }

    #[test]
    fn names_the_file_that_is_missing_or_malformed() {
        let dir = tempfile::tempdir().unwrap();
        DevPki::create(&dir.path().join("pki"), "CW-100").unwrap();
        let config = IssuerConfig {
            pki_dir: dir.path().join("pki"),
            ..IssuerConfig::default()
        };

        fs::write(dir.path().join("pki").join(TOKEN_KEY_FILE), "not pem").unwrap();
        let err = config.load_pki().unwrap_err();
        assert!(
            matches!(&err, ConfigError::Pem { path, .. } if path.ends_with(TOKEN_KEY_FILE)),
            "{err:?}"
        );

        fs::remove_file(dir.path().join("pki").join(VENDOR_ROOT_FILE)).unwrap();
        let err = config.load_pki().unwrap_err();
        assert!(
            matches!(&err, ConfigError::Read { path, .. } if path.ends_with(VENDOR_ROOT_FILE)),
            "{err:?}"
        );

        let missing = IssuerConfig::load(&dir.path().join("nope.toml")).unwrap_err();
        assert!(matches!(missing, ConfigError::Read { .. }), "{missing:?}");
        fs::write(dir.path().join("bad.toml"), "listen = 5").unwrap();
        let bad = IssuerConfig::load(&dir.path().join("bad.toml")).unwrap_err();
        assert!(matches!(bad, ConfigError::Parse { .. }), "{bad:?}");
    }

    #[test]
    fn refuses_a_root_file_with_two_certificates_or_a_non_ca() {
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::create(&dir.path().join("pki"), "CW-100").unwrap();
        let config = IssuerConfig {
            pki_dir: dir.path().join("pki"),
            ..IssuerConfig::default()
        };
        let root_path = dir.path().join("pki").join(VENDOR_ROOT_FILE);

        let two = pem::certificate_to_pem(pki.root_cert_der())
            + &pem::certificate_to_pem(&pki.chip_ca.cert_der);
        fs::write(&root_path, two).unwrap();
        let err = config.load_pki().unwrap_err();
        assert!(
            matches!(err, ConfigError::RootCount { count: 2, .. }),
            "{err:?}"
        );

        let alias_key = chipward_certs::keys::P384Key::generate().unwrap();
        let alias = pki
            .chip_ca
            .issue_alias(&alias_key.public_key_spki_der(), "CW-100", "1.0.0")
            .unwrap();
        fs::write(&root_path, pem::certificate_to_pem(&alias)).unwrap();
        let err = config.load_pki().unwrap_err();
        assert!(matches!(err, ConfigError::Anchor { .. }), "{err:?}");
    }

    #[test]
    fn refuses_a_token_key_that_is_not_ed25519() {
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::create(&dir.path().join("pki"), "CW-100").unwrap();
        let config = IssuerConfig {
            pki_dir: dir.path().join("pki"),
            ..IssuerConfig::default()
        };
        let key_path = dir.path().join("pki").join(TOKEN_KEY_FILE);
        fs::remove_file(&key_path).unwrap();
        chipward_certs::keys::write_private_key_file(
            &key_path,
            "PRIVATE KEY",
            pki.root.key.pkcs8_der(),
        )
        .unwrap();
        let err = config.load_pki().unwrap_err();
        assert!(matches!(err, ConfigError::Key { .. }), "{err:?}");
    }

    #[test]
    fn loads_every_certificate_of_every_tpm_root_file() {
        let dir = tempfile::tempdir().unwrap();
        let one = DevPki::create(&dir.path().join("one"), "CW-100").unwrap();
        let two = DevPki::create(&dir.path().join("two"), "CW-200").unwrap();
        let both = dir.path().join("both.pem");
        let single = dir.path().join("single.pem");
        fs::write(
            &both,
            pem::certificate_to_pem(one.root_cert_der())
                + &pem::certificate_to_pem(&one.chip_ca.cert_der),
        )
        .unwrap();
        fs::write(&single, pem::certificate_to_pem(two.root_cert_der())).unwrap();

        let config = IssuerConfig::parse(&format!(
            "tpm_roots = [{:?}, {:?}]",
            both.display(),
            single.display()
        ))
        .unwrap();
        let anchors = config.load_tpm_roots().unwrap();
        let ders: Vec<&[u8]> = anchors.iter().map(TrustAnchor::der).collect();
        assert_eq!(
            ders,
            [
                one.root_cert_der(),
                &one.chip_ca.cert_der[..],
                two.root_cert_der()
            ]
        );
        assert!(IssuerConfig::default().load_tpm_roots().unwrap().is_empty());
    }

    #[test]
    fn names_the_tpm_root_file_that_is_missing_empty_or_not_a_ca() {
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::create(&dir.path().join("pki"), "CW-100").unwrap();
        let with = |path: &Path| IssuerConfig {
            tpm_roots: vec![path.to_path_buf()],
            ..IssuerConfig::default()
        };

        let missing = dir.path().join("missing.pem");
        let err = with(&missing).load_tpm_roots().unwrap_err();
        assert!(
            matches!(err, ConfigError::Read { ref path, .. } if *path == missing),
            "{err:?}"
        );

        let empty = dir.path().join("empty.pem");
        fs::write(&empty, "").unwrap();
        let err = with(&empty).load_tpm_roots().unwrap_err();
        assert!(
            matches!(err, ConfigError::Pem { ref path, .. } if *path == empty),
            "{err:?}"
        );

        let alias_key = chipward_certs::keys::P384Key::generate().unwrap();
        let alias = pki
            .chip_ca
            .issue_alias(&alias_key.public_key_spki_der(), "CW-100", "1.0.0")
            .unwrap();
        let leaf = dir.path().join("leaf.pem");
        fs::write(&leaf, pem::certificate_to_pem(&alias)).unwrap();
        let err = with(&leaf).load_tpm_roots().unwrap_err();
        assert!(
            matches!(err, ConfigError::Anchor { ref path, .. } if *path == leaf),
            "{err:?}"
        );
    }

    fn sample_result() -> chipward_proto::result::AttestationResult {
        use chipward_proto::result::{AttestationResult, Status};
        AttestationResult {
            appraised_at: 0,
            chip_id: String::new(),
            model: String::new(),
            tenant: String::new(),
            site_id: String::new(),
            token_id: String::new(),
            evidence_sha256: String::new(),
            measurements: vec![],
            claims: vec![],
            verdict: Status::Unknown,
            location: None,
        }
    }
}
