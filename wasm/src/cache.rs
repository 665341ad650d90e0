//! Typed cache classes for direct use: `new Lru({maxEntries: 100})`, `new Lfu({capacity:
//! 100})`, `new TinyLfu({capacity: 100})`, `new TtlCache({capacity: 100})`, and the
//! stampede defences `new Singleflight()`, `new XFetch({beta: 1})`, `jitteredTtlMs(...)`.
//!
//! Keys are strings; values are any JS value, held by reference (the cache does not copy
//! them). Every call that may push entries out returns them as `Evicted[]`: `{key, value,
//! cause}` with `cause` one of `"capacity"`, `"replaced"` (the old value of a key put
//! again), `"expired"` and `"rejected"` (W-TinyLFU's admission filter refused the
//! newcomer). `get` counts as an access (promotes, counts a frequency); `peek` does not.
//! Times are milliseconds on the caller's clock (`nowMs`), as everywhere in the package.

use distlab_core::cache::stampede::{
    Join, Singleflight as CoreSingleflight, XFetch as CoreXFetch, jittered_ttl,
};
use distlab_core::cache::ttl::ActiveExpiry;
use distlab_core::cache::{
    EvictionCause, EvictionPolicy, Evictions, Lfu as CoreLfu, Lru as CoreLru,
    TinyLfu as CoreTinyLfu, TtlCache as CoreTtlCache,
};
use distlab_core::rng::SimRng;
use distlab_core::{Duration, Time};
use js_sys::{Array, Object, Reflect};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::convert::to_string;
use crate::{core_error, js_error, typed_config};

/// The TypeScript shape of an eviction report.
#[wasm_bindgen(typescript_custom_section)]
const EVICTED_TS: &str = r#"
/** An entry that left a cache: `cause` is "capacity", "replaced", "expired" or "rejected". */
export interface Evicted { key: string; value: any; cause: "capacity" | "replaced" | "expired" | "rejected" }
/** What one active expiry cycle did. */
export interface ExpireCycleReport { loops: number; sampled: number; expired: Evicted[] }
"#;

fn key(k: &JsValue) -> Result<String, JsError> {
    to_string("key", k).map_err(js_error)
}

fn cause(c: EvictionCause) -> &'static str {
    match c {
        EvictionCause::Capacity => "capacity",
        EvictionCause::Replaced => "replaced",
        EvictionCause::Expired => "expired",
        EvictionCause::Rejected => "rejected",
    }
}

fn set(o: &Object, field: &str, v: &JsValue) -> Result<(), JsError> {
    Reflect::set(o, &JsValue::from_str(field), v)
        .map(|_| ())
        .map_err(|_| js_error(format!("cannot set `{field}` on a report")))
}

fn report(out: Evictions<String, JsValue>) -> Result<Array, JsError> {
    let list = Array::new();
    for e in out {
        let o = Object::new();
        set(&o, "key", &JsValue::from_str(&e.key))?;
        set(&o, "value", &e.value)?;
        set(&o, "cause", &JsValue::from_str(cause(e.cause)))?;
        list.push(&o);
    }
    Ok(list)
}

fn keys(keys: Vec<String>) -> Array {
    keys.iter().map(|k| JsValue::from_str(k)).collect()
}

fn now(now_ms: f64) -> Result<Time, JsError> {
    Time::try_from_millis_f64("nowMs", now_ms).map_err(core_error)
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LruConfig {
    max_entries: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_weight: Option<u64>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CapacityConfig {
    capacity: usize,
}

/// An LRU cache: `new Lru({maxEntries: 100, maxWeight?: 10_000})`. Entries weigh 1 unless
/// put with a weight; both bounds hold after every put.
#[wasm_bindgen]
pub struct Lru {
    inner: CoreLru<String, JsValue>,
}

#[wasm_bindgen]
impl Lru {
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "{ maxEntries: number; maxWeight?: number }")]
        config: JsValue,
    ) -> Result<Lru, JsError> {
        let c: LruConfig = typed_config(&config)?;
        let inner = CoreLru::weighted(c.max_entries, c.max_weight.unwrap_or(u64::MAX))
            .map_err(core_error)?;
        Ok(Lru { inner })
    }
    /// The value under `key` (made most recently used), or `undefined`.
    pub fn get(&mut self, key: JsValue) -> Result<JsValue, JsError> {
        Ok(self
            .inner
            .get(&self::key(&key)?)
            .cloned()
            .unwrap_or_default())
    }
    /// The value under `key` without touching its recency, or `undefined`.
    pub fn peek(&self, key: JsValue) -> Result<JsValue, JsError> {
        Ok(self
            .inner
            .peek(&self::key(&key)?)
            .cloned()
            .unwrap_or_default())
    }
    /// Stores `value` under `key` with `weight` (default 1; at most `maxWeight`); returns
    /// what left.
    #[wasm_bindgen(unchecked_return_type = "Evicted[]")]
    pub fn put(
        &mut self,
        key: JsValue,
        value: JsValue,
        weight: Option<f64>,
    ) -> Result<Array, JsError> {
        let key = self::key(&key)?;
        let weight = crate::whole_number("weight", weight.unwrap_or(1.0))?;
        report(
            self.inner
                .put_weighted(key, value, weight)
                .map_err(core_error)?,
        )
    }
    /// Takes `key` out; returns its value or `undefined`.
    pub fn remove(&mut self, key: JsValue) -> Result<JsValue, JsError> {
        Ok(self.inner.remove(&self::key(&key)?).unwrap_or_default())
    }
    /// Entries held.
    pub fn len(&self) -> u32 {
        self.inner.len() as u32
    }
    #[wasm_bindgen(js_name = isEmpty)]
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
    /// Total weight held.
    pub fn weight(&self) -> f64 {
        self.inner.weight() as f64
    }
    /// Keys from most to least recently used.
    #[wasm_bindgen(unchecked_return_type = "string[]")]
    pub fn keys(&self) -> Array {
        keys(self.inner.keys_in_order())
    }
}

/// A policy class over a count-bounded core cache: `get`, `peek`, `put`, `remove`, `len`,
/// `keys`.
macro_rules! policy_class {
    ($(#[$doc:meta])* $js:ident, $core:ident) => {
        $(#[$doc])*
        #[wasm_bindgen]
        pub struct $js {
            inner: $core<String, JsValue>,
        }

        #[wasm_bindgen]
        impl $js {
            #[wasm_bindgen(constructor)]
            pub fn new(
                #[wasm_bindgen(unchecked_param_type = "{ capacity: number }")] config: JsValue,
            ) -> Result<$js, JsError> {
                let c: CapacityConfig = typed_config(&config)?;
                Ok($js { inner: $core::new(c.capacity).map_err(core_error)? })
            }
            /// The value under `key` (counted as an access), or `undefined`.
            pub fn get(&mut self, key: JsValue) -> Result<JsValue, JsError> {
                Ok(self.inner.get(&self::key(&key)?).cloned().unwrap_or_default())
            }
            /// The value under `key` without counting an access, or `undefined`.
            pub fn peek(&self, key: JsValue) -> Result<JsValue, JsError> {
                Ok(self.inner.peek(&self::key(&key)?).cloned().unwrap_or_default())
            }
            /// Stores `value` under `key`; returns what left.
            #[wasm_bindgen(unchecked_return_type = "Evicted[]")]
            pub fn put(&mut self, key: JsValue, value: JsValue) -> Result<Array, JsError> {
                report(self.inner.put(self::key(&key)?, value))
            }
            /// Takes `key` out; returns its value or `undefined`.
            pub fn remove(&mut self, key: JsValue) -> Result<JsValue, JsError> {
                Ok(self.inner.remove(&self::key(&key)?).unwrap_or_default())
            }
            /// Entries held.
            pub fn len(&self) -> u32 {
                self.inner.len() as u32
            }
            #[wasm_bindgen(js_name = isEmpty)]
            pub fn is_empty(&self) -> bool {
                self.inner.is_empty()
            }
            /// Keys in the policy's order: the next to go last.
            #[wasm_bindgen(unchecked_return_type = "string[]")]
            pub fn keys(&self) -> Array {
                keys(self.inner.keys_in_order())
            }
        }
    };
}

policy_class!(
    /// An O(1) LFU cache with LRU tie-break: `new Lfu({capacity: 100})`.
    Lfu,
    CoreLfu
);
policy_class!(
    /// A W-TinyLFU cache (Caffeine's policy): `new TinyLfu({capacity: 100})`.
    TinyLfu,
    CoreTinyLfu
);

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TtlConfig {
    capacity: usize,
    #[serde(default)]
    seed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    keys_per_loop: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stale_percent: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_loops: Option<u32>,
}

/// A cache whose entries may carry a time to live, expired the way Redis does: lazily when
/// read, and actively by `activeExpireCycle(nowMs)` (call it about ten times a second):
/// `new TtlCache({capacity: 1000, seed?: 1, keysPerLoop?: 20, stalePercent?: 25,
/// maxLoops?: 16})`. Full, it evicts the least recently used entry.
#[wasm_bindgen]
pub struct TtlCache {
    inner: CoreTtlCache<String, JsValue>,
    rng: SimRng,
}

#[wasm_bindgen]
impl TtlCache {
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(
            unchecked_param_type = "{ capacity: number; seed?: number; keysPerLoop?: number; stalePercent?: number; maxLoops?: number }"
        )]
        config: JsValue,
    ) -> Result<TtlCache, JsError> {
        let c: TtlConfig = typed_config(&config)?;
        let d = ActiveExpiry::default();
        let expiry = ActiveExpiry {
            keys_per_loop: c.keys_per_loop.unwrap_or(d.keys_per_loop),
            stale_percent: c.stale_percent.unwrap_or(d.stale_percent),
            max_loops: c.max_loops.unwrap_or(d.max_loops),
        };
        let inner = CoreTtlCache::new(c.capacity, expiry).map_err(core_error)?;
        Ok(TtlCache {
            inner,
            rng: SimRng::new(c.seed),
        })
    }
    /// The value under `key` at `nowMs`, or `undefined` (an expired key is deleted now).
    pub fn get(&mut self, key: JsValue, now_ms: f64) -> Result<JsValue, JsError> {
        let (key, now) = (self::key(&key)?, now(now_ms)?);
        Ok(self.inner.get(now, &key).cloned().unwrap_or_default())
    }
    /// The value under `key` at `nowMs` without touching anything, or `undefined`.
    pub fn peek(&self, key: JsValue, now_ms: f64) -> Result<JsValue, JsError> {
        let (key, now) = (self::key(&key)?, now(now_ms)?);
        Ok(self.inner.peek(now, &key).cloned().unwrap_or_default())
    }
    /// Stores `value` under `key` at `nowMs`, living `ttlMs` (omitted: no TTL); returns
    /// what left.
    #[wasm_bindgen(unchecked_return_type = "Evicted[]")]
    pub fn put(
        &mut self,
        key: JsValue,
        value: JsValue,
        now_ms: f64,
        ttl_ms: Option<f64>,
    ) -> Result<Array, JsError> {
        let (key, now) = (self::key(&key)?, now(now_ms)?);
        let ttl = match ttl_ms {
            None => None,
            Some(ms) => {
                let d = Duration::try_from_millis_f64("ttlMs", ms).map_err(core_error)?;
                if d == Duration::ZERO {
                    return Err(js_error(format!(
                        "invalid `ttlMs`: must be at least 0.001, got {ms}"
                    )));
                }
                Some(d)
            }
        };
        report(self.inner.put(now, key, value, ttl).map_err(core_error)?)
    }
    /// Takes `key` out, expired or not; returns its value or `undefined`.
    pub fn remove(&mut self, key: JsValue) -> Result<JsValue, JsError> {
        Ok(self.inner.remove(&self::key(&key)?).unwrap_or_default())
    }
    /// Milliseconds `key` has left at `nowMs`: `null` if it has no TTL, `undefined` if it
    /// is absent or expired.
    pub fn ttl(&self, key: JsValue, now_ms: f64) -> Result<JsValue, JsError> {
        let (key, now) = (self::key(&key)?, now(now_ms)?);
        Ok(match self.inner.ttl(now, &key) {
            None => JsValue::UNDEFINED,
            Some(None) => JsValue::NULL,
            Some(Some(d)) => JsValue::from_f64(d.as_millis_f64()),
        })
    }
    /// Entries held, expired-but-not-yet-deleted ones included.
    pub fn len(&self) -> u32 {
        self.inner.len() as u32
    }
    #[wasm_bindgen(js_name = isEmpty)]
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
    /// Entries held past their time at `nowMs`.
    #[wasm_bindgen(js_name = expiredHeld)]
    pub fn expired_held(&self, now_ms: f64) -> Result<u32, JsError> {
        Ok(self.inner.expired_held(now(now_ms)?) as u32)
    }
    /// One active expiry cycle at `nowMs`.
    #[wasm_bindgen(js_name = activeExpireCycle, unchecked_return_type = "ExpireCycleReport")]
    pub fn active_expire_cycle(&mut self, now_ms: f64) -> Result<Object, JsError> {
        let c = self.inner.active_expire_cycle(now(now_ms)?, &mut self.rng);
        let o = Object::new();
        set(&o, "loops", &JsValue::from(c.loops))?;
        set(&o, "sampled", &JsValue::from(c.sampled))?;
        set(&o, "expired", &report(c.expired)?.into())?;
        Ok(o)
    }
    /// Running totals: `{lazilyExpired, activelyExpired, evicted, cycles, sampled}`.
    pub fn stats(&self) -> Result<JsValue, JsError> {
        crate::convert::to_js(&self.inner.stats()).map_err(js_error)
    }
}

/// Request coalescing for a cache in front of a slow store: `new Singleflight()`. A caller
/// that misses `key` calls `join(key, caller, nowMs)`: `true` means it loads the value,
/// `false` that a load of `key` is already in flight and it should wait for it. When the
/// load ends, `finish(key)` returns every caller of that flight — the loader first — so
/// each can be answered with the one result. `caller` is any JS value (a resolve function,
/// an id), held by reference.
#[wasm_bindgen]
#[derive(Default)]
pub struct Singleflight {
    inner: CoreSingleflight<String, JsValue>,
}

#[wasm_bindgen]
impl Singleflight {
    #[wasm_bindgen(constructor)]
    pub fn new() -> Singleflight {
        Singleflight::default()
    }
    /// `caller` missed `key` at `nowMs`: `true` if it should load (no load of `key` was
    /// in flight), `false` if it joined the load in flight.
    pub fn join(&mut self, key: JsValue, caller: JsValue, now_ms: f64) -> Result<bool, JsError> {
        let (key, now) = (self::key(&key)?, now(now_ms)?);
        Ok(matches!(self.inner.join(&key, caller, now), Join::Load))
    }
    /// The load of `key` ended: its callers, the loader first. The next miss of `key`
    /// starts a new load. An error if no load of `key` is in flight.
    pub fn finish(&mut self, key: JsValue) -> Result<Array, JsError> {
        let callers = self.inner.finish(&self::key(&key)?).map_err(core_error)?;
        Ok(callers.into_iter().collect())
    }
    /// Whether a load of `key` is in flight.
    #[wasm_bindgen(js_name = inFlight)]
    pub fn in_flight(&self, key: JsValue) -> Result<bool, JsError> {
        Ok(self.inner.in_flight(&self::key(&key)?))
    }
    /// Callers of `key`'s load in flight, the loader included (0 if none).
    pub fn callers(&self, key: JsValue) -> Result<u32, JsError> {
        Ok(self.inner.callers(&self::key(&key)?) as u32)
    }
    /// Keys with a load in flight.
    #[wasm_bindgen(getter)]
    pub fn flights(&self) -> u32 {
        self.inner.flights() as u32
    }
    /// Loads started so far.
    #[wasm_bindgen(getter)]
    pub fn loads(&self) -> f64 {
        self.inner.loads() as f64
    }
    /// Callers that waited on another's load instead of loading.
    #[wasm_bindgen(getter)]
    pub fn coalesced(&self) -> f64 {
        self.inner.coalesced() as f64
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct XFetchConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    beta: Option<f64>,
    #[serde(default)]
    seed: u64,
}

/// Probabilistic early expiration (Vattani, Chierichetti & Lowenstein, VLDB 2015):
/// `new XFetch({beta?: 1, seed?: 0})`. A read at `nowMs` of a value expiring at `expiryMs`
/// whose last recomputation took `deltaMs` recomputes it early when
/// `now − δ·β·ln(u) ≥ expiry` for a uniform draw `u` in (0, 1] — so one reader refreshes a
/// hot key shortly before it expires instead of every reader at once after. β > 1 leans
/// earlier; 1 is the paper's optimum. The draws come from the seeded generator, so a run
/// repeats.
#[wasm_bindgen]
pub struct XFetch {
    inner: CoreXFetch,
    rng: SimRng,
}

#[wasm_bindgen]
impl XFetch {
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "{ beta?: number; seed?: number }")] config: JsValue,
    ) -> Result<XFetch, JsError> {
        let c: XFetchConfig = if config.is_undefined() {
            XFetchConfig {
                beta: None,
                seed: 0,
            }
        } else {
            typed_config(&config)?
        };
        Ok(XFetch {
            inner: CoreXFetch::new(c.beta.unwrap_or(1.0)).map_err(core_error)?,
            rng: SimRng::new(c.seed),
        })
    }
    #[wasm_bindgen(getter)]
    pub fn beta(&self) -> f64 {
        self.inner.beta()
    }
    /// Whether this read recomputes (always at or past expiry). Draws one number.
    #[wasm_bindgen(js_name = shouldRecompute)]
    pub fn should_recompute(
        &mut self,
        now_ms: f64,
        expiry_ms: f64,
        delta_ms: f64,
    ) -> Result<bool, JsError> {
        let (now, expiry, delta) = xfetch_times(now_ms, expiry_ms, delta_ms)?;
        let u = self.rng.next_f64_open0();
        self.inner
            .should_recompute(now, expiry, delta, u)
            .map_err(core_error)
    }
    /// The probability that a read at `nowMs` recomputes: `e^(−(expiry − now)/(δβ))`.
    #[wasm_bindgen(js_name = recomputeProbability)]
    pub fn recompute_probability(
        &self,
        now_ms: f64,
        expiry_ms: f64,
        delta_ms: f64,
    ) -> Result<f64, JsError> {
        let (now, expiry, delta) = xfetch_times(now_ms, expiry_ms, delta_ms)?;
        Ok(self.inner.recompute_probability(now, expiry, delta))
    }
}

fn xfetch_times(
    now_ms: f64,
    expiry_ms: f64,
    delta_ms: f64,
) -> Result<(Time, Time, Duration), JsError> {
    Ok((
        now(now_ms)?,
        Time::try_from_millis_f64("expiryMs", expiry_ms).map_err(core_error)?,
        Duration::try_from_millis_f64("deltaMs", delta_ms).map_err(core_error)?,
    ))
}

/// A TTL shortened by a random fraction of at most `jitter` (in [0, 1]):
/// `ttlMs·(1 − jitter·u)` for `u` in [0, 1) — pass `Math.random()` or a seeded draw. Keys
/// written together then expire spread over `jitter·ttlMs` instead of all at once, and no
/// TTL grows, so a bound on staleness still holds.
#[wasm_bindgen(js_name = jitteredTtlMs)]
pub fn jittered_ttl_ms(ttl_ms: f64, jitter: f64, u: f64) -> Result<f64, JsError> {
    let ttl = Duration::try_from_millis_f64("ttlMs", ttl_ms).map_err(core_error)?;
    Ok(jittered_ttl(ttl, jitter, u)
        .map_err(core_error)?
        .as_millis_f64())
}
