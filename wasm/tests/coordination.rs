//! The failure-detector classes as a browser sees them: `wasm-pack test --headless
//! --chrome wasm --test coordination`. Bad arguments are JS `Error`s naming the
//! argument; nothing aborts.

use distlab_wasm::coordination::{FixedTimeoutDetector, PhiAccrual};
use js_sys::{Error, JSON};
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
fn phi_accrual_rises_with_silence_as_pekko_computes_it() {
    // Pekko's "mark node as dead if heartbeat are missed": heartbeats at 0, 1000 and
    // 1100 ms, threshold 3, 100 ms minimum deviation, no acceptable pause.
    let mut fd = PhiAccrual::new(js(
        r#"{"threshold": 3, "minStdDeviationMs": 100, "acceptableHeartbeatPauseMs": 0}"#,
    ))
    .unwrap();
    assert!(!fd.is_monitoring());
    assert_eq!(fd.phi(5.0).unwrap(), 0.0);
    for t in [0.0, 1_000.0, 1_100.0] {
        fd.heartbeat(t).unwrap();
    }
    assert!(fd.is_monitoring());
    assert!(fd.is_available(1_200.0).unwrap());
    assert!(!fd.is_available(8_200.0).unwrap());
    assert!(fd.phi(1_200.0).unwrap() < fd.phi(1_500.0).unwrap());
    assert_eq!(fd.threshold(), 3.0);
    // The first estimate's two intervals (750 and 1,250 ms), then 1,000 and 100.
    assert_eq!(fd.samples(), 4);
    assert!((fd.mean_ms() - 775.0).abs() < 1e-9, "{}", fd.mean_ms());
    assert!(fd.std_deviation_ms() > 100.0);
}

#[wasm_bindgen_test]
fn bad_arguments_are_errors_naming_them() {
    for (config, field) in [
        (r#"{"threshold": 0}"#, "threshold"),
        (r#"{"threshold": "high"}"#, "threshold"),
        (r#"{"minStdDeviationMs": 0}"#, "minStdDeviationMs"),
        (r#"{"maxSampleSize": 0.5}"#, "maxSampleSize"),
        (r#"{"nope": 1}"#, "nope"),
    ] {
        let e = message(PhiAccrual::new(js(config)).err().unwrap());
        assert!(e.contains(field), "{config}: {e}");
    }
    let mut fd = PhiAccrual::new(JsValue::UNDEFINED).unwrap();
    assert_eq!(fd.threshold(), 8.0);
    for bad in [f64::NAN, -1.0, f64::INFINITY] {
        assert!(message(fd.heartbeat(bad).unwrap_err()).contains("nowMs"));
        assert!(message(fd.phi(bad).unwrap_err()).contains("nowMs"));
    }
    let e = message(
        FixedTimeoutDetector::new(js(r#"{"timeoutMs": -5}"#))
            .err()
            .unwrap(),
    );
    assert!(e.contains("timeoutMs"), "{e}");
}

#[wasm_bindgen_test]
fn a_fixed_timeout_suspects_silence_past_it() {
    let mut d = FixedTimeoutDetector::new(js(r#"{"timeoutMs": 300}"#)).unwrap();
    assert!(d.is_available(10_000.0).unwrap() && !d.is_monitoring());
    d.heartbeat(1_000.0).unwrap();
    assert!(d.is_available(1_300.0).unwrap());
    assert!(!d.is_available(1_300.5).unwrap());
    assert_eq!(d.silence_ms(1_250.0).unwrap(), 250.0);
    assert!(message(d.is_available(f64::NAN).unwrap_err()).contains("nowMs"));
}
