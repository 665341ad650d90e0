//! Over-admission against the global limit: for every window between two retained
//! admissions, how many more were admitted than the limit allows in a window that long
//! (`capacity + rate · t` for a bucket, `limit` per started window for a log).
//!
//! Each admission is stamped with the time the authority decided it: the store's clock for a
//! store's grant, the gateway's moment for a spent lease or a fail-open. Store grants reach
//! the lab after their reply's trip, so stamps arrive slightly out of order; an admission
//! inserted among later ones is checked in every window that contains it. With `K`
//! retained admissions, a check costs O(K · (1 + later ones)).
//!
//! What it shows: in central mode with the store reachable the excess is never above 0 (the
//! store is one exact limiter); with leasing it is at most the tokens the gateways may hold
//! (one batch each); failing open while the store is away is unbounded.

use std::collections::VecDeque;

use crate::ratelimit::distributed::scripts::MICRO;
use crate::ratelimit::distributed::settings::GlobalLimit;
use crate::time::Time;

/// Admissions kept for the window check: more than any limit the lab takes plus every
/// gateway's lease, so an excess fits in a window.
pub const WINDOW_ADMISSIONS: usize = 1_024;

/// The running check.
#[derive(Debug, Clone, PartialEq)]
pub struct OverAdmission {
    limit: GlobalLimit,
    /// Admission stamps, oldest first.
    stamps: VecDeque<Time>,
    /// The largest `admitted − bound` seen, in micro-requests; `None` before the first.
    max_excess_micro: Option<i128>,
    /// Excess tolerated (the leases gateways may hold), in requests.
    allowance: u64,
    first_breach: Option<String>,
}

impl OverAdmission {
    pub fn new(limit: GlobalLimit) -> Self {
        OverAdmission {
            limit,
            stamps: VecDeque::new(),
            max_excess_micro: None,
            allowance: 0,
            first_breach: None,
        }
    }

    /// Tolerates `tokens` more from now on (never less than before: tokens leased earlier
    /// may still be spent).
    pub fn allow(&mut self, tokens: u64) {
        self.allowance = self.allowance.max(tokens);
    }

    pub fn allowance(&self) -> u64 {
        self.allowance
    }

    /// The largest excess seen, in requests (negative: never reached the limit).
    pub fn max_excess(&self) -> Option<f64> {
        self.max_excess_micro.map(|e| e as f64 / MICRO as f64)
    }

    /// The first window that went past the limit plus the allowance, if any.
    pub fn breach(&self) -> Option<&str> {
        self.first_breach.as_deref()
    }

    /// Records one admission stamped `at`.
    pub fn record(&mut self, at: Time) {
        if self.stamps.len() >= WINDOW_ADMISSIONS {
            self.stamps.pop_front();
        }
        let pos = self.stamps.partition_point(|t| *t <= at);
        self.stamps.insert(pos, at);
        let mut worst: Option<(i128, Time, Time, usize)> = None;
        for end in pos..self.stamps.len() {
            let Some(&e) = self.stamps.get(end) else {
                break;
            };
            for start in (0..=end).rev() {
                let Some(&s) = self.stamps.get(start) else {
                    break;
                };
                let count = (end - start + 1) as i128;
                let excess = count * i128::from(MICRO) - self.limit.bound_micro(e - s);
                if worst.is_none_or(|(w, ..)| excess > w) {
                    worst = Some((excess, s, e, end - start + 1));
                }
            }
        }
        let Some((excess, s, e, count)) = worst else {
            return;
        };
        self.max_excess_micro = Some(self.max_excess_micro.map_or(excess, |m| m.max(excess)));
        if excess > i128::from(self.allowance) * i128::from(MICRO) && self.first_breach.is_none() {
            self.first_breach = Some(format!(
                "{count} admitted between {s} and {e}: {:.3} over the limit, allowance {}",
                excess as f64 / MICRO as f64,
                self.allowance
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

    fn bucket() -> GlobalLimit {
        GlobalLimit::TokenBucket {
            capacity: 2,
            refill_per_sec: 10,
        }
    }

    #[test]
    fn a_burst_beyond_capacity_is_an_excess_and_a_paced_stream_is_not() {
        let mut c = OverAdmission::new(bucket());
        for i in 0..20 {
            c.record(Time::ZERO + Duration::from_millis(100 * i));
        }
        assert_eq!(c.max_excess(), Some(-1.0));
        assert!(c.breach().is_none());
        let mut c = OverAdmission::new(bucket());
        for _ in 0..4 {
            c.record(Time::from_millis(5));
        }
        assert_eq!(c.max_excess(), Some(2.0));
        assert!(c.breach().is_some());
        let mut c = OverAdmission::new(bucket());
        c.allow(2);
        for _ in 0..4 {
            c.record(Time::from_millis(5));
        }
        assert!(c.breach().is_none());
    }

    #[test]
    fn a_late_stamp_is_checked_in_the_windows_after_it() {
        let mut c = OverAdmission::new(bucket());
        c.record(Time::from_millis(10));
        c.record(Time::from_millis(10));
        c.record(Time::from_millis(1_000));
        assert!(c.breach().is_none());
        // Arrives last, stamped before the others: three in [9, 10] ms is one too many.
        c.record(Time::from_millis(9));
        assert!(c.breach().is_some(), "{:?}", c.max_excess());
        assert!(c.max_excess().unwrap() > 0.9);
    }
}
