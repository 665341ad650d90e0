//! Lab `resilience.timeout`: calls travel down a chain of hops (client → h1 → h2 → …),
//! each hop doing some work, then calling the next. With propagation on, a hop passes the
//! remaining time less `hopMarginMs` on the wire (`grpc-timeout`), the next hop takes it as
//! its deadline, and every hop cancels its work when its deadline passes. With it off,
//! each hop starts a fresh timeout of its own, and work goes on downstream long after the
//! client gave up: the view counts that wasted work. Each message also spends
//! `networkMs` in flight, which the receiver's deadline does not see: a margin smaller
//! than that lets a downstream deadline end later than its caller's, which the invariant
//! "deadlines never grow across hops" catches.

use std::collections::{BTreeMap, VecDeque};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::bounded::{Count, Millis};
use crate::error::Result;
use crate::lab::local::{DrivenLab, LocalLab, Moment};
use crate::lab::sampling::{Sampled, Sampler};
use crate::lab::settings::local_lab_config;
use crate::lab::view::{InvariantStatus, NodeView, Panel, TimelineBar, View};
use crate::resilience::dependency::LabTrace;
use crate::resilience::timeout::{CallTimeout, Completion, Deadline, TimeoutConfig};
use crate::rng::SimRng;
use crate::sim::workload::ArrivalProcess;
use crate::time::{Duration, Time};

/// The most hops in the chain.
pub const MAX_HOPS: u32 = 8;
/// Finished calls the timeline shows.
const SHOWN_CALLS: usize = 12;

fn lab_timeout() -> TimeoutConfig {
    TimeoutConfig {
        attempt_timeout_ms: Millis::of(1_000),
        overall_timeout_ms: Millis::of(400),
        hop_margin_ms: Millis::of(5),
    }
}

local_lab_config! {
    /// Configuration of the timeout lab. JSON: `{"hops": 4, "timeout": {"overallTimeoutMs":
    /// 400, "attemptTimeoutMs": 1000, "hopMarginMs": 5}, "workMs": 90, "networkMs": 2,
    /// "propagate": true, "arrivals": {"type": "poisson", "ratePerSec": 5}}`. The client
    /// gives each call `overallTimeoutMs`; every hop's own timeout is `attemptTimeoutMs`.
    pub struct TimeoutLabConfig {
        /// Services behind the client.
        pub hops: Count<1, { MAX_HOPS }> = Count::of(4),
        pub timeout: TimeoutConfig = lab_timeout(),
        /// Typical work per hop before it calls the next: uniformly half to one and a
        /// half of it.
        pub work_ms: Millis<0, 60_000> = Millis::of(90),
        /// Time a request or a reply spends between two hops.
        pub network_ms: Millis<0, 60_000> = Millis::of(2),
        /// Whether hops pass the remaining deadline on.
        pub propagate: bool = true,
        /// When calls arrive at the client.
        pub arrivals: ArrivalProcess = ArrivalProcess::Poisson { rate_per_sec: 5.0 },
    }
}

/// What can be done. JSON: `{"type": "setPropagation", "propagate": false}`,
/// `{"type": "setWork", "workMs": 150}`, `{"type": "setArrivals", "arrivals": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum TimeoutLabAction {
    /// Turn deadline propagation on or off for calls from now on.
    SetPropagation { propagate: bool },
    /// Typical work per hop from now on.
    SetWork { work_ms: Millis<0, 60_000> },
}

/// Where one hop is with one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HopStatus {
    Working,
    Waiting,
    Ok,
    /// Answered with a failure (its downstream failed, or no time was left to call it).
    Failed,
    /// Its deadline passed: work cut.
    Cancelled,
}

impl HopStatus {
    fn name(self) -> &'static str {
        match self {
            HopStatus::Working => "working",
            HopStatus::Waiting => "waiting",
            HopStatus::Ok => "ok",
            HopStatus::Failed => "failed",
            HopStatus::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone)]
struct Hop {
    timeout: CallTimeout,
    start: Time,
    end: Option<Time>,
    status: HopStatus,
    /// Whether some of its work came after the client had given up (wasted).
    orphaned: bool,
}

#[derive(Debug, Clone)]
struct Call {
    id: u64,
    propagate: bool,
    hops: Vec<Hop>,
    /// When the client gave up on it.
    gave_up: Option<Time>,
}

impl Call {
    /// The part of a hop's work from `start` to `now` done after the client gave up.
    fn wasted(&self, start: Time, now: Time) -> u64 {
        self.gave_up
            .map_or(0, |g| now.saturating_since(start.max(g)).0)
    }
}

/// What is due.
#[derive(Debug, Clone, Copy)]
enum Due {
    /// The call reaches hop `hop` with this timeout on the wire (if propagated).
    Arrive {
        call: u64,
        hop: usize,
        timeout: Option<Duration>,
    },
    WorkDone {
        call: u64,
        hop: usize,
    },
    /// A reply reaches hop `hop` from below.
    Reply {
        call: u64,
        hop: usize,
        ok: bool,
    },
    /// Hop `hop`'s deadline.
    Expire {
        call: u64,
        hop: usize,
    },
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
struct Totals {
    calls: u64,
    succeeded: u64,
    failed: u64,
    timed_out: u64,
    cancellations: u64,
    /// Work done by hops after their caller had given up, µs.
    wasted_us: u64,
}

/// The timeout lab.
#[derive(Debug, Clone)]
pub struct TimeoutLab {
    config: TimeoutLabConfig,
    rng: SimRng,
    propagate: bool,
    work: Duration,
    queue: BTreeMap<(Time, u64), Due>,
    seq: u64,
    calls: BTreeMap<u64, Call>,
    finished: VecDeque<Call>,
    next_call: u64,
    totals: Totals,
    /// The first hop whose deadline ended later than its caller's: (call, hop, by µs).
    grew: Option<(u64, usize, u64)>,
    trace: LabTrace,
}

impl TimeoutLab {
    /// Calls succeeded, timed out at the client, and wasted work in µs.
    pub fn outcome(&self) -> (u64, u64, u64) {
        (
            self.totals.succeeded,
            self.totals.timed_out,
            self.totals.wasted_us,
        )
    }

    fn push(&mut self, at: Time, due: Due) {
        self.queue.insert((at, self.seq), due);
        self.seq += 1;
    }

    fn hop_mut(&mut self, call: u64, hop: usize) -> Option<&mut Hop> {
        self.calls.get_mut(&call).and_then(|c| c.hops.get_mut(hop))
    }

    fn arrive(&mut self, now: Time, call: u64, hop: usize, timeout: Option<Duration>) {
        let inherited = timeout.map(|t| Deadline::from_timeout(now, t));
        // Hop 0 is the client: its deadline is the call's overall timeout.
        let own = if hop == 0 {
            TimeoutConfig {
                overall_timeout_ms: self.config.timeout.overall_timeout_ms,
                ..self.config.timeout
            }
        } else {
            TimeoutConfig {
                overall_timeout_ms: self.config.timeout.attempt_timeout_ms,
                ..self.config.timeout
            }
        };
        let mut t = CallTimeout::start(now, &own, inherited);
        let deadline = t.overall();
        // One attempt: the hop's whole handling of the call. Cannot fail: fresh.
        let _ = t.begin_attempt(now, 0);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if let (Some(parent), true) = (hop.checked_sub(1).and_then(|p| c.hops.get(p)), c.propagate)
        {
            let parent = parent.timeout.overall();
            if deadline > parent && self.grew.is_none() {
                self.grew = Some((call, hop, deadline.0.0 - parent.0.0));
            }
        }
        c.hops.push(Hop {
            timeout: t,
            start: now,
            end: None,
            status: HopStatus::Working,
            orphaned: false,
        });
        // The client only waits; services work.
        let work = if hop == 0 {
            Duration::ZERO
        } else {
            Duration(self.work.0 / 2 + self.rng.range_inclusive(0, self.work.0))
        };
        self.push(now.saturating_add(work), Due::WorkDone { call, hop });
        self.push(deadline.0, Due::Expire { call, hop });
    }

    /// Hop `hop` ends with `ok` at `now`: it answers its caller.
    fn answer(&mut self, now: Time, call: u64, hop: usize, ok: bool) {
        let network = self.config.network_ms.duration();
        let Some(h) = self.hop_mut(call, hop) else {
            return;
        };
        let late = matches!(
            h.timeout.finish_attempt(now, 0),
            Ok(Completion::Late) | Err(_)
        );
        if late {
            return;
        }
        h.end = Some(now);
        h.status = if ok { HopStatus::Ok } else { HopStatus::Failed };
        match hop.checked_sub(1) {
            Some(up) => self.push(
                now.saturating_add(network),
                Due::Reply { call, hop: up, ok },
            ),
            None => {
                if ok {
                    self.totals.succeeded += 1;
                } else {
                    self.totals.failed += 1;
                }
                self.finish(call);
            }
        }
    }

    fn finish(&mut self, call: u64) {
        if let Some(c) = self.calls.remove(&call) {
            if self.finished.len() >= SHOWN_CALLS {
                self.finished.pop_front();
            }
            self.finished.push_back(c);
        }
    }

    fn work_done(&mut self, now: Time, call: u64, hop: usize) {
        let hops = self.config.hops.get() as usize;
        let margin = self.config.timeout.hop_margin_ms.duration();
        let network = self.config.network_ms.duration();
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let propagate = c.propagate;
        let start = c.hops.get(hop).map_or(now, |h| h.start);
        let wasted = c.wasted(start, now);
        let Some(h) = c.hops.get_mut(hop) else {
            return;
        };
        if h.status != HopStatus::Working {
            return;
        }
        if wasted > 0 {
            h.orphaned = true;
            self.totals.wasted_us += wasted;
        }
        if hop == hops {
            self.answer(now, call, hop, true);
            return;
        }
        let timeout = if propagate {
            match h.timeout.overall().for_downstream(now, margin, None) {
                Some(d) => Some(d.remaining(now)),
                None => {
                    // No time left to call the next hop: fail fast.
                    self.answer(now, call, hop, false);
                    return;
                }
            }
        } else {
            None
        };
        h.status = HopStatus::Waiting;
        self.push(
            now.saturating_add(network),
            Due::Arrive {
                call,
                hop: hop + 1,
                timeout,
            },
        );
    }

    fn expire(&mut self, now: Time, step: u64, call: u64, hop: usize) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let (start, working) = c
            .hops
            .get(hop)
            .map_or((now, false), |h| (h.start, h.status == HopStatus::Working));
        let wasted = if working { c.wasted(start, now) } else { 0 };
        if hop == 0 {
            c.gave_up = Some(now);
        }
        let Some(h) = c.hops.get_mut(hop) else {
            return;
        };
        let cut = h.timeout.handle_timeout(now);
        if cut.is_empty() {
            if hop == 0 {
                c.gave_up = None;
            }
            return;
        }
        h.status = HopStatus::Cancelled;
        h.end = Some(now);
        h.orphaned |= wasted > 0;
        let ran = now.saturating_since(h.start).0;
        self.totals.cancellations += 1;
        self.totals.wasted_us += wasted;
        self.trace.push(
            step,
            now,
            "cancelled",
            &[("call", call), ("hop", hop as u64), ("ranUs", ran)],
        );
        if hop == 0 {
            // The client gave up; hops still working below go on until their own deadlines.
            self.totals.timed_out += 1;
        }
        self.collect(call);
    }

    fn reply(&mut self, now: Time, call: u64, hop: usize, ok: bool) {
        let waiting = self
            .calls
            .get(&call)
            .and_then(|c| c.hops.get(hop))
            .is_some_and(|h| h.status == HopStatus::Waiting);
        if waiting {
            self.answer(now, call, hop, ok);
        }
        self.collect(call);
    }

    /// Drops a call the client has given up on once nothing of it is running.
    fn collect(&mut self, call: u64) {
        let done = self.calls.get(&call).is_some_and(|c| {
            c.hops
                .first()
                .is_some_and(|h| h.status == HopStatus::Cancelled)
                && c.hops
                    .iter()
                    .all(|h| !matches!(h.status, HopStatus::Working | HopStatus::Waiting))
        });
        if done {
            self.finish(call);
        }
    }

    fn timeline(&self) -> Panel {
        let hops = self.config.hops.get() as usize;
        let mut lanes = vec!["client".to_string()];
        lanes.extend((1..=hops).map(|i| format!("h{i}")));
        let mut bars = Vec::new();
        for c in self
            .finished
            .iter()
            .chain(self.calls.values())
            .rev()
            .take(SHOWN_CALLS)
        {
            for (i, h) in c.hops.iter().enumerate() {
                bars.push(TimelineBar {
                    lane: i as u32,
                    start: h.start.as_millis_f64(),
                    end: h.end.map(|t| t.as_millis_f64()),
                    label: format!(
                        "#{} deadline {:.0} ms{}",
                        c.id,
                        h.timeout.overall().0.as_millis_f64(),
                        if h.orphaned { ", orphaned" } else { "" }
                    ),
                    state: h.status.name().into(),
                    order: None,
                });
            }
        }
        Panel::Timeline {
            title: "the newest calls down the hops (bar: a hop's handling; label: its deadline)"
                .into(),
            lanes,
            bars,
        }
    }
}

impl Sampled for TimeoutLab {
    /// Succeeded, timed out, wasted µs so far.
    type Totals = (u64, u64, u64);

    fn series(&self) -> Vec<(String, String)> {
        [
            ("succeeded", "per interval"),
            ("timed out", "per interval"),
            ("wasted work", "ms per interval"),
        ]
        .map(|(n, u)| (n.into(), u.into()))
        .to_vec()
    }

    fn totals(&self) -> (u64, u64, u64) {
        self.outcome()
    }

    fn sample(&self, _at: Time, _interval: Duration, since: &(u64, u64, u64)) -> Vec<f64> {
        let (s, t, w) = self.outcome();
        vec![
            (s - since.0) as f64,
            (t - since.1) as f64,
            (w - since.2) as f64 / 1_000.0,
        ]
    }
}

impl LocalLab for TimeoutLab {
    const ID: &'static str = "resilience.timeout";
    type Config = TimeoutLabConfig;
    type Action = TimeoutLabAction;

    fn new(c: &TimeoutLabConfig) -> Result<Self> {
        Ok(TimeoutLab {
            config: c.clone(),
            rng: SimRng::derive(c.seed, 1),
            propagate: c.propagate,
            work: c.work_ms.duration(),
            queue: BTreeMap::new(),
            seq: 0,
            calls: BTreeMap::new(),
            finished: VecDeque::new(),
            next_call: 0,
            totals: Totals::default(),
            grew: None,
            trace: LabTrace::default(),
        })
    }

    fn next_event_at(&self, _now: Time) -> Option<Time> {
        self.queue.keys().next().map(|(t, _)| *t)
    }

    fn on_event(&mut self, due: Time, at: Moment) {
        if let Some(entry) = self.queue.first_entry()
            && entry.key().0 <= due
        {
            match entry.remove() {
                Due::Arrive { call, hop, timeout } => {
                    self.trace.push(
                        at.step,
                        at.now,
                        "arrive",
                        &[("call", call), ("hop", hop as u64)],
                    );
                    self.arrive(at.now, call, hop, timeout);
                }
                Due::WorkDone { call, hop } => self.work_done(at.now, call, hop),
                Due::Reply { call, hop, ok } => self.reply(at.now, call, hop, ok),
                Due::Expire { call, hop } => self.expire(at.now, at.step, call, hop),
            }
        }
    }

    fn act(&mut self, _at: Moment, action: &TimeoutLabAction) -> Result<()> {
        match action {
            TimeoutLabAction::SetPropagation { propagate } => self.propagate = *propagate,
            TimeoutLabAction::SetWork { work_ms } => self.work = work_ms.duration(),
        }
        Ok(())
    }

    fn view(&self, _at: Moment, samples: &Sampler<(u64, u64, u64)>) -> View {
        let hops = self.config.hops.get();
        let nodes = (0..=hops)
            .map(|i| {
                let busy = self
                    .calls
                    .values()
                    .filter_map(|c| c.hops.get(i as usize))
                    .filter(|h| matches!(h.status, HopStatus::Working | HopStatus::Waiting))
                    .count();
                NodeView {
                    id: i,
                    label: if i == 0 {
                        "client".into()
                    } else {
                        format!("h{i}")
                    },
                    role: if i == 0 { "client" } else { "service" }.into(),
                    status: "up".into(),
                    fields: BTreeMap::from([("calls in hand".to_string(), json!(busy))]),
                    group: None,
                }
            })
            .collect();
        let t = self.totals;
        let table = Panel::Table {
            title: "calls".into(),
            columns: vec!["what".into(), "count".into()],
            rows: vec![
                vec![
                    json!("propagation"),
                    json!(if self.propagate { "on" } else { "off" }),
                ],
                vec![json!("calls"), json!(t.calls)],
                vec![json!("succeeded"), json!(t.succeeded)],
                vec![json!("failed fast (no time left)"), json!(t.failed)],
                vec![json!("timed out at the client"), json!(t.timed_out)],
                vec![json!("hop cancellations"), json!(t.cancellations)],
                vec![
                    json!("work after the caller gave up, ms"),
                    json!(t.wasted_us as f64 / 1_000.0),
                ],
            ],
        };
        let chart = Panel::Chart {
            title: "outcomes over time".into(),
            x_label: "time (ms)".into(),
            series: samples.series(),
        };
        let grew = match self.grew {
            None => InvariantStatus::holds(
                "deadlines never grow across hops",
                "every hop's deadline is at most its caller's",
            ),
            Some((call, hop, by)) => InvariantStatus::violated(
                "deadlines never grow across hops",
                format!(
                    "call #{call}: h{hop}'s deadline ends {} ms after its caller's (margin below the network delay)",
                    by as f64 / 1_000.0
                ),
                vec![hop as u32],
            ),
        };
        View {
            nodes,
            panels: vec![self.timeline(), table, chart],
            invariants: vec![grew],
            ..View::default()
        }
    }

    fn trace(&self, _at: Moment) -> Value {
        self.trace.to_json()
    }

    fn example_actions() -> Vec<TimeoutLabAction> {
        vec![
            TimeoutLabAction::SetPropagation { propagate: false },
            TimeoutLabAction::SetPropagation { propagate: true },
            TimeoutLabAction::SetWork {
                work_ms: Millis::of(150),
            },
        ]
    }
}

impl DrivenLab for TimeoutLab {
    fn arrivals(c: &TimeoutLabConfig) -> &ArrivalProcess {
        &c.arrivals
    }

    fn on_arrival(&mut self, at: Moment) {
        let id = self.next_call;
        self.next_call += 1;
        self.totals.calls += 1;
        self.calls.insert(
            id,
            Call {
                id,
                propagate: self.propagate,
                hops: Vec::new(),
                gave_up: None,
            },
        );
        self.trace.push(at.step, at.now, "call", &[("call", id)]);
        self.arrive(at.now, id, 0, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Driven, Lab, Runner};

    fn lab(config: Value) -> Runner<Driven<TimeoutLab>> {
        Runner::from_json(&config).unwrap()
    }

    #[test]
    fn without_propagation_work_goes_on_after_the_client_gave_up() {
        // 4 hops of ~90 ms each against 400 ms at the client: about a third of the calls
        // time out. Same seed both ways.
        let mut on = lab(json!({"seed": 3}));
        let mut off = lab(json!({"seed": 3, "propagate": false}));
        on.step(Duration::from_secs(60)).unwrap();
        off.step(Duration::from_secs(60)).unwrap();
        let (ok_on, out_on, wasted_on) = on.model().outcome();
        let (ok_off, out_off, wasted_off) = off.model().outcome();
        assert!(out_on > 50 && out_off > 50, "{out_on} {out_off}");
        assert!(ok_on > 100 && ok_off > 100, "{ok_on} {ok_off}");
        // With propagation every hop stops by the client's deadline: nothing wasted.
        assert_eq!(wasted_on, 0);
        assert!(
            wasted_off > 10_000 * out_off,
            "{wasted_off} µs for {out_off} timeouts"
        );
        for l in [&on, &off] {
            assert!(l.view().invariants.iter().all(|i| i.ok));
        }
    }

    #[test]
    fn a_margin_below_the_network_delay_lets_a_deadline_grow() {
        let mut l =
            lab(json!({"networkMs": 10, "timeout": {"overallTimeoutMs": 400, "hopMarginMs": 2}}));
        l.step(Duration::from_secs(10)).unwrap();
        let v = l.view();
        assert!(!v.invariants[0].ok, "{:?}", v.invariants);
        assert_eq!(v.invariants[0].nodes, [1]);
        let mut l =
            lab(json!({"networkMs": 10, "timeout": {"overallTimeoutMs": 400, "hopMarginMs": 10}}));
        l.step(Duration::from_secs(10)).unwrap();
        assert!(l.view().invariants[0].ok);
    }

    #[test]
    fn the_timeline_shows_each_hop_with_its_deadline() {
        let mut l = lab(Value::Null);
        l.step(Duration::from_secs(5)).unwrap();
        let v = l.view();
        let Panel::Timeline { lanes, bars, .. } = &v.panels[0] else {
            panic!()
        };
        assert_eq!(lanes.len(), 5);
        assert!(bars.iter().any(|b| b.state == "cancelled"));
        assert!(bars.iter().any(|b| b.state == "ok" && b.lane == 4));
        assert!(bars.iter().all(|b| b.label.contains("deadline")));
    }

    #[test]
    fn bad_configs_name_their_field() {
        let e = Runner::<Driven<TimeoutLab>>::from_json(&json!({"hops": 9}))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("config.hops"), "{e}");
    }
}
