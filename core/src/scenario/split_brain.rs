//! Lab `scenario.split-brain` (Kleppmann, DDIA ch. 5 "Handling node outages: failover"
//! and ch. 8 "The leader and the lock"; fencing by epochs as Raft's terms, Ongaro &
//! Ousterhout 2014): the same replicated cluster, same seed, run twice side by side — a
//! failover without fencing, and one with fencing by epochs and a majority quorum.
//!
//! The cluster is [`crate::consistency::replication`]'s, node 0 its first primary. At
//! `partitionAtMs` node 0 is cut off from the replicas for `partitionMs`, then the
//! network heals. Without fencing (and, as many deployments run, async acks) node 0 goes
//! on answering the clients on its side while a replica promotes itself on its timeout
//! alone: two primaries take writes at once. When the partition heals the newer epoch
//! wins and its log overwrites node 0's — writes the clients were told succeeded are
//! gone, the lost-write invariant names them and the linearizability checker rejects the
//! history. With fencing the replicas elect a primary by majority vote in a new epoch and
//! every write needs a majority's ack: node 0 cannot get a write acknowledged on its own
//! (its appends reach nobody, and after the heal the replicas refuse its older epoch), so
//! nothing acknowledged is lost and the history stays linearizable.
//!
//! Both runs are the replication lab itself ([`ReplicationLab`]); they are drawn in one
//! view, without fencing as nodes `0..n`, with it as nodes `n..2n`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::VecDeque;

use crate::bounded::{Count, Millis, Probability};
use crate::consistency::replication::lab::{MAX_LAB_NODES, ReplicationLab, ReplicationLabConfig};
use crate::consistency::replication::node::AckMode;
use crate::error::Result;
use crate::lab::cluster::ClusterAction;
use crate::lab::sampling::{DEFAULT_SAMPLE_MS, SampleMs};
use crate::lab::view::{MessageView, Panel, PartitionView, View};
use crate::lab::{Cluster, ClusterLab, LabModel};
use crate::sim::linearizability::Verdict;
use crate::sim::{Endpoint, Fault, FaultScript, NetworkConfig, NodeId, ScheduledFault};
use crate::time::Time;

/// Trace events kept per run for the merged trace.
const TRACE_TAIL: usize = 10_000;

/// Configuration of the split-brain scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct SplitBrainLabConfig {
    pub seed: u64,
    pub nodes: Count<3, { MAX_LAB_NODES }>,
    /// The run without fencing answers clients in this mode (the fenced run always
    /// waits for a majority).
    pub unfenced_ack: AckMode,
    /// When node 0, the first primary, is cut off from the replicas...
    pub partition_at_ms: Millis<0, 3_600_000>,
    /// ...and for how long.
    pub partition_ms: Millis<1, 60_000>,
    pub network: NetworkConfig,
    pub sample_ms: SampleMs,
}

impl Default for SplitBrainLabConfig {
    fn default() -> Self {
        SplitBrainLabConfig {
            seed: 1,
            nodes: Count::of(3),
            unfenced_ack: AckMode::Async,
            partition_at_ms: Millis::of(500),
            partition_ms: Millis::of(1_000),
            network: NetworkConfig::default(),
            sample_ms: DEFAULT_SAMPLE_MS,
        }
    }
}

/// The scenario's own actions, besides every fault (each applied to both runs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum SplitBrainLabAction {
    /// Cut each run's newest primary off from every other node now (heal with `heal`).
    PartitionPrimary {},
}

/// One of the two runs.
#[derive(Debug, Clone)]
struct Side {
    fencing: bool,
    lab: Cluster<ReplicationLab>,
    /// The run's recent processed events: (its own step count, the lab's), oldest first.
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

    /// The nodes that are primary now, with their epochs.
    fn primaries(&self) -> Vec<(NodeId, u64)> {
        let sim = self.lab.sim();
        (0..sim.node_count())
            .filter_map(|id| sim.node(id))
            .filter(|n| n.is_primary())
            .map(|n| (n.id(), n.epoch()))
            .collect()
    }
}

/// The split-brain scenario.
#[derive(Debug, Clone)]
pub struct SplitBrainLab {
    sides: [Side; 2],
}

impl SplitBrainLab {
    /// The replication lab of the run without fencing (`false`) or with it (`true`).
    pub fn run(&self, fencing: bool) -> &ReplicationLab {
        self.sides[usize::from(fencing)].lab.lab()
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

    fn comparison(&self) -> Panel {
        let rows = self
            .sides
            .iter()
            .map(|s| {
                let l = s.lab.lab();
                let w = l.harness().watch();
                let p = l.sim().node_config();
                vec![
                    json!(s.name()),
                    json!(format!("{:?}", p.ack)),
                    json!(
                        s.primaries()
                            .iter()
                            .map(|(n, e)| format!("n{n} (epoch {e})"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    json!(w.acked().len()),
                    json!(w.lost_count()),
                    json!(w.lost_write.as_ref().map(|b| b.what.clone())),
                    json!(format!("{:?}", l.verdict())),
                ]
            })
            .collect();
        Panel::Table {
            title: "fencing off vs on".into(),
            columns: [
                "run",
                "acks",
                "primaries now",
                "acknowledged writes",
                "lost",
                "first lost write",
                "checker",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        }
    }
}

/// Shifts an event's node ids by `nodes` and client ids by `clients`.
fn renumber(v: &mut Value, nodes: u32, clients: u32) {
    let shift = |x: &mut Value, by: u32| {
        if let Some(n) = x.as_u64() {
            *x = json!(n + u64::from(by));
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

impl LabModel for SplitBrainLab {
    const ID: &'static str = "scenario.split-brain";
    type Config = SplitBrainLabConfig;
    type Action = ClusterAction<SplitBrainLabAction>;

    fn new(c: &SplitBrainLabConfig) -> Result<Self> {
        let at = c.partition_at_ms.duration().0;
        let faults = FaultScript {
            faults: vec![
                ScheduledFault {
                    at_us: at,
                    fault: Fault::Partition {
                        groups: vec![vec![0]],
                    },
                },
                ScheduledFault {
                    at_us: at + c.partition_ms.duration().0,
                    fault: Fault::Heal,
                },
            ],
        };
        let side = |fencing: bool| -> Result<Side> {
            let config = ReplicationLabConfig {
                seed: c.seed,
                nodes: Count::new("nodes", c.nodes.get())?,
                ack: if fencing {
                    AckMode::Majority
                } else {
                    c.unfenced_ack
                },
                fencing,
                network: c.network.clone(),
                faults: faults.clone(),
                sample_ms: c.sample_ms,
                // One key, mostly read: a read after the heal shows what was lost.
                keys: Count::of(1),
                get_share: Probability::of(0.6),
                ..ReplicationLabConfig::default()
            };
            Ok(Side {
                fencing,
                lab: Cluster::<ReplicationLab>::new(&config)?,
                steps: VecDeque::new(),
            })
        };
        Ok(SplitBrainLab {
            sides: [side(false)?, side(true)?],
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
        // The runner acts on a copy: an error in either run leaves the lab unchanged.
        for s in &mut self.sides {
            let a = match action {
                ClusterAction::Fault(f) => ClusterAction::Fault(f.clone()),
                ClusterAction::Lab(SplitBrainLabAction::PartitionPrimary {}) => {
                    let Some((p, _)) = s.primaries().into_iter().max_by_key(|(n, e)| (*e, *n))
                    else {
                        continue;
                    };
                    ClusterAction::Fault(Fault::Partition {
                        groups: vec![vec![p]],
                    })
                }
            };
            s.lab.act(&a)?;
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
                Panel::Text { title, body } => Panel::Text {
                    title: format!("{}, {}", title, s.name()),
                    body,
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
            ClusterAction::Lab(SplitBrainLabAction::PartitionPrimary {}),
            ClusterAction::Fault(Fault::Heal),
            ClusterAction::Fault(Fault::Crash { node: 1 }),
            ClusterAction::Fault(Fault::Restart { node: 1 }),
            ClusterAction::Fault(Fault::Partition {
                groups: vec![vec![0, 1]],
            }),
        ]
    }
}

/// The verdict of each run: (without fencing, with fencing).
pub fn verdicts(lab: &SplitBrainLab) -> (Verdict, Verdict) {
    (lab.run(false).verdict(), lab.run(true).verdict())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Lab, Runner};

    #[test]
    fn without_fencing_writes_are_lost_and_with_it_none_is() {
        let mut lab = Runner::<SplitBrainLab>::from_json(&json!({"seed": 3})).unwrap();
        lab.step(crate::time::Duration::from_millis(3_000)).unwrap();
        let l = lab.model();
        let off = l.run(false).harness().watch();
        let on = l.run(true).harness().watch();
        assert!(off.lost_count() > 0, "{:?}", off.lost_write);
        assert_eq!(on.lost_count(), 0, "{:?}", on.lost_write);
        assert!(on.acked().len() > 20);
        assert_eq!(verdicts(l).1, Verdict::Linearizable);
        // Both runs are the same event for event until the partition.
        let v = lab.view();
        assert!(
            v.panels
                .iter()
                .any(|p| matches!(p, Panel::Table { title, .. } if title == "fencing off vs on"))
        );
    }
}
