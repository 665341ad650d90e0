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
    // Rounded to nearest, 10^9 / rate can fall short of the true interval, and every share
    // computed from it would then admit a little beyond the rate: step up to the next f64
    // when it did. `fma` forms `t · rate − 10^9` with one rounding, so its sign is exact.
    let t = 1e9 / rate_per_sec;
    Ok(if libm::fma(t, rate_per_sec, -1e9) < 0.0 {
        t.next_up()
    } else {
        t
    })
}

/// `⌈cost · interval_ns⌉` as whole nanoseconds: a request's share of the schedule, rounded
/// up from the exact product (a floating-point product could round down across an
/// integer), so that rounding can only ever deny, never admit.
#[inline]
pub(crate) fn cost_ns(cost: f64, interval_ns: f64) -> u128 {
    ceil_product(cost, interval_ns)
}

/// `⌈a · b⌉` of the exact product of two finite non-negative `f64`s, computed on their
/// binary mantissas (below 2^53 each, so the product fits a `u128`); saturates at
/// `u128::MAX`. NaN and non-positive inputs give 0.
pub(crate) fn ceil_product(a: f64, b: f64) -> u128 {
    if a.is_nan() || b.is_nan() || a <= 0.0 || b <= 0.0 {
        return 0;
    }
    let (ma, ea) = binary_parts(a);
    let (mb, eb) = binary_parts(b);
    let product = u128::from(ma) * u128::from(mb);
    let exponent = ea + eb;
    if exponent >= 0 {
        let shift = exponent.unsigned_abs();
        if shift >= 128 || product.leading_zeros() < shift {
            return u128::MAX;
        }
        product << shift
    } else {
        let shift = exponent.unsigned_abs();
        if shift >= 128 {
            return 1;
        }
        let floor = product >> shift;
        floor + u128::from(floor << shift != product)
    }
}

/// A finite positive `x` as `mantissa · 2^exponent` exactly, with the mantissa odd (the
/// smallest numbers giving the same value).
pub(crate) fn binary_parts(x: f64) -> (u64, i32) {
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1u64 << 52) - 1);
    let (mantissa, exponent) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1u64 << 52), biased - 1075)
    };
    let zeros = mantissa.trailing_zeros().min(63);
    (mantissa >> zeros, exponent + zeros as i32)
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

    /// The emission interval is never below 10^9 / rate exactly, and a share never below
    /// cost · interval exactly: in f64, 3 · (10^9 / 3) rounds to exactly 10^9, and a
    /// product can round down across an integer, each admitting beyond the rate.
    #[test]
    fn intervals_and_shares_round_towards_denying() {
        for rate in [
            3.0,
            7.0,
            1e-3,
            0.3,
            303_945_205_612_544.0,
            6.02e14,
            999.999_999_999_9,
        ] {
            let t = emission_interval_ns("r", rate, "b", 1e-6).unwrap();
            // Exactly: t · rate >= 10^9, and the next f64 down is below.
            assert!(libm::fma(t, rate, -1e9) >= 0.0, "{rate}");
            assert!(libm::fma(t.next_down(), rate, -1e9) < 0.0, "{rate}");
        }
        // 10^9 / 3 rounds down to 333333333.33333331; the interval is the f64 above.
        let t = emission_interval_ns("r", 3.0, "b", 1.0).unwrap();
        assert_eq!(t, (1e9_f64 / 3.0).next_up());
        assert_eq!(cost_ns(3.0, t), 1_000_000_001);
        // 0.1 · 3 = 0.30000000000000004 in binary; 3 · 0.1 in f64 happens to round to it,
        // but 10^17 · 0.1 rounds down to 10^16 exactly while the product is above it.
        assert_eq!(cost_ns(1e17, 0.1), 10_000_000_000_000_001);
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
        assert_eq!(ceil_product(0.5, 3.0), 2);
        assert_eq!(ceil_product(1e15, 1e9), 1_000_000_000_000_000_000_000_000);
        assert_eq!(ceil_product(f64::MAX, f64::MAX), u128::MAX);
        assert_eq!(ceil_product(5e-324, 1.0), 1);
        assert_eq!(ceil_product(0.0, 1.0), 0);
        assert_eq!(as_tokens(to_units(3.0), to_units(3.0), 3.0), 3.0);
    }
}
