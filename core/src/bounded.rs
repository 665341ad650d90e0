//! Bounded values for configs and actions: a probability, milliseconds in a range, a count
//! in a range. Each checks its bounds while it is deserialised, so a config is validated
//! once, where it is read: the error carries the field's path (`config.network.loss: must
//! be between 0 and 1, got 2`) without a hand-written check, and the JSON Schema the page
//! builds its forms from states the same bounds (`minimum` / `maximum`), so the form and
//! the check cannot disagree.
//!
//! The bounds are const generic parameters (`Millis<1, 60000>`), so a field's type says its
//! range. serde's derive does not take const generics, which is why the impls here are
//! written by hand. In TypeScript each is a `number` (see [`TYPESCRIPT`]).

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use crate::error::{DistlabError, Result};

/// TypeScript declarations of the bounded types: tsify names a field by its Rust type's
/// name (dropping literal and `{ BLOCK }` const arguments — write a named bound in braces,
/// `Count<2, { MAX_NODES }>`, or tsify takes the name for a type), and each of these is a
/// plain number in JS. A type alias used in a config field needs its name here too.
pub const TYPESCRIPT: &str = r#"
/** A probability: a finite number from 0 to 1 (the schema states the bounds). */
export type Probability = number;
/** Milliseconds, possibly fractional, within the bounds the schema states. */
export type Millis = number;
/** A whole number within the bounds the schema states. */
export type Count = number;
/** How often a lab samples its metrics, in simulated ms (1 to 60,000). */
export type SampleMs = number;
"#;

fn out_of_range(min: impl fmt::Display, max: impl fmt::Display, got: impl fmt::Display) -> String {
    format!("must be between {min} and {max}, got {got}")
}

/// The error a deserialiser reports for an out-of-range number. It is serde's "invalid
/// value" form, quoting the value the way [`crate::lab::json`] looks for it, so the field
/// is named even inside an internally tagged enum (where serde loses the path).
fn invalid<E: de::Error>(value: f64, min: impl fmt::Display, max: impl fmt::Display) -> E {
    let expected = format!("a number between {min} and {max}");
    let integral = value.fract() == 0.0 && value.abs() < 9.0e15;
    let unexpected = if integral && value >= 0.0 {
        de::Unexpected::Unsigned(value as u64)
    } else if integral {
        de::Unexpected::Signed(value as i64)
    } else {
        de::Unexpected::Float(value)
    };
    E::invalid_value(unexpected, &expected.as_str())
}

fn check_f64(value: f64, min: f64, max: f64) -> std::result::Result<f64, String> {
    if !value.is_finite() {
        return Err(format!("must be a finite number, got {value}"));
    }
    if value < min || value > max {
        return Err(out_of_range(min, max, value));
    }
    Ok(value)
}

/// A probability: finite, from 0 to 1.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Probability(f64);

impl Probability {
    /// Zero: never.
    pub const NEVER: Probability = Probability(0.0);

    /// A value known at compile time to be a probability (for defaults).
    ///
    /// # Panics
    /// When `p` is not in `[0, 1]`: call it with literals only.
    pub const fn of(p: f64) -> Self {
        assert!(p >= 0.0 && p <= 1.0, "Probability::of: out of bounds");
        Probability(p)
    }

    /// `p` clamped into `[0, 1]` (NaN becomes 0), for values computed at run time.
    pub fn saturating(p: f64) -> Self {
        Probability(if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) })
    }

    /// `value` if it is a probability, else an error naming `field`.
    pub fn new(field: &str, value: f64) -> Result<Self> {
        check_f64(value, 0.0, 1.0)
            .map(Probability)
            .map_err(|problem| DistlabError::field(field, problem))
    }

    /// The probability as a number from 0 to 1.
    pub fn get(self) -> f64 {
        self.0
    }
}

/// Milliseconds (possibly fractional), finite, from `MIN` to `MAX`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Millis<const MIN: u32, const MAX: u32>(f64);

impl<const MIN: u32, const MAX: u32> Millis<MIN, MAX> {
    /// `ms` if it lies in the bounds, else an error naming `field`.
    pub fn new(field: &str, ms: f64) -> Result<Self> {
        check_f64(ms, f64::from(MIN), f64::from(MAX))
            .map(Millis)
            .map_err(|problem| DistlabError::field(field, problem))
    }

    /// A value known at compile time to lie in the bounds (for defaults).
    ///
    /// # Panics
    /// In const evaluation (a compile error) or at once when `ms` is out of bounds: call
    /// it with literals only.
    pub const fn of(ms: u32) -> Self {
        assert!(ms >= MIN && ms <= MAX, "Millis::of: out of bounds");
        Millis(ms as f64)
    }

    /// The milliseconds.
    pub fn get(self) -> f64 {
        self.0
    }

    /// The span as a simulated duration (to the nearest microsecond).
    pub fn duration(self) -> crate::time::Duration {
        crate::time::Duration(self.as_micros())
    }

    /// The same span in microseconds, rounded to the nearest.
    pub fn as_micros(self) -> u64 {
        // In bounds (at most u32::MAX ms), so the product is exact in f64 and fits a u64.
        (self.0 * 1_000.0).round() as u64
    }
}

/// A whole number from `MIN` to `MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Count<const MIN: u32, const MAX: u32>(u32);

impl<const MIN: u32, const MAX: u32> Count<MIN, MAX> {
    /// `n` if it lies in the bounds, else an error naming `field`.
    pub fn new(field: &str, n: u32) -> Result<Self> {
        if (MIN..=MAX).contains(&n) {
            Ok(Count(n))
        } else {
            Err(DistlabError::field(field, out_of_range(MIN, MAX, n)))
        }
    }

    /// A value known at compile time to lie in the bounds (for defaults).
    ///
    /// # Panics
    /// When `n` is out of bounds: call it with literals only.
    pub const fn of(n: u32) -> Self {
        assert!(n >= MIN && n <= MAX, "Count::of: out of bounds");
        Count(n)
    }

    /// The number.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Probability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<const MIN: u32, const MAX: u32> fmt::Display for Millis<MIN, MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<const MIN: u32, const MAX: u32> fmt::Display for Count<MIN, MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Probability {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_f64(self.0)
    }
}

impl<'de> Deserialize<'de> for Probability {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        check_f64(v, 0.0, 1.0)
            .map(Probability)
            .map_err(|_| invalid(v, 0, 1))
    }
}

impl JsonSchema for Probability {
    fn schema_name() -> Cow<'static, str> {
        "Probability".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "number", "minimum": 0, "maximum": 1 })
    }
}

impl<const MIN: u32, const MAX: u32> Serialize for Millis<MIN, MAX> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_f64(self.0)
    }
}

impl<'de, const MIN: u32, const MAX: u32> Deserialize<'de> for Millis<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        check_f64(v, f64::from(MIN), f64::from(MAX))
            .map(Millis)
            .map_err(|_| invalid(v, MIN, MAX))
    }
}

impl<const MIN: u32, const MAX: u32> JsonSchema for Millis<MIN, MAX> {
    fn schema_name() -> Cow<'static, str> {
        format!("Millis_{MIN}_{MAX}").into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "number", "minimum": MIN, "maximum": MAX })
    }
}

impl<const MIN: u32, const MAX: u32> Serialize for Count<MIN, MAX> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_u32(self.0)
    }
}

impl<'de, const MIN: u32, const MAX: u32> Deserialize<'de> for Count<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = u32::deserialize(d)?;
        if (MIN..=MAX).contains(&v) {
            Ok(Count(v))
        } else {
            Err(invalid(f64::from(v), MIN, MAX))
        }
    }
}

impl<const MIN: u32, const MAX: u32> JsonSchema for Count<MIN, MAX> {
    fn schema_name() -> Cow<'static, str> {
        format!("Count_{MIN}_{MAX}").into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "integer", "minimum": MIN, "maximum": MAX })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::lab::json::from_value;

    #[derive(Debug, Deserialize, Serialize, JsonSchema)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Example {
        loss: Probability,
        sample_ms: Millis<1, 60000>,
        nodes: Count<3, 51>,
    }

    fn parse(v: serde_json::Value) -> Result<Example> {
        from_value("config", &v)
    }

    #[test]
    fn in_bounds_values_round_trip() {
        let v = json!({"loss": 0.25, "sampleMs": 2.5, "nodes": 51});
        let e = parse(v.clone()).unwrap();
        assert_eq!(e.loss.get(), 0.25);
        assert_eq!(e.sample_ms.get(), 2.5);
        assert_eq!(e.sample_ms.as_micros(), 2_500);
        assert_eq!(e.nodes.get(), 51);
        assert_eq!(serde_json::to_value(&e).unwrap(), v);
    }

    #[test]
    fn out_of_bounds_values_name_their_field() {
        let cases = [
            (
                json!({"loss": 1.5, "sampleMs": 1, "nodes": 3}),
                "config.loss",
                "`1.5`, expected a number between 0 and 1",
            ),
            (
                json!({"loss": 0, "sampleMs": 0.5, "nodes": 3}),
                "config.sampleMs",
                "`0.5`, expected a number between 1 and 60000",
            ),
            (
                json!({"loss": 0, "sampleMs": 1, "nodes": 2}),
                "config.nodes",
                "`2`, expected a number between 3 and 51",
            ),
            (
                json!({"loss": 0, "sampleMs": 1, "nodes": 52}),
                "config.nodes",
                "integer `52`, expected a number between 3 and 51",
            ),
        ];
        for (v, field, problem) in cases {
            let err = parse(v).unwrap_err().to_string();
            assert!(err.contains(field) && err.contains(problem), "{err}");
        }
    }

    /// Inside an internally tagged enum serde loses the path; the error's wording still
    /// lets the field be found.
    #[test]
    fn out_of_bounds_values_inside_a_tagged_enum_name_their_field() {
        #[derive(Debug, Deserialize, Serialize)]
        #[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
        #[allow(dead_code)] // only deserialised
        enum Act {
            SetLoss { probability: Probability },
            Pause { for_ms: Millis<1, 100> },
        }
        for (v, field) in [
            (
                json!({"type": "setLoss", "probability": 2}),
                "action.probability",
            ),
            (
                json!({"type": "setLoss", "probability": -0.5}),
                "action.probability",
            ),
            (json!({"type": "pause", "for_ms": 100.5}), "action.for_ms"),
        ] {
            let err = from_value::<Act>("action", &v).unwrap_err().to_string();
            assert!(err.contains(field), "{err}");
        }
    }

    #[test]
    fn constructors_check_like_deserialisation() {
        assert!(
            Probability::new("p", f64::NAN)
                .unwrap_err()
                .to_string()
                .contains("finite")
        );
        assert!(Probability::new("p", -0.1).is_err());
        assert_eq!(Probability::new("p", 1.0).unwrap().get(), 1.0);
        assert!(Millis::<1, 10>::new("m", 10.5).is_err());
        assert_eq!(Millis::<1, 10>::of(10).get(), 10.0);
        assert!(
            Count::<1, 8>::new("n", 0)
                .unwrap_err()
                .to_string()
                .contains("`n`")
        );
    }

    #[test]
    fn the_schema_states_the_bounds() {
        let schema = serde_json::to_value(schemars::schema_for!(Example)).unwrap();
        let p = &schema["properties"];
        assert_eq!(p["loss"]["minimum"], json!(0));
        assert_eq!(p["loss"]["maximum"], json!(1));
        assert_eq!(p["sampleMs"]["minimum"], json!(1));
        assert_eq!(p["sampleMs"]["maximum"], json!(60000));
        assert_eq!(p["nodes"]["type"], json!("integer"));
        assert_eq!(p["nodes"]["maximum"], json!(51));
    }
}
