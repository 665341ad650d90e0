//! Two runs of one protocol under one seed, drawn as one lab: the shape of every scenario
//! that shows a failure next to its fix (fencing off / on, pre-vote off / on).
//!
//! The kit interleaves the two runs event by event in time order, so the page draws both
//! at the same simulated moment; numbers the second run's nodes and clients after the
//! first's; and merges their traces in the order the scenario processed them, with each
//! event's `step` in the scenario's own coordinate (what seeking takes). Until the runs'
//! settings make them differ, both are the same event for event.
//!
//! [`SideBySide`] is the whole of it for two runs of a [`ClusterLab`]; a scenario over
//! another driver (the Raft harness) uses the pieces: [`next_run`], [`StepMap`],
//! [`merged_trace`] and [`append_view`].

use serde_json::{Value, json};
use std::collections::VecDeque;

use crate::lab::cluster::{Cluster, ClusterLab};
use crate::lab::runner::LabModel;
use crate::lab::view::{MessageView, Panel, PartitionView, View};
use crate::sim::Endpoint;
use crate::sim::trace::Trace;
use crate::time::Time;

/// Trace events kept per run for the merged trace.
pub const TRACE_TAIL: usize = 10_000;

/// Which run processes the next event, given each run's next event time: the earlier one
/// (the first run on a tie), with the latest time it may run to without passing the other
/// run's next event (a run skips stale timers on its own and must not reach a real event
/// that comes after the other run's). `None` when neither has an event by `deadline`.
pub fn next_run(next: [Option<Time>; 2], deadline: Time) -> Option<(usize, Time)> {
    let (i, at, bound) = match next {
        [None, None] => return None,
        [Some(a), None] => (0, a, Time::MAX),
        [None, Some(b)] => (1, b, Time::MAX),
        [Some(a), Some(b)] if b < a => (1, b, Time(a.0 - 1)),
        [Some(a), Some(b)] => (0, a, b),
    };
    (at <= deadline).then_some((i, deadline.min(bound)))
}

/// A run's recent steps in the scenario's coordinate: (the run's own step count, the
/// scenario's), oldest first, at most [`TRACE_TAIL`].
#[derive(Debug, Clone, Default)]
pub struct StepMap {
    steps: VecDeque<(u64, u64)>,
}

impl StepMap {
    /// Remembers that the run's step `own` was the scenario's step `lab`.
    pub fn record(&mut self, own: u64, lab: u64) {
        if self.steps.len() >= TRACE_TAIL {
            self.steps.pop_front();
        }
        self.steps.push_back((own, lab));
    }

    /// Sets the scenario step of the newest step recorded.
    pub fn set_last(&mut self, lab: u64) {
        if let Some(last) = self.steps.back_mut() {
            last.1 = lab;
        }
    }

    /// The scenario's step for the run's step `own`: 0 for what happened before the first
    /// event, `None` for a step older than those remembered.
    pub fn lab_step(&self, own: u64) -> Option<u64> {
        match self.steps.binary_search_by_key(&own, |(o, _)| *o) {
            Ok(k) => self.steps.get(k).map(|(_, lab)| *lab),
            Err(_) if own == 0 => Some(0),
            Err(_) => None,
        }
    }
}

/// Shifts a trace event's node ids by `nodes` and client ids by `clients` (the second
/// run's numbering in the view).
pub fn renumber(v: &mut Value, nodes: u32, clients: u32) {
    let shift = |x: &mut Value, by: u32| {
        if let Some(n) = x.as_u64() {
            *x = json!(n + by as u64);
        }
    };
    if let Some(n) = v.get_mut("node") {
        shift(n, nodes);
    }
    if let Some(c) = v.get_mut("client") {
        shift(c, clients);
    }
    for end in ["from", "to"] {
        if let Some(ep) = v.get_mut(end) {
            let by = match ep.get("type").and_then(Value::as_str) {
                Some("node") => nodes,
                _ => clients,
            };
            if let Some(id) = ep.get_mut("id") {
                shift(id, by);
            }
        }
    }
}

/// Both runs' newest events (at most `tail` each) merged in the order the scenario
/// processed them: `{hash, events, complete, trace}` as every lab's trace, the second
/// run's nodes and clients shifted by `second` = (nodes, clients).
pub fn merged_trace(runs: [(&Trace, &StepMap); 2], second: (u32, u32), tail: usize) -> Value {
    let mut events: Vec<(u64, u64, usize, Value)> = Vec::new();
    let mut total = 0;
    let mut complete = true;
    for (i, (trace, steps)) in runs.iter().enumerate() {
        total += trace.len();
        let from = trace
            .first_kept()
            .max(trace.len().saturating_sub(tail as u64));
        complete &= from == 0;
        for e in trace.events_from(from) {
            let Some(lab_step) = steps.lab_step(e.step) else {
                continue;
            };
            let Ok(mut v) = serde_json::to_value(e) else {
                continue;
            };
            if i == 1 {
                renumber(&mut v, second.0, second.1);
            }
            if let Some(step) = v.get_mut("step") {
                *step = json!(lab_step);
            }
            events.push((e.time.0, lab_step, i, v));
        }
    }
    events.sort_by_key(|(time, step, side, _)| (*step, *time, *side));
    json!({
        "hash": format!("{:016x}{:016x}", runs[0].0.hash(), runs[1].0.hash()),
        "events": total,
        "complete": complete,
        "trace": events.into_iter().map(|(_, _, _, v)| v).collect::<Vec<_>>(),
    })
}

/// Appends run `run`'s view `v` to `into`: its nodes numbered from `nodes` and grouped
/// under `name`, its clients from `clients`, and its panels, metrics and invariants named
/// after the run.
pub fn append_view(into: &mut View, v: View, run: usize, name: &str, nodes: u32, clients: u32) {
    into.nodes.extend(v.nodes.into_iter().map(|mut n| {
        n.id += nodes;
        n.fields.insert("run".into(), json!(name));
        n.group = Some(name.into());
        n
    }));
    let shift = |e: Endpoint| match e {
        Endpoint::Node(n) => Endpoint::Node(n + nodes),
        Endpoint::Client(c) => Endpoint::Client(c + clients),
    };
    into.messages
        .extend(v.messages.into_iter().map(|m| MessageView {
            id: m.id * 2 + run as u64,
            from: shift(m.from),
            to: shift(m.to),
            ..m
        }));
    let PartitionView { groups, one_way } = v.partitions;
    into.partitions.groups.extend(
        groups
            .into_iter()
            .map(|g| g.into_iter().map(|n| n + nodes).collect::<Vec<_>>()),
    );
    into.partitions
        .one_way
        .extend(one_way.into_iter().map(|(a, b)| (a + nodes, b + nodes)));
    into.panels.extend(v.panels.into_iter().map(|p| match p {
        Panel::Table {
            title,
            columns,
            rows,
        } => Panel::Table {
            title: format!("{title}, {name}"),
            columns,
            rows,
        },
        Panel::Text { title, body } => Panel::Text {
            title: format!("{title}, {name}"),
            body,
        },
        other => other,
    }));
    into.metrics.extend(v.metrics.into_iter().map(|mut m| {
        m.name = format!("{}, {name}", m.name);
        m
    }));
    into.invariants
        .extend(v.invariants.into_iter().map(|mut st| {
            st.name = format!("{name}: {}", st.name);
            st.nodes.iter_mut().for_each(|n| *n += nodes);
            st
        }));
}

/// Two runs of cluster lab `L` under one seed, each named ("fencing off", "fencing on").
/// A scenario holds one, delegates its clock and steps to it, and adds its own actions
/// and comparison panel.
#[derive(Debug, Clone)]
pub struct SideBySide<L: ClusterLab> {
    runs: [Cluster<L>; 2],
    names: [&'static str; 2],
    steps: [StepMap; 2],
}

impl<L: ClusterLab> SideBySide<L> {
    pub fn new(runs: [Cluster<L>; 2], names: [&'static str; 2]) -> Self {
        SideBySide {
            runs,
            names,
            steps: Default::default(),
        }
    }

    /// Run `i` (0 or 1).
    pub fn run(&self, i: usize) -> &Cluster<L> {
        &self.runs[i]
    }

    /// Run `i`, to apply a scenario's own fault to it. Processing events goes through
    /// [`SideBySide::step_until`], which keeps the step coordinates.
    pub fn run_mut(&mut self, i: usize) -> &mut Cluster<L> {
        &mut self.runs[i]
    }

    pub fn name(&self, i: usize) -> &'static str {
        self.names[i]
    }

    /// Processes the next event of either run due by `deadline` and returns which run it
    /// was; `None` when neither has one.
    pub fn step_until(&mut self, deadline: Time) -> Option<usize> {
        // A run whose next queued event is a stale timer processes nothing: go round.
        loop {
            let next = [0, 1].map(|i| self.runs[i].sim().next_event_time());
            let (i, until) = next_run(next, deadline)?;
            if self.runs[i].step_until(until) {
                let lab_step = self.steps();
                self.steps[i].record(self.runs[i].steps(), lab_step);
                return Some(i);
            }
        }
    }

    pub fn advance_clock(&mut self, t: Time) {
        for r in &mut self.runs {
            r.advance_clock(t);
        }
    }

    pub fn now(&self) -> Time {
        self.runs[0].now().max(self.runs[1].now())
    }

    pub fn steps(&self) -> u64 {
        self.runs.iter().map(LabModel::steps).sum()
    }

    /// Where run `i`'s nodes and clients start in the view: (nodes, clients).
    pub fn offset(&self, i: usize) -> (u32, u32) {
        if i == 0 {
            (0, 0)
        } else {
            let sim = self.runs[0].sim();
            (sim.node_count(), sim.config().clients)
        }
    }

    /// Both runs drawn as one.
    pub fn view(&self) -> View {
        let mut view = View::default();
        for (i, r) in self.runs.iter().enumerate() {
            let (nodes, clients) = self.offset(i);
            append_view(&mut view, r.view(), i, self.names[i], nodes, clients);
        }
        view
    }

    /// Both runs' newest events merged in the order the scenario processed them.
    pub fn trace(&self) -> Value {
        merged_trace(
            [0, 1].map(|i| (self.runs[i].sim().trace(), &self.steps[i])),
            self.offset(1),
            TRACE_TAIL,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earlier_run_goes_first_and_stops_short_of_the_other() {
        let (a, b, end) = (Time(10), Time(20), Time(100));
        assert_eq!(next_run([Some(a), Some(b)], end), Some((0, b)));
        assert_eq!(next_run([Some(b), Some(a)], end), Some((1, Time(19))));
        // A tie goes to the first run, which may run up to the shared time.
        assert_eq!(next_run([Some(a), Some(a)], end), Some((0, a)));
        assert_eq!(next_run([None, Some(a)], end), Some((1, end)));
        assert_eq!(next_run([Some(b), None], Time(15)), None);
        assert_eq!(next_run([None, None], end), None);
    }

    #[test]
    fn step_map_keeps_the_newest_and_answers_for_the_start() {
        let mut m = StepMap::default();
        for own in 1..=(TRACE_TAIL as u64 + 5) {
            m.record(own, own * 2);
        }
        assert_eq!(m.lab_step(0), Some(0));
        assert_eq!(m.lab_step(3), None, "older than the tail");
        assert_eq!(
            m.lab_step(TRACE_TAIL as u64 + 5),
            Some(2 * (TRACE_TAIL as u64 + 5))
        );
        m.set_last(7);
        assert_eq!(m.lab_step(TRACE_TAIL as u64 + 5), Some(7));
    }

    #[test]
    fn renumber_shifts_nodes_and_clients_by_their_own_offsets() {
        let mut v = json!({
            "node": 1, "client": 0,
            "from": {"type": "node", "id": 2}, "to": {"type": "client", "id": 1}
        });
        renumber(&mut v, 5, 3);
        assert_eq!(
            v,
            json!({
                "node": 6, "client": 3,
                "from": {"type": "node", "id": 7}, "to": {"type": "client", "id": 4}
            })
        );
    }
}
