//! The resilience classes as a browser sees them: `wasm-pack test --headless --chrome wasm
//! --test resilience`. Bad arguments are JS `Error`s naming the argument; nothing aborts.

use distlab_wasm::resilience::{
    Bulkhead, CircuitBreaker, Deadline, Fallback, HealthMonitor, Hedging, LoadShedder,
    ResiliencePipeline, Retry, RetryBudget,
};
use js_sys::{Error, JSON, Reflect};
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

fn get(v: &JsValue, key: &str) -> JsValue {
    Reflect::get(v, &key.into()).unwrap()
}

#[wasm_bindgen_test]
fn a_breaker_opens_on_failures_and_probes_after_its_wait() {
    let mut b = CircuitBreaker::new(js(
        r#"{"slidingWindowSize": 4, "minimumNumberOfCalls": 4, "waitDurationInOpenStateMs": 1000,
            "permittedNumberOfCallsInHalfOpenState": 2}"#,
    ))
    .unwrap();
    for i in 0..4 {
        let a = b.try_acquire(f64::from(i)).unwrap();
        assert_eq!(get(&a, "type").as_string().unwrap(), "permitted");
        b.on_error(f64::from(i), get(&a, "permit"), "unavailable".into())
            .unwrap();
    }
    assert_eq!(b.state(), "open");
    let refused = b.try_acquire(500.0).unwrap();
    assert_eq!(get(&refused, "type").as_string().unwrap(), "rejected");
    assert_eq!(get(&refused, "retryAfter").as_f64(), Some(503_001.0));
    let probe = b.try_acquire(1_004.0).unwrap();
    let second = b.try_acquire(1_004.0).unwrap();
    assert_eq!(b.state(), "halfOpen");
    b.on_success(1_010.0, get(&probe, "permit")).unwrap();
    // Reported twice, a bad kind, a bad time, a bad config: errors naming the argument.
    let e = message(b.on_success(1_011.0, get(&probe, "permit")).unwrap_err());
    assert!(e.contains("permit") && e.contains("already"), "{e}");
    b.on_success(1_012.0, get(&second, "permit")).unwrap();
    assert_eq!(b.state(), "closed");
    let events = b.take_events().unwrap();
    assert_eq!(js_sys::Array::from(&events).length(), 3);
    let a = b.try_acquire(1_020.0).unwrap();
    let e = message(
        b.on_error(1_020.0, get(&a, "permit"), "teapot".into())
            .unwrap_err(),
    );
    assert!(e.contains("kind"), "{e}");
    let e = message(b.try_acquire(f64::NAN).unwrap_err());
    assert!(e.contains("nowMs"), "{e}");
    let e = message(b.on_success(1.0, js(r#"{"id": 1}"#)).unwrap_err());
    assert!(e.contains("permit"), "{e}");
    let e = message(
        CircuitBreaker::new(js(r#"{"failureRateThreshold": 0}"#))
            .err()
            .unwrap(),
    );
    assert!(e.contains("failureRateThreshold"), "{e}");
    let e = message(
        CircuitBreaker::new(js(r#"{"slidingWindowSize": -1}"#))
            .err()
            .unwrap(),
    );
    assert!(e.contains("config.slidingWindowSize"), "{e}");
}

#[wasm_bindgen_test]
fn retry_draws_its_jitter_and_stops_at_the_budget() {
    let mut r = Retry::new(
        js(r#"{"maxAttempts": 10, "backoff": {"initialBackoffMs": 100, "maxBackoffMs": 1000, "jitter": "none"}}"#),
        Some(7.0),
    )
    .unwrap();
    assert_eq!(
        r.delays(5.0).unwrap(),
        vec![100.0, 200.0, 400.0, 800.0, 1000.0]
    );
    let full = Retry::new(
        js(r#"{"backoff": {"jitter": "full", "maxBackoffMs": 1000}}"#),
        Some(7.0),
    )
    .unwrap();
    let drawn = full.delays(200.0).unwrap();
    assert!(drawn.iter().all(|d| (0.0..=1000.0).contains(d)));
    assert_eq!(drawn, full.delays(200.0).unwrap(), "same seed, same delays");
    let mut budget = RetryBudget::new(js(r#"{"maxTokens": 4, "tokenRatio": 0.5}"#)).unwrap();
    let d = r
        .on_failure_with_budget(0.0, "unavailable".into(), &mut budget)
        .unwrap();
    assert_eq!(get(&d, "type").as_string().unwrap(), "retry");
    assert_eq!(get(&d, "delay").as_f64(), Some(100_000.0));
    let d = r
        .on_failure_with_budget(100.0, "unavailable".into(), &mut budget)
        .unwrap();
    assert_eq!(get(&d, "reason").as_string().unwrap(), "budgetExhausted");
    assert_eq!(budget.tokens(), 2.0);
    budget.on_success();
    assert!(budget.allows_retry());
    r.start();
    let d = r.on_failure(0.0, "invalidArgument".into()).unwrap();
    assert_eq!(get(&d, "reason").as_string().unwrap(), "notRetryable");
    let e = message(r.delays(1.5).unwrap_err());
    assert!(e.contains("count"), "{e}");
    let e = message(Retry::new(JsValue::UNDEFINED, Some(-1.0)).err().unwrap());
    assert!(e.contains("seed"), "{e}");
    let e = message(
        Retry::new(js(r#"{"backoff": {"backoffMultiplier": 0}}"#), None)
            .err()
            .unwrap(),
    );
    assert!(e.contains("config.backoff.backoffMultiplier"), "{e}");
    let e = message(RetryBudget::new(js(r#"{"tokenRatio": 0}"#)).err().unwrap());
    assert!(e.contains("config.tokenRatio"), "{e}");
}

#[wasm_bindgen_test]
fn a_bulkhead_queues_then_fails_fast() {
    let mut b = Bulkhead::new(js(
        r#"{"maxConcurrentCalls": 1, "maxQueue": 1, "maxWaitMs": 50}"#,
    ))
    .unwrap();
    let first = b.try_enter(0.0, 1.0).unwrap();
    assert_eq!(
        get(&get(&first, "entry"), "type").as_string().unwrap(),
        "admitted"
    );
    let second = b.try_enter(0.0, 2.0).unwrap();
    assert_eq!(
        get(&get(&second, "entry"), "type").as_string().unwrap(),
        "queued"
    );
    let third = b.try_enter(0.0, 3.0).unwrap();
    assert_eq!(
        get(&get(&third, "entry"), "type").as_string().unwrap(),
        "rejected"
    );
    assert_eq!(b.poll_timeout_ms(), Some(50.0));
    let events = js_sys::Array::from(&b.release(10.0, 1.0).unwrap());
    assert_eq!(get(&events.get(0), "id").as_f64(), Some(2.0));
    assert_eq!((b.in_use(), b.queue_length()), (1, 0));
    for e in [
        message(b.try_enter(0.0, 1.5).unwrap_err()),
        message(b.release(10.0, 9.0).unwrap_err()),
        message(b.cancel(-1.0).unwrap_err()),
    ] {
        assert!(e.contains("`id`"), "{e}");
    }
}

#[wasm_bindgen_test]
fn deadlines_shrink_down_the_hops() {
    let d = Deadline::new(0.0, 100.0).unwrap();
    assert_eq!(d.at_ms(), 100.0);
    let child = d.for_downstream(30.0, 5.0, None).unwrap().unwrap();
    assert_eq!(child.at_ms(), 95.0);
    assert_eq!(child.remaining_ms(45.0).unwrap(), 50.0);
    let capped = child
        .for_downstream(45.0, 5.0, Some(10.0))
        .unwrap()
        .unwrap();
    assert_eq!(capped.at_ms(), 55.0);
    assert!(capped.for_downstream(51.0, 5.0, None).unwrap().is_none());
    assert!(capped.is_expired(55.0).unwrap());
    let e = message(Deadline::new(0.0, -3.0).err().unwrap());
    assert!(e.contains("budgetMs"), "{e}");
    let e = message(d.for_downstream(0.0, f64::INFINITY, None).err().unwrap());
    assert!(e.contains("marginMs"), "{e}");
}

fn actions(v: &JsValue) -> Vec<String> {
    js_sys::Array::from(&get(v, "actions"))
        .iter()
        .map(|a| {
            let t = get(&a, "type").as_string().unwrap();
            let n = get(&a, "attempt").as_f64().unwrap();
            format!("{t} {n}")
        })
        .collect()
}

#[wasm_bindgen_test]
fn hedging_sends_after_its_delay_and_the_first_success_cancels_the_rest() {
    let mut h = Hedging::new(
        js(r#"{"maxAttempts": 3, "delay": {"type": "fixed", "ms": 100}}"#),
        JsValue::UNDEFINED,
    )
    .unwrap();
    let started = h.start(0.0).unwrap();
    assert_eq!(get(&started, "call").as_f64(), Some(0.0));
    assert_eq!(actions(&started), ["send 0"]);
    assert_eq!(h.poll_timeout_ms(), Some(100.0));
    let due = js_sys::Array::from(&h.handle_timeout(100.0).unwrap());
    assert_eq!(due.length(), 1);
    assert_eq!(actions(&due.get(0)), ["send 1"]);
    let won = h.on_result(130.0, 0.0, 1.0, JsValue::NULL).unwrap();
    assert_eq!(actions(&won), ["cancel 0", "done 1"]);
    assert_eq!(h.open_calls(), 0);
    // A loser's late answer changes nothing; bad arguments name themselves.
    let late = h.on_result(140.0, 0.0, 0.0, JsValue::NULL).unwrap();
    assert!(actions(&late).is_empty());
    let e = message(h.on_result(150.0, 7.0, 0.0, JsValue::NULL).unwrap_err());
    assert!(e.contains("call"), "{e}");
    let e = message(h.on_result(150.0, 0.0, -1.0, JsValue::NULL).unwrap_err());
    assert!(e.contains("attempt"), "{e}");
    let e = message(h.on_result(150.0, 0.0, 0.0, "teapot".into()).unwrap_err());
    assert!(e.contains("error"), "{e}");
    let e = message(h.start(f64::NAN).unwrap_err());
    assert!(e.contains("nowMs"), "{e}");
    let stats = h.stats().unwrap();
    assert_eq!(get(&stats, "wonByHedge").as_f64(), Some(1.0));
}

#[wasm_bindgen_test]
fn hedging_configs_and_budgets_are_checked() {
    let e = message(
        Hedging::new(js(r#"{"maxAttempts": 9}"#), JsValue::UNDEFINED)
            .err()
            .unwrap(),
    );
    assert!(e.contains("maxAttempts"), "{e}");
    let e = message(
        Hedging::new(JsValue::UNDEFINED, js(r#"{"tokenRatio": 0}"#))
            .err()
            .unwrap(),
    );
    assert!(e.contains("budget.tokenRatio"), "{e}");
    let mut h = Hedging::new(
        js(r#"{"maxAttempts": 2, "nonFatal": ["unavailable"]}"#),
        js(r#"{"maxTokens": 2, "tokenRatio": 1}"#),
    )
    .unwrap();
    assert_eq!(h.tokens(), Some(2.0));
    // One non-fatal failure takes the budget to half: the hedge it would send is held.
    h.start(0.0).unwrap();
    let r = h.on_result(5.0, 0.0, 0.0, "unavailable".into()).unwrap();
    assert_eq!(actions(&r), ["done 0"]);
    assert_eq!(get(&h.stats().unwrap(), "throttled").as_f64(), Some(1.0));
}

fn fallback_actions(v: &JsValue) -> Vec<String> {
    js_sys::Array::from(&get(v, "actions"))
        .iter()
        .map(|a| {
            let t = get(&a, "type").as_string().unwrap();
            if t == "done" {
                let served = get(&a, "served");
                let kind = get(&served, "type").as_string().unwrap();
                match get(&served, "level").as_f64() {
                    Some(level) => format!("done {kind} {level}"),
                    None => format!("done {kind}"),
                }
            } else {
                format!("{t} {}", get(&a, "level").as_f64().unwrap())
            }
        })
        .collect()
}

#[wasm_bindgen_test]
fn fallback_goes_down_the_chain_and_says_who_answered() {
    let mut f = Fallback::new(js(
        r#"{"levels": [{"name": "personalised", "timeoutMs": 200}, {"name": "popular", "timeoutMs": 50}],
            "staticDefault": true}"#,
    ))
    .unwrap();
    let started = f.start(0.0).unwrap();
    assert_eq!(get(&started, "call").as_f64(), Some(0.0));
    assert_eq!(fallback_actions(&started), ["ask 0"]);
    assert_eq!(f.poll_timeout_ms(), Some(200.0));
    let next = f.on_result(30.0, 0.0, 0.0, "unavailable".into()).unwrap();
    assert_eq!(fallback_actions(&next), ["ask 1"]);
    assert_eq!(f.poll_timeout_ms(), Some(80.0));
    // popular times out: the static default answers.
    let due = js_sys::Array::from(&f.handle_timeout(80.0).unwrap());
    assert_eq!(due.length(), 1);
    assert_eq!(
        fallback_actions(&due.get(0)),
        ["cancel 1", "done staticDefault"]
    );
    assert_eq!(f.open_calls(), 0);
    // A second call served by the best level.
    let second = f.start(100.0).unwrap();
    let call = get(&second, "call").as_f64().unwrap();
    let done = f.on_result(120.0, call, 0.0, JsValue::NULL).unwrap();
    assert_eq!(fallback_actions(&done), ["done level 0"]);
    let stats = f.stats().unwrap();
    assert_eq!(get(&stats, "staticDefault").as_f64(), Some(1.0));
    // Bad arguments name themselves.
    let e = message(f.on_result(130.0, 9.0, 0.0, JsValue::NULL).unwrap_err());
    assert!(e.contains("call"), "{e}");
    let e = message(f.on_result(130.0, 0.0, -1.0, JsValue::NULL).unwrap_err());
    assert!(e.contains("level"), "{e}");
    let e = message(f.on_result(130.0, 0.0, 0.0, "teapot".into()).unwrap_err());
    assert!(e.contains("error"), "{e}");
    let e = message(f.start(f64::NAN).unwrap_err());
    assert!(e.contains("nowMs"), "{e}");
    let e = message(
        Fallback::new(js(r#"{"levels": [{"name": "a"}, {"name": "a"}]}"#))
            .err()
            .unwrap(),
    );
    assert!(e.contains("config.levels[1].name"), "{e}");
}

#[wasm_bindgen_test]
fn health_gates_on_startup_and_aggregates_by_criticality() {
    let mut h = HealthMonitor::new(
        js(r#"{"checks": [
            {"name": "warm-up", "kind": "startup", "periodMs": 100, "timeoutMs": 50, "failureThreshold": 1},
            {"name": "db", "kind": "readiness", "critical": true, "periodMs": 100, "timeoutMs": 50, "failureThreshold": 1},
            {"name": "cache", "kind": "readiness", "critical": false, "periodMs": 100, "timeoutMs": 50, "failureThreshold": 1}
        ]}"#),
        0.0,
    )
    .unwrap();
    let runs = |a: JsValue| -> Vec<f64> {
        js_sys::Array::from(&a)
            .iter()
            .filter(|x| get(x, "type").as_string().as_deref() == Some("run"))
            .map(|x| get(&x, "check").as_f64().unwrap())
            .collect()
    };
    assert_eq!(runs(h.handle_timeout(0.0).unwrap()), [0.0], "startup first");
    let report = h.report().unwrap();
    assert_eq!(get(&report, "readiness").as_string().unwrap(), "unhealthy");
    h.on_result(10.0, 0.0, None).unwrap();
    assert!(h.started());
    assert_eq!(runs(h.handle_timeout(10.0).unwrap()), [1.0, 2.0]);
    h.on_result(20.0, 1.0, None).unwrap();
    h.on_result(20.0, 2.0, Some("cache down".into())).unwrap();
    let report = h.report().unwrap();
    assert_eq!(get(&report, "status").as_string().unwrap(), "degraded");
    let cache = js_sys::Array::from(&get(&report, "checks")).get(2);
    assert_eq!(get(&cache, "lastError").as_string().unwrap(), "cache down");
    // db too slow: over its timeout, it fails though it said nothing was wrong.
    assert_eq!(runs(h.handle_timeout(120.0).unwrap()), [1.0, 2.0]);
    h.on_result(175.0, 1.0, None).unwrap();
    let report = h.report().unwrap();
    assert_eq!(get(&report, "status").as_string().unwrap(), "unhealthy");
    // Bad arguments name themselves.
    let e = message(h.on_result(200.0, 7.0, None).unwrap_err());
    assert!(e.contains("check"), "{e}");
    let e = message(h.handle_timeout(f64::NAN).unwrap_err());
    assert!(e.contains("nowMs"), "{e}");
    let e = message(
        HealthMonitor::new(js(r#"{"checks": []}"#), 0.0)
            .err()
            .unwrap(),
    );
    assert!(e.contains("config.checks"), "{e}");
}

#[wasm_bindgen_test]
fn the_load_shedder_sheds_low_priorities_first_and_backs_off_on_drops() {
    let mut s = LoadShedder::new(js(
        r#"{"limit": {"type": "aimd", "initialLimit": 10, "minLimit": 1, "maxLimit": 100,
            "backoffRatio": 0.5, "timeoutMs": 1000}, "priorities": 2, "headroomPerPriority": 0.5}"#,
    ))
    .unwrap();
    assert_eq!((s.allowed(0.0).unwrap(), s.allowed(1.0).unwrap()), (10, 5));
    let mut ids = Vec::new();
    for _ in 0..5 {
        let a = s.try_acquire(0.0, 1.0).unwrap();
        assert_eq!(get(&a, "type").as_string().unwrap(), "admitted");
        ids.push(get(&a, "id").as_f64().unwrap());
    }
    let shed = s.try_acquire(0.0, 1.0).unwrap();
    assert_eq!(get(&shed, "type").as_string().unwrap(), "shed");
    let a = s.try_acquire(0.0, 0.0).unwrap();
    assert_eq!(
        get(&a, "type").as_string().unwrap(),
        "admitted",
        "priority 0 still fits"
    );
    assert_eq!(s.inflight(), 6);
    s.on_dropped(10.0, ids[4]).unwrap();
    assert_eq!(s.limit(), 5, "halved on a drop");
    s.release(ids[0]).unwrap();
    assert_eq!(s.limit(), 5, "a release is no sample");
    let stats = js_sys::Array::from(&s.stats().unwrap());
    assert_eq!(get(&stats.get(1), "shed").as_f64(), Some(1.0));
    // Bad arguments name themselves.
    let e = message(s.on_success(11.0, ids[4]).unwrap_err());
    assert!(e.contains("id"), "{e}");
    let e = message(s.try_acquire(11.0, 2.0).unwrap_err());
    assert!(e.contains("priority"), "{e}");
    let e = message(s.try_acquire(f64::NAN, 0.0).unwrap_err());
    assert!(e.contains("nowMs"), "{e}");
    let e = message(
        LoadShedder::new(js(
            r#"{"limit": {"type": "aimd", "initialLimit": 10, "minLimit": 1, "maxLimit": 100,
                "backoffRatio": 1.5, "timeoutMs": 1000}}"#,
        ))
        .err()
        .unwrap(),
    );
    assert!(e.contains("config.limit.backoffRatio"), "{e}");
}

#[wasm_bindgen_test]
fn gradient2_updates_its_limit_once_per_sample_window() {
    let mut s = LoadShedder::new(js(
        r#"{"limit": {"type": "gradient2", "initialLimit": 10, "minLimit": 1, "maxLimit": 100,
            "smoothing": 0.5, "queueSize": 4, "longWindow": 600, "rttTolerance": 1.5,
            "windowMs": 100, "windowSize": 2}, "priorities": 1}"#,
    ))
    .unwrap();
    let ids: Vec<f64> = (0..6)
        .map(|_| {
            get(&s.try_acquire(0.0, 0.0).unwrap(), "id")
                .as_f64()
                .unwrap()
        })
        .collect();
    // One request closes the first window: too few, thrown away.
    s.on_success(10.0, ids[0]).unwrap();
    assert_eq!(s.limit(), 10);
    // The next window runs to 110 ms.
    s.on_success(20.0, ids[5]).unwrap();
    assert_eq!(s.limit(), 10, "the window is still open");
    // Closed with two requests: gradient 1, 10 × 0.5 + (10 + 4) × 0.5 = 12.
    s.on_success(110.0, ids[4]).unwrap();
    assert_eq!(s.limit(), 12);
    let e = message(
        LoadShedder::new(js(
            r#"{"limit": {"type": "gradient2", "initialLimit": 10, "minLimit": 1, "maxLimit": 100,
                "smoothing": 0.5, "queueSize": 4, "longWindow": 600, "rttTolerance": 1.5,
                "windowSize": 0}}"#,
        ))
        .err()
        .unwrap(),
    );
    assert!(e.contains("windowSize"), "{e}");
}

#[wasm_bindgen_test]
fn a_pipeline_retries_inside_its_timeout_and_reports_the_outcome() {
    // Per-attempt timeout of 100 ms inside a retry of 2 attempts, 10 ms apart.
    let mut p = ResiliencePipeline::new(
        js(
            r#"{"strategies": [{"type": "retry", "policy": {"maxAttempts": 2, "backoff":
            {"initialBackoffMs": 10, "maxBackoffMs": 10, "backoffMultiplier": 1,
            "jitter": "none"}}}, {"type": "timeout", "timeoutMs": 100}]}"#,
        ),
        Some(1.0),
    )
    .unwrap();
    assert_eq!(p.max_attempts_per_call(), 2.0);
    let started = p.start(0.0).unwrap();
    let actions = js_sys::Array::from(&get(&started, "actions"));
    let send = actions.get(0);
    assert_eq!(get(&send, "type").as_string().unwrap(), "send");
    let first = get(&send, "attempt").as_f64().unwrap();
    assert_eq!(p.poll_timeout_ms(), Some(100.0));
    // The first attempt times out: cancelled, the retry waits 10 ms.
    let cut = js_sys::Array::from(&p.handle_timeout(100.0).unwrap());
    assert_eq!(get(&cut.get(0), "type").as_string().unwrap(), "cancel");
    assert_eq!(p.poll_timeout_ms(), Some(110.0));
    let again = js_sys::Array::from(&p.handle_timeout(110.0).unwrap());
    let second = get(&again.get(0), "attempt").as_f64().unwrap();
    assert!(second > first);
    // The late answer to the first is ignored; the second succeeds.
    assert_eq!(
        js_sys::Array::from(&p.on_result(120.0, first, JsValue::NULL).unwrap()).length(),
        0
    );
    let done = js_sys::Array::from(&p.on_result(130.0, second, JsValue::NULL).unwrap());
    let done = done.get(0);
    assert_eq!(get(&done, "type").as_string().unwrap(), "done");
    assert_eq!(
        get(&get(&done, "outcome"), "type").as_string().unwrap(),
        "succeeded"
    );
    assert_eq!(get(&done, "attempts").as_f64(), Some(2.0));
    assert_eq!(p.open_calls(), 0);
    // Bad arguments name themselves.
    let e = message(p.on_result(140.0, 99.0, JsValue::NULL).unwrap_err());
    assert!(e.contains("attempt"), "{e}");
    let e = message(
        ResiliencePipeline::new(
            js(r#"{"strategies": [{"type": "timeout", "timeoutMs": 0}]}"#),
            None,
        )
        .err()
        .unwrap(),
    );
    assert!(e.contains("config.strategies[0].timeoutMs"), "{e}");
}
