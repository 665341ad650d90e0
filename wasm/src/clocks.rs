//! Typed logical-clock classes for notebooks: stamp events by hand and compare them.
//!
//! `new VectorClock()` (`tick`, `merge`, `compare` → `"before"` / `"after"` / `"equal"` /
//! `"concurrent"`, `toJSON` / `VectorClock.fromJSON`), `new LamportClock()` (`tick`,
//! `receive`) and `new Hlc(maxOffsetMs)` (`now`, `send`, `receive` on timestamps
//! `{ l, c }`, with the bound `l − pt ≤ maxOffsetMs` exposed as `maxOffsetMs` and
//! `divergenceMs(physicalMs)`), and `new Snowflake({ nodeId, epochMs, onClockBackwards })`
//! (`nextId(nowMs)`, `Snowflake.decode(id, epochMs)`; ids are `BigInt`s). Counters are doubles in JS: exact up to 2^53. Errors are
//! JS `Error`s naming the argument; a counter that would overflow is an error, not a crash.

use distlab_core::consistency::hlc::{Hlc as CoreHlc, HlcTimestamp};
use distlab_core::consistency::id_gen::{
    Issued, Snowflake as CoreSnowflake, SnowflakeConfig, decode,
};
use distlab_core::consistency::lamport::LamportClock as CoreLamportClock;
use distlab_core::consistency::vector_clock::{
    ClockOrder, ProcessId, VectorClock as CoreVectorClock,
};
use wasm_bindgen::prelude::*;

use crate::convert::{to_js, to_js_via_json, to_json};
use crate::{core_error, js_error, whole_number};

/// A process id from JS: a whole number that fits in 32 bits.
fn process_id(n: f64) -> Result<ProcessId, JsError> {
    let n = whole_number("processId", n)?;
    ProcessId::try_from(n).map_err(|_| {
        js_error(format!(
            "invalid `processId`: must be at most {}, got {n}",
            u32::MAX
        ))
    })
}

/// A time in milliseconds from JS: a fraction is dropped; NaN, infinities and negatives
/// are errors naming `field`.
fn millis(field: &str, n: f64) -> Result<u64, JsError> {
    whole_number(
        field,
        if n.is_finite() && n >= 0.0 {
            n.floor()
        } else {
            n
        },
    )
}

/// A JSON-shaped argument deserialised as `T`, errors naming `what` and the bad field.
fn from_js<T: serde::de::DeserializeOwned + serde::Serialize>(
    what: &str,
    v: &JsValue,
) -> Result<T, JsError> {
    let json = to_json(what, v).map_err(js_error)?;
    distlab_core::lab::json::from_value(what, &json).map_err(core_error)
}

/// A vector clock (Fidge 1988, Mattern 1989): `new VectorClock()`.
#[wasm_bindgen]
#[derive(Clone, Default)]
pub struct VectorClock {
    inner: CoreVectorClock,
}

#[wasm_bindgen]
impl VectorClock {
    /// The empty clock (every entry 0).
    #[wasm_bindgen(constructor)]
    pub fn new() -> VectorClock {
        VectorClock::default()
    }
    /// Process `processId`'s next event: its entry goes up by one and is returned.
    pub fn tick(
        &mut self,
        #[wasm_bindgen(js_name = processId)] process: f64,
    ) -> Result<f64, JsError> {
        let p = process_id(process)?;
        self.inner
            .increment(p)
            .map(|n| n as f64)
            .map_err(core_error)
    }
    /// Process `processId`'s entry (0 if never heard of).
    pub fn get(&self, #[wasm_bindgen(js_name = processId)] process: f64) -> Result<f64, JsError> {
        Ok(self.inner.get(process_id(process)?) as f64)
    }
    /// The entry-wise maximum with `other`: what a process knows after receiving it.
    pub fn merge(&mut self, other: &VectorClock) {
        self.inner.merge(&other.inner);
    }
    /// How this clock is ordered against `other`: `"before"` (happened before it),
    /// `"after"`, `"equal"` or `"concurrent"`.
    #[wasm_bindgen(unchecked_return_type = "\"before\" | \"after\" | \"equal\" | \"concurrent\"")]
    pub fn compare(&self, other: &VectorClock) -> String {
        match self.inner.compare(&other.inner) {
            ClockOrder::Before => "before",
            ClockOrder::After => "after",
            ClockOrder::Equal => "equal",
            ClockOrder::Concurrent => "concurrent",
        }
        .to_string()
    }
    /// Whether every entry is at least `other`'s.
    pub fn dominates(&self, other: &VectorClock) -> bool {
        self.inner.dominates(&other.inner)
    }
    /// Processes with a non-zero entry.
    #[wasm_bindgen(getter)]
    pub fn size(&self) -> f64 {
        self.inner.len() as f64
    }
    /// The entries as `{ processId: count }` (zeros left out).
    #[wasm_bindgen(js_name = toJSON, unchecked_return_type = "Record<string, number>")]
    pub fn to_json(&self) -> Result<JsValue, JsError> {
        // Through JSON text: serde-wasm-bindgen refuses the map's integer keys as object
        // keys, serde_json writes them as strings.
        to_js_via_json(&self.inner).map_err(js_error)
    }
    /// The clock `state` describes (as `toJSON` gave it).
    #[wasm_bindgen(js_name = fromJSON)]
    pub fn from_json(
        #[wasm_bindgen(unchecked_param_type = "Record<string, number>")] state: JsValue,
    ) -> Result<VectorClock, JsError> {
        Ok(VectorClock {
            inner: from_js("state", &state)?,
        })
    }
    /// A copy, to keep an event's stamp while the clock moves on.
    #[wasm_bindgen(js_name = clone)]
    pub fn copy(&self) -> VectorClock {
        self.clone()
    }
}

/// A Lamport clock (Lamport 1978): `new LamportClock()`.
#[wasm_bindgen]
#[derive(Clone, Default)]
pub struct LamportClock {
    inner: CoreLamportClock,
}

#[wasm_bindgen]
impl LamportClock {
    #[wasm_bindgen(constructor)]
    pub fn new() -> LamportClock {
        LamportClock::default()
    }
    /// The last timestamp given out (0 before any event).
    #[wasm_bindgen(getter)]
    pub fn time(&self) -> f64 {
        self.inner.time() as f64
    }
    /// A local event or a send: ticks and returns the event's timestamp.
    pub fn tick(&mut self) -> Result<f64, JsError> {
        self.inner.tick().map(|t| t as f64).map_err(core_error)
    }
    /// Receipt of a message stamped `timestamp`: returns the receive event's timestamp,
    /// greater than both.
    pub fn receive(&mut self, timestamp: f64) -> Result<f64, JsError> {
        let remote = whole_number("timestamp", timestamp)?;
        self.inner
            .receive(remote)
            .map(|t| t as f64)
            .map_err(core_error)
    }
}

/// A hybrid logical clock (Kulkarni et al. 2014, Figure 5): `new Hlc(maxOffsetMs)`.
/// Timestamps are `{ l, c }`: `l` a physical time in ms, `c` a counter.
#[wasm_bindgen]
#[derive(Clone)]
pub struct Hlc {
    inner: CoreHlc,
}

#[wasm_bindgen]
impl Hlc {
    /// A clock that refuses a message stamped more than `maxOffsetMs` ahead of its
    /// physical clock; with physical time never going backwards, that keeps
    /// `l − pt ≤ maxOffsetMs` at every event.
    #[wasm_bindgen(constructor)]
    pub fn new(#[wasm_bindgen(js_name = maxOffsetMs)] max_offset_ms: f64) -> Result<Hlc, JsError> {
        Ok(Hlc {
            inner: CoreHlc::new(whole_number("maxOffsetMs", max_offset_ms)?),
        })
    }
    /// The bound ε on how far `l` may run ahead of the physical clock.
    #[wasm_bindgen(getter, js_name = maxOffsetMs)]
    pub fn max_offset_ms(&self) -> f64 {
        self.inner.max_offset_ms() as f64
    }
    /// The last timestamp given out.
    #[wasm_bindgen(getter, unchecked_return_type = "{ l: number; c: number }")]
    pub fn last(&self) -> Result<JsValue, JsError> {
        to_js(&self.inner.last()).map_err(js_error)
    }
    /// How far `l` runs ahead of the physical clock reading `physicalMs` (`l − pt`;
    /// negative when physical time has passed it). At most `maxOffsetMs` at every event.
    #[wasm_bindgen(js_name = divergenceMs)]
    pub fn divergence_ms(
        &self,
        #[wasm_bindgen(js_name = physicalMs)] physical_ms: f64,
    ) -> Result<f64, JsError> {
        let pt = millis("physicalMs", physical_ms)?;
        Ok(self.inner.last().l as f64 - pt as f64)
    }
    /// A local event at physical time `physicalMs`: returns its timestamp.
    #[wasm_bindgen(unchecked_return_type = "{ l: number; c: number }")]
    pub fn now(
        &mut self,
        #[wasm_bindgen(js_name = physicalMs)] physical_ms: f64,
    ) -> Result<JsValue, JsError> {
        let pt = millis("physicalMs", physical_ms)?;
        let t = self.inner.tick(pt).map_err(core_error)?;
        to_js(&t).map_err(js_error)
    }
    /// A send at physical time `physicalMs` (the same rule as a local event): returns the
    /// timestamp to put on the message.
    #[wasm_bindgen(unchecked_return_type = "{ l: number; c: number }")]
    pub fn send(
        &mut self,
        #[wasm_bindgen(js_name = physicalMs)] physical_ms: f64,
    ) -> Result<JsValue, JsError> {
        self.now(physical_ms)
    }
    /// Receipt at physical time `physicalMs` of a message stamped `timestamp` (`{ l, c }`):
    /// returns the receive event's timestamp. An error, the clock unchanged, when the
    /// message's `l` leads `physicalMs` by more than `maxOffsetMs`.
    #[wasm_bindgen(unchecked_return_type = "{ l: number; c: number }")]
    pub fn receive(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "{ l: number; c: number }")] timestamp: JsValue,
        #[wasm_bindgen(js_name = physicalMs)] physical_ms: f64,
    ) -> Result<JsValue, JsError> {
        let m: HlcTimestamp = from_js("timestamp", &timestamp)?;
        let pt = millis("physicalMs", physical_ms)?;
        let t = self.inner.receive(m, pt).map_err(core_error)?;
        to_js(&t).map_err(js_error)
    }
    /// Orders two timestamps: -1 if `a` < `b`, 0 if equal, 1 if `a` > `b` (by `l`, then
    /// `c`), so `stamps.sort(Hlc.compare)` works.
    pub fn compare(
        #[wasm_bindgen(unchecked_param_type = "{ l: number; c: number }")] a: JsValue,
        #[wasm_bindgen(unchecked_param_type = "{ l: number; c: number }")] b: JsValue,
    ) -> Result<i32, JsError> {
        let a: HlcTimestamp = from_js("a", &a)?;
        let b: HlcTimestamp = from_js("b", &b)?;
        Ok(a.cmp(&b) as i32)
    }
}

/// A Snowflake id generator (Twitter 2010; Discord's layout):
/// `new Snowflake({ nodeId, epochMs?, onClockBackwards? })`, `onClockBackwards` one of
/// `"naive"`, `"refuse"` (the default), `"wait"`, `"borrow"`. Ids are `BigInt`s: 64 bits
/// do not fit a double.
#[wasm_bindgen]
#[derive(Clone)]
pub struct Snowflake {
    inner: CoreSnowflake,
}

#[wasm_bindgen]
impl Snowflake {
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(
            unchecked_param_type = "{ nodeId: number; epochMs?: number; onClockBackwards?: \"naive\" | \"refuse\" | \"wait\" | \"borrow\" }"
        )]
        config: JsValue,
    ) -> Result<Snowflake, JsError> {
        let config: SnowflakeConfig = from_js("config", &config)?;
        Ok(Snowflake {
            inner: CoreSnowflake::new(config).map_err(core_error)?,
        })
    }
    /// An id at clock reading `nowMs` (Unix ms): `{ id }` (a `BigInt`), or
    /// `{ waitUntilMs }` when the generator must wait for the clock (the sequence of this
    /// ms is spent, or under `"wait"` the clock is behind the last id). Throws under
    /// `"refuse"` when the clock has moved backwards, and for a time before the epoch.
    #[wasm_bindgen(js_name = nextId, unchecked_return_type = "{ id: bigint } | { waitUntilMs: number }")]
    pub fn next_id(
        &mut self,
        #[wasm_bindgen(js_name = nowMs)] now_ms: f64,
    ) -> Result<JsValue, JsError> {
        let now = millis("nowMs", now_ms)?;
        let out = js_sys::Object::new();
        let (key, value): (&str, JsValue) = match self.inner.next_id(now).map_err(core_error)? {
            Issued::Id(id) => ("id", js_sys::BigInt::from(id).into()),
            Issued::WaitUntil(t) => ("waitUntilMs", JsValue::from_f64(t as f64)),
        };
        js_sys::Reflect::set(&out, &JsValue::from_str(key), &value)
            .map_err(|_| js_error("cannot build the result"))?;
        Ok(out.into())
    }
    /// The last id's timestamp, Unix ms (`undefined` before the first id).
    #[wasm_bindgen(getter, js_name = lastUnixMs)]
    pub fn last_unix_ms(&self) -> Option<f64> {
        self.inner.last_unix_ms().map(|t| t as f64)
    }
    /// How far the generator's time runs ahead of a clock reading `nowMs` (what
    /// `"borrow"` has borrowed).
    #[wasm_bindgen(js_name = aheadOfClockMs)]
    pub fn ahead_of_clock_ms(
        &self,
        #[wasm_bindgen(js_name = nowMs)] now_ms: f64,
    ) -> Result<f64, JsError> {
        Ok(self.inner.ahead_of_clock_ms(millis("nowMs", now_ms)?) as f64)
    }
    /// Takes an id (a `BigInt` or a decimal string) apart, its time counted from
    /// `epochMs` (Unix ms): `{ unixMs, nodeId, datacenterId, workerId, sequence }`, the
    /// node id's halves in Twitter's naming (Discord's internal worker and process).
    #[wasm_bindgen(
        unchecked_return_type = "{ unixMs: number; nodeId: number; datacenterId: number; workerId: number; sequence: number }"
    )]
    pub fn decode(
        #[wasm_bindgen(unchecked_param_type = "bigint | string")] id: JsValue,
        #[wasm_bindgen(js_name = epochMs)] epoch_ms: f64,
    ) -> Result<JsValue, JsError> {
        let id: u64 = match id.as_string() {
            Some(text) => text.trim().parse().map_err(|_| {
                js_error(format!(
                    "invalid `id`: {text:?} is not a whole number below 2^64"
                ))
            })?,
            None if id.is_bigint() => from_js("id", &id)?,
            None => {
                return Err(js_error(
                    "invalid `id`: must be a BigInt or a decimal string",
                ));
            }
        };
        let d = decode(id, whole_number("epochMs", epoch_ms)?).map_err(core_error)?;
        let (datacenter_id, worker_id) = d.node_halves();
        to_js(&serde_json::json!({
            "unixMs": d.unix_ms,
            "nodeId": d.node_id,
            "datacenterId": datacenter_id,
            "workerId": worker_id,
            "sequence": d.sequence,
        }))
        .map_err(js_error)
    }
}
