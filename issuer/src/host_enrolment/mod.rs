//! Host enrolment: binding a host's TPM attestation key (AK) to the
//! endorsement key (EK) a TPM manufacturer certified, by credential
//! activation (TPM 2.0 Part 1, section 24).
//!
//! Everything the host sends is attacker-controlled: the EK certificate
//! chain (with NV padding), both TPM2B_PUBLIC areas, the enrolment id and
//! the recovered credential. The TPM manufacturer roots are configuration
//! and trusted. The service runs the two halves in this order:
//!
//! `BeginHostEnrolment`
//! 1. Bound every field before anything is parsed; with no TPM root
//!    configured, refuse.
//! 2. Parse the EK and AK public areas and hold them to their profiles
//!    ([`keys`]): an RSA-2048+ restricted decryption EK, a restricted
//!    signing AK that cannot leave its TPM, both named with SHA-256.
//! 3. Validate the EK certificate chain to a configured TPM root
//!    (`chipward_certs::chain::validate_ek_chain`), at the service's now.
//! 4. The EK public area must hold the key the EK certificate certifies.
//! 5. Seal 32 fresh random bytes to the EK for the AK's name
//!    (TPM2_MakeCredential); only a TPM holding both keys can recover them.
//! 6. Hold a pending enrolment ([`pending`]) with a digest of the
//!    credential, never the credential itself, until it expires.
//!
//! `CompleteHostEnrolment`
//! 1. Take the pending enrolment out of the store: whatever happens next,
//!    each enrolment gets one try.
//! 2. Compare the digest of the returned credential with the held one in
//!    constant time.
//! 3. Record the host's AK in the ledger and sign an AK binding.
//!
//! Not done here: EK certificate revocation (no CRL or OCSP is fetched),
//! and ECC endorsement keys (refused, see [`keys`]).

pub mod keys;
pub mod pending;

use std::fmt;

use chipward_certs::chain::ChainError;
use chipward_certs::tpm_credential::CredentialError;
use thiserror::Error;

pub use keys::{AttestationKey, CertifiedEk, EkPublic, KeyRole, PublicAreaError};
pub use pending::{ActivatedHost, EnrolmentId, PendingEnrolments, PendingHost};

/// A host's identity: SHA-256 of its EK certificate's SubjectPublicKeyInfo.
/// The EK never changes, so neither does this; a new AK keeps it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HostId(pub [u8; 32]);

impl HostId {
    /// Lowercase hex, the form used on the wire, in bindings and in logs.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 12 hex digits, enough to tell hosts apart in a log.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..6])
    }
}

impl fmt::Display for HostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for HostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostId({})", self.short())
    }
}

/// Why a host enrolment step was refused or failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum HostEnrolmentError {
    /// No TPM manufacturer root is configured, so no EK chain can validate.
    #[error("no tpm roots configured")]
    NoTpmRoots,
    /// The EK certificate chain does not validate to a configured root.
    #[error("ek certificate chain refused")]
    EkChain(#[source] ChainError),
    /// The EK or AK public area is malformed, outside its profile, or (the
    /// EK) not the certified key.
    #[error(transparent)]
    PublicArea(#[from] PublicAreaError),
    /// The credential could not be sealed to the EK.
    #[error("credential sealing failed")]
    Seal(#[source] CredentialError),
    /// The system random number generator failed.
    #[error("random number generator failed")]
    Random,
    /// As many enrolments as the store holds are pending.
    #[error("too many host enrolments are pending")]
    TooManyPending {
        /// The store's capacity.
        max: usize,
    },
    /// As many enrolments as one host may have are pending for this host.
    #[error("too many enrolments are pending for this host")]
    TooManyPendingForHost {
        /// The host.
        host_id: HostId,
        /// Most allowed per host.
        max: usize,
    },
    /// No pending enrolment has this id: never begun, already tried, or
    /// expired and cleared away.
    #[error("host enrolment not found")]
    NotFound,
    /// The pending enrolment expired before it was completed.
    #[error("host enrolment expired at {expired_at}; begin again")]
    Expired {
        /// Unix seconds.
        expired_at: i64,
    },
    /// The credential returned is not the one sealed; the enrolment is gone.
    #[error("credential does not match; begin again")]
    CredentialMismatch {
        /// The host that tried.
        host_id: HostId,
    },
}
