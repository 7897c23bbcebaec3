//! Compiles `proto/*.proto` with protox (pure Rust, no system `protoc`) and tonic-prost-build.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/raft.proto",
        "proto/control.proto",
        "proto/agent.proto",
    ];
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Snapshot data as `Bytes`: a chunk goes from the sender's read buffer to the wire,
        // and from the receiver's frame buffer to `zfs receive`, without a copy into a Vec.
        .bytes(".flocker.agent.Chunk.data")
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
