//! Trusted vendor roots and a cache of chains already validated against
//! them, so the steady state of appraisal costs one evidence signature
//! rather than one per certificate.
//!
//! Chains arrive from devices and are attacker-controlled. A cache entry is
//! keyed by the SHA-256 of every certificate's exact bytes, so any change to
//! any byte misses the cache and is validated afresh; an entry is used only
//! inside the validity window common to all certificates of its chain.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chipward_certs::chain::{ChainError, ChainPolicy, TrustAnchor, ValidatedChain, validate_chain};
use ring::digest;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Cached chains kept at most; the cache is emptied when full.
const CACHE_CAPACITY: usize = 100_000;

/// The vendor roots a verifier trusts, with a validation cache.
pub struct Roots {
    anchors: Vec<(TrustAnchor, Vec<u8>)>,
    policy: ChainPolicy,
    cache: Mutex<HashMap<[u8; 32], Cached>>,
}

struct Cached {
    chain: Arc<ValidatedChain>,
    not_before: i64,
    not_after: i64,
}

impl std::fmt::Debug for Roots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let subjects: Vec<String> = self.anchors.iter().map(|(a, _)| a.subject()).collect();
        f.debug_struct("Roots").field("anchors", &subjects).finish()
    }
}

impl Roots {
    /// Trusts each DER certificate in `roots`.
    pub fn new(roots: &[Vec<u8>], policy: ChainPolicy) -> Result<Self, ChainError> {
        let anchors = roots
            .iter()
            .map(|der| Ok((TrustAnchor::from_der(der)?, der.clone())))
            .collect::<Result<Vec<_>, ChainError>>()?;
        Ok(Self {
            anchors,
            policy,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The chain-building limits in force.
    pub fn policy(&self) -> &ChainPolicy {
        &self.policy
    }

    /// Validates `chain` (leaf first) to any trusted root at `now` (Unix
    /// seconds). With several roots, the error reported is the one from the
    /// root whose subject the chain names, or else the first.
    pub fn validate(&self, chain: &[Vec<u8>], now: i64) -> Result<Arc<ValidatedChain>, ChainError> {
        let key = chain_digest(chain);
        if let Some(hit) = self.cached(&key, now) {
            return Ok(hit);
        }

        let mut first_error = None;
        for (anchor, anchor_der) in &self.anchors {
            match validate_chain(chain, anchor, now, &self.policy) {
                Ok(valid) => {
                    let valid = Arc::new(valid);
                    self.remember(key, &valid, chain, anchor_der);
                    return Ok(valid);
                }
                Err(e) => {
                    let names_this_root = matches!(e, ChainError::IssuerMismatch { .. });
                    if first_error.is_none() || !names_this_root {
                        first_error = Some(e);
                    }
                }
            }
        }
        Err(first_error.unwrap_or(ChainError::Empty))
    }

    fn cached(&self, key: &[u8; 32], now: i64) -> Option<Arc<ValidatedChain>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let hit = cache.get(key)?;
        (hit.not_before <= now && now <= hit.not_after).then(|| Arc::clone(&hit.chain))
    }

    fn remember(
        &self,
        key: [u8; 32],
        chain: &Arc<ValidatedChain>,
        ders: &[Vec<u8>],
        anchor: &[u8],
    ) {
        let Some((not_before, not_after)) =
            common_window(ders.iter().map(Vec::as_slice).chain([anchor]))
        else {
            return;
        };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(
            key,
            Cached {
                chain: Arc::clone(chain),
                not_before,
                not_after,
            },
        );
    }
}

fn chain_digest(chain: &[Vec<u8>]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for der in chain {
        ctx.update(&(der.len() as u64).to_be_bytes());
        ctx.update(der);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The latest notBefore and earliest notAfter of the certificates.
fn common_window<'a>(ders: impl Iterator<Item = &'a [u8]>) -> Option<(i64, i64)> {
    let mut window = (i64::MIN, i64::MAX);
    for der in ders {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let validity = cert.validity();
        window.0 = window.0.max(validity.not_before.timestamp());
        window.1 = window.1.min(validity.not_after.timestamp());
    }
    Some(window)
}
