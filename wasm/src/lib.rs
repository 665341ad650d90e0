//! distlab-wasm: the npm package `distlab`. A thin layer: it converts between JS values and
//! core types and turns core errors into JS `Error`s; no logic lives here that a native
//! test cannot reach. The full API (labs, typed classes) arrives with the npm issue.

use wasm_bindgen::prelude::*;

/// The package version, so a notebook can check what it loaded.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
