//! The ring class as a browser sees it: `wasm-pack test --headless --chrome wasm --test
//! balance`. The same placement as the native core under the same seed, a preference list
//! of distinct nodes, minimal movement on add / remove, and bad arguments as JS `Error`s
//! naming the field.

use distlab_core::balance::consistent_hash::HashRing;
use distlab_wasm::balance::ConsistentHashRing;
use js_sys::Error;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn message(e: wasm_bindgen::JsError) -> String {
    let v: JsValue = e.into();
    let err: &Error = v.dyn_ref().expect("a JS Error");
    err.message().into()
}

fn s(text: &str) -> JsValue {
    JsValue::from_str(text)
}

#[wasm_bindgen_test]
fn places_keys_as_the_core_does_and_moves_few() {
    let mut ring = ConsistentHashRing::new(100.0, Some(7.0)).unwrap();
    let mut core = HashRing::new(100, 7).unwrap();
    for name in ["a", "b", "c", "d"] {
        ring.add_node(s(name), None).unwrap();
        core.add_node(name, 1).unwrap();
    }
    assert_eq!((ring.nodes(), ring.points()), (4.0, 400.0));
    let owners: Vec<String> = (0..2000)
        .map(|i| ring.lookup(s(&format!("k{i}"))).unwrap().unwrap())
        .collect();
    for (i, o) in owners.iter().enumerate() {
        assert_eq!(Some(o.as_str()), core.lookup(format!("k{i}").as_bytes()));
    }
    ring.add_node(s("e"), Some(1.0)).unwrap();
    let mut moved = 0;
    for (i, o) in owners.iter().enumerate() {
        let now = ring.lookup(s(&format!("k{i}"))).unwrap().unwrap();
        if &now != o {
            assert_eq!(now, "e");
            moved += 1;
        }
    }
    // About 1/5 of the keys; 100 virtual nodes keep it within a third of that.
    assert!((267..=533).contains(&moved), "{moved}");
    ring.remove_node(s("e")).unwrap();
    let list = ring.preference_list(s("k1"), 3.0).unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0], owners[1]);
    assert!(list[0] != list[1] && list[1] != list[2] && list[0] != list[2]);
    let shares = ring.ownership();
    assert_eq!(shares.size(), 4);
}

#[wasm_bindgen_test]
fn bad_arguments_are_errors_naming_the_field() {
    assert!(message(ConsistentHashRing::new(0.0, None).err().unwrap()).contains("`virtualNodes`"));
    assert!(message(ConsistentHashRing::new(1.5, None).err().unwrap()).contains("`virtualNodes`"));
    assert!(message(ConsistentHashRing::new(10.0, Some(-1.0)).err().unwrap()).contains("`seed`"));
    let mut ring = ConsistentHashRing::new(10.0, None).unwrap();
    assert_eq!(ring.lookup(s("k")).unwrap(), None);
    assert!(message(ring.preference_list(s("k"), 1.0).unwrap_err()).contains("`replicas`"));
    ring.add_node(s("a"), None).unwrap();
    assert!(message(ring.add_node(s("a"), None).unwrap_err()).contains("already"));
    assert!(message(ring.add_node(s("b"), Some(0.0)).unwrap_err()).contains("`weight`"));
    assert!(message(ring.add_node(s("b"), Some(f64::NAN)).unwrap_err()).contains("`weight`"));
    assert!(message(ring.add_node(JsValue::from_f64(1.0), None).unwrap_err()).contains("`name`"));
    assert!(message(ring.remove_node(s("zz")).unwrap_err()).contains("zz"));
    assert!(message(ring.lookup(JsValue::NULL).unwrap_err()).contains("`key`"));
    assert!(message(ring.preference_list(s("k"), 2.0).unwrap_err()).contains("`replicas`"));
    assert!(message(ring.preference_list(s("k"), -1.0).unwrap_err()).contains("`replicas`"));
}
