//! The stale-read checker `cache.patterns` and `cache.multilevel` share: a read is stale
//! when it returns a value older than the newest write acknowledged before the read began
//! (the definition Facebook's memcache paper uses for the stale sets leases prevent:
//! Nishtala et al., "Scaling Memcache at Facebook", NSDI 2013, §3.2.1).
//!
//! Values carry their write's version, which grows per key in the order writes are issued,
//! so "older" is a smaller version. A stale read's *age* is how long before the read began
//! the first write newer than what it returned was acknowledged: how long the reader was
//! behind. That is the figure the multilevel bound (L1 TTL + the network's max latency)
//! is about.

use std::collections::BTreeMap;

use crate::time::{Duration, Time};

/// One stale read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaleRead {
    pub key: u32,
    /// The version the read returned.
    pub returned: u64,
    /// The newest version acknowledged before the read began.
    pub newest: u64,
    pub began: Time,
    /// How long before `began` the first newer write was acknowledged.
    pub age: Duration,
}

/// Acknowledged writes per key and the stale reads found.
#[derive(Debug, Clone, Default)]
pub struct StaleReadChecker {
    /// Per key, `(version, acknowledged at)` with the versions in increasing order; only
    /// versions newer than every earlier acknowledged one are kept (an older write
    /// acknowledged later cannot be the newest).
    acked: BTreeMap<u32, Vec<(u64, Time)>>,
    reads: u64,
    stale: u64,
    oldest: Option<StaleRead>,
    last: Option<StaleRead>,
}

/// Writes kept per key: enough for any read in flight (older ones only lengthen nothing).
const KEPT_PER_KEY: usize = 64;

impl StaleReadChecker {
    /// Write `version` of `key` was acknowledged at `at`.
    pub fn write_acked(&mut self, key: u32, version: u64, at: Time) {
        let list = self.acked.entry(key).or_default();
        if list.last().is_some_and(|(v, _)| *v >= version) {
            return;
        }
        if list.len() >= KEPT_PER_KEY {
            list.remove(0);
        }
        list.push((version, at));
    }

    /// The newest version of `key` acknowledged at or before `at` (0 if none).
    pub fn newest_acked(&self, key: u32, at: Time) -> u64 {
        self.acked
            .get(&key)
            .and_then(|l| l.iter().rev().find(|(_, t)| *t <= at))
            .map_or(0, |(v, _)| *v)
    }

    /// A read of `key` that began at `began` returned `version`; returns the stale read if
    /// it was one.
    pub fn read(&mut self, key: u32, began: Time, version: u64) -> Option<StaleRead> {
        self.reads += 1;
        let list = self.acked.get(&key)?;
        // Writes are acknowledged in time order per list, so the first newer version
        // acknowledged by `began` is the earliest such acknowledgement.
        let (_, first_newer) = list
            .iter()
            .find(|(v, t)| *v > version && *t <= began)
            .copied()?;
        let stale = StaleRead {
            key,
            returned: version,
            newest: self.newest_acked(key, began),
            began,
            age: began.saturating_since(first_newer),
        };
        self.stale += 1;
        if self.oldest.is_none_or(|o| stale.age > o.age) {
            self.oldest = Some(stale);
        }
        self.last = Some(stale);
        Some(stale)
    }

    pub fn reads(&self) -> u64 {
        self.reads
    }

    pub fn stale_reads(&self) -> u64 {
        self.stale
    }

    /// The stale read furthest behind.
    pub fn oldest(&self) -> Option<StaleRead> {
        self.oldest
    }

    pub fn last(&self) -> Option<StaleRead> {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Time {
        Time::from_millis(n)
    }

    #[test]
    fn a_read_older_than_an_acknowledged_write_is_stale() {
        let mut c = StaleReadChecker::default();
        c.write_acked(7, 1, ms(10));
        c.write_acked(7, 2, ms(20));
        // Began before version 2 was acknowledged: version 1 is fine.
        assert_eq!(c.read(7, ms(15), 1), None);
        // A newer value than acknowledged (a write in flight) is fine too.
        assert_eq!(c.read(7, ms(15), 2), None);
        // Began after: version 1 is stale, behind since version 2's acknowledgement.
        let s = c.read(7, ms(25), 1).unwrap();
        assert_eq!((s.returned, s.newest), (1, 2));
        assert_eq!(s.age, Duration::from_millis(5));
        // Version 0 (never written) is behind since version 1.
        let s = c.read(7, ms(30), 0).unwrap();
        assert_eq!(s.age, Duration::from_millis(20));
        assert_eq!(c.stale_reads(), 2);
        assert_eq!(c.reads(), 4);
        assert_eq!(c.oldest().map(|o| o.returned), Some(0));
        // Another key has no writes: never stale.
        assert_eq!(c.read(8, ms(30), 0), None);
    }

    #[test]
    fn an_older_write_acknowledged_late_does_not_lower_the_newest() {
        let mut c = StaleReadChecker::default();
        c.write_acked(1, 3, ms(10));
        c.write_acked(1, 2, ms(12));
        assert_eq!(c.newest_acked(1, ms(20)), 3);
        assert!(c.read(1, ms(20), 2).is_some());
    }
}
