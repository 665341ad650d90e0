//! distlab-wasm: the npm package `distlab`. A thin layer: it converts between JS values
//! and core types and turns core errors into JS `Error`s that name the field and the
//! problem. No logic lives here that a native test cannot reach.
//!
//! API: `catalog()`, `createLab(id, config)` and `replayLab(id, config, actions)` return
//! a `Lab` (`step(ms)`, `stepEvents(n)`, `act(action)`, `view()`, `seek(k)`,
//! `traceJson()`, `configSchema()`, ...), plus typed classes for notebook use
//! (`TokenBucket`, the rate limiters; the sketches in [`sketch`]: `Bloom`,
//! `CountingBloom`, `CountMin`, `HyperLogLog`, `Cuckoo`; the caches in [`cache`]: `Lru`,
//! `Lfu`, `TtlCache`, `TinyLfu`, `Singleflight`, `XFetch`; the resilience primitives in [`resilience`]:
//! `CircuitBreaker`, `Retry`, `RetryBudget`, `Bulkhead`, `Deadline`, `Hedging`,
//! `Fallback`, `HealthMonitor`, `LoadShedder`, `ResiliencePipeline`; the CRDTs in [`crdt`]:
//! `GCounter`, `PnCounter`, `GSet`, `TwoPSet`, `OrSet`, `LwwRegister`, `MvRegister`,
//! `LwwMap`, `Rga`; the failure detectors in [`coordination`]: `PhiAccrual`,
//! `FixedTimeoutDetector`; the ring in [`balance`]: `ConsistentHashRing`; the clocks in
//! [`clocks`]: `VectorClock`, `LamportClock`, `Hlc`, `Snowflake`).

pub mod balance;
pub mod cache;
pub mod clocks;
mod convert;
pub mod coordination;
pub mod crdt;
mod lessons;
pub mod resilience;
pub mod sim;
pub mod sketch;
mod types;
mod view_options;

use distlab_core::lab::Lab as CoreLab;
use distlab_core::ratelimit::RateLimitDecision;
use distlab_core::ratelimit::any_keyed::{AlgorithmConfig, AnyKeyedLimiter};
use distlab_core::ratelimit::fixed_window::{FixedWindow as CoreFixedWindow, FixedWindowConfig};
use distlab_core::ratelimit::gcra::{Gcra as CoreGcra, GcraConfig};
use distlab_core::ratelimit::leaky_bucket::{LeakyBucket as CoreLeakyBucket, LeakyBucketConfig};
use distlab_core::ratelimit::sliding_counter::{
    SlidingCounter as CoreSlidingCounter, SlidingCounterConfig,
};
use distlab_core::ratelimit::sliding_log::{SlidingLog as CoreSlidingLog, SlidingLogConfig};
use distlab_core::ratelimit::token_bucket::{TokenBucket as CoreTokenBucket, TokenBucketConfig};
use distlab_core::{DistlabError, Duration, Time};
use wasm_bindgen::prelude::*;

use convert::{to_js, to_js_via_json, to_json, to_string};
use view_options::ViewOptions;

/// Reports a panic on the console. Any reachable panic is a bug: every input is checked.
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

/// The package version, so a notebook can check what it loaded.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

fn js_error(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

fn core_error(e: DistlabError) -> JsError {
    js_error(e)
}

/// Every catalog id: `{ section, id, title, checks, implemented }[]`.
#[wasm_bindgen(unchecked_return_type = "CatalogEntry[]")]
pub fn catalog() -> Result<JsValue, JsError> {
    to_js(&distlab_core::catalog()).map_err(js_error)
}

/// The lessons lab `id` carries (guided runs: a config, then steps each with a caption,
/// actions and a pause), in the order to take them; an empty array for most labs.
#[wasm_bindgen(unchecked_return_type = "Lesson[]")]
pub fn lessons(id: &str) -> Result<JsValue, JsError> {
    to_js(&distlab_core::registry::lessons(id)).map_err(js_error)
}

/// Creates the lab `id` (a catalog id) from a config object (`undefined`/`null` for the
/// defaults).
#[wasm_bindgen(js_name = createLab)]
pub fn create_lab(
    #[wasm_bindgen(unchecked_param_type = "LabId")] id: JsValue,
    #[wasm_bindgen(unchecked_param_type = "LabConfig | null | undefined")] config: JsValue,
) -> Result<Lab, JsError> {
    let id = to_string("id", &id).map_err(js_error)?;
    let config = to_json("config", &config).map_err(js_error)?;
    let inner = distlab_core::create_lab(&id, &config).map_err(core_error)?;
    Ok(Lab { inner })
}

/// Creates the lab `id` and replays a recorded action script (from `lab.actions()`): at
/// most `maxEventsPerCall()` events now; actions further on apply as `seek` reaches them.
#[wasm_bindgen(js_name = replayLab)]
pub fn replay_lab(
    #[wasm_bindgen(unchecked_param_type = "LabId")] id: JsValue,
    #[wasm_bindgen(unchecked_param_type = "LabConfig | null | undefined")] config: JsValue,
    #[wasm_bindgen(unchecked_param_type = "RecordedAction<LabAction>[]")] actions: JsValue,
) -> Result<Lab, JsError> {
    let id = to_string("id", &id).map_err(js_error)?;
    let config = to_json("config", &config).map_err(js_error)?;
    let actions = to_json("actions", &actions).map_err(js_error)?;
    let inner = distlab_core::registry::replay_lab(&id, &config, &actions).map_err(core_error)?;
    Ok(Lab { inner })
}

/// The most events one call of `step`, `stepEvents`, `seek` (past the furthest step
/// reached) or `replayLab` runs, so that no call from a page or a notebook cell freezes it.
#[wasm_bindgen(js_name = maxEventsPerCall)]
pub fn max_events_per_call() -> f64 {
    distlab_core::lab::runner::MAX_EVENTS_PER_CALL as f64
}

/// A running lab.
#[wasm_bindgen]
pub struct Lab {
    inner: Box<dyn CoreLab>,
}

fn whole_number(field: &str, n: f64) -> Result<u64, JsError> {
    if !n.is_finite() || n < 0.0 || n.fract() != 0.0 || n > 9_007_199_254_740_991.0 {
        return Err(js_error(format!(
            "invalid `{field}`: must be a whole number ≥ 0, got {n}"
        )));
    }
    Ok(n as u64)
}

/// A whole number from JS that fits a u32, else an `Error` naming `field`.
fn whole_u32(field: &str, n: f64) -> Result<u32, JsError> {
    let n = whole_number(field, n)?;
    u32::try_from(n).map_err(|_| {
        js_error(format!(
            "invalid `{field}`: must be at most {}, got {n}",
            u32::MAX
        ))
    })
}

/// A JS string (a key, a name, an element), else an `Error` naming `what`.
fn js_text(what: &str, v: &JsValue) -> Result<String, JsError> {
    convert::to_string(what, v).map_err(js_error)
}

#[wasm_bindgen]
impl Lab {
    /// The catalog id.
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> String {
        self.inner.id().to_string()
    }
    /// Events processed so far.
    #[wasm_bindgen(getter)]
    pub fn steps(&self) -> f64 {
        self.inner.steps() as f64
    }
    /// Simulated time in milliseconds.
    #[wasm_bindgen(getter, js_name = nowMs)]
    pub fn now_ms(&self) -> f64 {
        self.inner.now().as_millis_f64()
    }
    /// Advances simulated time by `ms` milliseconds. Returns the events processed. One
    /// call processes at most `maxEventsPerCall()` events (about a second of the slowest
    /// lab): when it returns exactly that many, the clock stopped at the last event and
    /// the rest of `ms` is still to come — call again.
    pub fn step(&mut self, ms: f64) -> Result<f64, JsError> {
        let dt = Duration::try_from_millis_f64("ms", ms).map_err(core_error)?;
        self.inner.step(dt).map(|n| n as f64).map_err(core_error)
    }
    /// Processes up to `n` events (at most `maxEventsPerCall()`; more is an `Error`).
    /// Returns how many there were.
    #[wasm_bindgen(js_name = stepEvents)]
    pub fn step_events(&mut self, n: f64) -> Result<f64, JsError> {
        let n = whole_number("n", n)?;
        self.inner
            .step_events(n)
            .map(|n| n as f64)
            .map_err(core_error)
    }
    /// Applies an action such as `{type: "crash", node: 2}`.
    pub fn act(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "LabAction")] action: JsValue,
    ) -> Result<(), JsError> {
        let action = to_json("action", &action).map_err(js_error)?;
        self.inner.act(&action).map_err(core_error)
    }
    /// The current view: nodes, messages in flight, partitions, panels, metrics, invariants.
    /// `options.fieldsOf: [ids]` keeps only those nodes' `fields` (a big cluster's view
    /// is mostly fields; a page needs the inspected node's).
    #[wasm_bindgen(unchecked_return_type = "View")]
    pub fn view(
        &self,
        #[wasm_bindgen(unchecked_optional_param_type = "ViewOptions | null")] options: Option<
            JsValue,
        >,
    ) -> Result<JsValue, JsError> {
        let options = match options {
            Some(o) => ViewOptions::from_json(&to_json("options", &o).map_err(js_error)?)
                .map_err(js_error)?,
            None => ViewOptions::default(),
        };
        let view = self.inner.view_fields_of(&options.fields());
        // Called every animation frame: the JSON route is the cheap one for big views.
        to_js_via_json(&view).map_err(js_error)
    }
    /// Goes to the state after `k` events. Returns the step reached (less than `k` if the
    /// run ends first). Anywhere up to the furthest step this run has reached is allowed;
    /// beyond it, one call runs at most `maxEventsPerCall()` new events, and a `k`
    /// further than that is an `Error` naming `k`: seek there in slices.
    pub fn seek(&mut self, k: f64) -> Result<f64, JsError> {
        let k = whole_number("k", k)?;
        self.inner.seek(k).map(|n| n as f64).map_err(core_error)
    }
    /// Plays a lesson step that started at `startedMs` (the lab's clock then) for at
    /// most `ms` of simulated time, stopping at its `pause`. Returns whether the step
    /// reached its pause: then the lab stands exactly where every reader of the lesson
    /// stops, however the step was sliced.
    #[wasm_bindgen(js_name = advanceLesson)]
    pub fn advance_lesson(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "Pause")] pause: JsValue,
        started_ms: f64,
        ms: f64,
    ) -> Result<bool, JsError> {
        let pause = to_json("pause", &pause).map_err(js_error)?;
        let pause: lessons::Pause =
            distlab_core::lab::json::from_value("pause", &pause).map_err(core_error)?;
        let started = Time::try_from_millis_f64("startedMs", started_ms).map_err(core_error)?;
        let budget = Duration::try_from_millis_f64("ms", ms).map_err(core_error)?;
        lessons::advance(self.inner.as_mut(), &pause, started, budget).map_err(core_error)
    }
    /// The trace as a JSON string `{hash, events, complete, trace}`.
    #[wasm_bindgen(js_name = traceJson)]
    pub fn trace_json(&self) -> String {
        self.inner.trace().to_string()
    }
    /// The trace's events numbered `from` or later, at most the newest `max`, as a JSON
    /// string `{hash, events, first, complete, trace}`: `events` counts every event so
    /// far, so a reader that holds events up to there asks next time from `events`. A lab
    /// whose trace does not number its events answers with its whole trace and no
    /// `first`.
    #[wasm_bindgen(js_name = traceJsonFrom)]
    pub fn trace_json_from(&self, from: f64, max: f64) -> Result<String, JsError> {
        let from = whole_number("from", from)?;
        let max = usize::try_from(whole_number("max", max)?).unwrap_or(usize::MAX);
        Ok(self.inner.trace_from(from, max).to_string())
    }
    /// The effective config (defaults filled in).
    #[wasm_bindgen(unchecked_return_type = "LabConfig")]
    pub fn config(&self) -> Result<JsValue, JsError> {
        to_js(&self.inner.config()).map_err(js_error)
    }
    /// The actions applied so far, with their steps and times.
    #[wasm_bindgen(unchecked_return_type = "RecordedAction<LabAction>[]")]
    pub fn actions(&self) -> Result<JsValue, JsError> {
        to_js(&self.inner.actions()).map_err(js_error)
    }
    /// Adds recorded actions (as `actions()` gives them, from another lab running the same
    /// config) that come at or after this lab's present; they apply when the run reaches
    /// their steps, as in `replayLab`. A replica following a run keeps up this way without
    /// replaying it from the start.
    #[wasm_bindgen(js_name = extendActions)]
    pub fn extend_actions(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "RecordedAction<LabAction>[]")] actions: JsValue,
    ) -> Result<(), JsError> {
        let actions = to_json("actions", &actions).map_err(js_error)?;
        self.inner.extend_actions(&actions).map_err(core_error)
    }
    /// JSON Schema of the config, for building a form.
    #[wasm_bindgen(js_name = configSchema, unchecked_return_type = "JsonSchema")]
    pub fn config_schema(&self) -> Result<JsValue, JsError> {
        to_js(&self.inner.config_schema()).map_err(js_error)
    }
    /// JSON Schema of the actions.
    #[wasm_bindgen(js_name = actionSchema, unchecked_return_type = "JsonSchema")]
    pub fn action_schema(&self) -> Result<JsValue, JsError> {
        to_js(&self.inner.action_schema()).map_err(js_error)
    }
    /// Typical actions, for buttons.
    #[wasm_bindgen(js_name = exampleActions, unchecked_return_type = "LabAction[]")]
    pub fn example_actions(&self) -> Result<JsValue, JsError> {
        to_js(&self.inner.example_actions()).map_err(js_error)
    }
}

/// A token bucket for direct use: `new TokenBucket({capacity: 10, refillPerSec: 5})`.
#[wasm_bindgen]
pub struct TokenBucket {
    inner: CoreTokenBucket,
}

#[wasm_bindgen]
impl TokenBucket {
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "TokenBucketConfig")] config: JsValue,
    ) -> Result<TokenBucket, JsError> {
        let config = to_json("config", &config).map_err(js_error)?;
        let config: TokenBucketConfig =
            distlab_core::lab::json::from_value("config", &config).map_err(core_error)?;
        let inner = CoreTokenBucket::new(config).map_err(core_error)?;
        Ok(TokenBucket { inner })
    }
    /// Asks for `cost` tokens (default 1) at time `nowMs`; returns the decision
    /// `{allowed, limit, remaining, retryAfter, resetAfter}` (durations in µs).
    #[wasm_bindgen(js_name = tryAcquire, unchecked_return_type = "RateLimitDecision")]
    pub fn try_acquire(&mut self, now_ms: f64, cost: Option<f64>) -> Result<JsValue, JsError> {
        let now = Time::try_from_millis_f64("nowMs", now_ms).map_err(core_error)?;
        let decision = self
            .inner
            .try_acquire(now, cost.unwrap_or(1.0))
            .map_err(core_error)?;
        to_js(&decision).map_err(js_error)
    }
    /// Tokens in the bucket at `nowMs`, without taking any.
    #[wasm_bindgen(js_name = tokensAt)]
    pub fn tokens_at(&self, now_ms: f64) -> Result<f64, JsError> {
        let now = Time::try_from_millis_f64("nowMs", now_ms).map_err(core_error)?;
        Ok(self.inner.tokens_at(now))
    }
}

/// Reads a typed config object, naming `config.<field>` on error.
fn typed_config<T: serde::de::DeserializeOwned + serde::Serialize>(
    config: &JsValue,
) -> Result<T, JsError> {
    let config = to_json("config", config).map_err(js_error)?;
    distlab_core::lab::json::from_value("config", &config).map_err(core_error)
}

/// `nowMs` and `cost` (default 1) as the core takes them.
fn request(now_ms: f64, cost: Option<f64>) -> Result<(Time, f64), JsError> {
    let now = Time::try_from_millis_f64("nowMs", now_ms).map_err(core_error)?;
    Ok((now, cost.unwrap_or(1.0)))
}

/// A limiter class with the common methods: `tryAcquire(nowMs, cost?)`, `peek(nowMs,
/// cost?)` and `levelAt(nowMs)`.
macro_rules! limiter_class {
    ($(#[$doc:meta])* $js:ident, $core:ident, $config:ty, $ts_config:literal) => {
        $(#[$doc])*
        #[wasm_bindgen]
        pub struct $js {
            inner: $core,
        }

        #[wasm_bindgen]
        impl $js {
            #[wasm_bindgen(constructor)]
            pub fn new(
                #[wasm_bindgen(unchecked_param_type = $ts_config)] config: JsValue,
            ) -> Result<$js, JsError> {
                let config: $config = typed_config(&config)?;
                let inner = $core::new(config).map_err(core_error)?;
                Ok($js { inner })
            }
            /// Asks for `cost` (default 1) at time `nowMs`; returns the decision
            /// `{allowed, limit, remaining, retryAfter, resetAfter}` (durations in µs) and
            /// charges it if allowed.
            #[wasm_bindgen(js_name = tryAcquire, unchecked_return_type = "RateLimitDecision")]
            pub fn try_acquire(&mut self, now_ms: f64, cost: Option<f64>) -> Result<JsValue, JsError> {
                let (now, cost) = request(now_ms, cost)?;
                let d = self.inner.try_acquire(now, cost).map_err(core_error)?;
                to_js(&d).map_err(js_error)
            }
            /// What `tryAcquire` would decide, changing nothing.
            #[wasm_bindgen(unchecked_return_type = "RateLimitDecision")]
            pub fn peek(&self, now_ms: f64, cost: Option<f64>) -> Result<JsValue, JsError> {
                let (now, cost) = request(now_ms, cost)?;
                let d = self.inner.peek(now, cost).map_err(core_error)?;
                to_js(&d).map_err(js_error)
            }
            /// The allowance available at `nowMs` (what is left of the window, the room in
            /// the schedule or the queue).
            #[wasm_bindgen(js_name = levelAt)]
            pub fn level_at(&self, now_ms: f64) -> Result<f64, JsError> {
                let now = Time::try_from_millis_f64("nowMs", now_ms).map_err(core_error)?;
                Ok(self.inner.level(now))
            }
        }
    };
}

limiter_class!(
    /// A fixed-window counter: `new FixedWindow({limit: 10, windowMs: 1000})`.
    FixedWindow,
    CoreFixedWindow,
    FixedWindowConfig,
    "FixedWindowConfig"
);
limiter_class!(
    /// An exact sliding log: `new SlidingLog({limit: 10, windowMs: 1000})`.
    SlidingLog,
    CoreSlidingLog,
    SlidingLogConfig,
    "SlidingLogConfig"
);
limiter_class!(
    /// A sliding-window counter: `new SlidingCounter({limit: 10, windowMs: 1000})`.
    SlidingCounter,
    CoreSlidingCounter,
    SlidingCounterConfig,
    "SlidingCounterConfig"
);
limiter_class!(
    /// GCRA, the leaky bucket as a meter: `new Gcra({burst: 10, ratePerSec: 5})`.
    Gcra,
    CoreGcra,
    GcraConfig,
    "GcraConfig"
);
limiter_class!(
    /// The leaky bucket as a queue: `new LeakyBucket({queueSize: 10, drainPerSec: 5})`;
    /// `tryEnqueue` also says how long an admitted request waits.
    LeakyBucket,
    CoreLeakyBucket,
    LeakyBucketConfig,
    "LeakyBucketConfig"
);

#[wasm_bindgen]
impl LeakyBucket {
    /// Queues a request of `cost` (default 1) at `nowMs` if it fits: the decision plus
    /// `delay`, how long it waits in the queue (µs).
    #[wasm_bindgen(js_name = tryEnqueue, unchecked_return_type = "ShapingDecision")]
    pub fn try_enqueue(&mut self, now_ms: f64, cost: Option<f64>) -> Result<JsValue, JsError> {
        let (now, cost) = request(now_ms, cost)?;
        let d = self.inner.try_enqueue(now, cost).map_err(core_error)?;
        to_js(&d).map_err(js_error)
    }
}

/// A decision as an HTTP response: `{status, headers: [name, value][]}` with status 429
/// when denied, `RateLimit-Limit` / `-Remaining` / `-Reset`, `X-RateLimit-*` and
/// `Retry-After`. With `nowUnixSecs`, `X-RateLimit-Reset` is a Unix time. With
/// `windowMs`, the time the limiter takes to grant its whole limit again (a window's
/// length; a bucket's capacity over its rate), `RateLimit-Policy` names the window (`w`)
/// and a limit below 1 per window is stated per a longer one (0.5/s: `q=1;w=2`).
#[wasm_bindgen(js_name = rateLimitHeaders, unchecked_return_type = "HttpRateLimit")]
pub fn rate_limit_headers(
    #[wasm_bindgen(unchecked_param_type = "RateLimitDecision")] decision: JsValue,
    now_unix_secs: Option<f64>,
    window_ms: Option<f64>,
) -> Result<JsValue, JsError> {
    let decision: RateLimitDecision = {
        let v = to_json("decision", &decision).map_err(js_error)?;
        distlab_core::lab::json::from_value("decision", &v).map_err(core_error)?
    };
    let now = match now_unix_secs {
        None => None,
        Some(n) => Some(whole_number("nowUnixSecs", n)?),
    };
    let window = match window_ms {
        None => None,
        Some(ms) if ms.is_nan() || ms <= 0.0 => {
            return Err(js_error(format!(
                "invalid `windowMs`: must be a number of milliseconds > 0, got {ms}"
            )));
        }
        Some(ms) => Some(Duration::try_from_millis_f64("windowMs", ms).map_err(core_error)?),
    };
    to_js(&distlab_core::ratelimit::http::render_with_window(
        &decision, window, now,
    ))
    .map_err(js_error)
}

/// Per-key limiters of any algorithm with a memory bound:
/// `new KeyedLimiter({algorithm: "gcra", config: {burst: 10, ratePerSec: 5}}, 10000)`.
/// Keys are strings; at most `maxKeys` are held, least recently used evicted first.
#[wasm_bindgen]
pub struct KeyedLimiter {
    inner: AnyKeyedLimiter<String>,
}

#[wasm_bindgen]
impl KeyedLimiter {
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "AlgorithmConfig")] config: JsValue,
        #[wasm_bindgen(js_name = maxKeys)] max_keys: f64,
    ) -> Result<KeyedLimiter, JsError> {
        let config: AlgorithmConfig = typed_config(&config)?;
        let max_keys = whole_number("maxKeys", max_keys)?;
        let inner = AnyKeyedLimiter::new(&config, max_keys).map_err(core_error)?;
        Ok(KeyedLimiter { inner })
    }
    /// Asks for `cost` (default 1) by `key` at `nowMs`; returns the decision.
    #[wasm_bindgen(js_name = tryAcquire, unchecked_return_type = "RateLimitDecision")]
    pub fn try_acquire(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "string")] key: JsValue,
        now_ms: f64,
        cost: Option<f64>,
    ) -> Result<JsValue, JsError> {
        let key = to_string("key", &key).map_err(js_error)?;
        let (now, cost) = request(now_ms, cost)?;
        let d = self.inner.try_acquire(key, now, cost).map_err(core_error)?;
        to_js(&d).map_err(js_error)
    }
    /// What `tryAcquire` would decide, changing nothing.
    #[wasm_bindgen(unchecked_return_type = "RateLimitDecision")]
    pub fn peek(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] key: JsValue,
        now_ms: f64,
        cost: Option<f64>,
    ) -> Result<JsValue, JsError> {
        let key = to_string("key", &key).map_err(js_error)?;
        let (now, cost) = request(now_ms, cost)?;
        let d = self.inner.peek(&key, now, cost).map_err(core_error)?;
        to_js(&d).map_err(js_error)
    }
    /// Forgets up to `max` (default all) idle keys, least recently used first; returns how
    /// many.
    #[wasm_bindgen(js_name = sweepIdle)]
    pub fn sweep_idle(&mut self, now_ms: f64, max: Option<f64>) -> Result<f64, JsError> {
        let now = Time::try_from_millis_f64("nowMs", now_ms).map_err(core_error)?;
        let max = match max {
            None => usize::MAX,
            Some(m) => usize::try_from(whole_number("max", m)?).unwrap_or(usize::MAX),
        };
        Ok(self.inner.sweep_idle(now, max) as f64)
    }
    /// Keys held.
    #[wasm_bindgen(getter)]
    pub fn size(&self) -> f64 {
        self.inner.len() as f64
    }
    /// Memory in use: bytes per key and how they are spent.
    #[wasm_bindgen(unchecked_return_type = "KeyedMemory")]
    pub fn memory(&self) -> Result<JsValue, JsError> {
        to_js(&self.inner.memory()).map_err(js_error)
    }
    /// Keys evicted: idle ones, and ones forced out to make room.
    #[wasm_bindgen(unchecked_return_type = "EvictionStats")]
    pub fn evictions(&self) -> Result<JsValue, JsError> {
        to_js(&self.inner.evictions()).map_err(js_error)
    }
}
