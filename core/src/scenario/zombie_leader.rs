//! Lab `scenario.zombie-leader` (Kleppmann, "How to do distributed locking", 2016; the
//! same failure as a deposed leader in Chubby, Burrows OSDI 2006 §2.4, which its
//! sequencers fence): the same cluster, same seed, run twice side by side — the storage
//! without fencing and with it.
//!
//! The cluster is [`crate::coordination::lock`]'s: a lease service (node 0) elects one
//! client at a time as leader by granting it a lease and an epoch (the fencing token),
//! the leader renews its lease while it writes to the storage (node 1), and a new leader
//! is elected when the lease runs out. From `pauseAtMs` on, the first leader found
//! between its lease check and its write is paused (a GC pause) for `pauseMs`, longer
//! than the lease. The lease runs out, another client is elected and writes; the old
//! leader wakes and sends the write it had prepared. Without fencing the storage accepts
//! it over the new leader's write — a lost update, marked in the storage's history; with
//! fencing the storage has seen the newer epoch and refuses it.
//!
//! Both runs are the lock lab itself ([`LockLab`]), so their nodes, panels and invariants
//! are the lock lab's; they are drawn in one view, without fencing as nodes `0..n`, with
//! it as nodes `n..2n`. Until the old leader's write both runs are the same event for
//! event: fencing only changes what the storage does with a stale token.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::VecDeque;

use crate::bounded::{Count, Millis};
use crate::coordination::lock::ClientPhase;
use crate::coordination::lock::lab::{LockLab, LockLabAction, LockLabConfig, MAX_CLIENTS};
use crate::error::Result;
use crate::lab::cluster::ClusterAction;
use crate::lab::sampling::{DEFAULT_SAMPLE_MS, SampleMs};
use crate::lab::view::{MessageView, Panel, PartitionView, View};
use crate::lab::{Cluster, ClusterLab, LabModel};
use crate::sim::{Endpoint, Fault, FaultScript, NetworkConfig, NodeId};
use crate::time::Time;

/// Trace events kept per run for the merged trace.
const TRACE_TAIL: usize = 10_000;

/// Configuration of the zombie-leader scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct ZombieLabConfig {
    pub seed: u64,
    /// Candidates for leader (from node 2; node 0 is the lease service, node 1 the
    /// storage).
    pub clients: Count<2, { MAX_CLIENTS }>,
    /// How long a lease lasts; the leader renews it every third of it.
    pub lease_ms: Millis<1, 60_000>,
    /// From the leader's lease check to its write leaving.
    pub prepare_ms: Millis<0, 60_000>,
    /// From this time on, the first leader found preparing a write is paused...
    pub pause_at_ms: Millis<0, 3_600_000>,
    /// ...for this long.
    pub pause_ms: Millis<1, 60_000>,
    pub network: NetworkConfig,
    pub sample_ms: SampleMs,
}

impl Default for ZombieLabConfig {
    fn default() -> Self {
        ZombieLabConfig {
            seed: 1,
            clients: Count::of(2),
            lease_ms: Millis::of(300),
            prepare_ms: Millis::of(20),
            pause_at_ms: Millis::of(1_000),
            pause_ms: Millis::of(1_500),
            network: NetworkConfig::default(),
            sample_ms: DEFAULT_SAMPLE_MS,
        }
    }
}

/// The scenario's own actions, besides every fault (each applied to both runs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum ZombieLabAction {
    /// Pause the leader now in both runs, for `ms`.
    PauseLeader { ms: Millis<1, 60_000> },
}

/// One of the two runs.
#[derive(Debug, Clone)]
struct Side {
    fencing: bool,
    lab: Cluster<LockLab>,
    /// The leader paused by the scenario, and when.
    zombie: Option<(NodeId, Time)>,
    /// The run's recent processed events: (its own step count, the lab's), oldest first,
    /// to give the merged trace the lab's step coordinate.
    steps: VecDeque<(u64, u64)>,
}

impl Side {
    fn name(&self) -> &'static str {
        if self.fencing {
            "fencing on"
        } else {
            "fencing off"
        }
    }

    /// The first client between its lease check and its write.
    fn preparing_leader(&self) -> Option<NodeId> {
        let sim = self.lab.sim();
        (0..sim.node_count()).find(|&id| {
            matches!(
                sim.node(id).and_then(|n| n.client()).map(|c| c.phase),
                Some(ClientPhase::Holding {
                    preparing: true,
                    ..
                })
            )
        })
    }

    /// The newest token the lease service granted: the current epoch.
    fn epoch(&self) -> u64 {
        let sim = self.lab.sim();
        sim.node(crate::coordination::lock::SERVER)
            .and_then(|n| n.server())
            .map_or(0, |s| s.last_token)
    }
}

/// The zombie-leader scenario.
#[derive(Debug, Clone)]
pub struct ZombieLab {
    sides: [Side; 2],
    pause_at: Time,
    pause_ms: Millis<1, 60_000>,
}

impl ZombieLab {
    /// The lock lab of the run without fencing (`false`) or with it (`true`).
    pub fn run(&self, fencing: bool) -> &LockLab {
        self.sides[usize::from(fencing)].lab.lab()
    }

    /// The leader the scenario paused in that run, and when.
    pub fn zombie(&self, fencing: bool) -> Option<(NodeId, Time)> {
        self.sides[usize::from(fencing)].zombie
    }

    fn offset(&self, side: usize) -> u32 {
        if side == 0 {
            0
        } else {
            self.sides[0].lab.sim().node_count()
        }
    }

    fn clients_offset(&self, side: usize) -> u32 {
        if side == 0 {
            0
        } else {
            self.sides[0].lab.sim().config().clients
        }
    }

    /// Pauses the leader preparing a write, once, when the time has come.
    fn maybe_pause(&mut self, i: usize) {
        let pause_ms = self.pause_ms;
        let pause_at = self.pause_at;
        let s = &mut self.sides[i];
        if s.zombie.is_some() || s.lab.sim().now() < pause_at {
            return;
        }
        if let Some(node) = s.preparing_leader() {
            let now = s.lab.sim().now();
            let resume = now + pause_ms.duration();
            let sim = s.lab.sim_mut();
            if sim.schedule_fault(resume, Fault::Resume { node }).is_ok()
                && sim.apply_fault(&Fault::Pause { node }).is_ok()
            {
                s.zombie = Some((node, now));
            }
        }
    }

    fn comparison(&self) -> Panel {
        let rows = self
            .sides
            .iter()
            .map(|s| {
                let l = s.lab.lab();
                let storage = l.storage();
                vec![
                    json!(s.name()),
                    json!(s.zombie.map(|(n, _)| format!("n{n}"))),
                    json!(s.zombie.map(|(_, t)| t.as_millis_f64())),
                    json!(s.epoch()),
                    json!(l.first_stale().map(|(d, _)| d.clone())),
                    json!(storage.map_or(0, |s| s.rejected)),
                ]
            })
            .collect();
        Panel::Table {
            title: "fencing off vs on".into(),
            columns: [
                "run",
                "zombie leader",
                "paused at ms",
                "epoch now",
                "lost update",
                "stale writes refused",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        }
    }
}

/// Shifts an event's node ids by `nodes` and client ids by `clients` (the second run's
/// numbering in the view).
fn renumber(v: &mut Value, nodes: u32, clients: u32) {
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

impl LabModel for ZombieLab {
    const ID: &'static str = "scenario.zombie-leader";
    type Config = ZombieLabConfig;
    type Action = ClusterAction<ZombieLabAction>;

    fn new(c: &ZombieLabConfig) -> Result<Self> {
        let side = |fencing: bool| -> Result<Side> {
            let config = LockLabConfig {
                seed: c.seed,
                clients: c.clients,
                lease_ms: c.lease_ms,
                prepare_ms: c.prepare_ms,
                fencing,
                network: c.network.clone(),
                faults: FaultScript::default(),
                sample_ms: c.sample_ms,
                ..LockLabConfig::default()
            };
            Ok(Side {
                fencing,
                lab: Cluster::<LockLab>::new(&config)?,
                zombie: None,
                steps: VecDeque::new(),
            })
        };
        Ok(ZombieLab {
            sides: [side(false)?, side(true)?],
            pause_at: Time::ZERO + c.pause_at_ms.duration(),
            pause_ms: c.pause_ms,
        })
    }

    fn step_until(&mut self, deadline: Time) -> bool {
        // The earlier run goes first (the run without fencing on a tie), and may not run
        // past the other's next event; a run that only skipped stale timers goes round
        // again.
        loop {
            let next = |s: &Side| s.lab.sim().next_event_time();
            let (i, at, bound) = match (next(&self.sides[0]), next(&self.sides[1])) {
                (None, None) => return false,
                (Some(a), None) => (0, a, Time::MAX),
                (None, Some(b)) => (1, b, Time::MAX),
                (Some(a), Some(b)) if b < a => (1, b, Time(a.0 - 1)),
                (Some(a), Some(b)) => (0, a, b),
            };
            if at > deadline {
                return false;
            }
            if self.sides[i].lab.step_until(deadline.min(bound)) {
                self.maybe_pause(i);
                let lab_step = self.steps();
                let s = &mut self.sides[i];
                if s.steps.len() >= TRACE_TAIL {
                    s.steps.pop_front();
                }
                s.steps.push_back((s.lab.steps(), lab_step));
                return true;
            }
        }
    }

    fn advance_clock(&mut self, t: Time) {
        for s in &mut self.sides {
            s.lab.advance_clock(t);
        }
    }

    fn now(&self) -> Time {
        self.sides[0].lab.now().max(self.sides[1].lab.now())
    }

    fn steps(&self) -> u64 {
        self.sides.iter().map(|s| s.lab.steps()).sum()
    }

    fn act(&mut self, action: &Self::Action) -> Result<()> {
        let lock_action = match action {
            ClusterAction::Fault(f) => ClusterAction::Fault(f.clone()),
            ClusterAction::Lab(ZombieLabAction::PauseLeader { ms }) => {
                ClusterAction::Lab(LockLabAction::PauseHolder { ms: *ms })
            }
        };
        // The runner acts on a copy: an error in either run leaves the lab unchanged.
        for s in &mut self.sides {
            s.lab.act(&lock_action)?;
        }
        Ok(())
    }

    fn view(&self) -> View {
        let mut view = View::default();
        for (i, s) in self.sides.iter().enumerate() {
            let v = s.lab.view();
            let (off, clients) = (self.offset(i), self.clients_offset(i));
            view.nodes.extend(v.nodes.into_iter().map(|mut n| {
                n.id += off;
                n.fields.insert("run".into(), json!(s.name()));
                n.group = Some(s.name().into());
                n
            }));
            let shift = |e: Endpoint| match e {
                Endpoint::Node(n) => Endpoint::Node(n + off),
                Endpoint::Client(c) => Endpoint::Client(c + clients),
            };
            view.messages
                .extend(v.messages.into_iter().map(|m| MessageView {
                    id: m.id * 2 + i as u64,
                    from: shift(m.from),
                    to: shift(m.to),
                    ..m
                }));
            let PartitionView { groups, one_way } = v.partitions;
            view.partitions.groups.extend(
                groups
                    .into_iter()
                    .map(|g| g.into_iter().map(|n| n + off).collect::<Vec<_>>()),
            );
            view.partitions
                .one_way
                .extend(one_way.into_iter().map(|(a, b)| (a + off, b + off)));
            view.panels.extend(v.panels.into_iter().map(|p| match p {
                Panel::Table {
                    title,
                    columns,
                    rows,
                } => Panel::Table {
                    title: format!("{}, {}", title, s.name()),
                    columns,
                    rows,
                },
                other => other,
            }));
            view.metrics.extend(v.metrics.into_iter().map(|mut m| {
                m.name = format!("{}, {}", m.name, s.name());
                m
            }));
            view.invariants
                .extend(v.invariants.into_iter().map(|mut st| {
                    st.name = format!("{}: {}", s.name(), st.name);
                    st.nodes.iter_mut().for_each(|n| *n += off);
                    st
                }));
        }
        view.panels.push(self.comparison());
        view
    }

    /// Both runs' newest events merged in the order the lab processed them, with the
    /// fenced run's nodes renumbered as in the view and every event's `step` in the lab's
    /// coordinate (what seeking takes).
    fn trace(&self) -> Value {
        let mut events: Vec<(u64, u64, usize, Value)> = Vec::new();
        let mut total = 0;
        let mut complete = true;
        for (i, s) in self.sides.iter().enumerate() {
            let trace = s.lab.sim().trace();
            total += trace.len();
            let from = trace
                .first_kept()
                .max(trace.len().saturating_sub(TRACE_TAIL as u64));
            complete &= from == 0;
            for e in trace.events_from(from) {
                let lab_step = match s.steps.binary_search_by_key(&e.step, |(own, _)| *own) {
                    Ok(k) => s.steps.get(k).map_or(0, |(_, lab)| *lab),
                    Err(_) if e.step == 0 => 0,
                    // Older than the steps remembered: leave it out.
                    Err(_) => continue,
                };
                let Ok(mut v) = serde_json::to_value(e) else {
                    continue;
                };
                if i == 1 {
                    renumber(&mut v, self.offset(1), self.clients_offset(1));
                }
                if let Some(step) = v.get_mut("step") {
                    *step = json!(lab_step);
                }
                events.push((e.time.0, lab_step, i, v));
            }
        }
        events.sort_by_key(|(time, step, side, _)| (*step, *time, *side));
        json!({
            "hash": format!(
                "{:016x}{:016x}",
                self.sides[0].lab.sim().trace().hash(),
                self.sides[1].lab.sim().trace().hash()
            ),
            "events": total,
            "complete": complete,
            "trace": events.into_iter().map(|(_, _, _, v)| v).collect::<Vec<_>>(),
        })
    }

    fn example_actions() -> Vec<Self::Action> {
        vec![
            ClusterAction::Lab(ZombieLabAction::PauseLeader {
                ms: Millis::of(1_000),
            }),
            ClusterAction::Fault(Fault::Pause { node: 2 }),
            ClusterAction::Fault(Fault::Resume { node: 2 }),
            ClusterAction::Fault(Fault::Crash { node: 1 }),
            ClusterAction::Fault(Fault::Restart { node: 1 }),
        ]
    }
}
