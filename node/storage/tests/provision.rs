//! The SSD provisioning test on real files: a short run on the build disk measures real
//! O_DIRECT I/O (never eligible, being shorter than the protocol); tmpfs, which has no
//! O_DIRECT, gives the typed, explained error.

use std::time::Duration;

use magnet_storage::provision::{run, ProvisionConfig, ProvisionError, Verdict};

#[test]
fn a_short_direct_io_run_measures_reads_and_writes_but_cannot_certify() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut cfg = ProvisionConfig::paper(dir.path());
    cfg.file_bytes = 8 << 20;
    cfg.queue_depth = 4;
    cfg.phase = Duration::from_millis(300);
    cfg.min_read_mbps = 0.0;
    cfg.min_write_mbps = 0.0;
    let mut stages = Vec::new();
    match run(&cfg, |s| stages.push(s.to_string())) {
        Ok(r) => {
            assert!(r.read.ops > 0 && r.write.ops > 0, "{r:?}");
            assert!(r.read.mbps > 0.0 && r.write.mbps > 0.0);
            assert_eq!(r.verdict, Verdict::Incomplete);
            assert_eq!(stages.len(), 3);
        }
        Err(ProvisionError::DirectIoUnsupported { path, reason }) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI's build disk must support O_DIRECT: {} ({reason})",
                path.display()
            );
            eprintln!("SKIP: {} has no O_DIRECT ({reason})", path.display());
        }
        Err(e) => panic!("{e}"),
    }
    // The test file is removed.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_filesystem_without_o_direct_gets_a_clear_error() {
    let shm = std::path::Path::new("/dev/shm");
    if !shm.is_dir() {
        eprintln!("SKIP: no /dev/shm tmpfs here");
        return;
    }
    let dir = tempfile::tempdir_in(shm).unwrap();
    let mut cfg = ProvisionConfig::paper(dir.path());
    cfg.file_bytes = 1 << 20;
    cfg.phase = Duration::from_millis(50);
    match run(&cfg, |_| {}) {
        Err(e @ ProvisionError::DirectIoUnsupported { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("O_DIRECT") && msg.contains("--dir"), "{msg}");
        }
        // Some kernels (≥ 6.6) give tmpfs O_DIRECT support; then the run simply works.
        Ok(r) => eprintln!("tmpfs here supports O_DIRECT: {:?}", r.verdict),
        Err(e) => panic!("unexpected error: {e}"),
    }
}
