//! What the mesh counts: per edge (at the caller) its calls, their outcomes, the attempts
//! they sent and their latency; per service (at the callee) what reached it, what it
//! turned away and how full its worker pool and queue are.
//!
//! Latencies go into a log-linear histogram (HdrHistogram's layout with 4 bits of
//! sub-bucket precision: 16 buckets per power of two, so a quantile is within 1/16 of
//! the true value) — constant memory however long the run, and two snapshots subtract,
//! which is how the lab charts the p99 of each interval.

use serde::Serialize;

use crate::time::Duration;

/// Values below this get a bucket each.
const LINEAR: u64 = 32;
/// Sub-buckets per power of two.
const SUB: u64 = 16;

/// A latency histogram in microseconds, 16 buckets per power of two.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct LatencyHistogram {
    counts: Vec<u64>,
    total: u64,
}

fn bucket_of(us: u64) -> usize {
    if us < LINEAR {
        return us as usize;
    }
    let e = 63 - u64::from(us.leading_zeros()); // at least 5
    let sub = (us >> (e - 4)) - SUB; // 0..16
    (LINEAR + (e - 5) * SUB + sub) as usize
}

/// The smallest value that falls in bucket `b`.
fn lower_bound(b: usize) -> u64 {
    let b = b as u64;
    if b < LINEAR {
        return b;
    }
    let e = (b - LINEAR) / SUB + 5;
    let sub = (b - LINEAR) % SUB;
    (SUB + sub) << (e - 4)
}

impl LatencyHistogram {
    pub fn record(&mut self, d: Duration) {
        let b = bucket_of(d.0);
        if self.counts.len() <= b {
            self.counts.resize(b + 1, 0);
        }
        self.counts[b] += 1;
        self.total += 1;
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The `q` quantile (0 to 1) as the lower bound of its bucket (within 1/16 below
    /// the true value); `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.total == 0 {
            return None;
        }
        let rank = libm::ceil(q.clamp(0.0, 1.0) * self.total as f64).max(1.0) as u64;
        let mut seen = 0;
        for (b, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Duration(lower_bound(b)));
            }
        }
        None
    }

    /// What was recorded since `earlier` (a snapshot of this histogram).
    pub fn since(&self, earlier: &LatencyHistogram) -> LatencyHistogram {
        let counts: Vec<u64> = self
            .counts
            .iter()
            .enumerate()
            .map(|(b, c)| c.saturating_sub(earlier.counts.get(b).copied().unwrap_or(0)))
            .collect();
        LatencyHistogram {
            total: counts.iter().sum(),
            counts,
        }
    }
}

/// p50, p99 and p99.9 in milliseconds (null when there is nothing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Percentiles {
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
}

impl Percentiles {
    pub fn of(h: &LatencyHistogram) -> Self {
        let ms = |q| h.quantile(q).map(|d| d.0 as f64 / 1e3);
        Percentiles {
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
        }
    }
}

/// One edge's counters, kept by the caller since it last started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct EdgeStats {
    /// Calls opened on the edge (one per request the caller needed it for).
    pub calls: u64,
    /// Calls that ended well: the callee answered, or a fallback did.
    pub succeeded: u64,
    pub failed: u64,
    /// Calls refused before they reached the edge's policy: too many open.
    pub refused: u64,
    /// Attempts sent to the callee: over `succeeded + failed`, the amplification.
    pub attempts: u64,
    /// Latency of every call that ended.
    pub latency: LatencyHistogram,
}

impl EdgeStats {
    pub fn done(&self) -> u64 {
        self.succeeded + self.failed
    }

    /// Successes over calls ended (1 before any).
    pub fn success_rate(&self) -> f64 {
        if self.done() == 0 {
            1.0
        } else {
            self.succeeded as f64 / self.done() as f64
        }
    }
}

/// One service's counters since it last started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStats {
    /// Attempts that reached the service: its offered load.
    pub received: u64,
    /// Turned away at once: every worker busy and the queue full.
    pub rejected: u64,
    /// Answered after its work: well, or with an error (its own or a dependency's).
    pub ok: u64,
    pub errors: u64,
    /// Dropped because the caller cancelled them (queued or in progress).
    pub cancelled: u64,
    /// The most workers busy at once, and the longest queue.
    pub peak_busy: u64,
    pub peak_queue: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_within_a_sixteenth() {
        let mut prev = 0;
        for v in (0..100_000u64).chain([1 << 40, u64::MAX]) {
            let b = bucket_of(v);
            assert!(b >= prev, "{v}");
            prev = b;
            let lo = lower_bound(b);
            assert!(lo <= v, "{v} below {lo}");
            assert!((v - lo) as f64 <= v as f64 / 16.0, "{v} vs {lo}");
        }
    }

    #[test]
    fn quantiles_and_differences() {
        let mut h = LatencyHistogram::default();
        assert_eq!(h.quantile(0.5), None);
        for us in 1..=1_000 {
            h.record(Duration(us));
        }
        let p50 = h.quantile(0.5).unwrap().0;
        assert!((470..=500).contains(&p50), "{p50}");
        let p99 = h.quantile(0.99).unwrap().0;
        assert!((928..=990).contains(&p99), "{p99}");
        let snap = h.clone();
        for _ in 0..10 {
            h.record(Duration(50_000));
        }
        let d = h.since(&snap);
        assert_eq!(d.count(), 10);
        assert!(d.quantile(0.5).unwrap().0 > 45_000);
    }
}
