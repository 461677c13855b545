//! Simulated accelerators that speak the real evidence formats, and the
//! fleet driver that runs them through enrolment, licensing, attestation and
//! renewal against the real issuer and verifier over gRPC.

pub mod bench;
pub mod bulk;
pub mod chip;
pub mod clock;
pub mod demo;
pub mod fleet;
pub mod geography;
#[cfg(feature = "tpm")]
pub mod host;
pub mod host_firmware;
pub mod landmark;
pub mod progress;
pub mod records;
pub mod swtpm;
#[cfg(feature = "tpm")]
pub mod tpm;
pub mod usage;
