//! The lane kit of the rate limiters' labs: [`ArrivalFeed`](crate::sim::workload::ArrivalFeed)
//! draws the arrivals, a [`Lane`] runs one limiter on them and keeps that limiter's
//! decisions, counters, level curve and invariant checks (the admission [`Envelope`], the
//! level's bounds), and an algorithm joins by implementing [`LimiterUnderTest`]. The
//! token bucket's lab (`ratelimit.token-bucket`, [`super::token_bucket::lab`]) is one
//! lane; the comparison lab ([`super::compare_lab`]) runs several on one workload.

use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Debug;
use std::hash::Hasher;

use crate::error::{DistlabError, Result, check_positive};
use crate::lab::view::{InvariantStatus, NodeView, Panel, Series, StripItem};
use crate::ratelimit::{RateLimitDecision, TokenBucket};
use crate::sim::NodeId;
use crate::sim::trace::StableHasher;
use crate::time::{Duration, Time};

/// Decisions kept for the trace (the strip shows the newest [`STRIP_DECISIONS`]).
pub const RECENT_DECISIONS: usize = 256;
/// Decisions in the strip.
pub const STRIP_DECISIONS: usize = 40;
/// Admissions the envelope invariant looks back over: each admission is checked against
/// every window that ends at it and starts at one of these, so a check costs O(this).
pub const ENVELOPE_ADMISSIONS: usize = 256;
/// Points kept on the level curve, as many as the kit keeps per metric series.
pub const SERIES_POINTS: usize = crate::lab::sampling::SERIES_POINTS;
/// Most requests one `burst` action sends.
pub const MAX_BURST_REQUESTS: u64 = 10_000;
/// Slack of the envelope check, in tokens: the bucket rounds its capacity up to a whole
/// billionth of a token, so it may hold up to this much more than `capacity`.
pub const ENVELOPE_SLACK_TOKENS: f64 = 1e-9;
/// Relative slack of the envelope check, for the check's own `f64` sums of up to
/// [`ENVELOPE_ADMISSIONS`] costs (each rounding by at most 2^−53).
pub const ENVELOPE_SLACK_RELATIVE: f64 = 1e-12;

/// The promise a rate limiter makes: cost admitted in any window of length `t` is at most
/// `burst + rate_per_sec · t`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    pub burst: f64,
    pub rate_per_sec: f64,
}

impl Envelope {
    /// The most cost admissible in a window of length `t`.
    pub fn bound(&self, t: Duration) -> f64 {
        self.burst + self.rate_per_sec * t.as_secs_f64()
    }
}

/// What a lab needs from a rate limiter to run it in a [`Lane`].
pub trait LimiterUnderTest: Clone + Debug {
    /// The algorithm's name, for labels ("token bucket").
    fn algorithm(&self) -> &'static str;
    /// Decides (and charges, if admitted) a request of `cost` at `now`. An error (a cost the
    /// limiter could never admit) must leave the limiter unchanged.
    fn decide(&mut self, now: Time, cost: f64) -> Result<RateLimitDecision>;
    /// The allowance held at `now` (a bucket's tokens), for the level chart.
    fn level(&self, now: Time) -> f64;
    /// The largest allowance: a decision's `limit`, the level chart's ceiling.
    fn limit(&self) -> f64;
    /// When the allowance is back to [`limit`](Self::limit) if nothing is admitted.
    fn full_at(&self, now: Time) -> Time;
    /// The admission envelope it promises under its current configuration.
    fn envelope(&self) -> Envelope;
    /// Its configuration and state, for its node in the view.
    fn fields(&self, now: Time) -> BTreeMap<String, Value>;
}

impl LimiterUnderTest for TokenBucket {
    fn algorithm(&self) -> &'static str {
        "token bucket"
    }
    fn decide(&mut self, now: Time, cost: f64) -> Result<RateLimitDecision> {
        self.try_acquire(now, cost)
    }
    fn level(&self, now: Time) -> f64 {
        self.tokens_at(now)
    }
    fn limit(&self) -> f64 {
        self.config().capacity
    }
    fn full_at(&self, now: Time) -> Time {
        TokenBucket::full_at(self, now)
    }
    fn envelope(&self) -> Envelope {
        Envelope {
            burst: self.config().capacity,
            rate_per_sec: self.config().refill_per_sec,
        }
    }
    fn fields(&self, now: Time) -> BTreeMap<String, Value> {
        TokenBucket::fields(self, now)
    }
}

/// Where a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RequestSource {
    /// An arrival of the workload.
    Arrival,
    /// A `request` or `burst` action.
    Manual,
}

/// One decision as a lane recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionRecord {
    /// The lane's decision count before this one.
    pub seq: u64,
    /// Events processed when it was made.
    pub step: u64,
    pub at: Time,
    pub cost: f64,
    pub source: RequestSource,
    #[serde(flatten)]
    pub decision: RateLimitDecision,
}

/// One limiter run on a stream of requests, with everything recorded about it. Memory is
/// bounded: the newest [`RECENT_DECISIONS`] decisions, [`ENVELOPE_ADMISSIONS`] admissions and
/// [`SERIES_POINTS`] level points. The labs' tests read its counters directly.
#[derive(Debug, Clone)]
pub struct Lane<L> {
    pub(crate) limiter: L,
    decisions: u64,
    pub(crate) admitted: u64,
    pub(crate) rejected: u64,
    admitted_cost: f64,
    pub(crate) recent: VecDeque<DecisionRecord>,
    hasher: StableHasher,
    /// Admissions since `envelope_since`, newest last.
    pub(crate) admissions: VecDeque<(Time, f64)>,
    pub(crate) envelope_since: Time,
    /// The largest `admitted − bound` over every window checked since `envelope_since`
    /// (negative while the bound is never reached).
    pub(crate) closest_to_envelope: Option<f64>,
    envelope_breach: Option<String>,
    level_breach: Option<String>,
    /// The level as a piecewise-linear curve: points at each decision, before and after,
    /// and where the allowance reached its limit in between.
    pub(crate) level_curve: VecDeque<(Time, f64)>,
    full_at: Option<Time>,
    /// Admissions the envelope check looks back over ([`ENVELOPE_ADMISSIONS`] unless set).
    envelope_lookback: usize,
}

impl<L: LimiterUnderTest> Lane<L> {
    pub fn new(limiter: L, now: Time) -> Self {
        let mut lane = Lane {
            decisions: 0,
            admitted: 0,
            rejected: 0,
            admitted_cost: 0.0,
            recent: VecDeque::new(),
            hasher: StableHasher::default(),
            admissions: VecDeque::new(),
            envelope_since: now,
            closest_to_envelope: None,
            envelope_breach: None,
            level_breach: None,
            level_curve: VecDeque::new(),
            full_at: Some(limiter.full_at(now)),
            envelope_lookback: ENVELOPE_ADMISSIONS,
            limiter,
        };
        let level = lane.limiter.level(now);
        lane.push_level(now, level);
        lane
    }

    /// Checks the envelope over windows spanning at most `n` (1 to
    /// [`ENVELOPE_ADMISSIONS`]) admissions: a lab running many lanes trades look-back for
    /// time per decision.
    pub fn with_envelope_lookback(mut self, n: usize) -> Self {
        self.envelope_lookback = n.clamp(1, ENVELOPE_ADMISSIONS);
        self
    }

    pub fn limiter(&self) -> &L {
        &self.limiter
    }

    pub fn last(&self) -> Option<&DecisionRecord> {
        self.recent.back()
    }

    /// Checks a cost without deciding anything: finite, positive and at most the limit.
    pub fn check_cost(&self, cost: f64) -> Result<f64> {
        check_positive("cost", cost)?;
        if cost > self.limiter.limit() {
            return Err(DistlabError::field(
                "cost",
                format!(
                    "{cost} exceeds the limit {}: it could never be admitted",
                    self.limiter.limit()
                ),
            ));
        }
        Ok(cost)
    }

    /// Decides one request and records it. On error nothing changes.
    pub fn decide(
        &mut self,
        step: u64,
        now: Time,
        cost: f64,
        source: RequestSource,
    ) -> Result<RateLimitDecision> {
        let before = self.limiter.level(now);
        let d = self.limiter.decide(now, cost)?;
        self.push_corner(now);
        self.push_level(now, before);
        if d.allowed {
            self.push_level(now, d.remaining);
        }
        self.full_at = Some(now.saturating_add(d.reset_after));
        self.check_level(now, "before a decision", before);
        self.check_level(now, "after a decision", d.remaining);
        if d.limit != self.limiter.limit() && self.level_breach.is_none() {
            self.level_breach = Some(format!(
                "a decision at {now} reported limit {} for a limit of {}",
                d.limit,
                self.limiter.limit()
            ));
        }
        let record = DecisionRecord {
            seq: self.decisions,
            step,
            at: now,
            cost,
            source,
            decision: d,
        };
        self.hash(&record);
        if self.recent.len() >= RECENT_DECISIONS {
            self.recent.pop_front();
        }
        self.recent.push_back(record);
        self.decisions += 1;
        if d.allowed {
            self.admitted += 1;
            self.admitted_cost += cost;
            self.check_envelope(now, cost);
        } else {
            self.rejected += 1;
        }
        Ok(d)
    }

    /// Changes the limiter with `change` at `now`, recording the level on both sides; the
    /// envelope is checked afresh from `now`. On error nothing changes.
    pub fn reconfigure(
        &mut self,
        now: Time,
        change: impl FnOnce(&mut L) -> Result<()>,
    ) -> Result<()> {
        let before = self.limiter.level(now);
        let mut limiter = self.limiter.clone();
        change(&mut limiter)?;
        self.limiter = limiter;
        self.push_corner(now);
        self.push_level(now, before);
        let after = self.limiter.level(now);
        self.push_level(now, after);
        self.check_level(now, "after reconfiguring", after);
        self.full_at = Some(self.limiter.full_at(now));
        self.admissions.clear();
        self.envelope_since = now;
        self.closest_to_envelope = None;
        Ok(())
    }

    /// Requests admitted and rejected so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.admitted, self.rejected)
    }

    /// The values sampled at `at`: level, admitted and rejected since `since` (the
    /// counts at the previous sample).
    pub fn sample(&self, at: Time, since: (u64, u64)) -> [f64; 3] {
        [
            self.limiter.level(at),
            (self.admitted - since.0) as f64,
            (self.rejected - since.1) as f64,
        ]
    }

    fn hash(&mut self, r: &DecisionRecord) {
        let h = &mut self.hasher;
        h.write_u64(r.seq);
        h.write_u64(r.step);
        h.write_u64(r.at.0);
        h.write_u64(r.cost.to_bits());
        h.write_u8(r.source as u8);
        h.write_u8(u8::from(r.decision.allowed));
        h.write_u64(r.decision.limit.to_bits());
        h.write_u64(r.decision.remaining.to_bits());
        h.write_u64(r.decision.retry_after.0);
        h.write_u64(r.decision.reset_after.0);
    }

    fn push_level(&mut self, at: Time, level: f64) {
        if self.level_curve.len() >= SERIES_POINTS {
            self.level_curve.pop_front();
        }
        self.level_curve.push_back((at, level));
    }

    /// The point where the level reached its limit, if that happened before `now`.
    fn push_corner(&mut self, now: Time) {
        if let Some(full) = self.full_at.take()
            && full < now
            && self.level_curve.back().is_some_and(|&(t, _)| t < full)
        {
            let limit = self.limiter.limit();
            self.push_level(full, limit);
        }
    }

    fn check_level(&mut self, at: Time, when: &str, level: f64) {
        let limit = self.limiter.limit();
        // `contains` is false for NaN too.
        if self.level_breach.is_none() && !(0.0..=limit).contains(&level) {
            self.level_breach = Some(format!(
                "{level} tokens {when} at {at}, outside [0, {limit}]"
            ));
        }
    }

    /// Checks every window that ends at this admission and starts at a retained one.
    fn check_envelope(&mut self, now: Time, cost: f64) {
        while self.admissions.len() >= self.envelope_lookback {
            self.admissions.pop_front();
        }
        self.admissions.push_back((now, cost));
        let envelope = self.limiter.envelope();
        let mut sum = 0.0;
        let mut closest = f64::NEG_INFINITY;
        for &(start, c) in self.admissions.iter().rev() {
            sum += c;
            let bound = envelope.bound(now.saturating_since(start));
            closest = closest.max(sum - bound);
            let slack = ENVELOPE_SLACK_TOKENS + ENVELOPE_SLACK_RELATIVE * bound;
            if sum > bound + slack && self.envelope_breach.is_none() {
                self.envelope_breach = Some(format!(
                    "{sum} admitted between {start} and {now}, more than {} + {}/s · {:.6} s = {bound}",
                    envelope.burst,
                    envelope.rate_per_sec,
                    now.saturating_since(start).as_secs_f64()
                ));
            }
        }
        self.closest_to_envelope = Some(
            self.closest_to_envelope
                .map_or(closest, |c: f64| c.max(closest)),
        );
    }

    pub fn invariants(&self) -> Vec<InvariantStatus> {
        const ENVELOPE: &str = "admitted cost in any window of length t ≤ capacity + rate · t";
        let envelope = self.limiter.envelope();
        let envelope_status = match &self.envelope_breach {
            Some(breach) => InvariantStatus::violated(ENVELOPE, breach.clone(), vec![0]),
            None => InvariantStatus::holds(
                ENVELOPE,
                format!(
                    "≤ {} + {}/s · t in every window between two of the last \
                     {} admissions since {} (slack {ENVELOPE_SLACK_TOKENS} \
                     tokens for the capacity rounded up to a billionth, plus \
                     {ENVELOPE_SLACK_RELATIVE} relative for f64 sums); closest approach: {}",
                    envelope.burst,
                    envelope.rate_per_sec,
                    self.envelope_lookback,
                    self.envelope_since,
                    match self.closest_to_envelope {
                        Some(c) => format!("{:.9} tokens below the bound", -c),
                        None => "no admissions yet".into(),
                    }
                ),
            ),
        };
        const LEVEL: &str = "0 ≤ tokens ≤ capacity";
        let level_status = match &self.level_breach {
            Some(breach) => InvariantStatus::violated(LEVEL, breach.clone(), vec![0]),
            None => InvariantStatus::holds(
                LEVEL,
                "at every decision (before and after) and reconfiguration",
            ),
        };
        vec![envelope_status, level_status]
    }

    /// The limiter as a node: its own fields and the lane's counters.
    pub fn node_view(&self, id: NodeId, now: Time) -> NodeView {
        let mut fields = self.limiter.fields(now);
        fields.insert(
            "lastDecision".into(),
            json!(self.last().map(|r| decision_name(&r.decision))),
        );
        fields.insert("admitted".into(), json!(self.admitted));
        fields.insert("rejected".into(), json!(self.rejected));
        fields.insert("admittedCost".into(), json!(self.admitted_cost));
        NodeView {
            id,
            label: self.limiter.algorithm().into(),
            role: "limiter".into(),
            status: "up".into(),
            fields,
            group: None,
        }
    }

    /// The level curve up to `now`, in ms, with the limit as a second series.
    pub fn level_chart(&self, now: Time) -> Panel {
        let mut points: Vec<(Time, f64)> = self.level_curve.iter().copied().collect();
        let limit = self.limiter.limit();
        if let Some(full) = self.full_at
            && full < now
            && points.last().is_some_and(|&(t, _)| t < full)
        {
            points.push((full, limit));
        }
        if points.last().is_some_and(|&(t, _)| t < now) {
            points.push((now, self.limiter.level(now)));
        }
        let x: Vec<f64> = points.iter().map(|(t, _)| t.as_millis_f64()).collect();
        let ends = match (x.first(), x.last()) {
            (Some(&a), Some(&b)) => vec![a, b],
            _ => Vec::new(),
        };
        Panel::Chart {
            title: format!("{} level", self.limiter.algorithm()),
            x_label: "time (ms)".into(),
            series: vec![
                Series {
                    name: "tokens".into(),
                    unit: "tokens".into(),
                    y: points.iter().map(|&(_, l)| l).collect(),
                    x,
                },
                Series {
                    name: "capacity".into(),
                    unit: "tokens".into(),
                    y: vec![limit; ends.len()],
                    x: ends,
                },
            ],
        }
    }

    pub fn decisions_strip(&self) -> Panel {
        let skip = self.recent.len().saturating_sub(STRIP_DECISIONS);
        Panel::Strip {
            title: format!("last {STRIP_DECISIONS} decisions"),
            items: self
                .recent
                .iter()
                .skip(skip)
                .map(|r| StripItem {
                    label: format!(
                        "{}{} @ {:.3} ms",
                        match r.source {
                            RequestSource::Arrival => "",
                            RequestSource::Manual => "manual ",
                        },
                        r.cost,
                        r.at.as_millis_f64()
                    ),
                    state: if r.decision.allowed { "ok" } else { "rejected" }.into(),
                })
                .collect(),
        }
    }

    pub fn last_decision_table(&self) -> Panel {
        let rows = match self.last() {
            None => Vec::new(),
            Some(r) => {
                let d = &r.decision;
                vec![
                    vec![json!("allowed"), json!(d.allowed)],
                    vec![json!("limit"), json!(d.limit)],
                    vec![json!("remaining"), json!(d.remaining)],
                    vec![json!("retryAfter ms"), json!(d.retry_after.as_millis_f64())],
                    vec![json!("resetAfter ms"), json!(d.reset_after.as_millis_f64())],
                    vec![json!("cost"), json!(r.cost)],
                    vec![json!("at ms"), json!(r.at.as_millis_f64())],
                    vec![json!("source"), json!(r.source)],
                ]
            }
        };
        Panel::Table {
            title: "last decision".into(),
            columns: vec!["field".into(), "value".into()],
            rows,
        }
    }

    /// The stable hash of every decision so far.
    pub fn trace_hash(&self) -> u64 {
        self.hasher.finish()
    }

    /// `{hash, events, complete, trace}`: a stable hash of every decision and the newest
    /// [`RECENT_DECISIONS`] of them.
    pub fn trace(&self) -> Value {
        json!({
            "hash": format!("{:016x}", self.hasher.finish()),
            "events": self.decisions,
            "complete": self.decisions <= self.recent.len() as u64,
            "trace": serde_json::to_value(&self.recent).unwrap_or(Value::Null),
        })
    }
}

fn decision_name(d: &RateLimitDecision) -> &'static str {
    if d.allowed { "admitted" } else { "rejected" }
}
