//! Every way an issuer RPC can fail, and the one place that turns each into
//! a gRPC status.
//!
//! The status message is short and names the failed check; internals (SQL,
//! file paths, join errors) stay in the log. Each status also carries a
//! stable machine-readable code in the `chipward-code` metadata entry; the
//! codes are listed in the crate README.

use chipward_certs::chain::ChainError;
use chipward_certs::tpm_credential::CredentialError;
use chipward_proto::rate_limit::RateLimited;
use chipward_proto::{ChipId, TokenId};
use thiserror::Error;
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

use crate::compliance::ComplianceError;
use crate::enrolment::ProfileError;
use crate::host_enrolment::{HostEnrolmentError, KeyRole, PublicAreaError};
use crate::ledger::{LedgerError, LicenseState};
use crate::renewal::RenewalError;
use crate::request::InputError;

/// Metadata key of the stable error code on every error status.
pub const CODE_METADATA_KEY: &str = "chipward-code";

/// Why an issuer RPC failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// A request field is missing, malformed or out of range.
    #[error(transparent)]
    Input(#[from] InputError),
    /// A result to record was appraised too long ago, or in the future.
    #[error(
        "the result was appraised at {appraised_at}, outside the last {max_age_secs} s this issuer records"
    )]
    ResultOutOfWindow {
        /// Its `appraised_at`, Unix seconds.
        appraised_at: i64,
        /// The configured window.
        max_age_secs: i64,
    },
    /// The caller's certificate does not allow this call, or not for this
    /// tenant, site or chip.
    #[error(transparent)]
    Access(#[from] chipward_proto::access::AccessError),
    /// The enrolment chain does not validate to the vendor root.
    #[error("certificate chain refused")]
    ChainInvalid(#[source] ChainError),
    /// The enrolment chain validates but does not start with a device
    /// identity.
    #[error(transparent)]
    NotDeviceIdentity(#[from] ProfileError),
    /// A license was asked for a chip that was never enrolled.
    #[error("chip not enrolled")]
    ChipNotEnrolled {
        /// The chip.
        chip_id: ChipId,
    },
    /// No license has this token id.
    #[error("license not found")]
    LicenseNotFound {
        /// The token id.
        token_id: TokenId,
    },
    /// A renewal was refused.
    #[error(transparent)]
    Renewal(#[from] RenewalError),
    /// A host enrolment step was refused or failed.
    #[error(transparent)]
    HostEnrolment(#[from] HostEnrolmentError),
    /// The compliance policy refuses the license.
    #[error(transparent)]
    Compliance(#[from] ComplianceError),
    /// A party matched a restricted-party list.
    #[error("{party} matches the restricted-party list {list} ({candidate}, score {score:.3})")]
    Screened {
        /// Which party, by role.
        party: String,
        /// The list's label and date.
        list: String,
        /// The best listed name.
        candidate: String,
        /// Its score.
        score: f64,
    },
    /// An audit log request outside the log.
    #[error("{0}")]
    AuditRange(String),
    /// The client, chip or host spent its budget for this call
    /// ([`crate::rate_limits`]).
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
    /// An evidence bundle would pass one of its bounds.
    #[error("{0}; ask for a shorter time range")]
    BundleTooLarge(String),
    /// The signed revocation list is larger than verifiers accept.
    #[error("revocation list is {bytes} bytes, more than the {max} verifiers accept")]
    RevocationListTooLarge {
        /// Its size.
        bytes: usize,
        /// The verifiers' limit.
        max: usize,
    },
    /// As many reviewer overrides are recorded as are kept.
    #[error("{max} reviewer overrides are recorded, the most kept")]
    TooManyOverrides {
        /// The bound.
        max: usize,
    },
    /// The ledger refused or failed.
    #[error("ledger call failed")]
    Ledger(#[from] LedgerError),
    /// The system random number generator failed.
    #[error("random number generator failed")]
    Random,
    /// A blocking task panicked or was cancelled.
    #[error("background task failed")]
    TaskFailed,
}

/// How a failure should be logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The peer sent something unusable; routine.
    BadRequest,
    /// A refusal for a security reason.
    Security,
    /// The service cannot do its job.
    Fault,
}

impl ServiceError {
    /// The gRPC code, the stable error code and the log severity.
    fn classify(&self) -> (Code, &'static str, Severity) {
        use Severity::{BadRequest, Fault, Security};
        match self {
            Self::Input(_) => (Code::InvalidArgument, "invalid_argument", BadRequest),
            Self::ChainInvalid(_) => (Code::InvalidArgument, "chain_invalid", Security),
            Self::NotDeviceIdentity(_) => (Code::InvalidArgument, "not_device_identity", Security),
            Self::ChipNotEnrolled { .. } => {
                (Code::FailedPrecondition, "chip_not_enrolled", BadRequest)
            }
            Self::LicenseNotFound { .. } => (Code::NotFound, "license_not_found", BadRequest),
            Self::Renewal(e) => match e {
                RenewalError::Malformed(_) => {
                    (Code::InvalidArgument, "result_malformed", BadRequest)
                }
                RenewalError::Unauthenticated(_) => {
                    (Code::Unauthenticated, "result_unauthenticated", Security)
                }
                RenewalError::NotActive { .. } => {
                    (Code::FailedPrecondition, "license_not_active", BadRequest)
                }
                RenewalError::NoClaims | RenewalError::ClaimNotPassed { .. } => {
                    (Code::PermissionDenied, "renewal_claim", Security)
                }
                RenewalError::Verdict { .. } => {
                    (Code::PermissionDenied, "renewal_verdict", Security)
                }
                RenewalError::TokenMismatch => {
                    (Code::PermissionDenied, "renewal_token_mismatch", Security)
                }
                RenewalError::ChipMismatch => {
                    (Code::PermissionDenied, "renewal_chip_mismatch", Security)
                }
                RenewalError::TenantMismatch => {
                    (Code::PermissionDenied, "renewal_tenant_mismatch", Security)
                }
                RenewalError::SiteMismatch => {
                    (Code::PermissionDenied, "renewal_site_mismatch", Security)
                }
                RenewalError::Stale { .. } => {
                    (Code::PermissionDenied, "renewal_result_stale", Security)
                }
                RenewalError::FromTheFuture { .. } => {
                    (Code::PermissionDenied, "renewal_result_future", Security)
                }
            },
            Self::HostEnrolment(e) => classify_host(e),
            Self::Compliance(_) => (Code::FailedPrecondition, "compliance", Security),
            Self::Screened { .. } => (Code::PermissionDenied, "screening_hit", Security),
            Self::AuditRange(_) => (Code::InvalidArgument, "audit_range", BadRequest),
            Self::Access(e) => {
                use chipward_proto::access::AccessError as A;
                let stable = match e {
                    A::Role { .. } => "role_forbidden",
                    A::Scope { .. } => "out_of_scope",
                    _ => "unauthenticated",
                };
                (e.grpc_code(), stable, Security)
            }
            Self::ResultOutOfWindow { .. } => {
                (Code::FailedPrecondition, "result_out_of_window", Security)
            }
            Self::RateLimited(_) => (Code::ResourceExhausted, "rate_limited", Security),
            Self::BundleTooLarge(_) => (Code::ResourceExhausted, "bundle_too_large", BadRequest),
            // Every verifier refuses such a list, so revocation claims turn
            // unknown everywhere: the operator must act.
            Self::RevocationListTooLarge { .. } => {
                (Code::ResourceExhausted, "revocation_list_too_large", Fault)
            }
            Self::TooManyOverrides { .. } => {
                (Code::ResourceExhausted, "overrides_full", BadRequest)
            }
            Self::Ledger(e) => match e {
                LedgerError::Conflict { .. } => (Code::AlreadyExists, "chip_conflict", Security),
                LedgerError::UnknownChip { .. } => {
                    (Code::FailedPrecondition, "chip_not_enrolled", BadRequest)
                }
                LedgerError::NotFound { .. } => (Code::NotFound, "license_not_found", BadRequest),
                LedgerError::NotActive { .. } => {
                    (Code::FailedPrecondition, "license_not_active", BadRequest)
                }
                // Renewal keeps lineages below the bound, so reaching it is
                // a state the operator must look at: logged as a fault.
                LedgerError::LineageTooLarge { .. } => {
                    (Code::FailedPrecondition, "lineage_too_large", Fault)
                }
                LedgerError::Unavailable(_) => (Code::Unavailable, "ledger_unavailable", Fault),
                LedgerError::Retained { .. } => {
                    (Code::FailedPrecondition, "retention_period", BadRequest)
                }
                LedgerError::Held { .. } => (Code::FailedPrecondition, "legal_hold", BadRequest),
                LedgerError::NoSuchHold { .. } => (Code::NotFound, "hold_not_found", BadRequest),
                LedgerError::AlreadyRecorded => (Code::AlreadyExists, "result_recorded", Security),
                LedgerError::DuplicateToken { .. }
                | LedgerError::SchemaVersion { .. }
                | LedgerError::Corrupt { .. }
                | LedgerError::Backend(_) => (Code::Internal, "internal", Fault),
            },
            Self::Random | Self::TaskFailed => (Code::Internal, "internal", Fault),
        }
    }

    /// How this failure should be logged.
    pub fn severity(&self) -> Severity {
        self.classify().2
    }

    /// The stable code sent in the `chipward-code` metadata.
    pub fn code(&self) -> &'static str {
        self.classify().1
    }

    /// The status text: what failed, without internals.
    fn public_message(&self) -> String {
        match self {
            Self::ChainInvalid(source)
            | Self::HostEnrolment(HostEnrolmentError::EkChain(source)) => {
                format!("{self}: {source}")
            }
            Self::HostEnrolment(HostEnrolmentError::PublicArea(PublicAreaError::Malformed {
                source,
                ..
            })) => format!("{self}: {source}"),
            Self::HostEnrolment(HostEnrolmentError::Seal(
                source @ CredentialError::UnsupportedEk(_),
            )) => format!("{self}: {source}"),
            Self::HostEnrolment(HostEnrolmentError::Seal(_) | HostEnrolmentError::Random) => {
                "internal error".into()
            }
            Self::Ledger(LedgerError::Conflict { .. }) => {
                "chip is already enrolled with a different identity certificate".into()
            }
            Self::Ledger(LedgerError::UnknownChip { .. }) => "chip not enrolled".into(),
            Self::Ledger(LedgerError::NotFound { .. }) => "license not found".into(),
            Self::Ledger(LedgerError::NotActive { state, .. }) => not_active(*state),
            Self::Ledger(LedgerError::LineageTooLarge { max, .. }) => {
                format!("license lineage holds more than {max} licenses")
            }
            Self::Ledger(LedgerError::Unavailable(_)) => "ledger unavailable".into(),
            Self::Ledger(
                e @ (LedgerError::Retained { .. }
                | LedgerError::Held { .. }
                | LedgerError::NoSuchHold { .. }
                | LedgerError::AlreadyRecorded),
            ) => e.to_string(),
            Self::Ledger(_) | Self::Random | Self::TaskFailed => "internal error".into(),
            Self::Input(_)
            | Self::NotDeviceIdentity(_)
            | Self::ChipNotEnrolled { .. }
            | Self::LicenseNotFound { .. }
            | Self::Renewal(_)
            | Self::Compliance(_)
            | Self::Screened { .. }
            | Self::AuditRange(_)
            | Self::Access(_)
            | Self::ResultOutOfWindow { .. }
            | Self::RateLimited(_)
            | Self::BundleTooLarge(_)
            | Self::RevocationListTooLarge { .. }
            | Self::TooManyOverrides { .. }
            | Self::HostEnrolment(_) => self.to_string(),
        }
    }
}

/// The gRPC code, stable code and log severity of a host enrolment failure.
fn classify_host(e: &HostEnrolmentError) -> (Code, &'static str, Severity) {
    use Severity::{BadRequest, Fault, Security};
    match e {
        HostEnrolmentError::NoTpmRoots => (Code::FailedPrecondition, "no_tpm_roots", Fault),
        HostEnrolmentError::EkChain(_) => (Code::InvalidArgument, "ek_chain_invalid", Security),
        HostEnrolmentError::PublicArea(area) => {
            let code = match (area, area.role()) {
                (PublicAreaError::EccEk, _) => "ek_unsupported",
                (PublicAreaError::EkMismatch, _) => "ek_mismatch",
                (_, KeyRole::Ek) => "ek_public_invalid",
                (_, KeyRole::Ak) => "ak_public_invalid",
            };
            let severity = match area {
                PublicAreaError::Malformed { .. } | PublicAreaError::EccEk => BadRequest,
                _ => Security,
            };
            (Code::InvalidArgument, code, severity)
        }
        HostEnrolmentError::Seal(CredentialError::UnsupportedEk(_)) => {
            (Code::InvalidArgument, "ek_unsupported", BadRequest)
        }
        HostEnrolmentError::Seal(_) | HostEnrolmentError::Random => {
            (Code::Internal, "internal", Fault)
        }
        HostEnrolmentError::TooManyPending { .. }
        | HostEnrolmentError::TooManyPendingForHost { .. } => {
            (Code::ResourceExhausted, "host_enrolments_full", Security)
        }
        HostEnrolmentError::NotFound => (Code::NotFound, "host_enrolment_not_found", BadRequest),
        HostEnrolmentError::Expired { .. } => (
            Code::FailedPrecondition,
            "host_enrolment_expired",
            BadRequest,
        ),
        HostEnrolmentError::CredentialMismatch { .. } => {
            (Code::PermissionDenied, "credential_mismatch", Security)
        }
    }
}

fn not_active(state: LicenseState) -> String {
    format!("license is {}", state.as_str())
}

impl From<ServiceError> for Status {
    fn from(err: ServiceError) -> Self {
        let (code, stable, _) = err.classify();
        let mut status = Self::new(code, err.public_message());
        status
            .metadata_mut()
            .insert(CODE_METADATA_KEY, MetadataValue::from_static(stable));
        if let ServiceError::RateLimited(limited) = &err {
            limited.annotate(status.metadata_mut());
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use chipward_certs::chain::Link;
    use chipward_proto::cose::CoseError;
    use chipward_proto::result::{ResultError, Status as Verdict};

    use super::*;

    fn status(err: ServiceError) -> (Code, String, String) {
        let s = Status::from(err);
        let stable = s
            .metadata()
            .get(CODE_METADATA_KEY)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        (s.code(), s.message().to_owned(), stable)
    }

    #[test]
    fn malformed_input_is_invalid_argument_and_says_why() {
        let err = ServiceError::Input(InputError::Missing { field: "site" });
        assert_eq!(
            status(err),
            (
                Code::InvalidArgument,
                "site is required".into(),
                "invalid_argument".into()
            )
        );
    }

    #[test]
    fn a_bad_chain_names_the_failing_link() {
        let err = ServiceError::ChainInvalid(ChainError::BadSignature {
            link: Link::Certificate(1),
            subject: "CN=x".into(),
        });
        assert_eq!(
            status(err),
            (
                Code::InvalidArgument,
                "certificate chain refused: certificate 1 (CN=x): signature does not verify".into(),
                "chain_invalid".into()
            )
        );
    }

    #[test]
    fn state_problems_are_failed_precondition() {
        let chip = ServiceError::ChipNotEnrolled {
            chip_id: ChipId([1; 32]),
        };
        assert_eq!(status(chip).0, Code::FailedPrecondition);
        let renewal = ServiceError::Renewal(RenewalError::NotActive {
            state: LicenseState::Revoked,
        });
        assert_eq!(
            status(renewal),
            (
                Code::FailedPrecondition,
                "license is revoked".into(),
                "license_not_active".into()
            )
        );
        let ledger = ServiceError::Ledger(LedgerError::NotActive {
            token_id: TokenId([1; 16]),
            state: LicenseState::Superseded,
        });
        assert_eq!(
            status(ledger),
            (
                Code::FailedPrecondition,
                "license is superseded".into(),
                "license_not_active".into()
            )
        );
        let long = ServiceError::Ledger(LedgerError::LineageTooLarge {
            token_id: TokenId([1; 16]),
            max: 10_000,
        });
        assert_eq!(
            status(long),
            (
                Code::FailedPrecondition,
                "license lineage holds more than 10000 licenses".into(),
                "lineage_too_large".into()
            )
        );
        let unknown = ServiceError::Ledger(LedgerError::UnknownChip {
            chip_id: ChipId([1; 32]),
        });
        assert_eq!(status(unknown).0, Code::FailedPrecondition);
    }

    #[test]
    fn renewal_refusals_are_permission_denied_except_bad_signatures() {
        let sig = ServiceError::Renewal(RenewalError::Unauthenticated(ResultError::Envelope(
            CoseError::BadSignature,
        )));
        assert_eq!(status(sig).0, Code::Unauthenticated);
        let claim = ServiceError::Renewal(RenewalError::ClaimNotPassed {
            claim: "firmware".into(),
            status: Verdict::Unknown,
        });
        assert_eq!(
            status(claim),
            (
                Code::PermissionDenied,
                "attestation claim \"firmware\" is unknown, not pass".into(),
                "renewal_claim".into()
            )
        );
        let none = ServiceError::Renewal(RenewalError::NoClaims);
        assert_eq!(status(none).2, "renewal_claim");
        let verdict = ServiceError::Renewal(RenewalError::Verdict {
            verdict: Verdict::Fail,
        });
        assert_eq!(
            status(verdict),
            (
                Code::PermissionDenied,
                "attestation verdict is fail, not pass".into(),
                "renewal_verdict".into()
            )
        );
        let tenant = ServiceError::Renewal(RenewalError::TenantMismatch);
        assert_eq!(status(tenant).2, "renewal_tenant_mismatch");
    }

    #[test]
    fn malformed_results_are_invalid_argument() {
        let err = ServiceError::Renewal(RenewalError::Malformed(ResultError::Envelope(
            CoseError::Malformed,
        )));
        assert_eq!(
            status(err),
            (
                Code::InvalidArgument,
                "attestation result is malformed".into(),
                "result_malformed".into()
            )
        );
    }

    #[test]
    fn missing_records_are_not_found() {
        let a = ServiceError::LicenseNotFound {
            token_id: TokenId([1; 16]),
        };
        let b = ServiceError::Ledger(LedgerError::NotFound {
            token_id: TokenId([1; 16]),
        });
        assert_eq!(status(a).0, Code::NotFound);
        assert_eq!(status(b).0, Code::NotFound);
    }

    #[test]
    fn an_enrolment_conflict_is_already_exists() {
        let err = ServiceError::Ledger(LedgerError::Conflict {
            chip_id: ChipId([1; 32]),
        });
        assert_eq!(status(err).0, Code::AlreadyExists);
    }

    #[test]
    fn host_enrolment_failures_get_their_own_codes() {
        use crate::host_enrolment::HostId;

        let host = |e: HostEnrolmentError| status(ServiceError::HostEnrolment(e));
        let area = |e: PublicAreaError| host(HostEnrolmentError::PublicArea(e));
        assert_eq!(
            host(HostEnrolmentError::NoTpmRoots),
            (
                Code::FailedPrecondition,
                "no tpm roots configured".into(),
                "no_tpm_roots".into()
            )
        );
        let chain = ChainError::IssuerMismatch {
            link: Link::Certificate(1),
            subject: "CN=ek ca".into(),
        };
        assert_eq!(
            host(HostEnrolmentError::EkChain(chain)),
            (
                Code::InvalidArgument,
                "ek certificate chain refused: certificate 1 (CN=ek ca): \
                 issuer name does not match the subject of its signer"
                    .into(),
                "ek_chain_invalid".into()
            )
        );
        let malformed = PublicAreaError::Malformed {
            role: KeyRole::Ak,
            source: chipward_proto::tpm::TpmError::TrailingBytes(3),
        };
        assert_eq!(
            area(malformed),
            (
                Code::InvalidArgument,
                "ak public area is malformed: 3 bytes after the structure".into(),
                "ak_public_invalid".into()
            )
        );
        let missing = PublicAreaError::MissingAttribute {
            role: KeyRole::Ek,
            attribute: "decrypt",
        };
        assert_eq!(area(missing).2, "ek_public_invalid");
        assert_eq!(
            area(PublicAreaError::Curve { curve: 5 }).2,
            "ak_public_invalid"
        );
        assert_eq!(area(PublicAreaError::EccEk).2, "ek_unsupported");
        assert_eq!(
            area(PublicAreaError::EkMismatch),
            (
                Code::InvalidArgument,
                "ek public area does not match the ek certificate".into(),
                "ek_mismatch".into()
            )
        );
        let weak = HostEnrolmentError::Seal(CredentialError::UnsupportedEk("not a usable rsa key"));
        assert_eq!(
            host(weak),
            (
                Code::InvalidArgument,
                "credential sealing failed: unsupported endorsement key: not a usable rsa key"
                    .into(),
                "ek_unsupported".into()
            )
        );
        let full = host(HostEnrolmentError::TooManyPendingForHost {
            host_id: HostId([1; 32]),
            max: 4,
        });
        assert_eq!(
            (full.0, full.2.as_str()),
            (Code::ResourceExhausted, "host_enrolments_full")
        );
        let full = host(HostEnrolmentError::TooManyPending { max: 10 });
        assert_eq!(full.0, Code::ResourceExhausted);
        assert_eq!(
            host(HostEnrolmentError::NotFound),
            (
                Code::NotFound,
                "host enrolment not found".into(),
                "host_enrolment_not_found".into()
            )
        );
        assert_eq!(
            host(HostEnrolmentError::Expired { expired_at: 9 }),
            (
                Code::FailedPrecondition,
                "host enrolment expired at 9; begin again".into(),
                "host_enrolment_expired".into()
            )
        );
        assert_eq!(
            host(HostEnrolmentError::CredentialMismatch {
                host_id: HostId([1; 32])
            }),
            (
                Code::PermissionDenied,
                "credential does not match; begin again".into(),
                "credential_mismatch".into()
            )
        );
    }

    #[test]
    fn host_enrolment_faults_hide_their_details() {
        for err in [
            HostEnrolmentError::Random,
            HostEnrolmentError::Seal(CredentialError::Crypto),
            HostEnrolmentError::Seal(CredentialError::Name),
        ] {
            assert_eq!(
                status(ServiceError::HostEnrolment(err)),
                (Code::Internal, "internal error".into(), "internal".into())
            );
        }
    }

    #[test]
    fn answers_past_their_bounds_are_resource_exhausted() {
        let bundle = ServiceError::BundleTooLarge("more than 10000 entries match".into());
        assert_eq!(
            status(bundle),
            (
                Code::ResourceExhausted,
                "more than 10000 entries match; ask for a shorter time range".into(),
                "bundle_too_large".into()
            )
        );
        let list = ServiceError::RevocationListTooLarge {
            bytes: 5_000_000,
            max: 4_194_304,
        };
        assert_eq!(
            status(list),
            (
                Code::ResourceExhausted,
                "revocation list is 5000000 bytes, more than the 4194304 verifiers accept".into(),
                "revocation_list_too_large".into()
            )
        );
        let overrides = ServiceError::TooManyOverrides { max: 10_000 };
        assert_eq!(
            status(overrides),
            (
                Code::ResourceExhausted,
                "10000 reviewer overrides are recorded, the most kept".into(),
                "overrides_full".into()
            )
        );
    }

    #[test]
    fn faults_hide_their_details() {
        let io = std::io::Error::other("disk on fire at /var/lib/x");
        let down = ServiceError::Ledger(LedgerError::Unavailable(Box::new(io)));
        assert_eq!(
            status(down),
            (
                Code::Unavailable,
                "ledger unavailable".into(),
                "ledger_unavailable".into()
            )
        );
        let io = std::io::Error::other("SELECT secret FROM x");
        let bug = ServiceError::Ledger(LedgerError::Backend(Box::new(io)));
        assert_eq!(
            status(bug),
            (Code::Internal, "internal error".into(), "internal".into())
        );
        assert_eq!(status(ServiceError::Random).0, Code::Internal);
        assert_eq!(status(ServiceError::TaskFailed).0, Code::Internal);
        let corrupt = ServiceError::Ledger(LedgerError::Corrupt { what: "chip id" });
        assert_eq!(status(corrupt).1, "internal error");
    }
}
