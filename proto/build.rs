//! Generates the gRPC code from `proto/` without a system `protoc`: protox
//! compiles the .proto files in Rust and tonic-prost-build writes the stubs.
//! The compiled descriptors are also written out encoded, for server
//! reflection.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/chipward/v1/common.proto",
        "proto/chipward/v1/compliance.proto",
        "proto/chipward/v1/issuer.proto",
        "proto/chipward/v1/verifier.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }

    let descriptors = protox::compile(files, ["proto"])?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("chipward_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
