//! The CRDT classes as a browser sees them: `wasm-pack test --headless --chrome wasm --test
//! crdt`. Replicas made and merged by hand converge; deltas merge in any order; bad
//! arguments are JS `Error`s naming the argument and never abort the module.

use distlab_wasm::crdt::{
    GCounter, GSet, LwwMap, LwwRegister, MvRegister, OrSet, PnCounter, Rga, TwoPSet,
};
use js_sys::{Array, Error, JSON};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn s(text: &str) -> JsValue {
    JsValue::from_str(text)
}

fn message(e: wasm_bindgen::JsError) -> String {
    let v: JsValue = e.into();
    let err: &Error = v.dyn_ref().expect("a JS Error");
    err.message().into()
}

fn strings(a: &Array) -> Vec<String> {
    a.iter().map(|v| v.as_string().unwrap()).collect()
}

#[wasm_bindgen_test]
fn counters_merge_by_hand_and_deltas_count_once() {
    let mut a = GCounter::new(0.0).unwrap();
    let mut b = GCounter::new(1.0).unwrap();
    let d = a.increment(Some(3.0)).unwrap();
    b.increment(None).unwrap();
    b.merge(&d).unwrap();
    b.merge(&d).unwrap();
    a.merge(&b).unwrap();
    assert_eq!((a.value(), b.value()), (4.0, 4.0));
    assert!(a.equals(&b));
    let mut p = PnCounter::new(2.0).unwrap();
    p.increment(Some(5.0)).unwrap();
    p.decrement(Some(7.0)).unwrap();
    assert_eq!(p.value(), -2.0);
    for bad in [f64::NAN, -1.0, 0.5, f64::INFINITY] {
        let e = message(a.increment(Some(bad)).err().unwrap());
        assert!(e.contains("`by`"), "{e}");
    }
    let e = message(GCounter::new(4_294_967_296.0).err().unwrap());
    assert!(e.contains("replicaId"), "{e}");
}

#[wasm_bindgen_test]
fn state_round_trips_through_json() {
    let mut a = OrSet::new(0.0).unwrap();
    a.add(s("x")).unwrap();
    a.add(s("y")).unwrap();
    a.remove(s("x")).unwrap();
    let text = JSON::stringify(&a.to_json().unwrap()).unwrap();
    let back = OrSet::from_json(0.0, JSON::parse(&String::from(text)).unwrap()).unwrap();
    assert!(back.equals(&a));
    assert_eq!(strings(&back.values()), vec!["y"]);
    let e = message(
        GCounter::from_json(0.0, JSON::parse(r#"{"1": -3}"#).unwrap())
            .err()
            .unwrap(),
    );
    assert!(e.contains("state"), "{e}");
    let e = message(
        TwoPSet::from_json(
            0.0,
            JSON::parse(r#"{"added": [], "removed": ["z"]}"#).unwrap(),
        )
        .err()
        .unwrap(),
    );
    assert!(e.contains("removed"), "{e}");
}

#[wasm_bindgen_test]
fn sets_and_registers_resolve_concurrency_as_their_papers_say() {
    // OR-set: an add concurrent with a remove wins.
    let (mut a, mut b) = (OrSet::new(0.0).unwrap(), OrSet::new(1.0).unwrap());
    let add = a.add(s("k")).unwrap();
    b.merge(&add).unwrap();
    let rm = a.remove(s("k")).unwrap();
    let re = b.add(s("k")).unwrap();
    a.merge(&re).unwrap();
    b.merge(&rm).unwrap();
    assert!(a.has(s("k")).unwrap() && b.has(s("k")).unwrap());
    // 2P-set: removed for good; removing what is absent is an error.
    let mut t = TwoPSet::new(0.0).unwrap();
    t.add(s("k")).unwrap();
    t.remove(s("k")).unwrap();
    t.add(s("k")).unwrap();
    assert!(!t.has(s("k")).unwrap());
    assert!(t.remove(s("q")).is_err());
    let mut g = GSet::new(0.0).unwrap();
    g.add(s("b")).unwrap();
    g.add(s("a")).unwrap();
    assert_eq!(strings(&g.values()), vec!["a", "b"]);
    let e = message(g.add(JsValue::from_f64(3.0)).err().unwrap());
    assert!(e.contains("`element`"), "{e}");
    // LWW: the later stamp wins, the replica id breaks a tie.
    let (mut r0, mut r1) = (
        LwwRegister::new(0.0).unwrap(),
        LwwRegister::new(1.0).unwrap(),
    );
    let w0 = r0.set(s("zero"), 100.0).unwrap();
    let w1 = r1.set(s("one"), 100.0).unwrap();
    r0.merge(&w1).unwrap();
    r1.merge(&w0).unwrap();
    assert_eq!(
        (r0.value(), r1.value()),
        (Some("one".into()), Some("one".into()))
    );
    assert!(r0.set(s("x"), f64::NAN).is_err());
    // MV: concurrent writes are siblings.
    let (mut m0, mut m1) = (MvRegister::new(0.0).unwrap(), MvRegister::new(1.0).unwrap());
    let v0 = m0.set(s("a")).unwrap();
    let v1 = m1.set(s("b")).unwrap();
    m0.merge(&v1).unwrap();
    m1.merge(&v0).unwrap();
    assert_eq!(strings(&m0.values()), vec!["a", "b"]);
    assert!(m0.equals(&m1));
    // LWW map: a later removal wins.
    let (mut x, mut y) = (LwwMap::new(0.0).unwrap(), LwwMap::new(1.0).unwrap());
    let set = x.set(s("k"), s("v"), 10.0).unwrap();
    let del = y.remove(s("k"), 20.0).unwrap();
    x.merge(&del).unwrap();
    y.merge(&set).unwrap();
    assert_eq!(
        (x.get(s("k")).unwrap(), y.get(s("k")).unwrap()),
        (None, None)
    );
}

#[wasm_bindgen_test]
fn two_text_replicas_typing_concurrently_converge() {
    let mut a = Rga::new(1.0).unwrap();
    let base = a.insert(0.0, s("hello")).unwrap();
    let mut b = Rga::new(2.0).unwrap();
    b.merge(&base).unwrap();
    let da = a.insert(5.0, s(" world")).unwrap();
    let db = b.delete(0.0, Some(1.0)).unwrap();
    let db2 = b.insert(0.0, s("J")).unwrap();
    // Deltas in a different order on each side, one twice.
    a.merge(&db2).unwrap();
    a.merge(&db).unwrap();
    b.merge(&da).unwrap();
    b.merge(&da).unwrap();
    assert_eq!(a.text(), "Jello world");
    assert!(a.equals(&b));
    assert_eq!(a.length(), 11.0);
    let e = message(a.insert(99.0, s("x")).err().unwrap());
    assert!(e.contains("index"), "{e}");
    let e = message(a.delete(10.0, Some(5.0)).err().unwrap());
    assert!(e.contains("count"), "{e}");
    assert!(a.insert(-1.0, s("x")).is_err());
}
