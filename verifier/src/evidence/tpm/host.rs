//! Appraisal of a host's TPM quote that travels with a chip's evidence:
//! the AK binding, the quote itself, the TPM clock, host firmware PCRs and
//! the tenant PCR.
//!
//! Attacker-controlled: the quote, signature, reported PCR values and the
//! binding bytes. The binding is trusted only once its signature verifies
//! with an issuer key; the quote is checked with the AK the binding names,
//! never with a key the host supplies on its own.
//!
//! The TPM clock check keeps, per replica, the newest (resetCount,
//! restartCount, clock) seen for each host; a quote that goes backwards is
//! refused. Limitation: replicas do not share this memory, so a host could
//! present an older quote to a replica that has not seen a newer one; the
//! nonce check still binds every quote to a fresh challenge.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use chipward_proto::ak_binding::{self, AkBinding};
use chipward_proto::cose::TrustedKeys;
use chipward_proto::result::ClaimResult;
use chipward_proto::tpm::alg;
use chipward_proto::tpm::attest::ClockInfo;
use chipward_proto::tpm::pcr::{PcrSelection, PcrValues};
use ring::digest;
use serde::Deserialize;
use thiserror::Error;

use super::key::QuoteKey;
use super::{QuotePolicy, VerifiedQuote, check_quote};
use crate::claims::{self, code};

/// (host, chip) clocks and bindings a replica remembers; past it the memory
/// is emptied and starts again (the nonce check still holds meanwhile).
const MAX_HOSTS: usize = 1_000_000;
/// Entries accepted in a host's device log.
const MAX_DEVICES: usize = 64;

/// What a host's quote is judged against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPolicy {
    /// SHA-256 PCR that holds the tenant the host serves. Default 16.
    pub tenant_pcr: u32,
    /// SHA-256 PCR the host extends with the id of each chip it holds, in
    /// the order of its device log. Default 23, an application PCR any
    /// locality may extend (17 to 22 belong to dynamic launch).
    pub device_pcr: u32,
    /// Approved values of each firmware PCR (SHA-256 bank).
    pub firmware: BTreeMap<u32, Vec<Vec<u8>>>,
}

impl Default for HostPolicy {
    fn default() -> Self {
        Self {
            tenant_pcr: 16,
            device_pcr: 23,
            firmware: BTreeMap::new(),
        }
    }
}

/// A host policy file that does not parse.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum HostPolicyError {
    /// Not valid TOML of the expected shape.
    #[error("host reference values are not valid toml")]
    Toml(#[source] toml::de::Error),
    /// A PCR index above 23 or a value that is not 32 bytes of hex.
    #[error("host reference value for pcr {0:?} is invalid")]
    Value(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default = "default_tenant_pcr")]
    tenant_pcr: u32,
    #[serde(default = "default_device_pcr")]
    device_pcr: u32,
    #[serde(default)]
    pcrs: BTreeMap<String, Vec<String>>,
}

fn default_tenant_pcr() -> u32 {
    16
}

fn default_device_pcr() -> u32 {
    23
}

impl HostPolicy {
    /// Parses `tenant_pcr = 16` and a `[pcrs]` table of index to approved
    /// SHA-256 values in hex.
    pub fn from_toml(text: &str) -> Result<Self, HostPolicyError> {
        let file: File = toml::from_str(text).map_err(HostPolicyError::Toml)?;
        if file.tenant_pcr > 23 || file.device_pcr > 23 || file.tenant_pcr == file.device_pcr {
            return Err(HostPolicyError::Value(format!(
                "{}/{}",
                file.tenant_pcr, file.device_pcr
            )));
        }
        let mut firmware = BTreeMap::new();
        for (key, values) in file.pcrs {
            let index = key
                .parse::<u32>()
                .ok()
                .filter(|i| *i <= 23 && *i != file.tenant_pcr && *i != file.device_pcr);
            let index = index.ok_or_else(|| HostPolicyError::Value(key.clone()))?;
            let decoded = values
                .iter()
                .map(|v| hex::decode(v).ok().filter(|b| b.len() == 32))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| HostPolicyError::Value(key.clone()))?;
            firmware.insert(index, decoded);
        }
        Ok(Self {
            tenant_pcr: file.tenant_pcr,
            device_pcr: file.device_pcr,
            firmware,
        })
    }

    /// The TOML form [`Self::from_toml`] reads.
    pub fn to_toml(&self) -> String {
        let mut out = format!(
            "tenant_pcr = {}\ndevice_pcr = {}\n\n[pcrs]\n",
            self.tenant_pcr, self.device_pcr
        );
        for (index, values) in &self.firmware {
            let list: Vec<String> = values
                .iter()
                .map(|v| format!("\"{}\"", hex::encode(v)))
                .collect();
            out.push_str(&format!("{index} = [{}]\n", list.join(", ")));
        }
        out
    }

    /// The PCRs a quote must cover: the firmware, tenant and device PCRs.
    pub fn selection(&self) -> PcrSelection {
        let mut indices: Vec<u32> = self.firmware.keys().copied().collect();
        indices.extend([self.tenant_pcr, self.device_pcr]);
        indices.sort_unstable();
        PcrSelection::new(&[(alg::SHA256, &indices)])
    }
}

/// The value the tenant PCR holds once a host, from reset, extended it with
/// the SHA-256 of the tenant's name.
pub fn tenant_pcr_value(tenant: &str) -> Vec<u8> {
    let measured = digest::digest(&digest::SHA256, tenant.as_bytes());
    digest::digest(
        &digest::SHA256,
        &[&[0u8; 32][..], measured.as_ref()].concat(),
    )
    .as_ref()
    .to_vec()
}

/// The value a PCR holds once extended, from reset, with each digest in turn.
pub fn extended(digests: &[[u8; 32]]) -> Vec<u8> {
    digests.iter().fold(vec![0u8; 32], |pcr, d| {
        digest::digest(&digest::SHA256, &[&pcr[..], &d[..]].concat())
            .as_ref()
            .to_vec()
    })
}

/// A host's evidence, as received.
#[derive(Clone, Copy, Debug)]
pub struct HostInput<'a> {
    /// TPMS_ATTEST.
    pub attest: &'a [u8],
    /// TPMT_SIGNATURE.
    pub signature: &'a [u8],
    /// Reported PCR values.
    pub pcrs: &'a PcrValues,
    /// The issuer's AK binding.
    pub ak_binding: &'a [u8],
    /// The host's device log: the id of each chip it holds, in the order
    /// it extended them into the device PCR.
    pub devices: &'a [Vec<u8>],
}

/// What a replica remembers about hosts: the newest TPM clock seen for each
/// key (host and chip), and AK bindings whose signature already verified,
/// by the SHA-256 of their exact bytes, so a host's steady stream of quotes
/// costs one binding signature check, not one per quote. Expiry is still
/// checked on every use.
#[derive(Debug, Default)]
pub struct HostClocks {
    seen: Mutex<HashMap<String, (u32, u32, u64)>>,
    bindings: Mutex<HashMap<[u8; 32], (AkBinding, QuoteKey)>>,
}

impl HostClocks {
    fn cached_binding(&self, bytes: &[u8]) -> Option<(AkBinding, QuoteKey)> {
        let key = binding_digest(bytes);
        self.bindings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned()
    }

    fn remember_binding(&self, bytes: &[u8], binding: &AkBinding, key: &QuoteKey) {
        let mut cache = self.bindings.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_HOSTS {
            cache.clear();
        }
        cache.insert(binding_digest(bytes), (binding.clone(), key.clone()));
    }

    /// Records `clock` for `key` unless it goes backwards.
    pub fn advance(&self, key: &str, clock: &ClockInfo) -> Result<(), String> {
        let now = (clock.reset_count, clock.restart_count, clock.clock);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(last) = seen.get(key)
            && now < *last
        {
            return Err(format!(
                "tpm clock went backwards: reset {} restart {} clock {} after reset {} restart {} clock {}",
                now.0, now.1, now.2, last.0, last.1, last.2
            ));
        }
        if seen.len() >= MAX_HOSTS {
            seen.clear();
        }
        seen.insert(key.to_owned(), now);
        Ok(())
    }
}

/// The host claims of one appraisal.
#[derive(Debug)]
pub struct HostClaims {
    /// `host.binding`.
    pub binding: ClaimResult,
    /// `host.quote`.
    pub quote: ClaimResult,
    /// `host.clock`.
    pub clock: ClaimResult,
    /// `host.firmware`.
    pub firmware: ClaimResult,
    /// `host.tenant`.
    pub tenant: ClaimResult,
    /// `host.device`.
    pub device: ClaimResult,
    /// The host id, once the binding verified.
    pub host_id: Option<String>,
}

/// What host appraisal is judged with, shared by every request.
#[derive(Clone, Copy, Debug)]
pub struct HostContext<'a> {
    /// Firmware and tenant PCR policy.
    pub policy: &'a HostPolicy,
    /// Keys AK bindings must be signed with.
    pub issuer_keys: &'a TrustedKeys,
    /// TPM clocks seen so far.
    pub clocks: &'a HostClocks,
}

/// Appraises a host quote. `nonce` is the host quote nonce the appraisal
/// expects; `tenant` the license's tenant once the license verified; `chip`
/// the chip the quote travels with, once its evidence proved it. The TPM
/// clock must not go backwards across the appraisals of one chip in one
/// host: a host's quotes for different chips may arrive in any order.
pub fn appraise_host(
    input: &HostInput<'_>,
    nonce: &[u8; 32],
    tenant: Option<&str>,
    chip: Option<&str>,
    ctx: &HostContext<'_>,
    now: i64,
) -> HostClaims {
    let HostContext { policy, clocks, .. } = *ctx;
    let binding = match binding(input.ak_binding, ctx, now) {
        Ok((b, key)) => Ok((b, key)),
        Err(reason) => Err(claims::fail(
            claims::HOST_BINDING,
            code::HOST_BINDING,
            reason,
        )),
    };
    let (binding, key) = match binding {
        Ok(pair) => pair,
        Err(claim) => {
            let depends = |name| {
                claims::unknown(
                    name,
                    code::DEPENDS,
                    "not decided: host.binding did not pass",
                )
            };
            return HostClaims {
                binding: claim,
                quote: depends(claims::HOST_QUOTE),
                clock: depends(claims::HOST_CLOCK),
                firmware: depends(claims::HOST_FIRMWARE),
                tenant: depends(claims::HOST_TENANT),
                device: depends(claims::HOST_DEVICE),
                host_id: None,
            };
        }
    };
    let binding_claim = claims::pass(
        claims::HOST_BINDING,
        format!("ak bound to host {}", short(&binding.host_id)),
    );

    let quote_policy = QuotePolicy {
        selection: policy.selection(),
        allow_sha1: false,
    };
    let quote = check_quote(
        input.attest,
        input.signature,
        &key,
        nonce,
        input.pcrs,
        &quote_policy,
    );
    let verified = match quote {
        Ok(v) => v,
        Err(e) => {
            let reason = claims::with_sources(&e);
            let depends =
                |name| claims::unknown(name, code::DEPENDS, "not decided: host.quote did not pass");
            return HostClaims {
                binding: binding_claim,
                quote: claims::fail(claims::HOST_QUOTE, code::HOST_QUOTE, reason),
                clock: depends(claims::HOST_CLOCK),
                firmware: depends(claims::HOST_FIRMWARE),
                tenant: depends(claims::HOST_TENANT),
                device: depends(claims::HOST_DEVICE),
                host_id: Some(binding.host_id),
            };
        }
    };

    HostClaims {
        quote: claims::pass(
            claims::HOST_QUOTE,
            "quote signed by the bound ak over the expected nonce and pcrs",
        ),
        clock: match chip {
            // Only appraisals whose chip evidence held are remembered, so
            // the memory grows with genuine appraisals alone.
            None => claims::unknown(
                claims::HOST_CLOCK,
                code::DEPENDS,
                "not decided: chip evidence did not hold",
            ),
            Some(chip) => match clocks.advance(
                &format!("{}/{chip}", binding.host_id),
                &verified.attest.clock_info,
            ) {
                Ok(()) => claims::pass(claims::HOST_CLOCK, "tpm clock moved forward"),
                Err(reason) => claims::fail(claims::HOST_CLOCK, code::HOST_CLOCK, reason),
            },
        },
        firmware: firmware(&verified, policy),
        tenant: tenant_claim(&verified, policy, tenant),
        device: device_claim(&verified, policy, input.devices, chip),
        binding: binding_claim,
        host_id: Some(binding.host_id),
    }
}

fn binding(bytes: &[u8], ctx: &HostContext<'_>, now: i64) -> Result<(AkBinding, QuoteKey), String> {
    let (b, key) = match ctx.clocks.cached_binding(bytes) {
        Some(hit) => hit,
        None => {
            let b =
                ak_binding::verify(bytes, ctx.issuer_keys).map_err(|e| claims::with_sources(&e))?;
            let public = hex::decode(&b.ak_public)
                .map_err(|_| "ak binding holds no readable key".to_owned())?;
            let key =
                QuoteKey::from_tpm2b_public(&public).map_err(|e| format!("ak binding key: {e}"))?;
            ctx.clocks.remember_binding(bytes, &b, &key);
            (b, key)
        }
    };
    if now > b.expires_at {
        return Err(format!("ak binding expired at {}", b.expires_at));
    }
    Ok((b, key))
}

fn binding_digest(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, bytes).as_ref());
    out
}

fn firmware(quote: &VerifiedQuote, policy: &HostPolicy) -> ClaimResult {
    if policy.firmware.is_empty() {
        return claims::unknown(
            claims::HOST_FIRMWARE,
            code::NO_REFERENCE,
            "no host firmware reference values",
        );
    }
    for (index, approved) in &policy.firmware {
        let value = quote.pcrs.0.get(&(alg::SHA256, *index));
        if !value.is_some_and(|v| approved.contains(v)) {
            return claims::fail(
                claims::HOST_FIRMWARE,
                code::HOST_FIRMWARE,
                format!("pcr {index} is not an approved firmware value"),
            );
        }
    }
    claims::pass(
        claims::HOST_FIRMWARE,
        format!("{} firmware pcrs match", policy.firmware.len()),
    )
}

fn tenant_claim(quote: &VerifiedQuote, policy: &HostPolicy, tenant: Option<&str>) -> ClaimResult {
    let Some(tenant) = tenant else {
        return claims::unknown(
            claims::HOST_TENANT,
            code::DEPENDS,
            "not decided: license signature did not pass",
        );
    };
    let value = quote.pcrs.0.get(&(alg::SHA256, policy.tenant_pcr));
    if value.is_some_and(|v| *v == tenant_pcr_value(tenant)) {
        claims::pass(
            claims::HOST_TENANT,
            format!("pcr {} records tenant {tenant:?}", policy.tenant_pcr),
        )
    } else {
        claims::fail(
            claims::HOST_TENANT,
            code::HOST_TENANT,
            format!(
                "pcr {} does not record the license's tenant",
                policy.tenant_pcr
            ),
        )
    }
}

/// The chip must be in the host's device log, and the log must replay to
/// the signed device PCR.
fn device_claim(
    quote: &VerifiedQuote,
    policy: &HostPolicy,
    devices: &[Vec<u8>],
    chip: Option<&str>,
) -> ClaimResult {
    let Some(chip) = chip else {
        return claims::unknown(
            claims::HOST_DEVICE,
            code::DEPENDS,
            "not decided: chip evidence did not hold",
        );
    };
    let digests: Option<Vec<[u8; 32]>> = devices
        .iter()
        .map(|d| <[u8; 32]>::try_from(d.as_slice()).ok())
        .collect();
    let Some(digests) = digests.filter(|d| d.len() <= MAX_DEVICES) else {
        return claims::fail(
            claims::HOST_DEVICE,
            code::HOST_DEVICE,
            "device log entries must be 32-byte chip ids",
        );
    };
    let signed = quote.pcrs.0.get(&(alg::SHA256, policy.device_pcr));
    if signed != Some(&extended(&digests)) {
        return claims::fail(
            claims::HOST_DEVICE,
            code::HOST_DEVICE,
            format!(
                "device log does not replay to the signed pcr {}",
                policy.device_pcr
            ),
        );
    }
    if !digests.iter().any(|d| hex::encode(d) == chip) {
        return claims::fail(
            claims::HOST_DEVICE,
            code::HOST_DEVICE,
            "the host's measured device log does not hold this chip",
        );
    }
    claims::pass(
        claims::HOST_DEVICE,
        format!("host measured this chip among {} devices", digests.len()),
    )
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_value_is_one_extend_from_zero() {
        let measured: [u8; 32] = digest::digest(&digest::SHA256, b"acme-ai")
            .as_ref()
            .try_into()
            .unwrap();
        assert_eq!(tenant_pcr_value("acme-ai"), extended(&[measured]));
        assert_ne!(tenant_pcr_value("acme-ai"), tenant_pcr_value("acme-ai "));
    }

    #[test]
    fn clocks_may_not_go_backwards() {
        let clocks = HostClocks::default();
        let at = |reset, restart, clock| ClockInfo {
            clock,
            reset_count: reset,
            restart_count: restart,
            safe: true,
        };
        assert!(clocks.advance("h", &at(1, 0, 100)).is_ok());
        assert!(clocks.advance("h", &at(1, 0, 150)).is_ok());
        assert!(clocks.advance("h", &at(1, 0, 120)).is_err());
        assert!(clocks.advance("h", &at(0, 9, 999)).is_err());
        // A reset starts the clock again, and that is fine.
        assert!(clocks.advance("h", &at(2, 0, 5)).is_ok());
        assert!(clocks.advance("other", &at(0, 0, 1)).is_ok());
    }

    #[test]
    fn policy_round_trips_and_selects_firmware_and_tenant_pcrs() {
        let mut policy = HostPolicy::default();
        policy.firmware.insert(0, vec![vec![1; 32]]);
        policy.firmware.insert(7, vec![vec![2; 32], vec![3; 32]]);
        assert_eq!(HostPolicy::from_toml(&policy.to_toml()).unwrap(), policy);
        assert_eq!(policy.selection().banks[0].indices(), vec![0, 7, 16, 23]);
        assert!(HostPolicy::from_toml("[pcrs]\n24 = []\n").is_err());
        assert!(
            HostPolicy::from_toml("[pcrs]\n16 = []\n").is_err(),
            "tenant pcr is not firmware"
        );
        assert!(HostPolicy::from_toml("[pcrs]\n1 = [\"abcd\"]\n").is_err());
        assert!(
            HostPolicy::from_toml("[pcrs]\n23 = []\n").is_err(),
            "device pcr is not firmware"
        );
        assert!(
            HostPolicy::from_toml("tenant_pcr = 23\n").is_err(),
            "tenant and device pcrs differ"
        );
    }
}
