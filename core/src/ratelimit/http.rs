//! A [`RateLimitDecision`] as the HTTP response a server would send: status `429 Too Many
//! Requests` when denied (RFC 6585 §4), the `RateLimit-Limit`, `RateLimit-Remaining` and
//! `RateLimit-Reset` fields of the IETF httpapi draft (draft-ietf-httpapi-ratelimit-headers-06
//! §§3–5, the last revision with these three separate fields), their legacy `X-RateLimit-*`
//! twins, and `Retry-After` (RFC 9110 §10.2.3) on a denial.
//!
//! Every value is a non-negative integer, as the draft and RFC 9110's `delta-seconds`
//! require, so the decision's real numbers are rounded, each in the direction that keeps a
//! client that trusts them out of trouble:
//! - `Limit` and `Remaining` are rounded **down**: a client never believes it has more
//!   quota than it has (2.7 tokens left admit two unit requests, not three).
//! - `Reset` and `Retry-After` are seconds rounded **up**: a client that waits that long is
//!   sure to find the quota reset, or its request admitted (a wait of 0.2 s becomes 1;
//!   rounding it down to 0 would invite an immediate retry that is bound to fail). A wait
//!   of exactly zero stays 0.
//!
//! `X-RateLimit-Reset` is delta-seconds too unless the caller supplies the current Unix time,
//! in which case it is the Unix time of the reset (GitHub's convention); the core has no
//! clock of its own.

use serde::{Deserialize, Serialize};

use crate::ratelimit::RateLimitDecision;
use crate::time::Duration;

/// Status of an admitted request.
pub const STATUS_OK: u16 = 200;
/// Status of a denied one: 429 Too Many Requests.
pub const STATUS_TOO_MANY_REQUESTS: u16 = 429;

/// A decision as an HTTP status and header fields, in the order a server would send them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct HttpRateLimit {
    pub status: u16,
    /// `[name, value]` pairs.
    pub headers: Vec<(String, String)>,
}

impl HttpRateLimit {
    /// The value of the header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Whole seconds, rounded up.
pub fn seconds_rounded_up(d: Duration) -> u64 {
    d.0.div_ceil(1_000_000)
}

/// A non-negative quantity rounded down to a whole number (NaN and negatives give 0).
fn whole(x: f64) -> u64 {
    if x.is_nan() || x <= 0.0 {
        0
    } else {
        // A saturating cast: limits are at most 10^15.
        libm::floor(x) as u64
    }
}

/// The response for `decision`, with `X-RateLimit-Reset` as delta-seconds.
pub fn render(decision: &RateLimitDecision) -> HttpRateLimit {
    render_with_clock(decision, None)
}

/// The response for `decision`; with `now_unix_secs`, `X-RateLimit-Reset` is the Unix
/// time of the reset instead of delta-seconds.
pub fn render_with_clock(
    decision: &RateLimitDecision,
    now_unix_secs: Option<u64>,
) -> HttpRateLimit {
    let limit = whole(decision.limit).to_string();
    let remaining = whole(decision.remaining).to_string();
    let reset = seconds_rounded_up(decision.reset_after);
    let legacy_reset = now_unix_secs.map_or(reset, |now| now.saturating_add(reset));
    let mut headers = vec![
        ("RateLimit-Limit".to_string(), limit.clone()),
        ("RateLimit-Remaining".to_string(), remaining.clone()),
        ("RateLimit-Reset".to_string(), reset.to_string()),
        ("X-RateLimit-Limit".to_string(), limit),
        ("X-RateLimit-Remaining".to_string(), remaining),
        ("X-RateLimit-Reset".to_string(), legacy_reset.to_string()),
    ];
    if !decision.allowed {
        headers.push((
            "Retry-After".to_string(),
            seconds_rounded_up(decision.retry_after).to_string(),
        ));
    }
    HttpRateLimit {
        status: if decision.allowed {
            STATUS_OK
        } else {
            STATUS_TOO_MANY_REQUESTS
        },
        headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decision(allowed: bool, remaining: f64, retry_us: u64, reset_us: u64) -> RateLimitDecision {
        RateLimitDecision {
            allowed,
            limit: 10.0,
            remaining,
            retry_after: Duration(retry_us),
            reset_after: Duration(reset_us),
        }
    }

    #[test]
    fn admitted_requests_get_200_and_the_quota() {
        let h = render(&decision(true, 7.9, 0, 1_200_000));
        assert_eq!(h.status, 200);
        assert_eq!(h.header("ratelimit-limit"), Some("10"));
        assert_eq!(h.header("RateLimit-Remaining"), Some("7"));
        assert_eq!(h.header("RateLimit-Reset"), Some("2"));
        assert_eq!(h.header("X-RateLimit-Remaining"), Some("7"));
        assert_eq!(h.header("Retry-After"), None);
    }

    #[test]
    fn denied_requests_get_429_and_a_wait_rounded_up() {
        let h = render(&decision(false, 0.4, 200_000, 3_000_000));
        assert_eq!(h.status, 429);
        assert_eq!(h.header("Retry-After"), Some("1"));
        assert_eq!(h.header("RateLimit-Remaining"), Some("0"));
        assert_eq!(h.header("RateLimit-Reset"), Some("3"));
        let h = render_with_clock(
            &decision(false, 0.0, 2_000_001, 3_000_000),
            Some(1_700_000_000),
        );
        assert_eq!(h.header("Retry-After"), Some("3"));
        assert_eq!(h.header("X-RateLimit-Reset"), Some("1700000003"));
        assert_eq!(h.header("RateLimit-Reset"), Some("3"));
    }

    #[test]
    fn fractional_and_odd_limits_round_down() {
        let mut d = decision(true, 0.5, 0, 0);
        d.limit = 2.5;
        let h = render(&d);
        assert_eq!(h.header("RateLimit-Limit"), Some("2"));
        assert_eq!(h.header("RateLimit-Remaining"), Some("0"));
        assert_eq!(h.header("RateLimit-Reset"), Some("0"));
        d.remaining = f64::NAN;
        assert_eq!(render(&d).header("RateLimit-Remaining"), Some("0"));
    }

    proptest! {
        /// A client that waits the advertised seconds has waited at least the decision's
        /// wait, and by less than a second more; it never sees more quota than there is.
        #[test]
        fn rounding_is_safe_and_tight(allowed: bool, remaining in 0.0f64..1e15, retry in 0u64..u64::MAX / 2, reset: u64) {
            let d = RateLimitDecision { allowed, limit: 1e15, remaining, retry_after: Duration(retry), reset_after: Duration(reset) };
            let h = render(&d);
            let secs = |name: &str| h.header(name).unwrap().parse::<u64>().unwrap();
            prop_assert!(secs("RateLimit-Remaining") as f64 <= remaining);
            prop_assert!(secs("RateLimit-Remaining") as f64 > remaining - 1.0);
            let reset_s = secs("RateLimit-Reset") as u128 * 1_000_000;
            prop_assert!(reset_s >= reset as u128 && reset_s < reset as u128 + 1_000_000);
            if !allowed {
                let retry_s = secs("Retry-After") as u128 * 1_000_000;
                prop_assert!(retry_s >= retry as u128 && retry_s < retry as u128 + 1_000_000);
                prop_assert_eq!(h.status, 429);
            } else {
                prop_assert_eq!(h.status, 200);
            }
        }
    }
}
