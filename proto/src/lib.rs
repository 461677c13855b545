//! Every byte format that crosses a Chipward process boundary.

/// Generated gRPC messages and services for `chipward.v1`.
#[allow(missing_docs, unreachable_pub, unused_qualifications, clippy::all)]
pub mod grpc {
    tonic::include_proto!("chipward.v1");
}
