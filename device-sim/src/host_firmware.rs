//! What a simulated host's firmware measures into its TPM, and the host
//! policy a vendor publishes for it. Needs no TPM, so the verifier's policy
//! can be built without the TPM backend.

use chipward_verifier::evidence::tpm::host::{HostPolicy, extended};
use ring::digest;

/// The firmware PCRs a host measures into.
pub const FIRMWARE_PCRS: [u32; 8] = [0, 1, 2, 3, 4, 5, 6, 7];
/// The PCR that records the tenant.
pub const TENANT_PCR: u32 = 16;
/// The PCR that records the chips a host holds.
pub const DEVICE_PCR: u32 = 23;

/// The measurement of each of a host firmware image's eight components.
pub fn firmware_digests(firmware: &str) -> Vec<[u8; 32]> {
    (0..FIRMWARE_PCRS.len())
        .map(|i| sha256(format!("host-firmware/{firmware}/component-{i}").as_bytes()))
        .collect()
}

/// The host policy a vendor publishes for `firmware`: each firmware PCR
/// extended once, from reset, with its component.
pub fn host_policy(firmware: &str) -> HostPolicy {
    let mut policy = HostPolicy::default();
    for (pcr, component) in FIRMWARE_PCRS.iter().zip(firmware_digests(firmware)) {
        policy.firmware.insert(*pcr, vec![extended(&[component])]);
    }
    policy.tenant_pcr = TENANT_PCR;
    policy.device_pcr = DEVICE_PCR;
    policy
}

/// SHA-256 as an array.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, bytes).as_ref());
    out
}
