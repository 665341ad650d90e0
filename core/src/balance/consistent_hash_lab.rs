//! Lab `balance.consistent-hash`: a hash ring ([`super::consistent_hash`]) with keys
//! arriving from a workload. Request `n` asks for key `item-(n mod keySpace)`, so the keys
//! placed grow to the key space and then repeat. The view draws the ring (each node's
//! points and the arcs they own, a few keys as ticks), keys and requests per node against
//! each node's fair share, and every ring change with the keys it moved against the `1/N`
//! the theory predicts (Karger et al. 1997). The invariant is the ring's promise: adding
//! a node moves keys only to it, removing one moves only its keys.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};

use crate::balance::consistent_hash::{HashRing, relative_std_dev};
use crate::bounded::Count;
use crate::error::{DistlabError, Result};
use crate::lab::local::{DrivenLab, LocalLab, Moment};
use crate::lab::sampling::{Sampled, Sampler};
use crate::lab::settings::local_lab_config;
use crate::lab::view::{InvariantStatus, NodeView, Panel, RingArc, RingPoint, Series, View};
use crate::sim::workload::ArrivalProcess;
use crate::sketch::lab_support::{SketchTrace, check_key, item_key};
use crate::time::{Duration, Time};

/// The most nodes the lab's ring may hold.
pub const MAX_LAB_NODES: u32 = 32;
/// The most virtual nodes per unit of weight in the lab.
pub const MAX_LAB_VIRTUAL_NODES: u32 = 1_000;
/// The largest weight a node may have in the lab.
pub const MAX_LAB_WEIGHT: u32 = 10;
/// The largest key space.
pub const MAX_LAB_KEYS: u32 = 20_000;
/// Points drawn on the ring at most; a denser ring is drawn every k-th point.
const DRAWN_POINTS: usize = 1_024;
/// Keys drawn on the ring as ticks.
const DRAWN_KEYS: u64 = 48;
/// Ring changes and lookups shown in their tables.
const ROWS_KEPT: usize = 16;

local_lab_config! {
    /// Configuration of the consistent-hash ring lab.
    pub struct RingLabConfig {
        /// When a request for a key arrives.
        pub arrivals: ArrivalProcess = ArrivalProcess::Constant {
            rate_per_sec: 500.0,
        },
        /// Nodes on the ring at the start (`node-0`, `node-1`, …), each of weight 1.
        pub nodes: Count<1, { MAX_LAB_NODES }> = Count::of(4),
        /// Points each node places per unit of weight.
        pub virtual_nodes: Count<1, { MAX_LAB_VIRTUAL_NODES }> = Count::of(100),
        /// Distinct keys requested (`item-0` … ); requests cycle through them.
        pub key_space: Count<1, { MAX_LAB_KEYS }> = Count::of(2_000),
        /// Length of the preference list a lookup shows (at most the nodes on the ring).
        pub replicas: Count<1, { MAX_LAB_NODES }> = Count::of(3),
    }
}

/// What can be done to the ring. JSON: `{"type": "addNode", "name": "node-9", "weight":
/// 1}`, `{"type": "removeNode", "name": "node-0"}`, `{"type": "setVirtualNodes",
/// "virtualNodes": 10}`, `{"type": "lookup", "key": "alice"}` (and the kit's
/// `setArrivals`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum RingLabAction {
    /// Put a node on the ring; keys move to it from its clockwise neighbours.
    AddNode {
        name: String,
        weight: Count<1, { MAX_LAB_WEIGHT }>,
    },
    /// Take a node off; its keys go to the next nodes clockwise.
    RemoveNode { name: String },
    /// Place every node's points again with a new count per unit of weight.
    SetVirtualNodes {
        virtual_nodes: Count<1, { MAX_LAB_VIRTUAL_NODES }>,
    },
    /// Show where a key lives and its preference list.
    Lookup { key: String },
}

/// Running totals for the charts.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RingTotals {
    pub requests: u64,
    pub moved: u64,
}

/// One ring change and what it moved.
#[derive(Debug, Clone, PartialEq)]
pub struct RingChange {
    pub what: String,
    /// Keys placed when it happened.
    pub keys: u64,
    pub moved: u64,
    /// The share of keys the theory expects to move: the changed node's share of the
    /// total weight after an add, before a remove (`1/N` for equal weights).
    pub expected_fraction: Option<f64>,
}

/// The consistent-hash ring lab.
#[derive(Debug, Clone)]
pub struct RingLab {
    ring: HashRing,
    key_space: u64,
    replicas: usize,
    /// Requests so far; keys `item-0` .. `item-min(requests, keySpace)` are placed.
    requests: u64,
    /// Every name a node ever had, so owners survive a node's removal.
    names: Vec<String>,
    /// Each placed key's owner, an index into `names`.
    owners: Vec<u32>,
    /// Requests per node name, since the start.
    served: BTreeMap<String, u64>,
    moved_total: u64,
    changes_made: u64,
    changes: VecDeque<RingChange>,
    lookups: VecDeque<(String, f64, Vec<String>)>,
    /// The first change that moved a key it should not have.
    breach: Option<String>,
    trace: SketchTrace,
}

impl RingLab {
    pub fn ring(&self) -> &HashRing {
        &self.ring
    }

    pub fn changes(&self) -> &VecDeque<RingChange> {
        &self.changes
    }

    /// Keys placed so far.
    pub fn keys_placed(&self) -> u64 {
        self.requests.min(self.key_space)
    }

    fn intern(&mut self, name: &str) -> u32 {
        match self.names.iter().position(|n| n == name) {
            Some(i) => i as u32,
            None => {
                self.names.push(name.to_string());
                (self.names.len() - 1) as u32
            }
        }
    }

    fn owner_of(&mut self, key: u64) -> u32 {
        let owner = self
            .ring
            .lookup(item_key(key).as_bytes())
            .unwrap_or_default()
            .to_string();
        self.intern(&owner)
    }

    /// Looks every placed key up again after a change; counts the moves and checks each
    /// one is allowed: `allowed(old, new)` says whether a key may go from `old` to `new`.
    fn replace_keys(
        &mut self,
        at: Moment,
        what: String,
        expected_fraction: Option<f64>,
        allowed: impl Fn(&str, &str) -> bool,
    ) {
        let mut moved = 0;
        for k in 0..self.owners.len() {
            let old = self.owners[k];
            let new = self.owner_of(k as u64);
            if new != old {
                moved += 1;
                self.owners[k] = new;
                let (o, n) = (&self.names[old as usize], &self.names[new as usize]);
                if !allowed(o, n) && self.breach.is_none() {
                    self.breach = Some(format!(
                        "{what}: key {} moved from {o} to {n}",
                        item_key(k as u64)
                    ));
                }
            }
        }
        self.moved_total += moved;
        self.changes_made += 1;
        self.trace.note(at, "change", &what, moved);
        if self.changes.len() >= ROWS_KEPT {
            self.changes.pop_front();
        }
        self.changes.push_back(RingChange {
            what,
            keys: self.owners.len() as u64,
            moved,
            expected_fraction,
        });
    }

    fn total_weight(&self) -> u64 {
        self.ring.nodes().map(|n| u64::from(n.weight)).sum()
    }

    /// Keys per node, in the ring's node order.
    fn keys_per_node(&self) -> Vec<u64> {
        let index: BTreeMap<&str, usize> = self
            .ring
            .nodes()
            .enumerate()
            .map(|(i, n)| (n.name.as_str(), i))
            .collect();
        let mut counts = vec![0u64; index.len()];
        for o in &self.owners {
            if let Some(i) = self
                .names
                .get(*o as usize)
                .and_then(|n| index.get(n.as_str()))
            {
                counts[*i] += 1;
            }
        }
        counts
    }

    fn key_spread(&self) -> f64 {
        // Spread per unit of weight, so that a heavier node's larger share is not noise.
        let per_weight: Vec<f64> = self
            .ring
            .nodes()
            .zip(self.keys_per_node())
            .map(|(n, k)| k as f64 / f64::from(n.weight))
            .collect();
        relative_std_dev(&per_weight)
    }

    fn ring_panel(&self) -> Panel {
        let n = self.ring.point_count();
        let every = n.div_ceil(DRAWN_POINTS).max(1);
        let to_unit = |h: u64| h as f64 / 18_446_744_073_709_551_616.0;
        let all: Vec<(u64, &str)> = self.ring.points().collect();
        let mut points: Vec<RingPoint> = all
            .iter()
            .step_by(every)
            .map(|(p, owner)| RingPoint {
                position: to_unit(*p),
                label: format!("{owner} @ {:.4}", to_unit(*p)),
                owner: owner.to_string(),
                kind: "node".into(),
            })
            .collect();
        let arcs = if every == 1 {
            (0..all.len())
                .map(|i| {
                    let prev = all[(i + all.len() - 1) % all.len()].0;
                    RingArc {
                        start: to_unit(prev),
                        end: to_unit(all[i].0),
                        owner: all[i].1.to_string(),
                        label: all[i].1.to_string(),
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        for k in 0..self.keys_placed().min(DRAWN_KEYS) {
            let key = item_key(k);
            let h = self.ring.key_hash(key.as_bytes());
            points.push(RingPoint {
                position: to_unit(h),
                label: key,
                owner: self
                    .names
                    .get(self.owners[k as usize] as usize)
                    .cloned()
                    .unwrap_or_default(),
                kind: "key".into(),
            });
        }
        let title = if every == 1 {
            format!("ring: {n} points, each owning the arc before it")
        } else {
            format!("ring: {n} points, every {every}th drawn (too dense for arcs)")
        };
        Panel::Ring {
            title,
            points,
            arcs,
        }
    }

    fn load_bars(&self) -> Panel {
        let keys = self.keys_per_node();
        let total_weight = self.total_weight().max(1) as f64;
        let placed = self.owners.len() as f64;
        let labels: Vec<String> = self.ring.nodes().map(|n| n.name.clone()).collect();
        let x: Vec<f64> = (0..labels.len()).map(|i| i as f64).collect();
        Panel::Bars {
            title: format!(
                "keys per node (spread {:.3} = std dev / mean per unit of weight)",
                self.key_spread()
            ),
            labels,
            series: vec![
                Series {
                    name: "keys".into(),
                    unit: "keys".into(),
                    x: x.clone(),
                    y: keys.iter().map(|k| *k as f64).collect(),
                },
                Series {
                    name: "fair share".into(),
                    unit: "keys".into(),
                    x,
                    y: self
                        .ring
                        .nodes()
                        .map(|n| placed * f64::from(n.weight) / total_weight)
                        .collect(),
                },
            ],
        }
    }

    fn changes_table(&self) -> Panel {
        Panel::Table {
            title: "ring changes (latest first)".into(),
            columns: [
                "change",
                "keys placed",
                "keys moved",
                "moved fraction",
                "expected",
            ]
            .map(String::from)
            .to_vec(),
            rows: self
                .changes
                .iter()
                .rev()
                .map(|c| {
                    vec![
                        json!(c.what),
                        json!(c.keys),
                        json!(c.moved),
                        json!(if c.keys == 0 {
                            0.0
                        } else {
                            c.moved as f64 / c.keys as f64
                        }),
                        c.expected_fraction.map_or(json!("—"), |f| json!(f)),
                    ]
                })
                .collect(),
        }
    }

    fn lookups_table(&self) -> Panel {
        Panel::Table {
            title: "lookups (latest first)".into(),
            columns: ["key", "position", "preference list"]
                .map(String::from)
                .to_vec(),
            rows: self
                .lookups
                .iter()
                .rev()
                .map(|(k, p, list)| vec![json!(k), json!(p), json!(list.join(" → "))])
                .collect(),
        }
    }
}

impl Sampled for RingLab {
    type Totals = RingTotals;

    fn series(&self) -> Vec<(String, String)> {
        [
            ("requests", "requests"),
            ("keys moved", "keys"),
            ("key spread (std dev / mean)", "ratio"),
            ("nodes", "nodes"),
        ]
        .map(|(n, u)| (n.into(), u.into()))
        .to_vec()
    }

    fn totals(&self) -> RingTotals {
        RingTotals {
            requests: self.requests,
            moved: self.moved_total,
        }
    }

    fn sample(&self, _at: Time, _interval: Duration, since: &RingTotals) -> Vec<f64> {
        vec![
            self.requests.saturating_sub(since.requests) as f64,
            self.moved_total.saturating_sub(since.moved) as f64,
            self.key_spread(),
            self.ring.len() as f64,
        ]
    }
}

impl LocalLab for RingLab {
    const ID: &'static str = "balance.consistent-hash";
    type Config = RingLabConfig;
    type Action = RingLabAction;

    fn new(c: &RingLabConfig) -> Result<Self> {
        if c.replicas.get() > c.nodes.get() {
            return Err(DistlabError::field(
                "replicas",
                format!(
                    "must be at most the nodes ({}), got {}",
                    c.nodes, c.replicas
                ),
            ));
        }
        let mut ring = HashRing::new(c.virtual_nodes.get(), c.seed)?;
        let mut served = BTreeMap::new();
        for i in 0..c.nodes.get() {
            let name = format!("node-{i}");
            ring.add_node(&name, 1)?;
            served.insert(name, 0);
        }
        Ok(RingLab {
            ring,
            key_space: u64::from(c.key_space.get()),
            replicas: c.replicas.get() as usize,
            requests: 0,
            names: Vec::new(),
            owners: Vec::new(),
            served,
            moved_total: 0,
            changes_made: 0,
            changes: VecDeque::new(),
            lookups: VecDeque::new(),
            breach: None,
            trace: SketchTrace::default(),
        })
    }

    fn act(&mut self, at: Moment, action: &RingLabAction) -> Result<()> {
        match action {
            RingLabAction::AddNode { name, weight } => {
                if self.ring.len() >= MAX_LAB_NODES as usize {
                    return Err(DistlabError::InvalidState(format!(
                        "the lab's ring holds at most {MAX_LAB_NODES} nodes"
                    )));
                }
                self.ring.add_node(name, weight.get())?;
                self.served.entry(name.clone()).or_insert(0);
                let share = f64::from(weight.get()) / self.total_weight() as f64;
                self.replace_keys(at, format!("add {name}"), Some(share), |_, new| new == name);
            }
            RingLabAction::RemoveNode { name } => {
                if self.ring.contains(name) && self.ring.len() <= self.replicas.max(1) {
                    return Err(DistlabError::InvalidState(format!(
                        "removing `{name}` would leave fewer nodes than the {} replicas",
                        self.replicas
                    )));
                }
                let before = self.total_weight() as f64;
                let node = self.ring.remove_node(name)?;
                let share = f64::from(node.weight) / before;
                self.replace_keys(at, format!("remove {name}"), Some(share), |old, _| {
                    old == name
                });
            }
            RingLabAction::SetVirtualNodes { virtual_nodes } => {
                self.ring.set_virtual_nodes(virtual_nodes.get())?;
                self.replace_keys(
                    at,
                    format!("{virtual_nodes} virtual nodes"),
                    None,
                    |_, _| true,
                );
            }
            RingLabAction::Lookup { key } => {
                check_key(key)?;
                let list: Vec<String> = self
                    .ring
                    .preference_list(key.as_bytes(), self.replicas.min(self.ring.len()))?
                    .into_iter()
                    .map(str::to_string)
                    .collect();
                let position =
                    self.ring.key_hash(key.as_bytes()) as f64 / 18_446_744_073_709_551_616.0;
                self.trace.note(at, "lookup", key, 0);
                if self.lookups.len() >= ROWS_KEPT {
                    self.lookups.pop_front();
                }
                self.lookups.push_back((key.clone(), position, list));
            }
        }
        Ok(())
    }

    fn view(&self, _at: Moment, _samples: &Sampler<RingTotals>) -> View {
        const NAME: &str = "a change moves keys only to the added or from the removed node";
        let keys = self.keys_per_node();
        let shares = self.ring.ownership();
        let total_weight = self.total_weight().max(1) as f64;
        let nodes = self
            .ring
            .nodes()
            .zip(keys)
            .zip(shares)
            .enumerate()
            .map(|(i, ((n, k), (_, share)))| NodeView {
                id: i as u32,
                label: n.name.clone(),
                role: "ring node".into(),
                status: "up".into(),
                fields: BTreeMap::from([
                    ("weight".to_string(), json!(n.weight)),
                    ("points".into(), json!(n.points)),
                    ("keys".into(), json!(k)),
                    ("ringShare".into(), json!(share)),
                    (
                        "fairShare".into(),
                        json!(f64::from(n.weight) / total_weight),
                    ),
                    (
                        "requests".into(),
                        json!(self.served.get(&n.name).copied().unwrap_or(0)),
                    ),
                ]),
                group: None,
            })
            .collect();
        View {
            nodes,
            panels: vec![
                self.ring_panel(),
                self.load_bars(),
                self.changes_table(),
                self.lookups_table(),
            ],
            invariants: vec![match &self.breach {
                Some(d) => InvariantStatus::violated(NAME, d.clone(), Vec::new()),
                None => InvariantStatus::holds(
                    NAME,
                    format!(
                        "every placed key checked after each of {} changes",
                        self.changes_made
                    ),
                ),
            }],
            ..View::default()
        }
    }

    fn trace(&self, _at: Moment) -> Value {
        self.trace.json()
    }

    fn example_actions() -> Vec<RingLabAction> {
        vec![
            RingLabAction::AddNode {
                name: "node-new".into(),
                weight: Count::of(1),
            },
            RingLabAction::RemoveNode {
                name: "node-0".into(),
            },
            RingLabAction::SetVirtualNodes {
                virtual_nodes: Count::of(10),
            },
            RingLabAction::Lookup {
                key: "alice".into(),
            },
        ]
    }
}

impl DrivenLab for RingLab {
    fn arrivals(c: &RingLabConfig) -> &ArrivalProcess {
        &c.arrivals
    }

    fn on_arrival(&mut self, at: Moment) {
        let k = self.requests % self.key_space;
        self.requests += 1;
        if k as usize == self.owners.len() {
            let owner = self.owner_of(k);
            self.owners.push(owner);
        }
        if let Some(name) = self.names.get(self.owners[k as usize] as usize) {
            *self.served.entry(name.clone()).or_insert(0) += 1;
        }
        if at.step.is_multiple_of(64) {
            self.trace.note(
                at,
                "request",
                &item_key(k),
                u64::from(self.owners[k as usize]),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Driven, Lab, Runner};

    fn lab(config: Value) -> Runner<Driven<RingLab>> {
        Runner::from_json(&config).unwrap()
    }

    #[test]
    fn adding_and_removing_a_node_moves_about_its_share() {
        let mut l = lab(json!({"nodes": 4, "virtualNodes": 200, "keySpace": 4000,
                                "arrivals": {"type": "constant", "ratePerSec": 1000}}));
        l.step(Duration::from_millis(4_500)).unwrap();
        assert_eq!(l.model().keys_placed(), 4000);
        l.act(&json!({"type": "addNode", "name": "node-4", "weight": 1}))
            .unwrap();
        l.act(&json!({"type": "removeNode", "name": "node-1"}))
            .unwrap();
        let changes = l.model().changes().clone();
        for c in &changes {
            let f = c.moved as f64 / c.keys as f64;
            let e = c.expected_fraction.unwrap();
            // 200 points a node: the share is within a third of 1/N.
            assert!((f - e).abs() < e / 3.0, "{}: {f} vs {e}", c.what);
        }
        let v = l.view();
        assert!(v.invariants[0].ok);
        assert_eq!(v.nodes.len(), 4);
        assert!(v.nodes.iter().all(|n| n.label != "node-1"));
    }

    #[test]
    fn actions_are_checked_and_the_invariant_can_fail() {
        let mut l = lab(json!({"nodes": 3, "replicas": 3}));
        l.step(Duration::from_millis(500)).unwrap();
        for (action, part) in [
            (
                json!({"type": "addNode", "name": "node-0", "weight": 1}),
                "already",
            ),
            (json!({"type": "removeNode", "name": "nope"}), "unknown"),
            (json!({"type": "removeNode", "name": "node-0"}), "replicas"),
            (
                json!({"type": "addNode", "name": "x", "weight": 0}),
                "action.weight",
            ),
            (json!({"type": "lookup", "key": ""}), "action.key"),
        ] {
            let e = l.act(&action).unwrap_err().to_string();
            assert!(e.contains(part), "{action}: {e}");
        }
        l.act(&json!({"type": "lookup", "key": "alice"})).unwrap();
        assert_eq!(l.model().lookups[0].2.len(), 3);
        // A lab whose record of owners is wrong sees keys move where they should not.
        let mut m: RingLab = (**l.model()).clone();
        let wrong = m.intern("node-2");
        for o in m.owners.iter_mut() {
            *o = wrong;
        }
        m.act(
            Moment {
                now: Time::from_millis(1),
                step: 1,
            },
            &RingLabAction::AddNode {
                name: "node-9".into(),
                weight: Count::of(1),
            },
        )
        .unwrap();
        assert!(m.breach.is_some());
    }

    #[test]
    fn bad_configs_name_the_field() {
        for (config, field) in [
            (json!({"nodes": 0}), "config.nodes"),
            (json!({"virtualNodes": 0}), "config.virtualNodes"),
            (json!({"nodes": 2, "replicas": 3}), "replicas"),
            (json!({"keySpace": 0}), "config.keySpace"),
        ] {
            let e = Runner::<Driven<RingLab>>::from_json(&config)
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains(field), "{config}: {e}");
        }
    }
}
