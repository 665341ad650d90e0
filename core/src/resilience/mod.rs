//! Resilience primitives: what a client wraps around a call to a dependency that may be
//! slow, failing or down. Each is a sans-I/O state machine: the caller says when a call
//! starts and how it ended, passes the time (`now`) and, where a choice is random, a
//! seeded [`crate::rng::SimRng`]; the primitive answers with a decision value.
//!
//! - [`circuit_breaker`]: stop calling a dependency whose recent calls fail or are slow,
//!   probe it after a while (Resilience4j's `CircuitBreaker`).
//! - [`retry`]: try again after an exponential backoff with jitter (Brooker, "Exponential
//!   Backoff and Jitter", AWS 2015), within a retry budget (gRPC retry throttling).
//! - [`timeout`]: per-attempt and overall deadlines, propagated across hops with a margin
//!   (gRPC deadlines), cancelling the work they cut short.
//! - [`bulkhead`]: at most so many calls at once, a bounded FIFO queue with a maximum
//!   wait, fail fast when both are full (Resilience4j's `Bulkhead`, Nygard's pattern).
//! - [`hedging`]: send the call again when an attempt is slow, first success wins (gRPC's
//!   hedging policy; Dean & Barroso's p95 delay).
//! - [`fallback`]: a ranked chain of sources (personalised → popular → static default),
//!   each with its own timeout; reports which level answered (Polly's fallback).
//! - [`health`]: startup, liveness and readiness checks with timeouts and thresholds,
//!   aggregated to healthy / degraded / unhealthy (Kubernetes probes, ASP.NET Core).
//! - [`load_shedding`]: an adaptive concurrency limit (Netflix's AIMD and Gradient2)
//!   that sheds the least important requests first (the SRE book's criticality).
//! - [`policy`]: the above composed into one pipeline in a chosen order (Polly v8's
//!   `ResiliencePipeline`); order matters (retry outside or inside the breaker).
//! - [`mesh`]: clients → gateway → services on the simulator, any pipeline on any edge,
//!   faults that make a service slow, failing or down.
//!
//! Each has a lab beside it (`lab` in its folder) that drives it with a workload against
//! a dependency whose health an action changes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub mod bulkhead;
pub mod circuit_breaker;
pub mod dependency;
pub mod fallback;
pub mod health;
pub mod hedging;
pub mod load_shedding;
pub mod mesh;
pub mod policy;
pub mod retry;
pub mod timeout;

/// Why a call failed, as the caller classifies it: a retry policy retries some kinds, a
/// circuit breaker may ignore some (neither success nor failure). The names follow the
/// gRPC status codes a client most often sees from a struggling dependency.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum ErrorKind {
    /// The dependency is down or unreachable (gRPC `UNAVAILABLE`, HTTP 503).
    Unavailable,
    /// The call ran out of time (gRPC `DEADLINE_EXCEEDED`, HTTP 504).
    Timeout,
    /// The dependency shed the call (gRPC `RESOURCE_EXHAUSTED`, HTTP 429).
    Overloaded,
    /// The dependency failed while serving the call (gRPC `INTERNAL`, HTTP 500).
    Internal,
    /// The call itself was wrong: trying again cannot help (gRPC `INVALID_ARGUMENT`, 400).
    InvalidArgument,
    /// What the call named does not exist (gRPC `NOT_FOUND`, HTTP 404).
    NotFound,
    /// The caller gave up on the call (gRPC `CANCELLED`).
    Cancelled,
}

impl ErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::Unavailable,
        ErrorKind::Timeout,
        ErrorKind::Overloaded,
        ErrorKind::Internal,
        ErrorKind::InvalidArgument,
        ErrorKind::NotFound,
        ErrorKind::Cancelled,
    ];

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of [`ErrorKind`]s as a bit mask: checking membership on every call costs one
/// AND, and the set is `Copy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorKinds(u8);

impl ErrorKinds {
    /// The set holding `kinds`.
    pub fn of(kinds: &[ErrorKind]) -> Self {
        ErrorKinds(kinds.iter().fold(0, |m, k| m | k.bit()))
    }

    pub fn contains(self, kind: ErrorKind) -> bool {
        self.0 & kind.bit() != 0
    }

    /// The kinds in the set, in declaration order.
    pub fn to_vec(self) -> Vec<ErrorKind> {
        ErrorKind::ALL
            .into_iter()
            .filter(|k| self.contains(*k))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_kind_set_holds_exactly_its_kinds() {
        let set = ErrorKinds::of(&[ErrorKind::Timeout, ErrorKind::Cancelled]);
        for k in ErrorKind::ALL {
            assert_eq!(
                set.contains(k),
                matches!(k, ErrorKind::Timeout | ErrorKind::Cancelled)
            );
        }
        assert_eq!(set.to_vec(), [ErrorKind::Timeout, ErrorKind::Cancelled]);
        assert_eq!(ErrorKinds::default().to_vec(), []);
    }
}
