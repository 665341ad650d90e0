//! The sketches as typed classes for notebooks: `new Bloom(1e6, 0.01)`,
//! `new CountingBloom(1000, 0.01)`, `new Cuckoo(1e5)`, `new CountMin(0.001, 0.01)`,
//! `new HyperLogLog(14)`. Keys and elements are strings (their UTF-8 bytes are hashed, so
//! a `HyperLogLog` here counts exactly as Redis's `PFADD` / `PFCOUNT` do on the same
//! strings); anything else is an `Error` naming the argument. Bad sizes are `Error`s
//! naming the field.

use distlab_core::sketch::bloom::Bloom as CoreBloom;
use distlab_core::sketch::count_min::CountMin as CoreCountMin;
use distlab_core::sketch::counting_bloom::CountingBloom as CoreCountingBloom;
use distlab_core::sketch::cuckoo::Cuckoo as CoreCuckoo;
use distlab_core::sketch::hyperloglog::{
    Encoding, HyperLogLog as CoreHyperLogLog, REDIS_PRECISION,
};
use wasm_bindgen::prelude::*;

use crate::{core_error, js_error, js_text, whole_number, whole_u32};

/// A Bloom filter: `new Bloom(expectedItems, falsePositiveRate)` sizes it optimally.
#[wasm_bindgen]
pub struct Bloom {
    inner: CoreBloom,
}

#[wasm_bindgen]
impl Bloom {
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(js_name = expectedItems)] expected_items: f64,
        #[wasm_bindgen(js_name = falsePositiveRate)] false_positive_rate: f64,
    ) -> Result<Bloom, JsError> {
        let n = whole_number("expectedItems", expected_items)?;
        let inner = CoreBloom::with_rate(n, false_positive_rate).map_err(core_error)?;
        Ok(Bloom { inner })
    }
    /// A filter of exactly `bits` bits and `hashes` probes per key.
    #[wasm_bindgen(js_name = withShape)]
    pub fn with_shape(bits: f64, hashes: f64) -> Result<Bloom, JsError> {
        let bits = whole_number("bits", bits)?;
        let inner = CoreBloom::new(bits, whole_u32("hashes", hashes)?).map_err(core_error)?;
        Ok(Bloom { inner })
    }
    /// Adds `key`; whether any of its bits was clear.
    pub fn insert(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "string")] k: JsValue,
    ) -> Result<bool, JsError> {
        Ok(self.inner.insert(js_text("key", &k)?.as_bytes()))
    }
    /// Whether `key` may have been inserted (false: it certainly was not).
    pub fn contains(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] k: JsValue,
    ) -> Result<bool, JsError> {
        Ok(self.inner.contains(js_text("key", &k)?.as_bytes()))
    }
    /// Adds every key of `other` (same bits and hashes).
    pub fn union(&mut self, other: &Bloom) -> Result<(), JsError> {
        self.inner.union(&other.inner).map_err(core_error)
    }
    #[wasm_bindgen(getter)]
    pub fn bits(&self) -> f64 {
        self.inner.bits() as f64
    }
    #[wasm_bindgen(getter)]
    pub fn hashes(&self) -> f64 {
        f64::from(self.inner.hashes())
    }
    #[wasm_bindgen(getter)]
    pub fn inserted(&self) -> f64 {
        self.inner.inserted() as f64
    }
    /// `(1 − e^(−kn/m))^k` after the insertions so far.
    #[wasm_bindgen(getter, js_name = expectedFpr)]
    pub fn expected_fpr(&self) -> f64 {
        self.inner.expected_fpr()
    }
}

/// A counting Bloom filter with 4-bit saturating counters:
/// `new CountingBloom(expectedItems, falsePositiveRate)`.
#[wasm_bindgen]
pub struct CountingBloom {
    inner: CoreCountingBloom,
}

#[wasm_bindgen]
impl CountingBloom {
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(js_name = expectedItems)] expected_items: f64,
        #[wasm_bindgen(js_name = falsePositiveRate)] false_positive_rate: f64,
    ) -> Result<CountingBloom, JsError> {
        let n = whole_number("expectedItems", expected_items)?;
        let inner = CoreCountingBloom::with_rate(n, false_positive_rate).map_err(core_error)?;
        Ok(CountingBloom { inner })
    }
    pub fn insert(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "string")] k: JsValue,
    ) -> Result<(), JsError> {
        self.inner.insert(js_text("key", &k)?.as_bytes());
        Ok(())
    }
    /// Deletes `key` if it may be present; whether it did.
    pub fn remove(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "string")] k: JsValue,
    ) -> Result<bool, JsError> {
        Ok(self.inner.remove(js_text("key", &k)?.as_bytes()))
    }
    pub fn contains(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] k: JsValue,
    ) -> Result<bool, JsError> {
        Ok(self.inner.contains(js_text("key", &k)?.as_bytes()))
    }
    /// Increments that met a counter already at 15.
    #[wasm_bindgen(getter)]
    pub fn saturations(&self) -> f64 {
        self.inner.saturations() as f64
    }
}

/// A cuckoo filter: `new Cuckoo(capacity, fingerprintBits = 8, maxKicks = 500, seed = 1)`.
#[wasm_bindgen]
pub struct Cuckoo {
    inner: CoreCuckoo,
}

#[wasm_bindgen]
impl Cuckoo {
    #[wasm_bindgen(constructor)]
    pub fn new(
        capacity: f64,
        #[wasm_bindgen(js_name = fingerprintBits)] fingerprint_bits: Option<f64>,
        #[wasm_bindgen(js_name = maxKicks)] max_kicks: Option<f64>,
        seed: Option<f64>,
    ) -> Result<Cuckoo, JsError> {
        let inner = CoreCuckoo::new(
            whole_number("capacity", capacity)?,
            whole_u32("fingerprintBits", fingerprint_bits.unwrap_or(8.0))?,
            whole_u32("maxKicks", max_kicks.unwrap_or(500.0))?,
            whole_number("seed", seed.unwrap_or(1.0))?,
        )
        .map_err(core_error)?;
        Ok(Cuckoo { inner })
    }
    /// Stores `key`; false if the filter is full and refused it.
    pub fn insert(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "string")] k: JsValue,
    ) -> Result<bool, JsError> {
        Ok(self.inner.insert(js_text("key", &k)?.as_bytes()))
    }
    pub fn contains(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] k: JsValue,
    ) -> Result<bool, JsError> {
        Ok(self.inner.contains(js_text("key", &k)?.as_bytes()))
    }
    /// Deletes one copy of `key` (only delete keys you inserted).
    pub fn remove(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "string")] k: JsValue,
    ) -> Result<bool, JsError> {
        Ok(self.inner.remove(js_text("key", &k)?.as_bytes()))
    }
    #[wasm_bindgen(getter, js_name = loadFactor)]
    pub fn load_factor(&self) -> f64 {
        self.inner.load_factor()
    }
    /// The load factor when an insert first ran out of kicks, or `undefined`.
    #[wasm_bindgen(getter, js_name = firstFailureLoad)]
    pub fn first_failure_load(&self) -> Option<f64> {
        self.inner.first_failure_load()
    }
}

/// A count-min sketch: `new CountMin(epsilon, delta, conservative = true)`; estimates are
/// never below the truth and above it by more than `epsilon·total` with probability at
/// most `delta`.
#[wasm_bindgen]
pub struct CountMin {
    inner: CoreCountMin,
}

#[wasm_bindgen]
impl CountMin {
    #[wasm_bindgen(constructor)]
    pub fn new(epsilon: f64, delta: f64, conservative: Option<bool>) -> Result<CountMin, JsError> {
        let inner = CoreCountMin::with_error(epsilon, delta, conservative.unwrap_or(true))
            .map_err(core_error)?;
        Ok(CountMin { inner })
    }
    /// Adds `count` (default 1) occurrences of `key`.
    pub fn add(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "string")] k: JsValue,
        count: Option<f64>,
    ) -> Result<(), JsError> {
        let count = whole_number("count", count.unwrap_or(1.0))?;
        self.inner.add(js_text("key", &k)?.as_bytes(), count);
        Ok(())
    }
    pub fn estimate(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] k: JsValue,
    ) -> Result<f64, JsError> {
        Ok(self.inner.estimate(js_text("key", &k)?.as_bytes()) as f64)
    }
    /// Everything added so far.
    #[wasm_bindgen(getter)]
    pub fn total(&self) -> f64 {
        self.inner.total() as f64
    }
    #[wasm_bindgen(getter)]
    pub fn width(&self) -> f64 {
        self.inner.width() as f64
    }
    #[wasm_bindgen(getter)]
    pub fn depth(&self) -> f64 {
        f64::from(self.inner.depth())
    }
}

/// Redis's HyperLogLog: `new HyperLogLog()` or `new HyperLogLog(14)` (precision 4 to 18;
/// 14 is Redis's, and then `count()` equals `PFCOUNT` on the same strings).
#[wasm_bindgen]
pub struct HyperLogLog {
    inner: CoreHyperLogLog,
}

#[wasm_bindgen]
impl HyperLogLog {
    #[wasm_bindgen(constructor)]
    pub fn new(precision: Option<f64>) -> Result<HyperLogLog, JsError> {
        let p = whole_number("precision", precision.unwrap_or(f64::from(REDIS_PRECISION)))?;
        let p = u8::try_from(p).unwrap_or(u8::MAX);
        let inner = CoreHyperLogLog::new(p).map_err(core_error)?;
        Ok(HyperLogLog { inner })
    }
    /// Adds one element; whether a register changed.
    pub fn add(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "string")] element: JsValue,
    ) -> Result<bool, JsError> {
        Ok(self.inner.add(js_text("element", &element)?.as_bytes()))
    }
    /// `PFADD`: adds every element of an array of strings; whether a register changed.
    pub fn pfadd(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "string[]")] elements: JsValue,
    ) -> Result<bool, JsError> {
        let array: &js_sys::Array = elements
            .dyn_ref()
            .ok_or_else(|| js_error("invalid `elements`: must be an array of strings"))?;
        let mut strings = Vec::with_capacity(array.length() as usize);
        for (i, e) in array.iter().enumerate() {
            strings.push(js_text(&format!("elements[{i}]"), &e)?);
        }
        Ok(self.inner.pfadd(&strings))
    }
    /// `PFCOUNT`: the estimated number of distinct elements.
    pub fn count(&self) -> f64 {
        self.inner.count() as f64
    }
    /// `PFMERGE` into this sketch (same precision).
    pub fn merge(&mut self, other: &HyperLogLog) -> Result<(), JsError> {
        self.inner.merge_from(&[&other.inner]).map_err(core_error)
    }
    /// Every register's value.
    pub fn registers(&self) -> Vec<u8> {
        self.inner.register_values()
    }
    /// `"sparse"` or `"dense"`.
    #[wasm_bindgen(getter)]
    pub fn encoding(&self) -> String {
        match self.inner.encoding() {
            Encoding::Sparse => "sparse",
            Encoding::Dense => "dense",
        }
        .into()
    }
    /// The bytes Redis would store for this sketch (`GET key`).
    #[wasm_bindgen(js_name = redisBytes)]
    pub fn redis_bytes(&self) -> Vec<u8> {
        self.inner.to_redis_bytes()
    }
    #[wasm_bindgen(getter, js_name = standardError)]
    pub fn standard_error(&self) -> f64 {
        self.inner.standard_error()
    }
}
