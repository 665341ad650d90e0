//! The clock classes as a browser sees them: `wasm-pack test --headless --chrome wasm --test
//! clocks`. Events stamped by hand order as happened-before says; Snowflake ids increase
//! and decode to Discord's published values; bad arguments are JS
//! `Error`s naming the argument and never abort the module.

use distlab_wasm::clocks::{Hlc, LamportClock, Snowflake, VectorClock};
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

/// The id in `{ id }` as a number, `None` for `{ waitUntilMs }`.
fn issued_id(v: &JsValue) -> Option<u64> {
    let id = Reflect::get(v, &JsValue::from_str("id")).unwrap();
    let id: js_sys::BigInt = id.dyn_into().ok()?;
    String::from(id.to_string(10).unwrap()).parse().ok()
}

fn config(text: &str) -> JsValue {
    JSON::parse(text).unwrap()
}

#[wasm_bindgen_test]
fn snowflake_ids_increase_and_decode() {
    let t = 1_445_219_918_546.0;
    let mut g = Snowflake::new(config(
        r#"{"nodeId": 3, "epochMs": 1420070400000, "onClockBackwards": "borrow"}"#,
    ))
    .unwrap();
    let a = issued_id(&g.next_id(t).unwrap()).unwrap();
    // The clock steps back 10 ms: borrow keeps counting from the last timestamp.
    let b = issued_id(&g.next_id(t - 10.0).unwrap()).unwrap();
    assert!(b == a + 1, "{a} {b}");
    assert_eq!(g.ahead_of_clock_ms(t - 10.0).unwrap(), 10.0);
    assert_eq!(g.last_unix_ms(), Some(t));
    // Our first id has the timestamp of Discord's 105484726235607040 (node 11, sequence 0)
    // with node 3 in it.
    assert_eq!(a, (105_484_726_235_607_040 & !0x3f_ffff) | (3 << 12));
    let d = Snowflake::decode(
        js_sys::BigInt::from(105_484_726_235_607_040u64).into(),
        1_420_070_400_000.0,
    )
    .unwrap();
    assert_eq!(field(&d, "unixMs"), t);
    let d = Snowflake::decode(JsValue::from_str("90339695967350784"), 1_420_070_400_000.0).unwrap();
    assert_eq!(
        (
            field(&d, "datacenterId"),
            field(&d, "workerId"),
            field(&d, "sequence")
        ),
        (0.0, 3.0, 0.0)
    );
}

#[wasm_bindgen_test]
fn snowflake_policies_for_a_clock_that_moves_back() {
    let t = 1_700_000_000_000.0;
    let mut refuse = Snowflake::new(config(r#"{"nodeId": 1}"#)).unwrap();
    refuse.next_id(t).unwrap();
    let e = message(refuse.next_id(t - 5.0).err().unwrap());
    assert!(e.contains("backwards"), "{e}");
    let mut wait = Snowflake::new(config(r#"{"nodeId": 1, "onClockBackwards": "wait"}"#)).unwrap();
    wait.next_id(t).unwrap();
    let w = wait.next_id(t - 5.0).unwrap();
    assert_eq!(issued_id(&w), None);
    assert_eq!(field(&w, "waitUntilMs"), t);
    let mut naive =
        Snowflake::new(config(r#"{"nodeId": 1, "onClockBackwards": "naive"}"#)).unwrap();
    let a = issued_id(&naive.next_id(t).unwrap()).unwrap();
    let b = issued_id(&naive.next_id(t - 5.0).unwrap()).unwrap();
    assert!(b < a);
}

#[wasm_bindgen_test]
fn snowflake_arguments_are_checked() {
    for (bad, what) in [
        (r#"{"nodeId": 1024}"#, "nodeId"),
        (
            r#"{"nodeId": 1, "onClockBackwards": "sometimes"}"#,
            "onClockBackwards",
        ),
        (r#"{"nodeId": 1, "extra": 1}"#, "extra"),
        (r#"{}"#, "nodeId"),
    ] {
        let e = message(Snowflake::new(config(bad)).err().unwrap());
        assert!(e.contains(what), "{bad}: {e}");
    }
    let mut g = Snowflake::new(config(r#"{"nodeId": 1}"#)).unwrap();
    let e = message(g.next_id(f64::NAN).err().unwrap());
    assert!(e.contains("`nowMs`"), "{e}");
    // Before Twitter's epoch: no timestamp for it.
    let e = message(g.next_id(1_000.0).err().unwrap());
    assert!(e.contains("epoch"), "{e}");
    for bad in [
        JsValue::from_str("abc"),
        JsValue::from_f64(5.0),
        JsValue::NULL,
    ] {
        let e = message(Snowflake::decode(bad, 0.0).err().unwrap());
        assert!(e.contains("`id`"), "{e}");
    }
    let e = message(
        Snowflake::decode(JsValue::from_str("9223372036854775808"), 0.0)
            .err()
            .unwrap(),
    );
    assert!(e.contains("sign bit"), "{e}");
}
