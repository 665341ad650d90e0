//! The sketch classes as a browser sees them: `wasm-pack test --headless --chrome wasm`.
//! The same hashes as natively (a HyperLogLog's registers and Redis bytes equal the
//! native core's), no false negatives, and bad arguments are JS `Error`s naming the field.

use distlab_core::sketch::hyperloglog::HyperLogLog as CoreHyperLogLog;
use distlab_wasm::sketch::{Bloom, CountMin, CountingBloom, Cuckoo, HyperLogLog};
use js_sys::{Array, Error};
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
fn bloom_and_counting_bloom_find_what_was_inserted() {
    let mut b = Bloom::new(1000.0, 0.01).unwrap();
    assert_eq!((b.bits(), b.hashes()), (9586.0, 7.0));
    for i in 0..1000 {
        b.insert(s(&format!("k{i}"))).unwrap();
    }
    assert!((0..1000).all(|i| b.contains(s(&format!("k{i}"))).unwrap()));
    let fp = (0..10_000)
        .filter(|i| b.contains(s(&format!("absent{i}"))).unwrap())
        .count();
    assert!(fp < 200, "{fp}");
    assert!(message(Bloom::new(0.0, 0.01).err().unwrap()).contains("`expectedItems`"));
    assert!(message(Bloom::new(10.0, 1.5).err().unwrap()).contains("`falsePositiveRate`"));
    assert!(message(b.insert(JsValue::from_f64(3.0)).unwrap_err()).contains("`key`"));
    let other = Bloom::with_shape(64.0, 3.0).unwrap();
    assert!(message(b.union(&other).unwrap_err()).contains("`other`"));

    let mut c = CountingBloom::new(100.0, 0.01).unwrap();
    c.insert(s("a")).unwrap();
    assert!(c.contains(s("a")).unwrap());
    assert!(c.remove(s("a")).unwrap());
    assert!(!c.contains(s("a")).unwrap());
}

#[wasm_bindgen_test]
fn cuckoo_and_count_min() {
    let mut f = Cuckoo::new(1024.0, None, None, None).unwrap();
    let mut n = 0;
    while f.first_failure_load().is_none() {
        assert!(f.insert(s(&format!("k{n}"))).unwrap());
        n += 1;
    }
    assert!(f.first_failure_load().unwrap() >= 0.9);
    assert!((0..n).all(|i| f.contains(s(&format!("k{i}"))).unwrap()));
    assert!(
        message(Cuckoo::new(16.0, Some(2.0), None, None).err().unwrap())
            .contains("`fingerprintBits`")
    );

    let mut cm = CountMin::new(0.01, 0.01, None).unwrap();
    cm.add(s("x"), Some(5.0)).unwrap();
    cm.add(s("y"), None).unwrap();
    assert!(cm.estimate(s("x")).unwrap() >= 5.0);
    assert_eq!(cm.total(), 6.0);
    assert!(message(CountMin::new(0.0, 0.1, None).err().unwrap()).contains("`epsilon`"));
    assert!(message(cm.add(s("x"), Some(-1.0)).unwrap_err()).contains("`count`"));
}

#[wasm_bindgen_test]
fn hyperloglog_matches_the_native_core_bit_for_bit() {
    let mut h = HyperLogLog::new(None).unwrap();
    let mut native = CoreHyperLogLog::redis();
    let elements = Array::new();
    for i in 0..5_000 {
        let e = format!("element-{i}");
        elements.push(&s(&e));
        native.add(e.as_bytes());
    }
    assert!(h.pfadd(elements.into()).unwrap());
    assert_eq!(h.encoding(), "dense");
    assert_eq!(h.registers(), native.register_values());
    assert_eq!(h.redis_bytes(), native.to_redis_bytes());
    assert_eq!(h.count(), native.count() as f64);
    assert!((h.count() / 5_000.0 - 1.0).abs() < 0.05);
    assert!(message(HyperLogLog::new(Some(3.0)).err().unwrap()).contains("`precision`"));
    let bad = Array::of2(&s("ok"), &JsValue::from_f64(1.0));
    assert!(message(h.pfadd(bad.into()).unwrap_err()).contains("`elements[1]`"));
    let small = HyperLogLog::new(Some(10.0)).unwrap();
    assert!(message(h.merge(&small).unwrap_err()).contains("`sources`"));
}
