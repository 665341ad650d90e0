//! Rate limiters: local primitives that decide, given the time and the cost of a request,
//! whether it may proceed now and, if not, how long to wait.
//!
//! Every limiter answers with the same [`RateLimitDecision`], so that a driver (a lab, a
//! benchmark, the HTTP-header rendering the page shows) treats them all alike; [`lab`] runs
//! them on a workload for the page.

use serde::{Deserialize, Serialize};

use crate::time::Duration;

pub mod any_keyed;
pub mod compare_lab;
pub mod distributed;
pub mod fixed_window;
pub mod gcra;
pub mod http;
pub mod keyed;
pub mod lane;
pub mod leaky_bucket;
pub mod rule;
pub mod sliding_counter;
pub mod sliding_log;
pub(crate) mod slot_index;
pub mod token_bucket;
pub mod units;

pub use token_bucket::{TokenBucket, TokenBucketConfig};

/// What a rate limiter decided about one request.
///
/// The fields map onto the IETF `RateLimit` header fields (limit, remaining, reset) and
/// `Retry-After`, which is why they are phrased as relative durations rather than instants:
/// a client can act on them without knowing the limiter's clock.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct RateLimitDecision {
    /// Whether the request was admitted (and its cost charged).
    pub allowed: bool,
    /// The most the limiter ever admits at once (a token bucket's capacity).
    pub limit: f64,
    /// What is left after this decision: a denied request leaves it unchanged.
    pub remaining: f64,
    /// Zero if admitted; otherwise the shortest wait after which the same request would be
    /// admitted, provided nothing else is admitted in between.
    #[cfg_attr(feature = "tsify", tsify(type = "Duration"))]
    pub retry_after: Duration,
    /// How long until the limiter is back to its full allowance if nothing is admitted.
    #[cfg_attr(feature = "tsify", tsify(type = "Duration"))]
    pub reset_after: Duration,
}
