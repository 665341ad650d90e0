//! The crate's one error type. Every public constructor validates its input and reports
//! the offending field together with what is wrong with it, so that the wasm layer can turn
//! it into a JS `Error` a user understands without reading Rust.

use thiserror::Error;

/// Everything that can go wrong when calling into the core.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DistlabError {
    /// A configuration or argument field has a bad value.
    #[error("invalid `{field}`: {problem}")]
    InvalidField { field: String, problem: String },
    /// An id that names nothing the caller may use (unknown lab, node out of range...).
    #[error("unknown {what} `{id}`")]
    Unknown { what: &'static str, id: String },
    /// Input text that could not be parsed (a JSON config, a history line...).
    #[error("cannot parse {what}: {problem}")]
    Parse { what: String, problem: String },
    /// A request that is well formed but not allowed in the current state.
    #[error("{0}")]
    InvalidState(String),
}

/// The crate's result type.
pub type Result<T, E = DistlabError> = std::result::Result<T, E>;

impl DistlabError {
    /// An error about one named field.
    pub fn field(field: impl Into<String>, problem: impl Into<String>) -> Self {
        DistlabError::InvalidField {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// An error about input that could not be parsed.
    pub fn parse(what: impl Into<String>, problem: impl Into<String>) -> Self {
        DistlabError::Parse {
            what: what.into(),
            problem: problem.into(),
        }
    }
}

/// Checks that `value` is finite and within `[min, max]`, naming `field` if not.
pub fn check_range(field: &str, value: f64, min: f64, max: f64) -> Result<f64> {
    if !value.is_finite() {
        return Err(DistlabError::field(
            field,
            format!("must be a finite number, got {value}"),
        ));
    }
    if value < min || value > max {
        return Err(DistlabError::field(
            field,
            format!("must be between {min} and {max}, got {value}"),
        ));
    }
    Ok(value)
}

/// Checks that `value` is finite and strictly positive, naming `field` if not.
pub fn check_positive(field: &str, value: f64) -> Result<f64> {
    if !value.is_finite() || value <= 0.0 {
        return Err(DistlabError::field(
            field,
            format!("must be a finite number greater than 0, got {value}"),
        ));
    }
    Ok(value)
}

/// Checks that a probability lies in `[0, 1]`.
pub fn check_probability(field: &str, value: f64) -> Result<f64> {
    check_range(field, value, 0.0, 1.0)
}

impl From<serde_json::Error> for DistlabError {
    fn from(e: serde_json::Error) -> Self {
        DistlabError::parse("JSON", e.to_string())
    }
}
