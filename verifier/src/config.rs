//! The verifier's configuration file (TOML). Every key is optional; the
//! defaults below suit a single replica on one machine next to the issuer.
//! The file is operator-supplied; unknown keys are refused so a typo is not
//! silently ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chipward_certs::chain::ChainPolicy;
use chipward_certs::keys::{Ed25519Key, key_id_for};
use chipward_certs::pem;
use chipward_proto::cose::TrustedKeys;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::appraisal::{AppraisalSettings, Appraiser};
use crate::challenge::{Challenges, NonceKey};
use crate::evidence::roots::Roots;
use crate::evidence::tpm::host::HostPolicy;
use crate::location::records::Landmarks;
use crate::policy::reference::ReferenceValues;
use crate::rate_limits::RateLimitsConfig;
use crate::revocation::RevocationCache;

/// Longest grace period a stop may give the calls in flight: one hour, in
/// seconds.
const MAX_SHUTDOWN_GRACE_SECS: u64 = 3_600;

/// Verifier settings, as read from the file.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct VerifierConfig {
    /// Address to listen on. Default `127.0.0.1:7402`.
    pub listen: SocketAddr,
    /// Loopback address (host:port) of the Prometheus metrics endpoint,
    /// plain HTTP `GET /metrics`. Default none: no metrics endpoint. A
    /// non-loopback address is refused at start-up.
    pub metrics_listen: Option<SocketAddr>,
    /// Folder made by `chipward-pki init`: reads `verifier-result.key`,
    /// `issuer-token.pub` and `vendor-root.pem`. Default `./pki`.
    pub pki_dir: PathBuf,
    /// More trusted vendor roots (PEM files), for example NVIDIA's device
    /// root. Default none.
    pub extra_roots: Vec<PathBuf>,
    /// Reference values file (see `policy::reference`). Default none: every
    /// measurement claim is unknown.
    pub reference_values: Option<PathBuf>,
    /// Host TPM policy file: the tenant PCR and approved values of firmware
    /// PCRs (see `evidence::tpm::host`). Default none: tenant in PCR 16 and
    /// every host.firmware claim unknown.
    pub host_reference_values: Option<PathBuf>,
    /// Enrolled landmarks (`[[landmark]]` tables of `id`, `latitude`,
    /// `longitude` in degrees and `public_key`, the 32-byte Ed25519 key in
    /// hex). Default none: landmark records are refused.
    pub landmarks: Option<PathBuf>,
    /// Oldest landmark record accepted, milliseconds. Default 60000.
    pub landmark_record_max_age_ms: i64,
    /// Whether every appraisal must carry landmark records: without them
    /// the `location` claim is unknown (`CW-LOC-MISSING`) and the verdict
    /// cannot pass. Default false.
    pub require_location: bool,
    /// The issuer's gRPC address, for revocation lists, reached over mutual
    /// TLS (an `http://` scheme is taken as `https://`). Default
    /// `https://127.0.0.1:7401`.
    pub issuer_endpoint: String,
    /// How often to fetch the revocation list, milliseconds. Default 5000;
    /// values below 100 count as 100.
    pub revocation_refresh_ms: u64,
    /// Age past which the list is stale and revocation claims are unknown,
    /// milliseconds. Default 30000.
    pub revocation_max_age_ms: i64,
    /// Lifetime of a challenge, milliseconds. Default 60000.
    pub challenge_ttl_ms: i64,
    /// Skew allowed on license windows, seconds. Default 60.
    pub clock_skew_secs: i64,
    /// The audience a license must name. Default `chipward-verifier`.
    pub audience: String,
    /// File holding the 32-byte nonce key as 64 hex digits, shared by
    /// replicas. Default none: a random key, so only this replica accepts
    /// its challenges.
    pub nonce_key_file: Option<PathBuf>,
    /// Largest gRPC message accepted or sent, bytes. Default 1048576.
    pub max_message_bytes: usize,
    /// How long a stop (SIGINT or SIGTERM) waits for the calls in flight,
    /// seconds; calls still open then are cut. Default 20; at most 3600.
    pub shutdown_grace_secs: u64,
    /// CA certificate (PEM) every client certificate, and the issuer's
    /// server certificate, must chain to. Default `./pki/tls/ca.pem`.
    pub tls_ca: PathBuf,
    /// This verifier's certificate (PEM): its server certificate, also
    /// presented to the issuer. Default `./pki/tls/verifier.pem`.
    pub tls_cert: PathBuf,
    /// Its private key (PKCS#8 PEM). Default `./pki/tls/verifier.key`.
    pub tls_key: PathBuf,
    /// The name the issuer's certificate must carry. Default `localhost`.
    pub issuer_server_name: String,
    /// Budgets per client and per chip (`[rate_limits]`); see
    /// [`RateLimitsConfig`] for each key and its default.
    pub rate_limits: RateLimitsConfig,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7402)),
            metrics_listen: None,
            pki_dir: PathBuf::from("./pki"),
            extra_roots: Vec::new(),
            reference_values: None,
            host_reference_values: None,
            landmarks: None,
            landmark_record_max_age_ms: 60_000,
            require_location: false,
            issuer_endpoint: "https://127.0.0.1:7401".into(),
            revocation_refresh_ms: 5_000,
            revocation_max_age_ms: 30_000,
            challenge_ttl_ms: 60_000,
            clock_skew_secs: 60,
            audience: "chipward-verifier".into(),
            nonce_key_file: None,
            max_message_bytes: 1024 * 1024,
            shutdown_grace_secs: 20,
            tls_ca: PathBuf::from("./pki/tls/ca.pem"),
            tls_cert: PathBuf::from("./pki/tls/verifier.pem"),
            tls_key: PathBuf::from("./pki/tls/verifier.key"),
            issuer_server_name: chipward_proto::tls::DEFAULT_SERVER_NAME.into(),
            rate_limits: RateLimitsConfig::default(),
        }
    }
}

/// What the files yield.
pub struct Loaded {
    /// The appraiser.
    pub appraiser: Arc<Appraiser>,
    /// Issuer keys, for checking revocation lists.
    pub issuer_keys: TrustedKeys,
    /// The revocation cache the refresher fills.
    pub revocations: Arc<RevocationCache>,
}

impl VerifierConfig {
    /// The TLS files this verifier serves and calls with.
    pub fn tls_files(&self) -> chipward_proto::tls::TlsFiles {
        chipward_proto::tls::TlsFiles {
            ca: self.tls_ca.clone(),
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
        }
    }

    /// How long a stop waits for the calls in flight, after checking the
    /// range.
    pub fn shutdown_grace(&self) -> anyhow::Result<Duration> {
        anyhow::ensure!(
            self.shutdown_grace_secs <= MAX_SHUTDOWN_GRACE_SECS,
            "shutdown_grace_secs must be at most {MAX_SHUTDOWN_GRACE_SECS}"
        );
        Ok(Duration::from_secs(self.shutdown_grace_secs))
    }

    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        Ok(toml::from_str(&text)?)
    }

    /// Reads every file the configuration names and builds the appraiser.
    pub fn load(&self) -> anyhow::Result<Loaded> {
        let read = |name: &str| std::fs::read_to_string(self.pki_dir.join(name));
        let result_key =
            Ed25519Key::from_pkcs8_der(&pem::parse_private_key(&read("verifier-result.key")?)?)?;
        let issuer_public = pem::parse_ed25519_public(&read("issuer-token.pub")?)?;
        let issuer_keys = TrustedKeys::new().with(key_id_for(&issuer_public), issuer_public);

        let mut roots = pem::parse_certificates(&read("vendor-root.pem")?)?;
        for path in &self.extra_roots {
            roots.extend(pem::parse_certificates(&std::fs::read_to_string(path)?)?);
        }
        let references = match &self.reference_values {
            Some(path) => ReferenceValues::from_toml(&std::fs::read_to_string(path)?)?,
            None => ReferenceValues::default(),
        };
        let nonce_key = match &self.nonce_key_file {
            Some(path) => {
                let text = Zeroizing::new(std::fs::read_to_string(path)?);
                let mut bytes = Zeroizing::new([0u8; 32]);
                hex::decode_to_slice(text.trim(), bytes.as_mut())?;
                NonceKey::from_bytes(&bytes)
            }
            None => NonceKey::generate(),
        };

        let host_policy = match &self.host_reference_values {
            Some(path) => HostPolicy::from_toml(&std::fs::read_to_string(path)?)?,
            None => HostPolicy::default(),
        };
        let revocations = Arc::new(RevocationCache::new(self.revocation_max_age_ms));
        let settings = AppraisalSettings {
            audience: self.audience.clone(),
            skew_secs: self.clock_skew_secs,
            record_max_age_ms: self.landmark_record_max_age_ms,
            require_location: self.require_location,
        };
        let landmarks = match &self.landmarks {
            Some(path) => Landmarks::from_toml(&std::fs::read_to_string(path)?)?,
            None => Landmarks::default(),
        };
        let appraiser = Appraiser::new(
            settings,
            Roots::new(&roots, ChainPolicy::default())?,
            references,
            issuer_keys.clone(),
            Challenges::new(nonce_key, self.challenge_ttl_ms),
            Arc::clone(&revocations),
            result_key,
        )
        .with_host_policy(host_policy)
        .with_landmarks(landmarks);
        Ok(Loaded {
            appraiser: Arc::new(appraiser),
            issuer_keys,
            revocations,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::rate_limits::{Limit, RateLimitSettings};

    use super::*;

    #[test]
    fn reads_the_shutdown_grace_period_and_refuses_more_than_an_hour() {
        let default: VerifierConfig = toml::from_str("").unwrap();
        assert_eq!(default.shutdown_grace().unwrap(), Duration::from_secs(20));
        for (secs, expected) in [(0, Some(0)), (3600, Some(3600)), (3601, None)] {
            let text = format!("shutdown_grace_secs = {secs}");
            let config: VerifierConfig = toml::from_str(&text).unwrap();
            let grace = config.shutdown_grace();
            match expected {
                Some(s) => assert_eq!(grace.unwrap(), Duration::from_secs(s)),
                None => assert!(
                    grace
                        .unwrap_err()
                        .to_string()
                        .contains("shutdown_grace_secs")
                ),
            }
        }
    }

    #[test]
    fn the_example_file_sets_the_default_rate_limits() {
        let text = include_str!("../verifier.example.toml");
        let config: VerifierConfig = toml::from_str(text).unwrap();
        assert_eq!(config.rate_limits, RateLimitsConfig::default());
        assert_eq!(
            config.rate_limits.settings().unwrap(),
            RateLimitSettings::default()
        );
    }

    #[test]
    fn reads_rate_limit_overrides_and_refuses_unknown_keys() {
        let text = "[rate_limits]\nmax_tracked_keys = 100\n\
                    appraise_per_chip = { burst = 3, interval_ms = 1500 }\n";
        let config: VerifierConfig = toml::from_str(text).unwrap();
        let settings = config.rate_limits.settings().unwrap();
        assert_eq!(settings.max_tracked_keys, 100);
        let chip = settings.rate(Limit::AppraisePerChip);
        assert_eq!(
            (chip.burst(), chip.interval()),
            (3, Duration::from_millis(1500))
        );
        assert_eq!(
            settings.rate(Limit::ChallengePerClient),
            RateLimitSettings::default().rate(Limit::ChallengePerClient)
        );

        for bad in [
            "[rate_limits]\nappraise_per_chips = { burst = 3, interval_ms = 1 }",
            "[rate_limits]\nappraise_per_chip = { burst = 3 }",
            "[rate_limits]\nappraise_per_chip = { burst = 3, interval_ms = 1, rate = 2 }",
        ] {
            assert!(toml::from_str::<VerifierConfig>(bad).is_err(), "{bad}");
        }
    }
}
