//! Per-node local clocks: simulated time seen through a skew (offset) and a drift (rate
//! error in parts per million). Each node reads only its own clock, so lease-based
//! protocols can be shown breaking when clocks disagree — the hazard Kleppmann describes
//! in "How to do distributed locking" (2016) and the Raft thesis §6.4 warns about for
//! lease reads. Integer arithmetic only, so every platform agrees.

use serde::Serialize;
use std::hash::Hasher;

use crate::sim::node::Fingerprint;
use crate::sim::trace::StableHasher;
use crate::time::{Duration, Time};

/// Drift is bounded to ±50 %: beyond that a "clock" is no longer one.
pub const MAX_DRIFT_PPM: i64 = 500_000;
const PPM: i128 = 1_000_000;

/// A node's clock: `local(t) = t + offset + (t − drift_since) · drift / 10⁶`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeClock {
    offset_us: i64,
    drift_ppm: i64,
    drift_since: u64,
}

impl NodeClock {
    /// The node's reading at simulated time `t` (never below zero).
    pub fn local(&self, t: Time) -> Time {
        let t = t.0 as i128;
        let drifted = (t - self.drift_since as i128) * self.drift_ppm as i128 / PPM;
        let local = t + self.offset_us as i128 + drifted;
        Time(local.clamp(0, u64::MAX as i128) as u64)
    }

    /// How far this clock is ahead of true time at `t` (negative: behind), in µs.
    pub fn skew_at(&self, t: Time) -> i64 {
        (self.local(t).0 as i128 - t.0 as i128).clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }

    pub fn drift_ppm(&self) -> i64 {
        self.drift_ppm
    }

    /// Sets the clock so that it reads `skew_us` ahead of true time from `t` on; the drift
    /// rate is kept.
    pub fn set_skew(&mut self, t: Time, skew_us: i64) {
        self.offset_us = skew_us;
        self.drift_since = t.0;
    }

    /// Changes the rate from `t` on, without a jump in the reading.
    pub fn set_drift(&mut self, t: Time, drift_ppm: i64) {
        self.offset_us = self.skew_at(t);
        self.drift_since = t.0;
        self.drift_ppm = drift_ppm.clamp(-MAX_DRIFT_PPM, MAX_DRIFT_PPM);
    }

    /// The simulated span after which this clock has advanced by `local` (rounded up, so a
    /// timer never fires early by the node's own reading).
    pub fn to_sim(&self, local: Duration) -> Duration {
        let rate = PPM + self.drift_ppm as i128;
        let sim = (local.0 as i128 * PPM + rate - 1) / rate;
        Duration(sim.clamp(0, u64::MAX as i128) as u64)
    }
}

/// A clock is its reading as a function of true time: the offset and the drift rate, and
/// the instant the rate was last set only when there is a drift (without one, the reading
/// does not depend on it, so clocks set at different times but reading alike are equal).
/// With a drift, the same reading function can be written from several instants (setting
/// the same rate again moves the instant and the offset together); those fingerprint
/// apart, which costs a checker a revisit, never a missed state.
impl Fingerprint for NodeClock {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        let NodeClock {
            offset_us,
            drift_ppm,
            drift_since,
        } = *self;
        h.write_i64(offset_us);
        h.write_i64(drift_ppm);
        if drift_ppm != 0 {
            h.write_u64(drift_since);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_and_drift_compose_without_jumps() {
        let mut c = NodeClock::default();
        assert_eq!(c.local(Time(1_000)), Time(1_000));
        c.set_skew(Time(1_000), 500);
        assert_eq!(c.local(Time(2_000)), Time(2_500));
        c.set_drift(Time(2_000), 100_000); // 10 % fast
        assert_eq!(c.local(Time(2_000)), Time(2_500));
        assert_eq!(c.local(Time(12_000)), Time(13_500));
        c.set_skew(Time(12_000), -20_000);
        assert_eq!(c.local(Time(12_000)), Time(0), "clamped at zero");
    }

    #[test]
    fn fingerprint_is_the_reading_function() {
        let mut a = NodeClock::default();
        let mut b = NodeClock::default();
        a.set_skew(Time(1_000), 500);
        b.set_skew(Time(9_000), 500);
        assert_eq!(
            a.fingerprint(),
            b.fingerprint(),
            "no drift: when does not matter"
        );
        assert_ne!(a.fingerprint(), NodeClock::default().fingerprint());
        let (mut c, mut d) = (a, b);
        a.set_drift(Time(2_000), 100_000);
        b.set_drift(Time(2_000), 100_000);
        assert_eq!(a.fingerprint(), b.fingerprint());
        // The same rate from another instant reads differently.
        c.set_drift(Time(3_000), 100_000);
        assert_ne!(a.local(Time(10_000)), c.local(Time(10_000)));
        assert_ne!(a.fingerprint(), c.fingerprint());
        d.set_drift(Time(2_000), -100_000);
        assert_ne!(a.fingerprint(), d.fingerprint());
    }

    #[test]
    fn timers_follow_the_local_rate() {
        let mut c = NodeClock::default();
        c.set_drift(Time(0), -500_000); // half speed
        assert_eq!(c.to_sim(Duration(1_000)), Duration(2_000));
        c.set_drift(Time(0), 250_000);
        assert_eq!(c.to_sim(Duration(1_000)), Duration(800));
        // A timer set for d local µs fires when the local clock has advanced at least d.
        for d in [1u64, 7, 999, 123_456] {
            let s = c.to_sim(Duration(d));
            assert!(c.local(Time(s.0)).0 >= d);
        }
    }
}
