//! The clock classes as a browser sees them: `wasm-pack test --headless --chrome wasm --test
//! clocks`. Events stamped by hand order as happened-before says; bad arguments are JS
//! `Error`s naming the argument and never abort the module.

use distlab_wasm::clocks::{Hlc, LamportClock, VectorClock};
use js_sys::{Error, JSON, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn message(e: wasm_bindgen::JsError) -> String {
    let v: JsValue = e.into();
    let err: &Error = v.dyn_ref().expect("a JS Error");
    err.message().into()
}

fn field(v: &JsValue, name: &str) -> f64 {
    Reflect::get(v, &JsValue::from_str(name))
        .unwrap()
        .as_f64()
        .unwrap()
}

fn stamp(l: f64, c: f64) -> JsValue {
    JSON::parse(&format!("{{\"l\":{l},\"c\":{c}}}")).unwrap()
}

#[wasm_bindgen_test]
fn vector_clocks_tell_before_from_concurrent() {
    let mut a = VectorClock::new();
    let mut b = VectorClock::new();
    a.tick(0.0).unwrap();
    let sent = a.copy();
    b.tick(1.0).unwrap();
    assert_eq!(sent.compare(&b), "concurrent");
    b.merge(&sent);
    b.tick(1.0).unwrap();
    assert_eq!(sent.compare(&b), "before");
    assert_eq!(b.compare(&sent), "after");
    assert_eq!(b.compare(&b.copy()), "equal");
    assert!(b.dominates(&sent) && !sent.dominates(&b));
    assert_eq!(
        (b.get(0.0).unwrap(), b.get(1.0).unwrap(), b.size()),
        (1.0, 2.0, 2.0)
    );
    let text = JSON::stringify(&b.to_json().unwrap()).unwrap();
    assert_eq!(String::from(text.clone()), r#"{"0":1,"1":2}"#);
    let back = VectorClock::from_json(JSON::parse(&String::from(text)).unwrap()).unwrap();
    assert_eq!(back.compare(&b), "equal");
}

#[wasm_bindgen_test]
fn vector_clock_arguments_are_checked() {
    let mut a = VectorClock::new();
    for bad in [f64::NAN, -1.0, 0.5, 4_294_967_296.0] {
        let e = message(a.tick(bad).err().unwrap());
        assert!(e.contains("`processId`"), "{e}");
    }
    let e = message(
        VectorClock::from_json(JSON::parse(r#"{"0":-1}"#).unwrap())
            .err()
            .unwrap(),
    );
    assert!(e.contains("state"), "{e}");
    let e = message(
        VectorClock::from_json(JsValue::from_str("x"))
            .err()
            .unwrap(),
    );
    assert!(e.contains("state"), "{e}");
    // An entry at 2^64 − 1 (a BigInt, the only way to say it exactly) cannot tick again.
    let state = js_sys::Object::new();
    Reflect::set(
        &state,
        &JsValue::from_str("3"),
        &js_sys::BigInt::from(u64::MAX).into(),
    )
    .unwrap();
    let mut max = VectorClock::from_json(state.into()).unwrap();
    let e = message(max.tick(3.0).err().unwrap());
    assert!(e.contains("overflow"), "{e}");
}

#[wasm_bindgen_test]
fn lamport_clocks_pass_what_they_receive() {
    let mut a = LamportClock::new();
    assert_eq!(a.tick().unwrap(), 1.0);
    assert_eq!(a.receive(7.0).unwrap(), 8.0);
    assert_eq!(a.receive(2.0).unwrap(), 9.0);
    assert_eq!(a.time(), 9.0);
    let e = message(a.receive(f64::NAN).err().unwrap());
    assert!(e.contains("`timestamp`"), "{e}");
}

#[wasm_bindgen_test]
fn hlc_follows_figure_5_and_keeps_its_bound() {
    let mut a = Hlc::new(100.0).unwrap();
    assert_eq!(a.max_offset_ms(), 100.0);
    let t = a.now(10.0).unwrap();
    assert_eq!((field(&t, "l"), field(&t, "c")), (10.0, 0.0));
    let t = a.send(10.0).unwrap();
    assert_eq!((field(&t, "l"), field(&t, "c")), (10.0, 1.0));
    // Equal l on both sides: c = max(c, c_m) + 1, one tick for the receive.
    let t = a.receive(stamp(10.0, 4.0), 9.0).unwrap();
    assert_eq!((field(&t, "l"), field(&t, "c")), (10.0, 5.0));
    // A message from 90 ms ahead: l follows it, within the bound.
    let t = a.receive(stamp(100.0, 2.0), 10.0).unwrap();
    assert_eq!((field(&t, "l"), field(&t, "c")), (100.0, 3.0));
    assert_eq!(a.divergence_ms(10.0).unwrap(), 90.0);
    // 101 ms ahead is refused and the clock is unchanged.
    let e = message(a.receive(stamp(111.0, 0.0), 10.0).err().unwrap());
    assert!(e.contains("maximum offset"), "{e}");
    assert_eq!(field(&a.last().unwrap(), "l"), 100.0);
    assert_eq!(Hlc::compare(stamp(1.0, 5.0), stamp(2.0, 0.0)).unwrap(), -1);
    assert_eq!(Hlc::compare(stamp(2.0, 1.0), stamp(2.0, 0.0)).unwrap(), 1);
    assert_eq!(Hlc::compare(stamp(2.0, 1.0), stamp(2.0, 1.0)).unwrap(), 0);
}

#[wasm_bindgen_test]
fn hlc_arguments_are_checked() {
    let e = message(Hlc::new(-1.0).err().unwrap());
    assert!(e.contains("`maxOffsetMs`"), "{e}");
    let mut a = Hlc::new(10.0).unwrap();
    for bad in [f64::NAN, -5.0, f64::INFINITY] {
        let e = message(a.now(bad).err().unwrap());
        assert!(e.contains("`physicalMs`"), "{e}");
    }
    let e = message(
        a.receive(JSON::parse(r#"{"l":1}"#).unwrap(), 1.0)
            .err()
            .unwrap(),
    );
    assert!(e.contains("timestamp"), "{e}");
    let e = message(
        a.receive(JSON::parse(r#"{"l":1,"c":0,"x":2}"#).unwrap(), 1.0)
            .err()
            .unwrap(),
    );
    assert!(e.contains("timestamp"), "{e}");
    let e = message(Hlc::compare(JsValue::NULL, stamp(1.0, 1.0)).err().unwrap());
    assert!(e.contains("`a`"), "{e}");
    // The fraction of a millisecond is dropped, not an error.
    let t = a.now(5.9).unwrap();
    assert_eq!(field(&t, "l"), 5.0);
}
