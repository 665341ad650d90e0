//! The `sim.workload` and `ratelimit.token-bucket` labs under random drives: their
//! invariants hold whatever valid actions are applied, and no number at all (NaN, infinite,
//! huge, negative) makes them panic; bad ones are errors naming the field.

use distlab_core::lab::sampling::SampleMs;
use distlab_core::lab::{ArrivalsAction, Driven, DrivenAction, Lab, Local, LocalLab, Runner};
use distlab_core::ratelimit::TokenBucketConfig;
use distlab_core::ratelimit::token_bucket::lab::{
    TokenBucketLab, TokenBucketLabAction, TokenBucketLabConfig,
};
use distlab_core::sim::workload::{ArrivalProcess, KeyDistribution, WorkloadConfig};
use distlab_core::sim_labs::workload::{WorkloadLab, WorkloadLabAction, WorkloadLabConfig};
use distlab_core::{DistlabError, Duration};
use proptest::prelude::*;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

/// Any float, with the awkward ones common.
/// Any sampling period the type admits (out-of-range ones cannot be built; reading them
/// from JSON is tested where the type is defined).
fn any_sample_ms() -> impl Strategy<Value = SampleMs> {
    prop_oneof![Just(1.0), 1.0..60_000.0f64, Just(60_000.0)]
        .prop_map(|ms| SampleMs::new("sampleMs", ms).unwrap())
}

fn any_number() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(-1.0),
        Just(1e300),
        Just(f64::MIN_POSITIVE),
        any::<f64>(),
        0.0f64..100.0,
    ]
}

fn process(rate: f64, a: f64, b: f64, n: u64, kind: u8) -> ArrivalProcess {
    match kind % 4 {
        0 => ArrivalProcess::Constant { rate_per_sec: rate },
        1 => ArrivalProcess::Poisson { rate_per_sec: rate },
        2 => ArrivalProcess::OnOff {
            rate_per_sec: rate,
            on_ms: a,
            off_ms: b,
        },
        _ => ArrivalProcess::WindowBoundaryBurst {
            window_ms: a,
            burst: n,
            spacing_ms: b,
            every_windows: 1 + n % 3,
        },
    }
}

fn any_process() -> impl Strategy<Value = ArrivalProcess> {
    (
        any_number(),
        any_number(),
        any_number(),
        prop_oneof![any::<u64>(), 0u64..30],
        any::<u8>(),
    )
        .prop_map(|(rate, a, b, n, kind)| process(rate, a, b, n, kind))
}

/// Processes that are valid and not absurdly fast, for runs that judge invariants.
fn sane_process() -> impl Strategy<Value = ArrivalProcess> {
    (
        0.5f64..2_000.0,
        1.0f64..500.0,
        0.0f64..500.0,
        1u64..20,
        any::<u8>(),
    )
        .prop_map(|(rate, a, b, n, kind)| match kind % 4 {
            // Windows long enough for two bursts at 0.01 ms spacing.
            3 => process(rate, 1.0 + a, 0.01, n, kind),
            _ => process(rate, a, b, n, kind),
        })
}

fn field_of(e: DistlabError) -> String {
    match e {
        DistlabError::InvalidField { field, .. } => field,
        other => panic!("expected a field error, got {other}"),
    }
}

/// Half the time a plausible amount, half the time anything.
fn amount() -> impl Strategy<Value = f64> {
    prop_oneof![0.1f64..60.0, any_number()]
}

fn tb_action() -> impl Strategy<Value = DrivenAction<TokenBucketLabAction>> {
    prop_oneof![
        proptest::option::of(amount()).prop_map(|cost| TokenBucketLabAction::Request { cost }),
        (
            prop_oneof![any::<u64>(), 0u64..50],
            proptest::option::of(amount())
        )
            .prop_map(|(count, cost)| TokenBucketLabAction::Burst { count, cost }),
        (amount(), amount()).prop_map(|(capacity, refill_per_sec)| {
            TokenBucketLabAction::Reconfigure {
                capacity,
                refill_per_sec,
            }
        }),
    ]
    .prop_map(DrivenAction::Lab)
    .boxed()
    .prop_union(
        any_process()
            .prop_map(|arrivals| DrivenAction::Arrivals(ArrivalsAction::SetArrivals { arrivals }))
            .boxed(),
    )
}

fn workload_action() -> impl Strategy<Value = WorkloadLabAction> {
    prop_oneof![
        any_process().prop_map(|arrivals| WorkloadLabAction::SetArrivals { arrivals }),
        (prop_oneof![any::<u64>(), 0u64..200], any_number()).prop_map(|(keys, s)| {
            WorkloadLabAction::SetKeys {
                keys: KeyDistribution::Zipf { keys, s },
            }
        }),
        (prop_oneof![any::<u64>(), 0u64..200]).prop_map(|keys| WorkloadLabAction::SetKeys {
            keys: KeyDistribution::Uniform { keys },
        }),
        Just(WorkloadLabAction::ResetStatistics),
    ]
}

/// A drive: (kind, amount) — step by time, step by events, or act.
fn drive() -> impl Strategy<Value = Vec<(u8, u64)>> {
    proptest::collection::vec((0u8..3, 0u64..400_000), 1..40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Any numbers in the config: a lab, or an error naming one of the config's fields.
    #[distlab_tests::test]
    fn token_bucket_configs_never_panic(
        capacity in any_number(),
        rate in any_number(),
        initial in proptest::option::of(any_number()),
        cost in any_number(),
        sample_ms in any_sample_ms(),
        arrivals in any_process(),
        seed in any::<u64>(),
    ) {
        let config = TokenBucketLabConfig {
            seed,
            bucket: TokenBucketConfig { capacity, refill_per_sec: rate, initial_tokens: initial },
            arrivals,
            cost,
            sample_ms,
        };
        match Runner::<Driven<TokenBucketLab>>::new(config) {
            Ok(mut lab) => {
                lab.step(Duration::from_millis(200)).unwrap();
                lab.step_events(50).unwrap();
                let _ = serde_json::to_string(&lab.view()).unwrap();
            }
            Err(e) => {
                let field = field_of(e);
                let field = field.strip_prefix("config.").unwrap_or("not under config").to_string();
                prop_assert!(
                    field.starts_with("bucket.") || field.starts_with("arrivals.")
                        || field == "cost" || field == "sampleMs",
                    "{}", field
                );
            }
        }
    }

    /// Any actions with any numbers on a valid lab: applied or refused with a field error,
    /// and the invariants hold throughout.
    #[distlab_tests::test]
    fn token_bucket_invariants_hold_under_any_actions(
        capacity in 0.5f64..50.0,
        rate in 0.1f64..200.0,
        cost_fraction in 0.01f64..=1.0,
        arrivals in sane_process(),
        seed in any::<u64>(),
        actions in proptest::collection::vec(tb_action(), 40),
        plan in drive(),
    ) {
        let config = TokenBucketLabConfig {
            seed,
            bucket: TokenBucketConfig::new(capacity, rate),
            arrivals,
            cost: capacity * cost_fraction,
            sample_ms: SampleMs::of(50),
        };
        let mut lab = Runner::<Driven<TokenBucketLab>>::new(config).unwrap();
        let mut actions = actions.into_iter().cycle();
        for (kind, amount) in plan {
            match kind {
                0 => { lab.step(Duration(amount)).unwrap(); }
                1 => { lab.step_events(amount % 300).unwrap(); }
                _ => {
                    let Some(a) = actions.next() else { continue };
                    let json = serde_json::to_value(&a).unwrap();
                    let before = lab.trace();
                    if let Err(e) = lab.act(&json) {
                        let field = field_of(e);
                        let field = field.strip_prefix("action.").map_or(field.clone(), str::to_string);
                        prop_assert!(
                            ["cost", "count", "capacity", "refillPerSec"].contains(&field.as_str())
                                || field.starts_with("arrivals.")
                                || field.starts_with("action"),
                            "{}", field
                        );
                        prop_assert_eq!(lab.trace(), before);
                    }
                }
            }
            let v = lab.view();
            for i in &v.invariants {
                prop_assert!(i.ok, "{}: {}", i.name, i.detail);
            }
        }
    }

    #[distlab_tests::test]
    fn workload_configs_and_actions_never_panic(
        arrivals in any_process(),
        keys in prop_oneof![any::<u64>(), 0u64..200],
        s in any_number(),
        read_fraction in any_number(),
        sample_ms in any_sample_ms(),
        actions in proptest::collection::vec(workload_action(), 10),
        seed in any::<u64>(),
    ) {
        let config = WorkloadLabConfig {
            seed,
            workload: WorkloadConfig {
                arrivals,
                keys: KeyDistribution::Zipf { keys, s },
                read_fraction,
            },
            sample_ms,
        };
        match Runner::<Local<WorkloadLab>>::new(config) {
            Ok(mut lab) => {
                for a in actions {
                    lab.step(Duration::from_millis(30)).unwrap();
                    lab.step_events(20).unwrap();
                    if let Err(e) = lab.act(&serde_json::to_value(&a).unwrap()) {
                        let field = field_of(e);
                        let field = field.strip_prefix("action.").unwrap_or("not under action").to_string();
                        prop_assert!(
                            field.starts_with("arrivals.") || field.starts_with("keys."),
                            "{}", field
                        );
                    }
                    let _ = serde_json::to_string(&lab.view()).unwrap();
                }
            }
            Err(e) => {
                let field = field_of(e);
                let field = field.strip_prefix("config.").unwrap_or("not under config").to_string();
                prop_assert!(field.starts_with("workload.") || field == "sampleMs", "{}", field);
            }
        }
    }

    /// The rate invariant is statistical (5 σ plus a cycle), so it must hold for every
    /// valid process, seed and sequence of changes.
    #[distlab_tests::test]
    fn workload_invariants_hold_for_valid_processes(
        first in sane_process(),
        changes in proptest::collection::vec(sane_process(), 3),
        seed in any::<u64>(),
    ) {
        let config = WorkloadLabConfig {
            seed,
            workload: WorkloadConfig { arrivals: first, ..WorkloadConfig::default() },
            ..WorkloadLabConfig::default()
        };
        let mut lab = Runner::<Local<WorkloadLab>>::new(config).unwrap();
        for arrivals in changes {
            for _ in 0..5 {
                lab.step(Duration::from_millis(700)).unwrap();
                for i in lab.view().invariants {
                    prop_assert!(i.ok, "{}: {}", i.name, i.detail);
                }
            }
            let a = WorkloadLabAction::SetArrivals { arrivals };
            lab.act(&serde_json::to_value(&a).unwrap()).unwrap();
        }
    }
}

#[distlab_tests::test]
fn both_labs_are_registered_with_their_ids() {
    for id in [WorkloadLab::ID, TokenBucketLab::ID] {
        let lab = distlab_core::create_lab(id, &serde_json::Value::Null).unwrap();
        assert_eq!(lab.id(), id);
        assert!(!lab.example_actions().as_array().unwrap().is_empty());
    }
}
