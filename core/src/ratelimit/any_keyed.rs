//! A keyed limiter whose algorithm is chosen by configuration at run time, for callers that
//! cannot name a Rust type (the npm package's `KeyedLimiter` class). JSON:
//! `{"algorithm": "gcra", "config": {"burst": 10, "ratePerSec": 5}}`. Everything else is
//! [`KeyedLimiter`]'s; this only dispatches.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::hash::Hash;

use crate::error::Result;
use crate::ratelimit::RateLimitDecision;
use crate::ratelimit::fixed_window::{FixedWindowConfig, FixedWindowRule};
use crate::ratelimit::gcra::{GcraConfig, GcraRule};
use crate::ratelimit::keyed::{EvictionStats, KeyedLimiter, KeyedMemory};
use crate::ratelimit::leaky_bucket::{LeakyBucketConfig, LeakyBucketRule};
use crate::ratelimit::sliding_counter::{SlidingCounterConfig, SlidingCounterRule};
use crate::ratelimit::sliding_log::{SlidingLogConfig, SlidingLogRule};
use crate::ratelimit::token_bucket::{TokenBucketConfig, TokenBucketRule};
use crate::sim::workload::within;
use crate::time::Time;

/// An algorithm and its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "algorithm", content = "config", rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum AlgorithmConfig {
    FixedWindow(FixedWindowConfig),
    SlidingLog(SlidingLogConfig),
    SlidingCounter(SlidingCounterConfig),
    TokenBucket(TokenBucketConfig),
    Gcra(GcraConfig),
    LeakyBucket(LeakyBucketConfig),
}

/// A [`KeyedLimiter`] of the algorithm an [`AlgorithmConfig`] names.
#[derive(Debug, Clone)]
pub enum AnyKeyedLimiter<K = String> {
    FixedWindow(KeyedLimiter<FixedWindowRule, K>),
    SlidingLog(KeyedLimiter<SlidingLogRule, K>),
    SlidingCounter(KeyedLimiter<SlidingCounterRule, K>),
    TokenBucket(KeyedLimiter<TokenBucketRule, K>),
    Gcra(KeyedLimiter<GcraRule, K>),
    LeakyBucket(KeyedLimiter<LeakyBucketRule, K>),
}

macro_rules! each {
    ($self:expr, $k:ident => $body:expr) => {
        match $self {
            AnyKeyedLimiter::FixedWindow($k) => $body,
            AnyKeyedLimiter::SlidingLog($k) => $body,
            AnyKeyedLimiter::SlidingCounter($k) => $body,
            AnyKeyedLimiter::TokenBucket($k) => $body,
            AnyKeyedLimiter::Gcra($k) => $body,
            AnyKeyedLimiter::LeakyBucket($k) => $body,
        }
    };
}

impl<K: Hash + Eq + Clone> AnyKeyedLimiter<K> {
    /// Errors name `config.<field>` or `maxKeys`.
    pub fn new(config: &AlgorithmConfig, max_keys: u64) -> Result<Self> {
        let c = |e| within("config", e);
        Ok(match *config {
            AlgorithmConfig::FixedWindow(f) => AnyKeyedLimiter::FixedWindow(KeyedLimiter::new(
                FixedWindowRule::new(f).map_err(c)?,
                max_keys,
            )?),
            AlgorithmConfig::SlidingLog(f) => AnyKeyedLimiter::SlidingLog(KeyedLimiter::new(
                SlidingLogRule::new(f).map_err(c)?,
                max_keys,
            )?),
            AlgorithmConfig::SlidingCounter(f) => AnyKeyedLimiter::SlidingCounter(
                KeyedLimiter::new(SlidingCounterRule::new(f).map_err(c)?, max_keys)?,
            ),
            AlgorithmConfig::TokenBucket(f) => AnyKeyedLimiter::TokenBucket(KeyedLimiter::new(
                TokenBucketRule::new(f).map_err(c)?,
                max_keys,
            )?),
            AlgorithmConfig::Gcra(f) => {
                AnyKeyedLimiter::Gcra(KeyedLimiter::new(GcraRule::new(f).map_err(c)?, max_keys)?)
            }
            AlgorithmConfig::LeakyBucket(f) => AnyKeyedLimiter::LeakyBucket(KeyedLimiter::new(
                LeakyBucketRule::new(f).map_err(c)?,
                max_keys,
            )?),
        })
    }

    pub fn try_acquire(&mut self, key: K, now: Time, cost: f64) -> Result<RateLimitDecision> {
        each!(self, k => k.try_acquire(key, now, cost))
    }

    pub fn peek(&self, key: &K, now: Time, cost: f64) -> Result<RateLimitDecision> {
        each!(self, k => k.peek(key, now, cost))
    }

    pub fn sweep_idle(&mut self, now: Time, max: usize) -> usize {
        each!(self, k => k.sweep_idle(now, max))
    }

    pub fn len(&self) -> usize {
        each!(self, k => k.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn memory(&self) -> KeyedMemory {
        each!(self, k => k.memory())
    }

    pub fn evictions(&self) -> EvictionStats {
        each!(self, k => k.evictions())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_every_algorithm_from_json_and_names_bad_fields() {
        for (json, limit) in [
            (
                r#"{"algorithm": "fixedWindow", "config": {"limit": 2, "windowMs": 1000}}"#,
                2.0,
            ),
            (
                r#"{"algorithm": "slidingLog", "config": {"limit": 2, "windowMs": 1000}}"#,
                2.0,
            ),
            (
                r#"{"algorithm": "slidingCounter", "config": {"limit": 2, "windowMs": 1000}}"#,
                2.0,
            ),
            (
                r#"{"algorithm": "tokenBucket", "config": {"capacity": 2, "refillPerSec": 1}}"#,
                2.0,
            ),
            (
                r#"{"algorithm": "gcra", "config": {"burst": 2, "ratePerSec": 1}}"#,
                2.0,
            ),
            (
                r#"{"algorithm": "leakyBucket", "config": {"queueSize": 2, "drainPerSec": 1}}"#,
                2.0,
            ),
        ] {
            let config: AlgorithmConfig = serde_json::from_str(json).unwrap();
            let mut k = AnyKeyedLimiter::new(&config, 10).unwrap();
            assert!(
                k.try_acquire("a".to_string(), Time(0), 2.0)
                    .unwrap()
                    .allowed
            );
            let d = k.try_acquire("a".to_string(), Time(0), 1.0).unwrap();
            assert!(!d.allowed, "{json}");
            assert_eq!(d.limit, limit);
            assert!(
                k.try_acquire("b".to_string(), Time(0), 1.0)
                    .unwrap()
                    .allowed
            );
            assert_eq!(k.len(), 2);
            assert_eq!(k.memory().keys, 2);
        }
        let config: AlgorithmConfig = serde_json::from_str(
            r#"{"algorithm": "gcra", "config": {"burst": 0, "ratePerSec": 1}}"#,
        )
        .unwrap();
        let e = AnyKeyedLimiter::<String>::new(&config, 10).unwrap_err();
        assert!(e.to_string().contains("`config.burst`"), "{e}");
        let config: AlgorithmConfig = serde_json::from_str(
            r#"{"algorithm": "gcra", "config": {"burst": 1, "ratePerSec": 1}}"#,
        )
        .unwrap();
        let e = AnyKeyedLimiter::<String>::new(&config, 0).unwrap_err();
        assert!(e.to_string().contains("`maxKeys`"), "{e}");
    }
}
