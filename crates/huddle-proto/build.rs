//! Compiles `proto/` (at the workspace root) with protox, a pure-Rust protobuf compiler,
//! so no system `protoc` is needed. Writes the file descriptor set next to the generated
//! code for server reflection (the public API's files only).

use std::path::PathBuf;

use prost::Message;

const PROTOS: &[&str] = &["huddle/v1/rooms.proto", "huddle/internal/v1/node.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let root = root.canonicalize()?;
    for p in PROTOS {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    let fds = protox::compile(PROTOS, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    // Reflection on the public port describes the public API only, not the internal one.
    let mut public = fds.clone();
    public
        .file
        .retain(|f| !f.name().starts_with("huddle/internal/"));
    std::fs::write(out.join("huddle_descriptor.bin"), public.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
