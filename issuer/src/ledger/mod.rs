//! The ledger: the issuer's durable record of enrolled chips, every license
//! it minted (with the token bytes), the revocation list, and the hosts'
//! TPM attestation keys bound by credential activation.
//!
//! [`Ledger`] is the storage contract. [`SqliteLedger`] is the default
//! backend (one file); [`PostgresLedger`] serves several issuer processes
//! sharing one database. [`LedgerLocation`] names either, and [`open`]
//! opens it. Both pass the same conformance suite (`conformance`, built
//! for tests and with the `conformance` feature). The trait is
//! synchronous: the service calls it from `spawn_blocking`.
//!
//! Records arrive here already validated by the service; the ledger trusts
//! them as values but still enforces its own state rules (one identity
//! certificate per chip, only an active license can be renewed, revoking a
//! license revokes its whole renewal lineage, the revocation sequence grows
//! by one per new list version). It does not sign, verify or read the clock.
//!
//! A license's **lineage** is every license connected to it through
//! `renewed_from`, in either direction: the licenses it renewed, those that
//! renewed it, and so on. Renewal leaves the older tokens valid until they
//! expire, so revoking only one member would leave the others usable.

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod location;
mod postgres;
mod records;
mod sqlite;

use std::error::Error as StdError;
use std::sync::Arc;

use chipward_proto::grpc::LicenseStatus;
use chipward_proto::license::SiteClaim;
use chipward_proto::revocation::RevokedLicense;
use chipward_proto::{ChipId, TokenId};
use thiserror::Error;

pub use self::location::{LedgerLocation, LocationError};
pub use self::postgres::{PostgresLedger, PostgresOptions, PostgresUrl, PostgresUrlError};
pub use records::{AuditRecord, AuditSelection, LegalHold, ResultRecord, StoredTreeHead};
pub use sqlite::SqliteLedger;

use crate::host_enrolment::HostId;

/// Durable storage for chips, licenses, revocations and the audit log.
///
/// Every method is atomic: it either applies completely or leaves the ledger
/// as it was. Implementations must make an acknowledged write durable.
///
/// Every write that changes something appends its [`AuditRecord`] to the
/// audit log in the same transaction, so no acknowledged change lacks its
/// entry and no entry describes a change that was rolled back. The log is
/// an RFC 9162 Merkle tree: the ledger keeps each entry and every perfect
/// subtree hash, so roots and proofs cost O(log n) reads.
pub trait Ledger: Send + Sync {
    /// Records a chip. Returns `true` when the chip is new, `false` when it
    /// was already enrolled with byte-identical identity certificate (and
    /// logs nothing), and [`LedgerError::Conflict`] when it was enrolled with
    /// another one.
    fn enrol_chip(&self, chip: &ChipRecord, audit: &AuditRecord) -> Result<bool, LedgerError>;

    /// The chip with this id, if enrolled.
    fn chip(&self, chip_id: &ChipId) -> Result<Option<ChipRecord>, LedgerError>;

    /// Stores a newly minted license; its chip must be enrolled. Returns
    /// the audit log index of its entry.
    fn insert_license(
        &self,
        license: &LicenseRecord,
        audit: &AuditRecord,
    ) -> Result<u64, LedgerError>;

    /// Stores many newly minted licenses in one durable commit (group
    /// commit). Each gets its own outcome, as [`Self::insert_license`]
    /// would give it alone; one refused license does not refuse the others.
    /// The outer error means nothing was stored.
    fn insert_licenses(
        &self,
        batch: &[(LicenseRecord, AuditRecord)],
    ) -> Result<Vec<Result<u64, LedgerError>>, LedgerError>;

    /// The license with this token id, if any.
    fn license(&self, token_id: &TokenId) -> Result<Option<LicenseRecord>, LedgerError>;

    /// Licenses matching `filter`, newest first, at most `limit` of them.
    fn list_licenses(
        &self,
        filter: &LicenseFilter,
        limit: usize,
    ) -> Result<Vec<LicenseRecord>, LedgerError>;

    /// Marks `old` superseded and stores `new` in one step. Fails, writing
    /// nothing, when `old` is unknown or not active, or when its lineage
    /// already has [`MAX_LINEAGE`] members (so every lineage stays small
    /// enough to revoke).
    fn renew(
        &self,
        old: &TokenId,
        new: &LicenseRecord,
        audit: &AuditRecord,
    ) -> Result<u64, LedgerError>;

    /// Revokes a license and its whole lineage in one step: every member not
    /// yet revoked is marked revoked and appended to the revocation list
    /// with `at` as its time, all under one new list sequence number. The
    /// license asked for gets `reason`; the others get [`lineage_reason`].
    ///
    /// Returns the sequence number of the first list that carries every
    /// member. Revoking again, through any member, adds nothing (and logs
    /// nothing) and returns that number. Superseded licenses can be revoked
    /// too. Fails, writing nothing, with [`LedgerError::NotFound`] for an
    /// unknown license and [`LedgerError::LineageTooLarge`] past
    /// [`MAX_LINEAGE`] members.
    fn revoke(
        &self,
        token_id: &TokenId,
        reason: &str,
        at: i64,
        audit: &AuditRecord,
    ) -> Result<Revocation, LedgerError>;

    /// The current sequence number: how many list versions there have been
    /// since the empty list (0). Each revocation call that revokes anything
    /// makes one new version.
    fn revocation_seq(&self) -> Result<u64, LedgerError>;

    /// The current sequence number and every revoked license, in the order
    /// they were revoked, read together.
    fn revocations(&self) -> Result<(u64, Vec<RevokedLicense>), LedgerError>;

    /// Records a host's attestation key after credential activation.
    /// Returns `true` when the (host, AK name) pair is new and `false` when
    /// it was already recorded, in which case the first record stays as it
    /// was (and nothing is logged): enrolling the same AK again is not an
    /// error.
    fn enrol_host(&self, host: &HostRecord, audit: &AuditRecord) -> Result<bool, LedgerError>;

    /// Every attestation key recorded for `host_id`, oldest first.
    fn host_keys(&self, host_id: &HostId) -> Result<Vec<HostRecord>, LedgerError>;

    /// Appends entries that change nothing else (screening decisions,
    /// refusals, list loads), in one commit. Returns the index of the
    /// first.
    fn append_audit(&self, records: &[AuditRecord]) -> Result<u64, LedgerError>;

    /// Stores a signed attestation result and logs it, in one commit.
    /// Returns the log index of its entry; [`LedgerError::AlreadyRecorded`]
    /// (and nothing written) when a result with its digest is stored.
    fn record_result(&self, result: &ResultRecord, audit: &AuditRecord)
    -> Result<u64, LedgerError>;

    /// Results of one chip or site appraised in `[from, to)`, oldest first,
    /// at most `limit`.
    fn results(
        &self,
        select: &AuditSelection,
        limit: usize,
    ) -> Result<Vec<ResultRecord>, LedgerError>;

    /// How many entries the log holds.
    fn audit_size(&self) -> Result<u64, LedgerError>;

    /// Encoded entries from index `from`, at most `limit`, in order.
    fn audit_entries(&self, from: u64, limit: usize) -> Result<Vec<Vec<u8>>, LedgerError>;

    /// Indices and encoded entries that name the chip or site of `select`
    /// and fall in its time range, oldest first, at most `limit`.
    fn audit_select(
        &self,
        select: &AuditSelection,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, LedgerError>;

    /// The hash of the perfect subtree at `level`, `index` (see
    /// [`chipward_proto::audit::NodeSource`]); [`LedgerError::Corrupt`] if
    /// the log has no such node.
    fn audit_node(&self, level: u32, index: u64) -> Result<[u8; 32], LedgerError>;

    /// An artefact (license token, attestation result, screening list) by
    /// its SHA-256, if stored with an entry.
    fn artefact(&self, sha256: &[u8; 32]) -> Result<Option<Vec<u8>>, LedgerError>;

    /// Keeps a signed tree head; a second head of the same size is ignored.
    fn store_tree_head(&self, head: &StoredTreeHead) -> Result<(), LedgerError>;

    /// Signed tree heads kept, oldest first, at most `limit` from size
    /// `from_size` up.
    fn tree_heads(&self, from_size: u64, limit: usize) -> Result<Vec<StoredTreeHead>, LedgerError>;

    /// Places a legal hold; returns its id.
    fn place_hold(&self, hold: &LegalHold, audit: &AuditRecord) -> Result<i64, LedgerError>;

    /// Lifts a hold at `at`; [`LedgerError::NoSuchHold`] if it is not in
    /// force.
    fn lift_hold(&self, id: i64, at: i64, audit: &AuditRecord) -> Result<(), LedgerError>;

    /// Holds in force.
    fn holds(&self) -> Result<Vec<LegalHold>, LedgerError>;

    /// Deletes a license's whole lineage (and its revocation rows) once
    /// every member ended at least `retention_secs` before `now` and no
    /// hold covers its chip or tenant. Returns how many licenses went.
    /// Refuses with [`LedgerError::Retained`] or [`LedgerError::Held`],
    /// deleting nothing. The log keeps its entries.
    fn purge_lineage(
        &self,
        token_id: &TokenId,
        now: i64,
        retention_secs: i64,
        audit: &AuditRecord,
    ) -> Result<usize, LedgerError>;
}

/// Opens the ledger at `location`, creating or migrating its schema;
/// `postgres` applies only to a PostgreSQL location. Blocks: call it from
/// `spawn_blocking` or before any runtime starts.
pub fn open(
    location: &LedgerLocation,
    postgres: &PostgresOptions,
) -> Result<Arc<dyn Ledger>, LedgerError> {
    Ok(match location {
        LedgerLocation::Sqlite(path) => Arc::new(SqliteLedger::open(path)?),
        LedgerLocation::Postgres(url) => Arc::new(PostgresLedger::connect_with(url, postgres)?),
    })
}

/// How long records are kept after a license ends: five years, counting
/// two leap days.
pub const RETENTION_SECS: i64 = (5 * 365 + 2) * 86_400;

/// Most licenses one lineage may hold. Renewal stops a lineage at this
/// size, and revocation refuses to walk past it, so a pathological chain
/// cannot hold a ledger transaction open for long.
pub const MAX_LINEAGE: usize = 10_000;

/// What [`Ledger::revoke`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// The first list sequence number that carries the whole lineage.
    pub seq: u64,
    /// How many licenses the lineage holds, the one asked for included.
    pub lineage: usize,
    /// How many of them this call revoked; 0 when all already were.
    pub newly_revoked: usize,
}

/// The reason recorded for a lineage member that was revoked because
/// `revoked` was: `"<reason> (lineage of <token id>)"`, or
/// `"lineage of <token id>"` for an empty reason.
pub fn lineage_reason(reason: &str, revoked: &TokenId) -> String {
    if reason.is_empty() {
        format!("lineage of {revoked}")
    } else {
        format!("{reason} (lineage of {revoked})")
    }
}

/// An enrolled chip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChipRecord {
    /// SHA-256 of the identity key's SubjectPublicKeyInfo.
    pub chip_id: ChipId,
    /// Product line, from the issuing intermediate's common name.
    pub model: String,
    /// DER of the device-identity certificate.
    pub identity_cert: Vec<u8>,
    /// Unix seconds of the first enrolment.
    pub enrolled_at: i64,
}

/// A host's attestation key, bound to its EK by credential activation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostRecord {
    /// SHA-256 of the EK certificate's SubjectPublicKeyInfo.
    pub host_id: HostId,
    /// The AK's TPM name: 0x000b then SHA-256 of its TPMT_PUBLIC.
    pub ak_name: Vec<u8>,
    /// The AK's TPM2B_PUBLIC.
    pub ak_public: Vec<u8>,
    /// SHA-256 of the EK certificate, NV padding cut off.
    pub ek_cert_sha256: [u8; 32],
    /// TPM manufacturer the EK certificate names; empty if none.
    pub tpm_manufacturer: String,
    /// Unix seconds of the first enrolment of this AK.
    pub enrolled_at: i64,
}

/// Where a license stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LicenseState {
    /// In force until it expires.
    Active,
    /// Revoked; on the revocation list.
    Revoked,
    /// Replaced by a renewal.
    Superseded,
}

impl LicenseState {
    /// The wire enum.
    pub fn to_proto(self) -> LicenseStatus {
        match self {
            Self::Active => LicenseStatus::Active,
            Self::Revoked => LicenseStatus::Revoked,
            Self::Superseded => LicenseStatus::Superseded,
        }
    }

    /// Lowercase name, as stored and logged.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Revoked => "revoked",
            Self::Superseded => "superseded",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(Self::Active),
            "revoked" => Some(Self::Revoked),
            "superseded" => Some(Self::Superseded),
            _ => None,
        }
    }
}

/// One minted license: every field of the wire `License`, typed.
#[derive(Clone, Debug, PartialEq)]
pub struct LicenseRecord {
    /// The CWT `cti` claim.
    pub token_id: TokenId,
    /// The chip it binds to.
    pub chip_id: ChipId,
    /// The tenant the chip may serve.
    pub tenant: String,
    /// Where the chip may sit.
    pub site: SiteClaim,
    /// Unix seconds when minted.
    pub issued_at: i64,
    /// Unix seconds when it starts to hold.
    pub not_before: i64,
    /// Unix seconds when it stops holding.
    pub expires_at: i64,
    /// Where it stands now.
    pub state: LicenseState,
    /// The signed COSE_Sign1 token.
    pub token: Vec<u8>,
    /// The license this one renewed, if any.
    pub renewed_from: Option<TokenId>,
    /// What the chip may do.
    pub entitlements: Vec<String>,
    /// Export classification.
    pub eccn: String,
    /// Unix seconds when the first license of its lineage was issued; a
    /// renewal carries it over.
    pub term_started_at: i64,
    /// The parties screened for it (tenant and end user), as JSON, kept so
    /// a new restricted-party list can screen them again; empty when none
    /// were given. A renewal carries them over.
    pub parties: String,
}

/// Which licenses [`Ledger::list_licenses`] returns; `None` matches all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LicenseFilter {
    /// Only this chip's licenses.
    pub chip_id: Option<ChipId>,
    /// Only this tenant's licenses.
    pub tenant: Option<String>,
}

/// Why a ledger call failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The chip is enrolled with a different identity certificate.
    #[error("chip {chip_id} is enrolled with a different identity certificate")]
    Conflict {
        /// The chip.
        chip_id: ChipId,
    },
    /// A license was stored for a chip that is not enrolled.
    #[error("chip {chip_id} is not enrolled")]
    UnknownChip {
        /// The chip.
        chip_id: ChipId,
    },
    /// No license has this token id.
    #[error("license {token_id} not found")]
    NotFound {
        /// The token id asked for.
        token_id: TokenId,
    },
    /// The license cannot be renewed in its current state.
    #[error("license {token_id} is {}", state.as_str())]
    NotActive {
        /// The license.
        token_id: TokenId,
        /// Its state.
        state: LicenseState,
    },
    /// A lineage holds more licenses than [`MAX_LINEAGE`].
    #[error("lineage of license {token_id} exceeds {max} licenses")]
    LineageTooLarge {
        /// The license whose lineage was walked.
        token_id: TokenId,
        /// Most allowed.
        max: usize,
    },
    /// A license with this token id already exists.
    #[error("token id {token_id} is already taken")]
    DuplicateToken {
        /// The token id.
        token_id: TokenId,
    },
    /// The database was written by a newer schema than this build knows.
    #[error("schema version {found} is newer than the supported {supported}")]
    SchemaVersion {
        /// Version found in the database.
        found: i64,
        /// Newest version this build reads.
        supported: i64,
    },
    /// Records are still within their retention period.
    #[error("records of license {token_id} must be kept until {until}")]
    Retained {
        /// The license asked for.
        token_id: TokenId,
        /// Unix seconds when the last member may go.
        until: i64,
    },
    /// A legal hold covers the records.
    #[error("legal hold {id} covers license {token_id}: {reason}")]
    Held {
        /// The license asked for.
        token_id: TokenId,
        /// The hold.
        id: i64,
        /// Its reason.
        reason: String,
    },
    /// A result with this digest is recorded already.
    #[error("this attestation result is recorded already")]
    AlreadyRecorded,
    /// No hold with this id is in force.
    #[error("no legal hold {id} is in force")]
    NoSuchHold {
        /// The id asked for.
        id: i64,
    },
    /// A stored value cannot be read back.
    #[error("stored {what} is unreadable")]
    Corrupt {
        /// Which value.
        what: &'static str,
    },
    /// The database cannot be reached, is locked, full or read-only.
    #[error("database unavailable")]
    Unavailable(#[source] Box<dyn StdError + Send + Sync>),
    /// Any other backend failure.
    #[error("database error")]
    Backend(#[source] Box<dyn StdError + Send + Sync>),
}

fn token_id_from(bytes: &[u8]) -> Result<TokenId, LedgerError> {
    <[u8; 16]>::try_from(bytes)
        .map(TokenId)
        .map_err(|_| LedgerError::Corrupt { what: "token id" })
}

fn chip_id_from(bytes: &[u8]) -> Result<ChipId, LedgerError> {
    <[u8; 32]>::try_from(bytes)
        .map(ChipId)
        .map_err(|_| LedgerError::Corrupt { what: "chip id" })
}

fn to_seq(seq: i64) -> Result<u64, LedgerError> {
    u64::try_from(seq).map_err(|_| LedgerError::Corrupt {
        what: "revocation sequence",
    })
}

#[cfg(test)]
mod tests;
