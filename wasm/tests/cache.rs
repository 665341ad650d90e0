//! The cache classes as a browser sees them: `wasm-pack test --headless --chrome wasm --test
//! cache`. Errors are JS `Error`s naming the field; no input aborts the module.

use distlab_wasm::cache::{Lfu, Lru, TinyLfu, TtlCache};
use js_sys::{Array, Error, JSON, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn js(text: &str) -> JsValue {
    JSON::parse(text).expect("test JSON")
}

fn s(text: &str) -> JsValue {
    JsValue::from_str(text)
}

fn message(e: wasm_bindgen::JsError) -> String {
    let v: JsValue = e.into();
    let err: &Error = v.dyn_ref().expect("a JS Error");
    err.message().into()
}

fn field(o: &JsValue, f: &str) -> JsValue {
    Reflect::get(o, &s(f)).expect("a field")
}

/// `(key, cause)` of each reported eviction.
fn evicted(a: &Array) -> Vec<(String, String)> {
    a.iter()
        .map(|e| {
            (
                field(&e, "key").as_string().unwrap(),
                field(&e, "cause").as_string().unwrap(),
            )
        })
        .collect()
}

fn strings(a: &Array) -> Vec<String> {
    a.iter().map(|k| k.as_string().unwrap()).collect()
}

#[wasm_bindgen_test]
fn lru_promotes_on_get_not_on_peek_and_reports_evictions() {
    let mut c = Lru::new(js(r#"{"maxEntries": 2}"#)).unwrap();
    c.put(s("a"), js(r#"{"n": 1}"#), None).unwrap();
    c.put(s("b"), JsValue::from(2), None).unwrap();
    assert_eq!(field(&c.get(s("a")).unwrap(), "n"), JsValue::from(1));
    assert_eq!(c.peek(s("b")).unwrap(), JsValue::from(2));
    let out = c.put(s("c"), JsValue::from(3), None).unwrap();
    assert_eq!(evicted(&out), [("b".into(), "capacity".into())]);
    assert_eq!(strings(&c.keys()), ["c", "a"]);
    let out = c.put(s("c"), JsValue::from(4), None).unwrap();
    assert_eq!(evicted(&out), [("c".into(), "replaced".into())]);
    assert_eq!(field(&out.get(0), "value"), JsValue::from(3));
    assert_eq!(field(&c.remove(s("a")).unwrap(), "n"), JsValue::from(1));
    assert!(c.remove(s("a")).unwrap().is_undefined());
    assert!(c.get(s("zzz")).unwrap().is_undefined());
    assert_eq!(c.len(), 1);
}

#[wasm_bindgen_test]
fn lru_weights_and_bad_inputs_name_the_field() {
    let mut c = Lru::new(js(r#"{"maxEntries": 10, "maxWeight": 5}"#)).unwrap();
    c.put(s("a"), JsValue::TRUE, Some(3.0)).unwrap();
    let out = c.put(s("b"), JsValue::TRUE, Some(3.0)).unwrap();
    assert_eq!(evicted(&out), [("a".into(), "capacity".into())]);
    assert_eq!(c.weight(), 3.0);
    for (w, field) in [
        (6.0, "weight"),
        (f64::NAN, "weight"),
        (-1.0, "weight"),
        (1.5, "weight"),
    ] {
        let e = message(c.put(s("x"), JsValue::TRUE, Some(w)).unwrap_err());
        assert!(e.contains(&format!("`{field}`")), "{w}: {e}");
    }
    let e = message(c.put(JsValue::from(3), JsValue::TRUE, None).unwrap_err());
    assert!(e.contains("`key`"), "{e}");
    for (config, field) in [
        (r#"{"maxEntries": 0}"#, "maxEntries"),
        (r#"{"maxEntries": 1.5}"#, "maxEntries"),
        (r#"{"maxEntries": 3, "maxWeight": 0}"#, "maxWeight"),
        (r#"{"maxEntries": 3, "colour": 1}"#, "colour"),
    ] {
        let e = message(Lru::new(js(config)).err().unwrap());
        assert!(e.contains(field), "{config}: {e}");
    }
    assert_eq!(c.len(), 1, "failed calls change nothing");
}

#[wasm_bindgen_test]
fn lfu_and_tinylfu_follow_their_policies() {
    let mut lfu = Lfu::new(js(r#"{"capacity": 2}"#)).unwrap();
    lfu.put(s("a"), JsValue::from(1)).unwrap();
    lfu.put(s("b"), JsValue::from(2)).unwrap();
    lfu.get(s("a")).unwrap();
    let out = lfu.put(s("c"), JsValue::from(3)).unwrap();
    assert_eq!(evicted(&out), [("b".into(), "capacity".into())]);
    assert_eq!(strings(&lfu.keys()), ["a", "c"]);

    let mut t = TinyLfu::new(js(r#"{"capacity": 100}"#)).unwrap();
    for i in 0..100 {
        t.put(s(&format!("k{i}")), JsValue::from(i)).unwrap();
    }
    for i in 0..99 {
        t.get(s(&format!("k{i}"))).unwrap();
    }
    // A one-hit wonder loses admission against a key read twice.
    let out = t.put(s("new"), JsValue::NULL).unwrap();
    assert_eq!(evicted(&out), [("k99".into(), "rejected".into())]);
    assert_eq!(t.len(), 100);
    assert!(t.peek(s("k0")).unwrap().as_f64() == Some(0.0));
    for (config, field) in [
        (r#"{"capacity": 0}"#, "`capacity`"),
        (r#"{"capacity": -3}"#, "`config.capacity`"),
        ("null", "`config`"),
    ] {
        let e = message(TinyLfu::new(js(config)).err().unwrap());
        assert!(e.contains(field), "{config}: {e}");
    }
}

#[wasm_bindgen_test]
fn ttl_cache_expires_lazily_and_by_sampling() {
    let mut c = TtlCache::new(js(r#"{"capacity": 1000, "seed": 3}"#)).unwrap();
    for i in 0..200 {
        c.put(s(&format!("k{i}")), JsValue::from(i), 0.0, Some(100.0))
            .unwrap();
    }
    c.put(s("forever"), JsValue::TRUE, 0.0, None).unwrap();
    assert_eq!(c.ttl(s("k1"), 40.0).unwrap(), JsValue::from(60.0));
    assert!(c.ttl(s("forever"), 40.0).unwrap().is_null());
    assert!(c.get(s("k1"), 100.0).unwrap().is_undefined());
    assert_eq!(c.expired_held(100.0).unwrap(), 199);
    let report = c.active_expire_cycle(100.0).unwrap();
    let expired: Array = field(&report, "expired").dyn_into().unwrap();
    // Every key drawn has expired, so draws continue until none is left: 199 keys in
    // draws of 20.
    assert_eq!(field(&report, "loops"), JsValue::from(10));
    assert_eq!(expired.length(), 199);
    assert_eq!(c.len(), 1);
    assert!(evicted(&expired).iter().all(|(_, c)| c == "expired"));
    let stats = c.stats().unwrap();
    assert_eq!(field(&stats, "lazilyExpired"), JsValue::from(1));
    assert_eq!(c.get(s("forever"), 1e9).unwrap(), JsValue::TRUE);
    for (ttl, now, field) in [
        (Some(0.0), 0.0, "ttlMs"),
        (Some(f64::NAN), 0.0, "ttlMs"),
        (Some(-5.0), 0.0, "ttlMs"),
        (None, -1.0, "nowMs"),
        (None, f64::INFINITY, "nowMs"),
    ] {
        let e = message(c.put(s("x"), JsValue::TRUE, now, ttl).unwrap_err());
        assert!(e.contains(&format!("`{field}`")), "{ttl:?} {now}: {e}");
    }
    let e = message(
        TtlCache::new(js(r#"{"capacity": 1, "stalePercent": 101}"#))
            .err()
            .unwrap(),
    );
    assert!(e.contains("stalePercent"), "{e}");
}
