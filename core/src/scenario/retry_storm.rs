//! Lab `scenario.retry-storm`: retries that amplify an outage into one that outlives its
//! cause — a metastable failure (Bronson, Aghayev, Charapko & Zhu, "Metastable Failures
//! in Distributed Systems", HotOS 2021) — and the fix the AWS Builders' Library gives
//! (Brooker, "Timeouts, retries and backoff with jitter"): exponential backoff with full
//! jitter, within a retry budget (gRPC retry throttling, gRFC A6).
//!
//! One mesh, same seed, run twice side by side: the client calls a gateway, the gateway
//! a backend of 8 workers with a deep queue that serves what it has queued even when the
//! caller has given up (it ignores cancellation, as a plain thread pool does). The
//! gateway's calls to the backend have a 100 ms per-attempt timeout and up to 5 attempts.
//! At `faultAtMs` the backend slows `slowFactor`-fold for `faultMs`. Without backoff and
//! budget every attempt times out in the queue and is retried at once: the backend
//! receives about five times the requests, its queue stays full of work nobody waits
//! for, and when the slowdown ends the queueing alone keeps every attempt past its
//! timeout — the outage goes on. With backoff, jitter and a budget the retries stop
//! once the budget runs dry: the backend sees about the client's own rate, and the queue
//! drains soon after the fault ends.
//!
//! The comparison panel (see [`super::mesh_pair`]): load on the backend during and after
//! the fault, attempts per request, success rates, and the recovery time.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bounded::{Count, Millis, Probability};
use crate::error::Result;
use crate::lab::sampling::{DEFAULT_SAMPLE_MS, SampleMs};
use crate::resilience::ErrorKind;
use crate::resilience::mesh::lab::{
    MeshLabAction, MeshLabConfig, ScheduledServiceFault, timeout_policy,
};
use crate::resilience::mesh::{EdgeConfig, Pick, ServiceConfig};
use crate::resilience::policy::{PolicyConfig, StrategyConfig};
use crate::resilience::retry::{BackoffConfig, Jitter, RetryBudgetConfig, RetryConfig};
use crate::scenario::mesh_pair::{MeshScenario, MeshScenarioSpec};
use crate::sim::NetworkConfig;
use crate::sim::network::LatencyModel;
use crate::time::Time;
use serde_json::Value;

/// Configuration of the retry-storm scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct RetryStormLabConfig {
    pub seed: u64,
    /// The client's rate; the backend serves about 1,600 per second when healthy.
    pub requests_per_sec: Count<1, 5_000>,
    /// When the backend slows...
    pub fault_at_ms: Millis<0, 600_000>,
    /// ...for how long...
    pub fault_ms: Millis<1, 600_000>,
    /// ...and how much.
    pub slow_factor: Count<1, 1_000>,
    pub network: NetworkConfig,
    pub sample_ms: SampleMs,
}

impl Default for RetryStormLabConfig {
    fn default() -> Self {
        RetryStormLabConfig {
            seed: 1,
            requests_per_sec: Count::of(600),
            fault_at_ms: Millis::of(1_000),
            fault_ms: Millis::of(2_000),
            slow_factor: Count::of(10),
            network: NetworkConfig::default(),
            sample_ms: DEFAULT_SAMPLE_MS,
        }
    }
}

/// The gateway → backend policy: up to 5 attempts of 100 ms each, retried at once
/// (`fixed` false) or after an exponential backoff with full jitter within a budget.
pub fn backend_policy(fixed: bool) -> PolicyConfig {
    let backoff = if fixed {
        BackoffConfig {
            initial_backoff_ms: Millis::of(25),
            max_backoff_ms: Millis::of(1_000),
            backoff_multiplier: 2.0,
            jitter: Jitter::Full,
        }
    } else {
        BackoffConfig {
            initial_backoff_ms: Millis::of(0),
            max_backoff_ms: Millis::of(0),
            backoff_multiplier: 1.0,
            jitter: Jitter::None,
        }
    };
    PolicyConfig {
        strategies: vec![
            StrategyConfig::Retry {
                policy: RetryConfig {
                    max_attempts: Count::of(5),
                    backoff,
                    retry_on: vec![
                        ErrorKind::Unavailable,
                        ErrorKind::Timeout,
                        ErrorKind::Overloaded,
                    ],
                },
                budget: fixed.then(RetryBudgetConfig::default),
            },
            StrategyConfig::Timeout {
                timeout_ms: Millis::of(100),
            },
        ],
    }
}

#[derive(Debug, Clone)]
pub struct RetryStorm;

impl MeshScenarioSpec for RetryStorm {
    const ID: &'static str = "scenario.retry-storm";
    type Config = RetryStormLabConfig;
    const NAMES: [&'static str; 2] = ["immediate retries", "backoff + jitter + budget"];

    fn runs(c: &RetryStormLabConfig) -> Result<[MeshLabConfig; 2]> {
        let services = vec![
            ServiceConfig {
                name: "gateway".into(),
                workers: Count::of(1_000),
                queue: Count::of(1_000),
                latency: LatencyModel::Constant { ms: 0.2 },
                error_rate: Probability::of(0.0),
                pick: Pick::All,
                honors_cancel: true,
            },
            ServiceConfig {
                name: "backend".into(),
                workers: Count::of(8),
                queue: Count::of(512),
                latency: LatencyModel::Exponential {
                    min_ms: 1.0,
                    mean_ms: 4.0,
                },
                error_rate: Probability::of(0.0),
                pick: Pick::All,
                honors_cancel: false,
            },
        ];
        let at = c.fault_at_ms.get();
        let end = at + c.fault_ms.get();
        let faults = vec![
            ScheduledServiceFault {
                at_ms: Millis::new("faultAtMs", at)?,
                action: MeshLabAction::SlowService {
                    service: 1,
                    factor: c.slow_factor,
                },
            },
            ScheduledServiceFault {
                at_ms: Millis::new("faultMs", end)?,
                action: MeshLabAction::HealService { service: 1 },
            },
        ];
        let run = |fixed: bool| MeshLabConfig {
            seed: c.seed,
            services: services.clone(),
            edges: vec![EdgeConfig {
                from: 0,
                to: 1,
                weight: Count::of(1),
                policy: Some(backend_policy(fixed)),
            }],
            client_policy: Some(timeout_policy(2_000)),
            requests_per_sec: Count::of(c.requests_per_sec.get()),
            service_faults: faults.clone(),
            network: c.network.clone(),
            sample_ms: c.sample_ms,
            ..MeshLabConfig::default()
        };
        Ok([run(false), run(true)])
    }

    fn window(c: &RetryStormLabConfig) -> (Time, Time) {
        let at = c.fault_at_ms.duration().0;
        (Time(at), Time(at + c.fault_ms.duration().0))
    }

    fn struggling(_: &RetryStormLabConfig) -> u32 {
        1
    }

    fn watched_edge(_: &RetryStormLabConfig) -> u32 {
        1
    }

    fn lessons() -> Vec<crate::lab::lesson::Lesson> {
        lessons()
    }
}

/// The lesson `scenario.retry-storm` carries (Brooker, "Exponential Backoff and
/// Jitter", AWS Architecture Blog, 2015; gRPC retry throttling, gRFC A6), timed by the
/// default config's slowdown from 1 s to 3 s.
pub fn lessons() -> Vec<crate::lab::lesson::Lesson> {
    use crate::lab::lesson::{self, Condition, Lesson, Pause};
    // The steps of this lesson take no action of their own.
    let step = |caption: &str, pause: Pause| lesson::step(caption, Vec::new(), pause);
    vec![Lesson {
        id: "storm".into(),
        title: "Retries that outlive the outage".into(),
        follows: "Brooker, \"Exponential Backoff and Jitter\" (AWS Architecture Blog, \
                  2015); gRPC retry throttling (gRFC A6)"
            .into(),
        config: Value::Null,
        steps: vec![
            step(
                "One mesh, one seed, run twice. The gateway calls a backend of 8 workers \
                 with a 100 ms timeout per attempt and up to 5 attempts. On the left it \
                 retries a timed-out attempt at once; on the right it backs off \
                 exponentially with full jitter, within a retry budget. While the backend \
                 is healthy the two are alike: one attempt per request.",
                Pause::After { ms: 950.0 },
            ),
            step(
                "The backend slows tenfold. Attempts wait in its queue past their \
                 timeout. On the left each is retried at once, so the gateway soon sends \
                 three attempts and more per request (the step stops when it does), all \
                 of them to a backend that cannot keep up.",
                Pause::When {
                    condition: Condition::FieldAtLeast {
                        field: "attemptsPerCall".into(),
                        value: 2.0,
                    },
                    within_ms: 2_000.0,
                },
            ),
            step(
                "On the right the budget runs dry: each failure takes a token, each \
                 success gives back a tenth, and below half the retries stop. The backend \
                 sees about the client's own rate, so its queue is shorter.",
                Pause::After { ms: 1_000.0 },
            ),
            step(
                "The slowdown ends at 3 s. On the right the queue drains and requests \
                 succeed again soon. On the left the backend's queue is still full of \
                 attempts nobody waits for (it does not watch for cancels), so new ones \
                 time out too and are retried: the outage outlives its cause. The \
                 comparison panel gives the load and the recovery time of each run.",
                Pause::After { ms: 2_000.0 },
            ),
        ],
    }]
}

/// The retry-storm scenario.
pub type RetryStormLab = MeshScenario<RetryStorm>;
