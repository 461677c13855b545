//! Every byte format that crosses a Chipward process boundary, with one
//! encoder and one decoder each: the gRPC services, the license token, the
//! attestation result, the revocation list, verifier challenges and SPDM
//! measurement transcripts.
//!
//! Decoders here treat their input as hostile: sizes are bounded before
//! parsing and malformed input is an error value, never a panic. Signed
//! objects are only handed out after their signature holds.

pub mod access;
pub mod ak_binding;
pub mod audit;
pub mod cose;
pub mod ids;
pub mod landmark;
pub mod license;
pub mod metrics;
pub mod nonce;
pub mod rate_limit;
pub mod request_id;
pub mod result;
pub mod revocation;
pub mod serving;
pub mod spdm;
pub mod tls;
pub mod tpm;

/// Generated gRPC messages and services for `chipward.v1`.
#[allow(missing_docs, unreachable_pub, unused_qualifications, clippy::all)]
pub mod grpc {
    tonic::include_proto!("chipward.v1");

    /// The encoded `google.protobuf.FileDescriptorSet` of every Chipward
    /// .proto file, as compiled for this build; servers hand it to gRPC
    /// server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/chipward_descriptor.bin"));
}

pub use ids::{ChipId, TokenId};
