//! Lab `sim.trace`: the trace explorer. A small pinging cluster under a few scripted faults
//! records every send, delivery, drop, timer, crash, disk write and client event; the lab
//! filters the kept events by node and by kind, counts them by kind, shows the run's
//! stable hash (the same on every platform: natively and in wasm) beside the hash of the
//! filtered events, and the filtered events as the JSON the npm package exports
//! (`lab.trace()`). Seeking is the page's: click an event's step, or drag the scrubber.
//!
//! Invariant: the trace is ordered — steps never decrease and time never goes back —
//! over every kept event, checked where the view is built.
//!
//! Reference: the event log of a deterministic simulator, as in FoundationDB's simulation
//! testing (Zhou et al., SIGMOD 2021) and TigerBeetle's VOPR: a seed and the trace's hash
//! say which run it was.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use crate::bounded::Count;
use crate::error::{DistlabError, Result};
use crate::lab::cluster::{ClusterAction, ClusterLab};
use crate::lab::sampling::Sampled;
use crate::lab::settings::{ClusterSettings, cluster_lab_config};
use crate::lab::view::{InvariantStatus, Panel, Series};
use crate::sim::pingpong::{PingConfig, PingNode};
use crate::sim::trace::{StableHasher, TraceEvent, TraceKind};
use crate::sim::workload::within;
use crate::sim::{Fault, FaultScript, NodeId, ScheduledFault, Sim, SimConfig};
use crate::time::{Duration, Time};

/// The largest cluster the lab takes.
pub const MAX_NODES: u32 = 16;
/// Events the simulator keeps (the hash covers all of them).
pub const KEPT_EVENTS: usize = 20_000;
/// Matching events listed in the table, newest first.
const TABLE_ROWS: usize = 30;
/// Matching events in the JSON export panel.
const EXPORT_EVENTS: usize = 12;

/// Which events the explorer shows. Empty lists match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct TraceFilter {
    /// Events that involve one of these nodes (as sender, receiver or subject).
    pub nodes: Vec<NodeId>,
    /// Events of these kinds (`send`, `deliver`, `drop`, `timer`, `crash`...: see
    /// `TraceKind::TYPES`).
    pub kinds: Vec<String>,
}

impl TraceFilter {
    fn check(&self, nodes: u32) -> Result<()> {
        if let Some((i, n)) = self.nodes.iter().enumerate().find(|(_, n)| **n >= nodes) {
            return Err(DistlabError::field(
                format!("nodes[{i}]"),
                format!("node {n} does not exist (the cluster has {nodes} nodes)"),
            ));
        }
        if let Some((i, k)) = self
            .kinds
            .iter()
            .enumerate()
            .find(|(_, k)| !TraceKind::TYPES.contains(&k.as_str()))
        {
            return Err(DistlabError::field(
                format!("kinds[{i}]"),
                format!(
                    "`{k}` is not a trace event kind; kinds: {}",
                    TraceKind::TYPES.join(", ")
                ),
            ));
        }
        Ok(())
    }

    fn matches(&self, e: &TraceEvent) -> bool {
        let kind_ok = self.kinds.is_empty() || self.kinds.iter().any(|k| k == kind_name(&e.kind));
        let (a, b) = e.kind.nodes();
        let node_ok = self.nodes.is_empty()
            || [a, b]
                .into_iter()
                .flatten()
                .any(|n| self.nodes.contains(&n));
        kind_ok && node_ok
    }
}

/// The serde `type` of a trace event.
fn kind_name(k: &TraceKind) -> &'static str {
    TraceKind::TYPES
        .get(k.index())
        .copied()
        .unwrap_or("unknown")
}

cluster_lab_config! {
    /// Configuration of the trace explorer. Its faults by default: a crash, a partition
    /// and their ends.
    pub struct TraceLabConfig {
        pub nodes: Count<2, { MAX_NODES }> = Count::of(4),
        /// Which events to show.
        pub filter: TraceFilter = TraceFilter::default(),
    }
    defaults {
        faults: default_faults(),
    }
}

fn default_faults() -> FaultScript {
    let at = |ms: u64, fault| ScheduledFault {
        at_us: ms * 1_000,
        fault,
    };
    FaultScript {
        faults: vec![
            at(400, Fault::Crash { node: 3 }),
            at(900, Fault::Restart { node: 3 }),
            at(
                1_400,
                Fault::Partition {
                    groups: vec![vec![0, 1]],
                },
            ),
            at(2_000, Fault::Heal),
        ],
    }
}

/// The explorer's own actions, besides every fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum TraceLabAction {
    /// Show only the events that match `filter` (empty lists: everything).
    SetFilter { filter: TraceFilter },
}

/// The trace explorer.
#[derive(Debug, Clone)]
pub struct TraceLab {
    sim: Sim<PingNode>,
    filter: TraceFilter,
}

impl TraceLab {
    fn matching(&self) -> impl DoubleEndedIterator<Item = &TraceEvent> + '_ {
        self.sim.trace().events().filter(|e| self.filter.matches(e))
    }

    fn filter_text(&self) -> String {
        let list = |v: Vec<String>| match v.is_empty() {
            true => "all".to_string(),
            false => v.join(", "),
        };
        format!(
            "nodes: {}; kinds: {}",
            list(self.filter.nodes.iter().map(|n| format!("n{n}")).collect()),
            list(self.filter.kinds.clone())
        )
    }

    fn events_table(&self) -> Panel {
        let rows = self
            .matching()
            .rev()
            .take(TABLE_ROWS)
            .map(|e| {
                let mut detail = serde_json::to_value(&e.kind).unwrap_or(Value::Null);
                if let Value::Object(m) = &mut detail {
                    m.remove("type");
                }
                let (a, b) = e.kind.nodes();
                let nodes: Vec<String> = [a, b]
                    .into_iter()
                    .flatten()
                    .map(|n| format!("n{n}"))
                    .collect();
                vec![
                    json!(e.step),
                    json!(e.time.as_millis_f64()),
                    json!(kind_name(&e.kind)),
                    json!(nodes.join("→")),
                    detail,
                ]
            })
            .collect();
        Panel::Table {
            title: format!("events matching ({}), newest first", self.filter_text()),
            columns: ["step", "ms", "kind", "nodes", "detail"]
                .map(String::from)
                .to_vec(),
            rows,
        }
    }

    fn kinds_bars(&self) -> Panel {
        let mut counts = vec![0.0; TraceKind::TYPES.len()];
        for e in self.matching() {
            if let Some(c) = counts.get_mut(e.kind.index()) {
                *c += 1.0;
            }
        }
        let shown: Vec<usize> = (0..counts.len()).filter(|&i| counts[i] > 0.0).collect();
        Panel::Bars {
            title: format!(
                "matching events by kind, of the {} kept",
                self.sim.trace().kept()
            ),
            labels: shown
                .iter()
                .map(|&i| TraceKind::TYPES[i].to_string())
                .collect(),
            series: vec![Series {
                name: "events".into(),
                unit: "events".into(),
                x: (0..shown.len()).map(|i| i as f64).collect(),
                y: shown.iter().map(|&i| counts[i]).collect(),
            }],
        }
    }

    fn hashes_text(&self) -> Panel {
        let trace = self.sim.trace();
        let mut filtered = StableHasher::default();
        let mut n = 0u64;
        for e in self.matching() {
            e.step.hash(&mut filtered);
            e.time.0.hash(&mut filtered);
            e.kind.hash(&mut filtered);
            n += 1;
        }
        Panel::Text {
            title: "stable hashes".into(),
            body: format!(
                "whole run: {:016x} over {} events ({} kept, from event {}); the same seed and \
                 config give this hash natively and in wasm.\nmatching the filter: {:016x} over \
                 {n} kept events.",
                trace.hash(),
                trace.len(),
                trace.kept(),
                trace.first_kept(),
                filtered.finish()
            ),
        }
    }

    fn export_text(&self) -> Panel {
        let newest: Vec<&TraceEvent> = self.matching().rev().take(EXPORT_EVENTS).collect();
        let lines: Vec<String> = newest
            .into_iter()
            .rev()
            .map(|e| serde_json::to_string(e).unwrap_or_default())
            .collect();
        Panel::Text {
            title: "JSON export: the newest matching events (lab.trace() has them all)".into(),
            body: lines.join("\n"),
        }
    }
}

/// The steps of the first pair of events out of order (a step or a time going back).
fn disorder<'a>(events: impl Iterator<Item = &'a TraceEvent>) -> Option<(u64, u64)> {
    let mut prev: Option<&TraceEvent> = None;
    for e in events {
        if let Some(p) = prev
            && (e.step < p.step || e.time < p.time)
        {
            return Some((p.step, e.step));
        }
        prev = Some(e);
    }
    None
}

impl Sampled for TraceLab {
    /// Events recorded so far.
    type Totals = u64;

    fn series(&self) -> Vec<(String, String)> {
        [
            ("events recorded", "per interval"),
            ("events matching", "kept"),
        ]
        .map(|(n, u)| (n.into(), u.into()))
        .to_vec()
    }

    fn totals(&self) -> u64 {
        self.sim.trace().len()
    }

    fn sample(&self, _at: Time, _interval: Duration, since: &u64) -> Vec<f64> {
        vec![
            (self.sim.trace().len() - since) as f64,
            self.matching().count() as f64,
        ]
    }
}

impl ClusterLab for TraceLab {
    const ID: &'static str = "sim.trace";
    type Node = PingNode;
    type Config = TraceLabConfig;
    type Action = TraceLabAction;
    const TRACE_TAIL: usize = KEPT_EVENTS;

    fn new(c: &TraceLabConfig) -> Result<Self> {
        c.filter
            .check(c.nodes.get())
            .map_err(|e| within("filter", e))?;
        let mut sim = Sim::new(
            SimConfig {
                clients: 1,
                record_trace: true,
                trace_limit: KEPT_EVENTS,
                ..c.sim_config(c.nodes.get())
            },
            PingConfig {
                fanout: 3,
                interval: Duration::from_millis(100),
            },
        )?;
        c.load_faults(&mut sim)?;
        Ok(TraceLab {
            sim,
            filter: c.filter.clone(),
        })
    }

    fn sim(&self) -> &Sim<PingNode> {
        &self.sim
    }

    fn sim_mut(&mut self) -> &mut Sim<PingNode> {
        &mut self.sim
    }

    fn act(&mut self, action: &TraceLabAction) -> Result<()> {
        match action {
            TraceLabAction::SetFilter { filter } => {
                filter
                    .check(self.sim.node_count())
                    .map_err(|e| within("filter", e))?;
                self.filter = filter.clone();
            }
        }
        Ok(())
    }

    fn node_fields(&self, id: NodeId, fields: &mut BTreeMap<String, Value>) {
        let involving = self
            .sim
            .trace()
            .events()
            .filter(|e| {
                let (a, b) = e.kind.nodes();
                a == Some(id) || b == Some(id)
            })
            .count();
        fields.insert("keptEventsInvolving".into(), json!(involving));
        fields.insert(
            "shown".into(),
            json!(self.filter.nodes.is_empty() || self.filter.nodes.contains(&id)),
        );
    }

    fn panels(&self) -> Vec<Panel> {
        vec![
            self.hashes_text(),
            self.events_table(),
            self.kinds_bars(),
            self.export_text(),
        ]
    }

    fn invariants(&self) -> Vec<InvariantStatus> {
        const ORDERED: &str = "the trace is ordered: steps and time never go back";
        vec![match disorder(self.sim.trace().events()) {
            None => InvariantStatus::holds(
                ORDERED,
                format!("over the {} kept events", self.sim.trace().kept()),
            ),
            Some((a, b)) => InvariantStatus::violated(
                ORDERED,
                format!("event of step {b} comes after one of step {a} or earlier in time"),
                Vec::new(),
            ),
        }]
    }

    fn example_actions() -> Vec<ClusterAction<TraceLabAction>> {
        let filter = |nodes: Vec<NodeId>, kinds: &[&str]| {
            ClusterAction::Lab(TraceLabAction::SetFilter {
                filter: TraceFilter {
                    nodes,
                    kinds: kinds.iter().map(|k| k.to_string()).collect(),
                },
            })
        };
        let mut v = vec![
            filter(vec![0], &[]),
            filter(vec![], &["drop", "crash", "restart"]),
            filter(vec![1, 2], &["send", "deliver"]),
            filter(vec![], &[]),
        ];
        v.extend(Fault::examples().into_iter().map(ClusterAction::Fault));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Cluster, Lab, Runner};

    fn lab(config: Value) -> Runner<Cluster<TraceLab>> {
        Runner::from_json(&config).unwrap()
    }

    #[test]
    fn kind_names_are_the_serde_types() {
        let mut l = lab(Value::Null);
        l.step(Duration::from_secs(3)).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for e in l.model().sim().trace().events() {
            let v = serde_json::to_value(e).unwrap();
            assert_eq!(v["type"], json!(kind_name(&e.kind)));
            seen.insert(kind_name(&e.kind));
        }
        for k in [
            "send", "deliver", "drop", "timer", "crash", "restart", "fault",
        ] {
            assert!(seen.contains(k), "{k} not seen in {seen:?}");
        }
    }

    #[test]
    fn the_filter_keeps_only_matching_events_and_changes_the_filtered_hash() {
        let mut l = lab(Value::Null);
        l.step(Duration::from_secs(3)).unwrap();
        let all = l.model().matching().count();
        let text = |l: &Runner<Cluster<TraceLab>>| match &l.view().panels[0] {
            Panel::Text { body, .. } => body.clone(),
            other => panic!("{other:?}"),
        };
        let before = text(&l);
        l.act(
            &json!({"type": "setFilter", "filter": {"nodes": [3], "kinds": ["crash", "restart"]}}),
        )
        .unwrap();
        let m = l.model();
        let picked: Vec<&TraceEvent> = m.matching().collect();
        assert_eq!(picked.len(), 2, "{picked:?}");
        assert!(picked.len() < all);
        let after = text(&l);
        // The whole run's hash stays; the filtered one changes.
        assert_eq!(before.lines().next(), after.lines().next());
        assert_ne!(before.lines().nth(1), after.lines().nth(1));
        let Panel::Table { rows, .. } = &l.view().panels[1] else {
            panic!()
        };
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][2], json!("restart"));
    }

    #[test]
    fn the_order_check_passes_on_real_runs() {
        for seed in 0..10 {
            let mut l = lab(json!({"seed": seed, "network": {"reorder": 0.3, "duplicate": 0.2}}));
            l.step(Duration::from_secs(2)).unwrap();
            let v = l.view();
            assert!(v.invariants[0].ok, "{:?}", v.invariants);
        }
    }

    #[test]
    fn the_order_check_catches_a_step_or_a_time_going_back() {
        let event = |step, ms| TraceEvent {
            step,
            time: Time::from_millis(ms),
            kind: TraceKind::Crash { node: 0 },
        };
        let fine = [event(1, 1), event(1, 1), event(2, 5)];
        assert_eq!(disorder(fine.iter()), None);
        assert_eq!(disorder([event(3, 1), event(2, 2)].iter()), Some((3, 2)));
        assert_eq!(disorder([event(1, 9), event(2, 8)].iter()), Some((1, 2)));
    }

    #[test]
    fn bad_filters_name_the_field() {
        let e = Runner::<Cluster<TraceLab>>::from_json(&json!({"filter": {"kinds": ["nope"]}}))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("`config.filter.kinds[0]`"), "{e}");
        let mut l = lab(Value::Null);
        let e = l
            .act(&json!({"type": "setFilter", "filter": {"nodes": [0, 9]}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`action.filter.nodes[1]`"), "{e}");
    }
}
