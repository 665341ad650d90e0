//! Lab `scenario.cascading-failure`: one slow dependency ties up every worker upstream
//! and takes the healthy paths down with it — Nygard's "Cascading Failures" and "Blocked
//! Threads" antipatterns (*Release It!*, 2nd ed., ch. 4) — and the stability patterns
//! that contain it (ch. 5): a bulkhead, a circuit breaker and a timeout on the call to
//! the slow dependency.
//!
//! One mesh, same seed, run twice side by side: the client calls a gateway of 32
//! workers, which routes each request to service A or service B (half each); a gateway
//! worker is held until the service answers. At `faultAtMs` B slows `slowFactor`-fold for
//! `faultMs`. With plain calls every gateway worker ends up waiting on B — B's workers
//! and queue hold more calls than the gateway has workers — so requests for A, which is
//! healthy, queue at the gateway and fail too. With a circuit breaker, a bulkhead of 8
//! and a 100 ms timeout on the gateway's calls to B, B's calls fail fast, at most 8
//! gateway workers wait on B, and A's path stays healthy.
//!
//! The comparison panel (see [`super::mesh_pair`]) watches the gateway → A edge.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bounded::{Count, Millis, Probability};
use crate::error::Result;
use crate::lab::sampling::{DEFAULT_SAMPLE_MS, SampleMs};
use crate::resilience::bulkhead::BulkheadConfig;
use crate::resilience::mesh::lab::{
    MeshLabAction, MeshLabConfig, ScheduledServiceFault, fast_breaker, timeout_policy,
};
use crate::resilience::mesh::{EdgeConfig, Pick, ServiceConfig};
use crate::resilience::policy::{PolicyConfig, StrategyConfig};
use crate::scenario::mesh_pair::{MeshScenario, MeshScenarioSpec};
use crate::sim::NetworkConfig;
use crate::sim::network::LatencyModel;
use crate::time::Time;

/// Configuration of the cascading-failure scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct CascadingFailureLabConfig {
    pub seed: u64,
    /// The client's rate, half to A and half to B.
    pub requests_per_sec: Count<1, 5_000>,
    /// When B slows...
    pub fault_at_ms: Millis<0, 600_000>,
    /// ...for how long...
    pub fault_ms: Millis<1, 600_000>,
    /// ...and how much.
    pub slow_factor: Count<1, 1_000>,
    pub network: NetworkConfig,
    pub sample_ms: SampleMs,
}

impl Default for CascadingFailureLabConfig {
    fn default() -> Self {
        CascadingFailureLabConfig {
            seed: 1,
            requests_per_sec: Count::of(400),
            fault_at_ms: Millis::of(1_000),
            fault_ms: Millis::of(3_000),
            slow_factor: Count::of(50),
            network: NetworkConfig::default(),
            sample_ms: DEFAULT_SAMPLE_MS,
        }
    }
}

/// The gateway → B policy of the fixed run: breaker outermost, then a bulkhead of 8
/// that fails fast, then a 100 ms timeout.
pub fn contained_policy() -> PolicyConfig {
    PolicyConfig {
        strategies: vec![
            StrategyConfig::CircuitBreaker {
                config: fast_breaker(),
            },
            StrategyConfig::Bulkhead {
                config: BulkheadConfig {
                    max_concurrent_calls: Count::of(8),
                    max_queue: Count::of(0),
                    max_wait_ms: Millis::of(0),
                },
            },
            StrategyConfig::Timeout {
                timeout_ms: Millis::of(100),
            },
        ],
    }
}

fn service(
    name: &str,
    workers: u32,
    queue: u32,
    pick: Pick,
    latency: LatencyModel,
) -> ServiceConfig {
    ServiceConfig {
        name: name.into(),
        workers: Count::new("workers", workers).unwrap_or(Count::of(1)),
        queue: Count::new("queue", queue).unwrap_or(Count::of(0)),
        latency,
        error_rate: Probability::of(0.0),
        pick,
        honors_cancel: true,
    }
}

#[derive(Debug, Clone)]
pub struct CascadingFailure;

impl MeshScenarioSpec for CascadingFailure {
    const ID: &'static str = "scenario.cascading-failure";
    type Config = CascadingFailureLabConfig;
    const NAMES: [&'static str; 2] = ["plain calls", "breaker + bulkhead + timeout"];

    fn runs(c: &CascadingFailureLabConfig) -> Result<[MeshLabConfig; 2]> {
        let work = LatencyModel::Exponential {
            min_ms: 1.0,
            mean_ms: 3.0,
        };
        let services = vec![
            service(
                "gateway",
                32,
                32,
                Pick::One,
                LatencyModel::Constant { ms: 0.2 },
            ),
            service("A", 16, 32, Pick::All, work),
            service("B", 16, 32, Pick::All, work),
        ];
        let at = c.fault_at_ms.get();
        let end = c.fault_at_ms.get() + c.fault_ms.get();
        let faults = vec![
            ScheduledServiceFault {
                at_ms: Millis::new("faultAtMs", at)?,
                action: MeshLabAction::SlowService {
                    service: 2,
                    factor: c.slow_factor,
                },
            },
            ScheduledServiceFault {
                at_ms: Millis::new("faultMs", end)?,
                action: MeshLabAction::HealService { service: 2 },
            },
        ];
        let run = |fixed: bool| MeshLabConfig {
            seed: c.seed,
            services: services.clone(),
            edges: vec![
                EdgeConfig {
                    from: 0,
                    to: 1,
                    weight: Count::of(1),
                    policy: None,
                },
                EdgeConfig {
                    from: 0,
                    to: 2,
                    weight: Count::of(1),
                    policy: fixed.then(contained_policy),
                },
            ],
            client_policy: Some(timeout_policy(1_000)),
            requests_per_sec: Count::of(c.requests_per_sec.get()),
            service_faults: faults.clone(),
            network: c.network.clone(),
            sample_ms: c.sample_ms,
            ..MeshLabConfig::default()
        };
        Ok([run(false), run(true)])
    }

    fn window(c: &CascadingFailureLabConfig) -> (Time, Time) {
        let at = c.fault_at_ms.duration().0;
        (Time(at), Time(at + c.fault_ms.duration().0))
    }

    fn struggling(_: &CascadingFailureLabConfig) -> u32 {
        2
    }

    /// Gateway → A: edge 1 (edge 0 is client → gateway).
    fn lessons() -> Vec<crate::lab::lesson::Lesson> {
        lessons()
    }

    fn watched_edge(_: &CascadingFailureLabConfig) -> u32 {
        1
    }
}

/// The lesson `scenario.cascading-failure` carries (Nygard, *Release It!*, 2nd ed.,
/// ch. 4 "Cascading Failures", "Blocked Threads"; ch. 5 "Circuit Breaker", "Bulkheads",
/// "Timeouts"), timed by the default config's slowdown from 1 s to 4 s.
pub fn lessons() -> Vec<crate::lab::lesson::Lesson> {
    use crate::lab::lesson::{self, Condition, Lesson, Pause};
    // The steps of this lesson take no action of their own.
    let step = |caption: &str, pause: Pause| lesson::step(caption, Vec::new(), pause);
    let busy = |field: &str, value: f64| Pause::When {
        condition: Condition::FieldAtLeast {
            field: field.into(),
            value,
        },
        within_ms: 2_000.0,
    };
    vec![Lesson {
        id: "cascade".into(),
        title: "One slow service takes the healthy one down".into(),
        follows: "Nygard, Release It! (2nd ed., 2018), ch. 4 \"Cascading Failures\", \
                  \"Blocked Threads\"; ch. 5 \"Circuit Breaker\", \"Bulkheads\", \"Timeouts\""
            .into(),
        config: serde_json::Value::Null,
        steps: vec![
            step(
                "One mesh, one seed, run twice. A gateway of 32 workers sends half the \
                 requests to A and half to B; a gateway worker waits until the service \
                 answers. On the left the calls are plain; on the right the calls to B \
                 go through a circuit breaker, a bulkhead of 8 and a 100 ms timeout.",
                Pause::After { ms: 950.0 },
            ),
            step(
                "B slows fiftyfold. On the left every gateway worker that takes a request \
                 for B stays with it, until all 32 wait on B (the step stops then): \
                 Nygard's blocked threads.",
                busy("workersBusy", 32.0),
            ),
            step(
                "Now requests for A — healthy, fast — wait in the gateway's queue behind \
                 them and fail too: the failure has cascaded. On the right at most 8 \
                 gateway workers wait on B, and its calls time out after 100 ms; once \
                 half of them have failed the breaker opens (the step stops then) and \
                 calls to B fail at once.",
                busy("breakersOpen", 1.0),
            ),
            step(
                "Compare the gateway → A edge in the panel: on the right A keeps \
                 answering through B's slowdown; on the left it answers nothing until B \
                 recovers at 4 s.",
                Pause::After { ms: 2_000.0 },
            ),
        ],
    }]
}

/// The cascading-failure scenario.
pub type CascadingFailureLab = MeshScenario<CascadingFailure>;
