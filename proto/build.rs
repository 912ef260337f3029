//! Compiles every `.proto` under `proto/magnet/` with protox (pure Rust: no system `protoc`).
use std::path::{Path, PathBuf};

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                collect(&p, out);
            } else if p.extension().is_some_and(|e| e == "proto") {
                out.push(p);
            }
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let mut files = Vec::new();
    collect(&root.join("magnet"), &mut files);
    println!("cargo:rerun-if-changed=magnet");
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    if files.is_empty() {
        return Ok(());
    }
    let fds = protox::compile(&files, [&root])?;
    // Type names give every message `prost::Name`, so `Any::from_msg` writes
    // `/magnet.<pkg>.v1.MsgX` (no domain before the slash, as Cosmos SDK type URLs are).
    let mut config = prost_build::Config::new();
    config.enable_type_names();
    config.type_name_domain(["."], "");
    tonic_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds_with_config(config, fds)?;
    Ok(())
}
