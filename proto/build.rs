//! Generates the gRPC code from `proto/` without a system `protoc`: protox
//! compiles the .proto files in Rust and tonic-prost-build writes the stubs.

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
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
