//! The cache classes as a browser sees them: `wasm-pack test --headless --chrome wasm --test
//! cache`. Errors are JS `Error`s naming the field; no input aborts the module.

use distlab_wasm::cache::{Lfu, Lru, Singleflight, TinyLfu, TtlCache, XFetch, jittered_ttl_ms};
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

#[wasm_bindgen_test]
fn singleflight_hands_every_caller_of_a_flight_back_loader_first() {
    let mut sf = Singleflight::new();
    assert!(sf.join(s("hot"), s("a"), 0.0).unwrap());
    assert!(!sf.join(s("hot"), s("b"), 1.0).unwrap());
    assert!(!sf.join(s("hot"), s("c"), 2.0).unwrap());
    assert!(sf.join(s("cold"), s("d"), 2.0).unwrap());
    assert_eq!((sf.flights(), sf.callers(s("hot")).unwrap()), (2, 3));
    let callers: Vec<String> = sf
        .finish(s("hot"))
        .unwrap()
        .iter()
        .map(|c| c.as_string().unwrap())
        .collect();
    assert_eq!(callers, ["a", "b", "c"]);
    assert!(!sf.in_flight(s("hot")).unwrap());
    // The next miss starts a new load.
    assert!(sf.join(s("hot"), s("e"), 3.0).unwrap());
    assert_eq!((sf.loads(), sf.coalesced()), (3.0, 2.0));
    let e = message(sf.finish(s("never")).unwrap_err());
    assert!(e.contains("no load of that key is in flight"), "{e}");
    let e = message(sf.join(JsValue::NULL, s("x"), 0.0).unwrap_err());
    assert!(e.contains("key"), "{e}");
    let e = message(sf.join(s("k"), s("x"), f64::NAN).unwrap_err());
    assert!(e.contains("nowMs"), "{e}");
}

#[wasm_bindgen_test]
fn xfetch_recomputes_more_often_nearer_expiry_and_always_after() {
    let mut x = XFetch::new(js(r#"{"beta": 1, "seed": 7}"#)).unwrap();
    assert_eq!(x.beta(), 1.0);
    let p = |now| x.recompute_probability(now, 1_000.0, 100.0).unwrap();
    assert!((p(900.0) - (-1.0f64).exp()).abs() < 1e-12);
    assert!(p(500.0) < p(900.0) && p(1_000.0) == 1.0);
    // Far ahead of expiry almost nobody recomputes; at expiry everybody does.
    let early = (0..1_000)
        .filter(|_| x.should_recompute(0.0, 1_000.0, 100.0).unwrap())
        .count();
    assert!(early < 5, "{early}");
    let near = (0..1_000)
        .filter(|_| x.should_recompute(900.0, 1_000.0, 100.0).unwrap())
        .count();
    // e^-1 of 1,000 draws: 368 expected, ±5 standard deviations.
    assert!((292..=444).contains(&near), "{near}");
    assert!(x.should_recompute(1_000.0, 1_000.0, 100.0).unwrap());
    // The same seed draws the same decisions.
    let mut a = XFetch::new(js(r#"{"seed": 3}"#)).unwrap();
    let mut b = XFetch::new(js(r#"{"seed": 3}"#)).unwrap();
    for t in 0..200 {
        let now = 800.0 + t as f64;
        assert_eq!(
            a.should_recompute(now, 1_000.0, 100.0).unwrap(),
            b.should_recompute(now, 1_000.0, 100.0).unwrap()
        );
    }
    assert_eq!(XFetch::new(JsValue::UNDEFINED).unwrap().beta(), 1.0);
    for (config, field) in [
        (r#"{"beta": 0}"#, "beta"),
        (r#"{"beta": -1}"#, "beta"),
        (r#"{"betta": 1}"#, "betta"),
    ] {
        let e = message(XFetch::new(js(config)).err().unwrap());
        assert!(e.contains(field), "{config}: {e}");
    }
    let e = message(x.should_recompute(0.0, 1_000.0, -1.0).unwrap_err());
    assert!(e.contains("deltaMs"), "{e}");
    let e = message(
        x.recompute_probability(0.0, f64::INFINITY, 1.0)
            .unwrap_err(),
    );
    assert!(e.contains("expiryMs"), "{e}");
}

#[wasm_bindgen_test]
fn a_jittered_ttl_never_grows_and_validates_its_inputs() {
    assert_eq!(jittered_ttl_ms(1_000.0, 0.0, 0.9).unwrap(), 1_000.0);
    assert_eq!(jittered_ttl_ms(1_000.0, 0.2, 0.5).unwrap(), 900.0);
    assert_eq!(jittered_ttl_ms(1_000.0, 0.2, 0.0).unwrap(), 1_000.0);
    for (args, field) in [
        ((1_000.0, 1.5, 0.5), "jitter"),
        ((1_000.0, 0.5, 1.0), "u"),
        ((-1.0, 0.5, 0.5), "ttlMs"),
        ((1_000.0, f64::NAN, 0.5), "jitter"),
    ] {
        let e = message(jittered_ttl_ms(args.0, args.1, args.2).unwrap_err());
        assert!(e.contains(field), "{args:?}: {e}");
    }
}
