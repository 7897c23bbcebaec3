//! Compiles `proto/*.proto` with protox (pure Rust, no system `protoc`) and tonic-prost-build,
//! and writes `methods.rs`: every RPC of every service, so authorization tables and their
//! tests can be checked against the `.proto` files rather than a hand-kept list.

use std::fmt::Write as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/raft.proto",
        "proto/control.proto",
        "proto/agent.proto",
    ];
    let fds = protox::compile(files, ["proto"])?;
    let mut methods = String::from("&[\n");
    for file in &fds.file {
        for service in &file.service {
            for method in &service.method {
                writeln!(
                    methods,
                    "    ({:?}, {:?}),",
                    format!("{}.{}", file.package(), service.name()),
                    method.name()
                )?;
            }
        }
    }
    methods.push(']');
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("methods.rs"), methods)?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Snapshot data as `Bytes`: a chunk goes from the sender's read buffer to the wire,
        // and from the receiver's frame buffer to `zfs receive`, without a copy into a Vec.
        .bytes(".flocker.agent.Chunk.data")
        .bytes(".flocker.agent.ExportChunk.data")
        .bytes(".flocker.control.BackupChunk.data")
        .bytes(".flocker.control.RestoreChunk.data")
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
