//! The φ accrual failure detector (Hayashibara, Défago, Yared and Katayama, "The φ
//! Accrual Failure Detector", SRDS 2004), in the form Akka and Apache Pekko use
//! (`PhiAccrualFailureDetector`, Apache-2.0).
//!
//! The detector keeps the last `maxSampleSize` inter-arrival times of a peer's heartbeats
//! and models the next one as normally distributed with their mean and standard
//! deviation. At time `now`, with `t` the time since the last heartbeat,
//!
//! ```text
//! φ(t) = −log10(1 − F(t)),  F the CDF of N(mean + acceptableHeartbeatPause, max(σ, minStdDeviation))
//! ```
//!
//! so φ = 1 means a 10 % chance that a heartbeat this late is still to come, φ = 2 a 1 %
//! chance, and so on; the peer is suspected while φ ≥ `threshold`.
//!
//! **Which formula.** Pekko (like Akka) approximates F by the logistic function
//! `1 / (1 + e^(−y(1.5976 + 0.070566 y²)))`, `y = (t − mean) / σ` (error under 0.00014),
//! adds `acceptableHeartbeatPause` to the mean and floors σ at `minStdDeviation`.
//! Cassandra instead assumes exponentially distributed arrivals, `φ = t / (mean · ln 10)`,
//! with no deviation at all. This module follows Pekko, and its tests reproduce Pekko's
//! `AccrualFailureDetectorSpec` cases with their expected values
//! (`tests/tests/coordination_failure_detector.rs`). With the logistic form,
//! `1 − F = e/(1 + e)` with `e = e^(−a)`, `a = y(1.5976 + 0.070566 y²)`, so
//! `φ = log10(1 + e^a)`: written as a softplus it neither overflows nor loses precision
//! far in either tail (Pekko's two branches compute the same value).
//!
//! Also as Pekko does: the history starts from two guessed intervals, `firstHeartbeat ±
//! firstHeartbeat/4`, so that a peer that sends one heartbeat and dies is still detected;
//! a peer never heard from has φ = 0; and the interval that ends a suspicion (the first
//! heartbeat after φ crossed the threshold) is left out of the history, since one long
//! pause would otherwise inflate σ and blunt the detector for the next `maxSampleSize`
//! heartbeats.
//!
//! Cost: O(1) per heartbeat and per φ (running sums over a bounded window).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};

use crate::bounded::{Count, Millis};
use crate::coordination::failure_detector::MAX_DETECTOR_MS;
use crate::error::{Result, check_range};
use crate::sim::trace::StableHasher;
use crate::time::Time;

/// The most inter-arrival times a history may keep.
pub const MAX_SAMPLE_SIZE: u32 = 10_000;
/// The largest threshold accepted: φ = 1,000 is a chance of 10^−1000, far past any use.
pub const MAX_THRESHOLD: f64 = 1_000.0;
/// Inter-arrival times are capped at a day when recorded (µs), so that the exact sums of
/// squares fit a `u128` whatever the clock does.
const MAX_RECORDED_INTERVAL_US: u64 = 86_400_000_000;

/// Configuration of a [`PhiAccrual`] detector, with Pekko's cluster defaults:
/// `{"threshold": 8, "maxSampleSize": 1000, "minStdDeviationMs": 100,
/// "acceptableHeartbeatPauseMs": 3000, "firstHeartbeatEstimateMs": 1000}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct PhiAccrualConfig {
    /// φ at or above which the peer is suspected (over 0, at most 1,000).
    pub threshold: f64,
    /// Inter-arrival times kept for the mean and deviation.
    pub max_sample_size: Count<1, { MAX_SAMPLE_SIZE }>,
    /// Floor of the standard deviation: a very regular sender would otherwise make the
    /// smallest delay look like a failure.
    pub min_std_deviation_ms: Millis<1, { MAX_DETECTOR_MS }>,
    /// Added to the mean: lost or delayed heartbeats tolerated before φ climbs.
    pub acceptable_heartbeat_pause_ms: Millis<0, { MAX_DETECTOR_MS }>,
    /// The heartbeat interval expected before any has been measured.
    pub first_heartbeat_estimate_ms: Millis<1, { MAX_DETECTOR_MS }>,
}

impl Default for PhiAccrualConfig {
    fn default() -> Self {
        PhiAccrualConfig {
            threshold: 8.0,
            max_sample_size: Count::of(1_000),
            min_std_deviation_ms: Millis::of(100),
            acceptable_heartbeat_pause_ms: Millis::of(3_000),
            first_heartbeat_estimate_ms: Millis::of(1_000),
        }
    }
}

/// φ for a silence of `time_diff` given the mean and standard deviation of the
/// inter-arrival times (any one unit for the three): `−log10(1 − F(time_diff))` with F
/// Pekko's logistic approximation of the normal CDF. Zero for a non-positive deviation
/// or a non-finite input.
pub fn phi(time_diff: f64, mean: f64, std_deviation: f64) -> f64 {
    if std_deviation.is_nan() || std_deviation <= 0.0 || !time_diff.is_finite() || !mean.is_finite()
    {
        return 0.0;
    }
    let y = (time_diff - mean) / std_deviation;
    let a = y * (1.5976 + 0.070566 * y * y);
    // log10(1 + e^a), a softplus that stays finite for any a.
    let softplus = if a > 0.0 {
        a + libm::log1p(libm::exp(-a))
    } else {
        libm::log1p(libm::exp(a))
    };
    softplus / core::f64::consts::LN_10
}

/// The newest inter-arrival times (µs) with exact running sums.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HeartbeatHistory {
    max_sample_size: usize,
    intervals: VecDeque<u64>,
    sum: u128,
    sum_of_squares: u128,
}

impl HeartbeatHistory {
    /// An empty history keeping at most `max_sample_size` (at least 1) intervals.
    pub fn new(max_sample_size: u32) -> Self {
        HeartbeatHistory {
            max_sample_size: max_sample_size.max(1) as usize,
            intervals: VecDeque::new(),
            sum: 0,
            sum_of_squares: 0,
        }
    }

    /// Records an interval, dropping the oldest beyond the window.
    pub fn push(&mut self, interval_us: u64) {
        let x = interval_us.min(MAX_RECORDED_INTERVAL_US);
        while self.intervals.len() >= self.max_sample_size {
            let Some(old) = self.intervals.pop_front() else {
                break;
            };
            self.sum -= u128::from(old);
            self.sum_of_squares -= u128::from(old) * u128::from(old);
        }
        self.intervals.push_back(x);
        self.sum += u128::from(x);
        self.sum_of_squares += u128::from(x) * u128::from(x);
    }

    pub fn len(&self) -> usize {
        self.intervals.len()
    }

    pub fn is_empty(&self) -> bool {
        self.intervals.is_empty()
    }

    /// Mean interval (µs); 0 when empty.
    pub fn mean(&self) -> f64 {
        if self.intervals.is_empty() {
            return 0.0;
        }
        self.sum as f64 / self.intervals.len() as f64
    }

    /// Population variance (µs²), computed exactly as `(n Σx² − (Σx)²) / n²` before the
    /// one rounding; 0 when empty.
    pub fn variance(&self) -> f64 {
        let n = self.intervals.len() as u128;
        if n == 0 {
            return 0.0;
        }
        let spread = n * self.sum_of_squares - self.sum * self.sum;
        spread as f64 / (n * n) as f64
    }

    pub fn std_deviation(&self) -> f64 {
        libm::sqrt(self.variance())
    }
}

/// The φ accrual detector for one peer. See the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct PhiAccrual {
    threshold: f64,
    min_std_deviation_us: f64,
    acceptable_pause_us: f64,
    /// The history a peer starts from at its first heartbeat.
    first: HeartbeatHistory,
    history: HeartbeatHistory,
    last: Option<Time>,
}

impl PhiAccrual {
    /// A detector that has heard nothing yet. Errors name the bad field.
    pub fn new(config: PhiAccrualConfig) -> Result<Self> {
        let threshold = check_range("threshold", config.threshold, 0.0, MAX_THRESHOLD)?;
        if threshold <= 0.0 {
            return Err(crate::error::DistlabError::field(
                "threshold",
                format!("must be greater than 0, got {threshold}"),
            ));
        }
        let estimate = config.first_heartbeat_estimate_ms.as_micros();
        let spread = estimate / 4;
        let mut first = HeartbeatHistory::new(config.max_sample_size.get());
        first.push(estimate - spread);
        first.push(estimate + spread);
        Ok(PhiAccrual {
            threshold,
            min_std_deviation_us: config.min_std_deviation_ms.as_micros() as f64,
            acceptable_pause_us: config.acceptable_heartbeat_pause_ms.as_micros() as f64,
            history: first.clone(),
            first,
            last: None,
        })
    }

    /// A heartbeat arrived at `now`. The interval since the previous one joins the
    /// history unless the peer was suspected at `now` (see the module documentation); a
    /// clock that stepped back counts as an interval of zero.
    pub fn heartbeat(&mut self, now: Time) {
        match self.last {
            None => self.history = self.first.clone(),
            Some(last) => {
                if self.is_available(now) {
                    self.history.push(now.saturating_since(last).0);
                }
            }
        }
        self.last = Some(now);
    }

    /// The suspicion level at `now`: 0 before the first heartbeat.
    pub fn phi(&self, now: Time) -> f64 {
        let Some(last) = self.last else {
            return 0.0;
        };
        let time_diff = now.0 as f64 - last.0 as f64;
        let std = self.history.std_deviation().max(self.min_std_deviation_us);
        phi(
            time_diff,
            self.history.mean() + self.acceptable_pause_us,
            std,
        )
    }

    /// Whether the peer is trusted at `now`: φ below the threshold.
    pub fn is_available(&self, now: Time) -> bool {
        self.phi(now) < self.threshold
    }

    /// Whether a heartbeat has ever arrived.
    pub fn is_monitoring(&self) -> bool {
        self.last.is_some()
    }

    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    pub fn history(&self) -> &HeartbeatHistory {
        &self.history
    }

    /// When the last heartbeat arrived.
    pub fn last_heartbeat(&self) -> Option<Time> {
        self.last
    }

    /// Feeds every field into `h` (floats by their bits), for the lab's node fingerprint.
    pub fn fingerprint_into(&self, h: &mut StableHasher) {
        let PhiAccrual {
            threshold,
            min_std_deviation_us,
            acceptable_pause_us,
            first,
            history,
            last,
        } = self;
        h.write_u64(threshold.to_bits());
        h.write_u64(min_std_deviation_us.to_bits());
        h.write_u64(acceptable_pause_us.to_bits());
        first.hash(h);
        history.hash(h);
        last.hash(h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phi_is_minus_log10_of_the_upper_tail() {
        // At the mean, half the arrivals are still to come.
        assert!((phi(10.0, 10.0, 1.0) - libm::log10(2.0)).abs() < 1e-12);
        // Far in the tails it stays finite and exact to the formula.
        let far = phi(1e6, 0.0, 1.0);
        assert!(far.is_finite() && far > 1e16, "{far}");
        assert_eq!(phi(-1e6, 0.0, 1.0), 0.0);
        assert_eq!(phi(5.0, 0.0, 0.0), 0.0);
        assert_eq!(phi(f64::NAN, 0.0, 1.0), 0.0);
    }

    #[test]
    fn bad_thresholds_name_the_field() {
        for bad in [0.0, -1.0, f64::NAN, 1e9] {
            let config = PhiAccrualConfig {
                threshold: bad,
                ..PhiAccrualConfig::default()
            };
            let e = PhiAccrual::new(config).unwrap_err().to_string();
            assert!(e.contains("`threshold`"), "{bad}: {e}");
        }
    }

    #[test]
    fn huge_intervals_keep_the_sums_exact() {
        let mut h = HeartbeatHistory::new(MAX_SAMPLE_SIZE);
        for _ in 0..MAX_SAMPLE_SIZE {
            h.push(u64::MAX);
        }
        assert_eq!(h.variance(), 0.0);
        assert_eq!(h.mean(), MAX_RECORDED_INTERVAL_US as f64);
    }
}
