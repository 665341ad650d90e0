//! Typed CRDT classes for notebooks: make replicas, update them, and merge them by hand.
//!
//! `new GCounter(replicaId)`, `PnCounter`, `GSet`, `TwoPSet`, `OrSet`, `LwwRegister`,
//! `MvRegister`, `LwwMap`, `Rga`. Each instance is one replica: its updates are made as
//! `replicaId` (two replicas must not share an id). Every update returns its *delta*, an
//! instance of the same class holding just that update, which another replica can
//! `merge` like a whole state — deltas may be merged in any order, more than once.
//! `merge(other)` takes another instance of the same class; `toJSON()` gives the state
//! (so `JSON.stringify` works) and `Class.fromJSON(replicaId, state)` takes one back.
//! Set elements, register values and map keys and values are strings; times are
//! milliseconds on the replica's clock (`nowMs`). Errors are JS `Error`s naming the
//! argument; a state past the core's bounds (2^20 entries) is an error, not a crash.

use distlab_core::crdt::{
    Crdt, GCounter as CoreGCounter, GSet as CoreGSet, LwwMap as CoreLwwMap,
    LwwRegister as CoreLwwRegister, MvRegister as CoreMvRegister, OrSet as CoreOrSet,
    PnCounter as CorePnCounter, ReplicaId, Rga as CoreRga, TwoPSet as CoreTwoPSet,
};
use wasm_bindgen::prelude::*;

use crate::convert::{to_js, to_json};
use crate::{core_error, js_error, js_text, whole_number};

/// A replica id from JS: a whole number that fits in 32 bits.
fn replica_id(n: f64) -> Result<ReplicaId, JsError> {
    let n = whole_number("replicaId", n)?;
    ReplicaId::try_from(n).map_err(|_| {
        js_error(format!(
            "invalid `replicaId`: must be at most {}, got {n}",
            u32::MAX
        ))
    })
}

/// `nowMs` as a whole number of milliseconds.
fn now_ms(n: f64) -> Result<u64, JsError> {
    // A fraction of a millisecond is dropped; NaN, infinities and negatives are errors.
    whole_number(
        "nowMs",
        if n.is_finite() && n >= 0.0 {
            n.floor()
        } else {
            n
        },
    )
}

fn strings(items: impl IntoIterator<Item = String>) -> js_sys::Array {
    items.into_iter().map(|s| JsValue::from_str(&s)).collect()
}

/// The methods every CRDT class has: the constructor, `replicaId`, `merge`, `toJSON`,
/// `fromJSON` and `entries`.
macro_rules! crdt_class {
    ($(#[$doc:meta])* $js:ident, $core:ty, $state_ts:literal) => {
        $(#[$doc])*
        #[wasm_bindgen]
        #[derive(Clone)]
        pub struct $js {
            replica: ReplicaId,
            inner: $core,
        }

        #[wasm_bindgen]
        impl $js {
            /// An empty replica whose updates are made as `replicaId`.
            #[wasm_bindgen(constructor)]
            pub fn new(#[wasm_bindgen(js_name = replicaId)] replica_id: f64) -> Result<$js, JsError> {
                Ok($js {
                    replica: self::replica_id(replica_id)?,
                    inner: <$core>::default(),
                })
            }
            /// The replica id its updates are made as.
            #[wasm_bindgen(getter, js_name = replicaId)]
            pub fn replica_id(&self) -> f64 {
                f64::from(self.replica)
            }
            /// Merges `other` (a replica or a delta of the same class) into this one.
            pub fn merge(&mut self, other: &$js) -> Result<(), JsError> {
                self.inner.merge(&other.inner).map_err(core_error)
            }
            /// The state, as plain JSON-able data.
            #[wasm_bindgen(js_name = toJSON, unchecked_return_type = $state_ts)]
            pub fn to_json(&self) -> Result<JsValue, JsError> {
                to_js(&self.inner).map_err(js_error)
            }
            /// A replica `replicaId` holding `state` (as `toJSON` gave it).
            #[wasm_bindgen(js_name = fromJSON)]
            pub fn from_json(
                #[wasm_bindgen(js_name = replicaId)] replica_id: f64,
                #[wasm_bindgen(unchecked_param_type = $state_ts)] state: JsValue,
            ) -> Result<$js, JsError> {
                let replica = self::replica_id(replica_id)?;
                let state = to_json("state", &state).map_err(js_error)?;
                let inner = distlab_core::lab::json::from_value("state", &state)
                    .map_err(core_error)?;
                Ok($js { replica, inner })
            }
            /// Entries held, tombstones included (bounded by 2^20).
            #[wasm_bindgen(getter)]
            pub fn entries(&self) -> f64 {
                self.inner.entries() as f64
            }
            /// Whether `other` holds the same state.
            pub fn equals(&self, other: &$js) -> bool {
                self.inner == other.inner
            }
        }

        impl $js {
            fn delta(&self, inner: $core) -> $js {
                $js {
                    replica: self.replica,
                    inner,
                }
            }
        }
    };
}

crdt_class!(
    /// A grow-only counter (Shapiro et al. 2011): `new GCounter(0)`.
    GCounter, CoreGCounter, "Record<string, number>"
);

#[wasm_bindgen]
impl GCounter {
    /// Adds `by` (default 1); returns the delta.
    pub fn increment(&mut self, by: Option<f64>) -> Result<GCounter, JsError> {
        let by = whole_number("by", by.unwrap_or(1.0))?;
        let d = self.inner.increment(self.replica, by).map_err(core_error)?;
        Ok(self.delta(d))
    }
    /// The count (a double: exact up to 2^53).
    #[wasm_bindgen(getter)]
    pub fn value(&self) -> f64 {
        self.inner.value() as f64
    }
}

crdt_class!(
    /// A counter that goes up and down: `new PnCounter(0)`.
    PnCounter, CorePnCounter, "{ increments: Record<string, number>; decrements: Record<string, number> }"
);

#[wasm_bindgen]
impl PnCounter {
    /// Adds `by` (default 1); returns the delta.
    pub fn increment(&mut self, by: Option<f64>) -> Result<PnCounter, JsError> {
        let by = whole_number("by", by.unwrap_or(1.0))?;
        let d = self.inner.increment(self.replica, by).map_err(core_error)?;
        Ok(self.delta(d))
    }
    /// Subtracts `by` (default 1); returns the delta.
    pub fn decrement(&mut self, by: Option<f64>) -> Result<PnCounter, JsError> {
        let by = whole_number("by", by.unwrap_or(1.0))?;
        let d = self.inner.decrement(self.replica, by).map_err(core_error)?;
        Ok(self.delta(d))
    }
    /// The count (a double: exact within ±2^53).
    #[wasm_bindgen(getter)]
    pub fn value(&self) -> f64 {
        self.inner.value() as f64
    }
}

crdt_class!(
    /// A grow-only set of strings: `new GSet(0)`.
    GSet, CoreGSet<String>, "string[]"
);

#[wasm_bindgen]
impl GSet {
    /// Adds `element`; returns the delta.
    pub fn add(&mut self, element: JsValue) -> Result<GSet, JsError> {
        let e = js_text("element", &element)?;
        let d = self.inner.add(e).map_err(core_error)?;
        Ok(self.delta(d))
    }
    pub fn has(&self, element: JsValue) -> Result<bool, JsError> {
        Ok(self.inner.contains(&js_text("element", &element)?))
    }
    /// The elements, sorted.
    #[wasm_bindgen(unchecked_return_type = "string[]")]
    pub fn values(&self) -> js_sys::Array {
        strings(self.inner.value())
    }
}

crdt_class!(
    /// A two-phase set of strings (a removed element never comes back): `new TwoPSet(0)`.
    TwoPSet, CoreTwoPSet<String>, "{ added: string[]; removed: string[] }"
);

#[wasm_bindgen]
impl TwoPSet {
    /// Adds `element` (no effect if it was removed); returns the delta.
    pub fn add(&mut self, element: JsValue) -> Result<TwoPSet, JsError> {
        let e = js_text("element", &element)?;
        let d = self.inner.add(e).map_err(core_error)?;
        Ok(self.delta(d))
    }
    /// Removes `element` for good (an error if it is not in the set); returns the delta.
    pub fn remove(&mut self, element: JsValue) -> Result<TwoPSet, JsError> {
        let e = js_text("element", &element)?;
        let d = self.inner.remove(e).map_err(core_error)?;
        Ok(self.delta(d))
    }
    pub fn has(&self, element: JsValue) -> Result<bool, JsError> {
        Ok(self.inner.contains(&js_text("element", &element)?))
    }
    /// The elements, sorted.
    #[wasm_bindgen(unchecked_return_type = "string[]")]
    pub fn values(&self) -> js_sys::Array {
        strings(self.inner.value())
    }
}

crdt_class!(
    /// An observed-remove (add-wins) set of strings: `new OrSet(0)`.
    OrSet, CoreOrSet<String>,
    "{ live: [string, { replica: number; counter: number }[]][]; removed: { replica: number; counter: number }[] }"
);

#[wasm_bindgen]
impl OrSet {
    /// Adds `element` with a fresh tag; returns the delta.
    pub fn add(&mut self, element: JsValue) -> Result<OrSet, JsError> {
        let e = js_text("element", &element)?;
        let d = self.inner.add(self.replica, e).map_err(core_error)?;
        Ok(self.delta(d))
    }
    /// Removes the tags of `element` seen here (an add this replica has not seen
    /// survives); returns the delta.
    pub fn remove(&mut self, element: JsValue) -> Result<OrSet, JsError> {
        let e = js_text("element", &element)?;
        let d = self.inner.remove(&e);
        Ok(self.delta(d))
    }
    pub fn has(&self, element: JsValue) -> Result<bool, JsError> {
        Ok(self.inner.contains(&js_text("element", &element)?))
    }
    /// The elements, sorted.
    #[wasm_bindgen(unchecked_return_type = "string[]")]
    pub fn values(&self) -> js_sys::Array {
        strings(self.inner.value())
    }
}

crdt_class!(
    /// A last-writer-wins register of a string: `new LwwRegister(0)`.
    LwwRegister, CoreLwwRegister<String>,
    "{ stamp: { timeMs: number; replica: number }; value: string } | null"
);

#[wasm_bindgen]
impl LwwRegister {
    /// Writes `value` stamped `nowMs` (this replica's clock); returns the delta. The write
    /// loses if the register holds a later stamp.
    pub fn set(&mut self, value: JsValue, now_ms: f64) -> Result<LwwRegister, JsError> {
        let v = js_text("value", &value)?;
        let d = self.inner.set(self.replica, self::now_ms(now_ms)?, v);
        Ok(self.delta(d))
    }
    /// The value, or `undefined` before any write.
    #[wasm_bindgen(getter)]
    pub fn value(&self) -> Option<String> {
        self.inner.value()
    }
}

crdt_class!(
    /// A multi-value register of strings (concurrent writes are siblings):
    /// `new MvRegister(0)`.
    MvRegister, CoreMvRegister<String>,
    "{ version: Record<string, number>; value: string }[]"
);

#[wasm_bindgen]
impl MvRegister {
    /// Writes `value`, replacing every sibling seen here; returns the delta.
    pub fn set(&mut self, value: JsValue) -> Result<MvRegister, JsError> {
        let v = js_text("value", &value)?;
        let d = self.inner.set(self.replica, v).map_err(core_error)?;
        Ok(self.delta(d))
    }
    /// The siblings' values (one unless writes were concurrent).
    #[wasm_bindgen(unchecked_return_type = "string[]")]
    pub fn values(&self) -> js_sys::Array {
        strings(self.inner.value())
    }
}

crdt_class!(
    /// A last-writer-wins map of strings to strings: `new LwwMap(0)`.
    LwwMap, CoreLwwMap<String, String>,
    "[string, { stamp: { timeMs: number; replica: number }; value: string | null }][]"
);

#[wasm_bindgen]
impl LwwMap {
    /// Writes `key` = `value` stamped `nowMs`; returns the delta.
    pub fn set(&mut self, key: JsValue, value: JsValue, now_ms: f64) -> Result<LwwMap, JsError> {
        let (k, v) = (js_text("key", &key)?, js_text("value", &value)?);
        let d = self
            .inner
            .set(self.replica, self::now_ms(now_ms)?, k, v)
            .map_err(core_error)?;
        Ok(self.delta(d))
    }
    /// Removes `key` (a tombstone stamped `nowMs`); returns the delta.
    pub fn remove(&mut self, key: JsValue, now_ms: f64) -> Result<LwwMap, JsError> {
        let k = js_text("key", &key)?;
        let d = self
            .inner
            .remove(self.replica, self::now_ms(now_ms)?, k)
            .map_err(core_error)?;
        Ok(self.delta(d))
    }
    /// The value under `key`, or `undefined`.
    pub fn get(&self, key: JsValue) -> Result<Option<String>, JsError> {
        Ok(self.inner.get(&js_text("key", &key)?).cloned())
    }
    /// The live `[key, value]` pairs, by key.
    #[wasm_bindgen(unchecked_return_type = "[string, string][]")]
    pub fn pairs(&self) -> Result<JsValue, JsError> {
        to_js(&self.inner.value()).map_err(js_error)
    }
}

crdt_class!(
    /// A replicated text (Roh et al. 2011's RGA): `new Rga(0)`.
    Rga, CoreRga,
    "{ id: { time: number; replica: number }; after: { time: number; replica: number }; ch: string; deleted: boolean }[]"
);

#[wasm_bindgen]
impl Rga {
    /// Inserts `text` so that it starts at `index` (0 ..= length); returns the delta.
    pub fn insert(&mut self, index: f64, text: JsValue) -> Result<Rga, JsError> {
        let index = whole_number("index", index)? as usize;
        let t = self::js_text("text", &text)?;
        let d = self
            .inner
            .insert_str(self.replica, index, &t)
            .map_err(core_error)?;
        Ok(self.delta(d))
    }
    /// Deletes `count` (default 1) characters from `index`; returns the delta.
    pub fn delete(&mut self, index: f64, count: Option<f64>) -> Result<Rga, JsError> {
        let index = whole_number("index", index)? as usize;
        let count = whole_number("count", count.unwrap_or(1.0))? as usize;
        if index.saturating_add(count) > self.inner.len() {
            return Err(js_error(format!(
                "invalid `count`: {count} characters from {index} run past the length {}",
                self.inner.len()
            )));
        }
        let mut delta = CoreRga::default();
        for _ in 0..count {
            let d = self.inner.delete(index).map_err(core_error)?;
            delta.merge(&d).map_err(core_error)?;
        }
        Ok(self.delta(delta))
    }
    /// The text.
    #[wasm_bindgen(getter)]
    pub fn text(&self) -> String {
        self.inner.text()
    }
    /// Visible characters.
    #[wasm_bindgen(getter)]
    pub fn length(&self) -> f64 {
        self.inner.len() as f64
    }
}
