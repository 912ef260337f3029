//! The real `magnet-worker` binary: `storage put` prints a content address, `storage get`
//! rebuilds the exact file even with two shard slots lost or rotten, a third loss is a clear
//! error, and `storage status` reports the damage.

use std::process::Command;

fn worker() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_magnet-worker"));
    c.env("RUST_LOG", "warn").env_remove("MAGNET_STORAGE_DIR");
    c
}

fn shard_files(store: &std::path::Path, slot: usize) -> Vec<std::path::PathBuf> {
    let top = store.join("slots").join(slot.to_string()).join("shards");
    let mut out = Vec::new();
    for obj in std::fs::read_dir(top).unwrap() {
        for f in std::fs::read_dir(obj.unwrap().path()).unwrap() {
            out.push(f.unwrap().path());
        }
    }
    out
}

#[test]
fn put_then_get_survives_two_damaged_slots_and_status_reports_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let input = dir.path().join("in.bin");
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&input, &data).unwrap();

    let out = worker()
        .args(["storage", "--dir"])
        .arg(&store)
        .arg("put")
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let addr = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(addr.starts_with("sha256:") && addr.len() == 71, "{addr}");

    // Lose slot 1, rot slot 4.
    for f in shard_files(&store, 1) {
        std::fs::remove_file(f).unwrap();
    }
    let rotten = shard_files(&store, 4).remove(0);
    let mut b = std::fs::read(&rotten).unwrap();
    b[12345] ^= 0xff;
    std::fs::write(&rotten, b).unwrap();

    let status = worker()
        .args(["storage", "--dir"])
        .arg(&store)
        .args(["status", "--verify"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success());
    assert!(
        text.contains("4/6 shards") && text.contains("still readable"),
        "{text}"
    );

    let back = dir.path().join("back.bin");
    let out = worker()
        .args(["storage", "--dir"])
        .arg(&store)
        .args(["get", &addr, "--out"])
        .arg(&back)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read(&back).unwrap() == data);
    assert!(String::from_utf8_lossy(&out.stderr).contains("corrupt"));

    // A third loss: a clear, typed failure and no output file.
    for f in shard_files(&store, 0) {
        std::fs::remove_file(f).unwrap();
    }
    let lost = dir.path().join("lost.bin");
    let out = worker()
        .args(["storage", "--dir"])
        .arg(&store)
        .args(["get", &addr, "--out"])
        .arg(&lost)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("3 intact shards of the 4 needed"), "{err}");
    assert!(!lost.exists());
}

#[test]
fn bad_input_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["get", "sha256:zz", "--out", "x"], "not a SHA-256 digest"),
        (
            &["get", &"ab".repeat(32), "--out", "x"],
            "is not stored here",
        ),
        (&["put", "/nonexistent/file"], "opening /nonexistent/file"),
        (
            &["put", "Cargo.toml", "--k", "5", "--m", "5"],
            "unsupported erasure setting",
        ),
    ];
    for (args, want) in cases {
        let out = worker()
            .args(["storage", "--dir"])
            .arg(dir.path())
            .args(*args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
