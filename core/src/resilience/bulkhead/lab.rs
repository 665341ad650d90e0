//! Lab `resilience.bulkhead`: a workload calls a dependency through a bulkhead. The view
//! shows its slots and its queue over time, the waiters with how long they have waited,
//! what became of every caller (admitted at once, after a wait, timed out in the queue,
//! refused), and checks live that the slots never exceed the limit, the queue never
//! exceeds its bound, no waiter is lost and no slot is held by a call that is not running.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::bounded::{Count, Millis};
use crate::error::Result;
use crate::lab::local::{DrivenLab, LocalLab, Moment};
use crate::lab::sampling::{Sampled, Sampler};
use crate::lab::settings::local_lab_config;
use crate::lab::view::{InvariantStatus, NodeView, Panel, StripItem, View};
use crate::resilience::bulkhead::{Bulkhead, BulkheadConfig, BulkheadEntry, WaiterEvent};
use crate::resilience::dependency::{DependencyConfig, LabTrace};
use crate::rng::SimRng;
use crate::sim::workload::ArrivalProcess;
use crate::time::{Duration, Time};

/// Calls a burst action may make at once.
pub const MAX_BURST: u32 = 1_000;
/// Waiters the queue strip shows.
const SHOWN_WAITERS: usize = 50;

fn lab_bulkhead() -> BulkheadConfig {
    BulkheadConfig {
        max_concurrent_calls: Count::of(5),
        max_queue: Count::of(10),
        max_wait_ms: Millis::of(300),
    }
}

fn lab_dependency() -> DependencyConfig {
    DependencyConfig {
        latency_ms: Millis::of(100),
        ..DependencyConfig::default()
    }
}

local_lab_config! {
    /// Configuration of the bulkhead lab. JSON: `{"bulkhead": {"maxConcurrentCalls": 5,
    /// "maxQueue": 10, "maxWaitMs": 300}, "arrivals": {"type": "poisson", "ratePerSec":
    /// 45}, "dependency": {"latencyMs": 100}}`.
    pub struct BulkheadLabConfig {
        pub bulkhead: BulkheadConfig = lab_bulkhead(),
        /// When calls arrive.
        pub arrivals: ArrivalProcess = ArrivalProcess::Poisson { rate_per_sec: 45.0 },
        /// How long a call holds its slot (`latencyMs`, `slowRate`...).
        pub dependency: DependencyConfig = lab_dependency(),
    }
}

/// What can be done. JSON: `{"type": "setDependency", "dependency": {"latencyMs": 400}}`,
/// `{"type": "burst", "count": 30}`, `{"type": "setArrivals", "arrivals": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum BulkheadLabAction {
    /// The dependency from now on (slower: slots are held longer).
    SetDependency { dependency: DependencyConfig },
    /// `count` calls now.
    Burst { count: Count<1, { MAX_BURST }> },
}

/// The bulkhead lab.
#[derive(Debug, Clone)]
pub struct BulkheadLab {
    bulkhead: Bulkhead,
    rng: SimRng,
    dependency: DependencyConfig,
    /// Calls holding a slot, by when they finish.
    running: BTreeMap<(Time, u64), ()>,
    next_id: u64,
    trace: LabTrace,
}

impl BulkheadLab {
    pub fn bulkhead(&self) -> &Bulkhead {
        &self.bulkhead
    }

    fn start(&mut self, now: Time, id: u64) {
        let latency = self.dependency.call(&mut self.rng).latency;
        self.running.insert((now.saturating_add(latency), id), ());
    }

    fn waiter_events(&mut self, at: Moment, events: Vec<WaiterEvent>) {
        for e in events {
            match e {
                WaiterEvent::Admitted { id, waited } => {
                    self.start(at.now, id);
                    self.trace.push(
                        at.step,
                        at.now,
                        "dequeued",
                        &[("id", id), ("waitedUs", waited.0)],
                    );
                }
                WaiterEvent::TimedOut { id } => {
                    self.trace.push(at.step, at.now, "timedOut", &[("id", id)]);
                }
            }
        }
    }

    fn arrive(&mut self, at: Moment) {
        let id = self.next_id;
        self.next_id += 1;
        // Cannot fail: ids are fresh.
        let Ok((entry, events)) = self.bulkhead.try_enter(at.now, id) else {
            return;
        };
        self.waiter_events(at, events);
        let kind = match entry {
            BulkheadEntry::Admitted => {
                self.start(at.now, id);
                "admitted"
            }
            BulkheadEntry::Queued { .. } => "queued",
            BulkheadEntry::Rejected => "rejected",
        };
        self.trace.push(at.step, at.now, kind, &[("id", id)]);
    }

    fn invariants(&self) -> Vec<InvariantStatus> {
        let b = &self.bulkhead;
        judge(Observed {
            in_use: b.in_use(),
            limit: b.limit(),
            waiting: b.queue_len(),
            bound: b.max_queue(),
            running: self.running.len(),
            stats: b.stats(),
        })
    }
}

/// What the invariants look at.
#[derive(Debug, Clone, Copy)]
struct Observed {
    in_use: u32,
    limit: u32,
    waiting: u32,
    bound: u32,
    running: usize,
    stats: crate::resilience::bulkhead::BulkheadStats,
}

fn judge(o: Observed) -> Vec<InvariantStatus> {
    let check = |ok: bool, name: &str, detail: String| {
        if ok {
            InvariantStatus::holds(name, detail)
        } else {
            InvariantStatus::violated(name, detail, vec![0])
        }
    };
    let s = o.stats;
    let accounted = s.admitted_from_queue + s.timed_out + s.cancelled + u64::from(o.waiting);
    vec![
        check(
            o.in_use <= o.limit,
            "slots never exceed the limit",
            format!("{} of {} in use", o.in_use, o.limit),
        ),
        check(
            o.waiting <= o.bound,
            "the queue never exceeds its bound",
            format!("{} of {} waiting", o.waiting, o.bound),
        ),
        check(
            s.queued == accounted,
            "no waiter is lost",
            format!(
                "{} queued = {} admitted + {} timed out + {} cancelled + {} waiting",
                s.queued, s.admitted_from_queue, s.timed_out, s.cancelled, o.waiting
            ),
        ),
        check(
            o.in_use as usize == o.running,
            "every slot is held by a running call",
            format!("{} slots held, {} calls running", o.in_use, o.running),
        ),
    ]
}

impl Sampled for BulkheadLab {
    /// Rejected and timed out so far.
    type Totals = (u64, u64);

    fn series(&self) -> Vec<(String, String)> {
        [
            ("in use", "slots"),
            ("waiting", "callers"),
            ("rejected", "per interval"),
            ("timed out in queue", "per interval"),
        ]
        .map(|(n, u)| (n.into(), u.into()))
        .to_vec()
    }

    fn totals(&self) -> (u64, u64) {
        let s = self.bulkhead.stats();
        (s.rejected, s.timed_out)
    }

    fn sample(&self, _at: Time, _interval: Duration, since: &(u64, u64)) -> Vec<f64> {
        let (r, t) = self.totals();
        vec![
            f64::from(self.bulkhead.in_use()),
            f64::from(self.bulkhead.queue_len()),
            (r - since.0) as f64,
            (t - since.1) as f64,
        ]
    }
}

impl LocalLab for BulkheadLab {
    const ID: &'static str = "resilience.bulkhead";
    type Config = BulkheadLabConfig;
    type Action = BulkheadLabAction;

    fn new(c: &BulkheadLabConfig) -> Result<Self> {
        Ok(BulkheadLab {
            bulkhead: Bulkhead::new(c.bulkhead),
            rng: SimRng::derive(c.seed, 1),
            dependency: c.dependency,
            running: BTreeMap::new(),
            next_id: 0,
            trace: LabTrace::default(),
        })
    }

    fn next_event_at(&self, _now: Time) -> Option<Time> {
        let done = self.running.keys().next().map(|(t, _)| *t);
        [done, self.bulkhead.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    fn on_event(&mut self, due: Time, at: Moment) {
        if let Some(entry) = self.running.first_entry()
            && entry.key().0 <= due
        {
            let ((_, id), ()) = entry.remove_entry();
            // Cannot fail: `id` holds a slot.
            if let Ok(events) = self.bulkhead.release(at.now, id) {
                self.trace.push(at.step, at.now, "completed", &[("id", id)]);
                self.waiter_events(at, events);
            }
        } else if self.bulkhead.poll_timeout().is_some_and(|t| t <= due) {
            let events = self.bulkhead.handle_timeout(at.now);
            self.waiter_events(at, events);
        }
    }

    fn act(&mut self, at: Moment, action: &BulkheadLabAction) -> Result<()> {
        match action {
            BulkheadLabAction::SetDependency { dependency } => self.dependency = *dependency,
            BulkheadLabAction::Burst { count } => {
                for _ in 0..count.get() {
                    self.arrive(at);
                }
            }
        }
        Ok(())
    }

    fn view(&self, at: Moment, samples: &Sampler<(u64, u64)>) -> View {
        let b = &self.bulkhead;
        let s = b.stats();
        let mut fields = BTreeMap::new();
        fields.insert("in use".into(), json!(b.in_use()));
        fields.insert("limit".into(), json!(b.limit()));
        fields.insert("waiting".into(), json!(b.queue_len()));
        fields.insert("queue bound".into(), json!(b.max_queue()));
        fields.insert("stats".into(), json!(s));
        let slots = Panel::Strip {
            title: "slots".into(),
            items: (0..b.limit().min(1_000))
                .map(|i| StripItem {
                    label: format!("slot {i}"),
                    state: if i < b.in_use() { "pending" } else { "empty" }.into(),
                })
                .collect(),
        };
        let queue = Panel::Strip {
            title: "wait queue, oldest first (waited ms / max)".into(),
            items: b
                .waiters()
                .take(SHOWN_WAITERS)
                .map(|w| StripItem {
                    label: format!(
                        "#{} {:.0}/{:.0}",
                        w.id,
                        at.now.saturating_since(w.since).as_millis_f64(),
                        w.expires_at.saturating_since(w.since).as_millis_f64()
                    ),
                    state: "pending".into(),
                })
                .collect(),
        };
        let series = samples.series();
        let chart = Panel::Chart {
            title: "slots and queue over time".into(),
            x_label: "time (ms)".into(),
            series: series.iter().take(2).cloned().collect(),
        };
        let mean_wait = if s.admitted_from_queue == 0 {
            0.0
        } else {
            s.total_wait_us as f64 / s.admitted_from_queue as f64 / 1_000.0
        };
        let fates = Panel::Table {
            title: "what became of every caller".into(),
            columns: vec!["fate".into(), "callers".into()],
            rows: vec![
                vec![json!("admitted at once"), json!(s.admitted_at_once)],
                vec![json!("admitted after a wait"), json!(s.admitted_from_queue)],
                vec![json!("mean wait ms"), json!(mean_wait)],
                vec![json!("timed out in the queue"), json!(s.timed_out)],
                vec![json!("refused (full)"), json!(s.rejected)],
                vec![json!("completed"), json!(s.completed)],
                vec![
                    json!("peak slots / peak queue"),
                    json!(format!("{} / {}", s.peak_in_use, s.peak_queue)),
                ],
            ],
        };
        View {
            nodes: vec![NodeView {
                id: 0,
                label: "bulkhead".into(),
                role: if b.queue_len() > 0 {
                    "queueing"
                } else {
                    "admitting"
                }
                .into(),
                status: "up".into(),
                fields,
                group: None,
            }],
            panels: vec![chart, slots, queue, fates],
            invariants: self.invariants(),
            ..View::default()
        }
    }

    fn trace(&self, _at: Moment) -> Value {
        self.trace.to_json()
    }

    fn example_actions() -> Vec<BulkheadLabAction> {
        let slow = |ms: u32| BulkheadLabAction::SetDependency {
            dependency: DependencyConfig {
                latency_ms: Millis::new("latencyMs", f64::from(ms)).unwrap_or(Millis::of(100)),
                ..DependencyConfig::default()
            },
        };
        vec![
            slow(400),
            slow(100),
            BulkheadLabAction::Burst {
                count: Count::of(30),
            },
        ]
    }
}

impl DrivenLab for BulkheadLab {
    fn arrivals(c: &BulkheadLabConfig) -> &ArrivalProcess {
        &c.arrivals
    }

    fn on_arrival(&mut self, at: Moment) {
        self.arrive(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Driven, Lab, LabModel, Runner};

    fn lab(config: Value) -> Runner<Driven<BulkheadLab>> {
        Runner::from_json(&config).unwrap()
    }

    #[test]
    fn an_overload_fills_the_slots_then_the_queue_then_refuses() {
        let mut l = lab(Value::Null);
        l.step(Duration::from_secs(5)).unwrap();
        l.act(&json!({"type": "setDependency", "dependency": {"latencyMs": 400}}))
            .unwrap();
        l.step(Duration::from_secs(5)).unwrap();
        let s = l.model().bulkhead().stats();
        assert_eq!(s.peak_in_use, 5);
        assert_eq!(s.peak_queue, 10);
        assert!(
            s.rejected > 0 && s.timed_out > 0 && s.admitted_from_queue > 0,
            "{s:?}"
        );
        let v = l.view();
        assert!(v.invariants.iter().all(|i| i.ok), "{:?}", v.invariants);
        // Recovery drains the queue.
        l.act(&json!({"type": "setDependency", "dependency": {"latencyMs": 10}}))
            .unwrap();
        l.step(Duration::from_secs(5)).unwrap();
        assert!(l.model().bulkhead().queue_len() < 3);
    }

    #[test]
    fn every_invariant_can_fail() {
        let mut m = Driven::<BulkheadLab>::new(&BulkheadLabConfig::default()).unwrap();
        while m.step_until(Time::from_millis(2_000)) {}
        let b = m.bulkhead();
        let good = Observed {
            in_use: b.in_use(),
            limit: b.limit(),
            waiting: b.queue_len(),
            bound: b.max_queue(),
            running: m.running.len(),
            stats: b.stats(),
        };
        assert!(judge(good).iter().all(|i| i.ok));
        let mut lost = good.stats;
        lost.queued += 1;
        let bad = [
            Observed {
                in_use: 6,
                running: 6,
                ..good
            },
            Observed {
                waiting: 11,
                ..good
            },
            Observed {
                stats: lost,
                ..good
            },
            Observed {
                running: good.running + 1,
                ..good
            },
        ];
        for (i, o) in bad.into_iter().enumerate() {
            let verdicts = judge(o);
            for (j, v) in verdicts.iter().enumerate() {
                assert_eq!(
                    v.ok,
                    i != j && !(i == 1 && j == 2),
                    "case {i}, invariant {j}: {v:?}"
                );
            }
        }
        // The lab's own state can break the last one: a call it runs without a slot.
        m.running.insert((Time::MAX, u64::MAX), ());
        assert!(!m.view().invariants[3].ok);
    }

    #[test]
    fn bad_configs_name_their_field() {
        let e = Runner::<Driven<BulkheadLab>>::from_json(&json!({"bulkhead": {"maxQueue": -1}}))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("config.bulkhead.maxQueue"), "{e}");
    }
}
