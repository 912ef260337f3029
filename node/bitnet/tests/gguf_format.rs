//! GGUF conformance: a golden file pins our byte format; every corruption and truncation is a
//! clear error, never a panic. Re-bless the golden file (after an intended format change) with
//! `MAGNET_BLESS=1 cargo test -p magnet-bitnet --test gguf_format`.

use std::path::PathBuf;

use magnet_bitnet::gguf::{
    encode_f16, encode_f32, quantize_q8_0, quantize_tq2_0, GgmlType, GgufFile, GgufWriter, Value,
};

fn golden_path() -> PathBuf {
    PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("tests/golden/format.gguf")
}

fn codes() -> Vec<i8> {
    (0..512).map(|j| ((j * 7 + j / 3) % 3) as i8 - 1).collect()
}

fn golden_writer() -> GgufWriter {
    let mut w = GgufWriter::new();
    w.kv("general.architecture", Value::Str("llama".into()))
        .kv("t.u8", Value::U8(200))
        .kv("t.i8", Value::I8(-5))
        .kv("t.u16", Value::U16(65_000))
        .kv("t.i16", Value::I16(-30_000))
        .kv("t.u32", Value::U32(4_000_000_000))
        .kv("t.i32", Value::I32(-2_000_000_000))
        .kv("t.f32", Value::F32(1.5))
        .kv("t.bool", Value::Bool(true))
        .kv("t.u64", Value::U64(u64::MAX - 1))
        .kv("t.i64", Value::I64(i64::MIN + 1))
        .kv("t.f64", Value::F64(-0.25))
        .kv(
            "t.strs",
            Value::Array(vec![
                Value::Str("Ġthe".into()),
                Value::Str("<|endoftext|>".into()),
            ]),
        )
        .kv("t.ints", Value::Array(vec![Value::I32(1), Value::I32(3)]));
    w.tensor(
        "ternary",
        &[256, 2],
        GgmlType::Tq2_0,
        quantize_tq2_0(&codes(), 0.25).unwrap(),
    )
    .unwrap();
    let x: Vec<f32> = (0..32).map(|i| i as f32 / 8.0 - 2.0).collect();
    w.tensor("q8", &[32], GgmlType::Q8_0, quantize_q8_0(&x).unwrap())
        .unwrap();
    w.tensor(
        "half",
        &[4, 2],
        GgmlType::F16,
        encode_f16(&[0.5, -1.0, 2.0, 65504.0, 0.0, 1e-3, -7.25, 3.0]),
    )
    .unwrap();
    w.tensor("norm", &[3], GgmlType::F32, encode_f32(&[1.0, 0.5, -0.125]))
        .unwrap();
    w
}

#[test]
fn the_writer_reproduces_the_golden_file_byte_for_byte() {
    let bytes = golden_writer().to_bytes().unwrap();
    if std::env::var("MAGNET_BLESS").as_deref() == Ok("1") {
        std::fs::create_dir_all(golden_path().parent().unwrap()).unwrap();
        std::fs::write(golden_path(), &bytes).unwrap();
    }
    let golden =
        std::fs::read(golden_path()).expect("golden file exists (bless with MAGNET_BLESS=1)");
    assert_eq!(
        bytes, golden,
        "GGUF byte format drifted from tests/golden/format.gguf"
    );
    // The header: magic, version 3, 4 tensors, 14 metadata entries.
    let mut head = b"GGUF".to_vec();
    head.extend(3u32.to_le_bytes());
    head.extend(4u64.to_le_bytes());
    head.extend(14u64.to_le_bytes());
    assert_eq!(&golden[..24], &head[..]);
    // The first tensor's data starts at a 32-byte boundary.
    assert_eq!(golden.len() % 32, 0);
}

#[test]
fn the_reader_decodes_the_golden_file() {
    let g = GgufFile::parse(std::fs::read(golden_path()).unwrap()).unwrap();
    assert_eq!(g.version, 3);
    assert_eq!(g.get("t.u8"), Some(&Value::U8(200)));
    assert_eq!(g.get("t.i64"), Some(&Value::I64(i64::MIN + 1)));
    assert_eq!(g.get("t.f64"), Some(&Value::F64(-0.25)));
    assert_eq!(
        g.get("t.strs"),
        Some(&Value::Array(vec![
            Value::Str("Ġthe".into()),
            Value::Str("<|endoftext|>".into())
        ]))
    );
    let t = g.tensor_f32("ternary").unwrap();
    let want: Vec<f32> = codes().iter().map(|c| *c as f32 * 0.25).collect();
    assert_eq!(t, want);
    assert_eq!(g.tensor_info("ternary").unwrap().dims, vec![256, 2]);
    assert_eq!(g.tensor_f32("norm").unwrap(), vec![1.0, 0.5, -0.125]);
    assert_eq!(g.tensor_f32("half").unwrap()[3], 65504.0);
    let q8 = g.tensor_f32("q8").unwrap();
    assert!((q8[31] - (31.0 / 8.0 - 2.0)).abs() < 0.02);
    // The TQ2_0 bytes of the golden tensor, block 0, first bytes.
    let raw = g.tensor_bytes("ternary").unwrap();
    assert_eq!(raw.len(), 2 * 66);
    assert_eq!(&raw[64..66], &half::f16::from_f32(0.25).to_le_bytes());
}

#[test]
fn every_truncation_of_a_file_is_an_error_not_a_panic() {
    let golden = golden_writer().to_bytes().unwrap();
    for n in 0..golden.len() - 1 {
        match GgufFile::parse(golden[..n].to_vec()) {
            // Only a cut inside the trailing padding after the last tensor may still parse.
            Ok(_) => assert!(
                n + 32 > golden.len(),
                "prefix {n} parsed although data is missing"
            ),
            Err(e) => {
                let e = e.to_string();
                assert!(
                    e.contains("truncated") || e.contains("magic"),
                    "prefix {n}: {e}"
                );
            }
        }
    }
}

fn header(n_tensors: u64, n_kv: u64) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(n_tensors.to_le_bytes());
    b.extend(n_kv.to_le_bytes());
    b
}

fn s(b: &mut Vec<u8>, x: &[u8]) {
    b.extend((x.len() as u64).to_le_bytes());
    b.extend(x);
}

fn one_tensor(ty: u32, dims: &[u64], offset: u64, data: usize) -> Vec<u8> {
    let mut b = header(1, 0);
    s(&mut b, b"w");
    b.extend((dims.len() as u32).to_le_bytes());
    for d in dims {
        b.extend(d.to_le_bytes());
    }
    b.extend(ty.to_le_bytes());
    b.extend(offset.to_le_bytes());
    while !b.len().is_multiple_of(32) {
        b.push(0);
    }
    b.extend(vec![0u8; data]);
    b
}

#[test]
fn each_kind_of_corruption_gives_its_own_clear_error() {
    let kv = |ty: u32, val: &[u8]| {
        let mut b = header(0, 1);
        s(&mut b, b"k");
        b.extend(ty.to_le_bytes());
        b.extend(val);
        b
    };
    let mut bad_version = header(0, 0);
    bad_version[4] = 9;
    let mut not_utf8 = header(0, 1);
    s(&mut not_utf8, &[0xff, 0xfe]);
    let mut huge_array = header(0, 1);
    s(&mut huge_array, b"k");
    huge_array.extend(9u32.to_le_bytes());
    huge_array.extend(0u32.to_le_bytes());
    huge_array.extend(u64::MAX.to_le_bytes());
    let mut nested = header(0, 1);
    s(&mut nested, b"k");
    nested.extend(9u32.to_le_bytes());
    nested.extend(9u32.to_le_bytes());
    nested.extend(1u64.to_le_bytes());
    nested.extend(0u32.to_le_bytes());
    nested.extend(0u64.to_le_bytes());
    let mut bad_align = header(0, 1);
    s(&mut bad_align, b"general.alignment");
    bad_align.extend(4u32.to_le_bytes());
    bad_align.extend(3u32.to_le_bytes());
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("bad magic", b"GGUX\x03\0\0\0".to_vec(), "magic"),
        ("old version", bad_version, "version 9"),
        (
            "lying counts",
            header(u64::MAX, u64::MAX),
            "more than the file can hold",
        ),
        ("key not UTF-8", not_utf8, "not UTF-8"),
        (
            "unknown value type",
            kv(13, &[0; 8]),
            "unknown metadata type 13",
        ),
        ("bool byte 2", kv(7, &[2]), "bool byte 2"),
        ("array longer than the file", huge_array, "cannot fit"),
        ("nested array", nested, "nested"),
        ("alignment not a power of two", bad_align, "power of two"),
        (
            "unknown tensor type",
            one_tensor(99, &[256], 0, 1024),
            "unsupported ggml tensor type 99",
        ),
        (
            "five dimensions",
            one_tensor(0, &[1, 1, 1, 1, 1], 0, 64),
            "5 dimensions",
        ),
        (
            "row not whole blocks",
            one_tensor(35, &[100], 0, 66),
            "not whole",
        ),
        (
            "misaligned offset",
            one_tensor(0, &[4], 3, 64),
            "not aligned",
        ),
        (
            "data past the end",
            one_tensor(35, &[256, 4], 0, 66),
            "truncated",
        ),
        (
            "dims overflow",
            one_tensor(0, &[u64::MAX, 4], 0, 64),
            "overflow",
        ),
    ];
    for (what, bytes, needle) in cases {
        match GgufFile::parse(bytes) {
            Ok(_) => panic!("{what}: parsed"),
            Err(e) => assert!(
                e.to_string().contains(needle),
                "{what}: error {e:?} lacks {needle:?}"
            ),
        }
    }
}

#[test]
fn writer_rejects_inconsistent_tensors() {
    let mut w = GgufWriter::new();
    assert!(w.tensor("a", &[100], GgmlType::Tq2_0, vec![0; 66]).is_err());
    assert!(w.tensor("b", &[256], GgmlType::Tq2_0, vec![0; 65]).is_err());
    assert!(w.tensor("c", &[], GgmlType::F32, vec![]).is_err());
    w.kv("mixed", Value::Array(vec![Value::U8(1), Value::I8(1)]));
    assert!(w.to_bytes().is_err());
}

#[test]
fn a_missing_file_names_its_path() {
    let e = GgufFile::open(std::path::Path::new("/nonexistent/model.gguf"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/model.gguf"), "{e}");
}
