//! `cache.ttl`: entries with a time to live, expired the way Redis expires keys — lazily,
//! when an access finds a key past its time, and actively, by sampling.
//!
//! Reference: Redis `src/expire.c` (`activeExpireCycle`) and the `EXPIRE` documentation
//! ("How Redis expires keys"). Keys with a TTL are also kept in a dense array (Redis's
//! `expires` dictionary) so one can be drawn at random in O(1). A cycle draws
//! [`ActiveExpiry::keys_per_loop`] (20) of them, deletes those expired, and draws again
//! while more than [`ActiveExpiry::stale_percent`] (25 %) of a draw had expired — the rule
//! of Redis before 6.0, which 6.0 made tunable — up to [`ActiveExpiry::max_loops`] draws: a
//! bound on effort standing in for Redis's time limit (25 % of each 100 ms tick). The cycle
//! is driven by the caller's `now` and a seeded [`SimRng`], so runs replay exactly; the
//! driver calls it every tick (Redis: `hz` 10 times a second).
//!
//! So expired keys do linger — the point of the lab: between cycles, a key nobody reads
//! holds memory after its time, and the sampling leaves about 25 % of the keys with a TTL
//! expired-but-present in the worst case. The cache is also bounded by count and evicts the
//! least recently used entry when full (Redis's `allkeys-lru`, exact instead of sampled).
//! A key expires at `now ≥ expiresAt`. Every operation but the cycle is O(1).

use std::hash::Hash;

use rustc_hash::FxHashMap;
use serde::Serialize;

use super::slab::{List, NIL, Slab};
use super::{EvictionCause, Evictions, check_capacity};
use crate::error::{DistlabError, Result};
use crate::rng::SimRng;
use crate::time::{Duration, Time};

/// How an active expiry cycle samples. Redis's values by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveExpiry {
    /// Keys with a TTL drawn per loop (Redis: `ACTIVE_EXPIRE_CYCLE_KEYS_PER_LOOP`, 20).
    pub keys_per_loop: u32,
    /// Draw again while more than this percentage of a draw had expired (25).
    pub stale_percent: u32,
    /// Draws per cycle at most: the bound on one cycle's effort (16).
    pub max_loops: u32,
}

impl Default for ActiveExpiry {
    fn default() -> Self {
        ActiveExpiry {
            keys_per_loop: 20,
            stale_percent: 25,
            max_loops: 16,
        }
    }
}

impl ActiveExpiry {
    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        let check = |field: &str, v: u32, min: u32, max: u32| {
            if (min..=max).contains(&v) {
                Ok(())
            } else {
                Err(DistlabError::field(
                    field,
                    format!("must be between {min} and {max}, got {v}"),
                ))
            }
        };
        check("keysPerLoop", self.keys_per_loop, 1, 10_000)?;
        check("stalePercent", self.stale_percent, 0, 100)?;
        check("maxLoops", self.max_loops, 1, 10_000)
    }
}

/// Running totals of what left the cache and why.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TtlStats {
    /// Expired keys found and deleted by an access.
    pub lazily_expired: u64,
    /// Expired keys deleted by an active cycle.
    pub actively_expired: u64,
    /// Entries pushed out for room.
    pub evicted: u64,
    /// Active cycles run, and keys they sampled.
    pub cycles: u64,
    pub sampled: u64,
}

/// What one active cycle did.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpireCycle<K, V> {
    pub loops: u32,
    pub sampled: u32,
    /// The keys it deleted (cause [`EvictionCause::Expired`]).
    pub expired: Evictions<K, V>,
}

#[derive(Debug, Clone)]
struct Entry<K, V> {
    key: K,
    value: V,
    expires_at: Option<Time>,
    /// Position in `volatile`, or [`NIL`].
    volatile_at: u32,
}

/// A count-bounded cache whose entries may carry a time to live.
#[derive(Debug, Clone)]
pub struct TtlCache<K, V> {
    map: FxHashMap<K, u32>,
    slab: Slab<Entry<K, V>>,
    /// Front: most recently used.
    order: List,
    /// Slots of the entries with a TTL, in no order: the set cycles sample from.
    volatile: Vec<u32>,
    capacity: usize,
    expiry: ActiveExpiry,
    stats: TtlStats,
}

impl<K: Hash + Eq + Clone, V> TtlCache<K, V> {
    /// A cache of at most `capacity` entries whose cycles sample as `expiry` says.
    pub fn new(capacity: usize, expiry: ActiveExpiry) -> Result<Self> {
        let capacity = check_capacity("capacity", capacity)?;
        expiry.validate()?;
        Ok(TtlCache {
            map: FxHashMap::default(),
            slab: Slab::default(),
            order: List::default(),
            volatile: Vec::new(),
            capacity,
            expiry,
            stats: TtlStats::default(),
        })
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Entries with a TTL (expired or not).
    pub fn volatile_len(&self) -> usize {
        self.volatile.len()
    }

    pub fn stats(&self) -> TtlStats {
        self.stats
    }

    pub fn expiry(&self) -> ActiveExpiry {
        self.expiry
    }

    /// The value under `key` unless it has expired; an expired entry found here is deleted
    /// (lazy expiry). A live entry becomes the most recently used.
    pub fn get(&mut self, now: Time, key: &K) -> Option<&V> {
        let idx = *self.map.get(key)?;
        if self.expired(idx, now) {
            self.delete(idx);
            self.stats.lazily_expired += 1;
            return None;
        }
        self.order.move_to_front(&mut self.slab, idx);
        self.slab.get(idx).map(|e| &e.value)
    }

    /// The value under `key` unless it has expired, changing nothing.
    pub fn peek(&self, now: Time, key: &K) -> Option<&V> {
        let idx = *self.map.get(key)?;
        let e = self.slab.get(idx)?;
        e.expires_at.is_none_or(|t| now < t).then_some(&e.value)
    }

    /// Time left to `key`: `Some(None)` for a live key without TTL, `None` if absent or
    /// expired (Redis's `TTL`: -1 and -2).
    pub fn ttl(&self, now: Time, key: &K) -> Option<Option<Duration>> {
        let e = self.slab.get(*self.map.get(key)?)?;
        match e.expires_at {
            None => Some(None),
            Some(t) if now >= t => None,
            Some(t) => Some(Some(t.saturating_since(now))),
        }
    }

    /// When `key` expires, expired or not, while it is held.
    pub fn expires_at(&self, key: &K) -> Option<Option<Time>> {
        Some(self.slab.get(*self.map.get(key)?)?.expires_at)
    }

    /// Stores `value` under `key`, living `ttl` from `now` (`None`: until removed or
    /// evicted; a TTL must be positive). Like Redis's `SET`, a put replaces the key's TTL.
    /// A new key in a full cache evicts the least recently used entry.
    pub fn put(
        &mut self,
        now: Time,
        key: K,
        value: V,
        ttl: Option<Duration>,
    ) -> Result<Evictions<K, V>> {
        if ttl == Some(Duration::ZERO) {
            return Err(DistlabError::field("ttl", "must be greater than 0"));
        }
        let expires_at = ttl.map(|d| now.saturating_add(d));
        let mut out = Evictions::default();
        let idx = if let Some(&idx) = self.map.get(&key) {
            if let Some(e) = self.slab.get_mut(idx) {
                let old = std::mem::replace(&mut e.value, value);
                // An entry that had expired is gone as far as a reader knows.
                let cause = if e.expires_at.is_some_and(|t| now >= t) {
                    self.stats.lazily_expired += 1;
                    EvictionCause::Expired
                } else {
                    EvictionCause::Replaced
                };
                out.push(key, old, cause);
            }
            self.order.move_to_front(&mut self.slab, idx);
            idx
        } else {
            if self.map.len() >= self.capacity
                && let Some(lru) = self.order.back()
                && let Some(e) = self.delete(lru)
            {
                self.stats.evicted += 1;
                out.push(e.key, e.value, EvictionCause::Capacity);
            }
            let Some(idx) = self.slab.insert(Entry {
                key: key.clone(),
                value,
                expires_at: None,
                volatile_at: NIL,
            }) else {
                return Ok(out);
            };
            self.order.push_front(&mut self.slab, idx);
            self.map.insert(key, idx);
            idx
        };
        self.set_expiry(idx, expires_at);
        Ok(out)
    }

    /// Takes `key` out, expired or not, returning its value.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let idx = *self.map.get(key)?;
        self.delete(idx).map(|e| e.value)
    }

    /// One active expiry cycle at `now`: draws keys with a TTL at random, deletes the
    /// expired ones, and draws again while the expired share of a draw exceeds
    /// `stalePercent`, at most `maxLoops` times.
    pub fn active_expire_cycle(&mut self, now: Time, rng: &mut SimRng) -> ExpireCycle<K, V> {
        let mut cycle = ExpireCycle {
            loops: 0,
            sampled: 0,
            expired: Evictions::default(),
        };
        self.stats.cycles += 1;
        while cycle.loops < self.expiry.max_loops && !self.volatile.is_empty() {
            let draw = (self.expiry.keys_per_loop as usize).min(self.volatile.len());
            let mut expired = 0usize;
            for _ in 0..draw {
                if self.volatile.is_empty() {
                    break;
                }
                let at = rng.below(self.volatile.len() as u64) as usize;
                let Some(&idx) = self.volatile.get(at) else {
                    break;
                };
                cycle.sampled += 1;
                if self.expired(idx, now)
                    && let Some(e) = self.delete(idx)
                {
                    expired += 1;
                    cycle.expired.push(e.key, e.value, EvictionCause::Expired);
                }
            }
            cycle.loops += 1;
            if expired * 100 <= draw * self.expiry.stale_percent as usize {
                break;
            }
        }
        self.stats.sampled += u64::from(cycle.sampled);
        self.stats.actively_expired += cycle.expired.len() as u64;
        cycle
    }

    /// Entries past their time but not deleted yet, O(entries with a TTL).
    pub fn expired_held(&self, now: Time) -> usize {
        self.volatile
            .iter()
            .filter(|&&i| self.expired(i, now))
            .count()
    }

    /// Entries from most to least recently used, with when each expires.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V, Option<Time>)> {
        self.order
            .iter(&self.slab)
            .filter_map(|i| self.slab.get(i).map(|e| (&e.key, &e.value, e.expires_at)))
    }

    fn expired(&self, idx: u32, now: Time) -> bool {
        self.slab
            .get(idx)
            .and_then(|e| e.expires_at)
            .is_some_and(|t| now >= t)
    }

    fn set_expiry(&mut self, idx: u32, expires_at: Option<Time>) {
        let Some(e) = self.slab.get_mut(idx) else {
            return;
        };
        e.expires_at = expires_at;
        match (expires_at.is_some(), e.volatile_at != NIL) {
            (true, false) => {
                e.volatile_at = self.volatile.len() as u32;
                self.volatile.push(idx);
            }
            (false, true) => self.forget_volatile(idx),
            _ => {}
        }
    }

    /// Takes slot `idx` out of the TTL set: the last one moves into its place.
    fn forget_volatile(&mut self, idx: u32) {
        let Some(at) = self.slab.get_mut(idx).map(|e| {
            let at = e.volatile_at;
            e.volatile_at = NIL;
            at as usize
        }) else {
            return;
        };
        if at >= self.volatile.len() {
            return;
        }
        self.volatile.swap_remove(at);
        if let Some(&moved) = self.volatile.get(at)
            && let Some(m) = self.slab.get_mut(moved)
        {
            m.volatile_at = at as u32;
        }
    }

    fn delete(&mut self, idx: u32) -> Option<Entry<K, V>> {
        self.forget_volatile(idx);
        self.order.unlink(&mut self.slab, idx);
        let e = self.slab.remove(idx)?;
        self.map.remove(&e.key);
        Some(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Time {
        Time::from_millis(n)
    }

    fn cache(cap: usize) -> TtlCache<u32, u32> {
        TtlCache::new(cap, ActiveExpiry::default()).unwrap()
    }

    #[test]
    fn an_access_after_the_ttl_finds_nothing_and_deletes_the_key() {
        let mut c = cache(10);
        c.put(ms(0), 1, 10, Some(Duration::from_millis(100)))
            .unwrap();
        c.put(ms(0), 2, 20, None).unwrap();
        assert_eq!(c.get(ms(99), &1), Some(&10));
        assert_eq!(c.ttl(ms(40), &1), Some(Some(Duration::from_millis(60))));
        assert_eq!(c.ttl(ms(40), &2), Some(None));
        assert_eq!(c.peek(ms(100), &1), None);
        assert_eq!(c.len(), 2, "peek leaves the expired key in place");
        assert_eq!(c.expired_held(ms(100)), 1);
        assert_eq!(c.get(ms(100), &1), None);
        assert_eq!((c.len(), c.stats().lazily_expired), (1, 1));
        assert_eq!(c.get(ms(1_000_000), &2), Some(&20));
    }

    #[test]
    fn a_put_replaces_the_ttl_and_reports_an_expired_old_value_as_expired() {
        let mut c = cache(10);
        c.put(ms(0), 1, 10, Some(Duration::from_millis(5))).unwrap();
        let out = c.put(ms(1), 1, 11, None).unwrap();
        assert_eq!(out.count(EvictionCause::Replaced), 1);
        assert_eq!(c.volatile_len(), 0);
        c.put(ms(2), 1, 12, Some(Duration::from_millis(5))).unwrap();
        let out = c
            .put(ms(10), 1, 13, Some(Duration::from_millis(5)))
            .unwrap();
        assert_eq!(out.count(EvictionCause::Expired), 1);
        assert_eq!(c.volatile_len(), 1);
        let e = c.put(ms(0), 2, 0, Some(Duration::ZERO)).unwrap_err();
        assert!(e.to_string().contains("`ttl`"), "{e}");
    }

    #[test]
    fn active_cycles_repeat_while_a_quarter_expired_and_stop_at_the_bound() {
        let mut c = cache(10_000);
        let mut rng = SimRng::new(7);
        for k in 0..1_000 {
            c.put(ms(0), k, k, Some(Duration::from_millis(10))).unwrap();
        }
        for k in 1_000..1_100 {
            c.put(ms(0), k, k, Some(Duration::from_secs(100))).unwrap();
        }
        // Everything short-lived has expired: each draw finds > 25 % expired, so the cycle
        // runs to its bound of 16 draws of 20.
        let cycle = c.active_expire_cycle(ms(20), &mut rng);
        assert_eq!(cycle.loops, 16);
        assert_eq!(cycle.sampled, 320);
        assert!(cycle.expired.len() > 200, "{}", cycle.expired.len());
        assert!(cycle.expired.iter().all(|e| e.key < 1_000));
        // Enough cycles leave at most about a quarter of the TTL keys expired.
        for _ in 0..30 {
            c.active_expire_cycle(ms(20), &mut rng);
        }
        let held = c.expired_held(ms(20));
        assert!(
            held * 100 <= c.volatile_len() * 40,
            "{held} of {}",
            c.volatile_len()
        );
        // Nothing expired left to find: one draw and done.
        let mut d = cache(100);
        for k in 0..50 {
            d.put(ms(0), k, k, Some(Duration::from_secs(1))).unwrap();
        }
        let cycle = d.active_expire_cycle(ms(1), &mut rng);
        assert_eq!(
            (cycle.loops, cycle.sampled, cycle.expired.len()),
            (1, 20, 0)
        );
    }

    #[test]
    fn bad_parameters_name_their_field() {
        for (expiry, field) in [
            (
                ActiveExpiry {
                    keys_per_loop: 0,
                    ..ActiveExpiry::default()
                },
                "keysPerLoop",
            ),
            (
                ActiveExpiry {
                    stale_percent: 101,
                    ..ActiveExpiry::default()
                },
                "stalePercent",
            ),
            (
                ActiveExpiry {
                    max_loops: 0,
                    ..ActiveExpiry::default()
                },
                "maxLoops",
            ),
        ] {
            let e = TtlCache::<u8, u8>::new(1, expiry).unwrap_err();
            assert!(e.to_string().contains(&format!("`{field}`")), "{e}");
        }
        let e = TtlCache::<u8, u8>::new(0, ActiveExpiry::default()).unwrap_err();
        assert!(e.to_string().contains("`capacity`"));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Advance(u8),
        Get(u8),
        Peek(u8),
        Put(u8, u8, Option<u8>),
        Remove(u8),
        Cycle,
    }

    proptest! {
        /// Against a map of (value, expiry, last use): reads agree, capacity evicts the
        /// least recent, and a cycle deletes only keys the model says had expired.
        #[test]
        fn ttl_matches_a_model_with_expiry_times(
            cap in 1usize..8,
            seed in any::<u64>(),
            ops in proptest::collection::vec(prop_oneof![
                2 => (1u8..30).prop_map(Op::Advance),
                3 => (0u8..12).prop_map(Op::Get),
                1 => (0u8..12).prop_map(Op::Peek),
                3 => (0u8..12, any::<u8>(), proptest::option::of(1u8..60))
                    .prop_map(|(k, v, t)| Op::Put(k, v, t)),
                1 => (0u8..12).prop_map(Op::Remove),
                1 => Just(Op::Cycle),
            ], 1..300),
        ) {
            let mut c = TtlCache::new(cap, ActiveExpiry { keys_per_loop: 3, ..ActiveExpiry::default() }).unwrap();
            let mut rng = SimRng::new(seed);
            let mut m: std::collections::BTreeMap<u8, (u8, Option<u64>, u64)> = Default::default();
            let (mut now, mut clock) = (0u64, 0u64);
            let live = |e: &(u8, Option<u64>, u64), now: u64| e.1.is_none_or(|t| now < t);
            for op in ops {
                clock += 1;
                let t = Time::from_millis(now);
                match op {
                    Op::Advance(d) => now += u64::from(d),
                    Op::Get(k) => {
                        let want = match m.get_mut(&k) {
                            Some(e) if live(e, now) => { e.2 = clock; Some(e.0) }
                            Some(_) => { m.remove(&k); None }
                            None => None,
                        };
                        prop_assert_eq!(c.get(t, &k).copied(), want);
                    }
                    Op::Peek(k) => {
                        let want = m.get(&k).filter(|e| live(e, now)).map(|e| e.0);
                        prop_assert_eq!(c.peek(t, &k).copied(), want);
                    }
                    Op::Remove(k) => prop_assert_eq!(c.remove(&k), m.remove(&k).map(|e| e.0)),
                    Op::Put(k, v, ttl) => {
                        let mut want = Vec::new();
                        if let Some(e) = m.get(&k) {
                            let cause = if live(e, now) { EvictionCause::Replaced } else { EvictionCause::Expired };
                            want.push((k, e.0, cause));
                        } else if m.len() >= cap {
                            let (&vk, &(vv, _, _)) = m.iter().min_by_key(|(_, e)| e.2).unwrap();
                            m.remove(&vk);
                            want.push((vk, vv, EvictionCause::Capacity));
                        }
                        m.insert(k, (v, ttl.map(|d| now + u64::from(d)), clock));
                        let got: Vec<_> = c
                            .put(t, k, v, ttl.map(|d| Duration::from_millis(d.into())))
                            .unwrap()
                            .into_iter()
                            .map(|e| (e.key, e.value, e.cause))
                            .collect();
                        prop_assert_eq!(got, want);
                    }
                    Op::Cycle => {
                        for e in c.active_expire_cycle(t, &mut rng).expired {
                            let held = m.remove(&e.key);
                            prop_assert!(held.is_some_and(|h| !live(&h, now) && h.0 == e.value));
                        }
                    }
                }
                prop_assert_eq!(c.len(), m.len());
                let expired = m.values().filter(|e| !live(e, now)).count();
                prop_assert_eq!(c.expired_held(Time::from_millis(now)), expired);
                prop_assert_eq!(c.volatile_len(), m.values().filter(|e| e.1.is_some()).count());
            }
        }
    }
}
