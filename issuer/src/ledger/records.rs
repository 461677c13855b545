//! What the ledger stores beside chips and licenses: audit records to
//! append, attestation results, signed tree heads and legal holds.

use chipward_proto::audit::AuditEntry;
use chipward_proto::{ChipId, TokenId};

/// One audit log entry and the artefacts it names by digest (license
/// tokens, attestation results, screening lists), stored so an evidence
/// bundle can carry them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    /// The entry; the ledger encodes it and indexes its chip, site and time.
    pub entry: AuditEntry,
    /// Artefacts to keep, each under its SHA-256.
    pub artefacts: Vec<Vec<u8>>,
}

impl AuditRecord {
    /// An entry with no artefacts.
    pub fn new(entry: AuditEntry) -> Self {
        Self {
            entry,
            artefacts: Vec::new(),
        }
    }

    /// Adds an artefact.
    pub fn with_artefact(mut self, bytes: Vec<u8>) -> Self {
        self.artefacts.push(bytes);
        self
    }
}

/// Which records a bundle covers: one chip or one site, over `[from, to)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditSelection {
    /// One chip's records.
    Chip {
        /// The chip.
        chip_id: ChipId,
        /// Unix seconds, inclusive.
        from: i64,
        /// Unix seconds, exclusive.
        to: i64,
    },
    /// One site's records.
    Site {
        /// The site id.
        site_id: String,
        /// Unix seconds, inclusive.
        from: i64,
        /// Unix seconds, exclusive.
        to: i64,
    },
}

impl AuditSelection {
    /// The time range.
    pub fn range(&self) -> (i64, i64) {
        match self {
            Self::Chip { from, to, .. } | Self::Site { from, to, .. } => (*from, *to),
        }
    }
}

/// A signed attestation result the issuer received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultRecord {
    /// SHA-256 of `signed`.
    pub sha256: [u8; 32],
    /// The chip it proves, if any.
    pub chip_id: Option<ChipId>,
    /// Site claimed.
    pub site_id: String,
    /// Tenant claimed.
    pub tenant: String,
    /// Unix seconds of the appraisal.
    pub appraised_at: i64,
    /// The license presented, if readable.
    pub token_id: Option<TokenId>,
    /// The COSE_Sign1 result.
    pub signed: Vec<u8>,
}

/// A signed tree head the issuer published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTreeHead {
    /// Entries it covers.
    pub size: u64,
    /// Its root.
    pub root: [u8; 32],
    /// Unix seconds it was signed.
    pub timestamp: i64,
    /// The COSE_Sign1 tree head.
    pub signed: Vec<u8>,
}

/// A legal hold: records of a chip or a tenant (or all) may not be deleted
/// while it is in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegalHold {
    /// Its id; 0 until placed.
    pub id: i64,
    /// The chip it covers; `None` with no tenant covers everything.
    pub chip_id: Option<ChipId>,
    /// The tenant it covers.
    pub tenant: Option<String>,
    /// Why, for the record.
    pub reason: String,
    /// Unix seconds it was placed.
    pub placed_at: i64,
}

impl LegalHold {
    /// Whether the hold covers records of this chip and tenant.
    pub fn covers(&self, chip_id: &ChipId, tenant: &str) -> bool {
        match (&self.chip_id, &self.tenant) {
            (None, None) => true,
            (Some(c), _) if c == chip_id => true,
            (_, Some(t)) if t == tenant => true,
            _ => false,
        }
    }
}
