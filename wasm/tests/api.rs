//! The npm API as a browser sees it: `wasm-pack test --headless --chrome wasm`.
//! Errors must be JS `Error`s naming the field; no input may abort the module, and failed
//! calls must not leak.

use distlab_wasm::sim::{fault_types, latency_mean_ms, network_defaults};
use distlab_wasm::{
    FixedWindow, Gcra, KeyedLimiter, Lab, LeakyBucket, SlidingCounter, SlidingLog, TokenBucket,
    catalog, create_lab, lessons, rate_limit_headers,
};
use js_sys::{Array, Error, JSON, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn js(text: &str) -> JsValue {
    JSON::parse(text).expect("test JSON")
}

fn message(e: wasm_bindgen::JsError) -> String {
    let v: JsValue = e.into();
    let err: &Error = v.dyn_ref().expect("a JS Error");
    err.message().into()
}

#[wasm_bindgen_test]
fn catalog_lists_ids_and_marks_implemented_ones() {
    let c: Array = catalog().unwrap().dyn_into().unwrap();
    assert!(c.length() > 100);
    let implemented = c
        .iter()
        .filter(|e| Reflect::get(e, &"implemented".into()).unwrap().as_bool() == Some(true))
        .count();
    assert!(implemented >= 1);
}

#[wasm_bindgen_test]
fn a_lab_runs_and_acts() {
    let mut lab = create_lab("sim.network".into(), JsValue::UNDEFINED).unwrap();
    assert!(lab.step(500.0).unwrap() > 0.0);
    lab.act(js(r#"{"type":"crash","node":2}"#)).unwrap();
    lab.act(js(r#"{"type":"partition","groups":[[0,1],[2,3,4]]}"#))
        .unwrap();
    lab.step(100.0).unwrap();
    let view = lab.view(None).unwrap();
    let nodes: Array = Reflect::get(&view, &"nodes".into())
        .unwrap()
        .dyn_into()
        .unwrap();
    assert_eq!(nodes.length(), 5);
    // Only node 1 keeps its fields.
    let slim = lab.view(Some(js(r#"{"fieldsOf": [1]}"#))).unwrap();
    let fields_count = |view: &JsValue, i: u32| {
        let node = Reflect::get(view, &"nodes".into())
            .unwrap()
            .unchecked_into::<Array>()
            .get(i);
        js_sys::Object::keys(&Reflect::get(&node, &"fields".into()).unwrap().into()).length()
    };
    assert_eq!(fields_count(&slim, 0), 0);
    assert!(fields_count(&slim, 1) > 0);
    assert_eq!(fields_count(&slim, 1), fields_count(&view, 1));
    let k = lab.steps() / 2.0;
    assert_eq!(lab.seek(k.floor()).unwrap(), k.floor());
    assert!(lab.trace_json().contains("\"hash\""));

    // Reading the trace in pieces gives the whole of it.
    let whole: serde_json::Value = serde_json::from_str(&lab.trace_json()).unwrap();
    let old: serde_json::Value =
        serde_json::from_str(&lab.trace_json_from(0.0, f64::from(u32::MAX)).unwrap()).unwrap();
    let have = old["events"].as_f64().unwrap();
    lab.step(50.0).unwrap();
    let new: serde_json::Value =
        serde_json::from_str(&lab.trace_json_from(have, f64::from(u32::MAX)).unwrap()).unwrap();
    assert_eq!(new["first"].as_f64(), Some(have));
    let mut pieces = old["trace"].as_array().unwrap().clone();
    pieces.extend(new["trace"].as_array().unwrap().iter().cloned());
    let after: serde_json::Value = serde_json::from_str(&lab.trace_json()).unwrap();
    assert!(after["trace"].as_array().unwrap().len() > whole["trace"].as_array().unwrap().len());
    assert_eq!(&pieces, after["trace"].as_array().unwrap());
    let e = lab.trace_json_from(-1.0, 10.0).err().unwrap();
    assert!(message(e).contains("`from`"));

    // An action from before the lab's present cannot be added to its future.
    let e = lab
        .extend_actions(js(
            r#"[{"step": 0, "atUs": 0, "action": {"type": "crash", "node": 1}}]"#,
        ))
        .err()
        .unwrap();
    assert!(message(e).contains("actions[0]"));
    let e = lab
        .extend_actions(js(r#"[{"step": "soon"}]"#))
        .err()
        .unwrap();
    assert!(message(e).contains("actions"));
}

#[wasm_bindgen_test]
fn errors_are_js_errors_naming_the_field() {
    let e = create_lab("sim.network".into(), js(r#"{"nodes": "five"}"#))
        .err()
        .unwrap();
    assert!(message(e).contains("config.nodes"));
    let e = create_lab("nope".into(), JsValue::NULL).err().unwrap();
    assert!(message(e).contains("unknown lab"));
    // Not a string: an error naming the argument, not a trap that aborts the module.
    for id in [JsValue::from_f64(42.0), JsValue::NULL, js("{}")] {
        assert!(message(create_lab(id, JsValue::NULL).err().unwrap()).contains("`id`"));
    }
    let mut lab = create_lab("sim.network".into(), JsValue::NULL).unwrap();
    assert!(message(lab.step(f64::NAN).err().unwrap()).contains("`ms`"));
    assert!(message(lab.step_events(-1.0).err().unwrap()).contains("`n`"));
    assert!(message(lab.act(js(r#"{"type":"crash","node":99}"#)).err().unwrap()).contains("node"));
    // Asking for 2^32 events is refused at once, saying the limit, not a frozen tab.
    let e = message(lab.step_events(4_294_967_296.0).err().unwrap());
    assert!(e.contains("`n`") && e.contains("200000"), "{e}");
    let e = message(lab.seek(4_294_967_296.0).err().unwrap());
    assert!(e.contains("`k`") && e.contains("200000"), "{e}");
    assert_eq!(
        lab.step(4_294_967_296.0).unwrap(),
        200_000.0,
        "one call's worth, then back"
    );
    let e = message(
        lab.act(js(r#"{"type":"crash","node":1,"nodes":2}"#))
            .err()
            .unwrap(),
    );
    assert!(e.contains("action.nodes"), "{e}");
    let e = message(
        lab.act(js(r#"{"type":"partition","groups":[[0],[]]}"#))
            .err()
            .unwrap(),
    );
    assert!(e.contains("groups[1]"), "{e}");
    let nan_config = js(r#"{"intervalMs": 0}"#);
    Reflect::set(
        &nan_config,
        &"intervalMs".into(),
        &JsValue::from_f64(f64::NAN),
    )
    .unwrap();
    assert!(
        message(create_lab("sim.network".into(), nan_config).err().unwrap())
            .contains("config.intervalMs")
    );
    let e = TokenBucket::new(js(r#"{"capacity": -1, "refillPerSec": 1}"#))
        .err()
        .unwrap();
    assert!(message(e).contains("capacity"));
}

fn memory_bytes() -> f64 {
    let mem: js_sys::WebAssembly::Memory = wasm_bindgen::memory().dyn_into().unwrap();
    let buf: js_sys::ArrayBuffer = mem.buffer().dyn_into().unwrap();
    buf.byte_length() as f64
}

/// Ten thousand bad inputs of every kind; after each the module must still work, and
/// memory must not grow per failure.
#[wasm_bindgen_test]
fn ten_thousand_bad_inputs_neither_abort_nor_leak() {
    let bad_configs = [
        r#"{"nodes": 0}"#,
        r#"{"nodes": 1e9}"#,
        r#"{"nodes": -3}"#,
        r#"{"nodes": 2.5}"#,
        r#"{"intervalMs": -1}"#,
        r#"{"network": {"loss": 2}}"#,
        r#"{"network": {"latency": {"type": "uniform", "minMs": 9, "maxMs": 1}}}"#,
        r#"{"network": {"latency": {"type": "warp"}}}"#,
        r#"{"faults": {"faults": [{"atUs": 5, "fault": {"type": "crash", "node": 77}}]}}"#,
        r#"{"unknownKey": true}"#,
        r#"[1, 2, 3]"#,
        r#""a string""#,
    ];
    let bad_actions = [
        r#"{"type": "crash", "node": 12}"#,
        r#"{"type": "crash"}"#,
        r#"{"type": "partition", "groups": [[0], [0]]}"#,
        r#"{"type": "setLoss", "probability": 7}"#,
        r#"{"type": "setLatency", "latency": {"type": "pareto", "scaleMs": 0, "shape": 1}}"#,
        r#"{"type": "clockDrift", "node": 0, "ppm": 99999999}"#,
        r#"{"type": "clientRequest", "node": 40}"#,
        r#"{"type": "fly"}"#,
        r#"{}"#,
        r#"null"#,
        // Unknown keys, and malformed partitions.
        r#"{"type": "crash", "node": 1, "nodes": 2}"#,
        r#"{"type": "heal", "now": true}"#,
        r#"{"type": "partition", "groups": [[0, 0]]}"#,
        r#"{"type": "partition", "groups": [[0], []]}"#,
        r#"{"type": "partition", "groups": []}"#,
        r#"{"type": "partitionOneWay", "from": [], "to": [1]}"#,
        r#"{"type": "partitionOneWay", "from": [1], "to": [1]}"#,
    ];
    let mut lab: Lab = create_lab("sim.network".into(), JsValue::NULL).unwrap();
    lab.step(50.0).unwrap();
    let mut failures = 0u32;
    let mut baseline = 0.0;
    for i in 0..10_000u32 {
        if i == 1_000 {
            baseline = memory_bytes();
        }
        let failed = match i % 7 {
            0 => create_lab(
                "sim.network".into(),
                js(bad_configs[(i as usize / 7) % bad_configs.len()]),
            )
            .is_err(),
            1 => lab
                .act(js(bad_actions[(i as usize / 7) % bad_actions.len()]))
                .is_err(),
            2 => lab
                .step([f64::NAN, -1.0, f64::INFINITY, 1e300][(i as usize / 7) % 4])
                .is_err(),
            3 => lab
                .step_events([-1.0, 0.5, f64::NAN, 1e20, 4_294_967_296.0][(i as usize / 7) % 5])
                .is_err(),
            4 if i % 2 == 0 => lab
                .seek([-1.0, f64::NAN, 0.25, 4_294_967_296.0][(i as usize / 14) % 4])
                .is_err(),
            // Not a string where a lab id goes.
            4 => create_lab(
                [
                    JsValue::from_f64(42.0),
                    js("{}"),
                    JsValue::NULL,
                    JsValue::TRUE,
                ][(i as usize / 14) % 4]
                    .clone(),
                JsValue::NULL,
            )
            .is_err(),
            5 if i % 2 == 0 => lab
                .view(Some(js([
                    r#"{"fieldsOf": 1}"#,
                    r#"{"fieldOf": [1]}"#,
                    r#"{"fieldsOf": [-1]}"#,
                    r#"[1]"#,
                ][(i as usize / 14) % 4])))
                .is_err(),
            5 => TokenBucket::new(js([
                r#"{"capacity": 0, "refillPerSec": 1}"#,
                r#"{"capacity": 1}"#,
                "7",
            ][(i as usize / 7) % 3]))
            .is_err(),
            _ => {
                let mut b = TokenBucket::new(js(r#"{"capacity": 5, "refillPerSec": 1}"#)).unwrap();
                b.try_acquire(
                    [f64::NAN, -5.0, 1.0][(i as usize / 7) % 3],
                    Some([1.0, 9.0, f64::NAN][(i as usize / 11) % 3]),
                )
                .is_err()
            }
        };
        if failed {
            failures += 1;
        }
        // The module still works after every failure.
        assert!(lab.view(None).is_ok());
    }
    assert!(failures >= 9_500, "only {failures} inputs were rejected");
    lab.step(10.0).unwrap();
    let growth = memory_bytes() - baseline;
    assert!(
        growth < 4.0 * 1024.0 * 1024.0,
        "memory grew {growth} bytes over 9,000 failed calls"
    );
}

fn field(v: &JsValue, name: &str) -> JsValue {
    Reflect::get(v, &name.into()).unwrap()
}

/// Every limiter class: a burst of its limit is admitted, the next request denied with a
/// wait; bad configs and arguments are JS errors naming the field.
#[wasm_bindgen_test]
fn rate_limiter_classes_decide_and_name_bad_fields() {
    let window = r#"{"limit": 2, "windowMs": 1000}"#;
    let mut fixed = FixedWindow::new(js(window)).unwrap();
    let mut log = SlidingLog::new(js(window)).unwrap();
    let mut counter = SlidingCounter::new(js(window)).unwrap();
    let mut gcra = Gcra::new(js(r#"{"burst": 2, "ratePerSec": 2}"#)).unwrap();
    let mut leaky = LeakyBucket::new(js(r#"{"queueSize": 2, "drainPerSec": 2}"#)).unwrap();
    let mut decide: Vec<Box<dyn FnMut(f64) -> JsValue>> = vec![
        Box::new(move |t| fixed.try_acquire(t, None).unwrap()),
        Box::new(move |t| log.try_acquire(t, None).unwrap()),
        Box::new(move |t| counter.try_acquire(t, None).unwrap()),
        Box::new(move |t| gcra.try_acquire(t, None).unwrap()),
        Box::new(move |t| leaky.try_acquire(t, None).unwrap()),
    ];
    for d in decide.iter_mut() {
        assert_eq!(field(&d(0.0), "allowed").as_bool(), Some(true));
        assert_eq!(field(&d(0.0), "allowed").as_bool(), Some(true));
        let denied = d(0.0);
        assert_eq!(field(&denied, "allowed").as_bool(), Some(false));
        assert!(field(&denied, "retryAfter").as_f64().unwrap() > 0.0);
        let http = rate_limit_headers(denied.clone(), None, None).unwrap();
        assert_eq!(field(&http, "status").as_f64(), Some(429.0));
        // With the window the limiter grants its limit in, the policy names it.
        let http = rate_limit_headers(denied.clone(), None, Some(1000.0)).unwrap();
        let headers = JSON::stringify(&field(&http, "headers")).unwrap();
        assert!(
            String::from(headers).contains(r#"["RateLimit-Policy","\"default\";q=2;w=1"]"#),
            "{http:?}"
        );
        for bad in [-1.0, 0.0, f64::NAN, f64::INFINITY, 1e30] {
            let e = rate_limit_headers(denied.clone(), None, Some(bad))
                .err()
                .unwrap();
            assert!(message(e).contains("windowMs"), "windowMs {bad}");
        }
    }
    let mut leaky = LeakyBucket::new(js(r#"{"queueSize": 2, "drainPerSec": 2}"#)).unwrap();
    leaky.try_enqueue(0.0, None).unwrap();
    let queued = leaky.try_enqueue(0.0, None).unwrap();
    assert_eq!(field(&queued, "delay").as_f64(), Some(500_000.0));
    let e = FixedWindow::new(js(r#"{"limit": -1, "windowMs": 1000}"#))
        .err()
        .unwrap();
    assert!(message(e).contains("limit"));
    let e = Gcra::new(js(r#"{"burst": 2}"#)).err().unwrap();
    assert!(message(e).contains("config"));
    let mut gcra = Gcra::new(js(r#"{"burst": 2, "ratePerSec": 2}"#)).unwrap();
    assert!(message(gcra.try_acquire(f64::NAN, None).err().unwrap()).contains("nowMs"));
    assert!(message(gcra.try_acquire(0.0, Some(3.0)).err().unwrap()).contains("cost"));

    let mut keyed = KeyedLimiter::new(
        js(r#"{"algorithm": "gcra", "config": {"burst": 1, "ratePerSec": 1}}"#),
        2.0,
    )
    .unwrap();
    for key in ["a", "b", "c"] {
        let d = keyed.try_acquire(key.into(), 0.0, None).unwrap();
        assert_eq!(field(&d, "allowed").as_bool(), Some(true));
    }
    assert_eq!(keyed.size(), 2.0);
    for key in [JsValue::from_f64(1.0), JsValue::UNDEFINED] {
        let e = keyed.try_acquire(key.clone(), 0.0, None).err().unwrap();
        assert!(message(e).contains("`key`"));
        assert!(message(keyed.peek(key, 0.0, None).err().unwrap()).contains("`key`"));
    }
    assert_eq!(keyed.size(), 2.0);
    assert_eq!(
        field(&keyed.evictions().unwrap(), "forced").as_f64(),
        Some(1.0)
    );
    assert_eq!(keyed.sweep_idle(5_000.0, None).unwrap(), 2.0);
    let e = KeyedLimiter::new(
        js(r#"{"algorithm": "gcra", "config": {"burst": 1, "ratePerSec": 1}}"#),
        0.0,
    )
    .err()
    .unwrap();
    assert!(message(e).contains("maxKeys"));
}

/// The simulator's vocabulary as a page reads it from the package: every fault type is an
/// action a network lab takes, the default network is the one a lab gets, a latency
/// model's mean is the core's, and a bad model is an `Error` naming the field.
#[wasm_bindgen_test]
fn simulator_vocabulary_comes_from_the_core() {
    let types = fault_types();
    assert!(
        ["crash", "partition", "heal", "setLatency"]
            .iter()
            .all(|t| types.iter().any(|have| have == t))
    );
    let mut lab = create_lab("sim.network".into(), JsValue::NULL).unwrap();
    let schema = JSON::stringify(&lab.action_schema().unwrap()).unwrap();
    let schema = String::from(schema);
    for t in &types {
        assert!(
            schema.contains(&format!("\"{t}\"")),
            "{t} is not a sim.network action"
        );
    }

    let network = network_defaults().unwrap();
    let config = lab.config().unwrap();
    // Compared as JSON values: the two objects list their keys in different orders.
    let json = |v: &JsValue| -> serde_json::Value {
        serde_json::from_str(&String::from(JSON::stringify(v).unwrap())).unwrap()
    };
    assert_eq!(
        json(&network),
        json(&field(&config, "network")),
        "sim.network's default network is the simulator's"
    );
    assert_eq!(latency_mean_ms(field(&network, "latency")).unwrap(), 3.0);
    for (model, mean) in [
        (r#"{"type": "constant", "ms": 7}"#, 7.0),
        (r#"{"type": "uniform", "minMs": 2, "maxMs": 4}"#, 3.0),
        (r#"{"type": "exponential", "minMs": 1, "meanMs": 2}"#, 3.0),
        (r#"{"type": "logNormal", "medianMs": 10, "sigma": 0}"#, 10.0),
        (r#"{"type": "pareto", "scaleMs": 2, "shape": 2}"#, 4.0),
        (
            r#"{"type": "pareto", "scaleMs": 2, "shape": 1}"#,
            f64::INFINITY,
        ),
    ] {
        assert_eq!(latency_mean_ms(js(model)).unwrap(), mean, "{model}");
    }

    let nan = js(r#"{"type": "constant", "ms": 0}"#);
    Reflect::set(&nan, &"ms".into(), &JsValue::from_f64(f64::NAN)).unwrap();
    for (bad, name) in [
        (
            js(r#"{"type": "uniform", "minMs": 5, "maxMs": 1}"#),
            "`latency.maxMs`",
        ),
        (
            js(r#"{"type": "pareto", "scaleMs": 0, "shape": 1}"#),
            "`latency.scaleMs`",
        ),
        (js(r#"{"type": "warp"}"#), "`latency.type`"),
        (js(r#"{"type": "constant"}"#), "`latency`"),
        (nan, "`latency.ms`"),
        (JsValue::UNDEFINED, "`latency`"),
        (JsValue::from_str("uniform"), "`latency`"),
    ] {
        let e = message(latency_mean_ms(bad).err().unwrap());
        assert!(e.contains(name), "{e}");
        // The module still works after every failure.
        assert!(lab.step(10.0).is_ok());
    }
}

#[wasm_bindgen_test]
fn a_lesson_step_plays_to_its_pause_and_a_bad_pause_names_its_field() {
    let all: Array = lessons("consensus.raft").unwrap().dyn_into().unwrap();
    assert!(all.length() >= 4);
    let election = all.get(0);
    assert_eq!(
        Reflect::get(&election, &"id".into())
            .unwrap()
            .as_string()
            .as_deref(),
        Some("election")
    );
    let config = Reflect::get(&election, &"config".into()).unwrap();
    let steps: Array = Reflect::get(&election, &"steps".into())
        .unwrap()
        .dyn_into()
        .unwrap();
    let pause = Reflect::get(&steps.get(1), &"pause".into()).unwrap();
    let mut lab = create_lab("consensus.raft".into(), config).unwrap();
    // "A leader exists", played in 7 ms slices: it stops exactly when one does.
    let mut slices = 0;
    while !lab.advance_lesson(pause.clone(), 0.0, 7.0).unwrap() {
        slices += 1;
        assert!(slices < 1_000, "the step never paused");
    }
    let view = lab.view(None).unwrap();
    let nodes: Array = Reflect::get(&view, &"nodes".into())
        .unwrap()
        .dyn_into()
        .unwrap();
    let leaders = nodes
        .iter()
        .filter(|n| {
            Reflect::get(n, &"role".into())
                .unwrap()
                .as_string()
                .as_deref()
                == Some("leader")
        })
        .count();
    assert_eq!(leaders, 1);
    let e = lab
        .advance_lesson(js(r#"{"type": "after"}"#), 0.0, 1.0)
        .map(|_| ())
        .unwrap_err();
    assert!(message(e).contains("pause"), "names the pause");
    assert_eq!(
        lessons("sim.network")
            .unwrap()
            .dyn_into::<Array>()
            .unwrap()
            .length(),
        0
    );
}
