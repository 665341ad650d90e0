//! Failure detectors (catalog id `coordination.failure-detector`): how a process decides,
//! from the heartbeats a peer sends it, that the peer has failed.
//!
//! - [`FixedTimeout`]: the classic binary detector — suspect a peer once it has been
//!   silent for longer than a fixed timeout. Simple, and wrong in both directions as the
//!   network's delays change: too short a timeout suspects live peers during a jitter
//!   burst or a GC pause, too long a one detects crashes late.
//! - [`PhiAccrual`]: the φ accrual detector of Hayashibara, Défago, Yared and Katayama,
//!   "The φ Accrual Failure Detector" (SRDS 2004). Instead of a verdict it outputs a
//!   suspicion level φ that grows with the silence, on a scale learnt from the
//!   heartbeats' past inter-arrival times; the application picks a threshold, trading
//!   detection time against wrong suspicions. See [`phi_accrual`] for the formula this
//!   module follows (Akka's and Apache Pekko's normal approximation, not Cassandra's
//!   exponential one).
//!
//! Both are sans-I/O: every call takes `now`, in the monitoring process's own clock.
//! [`lab`] runs them over the simulated network.

pub mod lab;
pub mod node;
pub mod phi_accrual;

pub use phi_accrual::{HeartbeatHistory, PhiAccrual, PhiAccrualConfig, phi};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bounded::Millis;
use crate::error::Result;
use crate::time::{Duration, Time};

/// The longest timeout or pause a detector accepts, in milliseconds: one hour.
pub const MAX_DETECTOR_MS: u32 = 3_600_000;

/// Configuration of a [`FixedTimeout`] detector: `{"timeoutMs": 1000}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct FixedTimeoutConfig {
    /// Silence after which the peer is suspected.
    pub timeout_ms: Millis<1, { MAX_DETECTOR_MS }>,
}

impl Default for FixedTimeoutConfig {
    fn default() -> Self {
        FixedTimeoutConfig {
            timeout_ms: Millis::of(1_000),
        }
    }
}

/// Suspects a peer silent for longer than a fixed timeout. A peer never heard from is
/// not suspected (nothing is known of it yet), as [`PhiAccrual`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FixedTimeout {
    timeout: Duration,
    last: Option<Time>,
}

impl FixedTimeout {
    pub fn new(config: FixedTimeoutConfig) -> Result<Self> {
        Ok(FixedTimeout {
            timeout: config.timeout_ms.duration(),
            last: None,
        })
    }

    /// A heartbeat arrived at `now`.
    pub fn heartbeat(&mut self, now: Time) {
        self.last = Some(now);
    }

    /// How long the peer has been silent at `now` (zero if never heard from, or if the
    /// clock stepped back past the last heartbeat).
    pub fn silence(&self, now: Time) -> Duration {
        self.last
            .map_or(Duration::ZERO, |l| now.saturating_since(l))
    }

    /// Whether the peer is trusted at `now`: silent for at most the timeout.
    pub fn is_available(&self, now: Time) -> bool {
        self.silence(now) <= self.timeout
    }

    /// Whether a heartbeat has ever arrived.
    pub fn is_monitoring(&self) -> bool {
        self.last.is_some()
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// When the last heartbeat arrived.
    pub fn last_heartbeat(&self) -> Option<Time> {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_timeout_suspects_silence_longer_than_the_timeout() {
        let config = FixedTimeoutConfig {
            timeout_ms: Millis::of(300),
        };
        let mut d = FixedTimeout::new(config).unwrap();
        assert!(d.is_available(Time::from_millis(10_000)) && !d.is_monitoring());
        d.heartbeat(Time::from_millis(1_000));
        assert!(d.is_available(Time::from_millis(1_300)));
        assert!(!d.is_available(Time::from_millis(1_301)));
        assert_eq!(
            d.silence(Time::from_millis(1_301)),
            Duration::from_millis(301)
        );
        // A clock stepped back reads as no silence at all.
        assert!(d.is_available(Time::from_millis(500)));
        d.heartbeat(Time::from_millis(1_301));
        assert!(d.is_available(Time::from_millis(1_400)));
    }
}
