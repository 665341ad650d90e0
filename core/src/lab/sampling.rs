//! Metric sampling, written once for every lab. A lab says what its series are and what
//! each reads at a sample time; the kit ([`super::local`], [`super::cluster`]) decides
//! when samples fall due (before the first event past their time, or when the clock is
//! moved past them) and records them.
//!
//! A sample is a pure function of the lab's state: a live run, a seek and a replay that
//! reach the same state sample the same values by construction. Series that count "per
//! interval" take differences of running totals: the lab hands out its totals
//! ([`Sampled::totals`]), and the sampler keeps the totals of the previous sample and
//! passes them back, so no lab keeps (or resets) counters for its charts.

use std::fmt::Debug;

use crate::bounded::Millis;
use crate::lab::view::{MetricsRecorder, Series};
use crate::time::{Duration, Time};

/// Points kept per series unless a lab asks for another number.
pub const SERIES_POINTS: usize = 600;
/// How often a lab samples its metrics, in simulated milliseconds: 1 to 60,000. The
/// type checks the bounds when a config is read.
pub type SampleMs = Millis<1, 60_000>;
/// The sampling period of every lab unless its config says otherwise.
pub const DEFAULT_SAMPLE_MS: SampleMs = Millis::of(100);

/// What a lab shows as metric series.
pub trait Sampled {
    /// Running totals whose increase over an interval some series show (`()` if none).
    type Totals: Clone + Debug + Default;
    /// Each series' `(name, unit)`, in order; fixed once the lab is built.
    fn series(&self) -> Vec<(String, String)>;
    /// The totals now.
    fn totals(&self) -> Self::Totals;
    /// The values of every series at `at` (the state being the one after every event
    /// before `at`), with `since` the totals at the previous sample, `interval` before
    /// (zeros before the first).
    fn sample(&self, at: Time, interval: Duration, since: &Self::Totals) -> Vec<f64>;
}

/// Series sampled every interval, newest [`SERIES_POINTS`] kept.
#[derive(Debug, Clone)]
pub struct Sampler<T> {
    recorder: MetricsRecorder,
    /// The totals at the previous sample.
    last: T,
}

impl<T: Clone + Debug + Default> Sampler<T> {
    /// Samples `lab` every `every`, keeping the newest `points`.
    pub fn new<L: Sampled<Totals = T>>(lab: &L, every: Duration, points: usize) -> Self {
        let names = lab.series();
        let names: Vec<(&str, &str)> = names
            .iter()
            .map(|(n, u)| (n.as_str(), u.as_str()))
            .collect();
        Sampler {
            recorder: MetricsRecorder::new(every.0, points, &names),
            last: T::default(),
        }
    }

    /// Records every sample due at or before `until`. When a quiet stretch makes several
    /// due at once, they all describe the same state: the first carries the increase
    /// since the previous sample, the others none.
    pub fn record_due<L: Sampled<Totals = T>>(&mut self, lab: &L, until: Time) {
        if until.0 < self.recorder.due_at() {
            return;
        }
        let interval = Duration(self.recorder.interval_us());
        let now = lab.totals();
        let last = &mut self.last;
        self.recorder.record_due(until.0, |at| {
            let values = lab.sample(Time(at), interval, last);
            *last = now.clone();
            values
        });
    }

    /// The period between samples.
    pub fn interval(&self) -> Duration {
        Duration(self.recorder.interval_us())
    }

    pub fn series(&self) -> Vec<Series> {
        self.recorder.series()
    }
}

/// `delta` per second over `interval`.
pub fn per_second(delta: u64, interval: Duration) -> f64 {
    delta as f64 / interval.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts events; its series are the count per interval and the total.
    struct Counter {
        events: u64,
    }

    impl Sampled for Counter {
        type Totals = u64;
        fn series(&self) -> Vec<(String, String)> {
            vec![
                ("events".into(), "per interval".into()),
                ("total".into(), "events".into()),
            ]
        }
        fn totals(&self) -> u64 {
            self.events
        }
        fn sample(&self, _at: Time, _interval: Duration, since: &u64) -> Vec<f64> {
            vec![(self.events - since) as f64, self.events as f64]
        }
    }

    #[test]
    fn a_quiet_stretch_carries_the_increase_once() {
        let mut c = Counter { events: 0 };
        let mut s = Sampler::new(&c, Duration::from_millis(10), 10);
        c.events = 3;
        s.record_due(&c, Time::from_millis(35));
        let series = s.series();
        assert_eq!(series[0].x, vec![10.0, 20.0, 30.0]);
        assert_eq!(series[0].y, vec![3.0, 0.0, 0.0]);
        assert_eq!(series[1].y, vec![3.0, 3.0, 3.0]);
        c.events = 5;
        s.record_due(&c, Time::from_millis(40));
        assert_eq!(s.series()[0].y, vec![3.0, 0.0, 0.0, 2.0]);
    }

    #[test]
    fn the_sampling_period_is_checked_by_its_type() {
        for bad in [0.0, 60_001.0, -1.0] {
            let e = crate::lab::json::from_value::<SampleMs>("sampleMs", &serde_json::json!(bad));
            assert!(e.unwrap_err().to_string().contains("`sampleMs`"));
        }
        assert_eq!(DEFAULT_SAMPLE_MS.duration(), Duration::from_millis(100));
    }
}
