//! The φ accrual failure detector against Apache Pekko's own test cases, and its
//! detection time against its wrong suspicions as the threshold moves.
//!
//! D check: every case of Pekko's `AccrualFailureDetectorSpec` (Apache-2.0,
//! `remote/src/test/scala/org/apache/pekko/remote/AccrualFailureDetectorSpec.scala` in
//! apache/pekko), with its inputs and its expected values and tolerances. Pekko's spec
//! drives the detector with a fake clock that hands out one timestamp per call (each
//! `heartbeat()`, `phi` and `isAvailable` consumes the next); here each call takes that
//! timestamp as `now`, which is the same schedule written out. Pekko counts in ms, this
//! detector in µs: φ depends on ratios only, so the expected values carry over.
//!
//! A check: over seeded trials of normally jittered heartbeats, the fraction of
//! heartbeats that arrive after φ crossed the threshold (a wrong suspicion of a live
//! sender) against φ's own meaning, 10^−φ; and the time from the last heartbeat to
//! suspicion. The table in BENCHMARKS.md ("Coordination") comes from
//! `cargo test --release -p distlab-tests --test coordination_failure_detector -- --ignored --nocapture`.

use distlab_core::Time;
use distlab_core::bounded::{Count, Millis};
use distlab_core::coordination::failure_detector::{
    HeartbeatHistory, PhiAccrual, PhiAccrualConfig, phi,
};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

/// Pekko's `createFailureDetector` defaults: threshold 8, 1,000 samples, 100 ms minimum
/// deviation, no acceptable pause, 1 s first estimate.
fn detector(threshold: f64, max_samples: u32, acceptable_pause_ms: u32) -> PhiAccrual {
    PhiAccrual::new(PhiAccrualConfig {
        threshold,
        max_sample_size: Count::new("maxSampleSize", max_samples).unwrap(),
        min_std_deviation_ms: Millis::of(100),
        acceptable_heartbeat_pause_ms: Millis::new("pause", f64::from(acceptable_pause_ms))
            .unwrap(),
        first_heartbeat_estimate_ms: Millis::of(1_000),
    })
    .unwrap()
}

fn default_detector() -> PhiAccrual {
    detector(8.0, 1_000, 0)
}

/// Pekko's `fakeTimeGenerator`: the running sums of `intervals` (ms), one per clock
/// reading.
struct FakeClock(std::vec::IntoIter<Time>);

impl FakeClock {
    fn new(intervals: &[u64]) -> Self {
        let mut t = 0;
        let times: Vec<Time> = intervals
            .iter()
            .map(|i| {
                t += i;
                Time::from_millis(t)
            })
            .collect();
        FakeClock(times.into_iter())
    }
    fn next(&mut self) -> Time {
        self.0
            .next()
            .expect("the case reads the clock as often as Pekko's")
    }
}

/// Pekko's `cdf(phi) = 1 − 10^−φ`.
fn cdf(phi: f64) -> f64 {
    1.0 - 10f64.powf(-phi)
}

fn close(actual: f64, expected: f64, tolerance: f64) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{actual} is not {expected} ± {tolerance}"
    );
}

#[distlab_tests::test]
fn pekko_use_good_enough_cumulative_distribution_function() {
    for (t, expected) in [
        (0.0, 0.5),
        (6.0, 0.7257),
        (15.0, 0.9332),
        (20.0, 0.97725),
        (25.0, 0.99379),
        (35.0, 0.99977),
    ] {
        close(cdf(phi(t, 0.0, 10.0)), expected, 0.001);
    }
    close(cdf(phi(40.0, 0.0, 10.0)), 0.99997, 0.0001);
    for x in 0..40 {
        assert!(phi(f64::from(x), 0.0, 10.0) < phi(f64::from(x + 1), 0.0, 10.0));
    }
    close(cdf(phi(22.0, 20.0, 3.0)), 0.7475, 0.001);
}

#[distlab_tests::test]
fn pekko_handle_outliers_without_losing_precision_or_hitting_exceptions() {
    close(phi(10.0, 0.0, 1.0), 38.0, 1.0);
    assert_eq!(phi(-25.0, 0.0, 1.0), 0.0);
}

#[distlab_tests::test]
fn pekko_return_realistic_phi_values() {
    for (t, expected) in [
        (0.0, 0.0),
        (500.0, 0.1),
        (1000.0, 0.3),
        (1200.0, 1.6),
        (1400.0, 4.7),
        (1600.0, 10.8),
        (1700.0, 15.3),
    ] {
        close(phi(t, 1000.0, 100.0), expected, 0.1);
    }
    // A larger deviation gives a lower φ.
    assert!(phi(1100.0, 1000.0, 500.0) < phi(1100.0, 1000.0, 100.0));
}

#[distlab_tests::test]
fn pekko_return_phi_value_of_0_on_startup_when_no_heartbeats() {
    let fd = default_detector();
    assert_eq!(fd.phi(Time::from_millis(0)), 0.0);
    assert_eq!(fd.phi(Time::from_millis(1_000_000)), 0.0);
}

#[distlab_tests::test]
fn pekko_return_phi_based_on_guess_when_only_one_heartbeat() {
    let mut clock = FakeClock::new(&[0, 1000, 1000, 1000, 1000]);
    let mut fd = default_detector();
    fd.heartbeat(clock.next());
    close(fd.phi(clock.next()), 0.3, 0.2);
    close(fd.phi(clock.next()), 4.5, 0.3);
    assert!(fd.phi(clock.next()) > 15.0);
}

#[distlab_tests::test]
fn pekko_return_phi_value_using_first_interval_after_second_heartbeat() {
    let mut clock = FakeClock::new(&[0, 100, 100, 100]);
    let mut fd = default_detector();
    fd.heartbeat(clock.next());
    assert!(fd.phi(clock.next()) > 0.0);
    fd.heartbeat(clock.next());
    assert!(fd.phi(clock.next()) > 0.0);
}

#[distlab_tests::test]
fn pekko_mark_node_as_monitored_after_a_series_of_successful_heartbeats() {
    let mut clock = FakeClock::new(&[0, 1000, 100, 100]);
    let mut fd = default_detector();
    assert!(!fd.is_monitoring());
    for _ in 0..3 {
        fd.heartbeat(clock.next());
    }
    assert!(fd.is_monitoring());
    assert!(fd.is_available(clock.next()));
}

#[distlab_tests::test]
fn pekko_mark_node_as_dead_if_heartbeat_are_missed() {
    let mut clock = FakeClock::new(&[0, 1000, 100, 100, 7000]);
    let mut fd = detector(3.0, 1_000, 0);
    for _ in 0..3 {
        fd.heartbeat(clock.next()); // 0, 1000, 1100
    }
    assert!(fd.is_available(clock.next())); // 1200
    assert!(!fd.is_available(clock.next())); // 8200
}

#[distlab_tests::test]
fn pekko_mark_node_as_available_if_it_starts_heartbeat_again_after_being_marked_dead() {
    // 1,000 regular intervals, a 5 minute pause, then a short pause again that should
    // make the node unreachable again.
    let mut intervals = vec![0];
    intervals.extend(std::iter::repeat_n(1000, 999));
    intervals.extend([5 * 60 * 1000, 100, 900, 100, 7000, 100, 900, 100, 900]);
    let mut clock = FakeClock::new(&intervals);
    let mut fd = detector(8.0, 1_000, 3_000);
    for _ in 0..1000 {
        fd.heartbeat(clock.next());
    }
    assert!(!fd.is_available(clock.next())); // after the long pause
    fd.heartbeat(clock.next());
    assert!(fd.is_available(clock.next()));
    fd.heartbeat(clock.next());
    assert!(!fd.is_available(clock.next())); // after the 7 s pause
    fd.heartbeat(clock.next());
    assert!(fd.is_available(clock.next()));
    fd.heartbeat(clock.next());
    assert!(fd.is_available(clock.next()));
}

#[distlab_tests::test]
fn pekko_accept_some_configured_missing_heartbeats() {
    let mut clock = FakeClock::new(&[0, 1000, 1000, 1000, 4000, 1000, 1000]);
    let mut fd = detector(8.0, 1_000, 3_000);
    for _ in 0..4 {
        fd.heartbeat(clock.next());
    }
    assert!(fd.is_available(clock.next()));
    fd.heartbeat(clock.next());
    assert!(fd.is_available(clock.next()));
}

#[distlab_tests::test]
fn pekko_fail_after_configured_acceptable_missing_heartbeats() {
    let mut clock = FakeClock::new(&[0, 1000, 1000, 1000, 1000, 1000, 500, 500, 5000]);
    let mut fd = detector(8.0, 1_000, 3_000);
    for _ in 0..6 {
        fd.heartbeat(clock.next());
    }
    assert!(fd.is_available(clock.next()));
    fd.heartbeat(clock.next());
    assert!(!fd.is_available(clock.next()));
}

#[distlab_tests::test]
fn pekko_use_max_sample_size_heartbeats() {
    let mut clock = FakeClock::new(&[0, 100, 100, 100, 100, 600, 500, 500, 500, 500, 500]);
    let mut fd = detector(8.0, 3, 0);
    // 100 ms interval
    for _ in 0..4 {
        fd.heartbeat(clock.next()); // 0, 100, 200, 300
    }
    let phi1 = fd.phi(clock.next()); // 400
    // 500 ms interval: the same φ once the 100 ms intervals have been dropped.
    for _ in 0..4 {
        fd.heartbeat(clock.next()); // 1000, 1500, 2000, 2500
    }
    let phi2 = fd.phi(clock.next()); // 3000
    close(phi2, phi1, 0.001);
}

fn history(max: u32, samples: &[u64]) -> HeartbeatHistory {
    let mut h = HeartbeatHistory::new(max);
    for s in samples {
        h.push(*s);
    }
    h
}

#[distlab_tests::test]
fn pekko_statistics_calculate_correct_mean_and_variance() {
    let h = history(20, &[100, 200, 125, 340, 130]);
    close(h.mean(), 179.0, 0.00001);
    close(h.variance(), 7584.0, 0.00001);
}

#[distlab_tests::test]
fn pekko_statistics_have_0_variance_for_one_sample() {
    close(history(600, &[1000]).variance(), 0.0, 0.00001);
}

#[distlab_tests::test]
fn pekko_statistics_are_capped_by_the_specified_max_sample_size() {
    let mut h = history(3, &[100, 110, 90]);
    close(h.mean(), 100.0, 0.00001);
    close(h.variance(), 66.6666667, 0.00001);
    h.push(140);
    close(h.mean(), 113.333333, 0.00001);
    close(h.variance(), 422.222222, 0.00001);
    h.push(80);
    close(h.mean(), 103.333333, 0.00001);
    close(h.variance(), 688.88888889, 0.00001);
}

/// The A check's trials (native only: a sweep of a few hundred thousand heartbeats).
#[cfg(not(target_arch = "wasm32"))]
mod tradeoff {
    use super::*;
    use distlab_core::rng::SimRng;

    /// Heartbeat interval and its jitter (standard deviation), ms.
    const MEAN_MS: f64 = 100.0;
    const SIGMA_MS: f64 = 10.0;
    /// Heartbeats before counting (the history fills) and counted per trial.
    const WARM_UP: u64 = 1_000;
    pub const THRESHOLDS: [f64; 8] = [0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 8.0, 12.0];

    /// One threshold's figures over the trials.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct Row {
        pub threshold: f64,
        /// Heartbeats that arrived after φ had reached the threshold.
        pub late: u64,
        pub counted: u64,
        /// Sum over trials of the silence after the last heartbeat at which φ reaches
        /// the threshold (a crash's detection time, the check period aside), µs.
        pub detection_us_sum: u64,
        pub trials: u64,
    }

    impl Row {
        pub fn wrong_rate(&self) -> f64 {
            self.late as f64 / self.counted as f64
        }
        pub fn mean_detection_ms(&self) -> f64 {
            self.detection_us_sum as f64 / self.trials as f64 / 1e3
        }
    }

    /// The first silence (µs, to 1 µs) at which φ reaches `threshold` after `last`.
    fn detection_after(fd: &PhiAccrual, last: Time, threshold: f64) -> u64 {
        let (mut lo, mut hi) = (0u64, 1u64);
        while fd.phi(Time(last.0 + hi)) < threshold {
            hi *= 2;
        }
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            if fd.phi(Time(last.0 + mid)) >= threshold {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        hi
    }

    /// `trials` runs of `heartbeats` counted heartbeats each, intervals drawn from
    /// N(100 ms, 10 ms). The detector's own threshold is out of reach, so every interval
    /// joins its history and every threshold is judged on the same estimates.
    pub fn sweep(trials: u64, heartbeats: u64) -> Vec<Row> {
        let mut rows: Vec<Row> = THRESHOLDS
            .iter()
            .map(|&threshold| Row {
                threshold,
                ..Row::default()
            })
            .collect();
        for seed in 0..trials {
            let mut rng = SimRng::new(seed);
            let mut fd = PhiAccrual::new(PhiAccrualConfig {
                threshold: 1_000.0,
                max_sample_size: Count::of(1_000),
                min_std_deviation_ms: Millis::of(1),
                acceptable_heartbeat_pause_ms: Millis::of(0),
                first_heartbeat_estimate_ms: Millis::of(100),
            })
            .unwrap();
            let mut now = Time::ZERO;
            fd.heartbeat(now);
            for i in 0..WARM_UP + heartbeats {
                let ms = (MEAN_MS + SIGMA_MS * rng.standard_normal()).max(1.0);
                now = Time(now.0 + (ms * 1e3).round() as u64);
                if i >= WARM_UP {
                    let phi_at_arrival = fd.phi(now);
                    for row in &mut rows {
                        row.counted += 1;
                        row.late += u64::from(phi_at_arrival >= row.threshold);
                    }
                }
                fd.heartbeat(now);
            }
            for row in &mut rows {
                row.detection_us_sum += detection_after(&fd, now, row.threshold);
                row.trials += 1;
            }
        }
        rows
    }
}

/// φ means what it says where the jitter is normal: the share of heartbeats arriving
/// after φ reached `t` is about 10^−t. Further out it is more: Pekko's logistic
/// approximation of the normal CDF has a lighter upper tail than the normal (at y = 3.09,
/// where the normal leaves 10^−3, it leaves 8.9·10^−4), so φ climbs a little early and
/// the detector suspects a live sender more often than φ promises — 1.2× at φ = 3, 1.5×
/// at φ = 4, 2× at φ = 5 in the BENCHMARKS.md table.
#[cfg(not(target_arch = "wasm32"))]
#[test]
fn wrong_suspicions_follow_ten_to_the_minus_phi() {
    let rows = tradeoff::sweep(40, 10_000);
    for row in &rows {
        let expected = 10f64.powf(-row.threshold);
        let measured = row.wrong_rate();
        // The binomial spread of the count.
        let sd = (expected * (1.0 - expected) / row.counted as f64).sqrt();
        let what = format!("φ ≥ {}: {measured} against {expected}", row.threshold);
        if row.threshold <= 2.0 {
            assert!(
                (measured - expected).abs() < 5.0 * sd + 0.1 * expected,
                "{what}"
            );
        } else {
            if row.threshold == 3.0 {
                // 400 expected: the excess is several times the spread.
                assert!(measured > expected + 2.0 * sd, "{what}");
            }
            assert!(measured < 3.0 * expected + 5.0 * sd, "{what}");
        }
    }
    // Detection time grows with the threshold.
    assert!(
        rows.windows(2)
            .all(|w| w[0].mean_detection_ms() < w[1].mean_detection_ms())
    );
}

/// The table in BENCHMARKS.md.
#[cfg(not(target_arch = "wasm32"))]
#[test]
#[ignore = "prints the BENCHMARKS.md table"]
fn tradeoff_table_for_benchmarks() {
    let trials = 100;
    let rows = tradeoff::sweep(trials, 10_000);
    println!(
        "| threshold φ | 10^−φ | heartbeats late (wrong suspicions) | detection ms after the last heartbeat |"
    );
    println!("|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {:.2e} | {:.2e} ({} of {}) | {:.1} |",
            r.threshold,
            10f64.powf(-r.threshold),
            r.wrong_rate(),
            r.late,
            r.counted,
            r.mean_detection_ms()
        );
    }
}

/// The lab's ladder over seeded runs of the simulator, for BENCHMARKS.md: 8 senders
/// heartbeating every 100 ms over a log-normal network (median 10 ms, σ 0.6) losing 1 %
/// of messages; each sender takes GC pauses of 100–700 ms about every 10 s, and all of
/// them crash between 110 and 117 s; 120 simulated seconds per seed. Once with no
/// acceptable pause, once with 200 ms (two lost heartbeats' worth).
#[cfg(not(target_arch = "wasm32"))]
#[test]
#[ignore = "prints the BENCHMARKS.md table"]
fn simulated_ladder_for_benchmarks() {
    for pause_ms in [0, 200] {
        println!("\nacceptableHeartbeatPauseMs = {pause_ms}");
        simulated_ladder(pause_ms);
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn simulated_ladder(pause_ms: u64) {
    use distlab_core::Duration;
    use distlab_core::coordination::failure_detector::lab::FailureDetectorLab;
    use distlab_core::lab::{Cluster, Lab, Runner};
    use distlab_core::rng::SimRng;
    use serde_json::json;

    const SEEDS: u64 = 20;
    const SENDERS: u64 = 8;
    let mut totals: Vec<(String, u64, u64, u64)> = Vec::new();
    for seed in 0..SEEDS {
        let mut rng = SimRng::new(1_000 + seed);
        let mut faults = Vec::new();
        for s in 1..=SENDERS {
            let mut at = rng.exponential(10_000.0) as u64;
            while at < 100_000 {
                let pause = 100 + rng.below(600);
                faults.push(json!({"atUs": at * 1_000, "fault": {"type": "pause", "node": s}}));
                faults.push(json!({"atUs": (at + pause) * 1_000,
                                   "fault": {"type": "resume", "node": s}}));
                at += pause + rng.exponential(10_000.0) as u64;
            }
            let crash = 110_000 + (s - 1) * 1_000 + rng.below(1_000);
            faults.push(json!({"atUs": crash * 1_000, "fault": {"type": "crash", "node": s}}));
        }
        faults.sort_by_key(|f| f["atUs"].as_u64());
        let config = json!({
            "seed": seed, "senders": SENDERS, "acceptableHeartbeatPauseMs": pause_ms,
            "network": {"latency": {"type": "logNormal", "medianMs": 10, "sigma": 0.6},
                        "loss": 0.01},
            "faults": {"faults": faults},
        });
        let mut lab = Runner::<Cluster<FailureDetectorLab>>::from_json(&config).unwrap();
        lab.step(Duration::from_secs(120)).unwrap();
        assert!(lab.view().invariants.iter().all(|i| i.ok));
        for (i, (name, s)) in lab.model().lab().named_scores().into_iter().enumerate() {
            if totals.len() <= i {
                totals.push((name, 0, 0, 0));
            }
            totals[i].1 += s.wrong;
            totals[i].2 += s.detections;
            totals[i].3 += s.detection_us_sum;
        }
    }
    println!(
        "| detector | wrong suspicions per sender-minute | crashes detected | mean detection ms |"
    );
    println!("|---|---|---|---|");
    let sender_minutes = (SEEDS * SENDERS) as f64 * 110.0 / 60.0;
    for (name, wrong, detected, us) in totals {
        println!(
            "| {name} | {:.3} | {detected} of {} | {:.0} |",
            wrong as f64 / sender_minutes,
            SEEDS * SENDERS,
            us as f64 / detected.max(1) as f64 / 1e3
        );
    }
}
