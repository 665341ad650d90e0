//! The consistent-hash ring as a typed class for notebooks:
//! `new ConsistentHashRing(100, 1)` (virtual nodes per unit of weight, seed), then
//! `addNode("a", 1)`, `removeNode("a")`, `lookup("key")`, `preferenceList("key", 3)`.
//! Names and keys are strings (their UTF-8 bytes are hashed); anything else, and bad
//! counts, are `Error`s naming the argument.

use distlab_core::balance::consistent_hash::HashRing;
use wasm_bindgen::prelude::*;

use crate::{core_error, js_text, whole_number, whole_u32};

/// A hash ring with virtual nodes: `new ConsistentHashRing(virtualNodes, seed = 1)`.
#[wasm_bindgen]
pub struct ConsistentHashRing {
    inner: HashRing,
}

#[wasm_bindgen]
impl ConsistentHashRing {
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(js_name = virtualNodes)] virtual_nodes: f64,
        seed: Option<f64>,
    ) -> Result<ConsistentHashRing, JsError> {
        let inner = HashRing::new(
            whole_u32("virtualNodes", virtual_nodes)?,
            whole_number("seed", seed.unwrap_or(1.0))?,
        )
        .map_err(core_error)?;
        Ok(ConsistentHashRing { inner })
    }
    /// Puts a node on the ring with `weight` (default 1) times the virtual nodes.
    #[wasm_bindgen(js_name = addNode)]
    pub fn add_node(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "string")] name: JsValue,
        weight: Option<f64>,
    ) -> Result<(), JsError> {
        let name = js_text("name", &name)?;
        let weight = whole_u32("weight", weight.unwrap_or(1.0))?;
        self.inner.add_node(&name, weight).map_err(core_error)
    }
    /// Takes a node off the ring; its keys go to the next nodes clockwise.
    #[wasm_bindgen(js_name = removeNode)]
    pub fn remove_node(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "string")] name: JsValue,
    ) -> Result<(), JsError> {
        let name = js_text("name", &name)?;
        self.inner
            .remove_node(&name)
            .map(|_| ())
            .map_err(core_error)
    }
    /// The node `key` belongs to, or `undefined` on an empty ring.
    pub fn lookup(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] key: JsValue,
    ) -> Result<Option<String>, JsError> {
        let key = js_text("key", &key)?;
        Ok(self.inner.lookup(key.as_bytes()).map(str::to_string))
    }
    /// The `replicas` distinct nodes holding `key`, its owner first.
    #[wasm_bindgen(js_name = preferenceList)]
    pub fn preference_list(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] key: JsValue,
        replicas: f64,
    ) -> Result<Vec<String>, JsError> {
        let key = js_text("key", &key)?;
        let replicas = whole_u32("replicas", replicas)? as usize;
        self.inner
            .preference_list(key.as_bytes(), replicas)
            .map(|l| l.into_iter().map(str::to_string).collect())
            .map_err(core_error)
    }
    /// Nodes on the ring.
    #[wasm_bindgen(getter)]
    pub fn nodes(&self) -> f64 {
        self.inner.len() as f64
    }
    /// Points (virtual nodes) on the ring.
    #[wasm_bindgen(getter)]
    pub fn points(&self) -> f64 {
        self.inner.point_count() as f64
    }
    /// Each node's share of the ring, by name.
    pub fn ownership(&self) -> js_sys::Map {
        let map = js_sys::Map::new();
        for (name, share) in self.inner.ownership() {
            map.set(&JsValue::from_str(name), &JsValue::from_f64(share));
        }
        map
    }
}
