//! Typed classes for the coordination primitives, for direct use in notebooks: times are
//! milliseconds (`nowMs`) on the monitoring process's clock, and every bad argument is
//! a JS `Error` naming it.
//!
//! `PhiAccrual` (the φ accrual failure detector, Pekko's formula) and
//! `FixedTimeoutDetector`.

use distlab_core::Time;
use distlab_core::coordination::failure_detector::{
    FixedTimeout as CoreFixedTimeout, FixedTimeoutConfig, PhiAccrual as CorePhiAccrual,
    PhiAccrualConfig,
};
use wasm_bindgen::prelude::*;

use crate::{core_error, typed_config};

fn now(now_ms: f64) -> Result<Time, JsError> {
    Time::try_from_millis_f64("nowMs", now_ms).map_err(core_error)
}

/// The φ accrual failure detector for one peer (Hayashibara et al. 2004, as Apache
/// Pekko computes it): `new PhiAccrual({threshold: 8, minStdDeviationMs: 100,
/// acceptableHeartbeatPauseMs: 3000, firstHeartbeatEstimateMs: 1000})`, every field
/// optional (Pekko's cluster defaults).
#[wasm_bindgen]
pub struct PhiAccrual {
    inner: CorePhiAccrual,
}

#[wasm_bindgen]
impl PhiAccrual {
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "PhiAccrualConfig | undefined")] config: JsValue,
    ) -> Result<PhiAccrual, JsError> {
        let config: PhiAccrualConfig = if config.is_undefined() || config.is_null() {
            PhiAccrualConfig::default()
        } else {
            typed_config(&config)?
        };
        let inner = CorePhiAccrual::new(config).map_err(core_error)?;
        Ok(PhiAccrual { inner })
    }

    /// A heartbeat arrived at `nowMs`.
    pub fn heartbeat(&mut self, now_ms: f64) -> Result<(), JsError> {
        self.inner.heartbeat(now(now_ms)?);
        Ok(())
    }

    /// The suspicion level at `nowMs` (0 before the first heartbeat).
    pub fn phi(&self, now_ms: f64) -> Result<f64, JsError> {
        Ok(self.inner.phi(now(now_ms)?))
    }

    /// Whether the peer is trusted at `nowMs`: φ below the threshold.
    #[wasm_bindgen(js_name = isAvailable)]
    pub fn is_available(&self, now_ms: f64) -> Result<bool, JsError> {
        Ok(self.inner.is_available(now(now_ms)?))
    }

    /// Whether a heartbeat has ever arrived.
    #[wasm_bindgen(getter, js_name = isMonitoring)]
    pub fn is_monitoring(&self) -> bool {
        self.inner.is_monitoring()
    }

    #[wasm_bindgen(getter)]
    pub fn threshold(&self) -> f64 {
        self.inner.threshold()
    }

    /// Mean of the inter-arrival times kept, in ms.
    #[wasm_bindgen(getter, js_name = meanMs)]
    pub fn mean_ms(&self) -> f64 {
        self.inner.history().mean() / 1e3
    }

    /// Standard deviation of the inter-arrival times kept (before the floor), in ms.
    #[wasm_bindgen(getter, js_name = stdDeviationMs)]
    pub fn std_deviation_ms(&self) -> f64 {
        self.inner.history().std_deviation() / 1e3
    }

    /// Inter-arrival times kept.
    #[wasm_bindgen(getter)]
    pub fn samples(&self) -> u32 {
        u32::try_from(self.inner.history().len()).unwrap_or(u32::MAX)
    }
}

/// Suspects a peer silent for longer than a fixed timeout:
/// `new FixedTimeoutDetector({timeoutMs: 1000})`.
#[wasm_bindgen]
pub struct FixedTimeoutDetector {
    inner: CoreFixedTimeout,
}

#[wasm_bindgen]
impl FixedTimeoutDetector {
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "FixedTimeoutConfig | undefined")] config: JsValue,
    ) -> Result<FixedTimeoutDetector, JsError> {
        let config: FixedTimeoutConfig = if config.is_undefined() || config.is_null() {
            FixedTimeoutConfig::default()
        } else {
            typed_config(&config)?
        };
        let inner = CoreFixedTimeout::new(config).map_err(core_error)?;
        Ok(FixedTimeoutDetector { inner })
    }

    /// A heartbeat arrived at `nowMs`.
    pub fn heartbeat(&mut self, now_ms: f64) -> Result<(), JsError> {
        self.inner.heartbeat(now(now_ms)?);
        Ok(())
    }

    /// Whether the peer is trusted at `nowMs`: silent for at most the timeout.
    #[wasm_bindgen(js_name = isAvailable)]
    pub fn is_available(&self, now_ms: f64) -> Result<bool, JsError> {
        Ok(self.inner.is_available(now(now_ms)?))
    }

    /// How long the peer has been silent at `nowMs`, in ms.
    #[wasm_bindgen(js_name = silenceMs)]
    pub fn silence_ms(&self, now_ms: f64) -> Result<f64, JsError> {
        Ok(self.inner.silence(now(now_ms)?).as_millis_f64())
    }

    /// Whether a heartbeat has ever arrived.
    #[wasm_bindgen(getter, js_name = isMonitoring)]
    pub fn is_monitoring(&self) -> bool {
        self.inner.is_monitoring()
    }
}
