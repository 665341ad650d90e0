//! Lab `ratelimit.token-bucket`: a token bucket fed by an arrival process, every arrival
//! one `try_acquire` (one event). The view shows the bucket's level as the exact sawtooth
//! it is (a drop at each admission, a linear refill, flat at capacity), admitted against
//! rejected per interval, the newest decisions, the last decision as the `RateLimit` /
//! `Retry-After` fields it maps to, and two invariants: the admission envelope (cost
//! admitted in any window of length `t` is at most `capacity + rate · t`) and
//! `0 ≤ tokens ≤ capacity`. It is one [`Lane`] of the rate limiters' lane kit
//! ([`crate::ratelimit::lane`]).
//!
//! Reconfiguring (capacity and rate) keeps the tokens present, cut down to the new capacity
//! ([`TokenBucket::reconfigure`]); the envelope is then checked afresh from that moment,
//! since windows that straddle the change obey neither configuration's bound alone.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::fmt::Debug;

use crate::error::{DistlabError, Result};
use crate::lab::local::{DrivenLab, LocalLab, Moment};
use crate::lab::sampling::{Sampled, Sampler};
use crate::lab::settings::local_lab_config;
use crate::lab::view::{Panel, View};
use crate::ratelimit::lane::{Lane, LimiterUnderTest, MAX_BURST_REQUESTS, RequestSource};
use crate::ratelimit::{TokenBucket, TokenBucketConfig};
use crate::sim::workload::{ArrivalProcess, within};
use crate::time::{Duration, Time};

local_lab_config! {
    /// Configuration of the token-bucket lab. JSON: `{"seed": 1, "bucket": {"capacity":
    /// 10, "refillPerSec": 5}, "arrivals": {"type": "poisson", "ratePerSec": 8}, "cost": 1,
    /// "sampleMs": 100}`.
    pub struct TokenBucketLabConfig {
        pub bucket: TokenBucketConfig = TokenBucketConfig::new(10.0, 5.0),
        /// How requests arrive.
        pub arrivals: ArrivalProcess = ArrivalProcess::Poisson { rate_per_sec: 8.0 },
        /// Tokens each arriving request costs: at most the capacity.
        pub cost: f64 = 1.0,
    }
}

/// What can be done to the bucket. JSON: `{"type": "request", "cost": 3}`,
/// `{"type": "burst", "count": 20}`, `{"type": "reconfigure", "capacity": 20,
/// "refillPerSec": 2}` (and the kit's `setArrivals`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum TokenBucketLabAction {
    /// One request now, of `cost` (default: the configured cost).
    Request {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cost: Option<f64>,
    },
    /// `count` requests now (1 to 10 000), one after another, each of `cost` (default: the
    /// configured cost).
    Burst {
        count: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cost: Option<f64>,
    },
    /// New capacity and refill rate from now on. The tokens present are kept, cut down to
    /// the new capacity; the capacity must be at least the configured cost.
    Reconfigure { capacity: f64, refill_per_sec: f64 },
}

/// The token-bucket lab.
#[derive(Debug, Clone)]
pub struct TokenBucketLab {
    cost: f64,
    lane: Lane<TokenBucket>,
}

impl TokenBucketLab {
    /// The lane, for tests and for drivers that want the raw records.
    pub fn lane(&self) -> &Lane<TokenBucket> {
        &self.lane
    }
}

impl Sampled for TokenBucketLab {
    /// Admitted and rejected so far.
    type Totals = (u64, u64);

    fn series(&self) -> Vec<(String, String)> {
        [
            ("tokens", "tokens"),
            ("admitted", "per interval"),
            ("rejected", "per interval"),
        ]
        .map(|(n, u)| (n.into(), u.into()))
        .to_vec()
    }

    fn totals(&self) -> (u64, u64) {
        self.lane.counts()
    }

    fn sample(&self, at: Time, _interval: Duration, since: &(u64, u64)) -> Vec<f64> {
        self.lane.sample(at, *since).to_vec()
    }
}

impl LocalLab for TokenBucketLab {
    const ID: &'static str = "ratelimit.token-bucket";
    type Config = TokenBucketLabConfig;
    type Action = TokenBucketLabAction;

    fn new(c: &TokenBucketLabConfig) -> Result<Self> {
        let bucket = TokenBucket::new(c.bucket).map_err(|e| within("bucket", e))?;
        let lane = Lane::new(bucket, Time::ZERO);
        let cost = lane.check_cost(c.cost).map_err(|e| match e {
            DistlabError::InvalidField { problem, .. } => DistlabError::field(
                "cost",
                format!("{problem} (the bucket's capacity is {})", c.bucket.capacity),
            ),
            other => other,
        })?;
        Ok(TokenBucketLab { cost, lane })
    }

    fn act(&mut self, at: Moment, action: &TokenBucketLabAction) -> Result<()> {
        match *action {
            TokenBucketLabAction::Request { cost } => {
                let cost = self.lane.check_cost(cost.unwrap_or(self.cost))?;
                self.lane
                    .decide(at.step, at.now, cost, RequestSource::Manual)?;
            }
            TokenBucketLabAction::Burst { count, cost } => {
                if !(1..=MAX_BURST_REQUESTS).contains(&count) {
                    return Err(DistlabError::field(
                        "count",
                        format!("must be between 1 and {MAX_BURST_REQUESTS}, got {count}"),
                    ));
                }
                let cost = self.lane.check_cost(cost.unwrap_or(self.cost))?;
                for _ in 0..count {
                    self.lane
                        .decide(at.step, at.now, cost, RequestSource::Manual)?;
                }
            }
            TokenBucketLabAction::Reconfigure {
                capacity,
                refill_per_sec,
            } => {
                // NaN fails this comparison too, and then fails validation below.
                if capacity < self.cost {
                    return Err(DistlabError::field(
                        "capacity",
                        format!(
                            "must be at least the cost per request {}, or no arrival could \
                             ever be admitted; got {capacity}",
                            self.cost
                        ),
                    ));
                }
                let now = at.now;
                self.lane
                    .reconfigure(now, |b| b.reconfigure(now, capacity, refill_per_sec))?;
            }
        }
        Ok(())
    }

    fn view(&self, at: Moment, samples: &Sampler<(u64, u64)>) -> View {
        let series = samples.series();
        let per_interval = Panel::Chart {
            title: format!(
                "admitted and rejected per {} ms",
                samples.interval().as_millis_f64()
            ),
            x_label: "time (ms)".into(),
            series: series.iter().skip(1).take(2).cloned().collect(),
        };
        let workload = Panel::Table {
            title: "workload".into(),
            columns: vec!["knob".into(), "value".into()],
            rows: vec![
                vec![json!("cost per request"), json!(self.cost)],
                vec![json!("envelope"), json!(self.lane.limiter().envelope())],
            ],
        };
        View {
            nodes: vec![self.lane.node_view(0, at.now)],
            panels: vec![
                self.lane.level_chart(at.now),
                per_interval,
                self.lane.decisions_strip(),
                self.lane.last_decision_table(),
                workload,
            ],
            invariants: self.lane.invariants(),
            ..View::default()
        }
    }

    fn trace(&self, _at: Moment) -> Value {
        self.lane.trace()
    }

    fn example_actions() -> Vec<TokenBucketLabAction> {
        vec![
            TokenBucketLabAction::Request { cost: None },
            TokenBucketLabAction::Request { cost: Some(5.0) },
            TokenBucketLabAction::Burst {
                count: 20,
                cost: None,
            },
            TokenBucketLabAction::Reconfigure {
                capacity: 20.0,
                refill_per_sec: 2.0,
            },
            TokenBucketLabAction::Reconfigure {
                capacity: 5.0,
                refill_per_sec: 20.0,
            },
        ]
    }
}

impl DrivenLab for TokenBucketLab {
    fn arrivals(c: &TokenBucketLabConfig) -> &ArrivalProcess {
        &c.arrivals
    }

    fn on_arrival(&mut self, at: Moment) {
        // Cannot fail: the cost is positive and at most the capacity, which every
        // reconfiguration keeps.
        let _ = self
            .lane
            .decide(at.step, at.now, self.cost, RequestSource::Arrival);
    }

    /// A steady trickle, on-off bursts, and the burst at a window boundary that a fixed
    /// window admits twice over and a token bucket does not.
    fn example_arrivals() -> Vec<ArrivalProcess> {
        use ArrivalProcess::*;
        vec![
            Constant { rate_per_sec: 4.0 },
            OnOff {
                rate_per_sec: 100.0,
                on_ms: 200.0,
                off_ms: 800.0,
            },
            WindowBoundaryBurst {
                window_ms: 1_000.0,
                burst: 10,
                spacing_ms: 0.0,
                every_windows: 2,
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Driven, Lab, LabModel, Runner};
    use crate::ratelimit::RateLimitDecision;
    use crate::ratelimit::lane::{
        ENVELOPE_ADMISSIONS, Envelope, RECENT_DECISIONS, SERIES_POINTS, STRIP_DECISIONS,
    };
    use serde_json::json;
    use std::collections::BTreeMap;

    fn lab(config: Value) -> Runner<Driven<TokenBucketLab>> {
        Runner::from_json(&config).unwrap()
    }

    fn field_of(e: DistlabError) -> String {
        match e {
            DistlabError::InvalidField { field, .. } => field,
            other => panic!("expected a field error, got {other}"),
        }
    }

    fn all_ok(v: &View) -> bool {
        v.invariants.iter().all(|i| i.ok)
    }

    #[test]
    fn default_run_admits_the_refill_rate_and_rejects_the_rest() {
        let mut l = lab(Value::Null);
        l.step(Duration::from_secs(100)).unwrap();
        let lane = l.model().lane();
        // 8/s offered against 5/s refilled and 10 to start with.
        assert!(lane.admitted <= 10 + 500);
        assert!(lane.admitted >= 480, "{}", lane.admitted);
        assert!(lane.rejected >= 200, "{}", lane.rejected);
        assert_eq!(lane.admitted + lane.rejected, l.steps());
        let v = l.view();
        assert!(all_ok(&v), "{:?}", v.invariants);
        assert_eq!(v.nodes[0].fields["capacity"], json!(10.0));
        assert_eq!(v.nodes[0].fields["refillPerSec"], json!(5.0));
        assert!(v.nodes[0].fields["lastDecision"].is_string());
        let Panel::Strip { items, .. } = &v.panels[2] else {
            panic!()
        };
        assert_eq!(items.len(), STRIP_DECISIONS);
        let Panel::Table { rows, .. } = &v.panels[3] else {
            panic!()
        };
        assert_eq!(rows[0][0], json!("allowed"));
        assert_eq!(rows[1][1], json!(10.0));
    }

    #[test]
    fn a_burst_at_the_window_boundary_is_visible() {
        // 10 just before and 10 just after the 1 s boundary, all within a microsecond: a
        // full bucket of 10 admits exactly half of them.
        let mut l = lab(json!({
            "bucket": {"capacity": 10, "refillPerSec": 10},
            "arrivals": {"type": "windowBoundaryBurst", "windowMs": 1000, "burst": 10}
        }));
        l.step(Duration::from_millis(1_050)).unwrap();
        assert_eq!(l.steps(), 20);
        let lane = l.model().lane();
        assert_eq!((lane.admitted, lane.rejected), (10, 10));
        let v = l.view();
        let Panel::Strip { items, .. } = &v.panels[2] else {
            panic!()
        };
        let states: Vec<&str> = items.iter().map(|i| i.state.as_str()).collect();
        assert_eq!(states, [["ok"; 10], ["rejected"; 10]].concat());
        // The chart spikes in the interval ending at the boundary: a sample at time x counts
        // the decisions up to and including x.
        let v = l.view();
        let Panel::Chart { series, .. } = &v.panels[1] else {
            panic!()
        };
        let rejected = &series[1];
        assert_eq!(rejected.name, "rejected");
        let spike = rejected.x.iter().position(|&x| x == 1_000.0).unwrap();
        assert_eq!(rejected.y[spike], 10.0);
        assert_eq!(series[0].y[spike], 10.0);
        assert!(
            rejected
                .y
                .iter()
                .enumerate()
                .all(|(i, &y)| i == spike || y == 0.0)
        );
        // The level drops from 10 to 0 in that instant; the last denial says when to retry.
        let Panel::Chart { series, .. } = &v.panels[0] else {
            panic!()
        };
        assert!(series[0].y.contains(&0.0) && series[0].y.contains(&10.0));
        let last = l.model().lane().last().unwrap().decision;
        // A token takes 100 ms to refill, one microsecond of which had passed.
        assert_eq!(last.retry_after, Duration(99_999));
        assert!(all_ok(&v));
    }

    #[test]
    fn the_envelope_holds_over_a_long_run_and_is_nearly_reached() {
        // Offered 1000/s against 100/s: the bucket is drained all the time, so the windows
        // come within a token of the bound.
        let mut l = lab(json!({
            "bucket": {"capacity": 10, "refillPerSec": 100},
            "arrivals": {"type": "poisson", "ratePerSec": 1000},
            "seed": 5
        }));
        let mut admitted: Vec<(u64, f64)> = Vec::new();
        for _ in 0..20_000 {
            l.step_events(1).unwrap();
            let last = l.model().lane().last().unwrap();
            if last.decision.allowed {
                admitted.push((last.at.0, last.cost));
            }
        }
        assert!(all_ok(&l.view()), "{:?}", l.view().invariants);
        // An independent check over every window, not only the retained ones.
        for i in 0..admitted.len() {
            let mut sum = 0.0;
            for &(t, c) in &admitted[i..] {
                sum += c;
                let bound = 10.0 + 100.0 * (t - admitted[i].0) as f64 / 1e6;
                assert!(sum <= bound + 1e-6, "{sum} > {bound}");
            }
        }
        let closest = l.model().lane().closest_to_envelope.unwrap();
        assert!(closest > -1.0 && closest <= 1e-6, "{closest}");
        // Bounded memory however long the run.
        let lane = l.model().lane();
        assert!(lane.recent.len() == RECENT_DECISIONS);
        assert!(lane.admissions.len() == ENVELOPE_ADMISSIONS);
        assert!(lane.level_curve.len() <= SERIES_POINTS);
        let v = l.view();
        assert!(v.metrics.iter().all(|s| s.x.len() <= SERIES_POINTS));
        let Panel::Chart { series, .. } = &v.panels[0] else {
            panic!()
        };
        assert!(series[0].x.len() <= SERIES_POINTS + 2);
    }

    /// A limiter that admits everything while promising 1 token per second.
    #[derive(Debug, Clone)]
    struct Liar;
    impl LimiterUnderTest for Liar {
        fn algorithm(&self) -> &'static str {
            "liar"
        }
        fn decide(&mut self, _: Time, _: f64) -> Result<RateLimitDecision> {
            Ok(RateLimitDecision {
                allowed: true,
                limit: 1.0,
                remaining: 1.0,
                retry_after: Duration::ZERO,
                reset_after: Duration::ZERO,
            })
        }
        fn level(&self, _: Time) -> f64 {
            1.0
        }
        fn limit(&self) -> f64 {
            1.0
        }
        fn full_at(&self, now: Time) -> Time {
            now
        }
        fn envelope(&self) -> Envelope {
            Envelope {
                burst: 1.0,
                rate_per_sec: 1.0,
            }
        }
        fn fields(&self, _: Time) -> BTreeMap<String, Value> {
            BTreeMap::new()
        }
    }

    #[test]
    fn the_envelope_check_catches_a_limiter_that_over_admits() {
        let mut lane = Lane::new(Liar, Time::ZERO);
        lane.decide(0, Time(0), 1.0, RequestSource::Arrival)
            .unwrap();
        assert!(lane.invariants()[0].ok);
        // 2 admitted within 0.5 s, where at most 1 + 0.5 may be.
        lane.decide(1, Time(500_000), 1.0, RequestSource::Arrival)
            .unwrap();
        let status = &lane.invariants()[0];
        assert!(!status.ok);
        assert!(
            status.detail.contains("more than 1 + 1/s"),
            "{}",
            status.detail
        );
        assert_eq!(status.nodes, vec![0]);
    }

    #[test]
    fn reconfiguration_keeps_the_tokens_and_restarts_the_envelope() {
        let mut l = lab(json!({
            "bucket": {"capacity": 10, "refillPerSec": 1},
            "arrivals": {"type": "poisson", "ratePerSec": 1e-6}
        }));
        l.act(&json!({"type": "request", "cost": 6})).unwrap();
        l.step(Duration::from_secs(2)).unwrap();
        // 4 + 2 = 6 tokens; a larger capacity keeps 6 and refills at the new rate.
        l.act(&json!({"type": "reconfigure", "capacity": 20, "refillPerSec": 4}))
            .unwrap();
        let lane = l.model().lane();
        assert_eq!(lane.limiter().tokens_at(Time::from_millis(2_000)), 6.0);
        assert!(lane.admissions.is_empty());
        assert_eq!(lane.envelope_since, Time::from_millis(2_000));
        l.step(Duration::from_secs(1)).unwrap();
        assert_eq!(l.view().nodes[0].fields["tokens"], json!(10.0));
        // A smaller one cuts the level down, visible as a drop on the level chart.
        l.act(&json!({"type": "reconfigure", "capacity": 3, "refillPerSec": 1}))
            .unwrap();
        let v = l.view();
        assert_eq!(v.nodes[0].fields["tokens"], json!(3.0));
        let Panel::Chart { series, .. } = &v.panels[0] else {
            panic!()
        };
        let n = series[0].y.len();
        assert_eq!(&series[0].y[n - 2..], &[10.0, 3.0]);
        assert_eq!(&series[0].x[n - 2..], &[3_000.0, 3_000.0]);
        assert!(v.invariants[0].detail.starts_with("≤ 3 + 1/s · t"));
        // The burst after it: 3 admitted, the rest rejected.
        l.act(&json!({"type": "burst", "count": 5})).unwrap();
        let lane = l.model().lane();
        assert_eq!((lane.admitted, lane.rejected), (4, 2));
        assert!(all_ok(&l.view()));
        // A capacity below the cost per request could never admit an arrival.
        let e = l
            .act(&json!({"type": "reconfigure", "capacity": 0.5, "refillPerSec": 1}))
            .unwrap_err();
        assert_eq!(field_of(e), "action.capacity");
    }

    #[test]
    fn manual_requests_report_the_rate_limit_fields() {
        let mut l = lab(json!({"arrivals": {"type": "poisson", "ratePerSec": 1e-6}}));
        l.act(&json!({"type": "burst", "count": 12})).unwrap();
        let lane = l.model().lane();
        assert_eq!((lane.admitted, lane.rejected), (10, 2));
        let v = l.view();
        let Panel::Table { rows, .. } = &v.panels[3] else {
            panic!()
        };
        let field = |name: &str| rows.iter().find(|r| r[0] == json!(name)).unwrap()[1].clone();
        assert_eq!(field("allowed"), json!(false));
        assert_eq!(field("limit"), json!(10.0));
        assert_eq!(field("remaining"), json!(0.0));
        assert_eq!(field("retryAfter ms"), json!(200.0));
        assert_eq!(field("resetAfter ms"), json!(2_000.0));
        assert_eq!(field("source"), json!("manual"));
        assert_eq!(l.steps(), 0, "actions are not events");
        let trace = l.trace();
        assert_eq!(trace["events"], json!(12));
        assert_eq!(trace["trace"][11]["allowed"], json!(false));
        assert_eq!(trace["trace"][11]["retryAfter"], json!(200_000));
    }

    #[test]
    fn bad_configs_and_actions_name_the_field() {
        let config_cases = [
            (
                json!({"bucket": {"capacity": -1, "refillPerSec": 1}}),
                "bucket.capacity",
            ),
            (
                json!({"bucket": {"capacity": 1, "refillPerSec": f64::MAX}}),
                "bucket.refillPerSec",
            ),
            (
                json!({"arrivals": {"type": "poisson", "ratePerSec": 0}}),
                "arrivals.ratePerSec",
            ),
            (json!({"cost": 11}), "cost"),
            (json!({"cost": 0}), "cost"),
            (json!({"sampleMs": -1}), "sampleMs"),
        ];
        // Bounds the field types carry are checked as the config is read; the rest
        // when the lab is built. Either way the error names the field.
        for (config, field) in config_cases {
            let e = match crate::lab::json::from_value::<TokenBucketLabConfig>("config", &config) {
                Ok(config) => Driven::<TokenBucketLab>::new(&config).err().unwrap(),
                Err(e) => e,
            };
            assert_eq!(field_of(e).trim_start_matches("config."), field);
        }
        let mut l = lab(Value::Null);
        l.step_events(5).unwrap();
        let before = (serde_json::to_value(l.view()).unwrap(), l.trace());
        let action_cases = [
            (json!({"type": "request", "cost": 11}), "action.cost"),
            (json!({"type": "request", "cost": -1}), "action.cost"),
            (json!({"type": "burst", "count": 0}), "action.count"),
            (json!({"type": "burst", "count": 10_001}), "action.count"),
            (
                json!({"type": "burst", "count": 2, "cost": 1e300}),
                "action.cost",
            ),
            (
                json!({"type": "reconfigure", "capacity": 1e300, "refillPerSec": 1}),
                "action.capacity",
            ),
            (
                json!({"type": "reconfigure", "capacity": 5, "refillPerSec": -1}),
                "action.refillPerSec",
            ),
            (
                json!({"type": "setArrivals", "arrivals": {"type": "onOff", "ratePerSec": 1, "onMs": 0, "offMs": 1}}),
                "action.arrivals.onMs",
            ),
            (json!({"type": "request", "cost": "x"}), "action.cost"),
            (json!({"type": "burst"}), "action"),
        ];
        for (action, field) in action_cases {
            let e = l.act(&action).unwrap_err();
            assert_eq!(field_of(e), field, "{action}");
        }
        assert_eq!((serde_json::to_value(l.view()).unwrap(), l.trace()), before);
    }

    #[test]
    fn schemas_config_and_examples() {
        let l = lab(Value::Null);
        assert_eq!(
            l.config(),
            json!({"seed": 1, "bucket": {"capacity": 10.0, "refillPerSec": 5.0},
                   "arrivals": {"type": "poisson", "ratePerSec": 8.0},
                   "cost": 1.0, "sampleMs": 100.0})
        );
        assert!(l.config_schema().to_string().contains("refillPerSec"));
        let actions = l.action_schema().to_string();
        for t in ["request", "burst", "reconfigure", "setArrivals"] {
            assert!(actions.contains(&format!("\"{t}\"")), "{t}");
        }
        for a in l.example_actions().as_array().unwrap() {
            let mut fresh = lab(Value::Null);
            fresh.act(a).unwrap();
            fresh.step(Duration::from_secs(3)).unwrap();
            assert!(all_ok(&fresh.view()), "{a}");
        }
    }
}
