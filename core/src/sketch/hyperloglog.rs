//! HyperLogLog exactly as Redis implements it (`src/hyperloglog.c`), so that `PFCOUNT`
//! here equals Redis's on the same inputs (the differential test in
//! `tests/tests/sketch_redis_hll.rs` runs both).
//!
//! - Flajolet, Fusy, Gandouet & Meunier, "HyperLogLog: the analysis of a near-optimal
//!   cardinality estimation algorithm" (AofA 2007): `m = 2^p` registers; an element's
//!   64-bit hash picks a register with its low `p` bits and offers the position of the
//!   lowest set bit of the rest (1 + trailing zeros, at most `64 − p + 1`); a register
//!   keeps the largest offer. Standard error about `1.04/√m` (0.81 % for Redis's p = 14).
//! - The estimate is Ertl's, "New cardinality estimation algorithms for HyperLogLog
//!   sketches" (arXiv:1702.01284), computed from the histogram of register values with
//!   his `σ` and `τ` series, as Redis ≥ 5 does: no empirical bias table, no switch to
//!   linear counting, and accurate from 0 up.
//! - The hash is Redis's MurmurHash64A with seed `0xadc83b19`.
//! - Two encodings, as Redis stores them: *dense*, `m` registers of 6 bits packed from
//!   the least significant bit (12 KiB for p = 14), and *sparse*, a run-length code of
//!   opcodes — `ZERO` `00xxxxxx` (1–64 zero registers), `XZERO` `01xxxxxx yyyyyyyy`
//!   (1–16384 zero registers), `VAL` `1vvvvvxx` (1–4 registers of value 1–32). A new
//!   sketch is sparse; it turns dense for good when a register needs a value above 32
//!   or the sparse string (with Redis's 16-byte header) would pass `sparse_max_bytes`
//!   (Redis's `hll-sparse-max-bytes`, 3000 by default). Updates of the sparse code split
//!   the opcode covering the register and merge equal neighbours afterwards, the way
//!   Redis does, so the bytes — which [`HyperLogLog::to_redis_bytes`] gives as `GET`
//!   would — are Redis's too.
//!
//! Precisions other than Redis's 14 (4 to 18) work the same way, as an extension.
//! Adding is O(1) dense and O(sparse bytes) sparse; counting is O(m).

use crate::error::{DistlabError, Result};
use crate::sketch::hash::{REDIS_HLL_SEED, murmur64a};

/// Redis's precision: 2^14 = 16384 registers.
pub const REDIS_PRECISION: u8 = 14;
pub const MIN_PRECISION: u8 = 4;
pub const MAX_PRECISION: u8 = 18;
/// Bits per register.
pub const REGISTER_BITS: u32 = 6;
/// Redis's header: "HYLL", the encoding, three unused bytes, the cached cardinality.
pub const HEADER_BYTES: usize = 16;
/// Redis's default `hll-sparse-max-bytes`.
pub const DEFAULT_SPARSE_MAX_BYTES: usize = 3_000;
/// The largest value a sparse `VAL` opcode holds.
pub const SPARSE_VAL_MAX_VALUE: u8 = 32;
const SPARSE_VAL_MAX_LEN: u32 = 4;
const SPARSE_ZERO_MAX_LEN: u32 = 64;
const SPARSE_XZERO_MAX_LEN: u32 = 16_384;
/// `0.5 / ln 2`, Ertl's `α∞`, as Redis writes it.
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;

/// How the registers are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Encoding {
    Dense,
    Sparse,
}

/// One sparse opcode, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// `ZERO` or `XZERO`: this many zero registers (the `bool`: written as `XZERO`).
    Zeros(u32, bool),
    /// `VAL`: `len` registers of `value`.
    Val { value: u8, len: u32 },
}

/// A HyperLogLog sketch with Redis's encodings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HyperLogLog {
    precision: u8,
    sparse_max_bytes: usize,
    encoding: Encoding,
    /// Sparse: the opcodes. Dense: the packed registers.
    data: Vec<u8>,
    /// Redis's cached cardinality, little endian; the top bit of the last byte set means
    /// stale. Only [`HyperLogLog::pfcount`] reads or writes it, as `PFCOUNT` does.
    card: [u8; 8],
}

impl Default for HyperLogLog {
    fn default() -> Self {
        HyperLogLog::redis()
    }
}

fn is_zero(op: u8) -> bool {
    op & 0xc0 == 0
}

fn is_xzero(op: u8) -> bool {
    op & 0xc0 == 0x40
}

fn is_val(op: u8) -> bool {
    op & 0x80 != 0
}

fn val_value(op: u8) -> u8 {
    ((op >> 2) & 0x1f) + 1
}

fn val_len(op: u8) -> u32 {
    u32::from(op & 0x3) + 1
}

fn val_op(value: u8, len: u32) -> u8 {
    ((value - 1) << 2) | (len - 1) as u8 | 0x80
}

/// Appends the zero run of `len` as Redis writes it: `ZERO` up to 64, else `XZERO`.
fn push_zeros(out: &mut Vec<u8>, len: u32) {
    if len > SPARSE_ZERO_MAX_LEN {
        let l = len - 1;
        out.push((l >> 8) as u8 | 0x40);
        out.push((l & 0xff) as u8);
    } else {
        out.push((len - 1) as u8);
    }
}

/// The opcode at `data[at]`: (registers it covers, its bytes).
fn span_at(data: &[u8], at: usize) -> (u32, usize) {
    let op = data[at];
    if is_zero(op) {
        (u32::from(op & 0x3f) + 1, 1)
    } else if is_val(op) {
        (val_len(op), 1)
    } else {
        let second = data.get(at + 1).copied().unwrap_or(0);
        (((u32::from(op & 0x3f) << 8) | u32::from(second)) + 1, 2)
    }
}

fn dense_get(data: &[u8], i: usize) -> u8 {
    let bit = i * REGISTER_BITS as usize;
    let (byte, fb) = (bit / 8, bit % 8);
    let b0 = u16::from(data[byte]);
    let b1 = u16::from(data.get(byte + 1).copied().unwrap_or(0));
    (((b0 >> fb) | (b1 << (8 - fb))) & 0x3f) as u8
}

fn dense_set(data: &mut [u8], i: usize, v: u8) {
    let bit = i * REGISTER_BITS as usize;
    let (byte, fb) = (bit / 8, bit % 8);
    let word = u16::from(v) << fb;
    let mask = 0x3fu16 << fb;
    data[byte] = (data[byte] & !(mask as u8)) | word as u8;
    if let Some(next) = data.get_mut(byte + 1) {
        *next = (*next & !((mask >> 8) as u8)) | (word >> 8) as u8;
    }
}

/// Ertl's `σ(x) = x + Σ_{k≥1} x^(2^k) · 2^(k−1)`, summed until it stops changing.
fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let (mut y, mut z) = (1.0, x);
    loop {
        x *= x;
        let before = z;
        z += x * y;
        y += y;
        if z == before {
            return z;
        }
    }
}

/// Ertl's `τ(x) = (1 − x − Σ_{k≥1} (1 − x^(2^−k))² · 2^−k) / 3`.
fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let (mut y, mut z) = (1.0, 1.0 - x);
    loop {
        x = libm::sqrt(x);
        let before = z;
        y *= 0.5;
        // Redis writes pow(1 − x, 2), which compilers turn into this exact product.
        z -= (1.0 - x) * (1.0 - x) * y;
        if z == before {
            return z / 3.0;
        }
    }
}

/// Ertl's estimate from the histogram of register values (`histogram[v]` registers hold
/// `v`) for precision `p`, rounded half away from zero as Redis's `llroundl` does.
pub fn ertl_estimate(histogram: &[u32; 64], precision: u8) -> u64 {
    let m = f64::from(1u32 << precision);
    let q = 64 - usize::from(precision);
    let mut z = m * tau((m - f64::from(histogram[q + 1])) / m);
    for j in (1..=q).rev() {
        z += f64::from(histogram[j]);
        z *= 0.5;
    }
    z += m * sigma(f64::from(histogram[0]) / m);
    libm::round(ALPHA_INF * m * m / z) as u64
}

/// The original HyperLogLog estimate `α_m · m² / Σ 2^−M[j]` with no small-range
/// correction: what the tests measure Ertl's small-range accuracy against.
pub fn raw_estimate(histogram: &[u32; 64], precision: u8) -> f64 {
    let m = f64::from(1u32 << precision);
    let alpha = 0.7213 / (1.0 + 1.079 / m);
    let sum: f64 = histogram
        .iter()
        .enumerate()
        .map(|(v, &n)| f64::from(n) * libm::ldexp(1.0, -(v as i32)))
        .sum();
    alpha * m * m / sum
}

/// The register an element goes to and the value it offers (Redis's `hllPatLen`).
pub fn pattern(element: &[u8], precision: u8) -> (usize, u8) {
    let hash = murmur64a(element, REDIS_HLL_SEED);
    let index = (hash & ((1u64 << precision) - 1)) as usize;
    let rest = (hash >> precision) | (1u64 << (64 - u32::from(precision)));
    (index, rest.trailing_zeros() as u8 + 1)
}

impl HyperLogLog {
    /// Redis's sketch: p = 14, sparse up to 3000 bytes.
    pub fn redis() -> Self {
        HyperLogLog::empty(REDIS_PRECISION, DEFAULT_SPARSE_MAX_BYTES)
    }

    /// An empty sketch of `2^precision` registers (4 to 18; error names `precision`).
    pub fn new(precision: u8) -> Result<Self> {
        HyperLogLog::with_sparse_max_bytes(precision, DEFAULT_SPARSE_MAX_BYTES)
    }

    /// As [`HyperLogLog::new`], turning dense once the sparse string would pass
    /// `sparse_max_bytes` (Redis's `hll-sparse-max-bytes`; 0 keeps it dense from the
    /// first update).
    pub fn with_sparse_max_bytes(precision: u8, sparse_max_bytes: usize) -> Result<Self> {
        if !(MIN_PRECISION..=MAX_PRECISION).contains(&precision) {
            return Err(DistlabError::field(
                "precision",
                format!("must be between {MIN_PRECISION} and {MAX_PRECISION}, got {precision}"),
            ));
        }
        Ok(HyperLogLog::empty(precision, sparse_max_bytes))
    }

    fn empty(precision: u8, sparse_max_bytes: usize) -> Self {
        let mut data = Vec::new();
        let mut left = 1u32 << precision;
        while left > 0 {
            let run = left.min(SPARSE_XZERO_MAX_LEN);
            let l = run - 1;
            data.push((l >> 8) as u8 | 0x40);
            data.push((l & 0xff) as u8);
            left -= run;
        }
        HyperLogLog {
            precision,
            sparse_max_bytes,
            encoding: Encoding::Sparse,
            data,
            card: [0; 8],
        }
    }

    pub fn precision(&self) -> u8 {
        self.precision
    }

    /// `m = 2^p`.
    pub fn registers(&self) -> usize {
        1 << self.precision
    }

    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Bytes of the encoded registers (without Redis's 16-byte header).
    pub fn data_bytes(&self) -> usize {
        self.data.len()
    }

    pub fn sparse_max_bytes(&self) -> usize {
        self.sparse_max_bytes
    }

    /// The standard error the precision gives, `1.04 / √m`.
    pub fn standard_error(&self) -> f64 {
        1.04 / libm::sqrt(self.registers() as f64)
    }

    /// Adds one element; returns whether a register changed (what makes `PFADD` answer
    /// 1).
    pub fn add(&mut self, element: &[u8]) -> bool {
        let (index, count) = pattern(element, self.precision);
        let changed = self.set(index, count);
        if changed {
            self.card[7] |= 0x80;
        }
        changed
    }

    /// `PFADD` on an existing key: adds every element, true if any register changed.
    pub fn pfadd<E: AsRef<[u8]>>(&mut self, elements: &[E]) -> bool {
        elements
            .iter()
            .fold(false, |changed, e| self.add(e.as_ref()) | changed)
    }

    /// Marks the cached count stale, as `PFADD` does when it creates a key (even with no
    /// element).
    pub fn invalidate_cached_count(&mut self) {
        self.card[7] |= 0x80;
    }

    /// Raises register `index` to `count` if below; whether it changed.
    fn set(&mut self, index: usize, count: u8) -> bool {
        match self.encoding {
            Encoding::Dense => {
                if dense_get(&self.data, index) < count {
                    dense_set(&mut self.data, index, count);
                    true
                } else {
                    false
                }
            }
            Encoding::Sparse => self.sparse_set(index, count),
        }
    }

    /// Redis's `hllSparseSet`: find the opcode covering `index`; leave it if it already
    /// holds as much; else split it into at most three opcodes around the register,
    /// promoting to dense if the value does not fit a `VAL` or the string would grow past
    /// the limit; then merge equal `VAL` neighbours among the next five opcodes from the
    /// one before.
    fn sparse_set(&mut self, index: usize, count: u8) -> bool {
        if count > SPARSE_VAL_MAX_VALUE {
            return self.promote_and_set(index, count);
        }
        let index = index as u32;
        let (mut at, mut first, mut prev) = (0usize, 0u32, None);
        let (span, oplen) = loop {
            let (span, oplen) = span_at(&self.data, at);
            if index < first + span {
                break (span, oplen);
            }
            prev = Some(at);
            at += oplen;
            first += span;
        };
        let op = self.data[at];
        if is_val(op) {
            if val_value(op) >= count {
                return false;
            }
            if span == 1 {
                self.data[at] = val_op(count, 1);
                self.merge_values(prev);
                return true;
            }
        }
        if is_zero(op) && span == 1 {
            self.data[at] = val_op(count, 1);
            self.merge_values(prev);
            return true;
        }
        let last = first + span - 1;
        let mut seq = Vec::with_capacity(5);
        if is_val(op) {
            let v = val_value(op);
            if index != first {
                seq.push(val_op(v, index - first));
            }
            seq.push(val_op(count, 1));
            if index != last {
                seq.push(val_op(v, last - index));
            }
        } else {
            if index != first {
                push_zeros(&mut seq, index - first);
            }
            seq.push(val_op(count, 1));
            if index != last {
                push_zeros(&mut seq, last - index);
            }
        }
        let grows = seq.len() > oplen;
        if grows && HEADER_BYTES + self.data.len() + seq.len() - oplen > self.sparse_max_bytes {
            return self.promote_and_set(index as usize, count);
        }
        self.data.splice(at..at + oplen, seq);
        self.merge_values(prev);
        true
    }

    /// Merges adjacent `VAL` opcodes of one value whose lengths fit one opcode, scanning
    /// at most five opcodes from `from` (the start when `None`), as Redis does.
    fn merge_values(&mut self, from: Option<usize>) {
        let mut p = from.unwrap_or(0);
        let mut scan = 5;
        while p < self.data.len() && scan > 0 {
            scan -= 1;
            let op = self.data[p];
            if is_xzero(op) {
                p += 2;
                continue;
            }
            if is_zero(op) {
                p += 1;
                continue;
            }
            if let Some(&next) = self.data.get(p + 1)
                && is_val(next)
                && val_value(op) == val_value(next)
            {
                let len = val_len(op) + val_len(next);
                if len <= SPARSE_VAL_MAX_LEN {
                    self.data[p + 1] = val_op(val_value(op), len);
                    self.data.remove(p);
                    continue;
                }
            }
            p += 1;
        }
    }

    fn promote_and_set(&mut self, index: usize, count: u8) -> bool {
        self.to_dense();
        dense_set(&mut self.data, index, count);
        true
    }

    /// Turns the sketch dense (Redis's `hllSparseToDense`, `PFDEBUG TODENSE`); returns
    /// whether it was sparse.
    pub fn to_dense(&mut self) -> bool {
        if self.encoding == Encoding::Dense {
            return false;
        }
        let registers = self.register_values();
        let mut dense = vec![0u8; self.registers() * REGISTER_BITS as usize / 8];
        for (i, &v) in registers.iter().enumerate() {
            if v > 0 {
                dense_set(&mut dense, i, v);
            }
        }
        self.data = dense;
        self.encoding = Encoding::Dense;
        true
    }

    /// The sparse opcodes, decoded (empty when dense).
    pub fn opcodes(&self) -> Vec<Opcode> {
        if self.encoding == Encoding::Dense {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut at = 0;
        while at < self.data.len() {
            let op = self.data[at];
            let (span, oplen) = span_at(&self.data, at);
            out.push(if is_val(op) {
                Opcode::Val {
                    value: val_value(op),
                    len: span,
                }
            } else {
                Opcode::Zeros(span, oplen == 2)
            });
            at += oplen;
        }
        out
    }

    /// The sparse code as `PFDEBUG DECODE` prints it (`Z:16380 v:3,1 z:3`), or `None`
    /// when dense.
    pub fn decode(&self) -> Option<String> {
        (self.encoding == Encoding::Sparse).then(|| {
            self.opcodes()
                .iter()
                .map(|op| match *op {
                    Opcode::Zeros(n, true) => format!("Z:{n}"),
                    Opcode::Zeros(n, false) => format!("z:{n}"),
                    Opcode::Val { value, len } => format!("v:{value},{len}"),
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
    }

    /// Register `i` (0 out of range).
    pub fn register(&self, i: usize) -> u8 {
        if i >= self.registers() {
            return 0;
        }
        match self.encoding {
            Encoding::Dense => dense_get(&self.data, i),
            Encoding::Sparse => self.register_values()[i],
        }
    }

    /// Every register, in order (what `PFDEBUG GETREG` lists).
    pub fn register_values(&self) -> Vec<u8> {
        let m = self.registers();
        match self.encoding {
            Encoding::Dense => (0..m).map(|i| dense_get(&self.data, i)).collect(),
            Encoding::Sparse => {
                let mut out = Vec::with_capacity(m);
                for op in self.opcodes() {
                    match op {
                        Opcode::Zeros(n, _) => out.extend((0..n).map(|_| 0)),
                        Opcode::Val { value, len } => out.extend((0..len).map(|_| value)),
                    }
                }
                out.resize(m, 0);
                out
            }
        }
    }

    /// How many registers hold each value.
    pub fn histogram(&self) -> [u32; 64] {
        let mut h = [0u32; 64];
        match self.encoding {
            Encoding::Dense => {
                // Four 6-bit registers in every three bytes (m is a multiple of 4), read
                // without per-register index arithmetic, as Redis's unrolled loop does.
                for b in self.data.chunks_exact(3) {
                    let (b0, b1, b2) = (b[0], b[1], b[2]);
                    h[usize::from(b0 & 0x3f)] += 1;
                    h[usize::from((b0 >> 6 | b1 << 2) & 0x3f)] += 1;
                    h[usize::from((b1 >> 4 | b2 << 4) & 0x3f)] += 1;
                    h[usize::from(b2 >> 2)] += 1;
                }
            }
            Encoding::Sparse => {
                for op in self.opcodes() {
                    match op {
                        Opcode::Zeros(n, _) => h[0] += n,
                        Opcode::Val { value, len } => h[usize::from(value)] += len,
                    }
                }
            }
        }
        h
    }

    /// The estimated number of distinct elements added (Ertl's estimator).
    pub fn count(&self) -> u64 {
        ertl_estimate(&self.histogram(), self.precision)
    }

    /// The original estimator, uncorrected (for comparison).
    pub fn raw_count(&self) -> f64 {
        raw_estimate(&self.histogram(), self.precision)
    }

    /// `PFCOUNT` of one key: the cached value when fresh, else computed and cached.
    pub fn pfcount(&mut self) -> u64 {
        if self.card[7] & 0x80 == 0 {
            return u64::from_le_bytes(self.card);
        }
        let n = self.count();
        self.card = n.to_le_bytes();
        n
    }

    fn check_same_precision(&self, other: &HyperLogLog, field: &str) -> Result<()> {
        if other.precision != self.precision {
            return Err(DistlabError::field(
                field,
                format!(
                    "sketches of precision {} and {} cannot be merged",
                    self.precision, other.precision
                ),
            ));
        }
        Ok(())
    }

    /// `PFCOUNT k1 k2 …`: the estimate of the union, none of them changed.
    pub fn count_union(sketches: &[&HyperLogLog]) -> Result<u64> {
        let Some(first) = sketches.first() else {
            return Ok(0);
        };
        let mut max = vec![0u8; first.registers()];
        for s in sketches {
            first.check_same_precision(s, "sketches")?;
            s.max_into(&mut max);
        }
        let mut h = [0u32; 64];
        for v in max {
            h[usize::from(v)] += 1;
        }
        Ok(ertl_estimate(&h, first.precision))
    }

    fn max_into(&self, max: &mut [u8]) {
        for (m, v) in max.iter_mut().zip(self.register_values()) {
            *m = (*m).max(v);
        }
    }

    /// `PFMERGE dest src…` with this sketch as `dest`: every register becomes the largest
    /// of its own and the sources'. The result is dense if this sketch or any source is;
    /// otherwise the registers are set one by one in the sparse code, which may promote
    /// it. The cached count goes stale.
    pub fn merge_from(&mut self, sources: &[&HyperLogLog]) -> Result<()> {
        for s in sources {
            self.check_same_precision(s, "sources")?;
        }
        let mut max = self.register_values();
        let mut dense = self.encoding == Encoding::Dense;
        for s in sources {
            s.max_into(&mut max);
            dense |= s.encoding == Encoding::Dense;
        }
        if dense {
            self.to_dense();
        }
        for (i, &v) in max.iter().enumerate() {
            if v > 0 {
                self.set(i, v);
            }
        }
        self.card[7] |= 0x80;
        Ok(())
    }

    /// The string Redis stores for this sketch (`GET key`): the header — `HYLL`, the
    /// encoding (0 dense, 1 sparse), three zero bytes, the cached cardinality — then the
    /// registers.
    pub fn to_redis_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_BYTES + self.data.len());
        out.extend_from_slice(b"HYLL");
        out.push(match self.encoding {
            Encoding::Dense => 0,
            Encoding::Sparse => 1,
        });
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(&self.card);
        out.extend_from_slice(&self.data);
        out
    }

    /// Bytes the sketch holds, as Redis would store it.
    pub fn memory_bytes(&self) -> usize {
        HEADER_BYTES + self.data.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SimRng;

    fn filled(p: u8, n: u64, seed: u64) -> HyperLogLog {
        let mut h = HyperLogLog::new(p).unwrap();
        for i in 0..n {
            h.add(format!("{seed}:{i}").as_bytes());
        }
        h
    }

    #[test]
    fn a_new_sketch_is_sparse_zero_and_twelve_kib_dense() {
        let mut h = HyperLogLog::redis();
        assert_eq!(h.decode().as_deref(), Some("Z:16384"));
        assert_eq!(h.memory_bytes(), 18);
        assert_eq!(h.count(), 0);
        h.to_dense();
        assert_eq!(h.data_bytes(), 12_288);
        assert_eq!(h.count(), 0);
        assert_eq!(
            HyperLogLog::new(18)
                .unwrap()
                .decode()
                .unwrap()
                .matches("Z:16384")
                .count(),
            16
        );
    }

    #[test]
    fn sparse_updates_split_and_merge_as_redis_does() {
        // 16 registers: Redis starts with XZERO runs however few the registers.
        let mut h = HyperLogLog::new(4).unwrap();
        assert_eq!(h.decode().as_deref(), Some("Z:16"));
        assert!(h.set(5, 3));
        assert_eq!(h.decode().as_deref(), Some("z:5 v:3,1 z:10"));
        assert!(h.set(6, 3));
        assert_eq!(h.decode().as_deref(), Some("z:5 v:3,2 z:9"));
        assert!(!h.set(6, 2));
        assert!(h.set(4, 3) && h.set(7, 3));
        assert_eq!(h.decode().as_deref(), Some("z:4 v:3,4 z:8"));
        // A fifth equal neighbour does not fit the opcode.
        assert!(h.set(8, 3));
        assert_eq!(h.decode().as_deref(), Some("z:4 v:3,4 v:3,1 z:7"));
        // Raising the middle of a VAL run splits it; the merge that follows joins the
        // right part with its equal neighbour.
        assert!(h.set(5, 9));
        assert_eq!(h.decode().as_deref(), Some("z:4 v:3,1 v:9,1 v:3,3 z:7"));
        // Order matters: Redis's code is not canonical.
        let mut a = HyperLogLog::new(4).unwrap();
        for i in [4, 5, 3, 2, 1, 0] {
            a.set(i, 3);
        }
        assert_eq!(a.decode().as_deref(), Some("v:3,2 v:3,4 z:10"));
        assert_eq!(a.register_values()[..7], [3, 3, 3, 3, 3, 3, 0]);
    }

    #[test]
    fn promotion_past_value_32_and_past_the_size_limit() {
        let mut h = HyperLogLog::redis();
        assert!(h.set(100, 33));
        assert_eq!(h.encoding(), Encoding::Dense);
        assert_eq!(h.register(100), 33);
        let mut h = HyperLogLog::redis();
        let mut n = 0;
        while h.encoding() == Encoding::Sparse {
            h.add(format!("e{n}").as_bytes());
            n += 1;
            assert!(
                h.memory_bytes() <= DEFAULT_SPARSE_MAX_BYTES || h.encoding() == Encoding::Dense
            );
        }
        // Redis's own table: about 3000 bytes hold a few thousand elements.
        assert!((1_000..4_000).contains(&n), "{n}");
        let mut tiny = HyperLogLog::with_sparse_max_bytes(14, 0).unwrap();
        tiny.add(b"x");
        assert_eq!(tiny.encoding(), Encoding::Dense);
    }

    #[test]
    fn dense_and_sparse_agree_on_registers_and_count() {
        let mut rng = SimRng::new(3);
        for p in [4, 10, 14, 18] {
            let mut sparse = HyperLogLog::with_sparse_max_bytes(p, usize::MAX).unwrap();
            let mut dense = HyperLogLog::new(p).unwrap();
            dense.to_dense();
            for _ in 0..2_000 {
                let e = rng.next_u64().to_le_bytes();
                assert_eq!(sparse.add(&e), dense.add(&e));
            }
            if sparse.encoding() == Encoding::Sparse {
                assert_eq!(sparse.register_values(), dense.register_values());
            }
            assert_eq!(sparse.count(), dense.count(), "p = {p}");
        }
    }

    #[test]
    fn pfadd_answers_whether_a_register_changed_and_the_cache_follows() {
        let mut h = HyperLogLog::redis();
        assert!(h.pfadd(&["a", "b", "c"]));
        assert!(!h.pfadd(&["a", "b"]));
        assert_eq!(h.pfcount(), 3);
        assert_eq!(h.to_redis_bytes()[8..16], 3u64.to_le_bytes());
        h.add(b"d");
        assert_eq!(h.to_redis_bytes()[15] & 0x80, 0x80);
        assert_eq!(h.pfcount(), 4);
    }

    #[test]
    fn merge_and_union_count() {
        let a = filled(14, 3_000, 1);
        let b = filled(14, 3_000, 2);
        let mut m = a.clone();
        m.merge_from(&[&b]).unwrap();
        assert_eq!(m.count(), HyperLogLog::count_union(&[&a, &b]).unwrap());
        let est = m.count() as f64;
        assert!((est / 6_000.0 - 1.0).abs() < 0.05, "{est}");
        let e = m.merge_from(&[&HyperLogLog::new(10).unwrap()]).unwrap_err();
        assert!(e.to_string().contains("`sources`"));
        assert!(
            HyperLogLog::new(3)
                .unwrap_err()
                .to_string()
                .contains("`precision`")
        );
        assert!(
            HyperLogLog::new(19)
                .unwrap_err()
                .to_string()
                .contains("`precision`")
        );
    }

    #[test]
    fn small_range_is_exact_or_nearly() {
        for n in [0, 1, 2, 10, 100] {
            assert_eq!(filled(14, n, 9).count(), n, "n = {n}");
        }
    }

    /// A modest accuracy check for the normal test run: 40 trials at 5 cardinalities for
    /// p = 10 — the relative error's standard deviation stays within 1.3 × 1.04/√m (40
    /// trials estimate a standard deviation to about ±11 %; the full sweep is in
    /// BENCHMARKS.md).
    #[test]
    fn error_spread_is_near_the_theory() {
        let p = 10;
        let theory = 1.04 / 32.0;
        for n in [100u64, 1_000, 10_000, 50_000] {
            let errs: Vec<f64> = (0..40)
                .map(|t| filled(p, n, 1_000 + t).count() as f64 / n as f64 - 1.0)
                .collect();
            let mean = errs.iter().sum::<f64>() / errs.len() as f64;
            let sd = libm::sqrt(
                errs.iter().map(|e| (e - mean) * (e - mean)).sum::<f64>() / errs.len() as f64,
            );
            assert!(sd < 1.3 * theory, "n = {n}: sd {sd}, theory {theory}");
            assert!(mean.abs() < theory, "n = {n}: bias {mean}");
        }
    }
}
