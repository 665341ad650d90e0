//! Labs for the simulator's own catalog ids: the network, workloads and the
//! linearizability checker; and [`Sampler`], the metric sampling labs driven by a workload
//! share.

pub mod network;
pub mod workload;

use crate::lab::view::{MetricsRecorder, Series};

/// Metric series sampled every `interval` of lab time, as by [`MetricsRecorder`], but cheap
/// to bring up to date after a long quiet stretch. A workload lab's clock can jump far past
/// its last event (a slow arrival process, or one `step(dt)` of years), and recording every
/// sample due one by one would take as long as the jump is long. Only the newest `capacity`
/// samples are kept anyway, so when more are due than that, the ones that would be evicted
/// at once are skipped: catching up costs at most `capacity + 1` samples, whatever the gap.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampler {
    recorder: MetricsRecorder,
    names: Vec<(String, String)>,
    capacity: usize,
    /// The recorder counts time from here, in µs: it restarts, shifted, after a skip.
    origin_us: u64,
}

impl Sampler {
    /// Series named `(name, unit)`, sampled every `interval_us` (at least 1), keeping the
    /// latest `capacity` (at least 2) points each.
    pub fn new(interval_us: u64, capacity: usize, names: &[(&str, &str)]) -> Self {
        Sampler {
            recorder: MetricsRecorder::new(interval_us, capacity, names),
            names: names
                .iter()
                .map(|(n, u)| (n.to_string(), u.to_string()))
                .collect(),
            capacity: capacity.max(2),
            origin_us: 0,
        }
    }

    pub fn interval_us(&self) -> u64 {
        self.recorder.interval_us()
    }

    /// When the next sample is due, µs.
    pub fn due_at(&self) -> u64 {
        self.origin_us.saturating_add(self.recorder.due_at())
    }

    /// Records every sample due at or before `until_us`, in order, each with the values
    /// `values(at)` returns (one per series). If more than `capacity` are due, `values` is
    /// called once for the first of them (so a caller's per-interval counters restart) and
    /// that value is dropped with the others the newest `capacity` would evict. Sampling
    /// stops short of `u64::MAX`, where the next sample time would overflow.
    pub fn record_due(&mut self, until_us: u64, mut values: impl FnMut(u64) -> Vec<f64>) {
        let interval = self.interval_us();
        let until_us = until_us.min(u64::MAX - interval);
        let due_at = self.due_at();
        if due_at > until_us {
            return;
        }
        let due = (until_us - due_at) / interval + 1;
        if due > self.capacity as u64 {
            let _ = values(due_at);
            // At most `until_us`, and at least two intervals in, so neither side overflows.
            let first_kept = due_at + (due - self.capacity as u64) * interval;
            let names: Vec<(&str, &str)> = self
                .names
                .iter()
                .map(|(n, u)| (n.as_str(), u.as_str()))
                .collect();
            self.recorder = MetricsRecorder::new(interval, self.capacity, &names);
            self.origin_us = first_kept - interval;
        }
        loop {
            let at = self.due_at();
            if at > until_us {
                break;
            }
            let v = values(at);
            self.recorder.record(&v);
        }
    }

    /// The series, with times (x) in ms of lab time.
    pub fn series(&self) -> Vec<Series> {
        // The recorder's x is its own clock in ms; back to whole µs, shifted, then to ms,
        // so that shifted and unshifted times round alike.
        let origin = self.origin_us as f64;
        self.recorder
            .series()
            .iter()
            .map(|s| Series {
                x: s.x
                    .iter()
                    .map(|x| (origin + libm::round(x * 1_000.0)) / 1_000.0)
                    .collect(),
                ..s.clone()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xs(s: &Sampler) -> Vec<f64> {
        s.series()[0].x.clone()
    }

    #[test]
    fn samples_like_a_metrics_recorder_until_a_jump() {
        let mut s = Sampler::new(10, 4, &[("n", "count")]);
        let mut calls = Vec::new();
        s.record_due(35, |at| {
            calls.push(at);
            vec![at as f64]
        });
        assert_eq!(calls, vec![10, 20, 30]);
        assert_eq!(xs(&s), vec![0.01, 0.02, 0.03]);
        assert_eq!(s.due_at(), 40);
        s.record_due(39, |_| unreachable!());
        // 10^12 samples due: one call for the first, then only the last four.
        calls.clear();
        s.record_due(10_000_000_000_005, |at| {
            calls.push(at);
            vec![at as f64]
        });
        assert_eq!(
            calls,
            vec![
                40,
                9_999_999_999_970,
                9_999_999_999_980,
                9_999_999_999_990,
                10_000_000_000_000
            ]
        );
        assert_eq!(
            s.series()[0].y,
            vec![
                9_999_999_999_970.0,
                9_999_999_999_980.0,
                9_999_999_999_990.0,
                10_000_000_000_000.0
            ]
        );
        assert_eq!(xs(&s)[3], 10_000_000_000.0);
        assert_eq!(s.due_at(), 10_000_000_000_010);
        // Then on as before, shifted.
        s.record_due(10_000_000_000_010, |at| vec![at as f64]);
        assert_eq!(xs(&s)[3], 10_000_000_000.01);
    }

    #[test]
    fn stops_short_of_the_end_of_time() {
        let mut s = Sampler::new(1_000, 3, &[("n", "count")]);
        let mut calls = 0;
        s.record_due(u64::MAX, |_| {
            calls += 1;
            vec![0.0]
        });
        assert_eq!(calls, 4);
        s.record_due(u64::MAX, |_| unreachable!());
        assert!(s.due_at() > u64::MAX - 1_000);
    }
}
