//! A [`RateLimitDecision`] as the HTTP response a server would send: status `429 Too Many
//! Requests` when denied (RFC 6585 §4), the rate-limit header fields, and `Retry-After`
//! (RFC 9110 §10.2.3) on a denial.
//!
//! The fields follow the latest IETF draft, **draft-ietf-httpapi-ratelimit-headers-11**
//! (23 May 2026), which defines two Structured Fields (RFC 9651), each a List of Items
//! whose bare item is the policy's name as an sf-string:
//! - `RateLimit-Policy: "default";q=10;w=2` (§3): the quota `q` (a non-negative Integer,
//!   in requests, the default quota unit) per time window `w` (a non-zero Integer of
//!   seconds). The policy is what never changes between responses.
//! - `RateLimit: "default";r=7;t=2` (§4): the available quota `r` (a non-negative Integer)
//!   and the effective window `t` (seconds within which the client can use no more than
//!   `r`).
//!
//! The forms of earlier drafts stay, because clients read them today: `RateLimit-Limit`,
//! `RateLimit-Remaining` and `RateLimit-Reset` (draft-06 §§3–5, the last revision with
//! three separate fields) and their `X-RateLimit-*` twins. `RateLimit-Limit` is the
//! policy's `q`.
//!
//! Every value is a non-negative integer (and an sf-integer has at most 15 digits, so
//! values are capped at 999 999 999 999 999), so the decision's real numbers are rounded,
//! each in the direction that keeps a client that trusts them out of trouble:
//! - `r` / `Remaining` are rounded **down**: a client never believes it has more quota
//!   than it has (2.7 tokens left admit two unit requests, not three).
//! - `t`, `Reset` and `Retry-After` are seconds rounded **up**: a client that waits that
//!   long is sure to find the quota reset, or its request admitted (a wait of 0.2 s becomes
//!   1; rounding it down to 0 would invite an immediate retry that is bound to fail). A
//!   wait of exactly zero stays 0. On a denial `t` is the `Retry-After` value, as §6 asks
//!   (`Retry-After` must not point earlier than the end of the effective window).
//! - The policy never promises more than the limiter's long-run rate: `q` is the limit
//!   rounded down and `w` the window rounded up, so `q / w` is at most the true rate. A
//!   limit below one (half a request per second) cannot be rounded down to a quota of 0,
//!   which would say no request is ever admitted: it is stated per a longer window instead,
//!   one request per the time the limiter takes to grant a whole one (`q=1;w=2` for
//!   0.5/s). Without a window (a decision rendered alone) such a limit reads `q=1`.
//!
//! `X-RateLimit-Reset` is delta-seconds too unless the caller supplies the current Unix time,
//! in which case it is the Unix time of the reset (GitHub's convention); the core has no
//! clock of its own.

use serde::{Deserialize, Serialize};

use crate::ratelimit::RateLimitDecision;
use crate::ratelimit::lane::Envelope;
use crate::time::Duration;

/// Status of an admitted request.
pub const STATUS_OK: u16 = 200;
/// Status of a denied one: 429 Too Many Requests.
pub const STATUS_TOO_MANY_REQUESTS: u16 = 429;
/// The largest sf-integer (RFC 9651 §3.3.1: at most 15 digits).
pub const MAX_SF_INTEGER: u64 = 999_999_999_999_999;
/// The policy name used when the caller names none.
pub const DEFAULT_POLICY: &str = "default";

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

/// A quota policy as the draft's `RateLimit-Policy` states it: a name, the limit, and the
/// window in which the whole limit is granted again.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaPolicy {
    /// The policy's identifier (printable ASCII; anything else is dropped when rendered).
    pub name: String,
    /// The most admitted at once: a decision's `limit`.
    pub limit: f64,
    /// How long the limiter takes to grant the whole limit again from empty (a window's
    /// length; a bucket's capacity over its rate); `None` if unknown.
    pub window: Option<Duration>,
}

impl QuotaPolicy {
    /// The policy a limiter with this admission envelope enforces: `burst` per
    /// `burst / rate` seconds.
    pub fn from_envelope(name: &str, envelope: &Envelope) -> QuotaPolicy {
        let secs = envelope.burst / envelope.rate_per_sec;
        QuotaPolicy {
            name: name.to_string(),
            limit: envelope.burst,
            window: (secs.is_finite() && secs > 0.0)
                // A saturating cast, rounded up: the window is never understated.
                .then(|| Duration(libm::ceil(secs * 1e6) as u64)),
        }
    }

    /// `q` and `w` (seconds, if known): never more than the limiter's long-run rate, and
    /// never a quota of 0 for a positive limit.
    pub fn quota_and_window(&self) -> (u64, Option<u64>) {
        let whole_secs = |d: Duration| seconds_rounded_up(d).clamp(1, MAX_SF_INTEGER);
        // NaN and anything not positive: no quota.
        if self.limit.is_nan() || self.limit <= 0.0 {
            return (0, self.window.map(whole_secs));
        }
        if self.limit >= 1.0 {
            return (whole(self.limit), self.window.map(whole_secs));
        }
        // One whole unit per the time the limiter takes to grant one: window / limit.
        let per_unit = self
            .window
            .map(|w| Duration(libm::ceil(w.0 as f64 / self.limit) as u64));
        (1, per_unit.map(whole_secs))
    }
}

/// Whole seconds, rounded up.
pub fn seconds_rounded_up(d: Duration) -> u64 {
    d.0.div_ceil(1_000_000)
}

/// A non-negative quantity rounded down to a whole number (NaN and negatives give 0), at
/// most [`MAX_SF_INTEGER`].
fn whole(x: f64) -> u64 {
    if x.is_nan() || x <= 0.0 {
        0
    } else {
        // A saturating cast: limits are at most 10^15.
        (libm::floor(x) as u64).min(MAX_SF_INTEGER)
    }
}

/// `s` as an sf-string: quoted, with `"` and `\` escaped and anything but printable ASCII
/// dropped (RFC 9651 §4.1.6).
fn sf_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars().filter(|c| (' '..='~').contains(c)) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The response for `decision`, with `X-RateLimit-Reset` as delta-seconds.
pub fn render(decision: &RateLimitDecision) -> HttpRateLimit {
    render_with_clock(decision, None)
}

/// The response for `decision` under a policy named `default` whose window is unknown;
/// with `now_unix_secs`, `X-RateLimit-Reset` is the Unix time of the reset instead of
/// delta-seconds.
pub fn render_with_clock(
    decision: &RateLimitDecision,
    now_unix_secs: Option<u64>,
) -> HttpRateLimit {
    render_with_window(decision, None, now_unix_secs)
}

/// The response for `decision` under a policy named `default` that grants its whole
/// limit (`decision.limit`) again in `window` (a window's length; a token bucket's
/// capacity over its rate), if known: `RateLimit-Policy` then carries `w`, and a limit
/// below 1 is stated per a longer window (0.5 per second: `q=1;w=2`) rather than as a
/// quota of 1 with no window. With `now_unix_secs`, `X-RateLimit-Reset` is a Unix time.
pub fn render_with_window(
    decision: &RateLimitDecision,
    window: Option<Duration>,
    now_unix_secs: Option<u64>,
) -> HttpRateLimit {
    let policy = QuotaPolicy {
        name: DEFAULT_POLICY.to_string(),
        limit: decision.limit,
        window,
    };
    render_with_policy(decision, &policy, now_unix_secs)
}

/// The response for `decision` under `policy`; with `now_unix_secs`, `X-RateLimit-Reset`
/// is the Unix time of the reset instead of delta-seconds.
pub fn render_with_policy(
    decision: &RateLimitDecision,
    policy: &QuotaPolicy,
    now_unix_secs: Option<u64>,
) -> HttpRateLimit {
    let (quota, window) = policy.quota_and_window();
    let limit = quota.to_string();
    let remaining = whole(decision.remaining).to_string();
    let reset = seconds_rounded_up(decision.reset_after).min(MAX_SF_INTEGER);
    let retry = seconds_rounded_up(decision.retry_after).min(MAX_SF_INTEGER);
    let effective = if decision.allowed { reset } else { retry };
    let name = sf_string(&policy.name);
    let policy_field = match window {
        Some(w) => format!("{name};q={quota};w={w}"),
        None => format!("{name};q={quota}"),
    };
    let legacy_reset = now_unix_secs.map_or(reset, |now| now.saturating_add(reset));
    let mut headers = vec![
        ("RateLimit-Policy".to_string(), policy_field),
        (
            "RateLimit".to_string(),
            format!("{name};r={remaining};t={effective}"),
        ),
        ("RateLimit-Limit".to_string(), limit.clone()),
        ("RateLimit-Remaining".to_string(), remaining.clone()),
        ("RateLimit-Reset".to_string(), reset.to_string()),
        ("X-RateLimit-Limit".to_string(), limit),
        ("X-RateLimit-Remaining".to_string(), remaining),
        ("X-RateLimit-Reset".to_string(), legacy_reset.to_string()),
    ];
    if !decision.allowed {
        headers.push(("Retry-After".to_string(), retry.to_string()));
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

    /// For the policy-rate law: `q / w` never above `limit / window`.
    fn rate_ok(policy: &QuotaPolicy) -> bool {
        match (policy.quota_and_window(), policy.window) {
            ((q, Some(w)), Some(window)) => {
                q as f64 / w as f64 <= policy.limit / (window.0 as f64 / 1e6) * (1.0 + 1e-12)
            }
            _ => true,
        }
    }

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
        assert_eq!(h.header("RateLimit-Policy"), Some(r#""default";q=10"#));
        assert_eq!(h.header("RateLimit"), Some(r#""default";r=7;t=2"#));
    }

    /// draft-ietf-httpapi-ratelimit-headers-11's two structured fields, with a window.
    #[test]
    fn the_latest_draft_s_fields_name_the_policy_and_its_window() {
        let policy = QuotaPolicy::from_envelope(
            "per-user",
            &Envelope {
                burst: 100.0,
                rate_per_sec: 100.0 / 60.0,
            },
        );
        let h = render_with_policy(&decision(true, 41.5, 0, 35_000_000), &policy, None);
        assert_eq!(
            h.header("RateLimit-Policy"),
            Some(r#""per-user";q=100;w=60"#)
        );
        assert_eq!(h.header("RateLimit"), Some(r#""per-user";r=41;t=35"#));
        assert_eq!(h.header("RateLimit-Limit"), Some("100"));
        // A denial's effective window is its Retry-After (§6: Retry-After never points
        // earlier than the end of the effective window).
        let h = render_with_policy(&decision(false, 0.2, 1_500_000, 59_000_000), &policy, None);
        assert_eq!(h.header("RateLimit"), Some(r#""per-user";r=0;t=2"#));
        assert_eq!(h.header("Retry-After"), Some("2"));
        // Names are sf-strings.
        let odd = QuotaPolicy {
            name: "a\"b\\c\u{e9}".into(),
            limit: 1.0,
            window: None,
        };
        let h = render_with_policy(&decision(true, 1.0, 0, 0), &odd, None);
        assert_eq!(h.header("RateLimit-Policy"), Some(r#""a\"b\\c";q=1"#));
    }

    /// Issue 13: half a request per second read `RateLimit-Limit: 0`, "never".
    #[test]
    fn a_fractional_limit_is_never_a_quota_of_zero() {
        let half_per_sec = QuotaPolicy::from_envelope(
            "default",
            &Envelope {
                burst: 0.5,
                rate_per_sec: 0.5,
            },
        );
        let mut d = decision(true, 0.5, 0, 0);
        d.limit = 0.5;
        let h = render_with_policy(&d, &half_per_sec, None);
        assert_eq!(h.header("RateLimit-Policy"), Some(r#""default";q=1;w=2"#));
        assert_eq!(h.header("RateLimit-Limit"), Some("1"));
        assert_eq!(h.header("X-RateLimit-Limit"), Some("1"));
        assert_eq!(h.header("RateLimit"), Some(r#""default";r=0;t=0"#));
        // Without a window it still is not 0.
        assert_eq!(render(&d).header("RateLimit-Limit"), Some("1"));
        // 2.5 per 0.3 s: q rounded down, w up; 0.3 per 7 s: one per 24 s (23.33 up).
        let p = |burst: f64, window_secs: f64| {
            QuotaPolicy::from_envelope(
                "p",
                &Envelope {
                    burst,
                    rate_per_sec: burst / window_secs,
                },
            )
            .quota_and_window()
        };
        assert_eq!(p(2.5, 0.3), (2, Some(1)));
        assert_eq!(p(0.3, 7.0), (1, Some(24)));
        assert_eq!(p(1e15, 1e3), (MAX_SF_INTEGER, Some(1_000)));
    }

    /// The npm API's `rateLimitHeaders(decision, now, windowMs)`: the default policy with
    /// the window given, a fractional limit stated per a longer window.
    #[test]
    fn a_known_window_is_named_in_the_default_policy() {
        let d = decision(true, 4.0, 0, 6_000_000);
        let h = render_with_window(&d, Some(Duration(60_000_000)), None);
        assert_eq!(h.header("RateLimit-Policy"), Some(r#""default";q=10;w=60"#));
        assert_eq!(h, {
            let policy = QuotaPolicy {
                name: DEFAULT_POLICY.into(),
                limit: 10.0,
                window: Some(Duration(60_000_000)),
            };
            render_with_policy(&d, &policy, None)
        });
        assert_eq!(
            render_with_window(&d, None, Some(100)),
            render_with_clock(&d, Some(100))
        );
        let mut half = decision(true, 0.5, 0, 0);
        half.limit = 0.5;
        let h = render_with_window(&half, Some(Duration(1_000_000)), None);
        assert_eq!(h.header("RateLimit-Policy"), Some(r#""default";q=1;w=2"#));
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
        fn rounding_is_safe_and_tight(allowed: bool, remaining in 0.0f64..999_999_999_999_999.0, retry in 0u64..u64::MAX / 2, reset: u64) {
            let d = RateLimitDecision { allowed, limit: 1e15, remaining, retry_after: Duration(retry), reset_after: Duration(reset) };
            let h = render(&d);
            let secs = |name: &str| h.header(name).unwrap().parse::<u64>().unwrap();
            prop_assert!(secs("RateLimit-Remaining") as f64 <= remaining);
            let sf: Vec<u64> = h.header("RateLimit").unwrap().split(';').skip(1)
                .map(|kv| kv[2..].parse().unwrap()).collect();
            prop_assert!(sf[0] == secs("RateLimit-Remaining").min(MAX_SF_INTEGER));
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

        /// The policy never promises more than the limiter's rate, nor a quota of 0.
        #[test]
        fn the_policy_never_promises_more_than_the_rate(limit in 1e-6f64..1e15, window_us in 1u64..1_000_000_000_000) {
            let policy = QuotaPolicy { name: "p".into(), limit, window: Some(Duration(window_us)) };
            prop_assert!(rate_ok(&policy), "{:?} -> {:?}", policy, policy.quota_and_window());
            let (q, w) = policy.quota_and_window();
            prop_assert!(q >= 1 && w.unwrap() >= 1);
            prop_assert!(q as f64 <= limit.max(1.0));
        }
    }
}
