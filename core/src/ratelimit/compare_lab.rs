//! The comparison lab: one workload fed to every local rate limiter side by side — fixed
//! window, sliding log, sliding counter, token bucket, GCRA and the shaping leaky bucket,
//! all configured from the same `limit` per `windowMs` (the bucket algorithms get capacity
//! `limit` and rate `limit / windowMs`) — showing admitted against rejected over time, the
//! state of each (window counters, the log, the bucket level, the leaky queue, GCRA's TAT),
//! the headers a client of each would see ([`crate::ratelimit::http`]), and the most each
//! admitted in any window of length `windowMs`. The window-boundary burst makes the fixed
//! window admit twice the limit in an instant while the others hold.
//!
//! One lab under five ids, each opening with its algorithm in front: `ratelimit.fixed-window`,
//! `ratelimit.sliding-log`, `ratelimit.sliding-counter`, `ratelimit.leaky-bucket` (the queue,
//! with GCRA, its meter twin, beside it) and `ratelimit.keyed`, which opens on the keyed
//! limiters' memory and evictions with Zipf-distributed keys. (`ratelimit.token-bucket` keeps
//! its own lab, [`crate::ratelimit::token_bucket::lab`].)
//!
//! Keys: requests carry keys drawn from `keys` (one key by default; Zipf over 1 000 keys in
//! `ratelimit.keyed`). Key 0 — the hottest under Zipf — is followed in detail by each
//! algorithm's [`Lane`] (its own limiter, never evicted: level chart, decisions, envelope
//! check); every other key goes to that algorithm's [`KeyedLimiter`] of at most `maxKeys`
//! keys, which sweeps idle keys as it goes. Admitted and rejected counts cover all keys.
//!
//! Every arrival is one event, decided by all six algorithms at the same time.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Debug;
use std::hash::Hasher;
use std::marker::PhantomData;

use crate::error::{DistlabError, Result};
use crate::lab::local::{LocalLab, Moment};
use crate::lab::sampling::{Sampled, Sampler};
use crate::lab::settings::local_lab_config;
use crate::lab::view::{InvariantStatus, NodeView, Panel, Series, View};
use crate::ratelimit::fixed_window::{FixedWindowConfig, FixedWindowRule};
use crate::ratelimit::gcra::{GcraConfig, GcraRule};
use crate::ratelimit::http::{QuotaPolicy, render_with_policy};
use crate::ratelimit::keyed::KeyedLimiter;
use crate::ratelimit::lane::{
    DecisionRecord, Envelope, Lane, LimiterUnderTest, MAX_BURST_REQUESTS, RequestSource,
};
use crate::ratelimit::leaky_bucket::{LeakyBucket, LeakyBucketConfig, LeakyBucketRule};
use crate::ratelimit::rule::{Limiter, Rule};
use crate::ratelimit::sliding_counter::{SlidingCounterConfig, SlidingCounterRule};
use crate::ratelimit::sliding_log::{SlidingLogConfig, SlidingLogRule};
use crate::ratelimit::token_bucket::TokenBucketRule;
use crate::ratelimit::{RateLimitDecision, TokenBucket, TokenBucketConfig};
use crate::rng::SimRng;
use crate::sim::NodeId;
use crate::sim::trace::StableHasher;
use crate::sim::workload::{ArrivalFeed, ArrivalProcess, KeyDistribution, KeySampler, within};
use crate::time::{Duration, Time};

/// Points kept per metric series: twelve series, so fewer than a single-limiter lab keeps
/// (a view is built every frame).
pub const COMPARE_SERIES_POINTS: usize = 150;
/// Newest points of the front algorithm's level curve shown.
pub const LEVEL_POINTS: usize = 200;
/// Admissions each lane's envelope check looks back over: six lanes decide every request,
/// so each looks back a quarter as far as the token-bucket lab's single lane (with the
/// default limit of 10 that still spans six windows' worth of admissions).
pub const ENVELOPE_LOOKBACK: usize = 64;
/// Idle keys each keyed limiter sweeps per decision.
pub const SWEEP_PER_DECISION: usize = 2;
/// Pending departures of the leaky queue shown.
pub const SHOWN_QUEUE: usize = 20;
/// Largest `maxKeys` in the lab: six keyed limiters of this many keys stay within a few
/// megabytes of the page's memory (the limiter itself takes up to 2^32 − 2).
pub const MAX_LAB_KEYS: u64 = 10_000;

/// The algorithms the lab runs, in the order it shows them (after the one in front).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum Algorithm {
    FixedWindow,
    SlidingLog,
    SlidingCounter,
    TokenBucket,
    Gcra,
    LeakyBucket,
}

impl Algorithm {
    pub const ALL: [Algorithm; 6] = [
        Algorithm::FixedWindow,
        Algorithm::SlidingLog,
        Algorithm::SlidingCounter,
        Algorithm::TokenBucket,
        Algorithm::Gcra,
        Algorithm::LeakyBucket,
    ];
}

/// Which lab id this is and what it shows first.
pub trait Front: Clone + Debug + 'static {
    const ID: &'static str;
    /// The algorithm shown first.
    const FRONT: Algorithm;
    /// Whether the keyed limiters' memory opens the view, and keys default to Zipf.
    const KEYED: bool = false;
    /// The lessons this id carries.
    fn lessons() -> Vec<crate::lab::lesson::Lesson> {
        Vec::new()
    }
}

macro_rules! front {
    ($name:ident, $id:literal, $front:expr, $keyed:literal $(, lessons: $lessons:path)?) => {
        #[doc = concat!("The comparison lab as `", $id, "`.")]
        #[derive(Debug, Clone)]
        pub struct $name;
        impl Front for $name {
            const ID: &'static str = $id;
            const FRONT: Algorithm = $front;
            const KEYED: bool = $keyed;
            $(
                fn lessons() -> Vec<crate::lab::lesson::Lesson> {
                    $lessons()
                }
            )?
        }
    };
}

front!(
    FixedWindowFront,
    "ratelimit.fixed-window",
    Algorithm::FixedWindow,
    false,
    lessons: boundary_burst_lessons
);
front!(
    SlidingLogFront,
    "ratelimit.sliding-log",
    Algorithm::SlidingLog,
    false
);
front!(
    SlidingCounterFront,
    "ratelimit.sliding-counter",
    Algorithm::SlidingCounter,
    false
);
front!(
    LeakyBucketFront,
    "ratelimit.leaky-bucket",
    Algorithm::LeakyBucket,
    false
);
front!(KeyedFront, "ratelimit.keyed", Algorithm::Gcra, true);

local_lab_config! {
    /// Configuration of the comparison lab. JSON: `{"seed": 1, "limit": 10, "windowMs":
    /// 1000, "arrivals": {"type": "poisson", "ratePerSec": 15}, "cost": 1, "maxKeys": 100,
    /// "sampleMs": 100}`, and optionally `"keys": {"type": "zipf", "keys": 1000, "s": 1}`.
    pub struct CompareLabConfig {
        /// The limit of every algorithm: per window, in the log, in the bucket, in the
        /// queue.
        pub limit: f64 = 10.0,
        /// The window; the bucket algorithms refill (drain) `limit` per window.
        pub window_ms: f64 = 1_000.0,
        /// How requests arrive.
        pub arrivals: ArrivalProcess = ArrivalProcess::Poisson { rate_per_sec: 15.0 },
        /// Which keys requests come from; absent: one key (`ratelimit.keyed`: Zipf over
        /// 1 000 keys with s = 1).
        #[serde(skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "tsify", tsify(optional))]
        pub keys: Option<KeyDistribution> = None,
        /// Cost of each arriving request: at most the limit.
        pub cost: f64 = 1.0,
        /// Keys each keyed limiter holds at most (besides key 0).
        pub max_keys: u64 = 100,
    }
}

/// What can be done to the comparison. JSON: `{"type": "request", "key": 3}`,
/// `{"type": "burst", "count": 20}`, `{"type": "setArrivals", "arrivals": {...}}`,
/// `{"type": "setKeys", "keys": {"type": "zipf", "keys": 100, "s": 1.2}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum CompareLabAction {
    /// One request now to every algorithm, from `key` (default 0) of `cost` (default: the
    /// configured cost).
    Request {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "tsify", tsify(optional))]
        key: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "tsify", tsify(optional))]
        cost: Option<f64>,
    },
    /// `count` requests now (1 to 10 000), one after another.
    Burst {
        count: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "tsify", tsify(optional))]
        key: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "tsify", tsify(optional))]
        cost: Option<f64>,
    },
    /// Arrivals follow `arrivals` from now on (the pending arrival is dropped).
    SetArrivals { arrivals: ArrivalProcess },
    /// Arriving requests draw their keys from `keys` from now on.
    SetKeys { keys: KeyDistribution },
}

/// The shaping leaky bucket for the lab: the bucket and the departures it has promised,
/// so the view can show the queue.
#[derive(Debug, Clone)]
pub struct ShapingQueue {
    bucket: LeakyBucket,
    /// (leaves at, cost) of admitted requests, newest last; the view shows those still
    /// queued.
    departures: VecDeque<(Time, f64)>,
}

impl ShapingQueue {
    fn new(bucket: LeakyBucket) -> Self {
        ShapingQueue {
            bucket,
            departures: VecDeque::new(),
        }
    }
}

impl LimiterUnderTest for ShapingQueue {
    fn algorithm(&self) -> &'static str {
        self.bucket.rule().algorithm()
    }
    fn decide(&mut self, now: Time, cost: f64) -> Result<RateLimitDecision> {
        let s = self.bucket.try_enqueue(now, cost)?;
        while self.departures.front().is_some_and(|&(t, _)| t < now) {
            self.departures.pop_front();
        }
        if s.decision.allowed {
            if self.departures.len() >= SHOWN_QUEUE {
                self.departures.pop_front();
            }
            self.departures
                .push_back((now.saturating_add(s.delay), cost));
        }
        Ok(s.decision)
    }
    fn level(&self, now: Time) -> f64 {
        self.bucket.level(now)
    }
    fn limit(&self) -> f64 {
        self.bucket.rule().limit()
    }
    fn full_at(&self, now: Time) -> Time {
        self.bucket.rule().full_at(self.bucket.state(), now)
    }
    fn envelope(&self) -> Envelope {
        self.bucket.rule().envelope()
    }
    fn fields(&self, now: Time) -> BTreeMap<String, Value> {
        let mut f = self.bucket.rule().fields(self.bucket.state(), now);
        let queued: Vec<Value> = self
            .departures
            .iter()
            .filter(|(t, _)| *t >= now)
            .map(|(t, c)| json!([t.as_millis_f64(), c]))
            .collect();
        f.insert("queue [leaves at ms, cost]".into(), json!(queued));
        f
    }
}

impl<R: Rule> LimiterUnderTest for Limiter<R> {
    fn algorithm(&self) -> &'static str {
        self.rule().algorithm()
    }
    fn decide(&mut self, now: Time, cost: f64) -> Result<RateLimitDecision> {
        self.try_acquire(now, cost)
    }
    fn level(&self, now: Time) -> f64 {
        Limiter::level(self, now)
    }
    fn limit(&self) -> f64 {
        self.rule().limit()
    }
    fn full_at(&self, now: Time) -> Time {
        self.rule().full_at(self.state(), now)
    }
    fn envelope(&self) -> Envelope {
        self.rule().envelope()
    }
    fn fields(&self, now: Time) -> BTreeMap<String, Value> {
        self.rule().fields(self.state(), now)
    }
}

/// One algorithm in the comparison: key 0's lane and the keyed limiter for the others.
#[derive(Debug, Clone)]
struct Run<L, R: Rule> {
    algorithm: Algorithm,
    lane: Lane<L>,
    others: KeyedLimiter<R>,
    admitted: u64,
    rejected: u64,
    /// Key 0's admissions in the last window, and the most cost any window held.
    window: Duration,
    in_window: VecDeque<(Time, f64)>,
    in_window_cost: f64,
    max_in_window: f64,
}

impl<L: LimiterUnderTest, R: Rule> Run<L, R> {
    fn new(
        algorithm: Algorithm,
        focus: L,
        rule: R,
        max_keys: u64,
        window: Duration,
    ) -> Result<Self> {
        Ok(Run {
            algorithm,
            lane: Lane::new(focus, Time::ZERO).with_envelope_lookback(ENVELOPE_LOOKBACK),
            others: KeyedLimiter::new(rule, max_keys)?,
            admitted: 0,
            rejected: 0,
            window,
            in_window: VecDeque::new(),
            in_window_cost: 0.0,
            max_in_window: 0.0,
        })
    }
}

/// What the lab needs of a [`Run`], whatever its limiter types.
trait AlgorithmRun: Debug {
    fn clone_box(&self) -> Box<dyn AlgorithmRun>;
    fn algorithm(&self) -> Algorithm;
    fn decide(&mut self, key: u64, step: u64, now: Time, cost: f64, source: RequestSource);
    /// Requests admitted and rejected so far, all keys.
    fn counts(&self) -> (u64, u64);
    fn last(&self) -> Option<&DecisionRecord>;
    fn node_view(&self, id: NodeId, now: Time) -> NodeView;
    fn level_chart(&self, now: Time) -> Panel;
    fn decisions_strip(&self) -> Panel;
    fn invariants(&self) -> Vec<InvariantStatus>;
    fn trace(&self) -> Value;
    fn trace_hash(&self) -> u64;
    fn level(&self, now: Time) -> f64;
    fn envelope(&self) -> Envelope;
    fn totals(&self) -> (u64, u64, f64);
    /// State bytes and bytes per key by layout.
    fn memory(&self) -> (u64, f64);
    fn keyed(&self) -> (u64, u64, u64);
}

impl Clone for Box<dyn AlgorithmRun> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

impl<L, R> AlgorithmRun for Run<L, R>
where
    L: LimiterUnderTest + 'static,
    R: Rule + 'static,
{
    fn clone_box(&self) -> Box<dyn AlgorithmRun> {
        Box::new(self.clone())
    }
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
    /// The cost was checked against the common limit, so no algorithm can fail.
    fn decide(&mut self, key: u64, step: u64, now: Time, cost: f64, source: RequestSource) {
        let allowed = if key == 0 {
            let allowed = self
                .lane
                .decide(step, now, cost, source)
                .is_ok_and(|d| d.allowed);
            if allowed {
                while self
                    .in_window
                    .front()
                    .is_some_and(|&(t, _)| t.saturating_add(self.window) <= now)
                {
                    if let Some((_, c)) = self.in_window.pop_front() {
                        self.in_window_cost -= c;
                    }
                }
                self.in_window.push_back((now, cost));
                self.in_window_cost += cost;
                self.max_in_window = self.max_in_window.max(self.in_window_cost);
            }
            allowed
        } else {
            let allowed = self
                .others
                .try_acquire(key, now, cost)
                .is_ok_and(|d| d.allowed);
            self.others.sweep_idle(now, SWEEP_PER_DECISION);
            allowed
        };
        if allowed {
            self.admitted += 1;
        } else {
            self.rejected += 1;
        }
    }
    fn counts(&self) -> (u64, u64) {
        (self.admitted, self.rejected)
    }
    fn last(&self) -> Option<&DecisionRecord> {
        self.lane.last()
    }
    fn node_view(&self, id: NodeId, now: Time) -> NodeView {
        let mut node = self.lane.node_view(id, now);
        node.fields
            .insert("admittedAllKeys".into(), json!(self.admitted));
        node.fields
            .insert("rejectedAllKeys".into(), json!(self.rejected));
        node.fields
            .insert("maxInAnyWindow".into(), json!(self.max_in_window));
        node.fields
            .insert("otherKeysHeld".into(), json!(self.others.len()));
        node
    }
    fn level_chart(&self, now: Time) -> Panel {
        self.lane.level_chart(now)
    }
    fn decisions_strip(&self) -> Panel {
        self.lane.decisions_strip()
    }
    fn invariants(&self) -> Vec<InvariantStatus> {
        self.lane.invariants()
    }
    fn trace(&self) -> Value {
        self.lane.trace()
    }
    fn trace_hash(&self) -> u64 {
        self.lane.trace_hash()
    }
    fn level(&self, now: Time) -> f64 {
        self.lane.limiter().level(now)
    }
    fn envelope(&self) -> Envelope {
        self.lane.limiter().envelope()
    }
    fn totals(&self) -> (u64, u64, f64) {
        (self.admitted, self.rejected, self.max_in_window)
    }
    fn memory(&self) -> (u64, f64) {
        (
            std::mem::size_of::<R::State>() as u64,
            KeyedLimiter::<R>::layout_bytes_per_key(),
        )
    }
    fn keyed(&self) -> (u64, u64, u64) {
        let e = self.others.evictions();
        (self.others.len() as u64, e.idle, e.forced)
    }
}

/// A chart with only the newest `n` points of each series.
fn newest_points(mut panel: Panel, n: usize) -> Panel {
    if let Panel::Chart { series, .. } = &mut panel {
        for s in series {
            let skip = s.x.len().saturating_sub(n);
            s.x.drain(..skip);
            s.y.drain(..skip.min(s.y.len()));
        }
    }
    panel
}

fn name(a: Algorithm) -> &'static str {
    match a {
        Algorithm::FixedWindow => "fixed window",
        Algorithm::SlidingLog => "sliding log",
        Algorithm::SlidingCounter => "sliding counter",
        Algorithm::TokenBucket => "token bucket",
        Algorithm::Gcra => "GCRA",
        Algorithm::LeakyBucket => "leaky bucket (queue)",
    }
}

fn build_runs(c: &CompareLabConfig) -> Result<Vec<Box<dyn AlgorithmRun>>> {
    let (limit, window_ms) = (c.limit, c.window_ms);
    let fixed = FixedWindowRule::new(FixedWindowConfig { limit, window_ms })?;
    let window = Duration::try_from_millis_f64("windowMs", window_ms)?;
    let rate = limit / window.as_secs_f64();
    let log = SlidingLogRule::new(SlidingLogConfig { limit, window_ms })?;
    let counter = SlidingCounterRule::new(SlidingCounterConfig { limit, window_ms })?;
    let rated = |e: DistlabError| match e {
        DistlabError::InvalidField { problem, .. } => DistlabError::field(
            "windowMs",
            format!("the bucket algorithms' rate limit / window: {problem}"),
        ),
        other => other,
    };
    let bucket_config = TokenBucketConfig::new(limit, rate);
    let bucket = TokenBucketRule::new(bucket_config).map_err(rated)?;
    let gcra = GcraRule::new(GcraConfig {
        burst: limit,
        rate_per_sec: rate,
    })
    .map_err(rated)?;
    let leaky_config = LeakyBucketConfig {
        queue_size: limit,
        drain_per_sec: rate,
    };
    let leaky = LeakyBucketRule::new(leaky_config).map_err(rated)?;
    let keys = c.max_keys;
    let runs: Vec<Box<dyn AlgorithmRun>> = vec![
        Box::new(Run::new(
            Algorithm::FixedWindow,
            Limiter::from_rule(fixed, Time::ZERO),
            fixed,
            keys,
            window,
        )?),
        Box::new(Run::new(
            Algorithm::SlidingLog,
            Limiter::from_rule(log, Time::ZERO),
            log,
            keys,
            window,
        )?),
        Box::new(Run::new(
            Algorithm::SlidingCounter,
            Limiter::from_rule(counter, Time::ZERO),
            counter,
            keys,
            window,
        )?),
        Box::new(Run::new(
            Algorithm::TokenBucket,
            TokenBucket::new(bucket_config).map_err(rated)?,
            bucket,
            keys,
            window,
        )?),
        Box::new(Run::new(
            Algorithm::Gcra,
            Limiter::from_rule(gcra, Time::ZERO),
            gcra,
            keys,
            window,
        )?),
        Box::new(Run::new(
            Algorithm::LeakyBucket,
            ShapingQueue::new(Limiter::from_rule(leaky, Time::ZERO)),
            leaky,
            keys,
            window,
        )?),
    ];
    Ok(runs)
}

/// The comparison lab, under the id and with the front of `F`.
#[derive(Debug, Clone)]
pub struct CompareLab<F> {
    feed: ArrivalFeed,
    key_rng: SimRng,
    keys: KeyDistribution,
    sampler_keys: KeySampler,
    cost: f64,
    limit: f64,
    window: Duration,
    /// In display order: the front first.
    runs: Vec<Box<dyn AlgorithmRun>>,
    _front: PhantomData<F>,
}

impl<F: Front> CompareLab<F> {
    fn default_keys() -> KeyDistribution {
        if F::KEYED {
            KeyDistribution::Zipf {
                keys: 1_000,
                s: 1.0,
            }
        } else {
            KeyDistribution::Uniform { keys: 1 }
        }
    }

    fn check_cost(&self, cost: f64) -> Result<f64> {
        crate::error::check_positive("cost", cost)?;
        if cost > self.limit {
            return Err(DistlabError::field(
                "cost",
                format!(
                    "{cost} exceeds the limit {}: it could never be admitted",
                    self.limit
                ),
            ));
        }
        Ok(cost)
    }

    fn decide_all(&mut self, at: Moment, key: u64, cost: f64, source: RequestSource) {
        for run in &mut self.runs {
            run.decide(key, at.step, at.now, cost, source);
        }
    }

    fn front_run(&self) -> &dyn AlgorithmRun {
        self.runs[0].as_ref()
    }

    fn state_table(&self, now: Time) -> Panel {
        let rows = self
            .runs
            .iter()
            .map(|r| {
                let (admitted, rejected, max) = r.totals();
                let env = r.envelope();
                vec![
                    json!(name(r.algorithm())),
                    json!(admitted),
                    json!(rejected),
                    json!(r.level(now)),
                    json!(max),
                    json!(format!("{} + {}/s · t", env.burst, env.rate_per_sec)),
                ]
            })
            .collect();
        Panel::Table {
            title: format!(
                "side by side (key 0; most admitted in any {} ms window)",
                self.window.as_millis_f64()
            ),
            columns: vec![
                "algorithm".into(),
                "admitted".into(),
                "rejected".into(),
                "allowance now".into(),
                "max in a window".into(),
                "bound".into(),
            ],
            rows,
        }
    }

    fn headers_table(&self) -> Panel {
        let rows = self
            .runs
            .iter()
            .map(|r| match r.last() {
                None => vec![json!(name(r.algorithm())), json!("no request yet")],
                Some(rec) => {
                    let policy = QuotaPolicy::from_envelope("default", &r.envelope());
                    let http = render_with_policy(&rec.decision, &policy, None);
                    let h = |n: &str| json!(http.header(n).unwrap_or("—"));
                    vec![
                        json!(name(r.algorithm())),
                        json!(http.status),
                        h("RateLimit-Limit"),
                        h("RateLimit-Remaining"),
                        h("RateLimit-Reset"),
                        h("Retry-After"),
                        h("RateLimit-Policy"),
                        h("RateLimit"),
                    ]
                }
            })
            .collect();
        Panel::Table {
            title: "what a client sees (key 0's last request)".into(),
            columns: vec![
                "algorithm".into(),
                "status".into(),
                "RateLimit-Limit".into(),
                "RateLimit-Remaining".into(),
                "RateLimit-Reset".into(),
                "Retry-After".into(),
                "RateLimit-Policy".into(),
                "RateLimit".into(),
            ],
            rows,
        }
    }

    fn keyed_table(&self) -> Panel {
        let rows = self
            .runs
            .iter()
            .map(|r| {
                let (state_bytes, per_key) = r.memory();
                let (held, idle, forced) = r.keyed();
                vec![
                    json!(name(r.algorithm())),
                    json!(held),
                    json!(idle),
                    json!(forced),
                    json!(state_bytes),
                    json!(per_key),
                ]
            })
            .collect();
        Panel::Table {
            title: "keyed limiters (keys other than 0)".into(),
            columns: vec![
                "algorithm".into(),
                "keys held".into(),
                "idle evicted".into(),
                "forced evictions".into(),
                "state bytes".into(),
                "bytes per key (layout)".into(),
            ],
            rows,
        }
    }

    fn totals_bars(&self) -> Panel {
        let labels: Vec<String> = self
            .runs
            .iter()
            .map(|r| name(r.algorithm()).into())
            .collect();
        let x: Vec<f64> = (0..labels.len()).map(|i| i as f64).collect();
        let series = [("admitted", 0usize), ("rejected", 1)]
            .iter()
            .map(|&(n, i)| Series {
                name: n.into(),
                unit: "requests".into(),
                x: x.clone(),
                y: self
                    .runs
                    .iter()
                    .map(|r| {
                        let t = r.totals();
                        if i == 0 { t.0 as f64 } else { t.1 as f64 }
                    })
                    .collect(),
            })
            .collect();
        Panel::Bars {
            title: "admitted and rejected in total (all keys)".into(),
            labels,
            series,
        }
    }
}

impl<F: Front> Sampled for CompareLab<F> {
    /// Each run's admitted and rejected so far.
    type Totals = Vec<(u64, u64)>;

    fn series(&self) -> Vec<(String, String)> {
        self.runs
            .iter()
            .flat_map(|r| {
                let n = name(r.algorithm());
                // One unit per chart: the page draws a chart per unit, so admitted and
                // rejected each get one with every algorithm in it.
                [
                    (n.to_string(), "admitted per interval".to_string()),
                    (n.to_string(), "rejected per interval".to_string()),
                ]
            })
            .collect()
    }

    fn totals(&self) -> Vec<(u64, u64)> {
        self.runs.iter().map(|r| r.counts()).collect()
    }

    fn sample(&self, _at: Time, _interval: Duration, since: &Vec<(u64, u64)>) -> Vec<f64> {
        self.runs
            .iter()
            .enumerate()
            .flat_map(|(i, r)| {
                let (a, b) = r.counts();
                let (a0, b0) = since.get(i).copied().unwrap_or_default();
                [(a - a0) as f64, (b - b0) as f64]
            })
            .collect()
    }
}

impl<F: Front> LocalLab for CompareLab<F> {
    const ID: &'static str = F::ID;
    type Config = CompareLabConfig;
    type Action = CompareLabAction;
    const SERIES_POINTS: usize = COMPARE_SERIES_POINTS;

    fn new(c: &CompareLabConfig) -> Result<Self> {
        let mut runs = build_runs(c)?;
        if let Some(i) = runs.iter().position(|r| r.algorithm() == F::FRONT) {
            let front = runs.remove(i);
            runs.insert(0, front);
        }
        let window = Duration::try_from_millis_f64("windowMs", c.window_ms)?;
        let feed = ArrivalFeed::new(c.seed, &c.arrivals, Time::ZERO)?;
        let keys = c.keys.unwrap_or_else(Self::default_keys);
        let sampler_keys = KeySampler::new(&keys).map_err(|e| within("keys", e))?;
        if !(1..=MAX_LAB_KEYS).contains(&c.max_keys) {
            return Err(DistlabError::field(
                "maxKeys",
                format!("must be between 1 and {MAX_LAB_KEYS}, got {}", c.max_keys),
            ));
        }
        let mut lab = CompareLab {
            feed,
            key_rng: SimRng::derive(c.seed, 1),
            keys,
            sampler_keys,
            cost: 0.0,
            limit: c.limit,
            window,
            runs,
            _front: PhantomData,
        };
        lab.cost = lab.check_cost(c.cost).map_err(|e| match e {
            DistlabError::InvalidField { problem, .. } => DistlabError::field("cost", problem),
            other => other,
        })?;
        Ok(lab)
    }

    fn next_event_at(&self, _now: Time) -> Option<Time> {
        Some(self.feed.next_at())
    }

    fn on_event(&mut self, _due: Time, at: Moment) {
        self.feed.take();
        let key = self.sampler_keys.sample(&mut self.key_rng);
        self.decide_all(at, key, self.cost, RequestSource::Arrival);
    }

    fn act(&mut self, at: Moment, action: &CompareLabAction) -> Result<()> {
        match *action {
            CompareLabAction::Request { key, cost } => {
                let cost = self.check_cost(cost.unwrap_or(self.cost))?;
                self.decide_all(at, key.unwrap_or(0), cost, RequestSource::Manual);
            }
            CompareLabAction::Burst { count, key, cost } => {
                if !(1..=MAX_BURST_REQUESTS).contains(&count) {
                    return Err(DistlabError::field(
                        "count",
                        format!("must be between 1 and {MAX_BURST_REQUESTS}, got {count}"),
                    ));
                }
                let cost = self.check_cost(cost.unwrap_or(self.cost))?;
                for _ in 0..count {
                    self.decide_all(at, key.unwrap_or(0), cost, RequestSource::Manual);
                }
            }
            CompareLabAction::SetArrivals { arrivals } => {
                self.feed.set_process(&arrivals, at.now)?;
            }
            CompareLabAction::SetKeys { keys } => {
                self.sampler_keys = KeySampler::new(&keys).map_err(|e| within("keys", e))?;
                self.keys = keys;
            }
        }
        Ok(())
    }

    fn view(&self, at: Moment, _samples: &Sampler<Vec<(u64, u64)>>) -> View {
        let front = self.front_run();
        let mut panels = Vec::new();
        if F::KEYED {
            panels.push(self.keyed_table());
        }
        panels.extend([
            self.state_table(at.now),
            newest_points(front.level_chart(at.now), LEVEL_POINTS),
            self.headers_table(),
            front.decisions_strip(),
            self.totals_bars(),
        ]);
        if !F::KEYED {
            panels.push(self.keyed_table());
        }
        panels.push(Panel::Table {
            title: "workload".into(),
            columns: vec!["knob".into(), "value".into()],
            rows: vec![
                vec![json!("arrivals"), json!(self.feed.process())],
                vec![json!("keys"), json!(self.keys)],
                vec![json!("cost per request"), json!(self.cost)],
                vec![json!("next arrival µs"), json!(self.feed.next_at())],
            ],
        });
        let invariants = self
            .runs
            .iter()
            .enumerate()
            .flat_map(|(i, r)| {
                r.invariants().into_iter().map(move |mut s| {
                    s.name = format!("{}: {}", name(r.algorithm()), s.name);
                    if !s.nodes.is_empty() {
                        s.nodes = vec![i as NodeId];
                    }
                    s
                })
            })
            .collect();
        View {
            nodes: self
                .runs
                .iter()
                .enumerate()
                .map(|(i, r)| r.node_view(i as NodeId, at.now))
                .collect(),
            panels,
            invariants,
            ..View::default()
        }
    }

    /// The front lane's newest decisions, and a hash over every lane's decisions.
    fn trace(&self, at: Moment) -> Value {
        let mut hasher = StableHasher::default();
        let mut hashes = serde_json::Map::new();
        for r in &self.runs {
            let h = r.trace_hash();
            hasher.write_u64(h);
            hashes.insert(name(r.algorithm()).into(), json!(format!("{h:016x}")));
        }
        // Taken, not cloned: the records are most of a trace's cost.
        let mut front = self.front_run().trace();
        json!({
            "hash": format!("{:016x}", hasher.finish()),
            "events": at.step,
            "complete": front["complete"].take(),
            "trace": front["trace"].take(),
            "laneHashes": hashes,
        })
    }

    fn lessons() -> Vec<crate::lab::lesson::Lesson> {
        F::lessons()
    }

    fn example_actions() -> Vec<CompareLabAction> {
        use ArrivalProcess::*;
        vec![
            CompareLabAction::Request {
                key: None,
                cost: None,
            },
            CompareLabAction::Burst {
                count: 20,
                key: None,
                cost: None,
            },
            CompareLabAction::SetArrivals {
                arrivals: WindowBoundaryBurst {
                    window_ms: 1_000.0,
                    burst: 10,
                    spacing_ms: 0.0,
                    every_windows: 2,
                },
            },
            CompareLabAction::SetArrivals {
                arrivals: Constant { rate_per_sec: 8.0 },
            },
            CompareLabAction::SetArrivals {
                arrivals: OnOff {
                    rate_per_sec: 100.0,
                    on_ms: 200.0,
                    off_ms: 800.0,
                },
            },
            CompareLabAction::SetKeys {
                keys: KeyDistribution::Zipf { keys: 100, s: 1.0 },
            },
            CompareLabAction::SetKeys {
                keys: KeyDistribution::Uniform { keys: 1 },
            },
        ]
    }
}

/// `ratelimit.fixed-window`.
pub type FixedWindowLab = CompareLab<FixedWindowFront>;
/// `ratelimit.sliding-log`.
pub type SlidingLogLab = CompareLab<SlidingLogFront>;
/// `ratelimit.sliding-counter`.
pub type SlidingCounterLab = CompareLab<SlidingCounterFront>;
/// `ratelimit.leaky-bucket`.
pub type LeakyBucketLab = CompareLab<LeakyBucketFront>;
/// `ratelimit.keyed`.
pub type KeyedLab = CompareLab<KeyedFront>;

/// The lesson the fixed-window comparison carries: the burst at a window boundary that
/// a fixed window admits and a sliding log refuses (the problem Cloudflare's sliding
/// window counter answers: "How we built rate limiting capable of scaling to millions of
/// domains", Cloudflare blog, 2017).
pub fn boundary_burst_lessons() -> Vec<crate::lab::lesson::Lesson> {
    use crate::lab::lesson::{Lesson, LessonStep, Pause};
    let step = |caption: &str, ms: f64| LessonStep {
        caption: caption.into(),
        actions: Vec::new(),
        pause: Pause::After { ms },
    };
    vec![Lesson {
        id: "boundary-burst".into(),
        title: "Twice the limit at a window boundary".into(),
        follows: "Cloudflare, How we built rate limiting capable of scaling to millions of \
                  domains (2017)"
            .into(),
        config: serde_json::json!({
            "arrivals": {"type": "windowBoundaryBurst", "windowMs": 1000.0, "burst": 10, "spacingMs": 2.0}
        }),
        steps: vec![
            step(
                "Every limiter allows 10 requests per second. The client sends exactly 10 \
                 per second on average — but bunched: ten in the last few milliseconds \
                 before the window boundary at 1 s.",
                999.0,
            ),
            step(
                "And ten more just after it. The fixed window counts per calendar window, \
                 so it admits all twenty within 40 ms: twice the limit in an instant. The \
                 sliding log counts the last second from each request and refuses the \
                 second ten; the sliding counter's weighted estimate refuses most of them.",
                60.0,
            ),
            step(
                "The pattern repeats every other window; compare what each algorithm \
                 admitted in the charts and tables below.",
                3_000.0,
            ),
        ],
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Lab, Local, Runner};

    fn lab<F: Front>(config: Value) -> Runner<Local<CompareLab<F>>> {
        Runner::from_json(&config).unwrap()
    }

    fn row<'a>(v: &'a View, title_start: &str, algorithm: &str) -> &'a Vec<Value> {
        v.panels
            .iter()
            .find_map(|p| match p {
                Panel::Table { title, rows, .. } if title.starts_with(title_start) => {
                    rows.iter().find(|r| r[0] == json!(algorithm))
                }
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn the_boundary_burst_lets_the_fixed_window_admit_twice_the_limit() {
        let mut l = lab::<FixedWindowFront>(json!({
            "limit": 10, "windowMs": 1000,
            "arrivals": {"type": "windowBoundaryBurst", "windowMs": 1000, "burst": 10}
        }));
        l.step(Duration::from_secs(10)).unwrap();
        let v = l.view();
        assert!(v.invariants.iter().all(|i| i.ok), "{:?}", v.invariants);
        assert_eq!(v.nodes[0].label, "fixed window");
        let max = |a: &str| row(&v, "side by side", a)[4].as_f64().unwrap();
        assert_eq!(max("fixed window"), 20.0);
        for a in [
            "sliding log",
            "sliding counter",
            "token bucket",
            "GCRA",
            "leaky bucket (queue)",
        ] {
            assert!(max(a) <= 10.0 + 1e-9, "{a}: {}", max(a));
        }
        // The fixed window admitted every request; the exact log about half.
        let admitted = |a: &str| row(&v, "side by side", a)[1].as_u64().unwrap();
        assert_eq!(admitted("fixed window"), l.steps());
        assert!(admitted("sliding log") < l.steps());
    }

    #[test]
    fn every_front_opens_with_its_algorithm_and_headers_render() {
        fn check<F: Front>(label: &str) {
            let mut l = lab::<F>(Value::Null);
            l.act(&json!({"type": "burst", "count": 15})).unwrap();
            let v = l.view();
            assert_eq!(v.nodes.len(), 6);
            assert_eq!(v.nodes[0].label, label);
            let h = row(&v, "what a client sees", "sliding log");
            assert_eq!(h[1], json!(429));
            assert_eq!(h[2], json!("10"));
            assert_eq!(h[3], json!("0"));
            assert_eq!(h[5], json!("1"));
            assert!(v.invariants.iter().all(|i| i.ok));
        }
        check::<FixedWindowFront>("fixed window");
        check::<SlidingLogFront>("sliding log");
        check::<SlidingCounterFront>("sliding counter");
        check::<LeakyBucketFront>("leaky bucket (queue)");
        check::<KeyedFront>("GCRA");
    }

    #[test]
    fn the_leaky_queue_shows_when_requests_leave() {
        let mut l =
            lab::<LeakyBucketFront>(json!({"arrivals": {"type": "poisson", "ratePerSec": 1e-6}}));
        l.act(&json!({"type": "burst", "count": 3})).unwrap();
        let v = l.view();
        assert_eq!(
            v.nodes[0].fields["queue [leaves at ms, cost]"],
            json!([[0.0, 1.0], [100.0, 1.0], [200.0, 1.0]])
        );
        assert_eq!(v.nodes[0].fields["backlog"], json!(3.0));
    }

    #[test]
    fn keyed_lab_bounds_keys_and_reports_memory() {
        let mut l = lab::<KeyedFront>(
            json!({"maxKeys": 50, "arrivals": {"type": "poisson", "ratePerSec": 500}}),
        );
        l.step(Duration::from_secs(5)).unwrap();
        let v = l.view();
        let Panel::Table { title, rows, .. } = &v.panels[0] else {
            panic!()
        };
        assert!(title.starts_with("keyed"));
        for r in rows {
            assert!(r[1].as_u64().unwrap() <= 50);
            assert!(r[5].as_f64().unwrap() > 0.0);
        }
        let gcra = rows.iter().find(|r| r[0] == json!("GCRA")).unwrap();
        assert_eq!(gcra[4], json!(16));
        assert!(v.invariants.iter().all(|i| i.ok));
    }

    #[test]
    fn bad_configs_and_actions_name_the_field() {
        for (config, field) in [
            (json!({"limit": 0}), "config.limit"),
            (json!({"windowMs": -1}), "config.windowMs"),
            (json!({"limit": 1e15, "windowMs": 1e-3}), "config.windowMs"),
            (json!({"cost": 11}), "config.cost"),
            (json!({"maxKeys": 0}), "config.maxKeys"),
            (
                json!({"keys": {"type": "zipf", "keys": 0, "s": 1}}),
                "config.keys.keys",
            ),
            (json!({"sampleMs": 0}), "config.sampleMs"),
        ] {
            let e = Runner::<Local<FixedWindowLab>>::from_json(&config)
                .err()
                .unwrap();
            assert!(
                e.to_string().contains(&format!("`{field}`")),
                "{config}: {e}"
            );
        }
        let mut l = lab::<FixedWindowFront>(Value::Null);
        l.step_events(5).unwrap();
        let before = (serde_json::to_value(l.view()).unwrap(), l.trace());
        for (action, field) in [
            (json!({"type": "request", "cost": 11}), "action.cost"),
            (json!({"type": "burst", "count": 0}), "action.count"),
            (
                json!({"type": "setKeys", "keys": {"type": "uniform", "keys": 0}}),
                "action.keys.keys",
            ),
        ] {
            let e = l.act(&action).unwrap_err();
            assert!(
                e.to_string().contains(&format!("`{field}`")),
                "{action}: {e}"
            );
        }
        assert_eq!((serde_json::to_value(l.view()).unwrap(), l.trace()), before);
    }
}
