//! The simulator's vocabulary, for pages and notebooks that drive labs: the `type` of
//! every fault, the network a lab gets by default, and the mean of a latency model. A
//! page asks the package for these instead of keeping its own copies, which would drift
//! from the core the day a fault or a latency shape is added.

use distlab_core::sim::trace::TraceKind;
use distlab_core::sim::{Fault, LatencyModel, NetworkConfig};
use serde_json::Value;
use wasm_bindgen::prelude::*;

use crate::convert::{to_js, to_json};
use crate::{core_error, js_error};

#[wasm_bindgen(typescript_custom_section)]
const TS_SIM_TYPES: &str = r#"
/** The `type` of a simulator fault (`"crash"`, `"partition"`, `"setLatency"`...). */
export type FaultType = Fault["type"];
"#;

/// The `type` of every simulator fault, as actions write it: every lab on the network
/// simulator takes these besides its own actions.
#[wasm_bindgen(js_name = faultTypes, unchecked_return_type = "FaultType[]")]
pub fn fault_types() -> Vec<String> {
    Fault::TYPES.iter().map(|t| (*t).to_string()).collect()
}

/// The `type` of every trace event (`"send"`, `"deliver"`, `"crash"`..., and `"external"`
/// for a lab's own events such as a rate limiter's decisions), in the order the trace's
/// hash numbers them: a page that codes events by kind takes its codes from here.
#[wasm_bindgen(js_name = traceKinds)]
pub fn trace_kinds() -> Vec<String> {
    TraceKind::TYPES.iter().map(|t| (*t).to_string()).collect()
}

/// The network a lab on the simulator gets when its config sets none: the latency model,
/// loss, duplication and reordering, every field present.
#[wasm_bindgen(
    js_name = networkDefaults,
    unchecked_return_type = "Required<NetworkConfig>"
)]
pub fn network_defaults() -> Result<JsValue, JsError> {
    to_js(&NetworkConfig::default()).map_err(js_error)
}

/// The mean one-way latency, in ms, of a latency model such as
/// `{type: "uniform", minMs: 1, maxMs: 5}` (before the simulator's 60 s cut): `Infinity`
/// for a Pareto tail with shape ≤ 1, which has no mean. A bad model is an `Error` naming
/// the field (`latency.maxMs`).
#[wasm_bindgen(js_name = latencyMeanMs)]
pub fn latency_mean_ms(
    #[wasm_bindgen(unchecked_param_type = "LatencyModel")] latency: JsValue,
) -> Result<f64, JsError> {
    let latency = to_json("latency", &latency).map_err(js_error)?;
    mean_of(&latency).map_err(core_error)
}

/// `latencyMeanMs` after the JS conversion, so that native tests reach all of it. The
/// model is validated first: the mean of a model the simulator would refuse is no answer.
fn mean_of(latency: &Value) -> distlab_core::Result<f64> {
    let model: LatencyModel = distlab_core::lab::json::from_value("latency", latency)?;
    model.validate("latency")?;
    Ok(model.mean_ms())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tests return errors rather than unwrap, so nothing in wasm/src reads as a panic.
    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn fault_types_are_the_cores() {
        assert_eq!(fault_types(), Fault::TYPES);
    }

    #[test]
    fn the_mean_of_each_latency_shape() -> TestResult {
        for (model, mean) in [
            (r#"{"type": "constant", "ms": 7}"#, 7.0),
            (r#"{"type": "uniform", "minMs": 2, "maxMs": 4}"#, 3.0),
            (r#"{"type": "exponential", "minMs": 1, "meanMs": 2}"#, 3.0),
            (r#"{"type": "logNormal", "medianMs": 10, "sigma": 0}"#, 10.0),
            (r#"{"type": "pareto", "scaleMs": 2, "shape": 2}"#, 4.0),
            (
                r#"{"type": "pareto", "scaleMs": 2, "shape": 1}"#,
                f64::INFINITY,
            ),
        ] {
            assert_eq!(mean_of(&serde_json::from_str(model)?)?, mean, "{model}");
        }
        Ok(())
    }

    #[test]
    fn bad_latency_models_name_the_field() -> TestResult {
        for (bad, field) in [
            (
                r#"{"type": "uniform", "minMs": 5, "maxMs": 1}"#,
                "`latency.maxMs`",
            ),
            (r#"{"type": "constant", "ms": -1}"#, "`latency.ms`"),
            (r#"{"type": "constant", "ms": "fast"}"#, "`latency.ms`"),
            (r#"{"type": "warp"}"#, "`latency.type`"),
            (r#"{"type": "constant"}"#, "`latency`: missing field `ms`"),
            (
                r#"{"type": "constant", "ms": 1, "extra": 2}"#,
                "`latency.extra`",
            ),
            ("null", "`latency`"),
            ("3", "`latency`"),
        ] {
            let e = mean_of(&serde_json::from_str(bad)?)
                .err()
                .map(|e| e.to_string());
            assert!(
                e.as_ref().is_some_and(|e| e.contains(field)),
                "{bad}: {e:?}"
            );
        }
        Ok(())
    }
}
