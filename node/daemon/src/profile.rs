//! Hardware profiling for `magnet-worker init`: CPU features, cores, memory, a GPU if one is
//! visible, and a disk write/read test, and the tier they suggest.
//!
//! The suggestion is advice: the registry enforces only the tier's minimum bond, and rewards
//! follow verified work of the tier's kind, so a node that claims more than it can do earns
//! nothing extra.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::{DaemonError, Result};

/// What the machine has.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct HardwareProfile {
    /// Logical CPUs available to this process.
    pub cores: usize,
    /// SIMD features the BitNet kernel can use.
    pub cpu_features: Vec<String>,
    /// Total memory (bytes), from `/proc/meminfo` where available.
    pub memory_bytes: Option<u64>,
    /// A visible NVIDIA GPU (device node), if any.
    pub gpu: Option<String>,
    /// Sequential write throughput of the home disk (MB/s, fsync'd).
    pub disk_write_mb_s: f64,
    /// Sequential read throughput (MB/s; may come from the page cache).
    pub disk_read_mb_s: f64,
    /// The tier this suggests.
    pub suggested_tier: String,
}

fn cpu_features() -> Vec<String> {
    #[allow(unused_mut)]
    let mut f = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        for (name, on) in [
            ("avx2", std::is_x86_feature_detected!("avx2")),
            ("fma", std::is_x86_feature_detected!("fma")),
            ("avx512f", std::is_x86_feature_detected!("avx512f")),
            ("avx512vnni", std::is_x86_feature_detected!("avx512vnni")),
        ] {
            if on {
                f.push(name.to_string());
            }
        }
    }
    #[cfg(target_arch = "aarch64")]
    f.push("neon".to_string());
    f
}

fn memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

fn gpu() -> Option<String> {
    if Path::new("/dev/nvidia0").exists() {
        return Some("nvidia (/dev/nvidia0)".into());
    }
    None
}

/// Writes and reads back `mb` MiB in `dir`, fsync'd, and times both.
pub fn disk_test(dir: &Path, mb: usize) -> Result<(f64, f64)> {
    let path = dir.join(".magnet-disk-test");
    let block = vec![0x5au8; 1 << 20];
    let t = Instant::now();
    {
        let mut f = std::fs::File::create(&path)
            .map_err(DaemonError::io(format!("creating {}", path.display())))?;
        for _ in 0..mb {
            f.write_all(&block)
                .map_err(DaemonError::io("disk test write"))?;
        }
        f.sync_all().map_err(DaemonError::io("disk test fsync"))?;
    }
    let w = t.elapsed().as_secs_f64().max(1e-6);
    let t = Instant::now();
    let mut buf = Vec::with_capacity(mb << 20);
    std::fs::File::open(&path)
        .and_then(|mut f| f.read_to_end(&mut buf))
        .map_err(DaemonError::io("disk test read"))?;
    let r = t.elapsed().as_secs_f64().max(1e-6);
    let _ = std::fs::remove_file(&path);
    Ok((mb as f64 / w, mb as f64 / r))
}

/// The tier a profile suggests: a GPU → `gpu_compute`; ≥ 8 cores and ≥ 32 GiB →
/// `orchestrator`; a fast disk with little CPU → `storage_node`; otherwise `cpu_only`.
pub fn suggest_tier(
    cores: usize,
    memory: Option<u64>,
    gpu: bool,
    disk_write_mb_s: f64,
) -> &'static str {
    let gib = memory.unwrap_or(0) >> 30;
    if gpu {
        "gpu_compute"
    } else if cores >= 8 && gib >= 32 {
        "orchestrator"
    } else if cores <= 2 && disk_write_mb_s >= 200.0 && gib >= 4 {
        "storage_node"
    } else if cores == 1 && gib < 2 {
        "mobile_light"
    } else {
        "cpu_only"
    }
}

/// Profiles this machine, testing the disk under `dir` with `disk_mb` MiB.
pub fn profile(dir: &Path, disk_mb: usize) -> Result<HardwareProfile> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let memory_bytes = memory_bytes();
    let gpu = gpu();
    let (w, r) = disk_test(dir, disk_mb)?;
    let suggested_tier = suggest_tier(cores, memory_bytes, gpu.is_some(), w).to_string();
    Ok(HardwareProfile {
        cores,
        cpu_features: cpu_features(),
        memory_bytes,
        gpu,
        disk_write_mb_s: w,
        disk_read_mb_s: r,
        suggested_tier,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tier_table_follows_the_hardware() {
        let g = 1u64 << 30;
        assert_eq!(suggest_tier(4, Some(16 * g), true, 50.0), "gpu_compute");
        assert_eq!(suggest_tier(16, Some(64 * g), false, 50.0), "orchestrator");
        assert_eq!(suggest_tier(2, Some(8 * g), false, 500.0), "storage_node");
        assert_eq!(suggest_tier(1, Some(g / 2), false, 10.0), "mobile_light");
        assert_eq!(suggest_tier(4, Some(8 * g), false, 50.0), "cpu_only");
    }

    #[test]
    fn profiling_this_machine_measures_a_real_disk() {
        let dir = tempfile::tempdir().unwrap();
        let p = profile(dir.path(), 4).unwrap();
        assert!(p.cores >= 1);
        assert!(p.disk_write_mb_s > 0.0 && p.disk_read_mb_s > 0.0);
        assert!(crate::config::TIERS.contains(&p.suggested_tier.as_str()));
        assert!(!dir.path().join(".magnet-disk-test").exists());
    }
}
