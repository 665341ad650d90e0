//! The store's data model: the small subset of Redis the limiter's scripts use, with the
//! same semantics, deterministic, and with key expiry on the store's own simulated clock.
//!
//! Commands (as in the Redis command reference, <https://redis.io/docs/latest/commands/>):
//! `HMGET`, `HSET` on hashes; `ZADD`, `ZCARD`, `ZREMRANGEBYSCORE key -inf max` and
//! `ZRANGE key 0 0 WITHSCORES` on sorted sets; `PEXPIRE` and `PTTL` on any key. Nothing
//! else: the scripts need nothing else.
//!
//! Like Redis, a key past its expiry time is gone for every command (lazy expiry) and a
//! periodic sweep frees it ([`RedisStore::expire_due`], Redis's active expiry cycle);
//! writing to a key keeps its TTL; an aggregate left empty is deleted; a command on a key of
//! the wrong type fails with `WRONGTYPE`. Scores are integers (the scripts score by µs,
//! which a Redis double holds exactly below 2^53).
//!
//! Cost: O(log n) per field or member, with `BTreeMap`s so every iteration order is fixed.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::time::Time;

/// An error reply, as Redis would send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The key holds another type.
    WrongType,
    /// An argument that had to be an integer was not.
    NotAnInteger(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::WrongType => write!(
                f,
                "WRONGTYPE Operation against a key holding the wrong kind of value"
            ),
            StoreError::NotAnInteger(v) => {
                write!(f, "ERR value is not an integer or out of range: {v:?}")
            }
        }
    }
}

/// A sorted set: members by score, ties broken by member, as Redis orders them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SortedSet {
    by_member: BTreeMap<String, i64>,
    by_score: BTreeSet<(i64, String)>,
}

impl SortedSet {
    pub fn len(&self) -> usize {
        self.by_member.len()
    }
    pub fn is_empty(&self) -> bool {
        self.by_member.is_empty()
    }
    /// Members with their scores, lowest score first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, i64)> {
        self.by_score.iter().map(|(s, m)| (m.as_str(), *s))
    }
}

/// What a key holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    Hash(BTreeMap<String, String>),
    SortedSet(SortedSet),
}

impl Value {
    /// The type's name, as Redis's `TYPE` says it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Hash(_) => "hash",
            Value::SortedSet(_) => "zset",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Entry {
    value: Value,
    /// Gone once the clock is past this instant.
    expires_at: Option<Time>,
}

/// Counters of the store, for the view.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreStats {
    pub commands: u64,
    pub expired: u64,
}

/// The keyspace of one store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RedisStore {
    keys: BTreeMap<String, Entry>,
    stats: StoreStats,
}

fn parse_int(s: &str) -> Result<i64, StoreError> {
    s.parse()
        .map_err(|_| StoreError::NotAnInteger(s.to_string()))
}

impl RedisStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn stats(&self) -> StoreStats {
        self.stats
    }

    /// Drops `key` if it has expired by `now` (Redis: expired once now > expiry).
    fn expire_if_due(&mut self, now: Time, key: &str) {
        if self
            .keys
            .get(key)
            .is_some_and(|e| e.expires_at.is_some_and(|at| now > at))
        {
            self.keys.remove(key);
            self.stats.expired += 1;
        }
    }

    fn live(&mut self, now: Time, key: &str) -> Option<&mut Entry> {
        self.stats.commands += 1;
        self.expire_if_due(now, key);
        self.keys.get_mut(key)
    }

    /// Frees every key expired by `now` (the active expiry cycle). Returns how many.
    pub fn expire_due(&mut self, now: Time) -> usize {
        let before = self.keys.len();
        self.keys
            .retain(|_, e| e.expires_at.is_none_or(|at| now <= at));
        let n = before - self.keys.len();
        self.stats.expired += n as u64;
        n
    }

    /// Keys alive at `now`, in order, with their values and expiry (no side effect).
    pub fn live_keys(&self, now: Time) -> impl Iterator<Item = (&str, &Value, Option<Time>)> {
        self.keys
            .iter()
            .filter(move |(_, e)| e.expires_at.is_none_or(|at| now <= at))
            .map(|(k, e)| (k.as_str(), &e.value, e.expires_at))
    }

    /// `HMGET key field...`: each field's value, `None` where missing.
    pub fn hmget(
        &mut self,
        now: Time,
        key: &str,
        fields: &[&str],
    ) -> Result<Vec<Option<String>>, StoreError> {
        match self.live(now, key).map(|e| &e.value) {
            None => Ok(vec![None; fields.len()]),
            Some(Value::Hash(h)) => Ok(fields.iter().map(|f| h.get(*f).cloned()).collect()),
            Some(_) => Err(StoreError::WrongType),
        }
    }

    /// `HSET key field value ...`: sets the fields; returns how many were new. The key's
    /// TTL, if any, stays.
    pub fn hset(
        &mut self,
        now: Time,
        key: &str,
        pairs: &[(&str, String)],
    ) -> Result<u64, StoreError> {
        let entry = match self.live(now, key) {
            Some(e) => e,
            None => self.keys.entry(key.to_string()).or_insert(Entry {
                value: Value::Hash(BTreeMap::new()),
                expires_at: None,
            }),
        };
        let Value::Hash(h) = &mut entry.value else {
            return Err(StoreError::WrongType);
        };
        let mut added = 0;
        for (f, v) in pairs {
            if h.insert((*f).to_string(), v.clone()).is_none() {
                added += 1;
            }
        }
        Ok(added)
    }

    /// `PEXPIRE key ms`: the key expires `ms` after `now`; zero or less deletes it at once.
    /// Returns whether the key existed.
    pub fn pexpire(&mut self, now: Time, key: &str, ms: i64) -> bool {
        let Some(entry) = self.live(now, key) else {
            return false;
        };
        if ms <= 0 {
            self.keys.remove(key);
            return true;
        }
        let us = (ms as u64).saturating_mul(1_000);
        entry.expires_at = Some(now.saturating_add(crate::time::Duration(us)));
        true
    }

    /// `PTTL key`: milliseconds left (rounded as Redis does, to the nearest), -1 without an
    /// expiry, -2 if there is no key.
    pub fn pttl(&mut self, now: Time, key: &str) -> i64 {
        match self.live(now, key) {
            None => -2,
            Some(Entry {
                expires_at: None, ..
            }) => -1,
            Some(Entry {
                expires_at: Some(at),
                ..
            }) => (at.0.saturating_sub(now.0).saturating_add(500) / 1_000) as i64,
        }
    }

    fn zset(&mut self, now: Time, key: &str) -> Result<Option<&mut SortedSet>, StoreError> {
        match self.live(now, key).map(|e| &mut e.value) {
            None => Ok(None),
            Some(Value::SortedSet(z)) => Ok(Some(z)),
            Some(_) => Err(StoreError::WrongType),
        }
    }

    /// `ZADD key score member`: adds the member or moves it to `score`; returns 1 if it was
    /// new. `score` must be an integer.
    pub fn zadd(
        &mut self,
        now: Time,
        key: &str,
        score: &str,
        member: &str,
    ) -> Result<u64, StoreError> {
        let score = parse_int(score)?;
        if self.zset(now, key)?.is_none() {
            self.keys.insert(
                key.to_string(),
                Entry {
                    value: Value::SortedSet(SortedSet::default()),
                    expires_at: None,
                },
            );
        }
        let Some(Entry {
            value: Value::SortedSet(z),
            ..
        }) = self.keys.get_mut(key)
        else {
            return Err(StoreError::WrongType);
        };
        let old = z.by_member.insert(member.to_string(), score);
        if let Some(old) = old {
            z.by_score.remove(&(old, member.to_string()));
        }
        z.by_score.insert((score, member.to_string()));
        Ok(u64::from(old.is_none()))
    }

    /// `ZCARD key`.
    pub fn zcard(&mut self, now: Time, key: &str) -> Result<u64, StoreError> {
        Ok(self.zset(now, key)?.map_or(0, |z| z.len() as u64))
    }

    /// `ZREMRANGEBYSCORE key -inf max`: removes every member scored at most `max`; returns
    /// how many. A set left empty is deleted.
    pub fn zremrangebyscore_upto(
        &mut self,
        now: Time,
        key: &str,
        max: &str,
    ) -> Result<u64, StoreError> {
        let max = parse_int(max)?;
        let Some(z) = self.zset(now, key)? else {
            return Ok(0);
        };
        let mut removed = 0;
        while let Some((score, member)) = z.by_score.first().cloned() {
            if score > max {
                break;
            }
            z.by_score.remove(&(score, member.clone()));
            z.by_member.remove(&member);
            removed += 1;
        }
        if z.is_empty() {
            self.keys.remove(key);
        }
        Ok(removed)
    }

    /// `ZRANGE key 0 0 WITHSCORES`: the lowest-scored member and its score, if any.
    pub fn zrange_first(
        &mut self,
        now: Time,
        key: &str,
    ) -> Result<Option<(String, i64)>, StoreError> {
        Ok(self
            .zset(now, key)?
            .and_then(|z| z.by_score.first().map(|(s, m)| (m.clone(), *s))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(ms: u64) -> Time {
        Time::from_millis(ms)
    }

    #[test]
    fn hashes_keep_their_ttl_and_expire_after_it() {
        let mut s = RedisStore::new();
        assert_eq!(s.hmget(t(0), "k", &["a", "b"]).unwrap(), vec![None, None]);
        assert_eq!(s.hset(t(0), "k", &[("a", "1".into())]).unwrap(), 1);
        assert!(s.pexpire(t(0), "k", 100));
        assert_eq!(
            s.hset(t(50), "k", &[("a", "2".into()), ("b", "3".into())])
                .unwrap(),
            1
        );
        assert_eq!(s.pttl(t(50), "k"), 50);
        assert_eq!(
            s.hmget(t(100), "k", &["a", "b"]).unwrap(),
            vec![Some("2".into()), Some("3".into())]
        );
        // Redis: expired once the clock is past the expiry, not at it.
        assert_eq!(s.hmget(Time(100_001), "k", &["a"]).unwrap(), vec![None]);
        assert_eq!(s.pttl(t(200), "k"), -2);
        assert_eq!(s.stats().expired, 1);
        assert!(!s.pexpire(t(200), "k", 10));
    }

    #[test]
    fn pexpire_zero_deletes_and_pttl_without_expiry_is_minus_one() {
        let mut s = RedisStore::new();
        s.hset(t(0), "k", &[("a", "1".into())]).unwrap();
        assert_eq!(s.pttl(t(0), "k"), -1);
        assert!(s.pexpire(t(0), "k", 0));
        assert_eq!(s.pttl(t(0), "k"), -2);
    }

    #[test]
    fn wrong_types_and_bad_scores_are_errors_that_change_nothing() {
        let mut s = RedisStore::new();
        s.hset(t(0), "h", &[("a", "1".into())]).unwrap();
        assert_eq!(s.zadd(t(0), "h", "1", "m"), Err(StoreError::WrongType));
        assert_eq!(s.zcard(t(0), "h"), Err(StoreError::WrongType));
        s.zadd(t(0), "z", "1", "m").unwrap();
        assert_eq!(
            s.hset(t(0), "z", &[("a", "1".into())]),
            Err(StoreError::WrongType)
        );
        assert!(matches!(
            s.zadd(t(0), "z", "1.5", "n"),
            Err(StoreError::NotAnInteger(_))
        ));
        assert_eq!(s.zcard(t(0), "z").unwrap(), 1);
        assert!(StoreError::WrongType.to_string().starts_with("WRONGTYPE"));
    }

    #[test]
    fn sorted_sets_order_by_score_then_member_and_vanish_when_empty() {
        let mut s = RedisStore::new();
        assert_eq!(s.zadd(t(0), "z", "5", "b").unwrap(), 1);
        assert_eq!(s.zadd(t(0), "z", "5", "a").unwrap(), 1);
        assert_eq!(s.zadd(t(0), "z", "9", "c").unwrap(), 1);
        assert_eq!(s.zadd(t(0), "z", "1", "c").unwrap(), 0);
        assert_eq!(s.zrange_first(t(0), "z").unwrap(), Some(("c".into(), 1)));
        assert_eq!(s.zremrangebyscore_upto(t(0), "z", "1").unwrap(), 1);
        assert_eq!(s.zrange_first(t(0), "z").unwrap(), Some(("a".into(), 5)));
        assert_eq!(s.zcard(t(0), "z").unwrap(), 2);
        assert_eq!(s.zremrangebyscore_upto(t(0), "z", "-3").unwrap(), 0);
        assert_eq!(s.zremrangebyscore_upto(t(0), "z", "5").unwrap(), 2);
        assert_eq!(s.pttl(t(0), "z"), -2);
    }

    #[test]
    fn the_active_cycle_frees_exactly_the_expired_keys() {
        let mut s = RedisStore::new();
        for (i, ttl) in [10, 20, 30].into_iter().enumerate() {
            let k = format!("k{i}");
            s.hset(t(0), &k, &[("a", "1".into())]).unwrap();
            s.pexpire(t(0), &k, ttl);
        }
        s.hset(t(0), "forever", &[("a", "1".into())]).unwrap();
        assert_eq!(s.live_keys(t(21)).count(), 2);
        assert_eq!(s.expire_due(t(21)), 2);
        assert_eq!(s.live_keys(t(1_000)).count(), 1);
    }

    proptest! {
        /// A sorted set matches a model: a map from member to score, read sorted.
        #[test]
        fn sorted_set_matches_a_map(ops in proptest::collection::vec((0u8..3, 0u8..6, -5i64..20), 0..80)) {
            let mut s = RedisStore::new();
            let mut model: BTreeMap<String, i64> = BTreeMap::new();
            for (op, m, score) in ops {
                let member = format!("m{m}");
                match op {
                    0 => {
                        let added = s.zadd(t(0), "z", &score.to_string(), &member).unwrap();
                        prop_assert_eq!(added, u64::from(model.insert(member, score).is_none()));
                    }
                    1 => {
                        let removed = s.zremrangebyscore_upto(t(0), "z", &score.to_string()).unwrap();
                        let before = model.len();
                        model.retain(|_, v| *v > score);
                        prop_assert_eq!(removed, (before - model.len()) as u64);
                    }
                    _ => {
                        let first = model.iter().map(|(m, s)| (*s, m.clone())).min();
                        prop_assert_eq!(
                            s.zrange_first(t(0), "z").unwrap(),
                            first.map(|(s, m)| (m, s))
                        );
                    }
                }
                prop_assert_eq!(s.zcard(t(0), "z").unwrap(), model.len() as u64);
            }
        }
    }
}
