//! Arithmetic and checks the local limiters share: allowances counted as integer units (a
//! billionth of a token, as in [`crate::ratelimit::token_bucket`]), the validation of
//! limits, windows, rates and costs, and the "time going backwards" rule.
//!
//! Time going backwards, for every limiter in this module's family: a call stamped
//! earlier than the latest time a limiter has seen never finds more allowance than the
//! latest time would give. Window-based limiters (fixed window, sliding log, sliding
//! counter) and the token bucket evaluate such a call at their clock, the latest time seen;
//! the theoretical-arrival-time limiters (GCRA, the shaping leaky bucket) evaluate it at its
//! own time, which for them is never more permissive (the theoretical arrival time only
//! moves forward, so an earlier `now` finds it further ahead). Waits are always reported
//! relative to the caller's own `now`.

use crate::error::{DistlabError, Result, check_positive, check_range};
use crate::ratelimit::token_bucket::{MAX_TOKENS, MIN_CAPACITY, UNITS_PER_TOKEN, to_units};
use crate::time::{Duration, MAX_DURATION, Time};

/// The latest time a limiter decides at: two [`MAX_DURATION`]s (63 years) short of the end
/// of `Time`, so that the limiter's clock plus any wait it reports still fits. Nearer the
/// end a wait would saturate, and a denial could carry a wait of 0 (`Retry-After: 0`).
pub const MAX_DECISION_TIME: Time = Time(u64::MAX - 2 * MAX_DURATION.0);

/// Refuses a decision time after [`MAX_DECISION_TIME`], naming `now`.
#[inline]
pub(crate) fn check_now(now: Time) -> Result<()> {
    if now > MAX_DECISION_TIME {
        return Err(DistlabError::field(
            "now",
            format!(
                "must be at most {} µs, so that every wait fits in a time, got {}",
                MAX_DECISION_TIME.0, now.0
            ),
        ));
    }
    Ok(())
}

/// Checks a limit (a capacity, a count per window, a queue size) in
/// `[MIN_CAPACITY, MAX_TOKENS]` and returns it in units (rounded up).
pub(crate) fn limit_units(field: &str, limit: f64) -> Result<u128> {
    check_positive(field, limit)?;
    check_range(field, limit, MIN_CAPACITY, MAX_TOKENS)?;
    Ok(to_units(limit))
}

/// Checks a window length in milliseconds: at least a microsecond, at most
/// [`MAX_DURATION`].
pub(crate) fn window(field: &str, ms: f64) -> Result<Duration> {
    let d = Duration::try_from_millis_f64(field, ms)?;
    if d.0 == 0 {
        return Err(DistlabError::field(
            field,
            format!("must be at least 0.001 ms (one microsecond), got {ms}"),
        ));
    }
    Ok(d)
}

/// Checks a cost: finite, positive and at most `limit` (a larger request could never be
/// admitted, so asking is an error rather than a denial). Returns it in units, rounded up
/// by the same rounding as the limit so that a cost equal to the limit stays admissible.
pub(crate) fn cost_units(cost: f64, limit: f64, what: &str) -> Result<u128> {
    check_positive("cost", cost)?;
    if cost > limit {
        return Err(DistlabError::field(
            "cost",
            format!("{cost} exceeds the {what} {limit}: it could never be admitted"),
        ));
    }
    Ok(to_units(cost))
}

/// Units as tokens; at or above `limit_units` it is exactly `limit`, so a full allowance
/// reports the configured figure and never more.
pub(crate) fn as_tokens(units: u128, limit_units: u128, limit: f64) -> f64 {
    if units >= limit_units {
        return limit;
    }
    (units as f64 / UNITS_PER_TOKEN).min(limit)
}

/// The time a request of one token occupies at `rate_per_sec`, in nanoseconds: the
/// emission interval of GCRA and the drain time of the leaky bucket. Checks the rate and
/// that `limit` tokens take at most [`MAX_DURATION`] to drain, so every wait fits.
pub(crate) fn emission_interval_ns(
    rate_field: &str,
    rate_per_sec: f64,
    limit_field: &str,
    limit: f64,
) -> Result<f64> {
    check_positive(rate_field, rate_per_sec)?;
    check_range(rate_field, rate_per_sec, 0.0, MAX_TOKENS)?;
    let drain_us = limit / rate_per_sec * 1e6;
    if drain_us > MAX_DURATION.0 as f64 {
        return Err(DistlabError::field(
            rate_field,
            format!(
                "{rate_per_sec}/s would take {} s to drain a {limit_field} of {limit}, longer \
                 than the maximum {} s",
                drain_us / 1e6,
                MAX_DURATION.0 / 1_000_000
            ),
        ));
    }
    Ok(1e9 / rate_per_sec)
}

/// `ceil(cost · interval_ns)` as whole nanoseconds: a request's share of the schedule,
/// rounded up so that rounding can only ever deny, never admit. Callers pass a validated
/// cost and interval, so the product is below 10^19 and the cast exact enough.
#[inline]
pub(crate) fn cost_ns(cost: f64, interval_ns: f64) -> u128 {
    libm::ceil(cost * interval_ns) as u128
}

/// Nanoseconds to whole microseconds, rounded up: a wait reported as microseconds must be
/// long enough.
#[inline]
pub(crate) fn ns_to_us_ceil(ns: u128) -> u64 {
    // A 128-bit division is a library call; nearly every value fits 64 bits, where dividing
    // by a constant is a multiplication.
    match u64::try_from(ns) {
        Ok(small) => small.div_ceil(1_000),
        Err(_) => u64::try_from(ns.div_ceil(1_000)).unwrap_or(u64::MAX),
    }
}

/// A `u128` as the nearest `f64`, by way of `u64` when it fits (the common, cheap case).
#[inline]
pub(crate) fn u128_as_f64(x: u128) -> f64 {
    match u64::try_from(x) {
        Ok(small) => small as f64,
        Err(_) => x as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_name_the_field() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e16, 1e-7] {
            let e = limit_units("limit", bad).unwrap_err();
            assert!(e.to_string().contains("`limit`"), "{bad}: {e}");
        }
        for bad in [0.0, -1.0, f64::NAN, 1e300, 0.0004] {
            let e = window("windowMs", bad).unwrap_err();
            assert!(e.to_string().contains("`windowMs`"), "{bad}: {e}");
        }
        assert_eq!(window("windowMs", 0.001).unwrap(), Duration(1));
        for bad in [0.0, -1.0, f64::NAN, 11.0] {
            let e = cost_units(bad, 10.0, "limit").unwrap_err();
            assert!(e.to_string().contains("`cost`"), "{bad}: {e}");
        }
        for (rate, limit) in [(0.0, 1.0), (f64::NAN, 1.0), (1e-9, 1e15), (1e16, 1.0)] {
            let e = emission_interval_ns("ratePerSec", rate, "burst", limit).unwrap_err();
            assert!(e.to_string().contains("`ratePerSec`"), "{rate}: {e}");
        }
    }

    #[test]
    fn rounding_is_upward_where_it_must_be() {
        assert_eq!(ns_to_us_ceil(1), 1);
        assert_eq!(ns_to_us_ceil(1_000), 1);
        assert_eq!(ns_to_us_ceil(1_001), 2);
        assert_eq!(ns_to_us_ceil(u128::MAX), u64::MAX);
        assert_eq!(
            ns_to_us_ceil(u64::MAX as u128 + 1_000),
            u64::MAX / 1_000 + 2
        );
        assert_eq!(u128_as_f64(3), 3.0);
        assert_eq!(u128_as_f64(1 << 100), libm::pow(2.0, 100.0));
        assert_eq!(cost_ns(1.0, 333_333_333.333), 333_333_334);
        assert_eq!(as_tokens(to_units(3.0), to_units(3.0), 3.0), 3.0);
    }
}
