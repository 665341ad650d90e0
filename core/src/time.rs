//! Virtual time. Everything in the core that depends on time takes it as an input, in whole
//! microseconds, so that a run is the same on every machine and in every browser.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::{Add, AddAssign, Sub};

use crate::error::{DistlabError, Result};

/// A point in (simulated or caller-supplied) time, in microseconds since an arbitrary epoch.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct Time(pub u64);

/// A span of time in microseconds.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct Duration(pub u64);

/// The largest span accepted from callers: about 31 years. Anything larger is almost
/// certainly a unit mistake, and keeping below it leaves room for sums without overflow.
pub const MAX_DURATION: Duration = Duration(1_000_000_000_000_000);

impl Time {
    pub const ZERO: Time = Time(0);
    pub const MAX: Time = Time(u64::MAX);

    pub const fn from_micros(us: u64) -> Self {
        Time(us)
    }
    pub const fn from_millis(ms: u64) -> Self {
        Time(ms.saturating_mul(1_000))
    }
    pub const fn as_micros(self) -> u64 {
        self.0
    }
    pub fn as_millis_f64(self) -> f64 {
        self.0 as f64 / 1_000.0
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1_000_000.0
    }
    /// Time elapsed since `earlier`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Time) -> Duration {
        Duration(self.0.saturating_sub(earlier.0))
    }
    pub fn saturating_add(self, d: Duration) -> Time {
        Time(self.0.saturating_add(d.0))
    }
    /// Converts a caller-supplied number of milliseconds (possibly fractional) to a time,
    /// rejecting NaN, negative and absurd values.
    pub fn try_from_millis_f64(field: &str, ms: f64) -> Result<Time> {
        Ok(Time(millis_to_micros(field, ms)?))
    }
}

impl Duration {
    pub const ZERO: Duration = Duration(0);

    pub const fn from_micros(us: u64) -> Self {
        Duration(us)
    }
    pub const fn from_millis(ms: u64) -> Self {
        Duration(ms.saturating_mul(1_000))
    }
    pub const fn from_secs(s: u64) -> Self {
        Duration(s.saturating_mul(1_000_000))
    }
    pub const fn as_micros(self) -> u64 {
        self.0
    }
    pub fn as_millis_f64(self) -> f64 {
        self.0 as f64 / 1_000.0
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1_000_000.0
    }
    /// Converts a caller-supplied number of milliseconds to a duration, rejecting NaN,
    /// negative and absurd values.
    pub fn try_from_millis_f64(field: &str, ms: f64) -> Result<Duration> {
        Ok(Duration(millis_to_micros(field, ms)?))
    }
    /// Converts seconds to a duration, rejecting NaN, negative and absurd values.
    pub fn try_from_secs_f64(field: &str, s: f64) -> Result<Duration> {
        millis_to_micros(field, s * 1_000.0).map(Duration)
    }
    /// Rejects spans above [`MAX_DURATION`].
    pub fn check(self, field: &str) -> Result<Duration> {
        if self > MAX_DURATION {
            return Err(DistlabError::field(
                field,
                format!(
                    "{} µs is longer than the maximum {} µs",
                    self.0, MAX_DURATION.0
                ),
            ));
        }
        Ok(self)
    }
}

fn millis_to_micros(field: &str, ms: f64) -> Result<u64> {
    if !ms.is_finite() || ms < 0.0 {
        return Err(DistlabError::field(
            field,
            format!("must be a finite, non-negative number of milliseconds, got {ms}"),
        ));
    }
    let us = libm::round(ms * 1_000.0);
    if us > MAX_DURATION.0 as f64 {
        return Err(DistlabError::field(
            field,
            format!(
                "{ms} ms is longer than the maximum {} ms",
                MAX_DURATION.0 / 1_000
            ),
        ));
    }
    Ok(us as u64)
}

impl Add<Duration> for Time {
    type Output = Time;
    fn add(self, d: Duration) -> Time {
        self.saturating_add(d)
    }
}

impl AddAssign<Duration> for Time {
    fn add_assign(&mut self, d: Duration) {
        *self = self.saturating_add(d);
    }
}

impl Sub<Time> for Time {
    type Output = Duration;
    fn sub(self, earlier: Time) -> Duration {
        self.saturating_since(earlier)
    }
}

impl Add for Duration {
    type Output = Duration;
    fn add(self, o: Duration) -> Duration {
        Duration(self.0.saturating_add(o.0))
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3} ms", self.as_millis_f64())
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3} ms", self.as_millis_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_conversion_rejects_bad_numbers() {
        assert_eq!(
            Duration::try_from_millis_f64("d", 1.5).unwrap(),
            Duration(1_500)
        );
        for bad in [f64::NAN, f64::INFINITY, -1.0, 1e30] {
            let err = Duration::try_from_millis_f64("d", bad).unwrap_err();
            assert!(err.to_string().contains("`d`"), "{err}");
        }
    }

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(Time::MAX + Duration(5), Time::MAX);
        assert_eq!(Time(3) - Time(5), Duration::ZERO);
    }
}
