//! Host enrolments that have begun and wait for the host to return its
//! credential: held in memory, bounded, and good for one try each.
//!
//! What goes in has passed every check of `BeginHostEnrolment`; only a
//! [`CertifiedEk`] and an [`AttestationKey`] can make a [`PendingHost`].
//! Attacker-controlled here: the enrolment id and the credential a host
//! sends to complete. The credential itself is never held, only its
//! SHA-256, which [`PendingHost::activate`] compares in constant time; a
//! credential of 32 random bytes cannot be found from its digest.
//!
//! Bounds: at most [`MAX_PENDING`] enrolments in all and
//! [`MAX_PENDING_PER_HOST`] per host. Expired enrolments are cleared when
//! they stand in the way of a new one, and each is removed when it is
//! taken, whatever the outcome.

// Limitation: pending enrolments live in this process only and are lost
// when the issuer restarts; the host then gets `NotFound` and begins again.

// Limitation: `BeginHostEnrolment` needs only public data (an EK
// certificate chain and EK public area), so a caller who knows some hosts'
// EK certificates can keep the store, or one host's share of it, full
// until entries expire. Callers are not authenticated yet; see `serve`.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use chipward_certs::chain::ValidatedEkChain;
use chipward_certs::keys::spki_sha256;
use chipward_proto::ids::IdError;
use ring::digest::{SHA256, digest};
use ring::rand::SecureRandom;
use subtle::ConstantTimeEq;

use super::{AttestationKey, CertifiedEk, HostEnrolmentError, HostId};
use crate::ledger::HostRecord;

/// Most enrolments pending at once, over all hosts.
pub const MAX_PENDING: usize = 10_000;
/// Most enrolments pending at once for one host.
pub const MAX_PENDING_PER_HOST: usize = 4;

/// How often a fresh id is drawn when the first is taken, before the
/// random number generator is judged broken.
const ID_DRAWS: usize = 4;

/// The id of one pending enrolment: 16 random bytes, lowercase hex on the
/// wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnrolmentId(pub [u8; 16]);

impl EnrolmentId {
    /// Parses 32 hex digits.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        if text.len() != 32 {
            return Err(IdError::Length {
                expected: 32,
                got: text.len(),
            });
        }
        let mut id = [0u8; 16];
        hex::decode_to_slice(text, &mut id).map_err(|_| IdError::NotHex)?;
        Ok(Self(id))
    }

    /// Lowercase hex, the wire form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 12 hex digits, for logs: too few to complete with.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..6])
    }
}

impl fmt::Debug for EnrolmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EnrolmentId({})", self.short())
    }
}

/// One enrolment waiting for its credential.
pub struct PendingHost {
    host_id: HostId,
    ak_public: Vec<u8>,
    ak_name: Vec<u8>,
    ek_cert_sha256: [u8; 32],
    tpm_manufacturer: String,
    credential_sha256: [u8; 32],
    expires_at: i64,
}

impl PendingHost {
    /// An enrolment for the host of `chain`, whose EK public area was tied
    /// to it as `_certified`, binding `ak`; `credential` is what was sealed.
    pub fn new(
        chain: &ValidatedEkChain,
        _certified: &CertifiedEk,
        ak: AttestationKey,
        credential: &[u8],
        expires_at: i64,
    ) -> Self {
        Self {
            host_id: HostId(spki_sha256(chain.ek_spki_der())),
            ak_public: ak.public().to_vec(),
            ak_name: ak.name().to_vec(),
            ek_cert_sha256: sha256(chain.ek_cert().der()),
            tpm_manufacturer: chain.tpm().manufacturer().unwrap_or_default().to_owned(),
            credential_sha256: sha256(credential),
            expires_at,
        }
    }

    /// The host.
    pub fn host_id(&self) -> HostId {
        self.host_id
    }

    /// The AK's TPM name.
    pub fn ak_name(&self) -> &[u8] {
        &self.ak_name
    }

    /// Unix seconds; the enrolment holds up to and including this second.
    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }

    /// Checks the credential the host's TPM recovered, in constant time.
    pub fn activate(self, credential: &[u8]) -> Result<ActivatedHost, HostEnrolmentError> {
        let matches: bool = sha256(credential).ct_eq(&self.credential_sha256).into();
        if !matches {
            return Err(HostEnrolmentError::CredentialMismatch {
                host_id: self.host_id,
            });
        }
        Ok(ActivatedHost(self))
    }
}

impl fmt::Debug for PendingHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingHost")
            .field("host_id", &self.host_id)
            .field("ak_name", &hex::encode(&self.ak_name))
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A host whose TPM proved it holds both the certified EK and the AK; only
/// [`PendingHost::activate`] builds one.
#[derive(Debug)]
pub struct ActivatedHost(PendingHost);

impl ActivatedHost {
    /// The host.
    pub fn host_id(&self) -> HostId {
        self.0.host_id
    }

    /// The AK's TPM2B_PUBLIC, as the host sent it.
    pub fn ak_public(&self) -> &[u8] {
        &self.0.ak_public
    }

    /// The AK's TPM name.
    pub fn ak_name(&self) -> &[u8] {
        &self.0.ak_name
    }

    /// SHA-256 of the EK certificate, NV padding cut off.
    pub fn ek_cert_sha256(&self) -> [u8; 32] {
        self.0.ek_cert_sha256
    }

    /// The TPM manufacturer the EK certificate names; empty if none.
    pub fn tpm_manufacturer(&self) -> &str {
        &self.0.tpm_manufacturer
    }

    /// The ledger record of this host's AK, enrolled at `now`.
    pub fn record(&self, now: i64) -> HostRecord {
        HostRecord {
            host_id: self.0.host_id,
            ak_name: self.0.ak_name.clone(),
            ak_public: self.0.ak_public.clone(),
            ek_cert_sha256: self.0.ek_cert_sha256,
            tpm_manufacturer: self.0.tpm_manufacturer.clone(),
            enrolled_at: now,
        }
    }
}

/// The store of pending enrolments, shared by all requests.
pub struct PendingEnrolments {
    entries: Mutex<HashMap<EnrolmentId, PendingHost>>,
    max: usize,
    max_per_host: usize,
}

impl Default for PendingEnrolments {
    /// [`MAX_PENDING`] in all, [`MAX_PENDING_PER_HOST`] per host.
    fn default() -> Self {
        Self::new(MAX_PENDING, MAX_PENDING_PER_HOST)
    }
}

impl PendingEnrolments {
    /// A store holding at most `max` enrolments, `max_per_host` per host.
    pub fn new(max: usize, max_per_host: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            max,
            max_per_host,
        }
    }

    /// Holds `host` under a fresh random id, clearing expired enrolments
    /// first if the store or the host's share of it is full at `now`.
    pub fn insert(
        &self,
        host: PendingHost,
        now: i64,
        rng: &dyn SecureRandom,
    ) -> Result<EnrolmentId, HostEnrolmentError> {
        let mut entries = self.lock();

        // 1. Make room, if there is any to make.
        let of_host = |e: &HashMap<EnrolmentId, PendingHost>| {
            e.values().filter(|p| p.host_id == host.host_id).count()
        };
        if entries.len() >= self.max || of_host(&entries) >= self.max_per_host {
            entries.retain(|_, p| p.expires_at >= now);
        }
        if entries.len() >= self.max {
            return Err(HostEnrolmentError::TooManyPending { max: self.max });
        }
        if of_host(&entries) >= self.max_per_host {
            return Err(HostEnrolmentError::TooManyPendingForHost {
                host_id: host.host_id,
                max: self.max_per_host,
            });
        }

        // 2. An id no other enrolment has.
        for _ in 0..ID_DRAWS {
            let mut id = EnrolmentId([0; 16]);
            rng.fill(&mut id.0)
                .map_err(|_| HostEnrolmentError::Random)?;
            if let Entry::Vacant(slot) = entries.entry(id) {
                slot.insert(host);
                return Ok(id);
            }
        }
        Err(HostEnrolmentError::Random)
    }

    /// Removes and returns the enrolment `id`, which must not have expired
    /// at `now`. It is removed in every case: one try per enrolment.
    pub fn take(&self, id: &EnrolmentId, now: i64) -> Result<PendingHost, HostEnrolmentError> {
        let host = self.lock().remove(id).ok_or(HostEnrolmentError::NotFound)?;
        if now > host.expires_at {
            return Err(HostEnrolmentError::Expired {
                expired_at: host.expires_at,
            });
        }
        Ok(host)
    }

    /// How many enrolments are held, expired ones included.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<EnrolmentId, PendingHost>> {
        // Every change is one map call, so a panic elsewhere while holding
        // the lock cannot leave the map half-changed.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use ring::rand::SystemRandom;

    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn host(n: u8, expires_at: i64) -> PendingHost {
        PendingHost {
            host_id: HostId([n; 32]),
            ak_public: vec![0x00, 0x02, n, n],
            ak_name: [&[0x00, 0x0B][..], &[n; 32]].concat(),
            ek_cert_sha256: [n; 32],
            tpm_manufacturer: "id:00001014".into(),
            credential_sha256: sha256(&[n; 32]),
            expires_at,
        }
    }

    fn store(max: usize, max_per_host: usize) -> PendingEnrolments {
        PendingEnrolments::new(max, max_per_host)
    }

    #[test]
    fn gives_an_enrolment_back_once() {
        let pending = store(4, 2);
        let id = pending
            .insert(host(1, NOW + 300), NOW, &SystemRandom::new())
            .unwrap();
        let got = pending.take(&id, NOW + 300).unwrap();
        assert_eq!(got.host_id(), HostId([1; 32]));
        assert!(matches!(
            pending.take(&id, NOW + 300),
            Err(HostEnrolmentError::NotFound)
        ));
        assert!(pending.is_empty());
    }

    #[test]
    fn an_expired_enrolment_is_refused_and_removed() {
        let pending = store(4, 2);
        let id = pending
            .insert(host(1, NOW + 300), NOW, &SystemRandom::new())
            .unwrap();
        assert!(matches!(
            pending.take(&id, NOW + 301),
            Err(HostEnrolmentError::Expired { expired_at }) if expired_at == NOW + 300
        ));
        assert!(matches!(
            pending.take(&id, NOW + 301),
            Err(HostEnrolmentError::NotFound)
        ));
    }

    #[test]
    fn activates_only_with_the_sealed_credential() {
        let activated = host(1, NOW).activate(&[1; 32]).unwrap();
        assert_eq!(activated.host_id(), HostId([1; 32]));
        assert_eq!(activated.ek_cert_sha256(), [1; 32]);
        let record = activated.record(NOW);
        assert_eq!(record.ak_public, [0x00, 0x02, 1, 1]);
        assert_eq!(record.enrolled_at, NOW);

        for wrong in [&[2u8; 32][..], &[1; 31], &[1; 33], &[0]] {
            assert!(matches!(
                host(1, NOW).activate(wrong),
                Err(HostEnrolmentError::CredentialMismatch { host_id }) if host_id == HostId([1; 32])
            ));
        }
    }

    #[test]
    fn refuses_when_full_until_expired_enrolments_can_be_cleared() {
        let pending = store(2, 2);
        let rng = SystemRandom::new();
        pending.insert(host(1, NOW + 10), NOW, &rng).unwrap();
        pending.insert(host(2, NOW + 20), NOW, &rng).unwrap();
        assert!(matches!(
            pending.insert(host(3, NOW + 30), NOW + 10, &rng),
            Err(HostEnrolmentError::TooManyPending { max: 2 })
        ));
        assert_eq!(pending.len(), 2);

        // Host 1's enrolment is past its second; it makes room.
        pending.insert(host(3, NOW + 30), NOW + 11, &rng).unwrap();
        assert_eq!(pending.len(), 2);
    }

    #[test]
    fn bounds_each_host_separately() {
        let pending = store(10, 2);
        let rng = SystemRandom::new();
        pending.insert(host(1, NOW + 10), NOW, &rng).unwrap();
        pending.insert(host(1, NOW + 20), NOW, &rng).unwrap();
        assert!(matches!(
            pending.insert(host(1, NOW + 30), NOW, &rng),
            Err(HostEnrolmentError::TooManyPendingForHost { max: 2, host_id })
                if host_id == HostId([1; 32])
        ));
        pending.insert(host(2, NOW + 30), NOW, &rng).unwrap();
        pending.insert(host(1, NOW + 30), NOW + 11, &rng).unwrap();
        assert_eq!(pending.len(), 3);
    }

    #[test]
    fn debug_output_leaves_out_the_credential_digest() {
        let shown = format!("{:?}", host(7, NOW));
        assert!(!shown.contains(&hex::encode(sha256(&[7; 32]))), "{shown}");
        assert!(
            !shown.contains(&format!("{:?}", sha256(&[7; 32]))),
            "{shown}"
        );
        assert!(shown.contains("HostId(070707070707)"), "{shown}");
    }

    #[test]
    fn enrolment_ids_parse_from_their_hex() {
        let id = EnrolmentId([0xAB; 16]);
        assert_eq!(EnrolmentId::parse(&id.to_hex()), Ok(id));
        assert_eq!(id.short(), "abababababab");
        assert_eq!(
            EnrolmentId::parse("ab"),
            Err(IdError::Length {
                expected: 32,
                got: 2
            })
        );
        assert_eq!(EnrolmentId::parse(&"g0".repeat(16)), Err(IdError::NotHex));
    }
}
