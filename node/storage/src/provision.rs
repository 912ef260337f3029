//! The SSD provisioning test that decides storage-tier eligibility (paper §11.2).
//!
//! It creates a test file (default 256 MiB) in the storage directory, then runs 4 KiB random
//! reads and then 4 KiB random writes with `O_DIRECT` (bypassing the page cache, so the device
//! is measured, not RAM), each for a fixed time (default 5 s) with `queue_depth` threads
//! (default 16) each keeping one request in flight. Throughput is compared with thresholds
//! (paper: ≥ 100 MB/s read, ≥ 50 MB/s write) that a devnet on a slow virtual disk may lower.
//!
//! # Guarantees
//! * A filesystem that refuses `O_DIRECT` (tmpfs, some overlay and network filesystems) yields
//!   [`ProvisionError::DirectIoUnsupported`] with the path, never a silently cached measurement.
//! * A node is [`Verdict::Eligible`] only if both thresholds are met *and* the run followed the
//!   full protocol (file ≥ 256 MiB, queue depth ≥ 16, ≥ 5 s per phase); shorter runs (used by
//!   unit tests) can report figures but never make a node eligible.
//! * The test file is removed afterwards.
//!
//! # Non-guarantees
//! Writes are `O_DIRECT` without `O_SYNC`, as fio measures by default: the device's own write
//! cache may absorb part of a short run.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Block size of the test (4 KiB).
pub const BLOCK: usize = 4096;
/// Protocol minimum file size (256 MiB).
pub const PROTOCOL_FILE_BYTES: u64 = 256 << 20;
/// Protocol minimum queue depth.
pub const PROTOCOL_QUEUE_DEPTH: usize = 16;
/// Protocol minimum duration per phase.
pub const PROTOCOL_PHASE: Duration = Duration::from_secs(5);

#[repr(C, align(4096))]
struct Block([u8; BLOCK]);

/// Test settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvisionConfig {
    /// Directory to test (the storage directory).
    pub dir: PathBuf,
    /// Test file size in bytes (rounded down to a 4 KiB multiple).
    pub file_bytes: u64,
    /// Concurrent requests.
    pub queue_depth: usize,
    /// Duration of each phase.
    pub phase: Duration,
    /// Read threshold, MB/s (10^6 bytes).
    pub min_read_mbps: f64,
    /// Write threshold, MB/s.
    pub min_write_mbps: f64,
}

impl ProvisionConfig {
    /// The paper's protocol and thresholds for `dir`.
    pub fn paper(dir: impl Into<PathBuf>) -> Self {
        ProvisionConfig {
            dir: dir.into(),
            file_bytes: PROTOCOL_FILE_BYTES,
            queue_depth: PROTOCOL_QUEUE_DEPTH,
            phase: PROTOCOL_PHASE,
            min_read_mbps: 100.0,
            min_write_mbps: 50.0,
        }
    }

    fn follows_protocol(&self) -> bool {
        self.file_bytes >= PROTOCOL_FILE_BYTES
            && self.queue_depth >= PROTOCOL_QUEUE_DEPTH
            && self.phase >= PROTOCOL_PHASE
    }
}

/// Why the test could not run.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The filesystem does not support direct I/O.
    #[error(
        "the filesystem at {path} does not support O_DIRECT ({reason}); the SSD test needs a real block device filesystem (ext4, xfs, btrfs): point --dir at one"
    )]
    DirectIoUnsupported {
        /// Where.
        path: PathBuf,
        /// OS error text.
        reason: String,
    },
    /// A setting out of range.
    #[error("invalid provisioning setting: {0}")]
    Config(String),
    /// Filesystem error.
    #[error("{during} {path}: {source}")]
    Io {
        /// What was done.
        during: &'static str,
        /// Path.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
}

/// Figures of one phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// Operations completed.
    pub ops: u64,
    /// Seconds measured.
    pub seconds: f64,
    /// MB/s (10^6 bytes per second).
    pub mbps: f64,
    /// Operations per second.
    pub iops: f64,
}

/// Eligibility decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Verdict {
    /// Meets both thresholds under the full protocol: may join the storage tier.
    Eligible,
    /// Too slow; demoted to inference-only.
    TooSlow {
        /// What fell short.
        reasons: Vec<String>,
    },
    /// The run was shorter than the protocol; figures are informative only.
    Incomplete,
}

/// The test's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvisionReport {
    /// Settings used.
    pub config: ProvisionConfig,
    /// Random 4 KiB reads.
    pub read: Phase,
    /// Random 4 KiB writes.
    pub write: Phase,
    /// Decision.
    pub verdict: Verdict,
}

/// Decides eligibility from measured figures (pure; table-tested).
pub fn decide(config: &ProvisionConfig, read_mbps: f64, write_mbps: f64) -> Verdict {
    let mut reasons = Vec::new();
    if read_mbps < config.min_read_mbps {
        reasons.push(format!(
            "random 4 KiB read {read_mbps:.1} MB/s < {:.1} MB/s",
            config.min_read_mbps
        ));
    }
    if write_mbps < config.min_write_mbps {
        reasons.push(format!(
            "random 4 KiB write {write_mbps:.1} MB/s < {:.1} MB/s",
            config.min_write_mbps
        ));
    }
    if !reasons.is_empty() {
        Verdict::TooSlow { reasons }
    } else if config.follows_protocol() {
        Verdict::Eligible
    } else {
        Verdict::Incomplete
    }
}

fn open_direct(path: &Path, write: bool) -> Result<File, ProvisionError> {
    OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::EINVAL) {
                ProvisionError::DirectIoUnsupported {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                }
            } else {
                ProvisionError::Io {
                    during: "opening with O_DIRECT",
                    path: path.to_path_buf(),
                    source: e,
                }
            }
        })
}

fn run_phase(
    file: &Arc<File>,
    path: &Path,
    blocks: u64,
    cfg: &ProvisionConfig,
    write: bool,
    seed: u64,
) -> Result<Phase, ProvisionError> {
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    let start = Instant::now();
    for t in 0..cfg.queue_depth {
        let file = Arc::clone(file);
        let stop = Arc::clone(&stop);
        let ops = Arc::clone(&ops);
        let mut x = seed ^ (t as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        handles.push(std::thread::spawn(move || -> std::io::Result<()> {
            let mut buf = Box::new(Block([0u8; BLOCK]));
            while !stop.load(Ordering::Relaxed) {
                // xorshift64*: cheap, good enough to scatter offsets.
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
                let off = (r % blocks) * BLOCK as u64;
                if write {
                    buf.0[..8].copy_from_slice(&r.to_le_bytes());
                    file.write_all_at(&buf.0, off)?;
                } else {
                    file.read_exact_at(&mut buf.0, off)?;
                }
                ops.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }));
    }
    std::thread::sleep(cfg.phase);
    stop.store(true, Ordering::Relaxed);
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => first_err = first_err.or(Some(e)),
            Err(_) => first_err = first_err.or(Some(std::io::Error::other("I/O thread panicked"))),
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    if let Some(e) = first_err {
        if e.raw_os_error() == Some(libc::EINVAL) {
            return Err(ProvisionError::DirectIoUnsupported {
                path: path.to_path_buf(),
                reason: e.to_string(),
            });
        }
        return Err(ProvisionError::Io {
            during: if write {
                "random writes to"
            } else {
                "random reads from"
            },
            path: path.to_path_buf(),
            source: e,
        });
    }
    let n = ops.load(Ordering::Relaxed);
    let bytes = n as f64 * BLOCK as f64;
    Ok(Phase {
        ops: n,
        seconds,
        mbps: bytes / seconds / 1e6,
        iops: n as f64 / seconds,
    })
}

struct Cleanup(PathBuf);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs the test. `progress` gets a short label for each stage.
pub fn run(
    cfg: &ProvisionConfig,
    mut progress: impl FnMut(&str),
) -> Result<ProvisionReport, ProvisionError> {
    if cfg.queue_depth == 0 || cfg.queue_depth > 1024 {
        return Err(ProvisionError::Config(format!(
            "queue depth {} must be 1..=1024",
            cfg.queue_depth
        )));
    }
    let blocks = cfg.file_bytes / BLOCK as u64;
    if blocks < 256 {
        return Err(ProvisionError::Config(format!(
            "file size {} bytes is below the 1 MiB minimum",
            cfg.file_bytes
        )));
    }
    if cfg.phase.is_zero() {
        return Err(ProvisionError::Config("phase duration must be > 0".into()));
    }
    std::fs::create_dir_all(&cfg.dir).map_err(|source| ProvisionError::Io {
        during: "creating",
        path: cfg.dir.clone(),
        source,
    })?;
    let path = cfg
        .dir
        .join(format!(".magnet-ssd-test-{}", std::process::id()));
    let _cleanup = Cleanup(path.clone());
    // Probe O_DIRECT before writing hundreds of MB.
    {
        File::create(&path).map_err(|source| ProvisionError::Io {
            during: "creating",
            path: path.clone(),
            source,
        })?;
        open_direct(&path, false)?;
    }
    progress("writing the test file");
    {
        let mut f = File::create(&path).map_err(|source| ProvisionError::Io {
            during: "creating",
            path: path.clone(),
            source,
        })?;
        // Incompressible filler so compressing or deduplicating devices are measured honestly.
        let mut chunk = vec![0u8; 1 << 20];
        let mut x = 0x1234_5678_9ABC_DEF0u64;
        for w in chunk.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        let mut left = blocks * BLOCK as u64;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            f.write_all(&chunk[..n])
                .map_err(|source| ProvisionError::Io {
                    during: "writing",
                    path: path.clone(),
                    source,
                })?;
            chunk.rotate_left(4099);
            left -= n as u64;
        }
        f.sync_all().map_err(|source| ProvisionError::Io {
            during: "syncing",
            path: path.clone(),
            source,
        })?;
    }
    progress("random 4 KiB reads");
    let rf = Arc::new(open_direct(&path, false)?);
    let read = run_phase(&rf, &path, blocks, cfg, false, 0xA5A5)?;
    drop(rf);
    progress("random 4 KiB writes");
    let wf = Arc::new(open_direct(&path, true)?);
    let write = run_phase(&wf, &path, blocks, cfg, true, 0x5A5A)?;
    wf.sync_all().map_err(|source| ProvisionError::Io {
        during: "syncing",
        path: path.clone(),
        source,
    })?;
    let verdict = decide(cfg, read.mbps, write.mbps);
    Ok(ProvisionReport {
        config: cfg.clone(),
        read,
        write,
        verdict,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eligibility_table() {
        let paper = ProvisionConfig::paper("/x");
        let mut short = paper.clone();
        short.phase = Duration::from_millis(100);
        let mut devnet = paper.clone();
        devnet.min_read_mbps = 10.0;
        devnet.min_write_mbps = 5.0;
        let cases: Vec<(&str, &ProvisionConfig, f64, f64, bool, usize)> = vec![
            // (what, config, read, write, eligible, reasons)
            ("fast ssd", &paper, 400.0, 200.0, true, 0),
            ("exactly at thresholds", &paper, 100.0, 50.0, true, 0),
            ("slow reads", &paper, 99.9, 200.0, false, 1),
            ("slow writes", &paper, 400.0, 49.0, false, 1),
            ("usb stick", &paper, 20.0, 2.0, false, 2),
            ("devnet thresholds", &devnet, 20.0, 6.0, true, 0),
            (
                "short run is never eligible",
                &short,
                400.0,
                200.0,
                false,
                0,
            ),
        ];
        for (what, cfg, r, w, eligible, reasons) in cases {
            let v = decide(cfg, r, w);
            assert_eq!(v == Verdict::Eligible, eligible, "{what}: {v:?}");
            if let Verdict::TooSlow { reasons: rs } = &v {
                assert_eq!(rs.len(), reasons, "{what}");
            }
        }
    }

    #[test]
    fn bad_settings_are_refused_before_touching_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = ProvisionConfig::paper(dir.path());
        c.queue_depth = 0;
        assert!(matches!(run(&c, |_| {}), Err(ProvisionError::Config(_))));
        let mut c = ProvisionConfig::paper(dir.path());
        c.file_bytes = 4096;
        assert!(matches!(run(&c, |_| {}), Err(ProvisionError::Config(_))));
    }
}
