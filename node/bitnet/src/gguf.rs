//! A GGUF v3 writer and reader of our own, with the tensor types this engine uses:
//! `F32`, `F16`, `Q8_0` and the ternary `TQ2_0`.
//!
//! Format (little-endian): magic `GGUF`, version `u32 = 3`, tensor count `u64`, metadata count
//! `u64`; metadata `(key: string, type: u32, value)`; tensor infos `(name: string, n_dims: u32,
//! ne[n_dims]: u64 (innermost first), type: u32, offset: u64)`; zero padding to `general.alignment`
//! (default 32); tensor data, each tensor at its offset from the data start, aligned.
//!
//! `TQ2_0` (llama.cpp): blocks of 256 weights in 66 bytes — `qs[64]` then an f16 scale `d`; weight
//! `j` sits in byte `(j/128)·32 + j%32` at bit shift `2·((j%128)/32)`, stored as `t+1` for
//! `t ∈ {−1, 0, 1}` and read back as `(q−1)·d`. `Q8_0`: blocks of 32 — f16 `d` then 32 `i8`.
//!
//! Guarantees: [`GgufFile::parse`] never panics and never allocates more than the input's size on
//! any input; every malformed, truncated or unsupported file is a [`BitnetError::Gguf`] naming
//! what is wrong and where. The writer's output is deterministic (same input, same bytes).

use half::f16;

use crate::error::{BitnetError, Result};

/// `GGUF` magic.
pub const MAGIC: &[u8; 4] = b"GGUF";
/// The version we write.
pub const VERSION: u32 = 3;
/// Default data alignment.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// ggml tensor types this crate reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// 16-bit float.
    F16,
    /// 8-bit blocks of 32 with an f16 scale.
    Q8_0,
    /// Ternary blocks of 256 with an f16 scale (2.0625 bits/weight).
    Tq2_0,
}

impl GgmlType {
    /// The ggml type id.
    pub fn id(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q8_0 => 8,
            Self::Tq2_0 => 35,
        }
    }

    /// From a ggml type id.
    pub fn from_id(id: u32) -> Result<Self> {
        Ok(match id {
            0 => Self::F32,
            1 => Self::F16,
            8 => Self::Q8_0,
            35 => Self::Tq2_0,
            other => {
                return Err(BitnetError::Gguf(format!(
                    "unsupported ggml tensor type {other}"
                )))
            }
        })
    }

    /// (elements per block, bytes per block).
    pub fn block(self) -> (usize, usize) {
        match self {
            Self::F32 => (1, 4),
            Self::F16 => (1, 2),
            Self::Q8_0 => (32, 34),
            Self::Tq2_0 => (256, 66),
        }
    }

    /// Bytes of a tensor of `n` elements, or an error when `n` is not whole blocks.
    pub fn nbytes(self, n: u64) -> Result<u64> {
        let (be, bb) = self.block();
        if !n.is_multiple_of(be as u64) {
            return Err(BitnetError::Gguf(format!(
                "{n} elements is not a whole number of {self:?} blocks of {be}"
            )));
        }
        (n / be as u64)
            .checked_mul(bb as u64)
            .ok_or_else(|| BitnetError::Gguf("tensor size overflows".into()))
    }
}

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `u8`.
    U8(u8),
    /// `i8`.
    I8(i8),
    /// `u16`.
    U16(u16),
    /// `i16`.
    I16(i16),
    /// `u32`.
    U32(u32),
    /// `i32`.
    I32(i32),
    /// `f32`.
    F32(f32),
    /// `bool`.
    Bool(bool),
    /// UTF-8 string.
    Str(String),
    /// Array (all elements of one type; an empty array is written as `u8`).
    Array(Vec<Value>),
    /// `u64`.
    U64(u64),
    /// `i64`.
    I64(i64),
    /// `f64`.
    F64(f64),
}

impl Value {
    fn type_id(&self) -> u32 {
        match self {
            Self::U8(_) => 0,
            Self::I8(_) => 1,
            Self::U16(_) => 2,
            Self::I16(_) => 3,
            Self::U32(_) => 4,
            Self::I32(_) => 5,
            Self::F32(_) => 6,
            Self::Bool(_) => 7,
            Self::Str(_) => 8,
            Self::Array(_) => 9,
            Self::U64(_) => 10,
            Self::I64(_) => 11,
            Self::F64(_) => 12,
        }
    }

    /// As `u64` when an unsigned or non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::U8(v) => Some(v as u64),
            Self::U16(v) => Some(v as u64),
            Self::U32(v) => Some(v as u64),
            Self::U64(v) => Some(v),
            Self::I32(v) if v >= 0 => Some(v as u64),
            Self::I64(v) if v >= 0 => Some(v as u64),
            _ => None,
        }
    }

    /// As `f64` when numeric.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::F32(v) => Some(v as f64),
            Self::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    /// As a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    fn write(&self, out: &mut Vec<u8>) -> Result<()> {
        match self {
            Self::U8(v) => out.push(*v),
            Self::I8(v) => out.push(*v as u8),
            Self::U16(v) => out.extend(v.to_le_bytes()),
            Self::I16(v) => out.extend(v.to_le_bytes()),
            Self::U32(v) => out.extend(v.to_le_bytes()),
            Self::I32(v) => out.extend(v.to_le_bytes()),
            Self::F32(v) => out.extend(v.to_le_bytes()),
            Self::Bool(v) => out.push(*v as u8),
            Self::Str(s) => write_str(out, s),
            Self::U64(v) => out.extend(v.to_le_bytes()),
            Self::I64(v) => out.extend(v.to_le_bytes()),
            Self::F64(v) => out.extend(v.to_le_bytes()),
            Self::Array(items) => {
                let ty = items.first().map(|v| v.type_id()).unwrap_or(0);
                if items.iter().any(|v| v.type_id() != ty) {
                    return Err(BitnetError::Gguf(
                        "array elements must all have one type".into(),
                    ));
                }
                if ty == 9 {
                    return Err(BitnetError::Gguf("nested arrays are not supported".into()));
                }
                out.extend(ty.to_le_bytes());
                out.extend((items.len() as u64).to_le_bytes());
                for v in items {
                    v.write(out)?;
                }
            }
        }
        Ok(())
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

/// One tensor's directory entry.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Name (`blk.0.attn_q.weight`, ...).
    pub name: String,
    /// Dimensions, innermost (row length) first.
    pub dims: Vec<u64>,
    /// Storage type.
    pub ty: GgmlType,
    /// Offset from the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// Element count.
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Byte size in the data section.
    pub fn nbytes(&self) -> Result<u64> {
        self.ty.nbytes(self.elements())
    }
}

/// Accumulates metadata and tensors, then serialises a GGUF file.
#[derive(Debug, Default)]
pub struct GgufWriter {
    metadata: Vec<(String, Value)>,
    tensors: Vec<(TensorInfo, Vec<u8>)>,
}

impl GgufWriter {
    /// An empty file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a metadata key (order is kept).
    pub fn kv(&mut self, key: &str, v: Value) -> &mut Self {
        self.metadata.push((key.to_string(), v));
        self
    }

    /// Adds a tensor with already-encoded bytes; `dims` innermost first.
    pub fn tensor(
        &mut self,
        name: &str,
        dims: &[u64],
        ty: GgmlType,
        bytes: Vec<u8>,
    ) -> Result<&mut Self> {
        let info = TensorInfo {
            name: name.to_string(),
            dims: dims.to_vec(),
            ty,
            offset: 0,
        };
        if dims.is_empty() || dims.len() > 4 {
            return Err(BitnetError::Gguf(format!(
                "tensor {name}: {} dimensions (1..=4 allowed)",
                dims.len()
            )));
        }
        if !dims[0].is_multiple_of(ty.block().0 as u64) {
            return Err(BitnetError::Gguf(format!(
                "tensor {name}: row length {} is not a multiple of the {ty:?} block {}",
                dims[0],
                ty.block().0
            )));
        }
        let want = info.nbytes()?;
        if want != bytes.len() as u64 {
            return Err(BitnetError::Gguf(format!(
                "tensor {name}: {} bytes given, {want} expected",
                bytes.len()
            )));
        }
        self.tensors.push((info, bytes));
        Ok(self)
    }

    /// The whole file.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let align = self
            .metadata
            .iter()
            .find(|(k, _)| k == "general.alignment")
            .and_then(|(_, v)| v.as_u64())
            .unwrap_or(DEFAULT_ALIGNMENT);
        let mut out = Vec::new();
        out.extend(MAGIC);
        out.extend(VERSION.to_le_bytes());
        out.extend((self.tensors.len() as u64).to_le_bytes());
        out.extend((self.metadata.len() as u64).to_le_bytes());
        for (k, v) in &self.metadata {
            write_str(&mut out, k);
            out.extend(v.type_id().to_le_bytes());
            v.write(&mut out)?;
        }
        let mut offset = 0u64;
        for (info, bytes) in &self.tensors {
            write_str(&mut out, &info.name);
            out.extend((info.dims.len() as u32).to_le_bytes());
            for d in &info.dims {
                out.extend(d.to_le_bytes());
            }
            out.extend(info.ty.id().to_le_bytes());
            out.extend(offset.to_le_bytes());
            offset = (offset + bytes.len() as u64).div_ceil(align) * align;
        }
        pad(&mut out, align);
        for (_, bytes) in &self.tensors {
            out.extend(bytes);
            pad(&mut out, align);
        }
        Ok(out)
    }
}

fn pad(out: &mut Vec<u8>, align: u64) {
    while !(out.len() as u64).is_multiple_of(align) {
        out.push(0);
    }
}

/// A parsed GGUF file held in memory.
#[derive(Debug, Clone)]
pub struct GgufFile {
    /// Format version (2 or 3).
    pub version: u32,
    /// Metadata in file order.
    pub metadata: Vec<(String, Value)>,
    /// Tensor directory in file order.
    pub tensors: Vec<TensorInfo>,
    /// Data alignment.
    pub alignment: u64,
    data_start: usize,
    bytes: Vec<u8>,
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8]> {
        let end = (self.pos as u64)
            .checked_add(n)
            .filter(|e| *e <= self.b.len() as u64)
            .ok_or_else(|| {
                BitnetError::Gguf(format!(
                    "truncated file: {what} needs {n} bytes at offset {}, file has {}",
                    self.pos,
                    self.b.len()
                ))
            })? as usize;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn arr<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let s = self.take(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.arr(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.arr(what)?))
    }
    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.u64(what)?;
        let s = self.take(n, what)?;
        String::from_utf8(s.to_vec()).map_err(|_| BitnetError::Gguf(format!("{what} is not UTF-8")))
    }
    fn remaining(&self) -> u64 {
        (self.b.len() - self.pos) as u64
    }
    fn value(&mut self, ty: u32, what: &str, depth: u32) -> Result<Value> {
        Ok(match ty {
            0 => Value::U8(self.arr::<1>(what)?[0]),
            1 => Value::I8(self.arr::<1>(what)?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.arr(what)?)),
            3 => Value::I16(i16::from_le_bytes(self.arr(what)?)),
            4 => Value::U32(self.u32(what)?),
            5 => Value::I32(i32::from_le_bytes(self.arr(what)?)),
            6 => Value::F32(f32::from_le_bytes(self.arr(what)?)),
            7 => match self.arr::<1>(what)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(BitnetError::Gguf(format!("{what}: bool byte {b}"))),
            },
            8 => Value::Str(self.string(what)?),
            9 => {
                if depth > 0 {
                    return Err(BitnetError::Gguf(format!(
                        "{what}: nested arrays are not supported"
                    )));
                }
                let ety = self.u32(what)?;
                let n = self.u64(what)?;
                // Every element takes at least one byte: a count beyond the remaining bytes is a lie.
                if n > self.remaining() {
                    return Err(BitnetError::Gguf(format!(
                        "truncated or corrupt file: {what}: array of {n} elements cannot fit in the {} bytes left",
                        self.remaining()
                    )));
                }
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(self.value(ety, what, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(self.u64(what)?),
            11 => Value::I64(i64::from_le_bytes(self.arr(what)?)),
            12 => Value::F64(f64::from_le_bytes(self.arr(what)?)),
            other => {
                return Err(BitnetError::Gguf(format!(
                    "{what}: unknown metadata type {other}"
                )))
            }
        })
    }
}

impl GgufFile {
    /// Reads and parses a file.
    pub fn open(path: &std::path::Path) -> Result<Self> {
        let bytes = std::fs::read(path)
            .map_err(|e| BitnetError::Gguf(format!("reading {}: {e}", path.display())))?;
        Self::parse(bytes).map_err(|e| {
            BitnetError::Gguf(format!(
                "{}: {}",
                path.display(),
                e.to_string().trim_start_matches("GGUF: ")
            ))
        })
    }

    /// Parses a whole file image, checking every count, offset and size.
    pub fn parse(bytes: Vec<u8>) -> Result<Self> {
        let mut c = Cursor { b: &bytes, pos: 0 };
        let magic = c.arr::<4>("magic")?;
        if &magic != MAGIC {
            return Err(BitnetError::Gguf(format!(
                "bad magic {magic:02x?}: not a GGUF file"
            )));
        }
        let version = c.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(BitnetError::Gguf(format!(
                "unsupported GGUF version {version} (2 or 3 supported)"
            )));
        }
        let n_tensors = c.u64("tensor count")?;
        let n_kv = c.u64("metadata count")?;
        if n_kv > c.remaining() || n_tensors > c.remaining() {
            return Err(BitnetError::Gguf(format!(
                "truncated or corrupt file: header claims {n_kv} metadata entries and {n_tensors} tensors, more than the file can hold"
            )));
        }
        let mut metadata = Vec::new();
        for i in 0..n_kv {
            let key = c.string(&format!("metadata key #{i}"))?;
            let ty = c.u32(&format!("type of {key}"))?;
            let v = c.value(ty, &key, 0)?;
            metadata.push((key, v));
        }
        let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
            Some((_, v)) => v
                .as_u64()
                .filter(|a| *a > 0 && a.is_power_of_two() && *a <= 1 << 20)
                .ok_or_else(|| {
                    BitnetError::Gguf(format!("general.alignment {v:?} is not a power of two"))
                })?,
            None => DEFAULT_ALIGNMENT,
        };
        let mut tensors = Vec::new();
        for i in 0..n_tensors {
            let name = c.string(&format!("tensor #{i} name"))?;
            let nd = c.u32(&format!("{name} n_dims"))?;
            if nd == 0 || nd > 4 {
                return Err(BitnetError::Gguf(format!(
                    "tensor {name}: {nd} dimensions (1..=4 allowed)"
                )));
            }
            let mut dims = Vec::new();
            for _ in 0..nd {
                dims.push(c.u64(&format!("{name} dims"))?);
            }
            let ty = GgmlType::from_id(c.u32(&format!("{name} type"))?)
                .map_err(|e| BitnetError::Gguf(format!("tensor {name}: {e}")))?;
            let offset = c.u64(&format!("{name} offset"))?;
            let n = dims
                .iter()
                .try_fold(1u64, |a, d| a.checked_mul(*d))
                .ok_or_else(|| {
                    BitnetError::Gguf(format!("tensor {name}: dimensions {dims:?} overflow"))
                })?;
            if dims[0] % ty.block().0 as u64 != 0 || n == 0 {
                return Err(BitnetError::Gguf(format!(
                    "tensor {name}: dims {dims:?} are not whole {ty:?} blocks"
                )));
            }
            if offset % alignment != 0 {
                return Err(BitnetError::Gguf(format!(
                    "tensor {name}: offset {offset} is not aligned to {alignment}"
                )));
            }
            tensors.push(TensorInfo {
                name,
                dims,
                ty,
                offset,
            });
        }
        let data_start = (c.pos as u64).div_ceil(alignment) * alignment;
        for t in &tensors {
            let end = data_start
                .checked_add(t.offset)
                .and_then(|s| s.checked_add(t.nbytes().ok()?))
                .ok_or_else(|| BitnetError::Gguf(format!("tensor {}: size overflows", t.name)))?;
            if end > bytes.len() as u64 {
                return Err(BitnetError::Gguf(format!(
                    "truncated file: tensor {} ends at byte {end}, file has {}",
                    t.name,
                    bytes.len()
                )));
            }
        }
        let data_start = data_start as usize;
        Ok(Self {
            version,
            metadata,
            tensors,
            alignment,
            data_start,
            bytes,
        })
    }

    /// A metadata value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// A required unsigned metadata value.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        self.get(key)
            .and_then(Value::as_u64)
            .ok_or_else(|| BitnetError::Gguf(format!("missing or non-integer key {key}")))
    }

    /// A required numeric metadata value.
    pub fn get_f64(&self, key: &str) -> Result<f64> {
        self.get(key)
            .and_then(Value::as_f64)
            .ok_or_else(|| BitnetError::Gguf(format!("missing or non-numeric key {key}")))
    }

    /// A tensor's directory entry.
    pub fn tensor_info(&self, name: &str) -> Result<&TensorInfo> {
        self.tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| BitnetError::Gguf(format!("no tensor named {name}")))
    }

    /// A tensor's raw bytes (checked at parse time to lie inside the file).
    pub fn tensor_bytes(&self, name: &str) -> Result<&[u8]> {
        let t = self.tensor_info(name)?;
        let s = self.data_start + t.offset as usize;
        Ok(&self.bytes[s..s + t.nbytes()? as usize])
    }

    /// A tensor decoded to f32 (any supported type).
    pub fn tensor_f32(&self, name: &str) -> Result<Vec<f32>> {
        let t = self.tensor_info(name)?;
        let b = self.tensor_bytes(name)?;
        Ok(match t.ty {
            GgmlType::F32 => b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            GgmlType::F16 => b
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            GgmlType::Q8_0 => dequantize_q8_0(b),
            GgmlType::Tq2_0 => dequantize_tq2_0(b),
        })
    }
}

/// Encodes ternary codes (each in {−1, 0, 1}; length a multiple of 256) with one scale `d` for
/// every block.
pub fn quantize_tq2_0(codes: &[i8], d: f32) -> Result<Vec<u8>> {
    if !codes.len().is_multiple_of(256) {
        return Err(BitnetError::Gguf(format!(
            "{} ternary values is not whole 256-blocks",
            codes.len()
        )));
    }
    let dh = f16::from_f32(d).to_le_bytes();
    let mut out = Vec::with_capacity(codes.len() / 256 * 66);
    for blk in codes.chunks_exact(256) {
        let mut qs = [0u8; 64];
        for (j, &t) in blk.iter().enumerate() {
            if !(-1..=1).contains(&t) {
                return Err(BitnetError::Gguf(format!("value {t} is not ternary")));
            }
            qs[(j / 128) * 32 + j % 32] |= ((t + 1) as u8) << (2 * ((j % 128) / 32));
        }
        out.extend(qs);
        out.extend(dh);
    }
    Ok(out)
}

/// Ternary codes and per-block scales of TQ2_0 bytes.
pub fn decode_tq2_0(bytes: &[u8]) -> (Vec<i8>, Vec<f32>) {
    let mut codes = Vec::with_capacity(bytes.len() / 66 * 256);
    let mut scales = Vec::with_capacity(bytes.len() / 66);
    for blk in bytes.chunks_exact(66) {
        for j in 0..256 {
            let q = (blk[(j / 128) * 32 + j % 32] >> (2 * ((j % 128) / 32))) & 3;
            codes.push(q as i8 - 1);
        }
        scales.push(f16::from_le_bytes([blk[64], blk[65]]).to_f32());
    }
    (codes, scales)
}

/// TQ2_0 bytes to f32 `(q−1)·d`.
pub fn dequantize_tq2_0(bytes: &[u8]) -> Vec<f32> {
    let (codes, scales) = decode_tq2_0(bytes);
    codes
        .iter()
        .enumerate()
        .map(|(i, c)| *c as f32 * scales[i / 256])
        .collect()
}

/// Q8_0 encoding (llama.cpp's reference rounding: `d = max|x|/127`, `q = round(x/d)`).
pub fn quantize_q8_0(x: &[f32]) -> Result<Vec<u8>> {
    if !x.len().is_multiple_of(32) {
        return Err(BitnetError::Gguf(format!(
            "{} values is not whole Q8_0 blocks of 32",
            x.len()
        )));
    }
    let mut out = Vec::with_capacity(x.len() / 32 * 34);
    for blk in x.chunks_exact(32) {
        let amax = blk.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend(f16::from_f32(d).to_le_bytes());
        out.extend(blk.iter().map(|v| (v * id).round() as i8 as u8));
    }
    Ok(out)
}

/// Q8_0 bytes to f32.
pub fn dequantize_q8_0(bytes: &[u8]) -> Vec<f32> {
    let mut out = Vec::with_capacity(bytes.len() / 34 * 32);
    for blk in bytes.chunks_exact(34) {
        let d = f16::from_le_bytes([blk[0], blk[1]]).to_f32();
        out.extend(blk[2..].iter().map(|q| *q as i8 as f32 * d));
    }
    out
}

/// F16 encoding.
pub fn encode_f16(x: &[f32]) -> Vec<u8> {
    x.iter()
        .flat_map(|v| f16::from_f32(*v).to_le_bytes())
        .collect()
}

/// F32 encoding.
pub fn encode_f32(x: &[f32]) -> Vec<u8> {
    x.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn tq2_0_round_trips_any_ternary_codes(codes in proptest::collection::vec(-1i8..=1, 256..=256 * 3), d in 0.001f32..10.0) {
            let n = codes.len() / 256 * 256;
            let codes = &codes[..n];
            let b = quantize_tq2_0(codes, d).unwrap();
            prop_assert_eq!(b.len(), n / 256 * 66);
            let (back, scales) = decode_tq2_0(&b);
            prop_assert_eq!(&back[..], codes);
            prop_assert!(scales.iter().all(|s| *s == f16::from_f32(d).to_f32()));
        }

        #[test]
        fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut b = b"GGUF\x03\x00\x00\x00".to_vec();
            b.extend(bytes);
            let _ = GgufFile::parse(b);
        }
    }

    #[test]
    fn tq2_0_bit_layout_matches_llama_cpp() {
        // Weight j of a block: byte (j/128)*32 + j%32, shift 2*((j%128)/32), stored t+1.
        let mut codes = vec![0i8; 256];
        codes[0] = 1; // byte 0, shift 0, value 2
        codes[32] = -1; // byte 0, shift 2, value 0
        codes[160] = 1; // byte 32, shift 2, value 2
        let b = quantize_tq2_0(&codes, 1.0).unwrap();
        assert_eq!(b[0], 0b01_01_00_10);
        assert_eq!(b[32], 0b01_01_10_01);
        assert_eq!(b[1], 0b01_01_01_01);
        assert_eq!(&b[64..66], &f16::from_f32(1.0).to_le_bytes());
        assert!(quantize_tq2_0(&codes[..100], 1.0).is_err());
        assert!(quantize_tq2_0(&[2i8; 256], 1.0).is_err());
    }

    #[test]
    fn q8_0_is_within_half_a_step() {
        let x: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin()).collect();
        let back = dequantize_q8_0(&quantize_q8_0(&x).unwrap());
        for (a, b) in x.iter().zip(back) {
            assert!((a - b).abs() <= 1.0 / 127.0 * 0.51 + 1e-3);
        }
    }
}
