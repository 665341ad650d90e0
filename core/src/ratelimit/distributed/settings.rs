//! What the gateways are told: the global limit (as script arguments), the mode (ask the
//! store for every request, or spend leased batches), and what to do when the store does
//! not answer in time (fail open or fail closed).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{DistlabError, Result};
use crate::ratelimit::distributed::scripts::{
    MAX_TOKENS, MAX_WINDOW_LIMIT, MAX_WINDOW_US, MICRO, ScriptCall, SlidingWindowArgs,
    TokenBucketArgs,
};
use crate::time::{Duration, Time};

/// The largest capacity (or window limit) the lab takes: the over-admission check looks at
/// windows of up to [`crate::ratelimit::distributed::envelope::WINDOW_ADMISSIONS`]
/// admissions, which must be able to hold the limit, the leases and an excess.
pub const MAX_LAB_LIMIT: u64 = 500;

/// The one limit every gateway enforces together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum GlobalLimit {
    /// `token_bucket.lua`: bursts of up to `capacity`, `refillPerSec` on average.
    TokenBucket { capacity: u64, refill_per_sec: u64 },
    /// `sliding_window.lua`: at most `limit` requests in any window of `windowMs`.
    SlidingWindow { limit: u64, window_ms: u64 },
}

impl Default for GlobalLimit {
    fn default() -> Self {
        GlobalLimit::TokenBucket {
            capacity: 20,
            refill_per_sec: 10,
        }
    }
}

impl GlobalLimit {
    /// Checks the values, naming the field under `field`.
    pub fn validate(&self, field: &str) -> Result<()> {
        let check = |name: &str, v: u64, max: u64| {
            if (1..=max).contains(&v) {
                Ok(())
            } else {
                Err(DistlabError::field(
                    format!("{field}.{name}"),
                    format!("must be between 1 and {max}, got {v}"),
                ))
            }
        };
        match *self {
            GlobalLimit::TokenBucket {
                capacity,
                refill_per_sec,
            } => {
                check("capacity", capacity, MAX_LAB_LIMIT)?;
                check("refillPerSec", refill_per_sec, MAX_TOKENS)
            }
            GlobalLimit::SlidingWindow { limit, window_ms } => {
                check("limit", limit, MAX_LAB_LIMIT.min(MAX_WINDOW_LIMIT))?;
                check("windowMs", window_ms, MAX_WINDOW_US / 1_000)
            }
        }
    }

    /// The most that may be admitted in a closed window of `d`, in micro-requests: a
    /// bucket's `capacity + rate · d`; a log's `limit` per started window.
    pub fn bound_micro(&self, d: Duration) -> i128 {
        match *self {
            GlobalLimit::TokenBucket {
                capacity,
                refill_per_sec,
            } => {
                i128::from(capacity) * i128::from(MICRO)
                    + i128::from(refill_per_sec) * i128::from(d.0)
            }
            GlobalLimit::SlidingWindow { limit, window_ms } => {
                let windows = (d.0 / window_ms.saturating_mul(1_000).max(1)).saturating_add(1);
                i128::from(limit)
                    .saturating_mul(i128::from(windows))
                    .saturating_mul(i128::from(MICRO))
            }
        }
    }

    /// The script call asking for `wanted` (a lease when `partial`) on `key` at `now`, for
    /// request `request` (the sliding window's member).
    pub fn call(
        &self,
        key: &str,
        now: Time,
        wanted: u64,
        partial: bool,
        request: u64,
    ) -> ScriptCall {
        match *self {
            GlobalLimit::TokenBucket {
                capacity,
                refill_per_sec,
            } => ScriptCall::TokenBucket {
                key: key.to_string(),
                args: TokenBucketArgs {
                    capacity,
                    rate_per_sec: refill_per_sec,
                    now_us: now.0,
                    wanted: wanted.clamp(1, capacity.max(1)),
                    partial,
                },
            },
            GlobalLimit::SlidingWindow { limit, window_ms } => ScriptCall::SlidingWindow {
                key: key.to_string(),
                args: SlidingWindowArgs {
                    limit,
                    window_us: window_ms.saturating_mul(1_000),
                    now_us: now.0,
                    request: format!("r{request}"),
                },
            },
        }
    }

    /// Whether gateways can lease batches of it (only tokens can be handed out ahead).
    pub fn leasable(&self) -> bool {
        matches!(self, GlobalLimit::TokenBucket { .. })
    }
}

/// Where a gateway gets its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum LimiterMode {
    /// Every request runs the script on the store: exact, one round trip each.
    Central,
    /// Gateways take batches of tokens from the store and spend them locally: one round
    /// trip per batch, approximate by at most the tokens held.
    Leasing,
}

/// What a gateway does with a request when the store does not answer in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum FailurePolicy {
    /// Admit: availability first, the limit is not enforced while the store is away.
    FailOpen,
    /// Refuse: the limit first, nothing passes while the store is away.
    FailClosed,
}

/// Everything a gateway is configured with; kept on its disk so a restart keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySettings {
    pub limit: GlobalLimit,
    pub mode: LimiterMode,
    pub policy: FailurePolicy,
    /// How long a gateway waits for the store.
    pub timeout: Duration,
    /// Tokens asked for per lease.
    pub lease_batch: u64,
    /// How long leased tokens may be spent; the rest is dropped.
    pub lease_ttl: Duration,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            limit: GlobalLimit::default(),
            mode: LimiterMode::Central,
            policy: FailurePolicy::FailOpen,
            timeout: Duration::from_millis(50),
            lease_batch: 5,
            lease_ttl: Duration::from_secs(1),
        }
    }
}

impl GatewaySettings {
    /// The mode in force: leasing falls back to central for a limit that cannot be leased.
    pub fn effective_mode(&self) -> LimiterMode {
        match self.mode {
            LimiterMode::Leasing if self.limit.leasable() => LimiterMode::Leasing,
            _ => LimiterMode::Central,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_the_envelopes_of_each_algorithm() {
        let tb = GlobalLimit::TokenBucket {
            capacity: 5,
            refill_per_sec: 2,
        };
        assert_eq!(tb.bound_micro(Duration::ZERO), 5_000_000);
        assert_eq!(tb.bound_micro(Duration::from_millis(1_500)), 8_000_000);
        let sw = GlobalLimit::SlidingWindow {
            limit: 3,
            window_ms: 100,
        };
        assert_eq!(sw.bound_micro(Duration::from_millis(99)), 3_000_000);
        assert_eq!(sw.bound_micro(Duration::from_millis(100)), 6_000_000);
        // Absurd values (never valid in a lab) give a number, not a panic.
        let huge = GlobalLimit::SlidingWindow {
            limit: u64::MAX,
            window_ms: 0,
        };
        assert!(huge.bound_micro(Duration(u64::MAX)) > 0);
        assert!(
            GlobalLimit::TokenBucket {
                capacity: 0,
                refill_per_sec: 1
            }
            .validate("limit")
            .unwrap_err()
            .to_string()
            .contains("limit.capacity")
        );
    }
}
