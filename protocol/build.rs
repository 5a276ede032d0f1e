//! Generates the prost types from `spec/proto` (the single source of truth)
//! with protox, so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time, not with `env!`: a build script compiled in one clone
    // is reused by another clone sharing the target dir, and must not point
    // back at the first clone's files.
    let proto_dir = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../spec/proto");
    let files = [
        "frame.proto",
        "message.proto",
        "conversation.proto",
        "platform.proto",
        "user.proto",
        "group.proto",
        "lifecycle.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={}", proto_dir.join(f).display());
    }
    let fds = protox::compile(files, [&proto_dir])?;
    prost_build::Config::new().btree_map(["."]).compile_fds(fds)?;
    Ok(())
}
