//! Clocks and ids (issue 17): the Snowflake vectors Discord publishes (V), the clocks lab
//! soaked under random faults (F: happened-before ⇒ timestamp order for Lamport, vector
//! and hybrid logical clocks through crashes, torn writes, skew steps and drift; the HLC's
//! `l − pt ≤ ε` whenever no physical clock steps back), and a named regression for the
//! crash that tears the clock's write.
//!
//! `CLOCK_SOAK_SEEDS=n` changes the number of seeds per clock; a failure prints its seed.

use distlab_core::bounded::{Count, Millis, Probability};
use distlab_core::consistency::clock_lab::{ClockLab, ClockLabConfig};
use distlab_core::consistency::clock_node::{ClockKind, HlcKind, LamportKind, VectorKind};
use distlab_core::consistency::id_gen::{DISCORD_EPOCH_MS, decode};
use distlab_core::lab::{Cluster, ClusterAction, ClusterLab, LabModel};
use distlab_core::rng::SimRng;
use distlab_core::sim::Fault;
use distlab_core::time::Time;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

/// Seeds per clock: a browser runs a few.
const DEFAULT_SEEDS: u64 = if cfg!(target_arch = "wasm32") {
    10
} else {
    5_000
};
const RUN_MS: u64 = 3_000;

/// Unix ms to `YYYY-MM-DDTHH:MM:SS.mmmZ` (proleptic Gregorian, Hinnant's days-to-civil),
/// written here so the vector is checked against the calendar, not against a number
/// copied from elsewhere.
fn iso8601(unix_ms: u64) -> String {
    let (days, ms_of_day) = ((unix_ms / 86_400_000) as i64, unix_ms % 86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1_000 % 60,
        ms_of_day % 1_000
    )
}

#[distlab_tests::test]
fn discord_published_snowflakes_decode() {
    // Discord's API reference, "Snowflakes": the example id and its timestamp.
    let d = decode(175_928_847_299_117_063, DISCORD_EPOCH_MS).unwrap();
    assert_eq!(iso8601(d.unix_ms), "2016-04-30T11:18:25.796Z");
    assert_eq!((d.node_halves(), d.sequence), ((1, 0), 7));
    // Issue 17's vectors.
    let d = decode(105_484_726_235_607_040, DISCORD_EPOCH_MS).unwrap();
    assert_eq!(iso8601(d.unix_ms), "2015-10-19T01:58:38.546Z");
    let d = decode(90_339_695_967_350_784, DISCORD_EPOCH_MS).unwrap();
    // Internal worker 0, internal process 3, increment 0.
    assert_eq!((d.node_halves(), d.sequence), ((0, 3), 0));
    assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
}

/// A fault for a clocks run. A skew step only moves a clock forward — from where it
/// reads now, drift included — so physical clocks never step back and the HLC's bound must
/// hold.
fn random_fault<K: ClockKind>(rng: &mut SimRng, lab: &Cluster<ClockLab<K>>) -> Fault {
    let sim = lab.lab().sim();
    let n = sim.node_count();
    let node = rng.below(u64::from(n)) as u32;
    let p = |rng: &mut SimRng| Probability::new("p", rng.next_f64() * 0.4).unwrap();
    match rng.below(9) {
        0 => {
            let side: Vec<u32> = (0..n).filter(|_| rng.chance(0.5)).collect();
            Fault::Partition { groups: vec![side] }
        }
        1 => Fault::Heal,
        2 => Fault::SetLoss {
            probability: p(rng),
        },
        3 => Fault::SetDuplicate {
            probability: p(rng),
        },
        4 => Fault::SetReorder {
            probability: p(rng),
        },
        5 => Fault::Crash { node },
        6 => Fault::CrashMidEvent {
            node,
            effects: rng.below(3) as u32,
        },
        7 => Fault::Restart { node },
        _ => {
            let now_us = sim.clock(node).map_or(0, |c| c.skew_at(sim.now()));
            Fault::ClockSkew {
                node,
                skew_ms: (now_us as f64 / 1_000.0).ceil() + rng.next_f64() * 60.0,
            }
        }
    }
}

/// One seed of `K`: `Err` says what went wrong.
fn run_seed<K: ClockKind>(seed: u64) -> Result<(u64, u64), String> {
    let mut rng = SimRng::derive(seed, 0xc10c);
    let n = 2 + rng.below(5) as u32;
    let skew = rng.below(100) as u32;
    let config = ClockLabConfig {
        seed,
        processes: Count::new("processes", n).unwrap(),
        event_ms: Millis::new("eventMs", 20.0 + rng.next_f64() * 200.0).unwrap(),
        send_probability: Probability::new("p", rng.next_f64()).unwrap(),
        skew_ms: Count::new("skewMs", skew).unwrap(),
        drift_ppm: Count::new("driftPpm", rng.below(50_000) as u32).unwrap(),
        // Sometimes below the spread (messages refused), sometimes above.
        max_offset_ms: Count::new("maxOffsetMs", rng.below(400) as u32).unwrap(),
        ..ClockLabConfig::default()
    };
    let mut lab = Cluster::<ClockLab<K>>::new(&config).map_err(|e| e.to_string())?;
    let faults = rng.below(8);
    for i in 0..faults {
        let at = Time::from_millis(RUN_MS * (i + 1) / (faults + 1));
        while lab.step_until(at) {}
        let f = random_fault(&mut rng, &lab);
        // A fault that does not apply now (restarting a node that is up) is skipped.
        let _ = lab.act(&ClusterAction::Fault(f));
    }
    while lab.step_until(Time::from_millis(RUN_MS)) {}
    if lab.unordered() != 0 {
        return Err(format!(
            "{}: {} events stamped out of happened-before order",
            K::ID,
            lab.unordered()
        ));
    }
    if lab.over_bound() != 0 {
        return Err(format!(
            "{}: {} events with l − pt > ε (largest {:?})",
            K::ID,
            lab.over_bound(),
            lab.max_divergence_ms()
        ));
    }
    Ok((lab.events(), lab.refused()))
}

fn soak<K: ClockKind>() {
    let seeds = std::env::var("CLOCK_SOAK_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEEDS);
    let (mut events, mut refused) = (0, 0);
    for seed in 0..seeds {
        match run_seed::<K>(seed) {
            Ok((e, r)) => {
                events += e;
                refused += r;
            }
            Err(e) => panic!("seed {seed}: {e}"),
        }
    }
    // The runs did something: events happened, and (for the HLC) some messages were
    // refused because ε was below the spread.
    assert!(events > seeds * 10, "{} events over {seeds} seeds", events);
    if K::PHYSICAL && seeds >= 10 {
        assert!(refused > 0, "no message was ever refused");
    }
}

#[distlab_tests::test]
fn lamport_clocks_keep_happened_before_under_faults() {
    soak::<LamportKind>();
}

#[distlab_tests::test]
fn vector_clocks_keep_happened_before_under_faults() {
    soak::<VectorKind>();
}

#[distlab_tests::test]
fn hlc_keeps_happened_before_and_its_bound_under_faults() {
    soak::<HlcKind>();
}

/// The crash that tears the clock's write: a process crashes after writing its clock and
/// before the fsync, the write tears, and it restarts. It must come back with the clock of
/// its previous event (the other file), not from zero — a Lamport clock from zero stamps
/// its next events below the ones it sent before.
#[distlab_tests::test]
fn a_torn_clock_write_does_not_restart_the_clock() {
    // Whether a crash tears the write in progress is the simulator's draw (half the
    // time): the first of a few seeds whose crash tears it is the schedule.
    let mut torn = 0;
    for seed in 0..20 {
        let config = ClockLabConfig {
            seed,
            event_ms: Millis::new("eventMs", 50.0).unwrap(),
            ..ClockLabConfig::default()
        };
        let mut lab = Cluster::<ClockLab<LamportKind>>::new(&config).unwrap();
        while lab.step_until(Time::from_millis(1_000)) {}
        let before = lab.lab().sim().node(1).unwrap().events();
        let tear = Fault::CrashMidEvent {
            node: 1,
            effects: 1,
        };
        lab.act(&ClusterAction::Fault(tear)).unwrap();
        while lab.step_until(Time::from_millis(1_200)) {}
        lab.act(&ClusterAction::Fault(Fault::Restart { node: 1 }))
            .unwrap();
        let sim = lab.lab().sim();
        if sim.disk(1).unwrap().stats().torn_writes == 0 {
            continue;
        }
        torn += 1;
        let after = sim.node(1).unwrap().events();
        assert_eq!(
            after, before,
            "seed {seed}: back with its last whole event's clock"
        );
        while lab.step_until(Time::from_millis(3_000)) {}
        assert_eq!(lab.unordered(), 0, "seed {seed}");
        assert!(lab.lab().sim().node(1).unwrap().events() > after + 10);
    }
    assert!(torn >= 3, "only {torn} of 20 seeds tore the write");
}
