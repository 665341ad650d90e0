//! The mesh scenarios, each over 20 seeds (each seed a real run of both sides):
//! `scenario.retry-storm` — immediate retries keep a slowed backend overloaded after its
//! slowdown ends, backoff + jitter + a retry budget do not; `scenario.cascading-failure` —
//! a slow dependency takes the gateway's healthy path down with plain calls, not with a
//! breaker + bulkhead + timeout on the call to it.

use distlab_core::Duration;
use distlab_core::lab::{Lab, Runner};
use distlab_core::scenario::cascading_failure::{CascadingFailureLab, CascadingFailureLabConfig};
use distlab_core::scenario::retry_storm::{RetryStormLab, RetryStormLabConfig};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

const SEEDS: u64 = 20;

fn seeds() -> Vec<u64> {
    (0..SEEDS).collect()
}

#[distlab_tests::test(each = seeds())]
fn backoff_jitter_and_a_budget_end_the_retry_storm(seed: u64) {
    let mut lab = Runner::<RetryStormLab>::new(RetryStormLabConfig {
        seed,
        ..RetryStormLabConfig::default()
    })
    .unwrap();
    // The backend is slow from 1 s to 3 s; 2 s more to recover.
    lab.step(Duration::from_secs(5)).unwrap();
    let m = lab.model();
    let (naive, fixed) = (m.report(false), m.report(true));
    let (nd, fd) = (naive.during.unwrap(), fixed.during.unwrap());
    let (na, fa) = (naive.after.unwrap(), fixed.after.unwrap());
    assert!(
        nd.struggling_load_per_sec > 2.0 * fd.struggling_load_per_sec,
        "seed {seed}: load during {nd:?} vs {fd:?}"
    );
    assert!(
        nd.attempts_per_request > 1.5 * fd.attempts_per_request,
        "seed {seed}: {nd:?} vs {fd:?}"
    );
    assert!(
        na.struggling_load_per_sec > fa.struggling_load_per_sec,
        "seed {seed}: load after {na:?} vs {fa:?}"
    );
    assert!(
        fa.success_rate > na.success_rate + 0.2,
        "seed {seed}: after {na:?} vs {fa:?}"
    );
    let fixed_recovery = fixed.recovery_ms.expect("the fixed run recovers");
    assert!(fixed_recovery < 1_500.0, "seed {seed}: {fixed_recovery} ms");
    if let Some(r) = naive.recovery_ms {
        assert!(
            r > fixed_recovery,
            "seed {seed}: {r} vs {fixed_recovery} ms"
        );
    }
    assert!(lab.view().invariants.iter().all(|i| i.ok), "seed {seed}");
}

#[distlab_tests::test(each = seeds())]
fn a_breaker_bulkhead_and_timeout_keep_the_healthy_path_up(seed: u64) {
    let mut lab = Runner::<CascadingFailureLab>::new(CascadingFailureLabConfig {
        seed,
        ..CascadingFailureLabConfig::default()
    })
    .unwrap();
    // B is slow from 1 s to 4 s.
    lab.step(Duration::from_millis(4_000)).unwrap();
    let m = lab.model();
    let (plain, fixed) = (m.report(false), m.report(true));
    let (pd, fd) = (plain.during.unwrap(), fixed.during.unwrap());
    // The path to A (about half the requests): nearly all of it succeeds in the fixed
    // run, much less in the plain one, whose gateway workers all wait on B.
    assert!(
        fd.watched_ok as f64 > 1.5 * pd.watched_ok as f64,
        "seed {seed}: A's successes {pd:?} vs {fd:?}"
    );
    assert!(
        fd.watched_ok as f64 >= 0.4 * fd.requests as f64,
        "seed {seed}: A's path stays healthy: {fd:?}"
    );
    // B is protected too: the breaker and bulkhead take its load off.
    assert!(
        fd.struggling_load_per_sec < pd.struggling_load_per_sec,
        "seed {seed}: {pd:?} vs {fd:?}"
    );
    let gw = |fixed: bool| m.run(fixed).service(0).unwrap().service().unwrap().stats;
    assert!(
        gw(false).rejected > 0,
        "seed {seed}: the plain gateway turns requests away"
    );
    assert!(lab.view().invariants.iter().all(|i| i.ok), "seed {seed}");
}
