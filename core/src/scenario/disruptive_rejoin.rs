//! Lab `scenario.disruptive-rejoin` (Raft thesis §9.6): the same cluster, same seed, run
//! twice side by side — pre-vote off and on. At `isolateAtMs` a follower is cut off from
//! everyone; at `healAtMs` it comes back.
//!
//! Without pre-vote, the isolated follower's election timer fires again and again and
//! each time it raises its term. When it returns, the leader's next AppendEntries meets
//! a higher term, and the leader steps down: an election follows, for no reason but the
//! returning node's inflated term. With pre-vote, the isolated node first asks whether
//! it could win; nobody answers, so it never raises its term, and its return changes
//! nothing. Check-quorum is on by default in both runs, so the difference is pre-vote's
//! alone.
//!
//! Both clusters are drawn in one view: pre-vote off as nodes `0..n`, pre-vote on as
//! nodes `n..2n`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

use crate::bounded::{Count, Millis};
use crate::consensus::raft::config::RaftConfig;
use crate::consensus::raft::glance;
use crate::consensus::raft::harness::{DRIVER_TAGS, Harness};
use crate::consensus::raft::lab::{
    Gauges, RaftLabWorkload, TRACE_TAIL, build_harness, describe, invariant_statuses, step_harness,
};
use crate::consensus::raft::messages::Term;
use crate::error::{DistlabError, Result};
use crate::lab::LabModel;
use crate::lab::cluster::{ClusterAction, status_name};
use crate::lab::sampling::{DEFAULT_SAMPLE_MS, SampleMs};
use crate::lab::side_by_side::{StepMap, merged_trace, next_run};
use crate::lab::view::{
    InvariantStatus, MessageDetail, MessageView, MetricsRecorder, NodeGlance, NodeView, Panel,
    PartitionView, View,
};
use crate::sim::{Endpoint, Fault, NetworkConfig, NodeId, Stepped};
use crate::time::Time;

/// Configuration of the disruptive-rejoin scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct RejoinLabConfig {
    pub seed: u64,
    pub nodes: Count<3, 9>,
    /// When a follower is cut off, and when the partition heals.
    pub isolate_at_ms: Millis<0, 3_600_000>,
    pub heal_at_ms: Millis<0, 3_600_000>,
    /// Raft settings for both runs; `preVote` is overridden (off in one, on in the other).
    pub raft: RaftConfig,
    pub workload: RaftLabWorkload,
    pub network: NetworkConfig,
    pub sample_ms: SampleMs,
}

impl Default for RejoinLabConfig {
    fn default() -> Self {
        RejoinLabConfig {
            seed: 1,
            nodes: Count::of(5),
            isolate_at_ms: Millis::of(1_000),
            heal_at_ms: Millis::of(3_000),
            raft: RaftConfig::default(),
            workload: RaftLabWorkload {
                clients: Count::of(1),
                ..RaftLabWorkload::default()
            },
            network: NetworkConfig::default(),
            sample_ms: DEFAULT_SAMPLE_MS,
        }
    }
}

/// The scenario's own actions, besides every fault (applied to both runs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum RejoinLabAction {
    /// Cut off a follower now in both runs (the scheduled isolation does this too).
    IsolateFollower {},
}

/// One of the two runs.
#[derive(Debug, Clone)]
struct Side {
    pre_vote: bool,
    h: Harness,
    isolated: Option<NodeId>,
    /// The leader (and its term) when the follower was cut off.
    leader_then: Option<(NodeId, Term)>,
    /// When that leader first stopped leading in that term.
    deposed_at: Option<Time>,
    gauges: Gauges,
    /// The run's recent steps in the lab's coordinate, for the merged trace.
    steps: StepMap,
}

impl Side {
    fn isolate(&mut self) -> Result<()> {
        if self.isolated.is_some() {
            return Ok(());
        }
        let n = self.h.sim().node_count();
        let leader = self.h.leader();
        let node = leader.map_or(n.saturating_sub(1), |l| (l + 1) % n.max(1));
        self.leader_then = leader.and_then(|l| self.h.sim().node(l).map(|x| (l, x.term())));
        self.h.sim_mut().apply_fault(&Fault::Partition {
            groups: vec![vec![node]],
        })?;
        self.isolated = Some(node);
        Ok(())
    }

    fn note_deposition(&mut self) {
        if self.deposed_at.is_some() {
            return;
        }
        if let Some((l, t)) = self.leader_then {
            let still = self
                .h
                .sim()
                .node(l)
                .is_some_and(|n| n.is_leader() && n.term() == t);
            if !still {
                self.deposed_at = Some(self.h.sim().now());
            }
        }
    }

    fn isolated_term(&self) -> Option<Term> {
        self.isolated
            .and_then(|id| self.h.sim().node(id))
            .map(|n| n.term())
    }

    fn name(&self) -> &'static str {
        if self.pre_vote {
            "pre-vote on"
        } else {
            "pre-vote off"
        }
    }
}

/// The disruptive-rejoin scenario.
#[derive(Debug, Clone)]
pub struct RejoinLab {
    sides: [Side; 2],
    metrics: MetricsRecorder,
}

/// The external event at `isolateAtMs` that cuts a follower off.
const ISOLATE_TAG: u64 = DRIVER_TAGS;

impl RejoinLab {
    /// Records every sample due by `until` from the two runs' gauges then in force.
    fn record_due(&mut self, until: Time, off: Gauges, on: Gauges) {
        if until.0 < self.metrics.due_at() {
            return;
        }
        let values = vec![
            off.max_term as f64,
            on.max_term as f64,
            off.leaderless_us as f64 / 1e3,
            on.leaderless_us as f64 / 1e3,
        ];
        self.metrics.record_due(until.0, |_| values.clone());
    }

    fn offset(&self, side: usize) -> u32 {
        if side == 0 {
            0
        } else {
            self.sides[0].h.sim().node_count()
        }
    }

    fn nodes(&self) -> Vec<NodeView> {
        let mut out = Vec::new();
        for (i, s) in self.sides.iter().enumerate() {
            let sim = s.h.sim();
            for id in 0..sim.node_count() {
                let mut fields = BTreeMap::new();
                let status = status_name(sim.status(id));
                let role = match sim.node(id) {
                    Some(n) => {
                        fields.insert("term".into(), json!(n.term()));
                        fields.insert("votedFor".into(), json!(n.voted_for()));
                        fields.insert("commitIndex".into(), json!(n.commit_index()));
                        fields.insert("lastIndex".into(), json!(n.log().last_index()));
                        fields.insert(
                            "lastEntry".into(),
                            json!(
                                n.log()
                                    .entry(n.log().last_index())
                                    .map(|e| describe(&e.data))
                            ),
                        );
                        let local = sim.clock(id).map_or(sim.now(), |c| c.local(sim.now()));
                        fields.insert("electionTimer".into(), json!(n.election_progress(local)));
                        n.raft_role().name()
                    }
                    None => "down",
                };
                fields.insert("run".into(), json!(s.name()));
                fields.insert("isolated".into(), json!(s.isolated == Some(id)));
                out.push(NodeView {
                    id: id + self.offset(i),
                    label: format!("n{id}"),
                    role: role.into(),
                    status: status.into(),
                    fields,
                    group: Some(s.name().into()),
                });
            }
        }
        out
    }

    /// Each run's terms and timers at a glance, numbered as in the view.
    fn glances(&self) -> Vec<NodeGlance> {
        let mut out = Vec::new();
        for (i, s) in self.sides.iter().enumerate() {
            let sim = s.h.sim();
            let off = self.offset(i);
            out.extend((0..sim.node_count()).filter_map(|id| glance::glance(sim, id, id + off)));
        }
        out
    }

    /// Labels of both runs' messages, by the ids the view gives them.
    fn message_details(&self) -> Vec<MessageDetail> {
        let mut out = Vec::new();
        for (i, s) in self.sides.iter().enumerate() {
            out.extend(
                s.h.sim()
                    .in_flight_with_messages()
                    .iter()
                    .map(|(m, payload)| glance::message_detail(m, *payload, m.id * 2 + i as u64)),
            );
        }
        out
    }

    /// One log grid per run.
    fn log_grids(&self) -> Vec<Panel> {
        self.sides
            .iter()
            .map(|s| {
                let sim = s.h.sim();
                let role = |id| {
                    sim.node(id)
                        .map_or("down", |n| n.raft_role().name())
                        .to_string()
                };
                glance::log_grid(&format!("replicated logs, {}", s.name()), sim, role)
            })
            .collect()
    }

    fn messages(&self) -> Vec<MessageView> {
        let clients = self.sides[0].h.workload().clients + 1;
        let mut out = Vec::new();
        for (i, s) in self.sides.iter().enumerate() {
            let off = self.offset(i);
            let shift = |e: Endpoint| match e {
                Endpoint::Node(n) => Endpoint::Node(n + off),
                Endpoint::Client(c) => Endpoint::Client(c + clients * i as u32),
            };
            out.extend(s.h.sim().in_flight().into_iter().map(|m| MessageView {
                id: m.id * 2 + i as u64,
                from: shift(m.from),
                to: shift(m.to),
                kind: m.kind.to_string(),
                progress: m.progress,
            }));
        }
        out
    }

    fn partitions(&self) -> PartitionView {
        let mut p = PartitionView::default();
        for (i, s) in self.sides.iter().enumerate() {
            let off = self.offset(i);
            let net = s.h.sim().network();
            p.groups.extend(
                net.groups()
                    .into_iter()
                    .map(|g| g.into_iter().map(|n| n + off).collect::<Vec<_>>()),
            );
            p.one_way.extend(
                net.one_way_cuts()
                    .into_iter()
                    .map(|(a, b)| (a + off, b + off)),
            );
        }
        p
    }

    fn comparison(&self) -> Panel {
        let rows = self
            .sides
            .iter()
            .map(|s| {
                let leader_now = s.h.leader().and_then(|l| {
                    s.h.sim()
                        .node(l)
                        .map(|n| format!("n{l} (term {})", n.term()))
                });
                vec![
                    json!(s.name()),
                    json!(s.isolated.map(|n| format!("n{n}"))),
                    json!(s.isolated_term()),
                    json!(s.leader_then.map(|(l, t)| format!("n{l} (term {t})"))),
                    json!(leader_now),
                    json!(match s.deposed_at {
                        Some(t) => format!("deposed at {:.0} ms", t.as_millis_f64()),
                        None if s.leader_then.is_some() => "still leading".to_string(),
                        None => "—".to_string(),
                    }),
                    json!(s.gauges.leaderless_us as f64 / 1e3),
                ]
            })
            .collect();
        Panel::Table {
            title: "pre-vote off vs on".into(),
            columns: [
                "run",
                "isolated",
                "its term",
                "leader when cut off",
                "leader now",
                "that leader",
                "ms without a leader",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        }
    }

    /// The run with pre-vote off (0) or on (1), for tests.
    pub fn harness(&self, pre_vote: bool) -> &Harness {
        &self.sides[usize::from(pre_vote)].h
    }
    /// Whether the leader of the moment of isolation was deposed, per run.
    pub fn deposed(&self, pre_vote: bool) -> Option<Time> {
        self.sides[usize::from(pre_vote)].deposed_at
    }
}

impl LabModel for RejoinLab {
    const ID: &'static str = "scenario.disruptive-rejoin";
    type Config = RejoinLabConfig;
    type Action = ClusterAction<RejoinLabAction>;

    fn new(c: &RejoinLabConfig) -> Result<Self> {
        if c.heal_at_ms.get() < c.isolate_at_ms.get() {
            return Err(DistlabError::field(
                "healAtMs",
                format!(
                    "must not be before isolateAtMs ({}), got {}",
                    c.isolate_at_ms, c.heal_at_ms
                ),
            ));
        }
        let isolate_at = Time::ZERO + c.isolate_at_ms.duration();
        let heal_at = Time::ZERO + c.heal_at_ms.duration();
        let side = |pre_vote: bool| -> Result<Side> {
            let raft = RaftConfig {
                pre_vote,
                ..c.raft.clone()
            };
            let mut h = build_harness(c.seed, c.nodes.get(), &raft, &c.workload, &c.network)?;
            // Both moments are events of each run, so seeking and replaying see them at
            // the same step as the run that recorded them.
            h.sim_mut().schedule_external(isolate_at, ISOLATE_TAG);
            h.sim_mut().schedule_fault(heal_at, Fault::Heal)?;
            Ok(Side {
                pre_vote,
                h,
                isolated: None,
                leader_then: None,
                deposed_at: None,
                gauges: Gauges::default(),
                steps: StepMap::default(),
            })
        };
        let sample = c.sample_ms.duration();
        Ok(RejoinLab {
            sides: [side(false)?, side(true)?],
            metrics: MetricsRecorder::new(
                sample.0,
                600,
                &[
                    ("highest term, pre-vote off", "term"),
                    ("highest term, pre-vote on", "term"),
                    ("time without a leader, pre-vote off", "ms"),
                    ("time without a leader, pre-vote on", "ms"),
                ],
            ),
        })
    }

    fn step_until(&mut self, deadline: Time) -> bool {
        // A run whose next queued event turns out to be a stale timer processes nothing;
        // keep going until one run processes a real event or neither has one due, or
        // the other run's events would be left behind a clock moved past them.
        loop {
            let next = [0, 1].map(|i| self.sides[i].h.sim().next_event_time());
            let Some((i, until)) = next_run(next, deadline) else {
                return false;
            };
            let s = &mut self.sides[i];
            if let Some(before) = step_harness(&mut s.h, until, &mut s.gauges) {
                let own = s.h.sim().steps();
                s.steps.record(own, 0);
                if s.h.last_stepped() == Some(Stepped::External(ISOLATE_TAG)) {
                    let _ = s.isolate();
                }
                s.note_deposition();
                // Samples due before this event's time describe both runs before it.
                let t = s.h.sim().now();
                let other = self.sides[1 - i].gauges;
                let (off, on) = if i == 0 {
                    (before, other)
                } else {
                    (other, before)
                };
                self.record_due(Time(t.0.saturating_sub(1)), off, on);
                let lab_step = self.steps();
                self.sides[i].steps.set_last(lab_step);
                return true;
            }
        }
    }

    fn advance_clock(&mut self, t: Time) {
        let (off, on) = (self.sides[0].gauges, self.sides[1].gauges);
        self.record_due(t, off, on);
        for s in &mut self.sides {
            s.h.sim_mut().advance_clock(t);
        }
    }

    fn now(&self) -> Time {
        self.sides[0].h.sim().now().max(self.sides[1].h.sim().now())
    }

    fn steps(&self) -> u64 {
        self.sides.iter().map(|s| s.h.sim().steps()).sum()
    }

    fn act(&mut self, action: &Self::Action) -> Result<()> {
        match action {
            ClusterAction::Fault(f) => {
                // Validate against one run first so an error changes neither.
                f.validate(self.sides[0].h.sim().node_count())?;
                for s in &mut self.sides {
                    s.h.sim_mut().apply_fault(f)?;
                }
            }
            ClusterAction::Lab(RejoinLabAction::IsolateFollower {}) => {
                for s in &mut self.sides {
                    s.isolate()?;
                }
            }
        }
        Ok(())
    }

    fn view(&self) -> View {
        let mut invariants: Vec<InvariantStatus> = Vec::new();
        for s in &self.sides {
            for mut st in invariant_statuses(&s.h) {
                st.name = format!("{}: {}", s.name(), st.name);
                invariants.push(st);
            }
        }
        let mut panels = self.log_grids();
        panels.push(self.comparison());
        View {
            nodes: self.nodes(),
            messages: self.messages(),
            glances: self.glances(),
            message_details: self.message_details(),
            partitions: self.partitions(),
            panels,
            metrics: self.metrics.series(),
            invariants,
            ..View::default()
        }
    }

    /// Both runs' newest events merged in the order the lab processed them, with the
    /// pre-vote-on run's nodes and clients renumbered as in the view and every event's
    /// `step` in the lab's coordinate (what seeking takes).
    fn trace(&self) -> Value {
        let nodes = self.offset(1);
        let clients = self.sides[0].h.workload().clients + 1;
        merged_trace(
            [0, 1].map(|i| (self.sides[i].h.sim().trace(), &self.sides[i].steps)),
            (nodes, clients),
            TRACE_TAIL / 2,
        )
    }

    fn lessons() -> Vec<crate::lab::lesson::Lesson> {
        self::lessons()
    }

    fn example_actions() -> Vec<Self::Action> {
        vec![
            ClusterAction::Lab(RejoinLabAction::IsolateFollower {}),
            ClusterAction::Fault(Fault::Heal),
            ClusterAction::Fault(Fault::Crash { node: 0 }),
            ClusterAction::Fault(Fault::Restart { node: 0 }),
            ClusterAction::Fault(Fault::SetLoss {
                probability: crate::bounded::Probability::of(0.1),
            }),
        ]
    }
}

/// The lesson `scenario.disruptive-rejoin` carries (Ongaro's thesis, "Consensus:
/// Bridging Theory and Practice", Stanford 2014, §9.6), timed by the default config's
/// isolation at 1 s and heal at 3 s.
pub fn lessons() -> Vec<crate::lab::lesson::Lesson> {
    use crate::lab::lesson::{Lesson, LessonStep, Pause};
    let step = |caption: &str, ms: f64| LessonStep {
        caption: caption.into(),
        actions: Vec::new(),
        pause: Pause::After { ms },
    };
    vec![Lesson {
        id: "rejoin".into(),
        title: "A follower comes back with a higher term".into(),
        follows: "Ongaro, Consensus: Bridging Theory and Practice (Stanford PhD thesis, \
                  2014), §9.6"
            .into(),
        config: Value::Null,
        steps: vec![
            step(
                "One cluster, one seed, run twice: on the left without pre-vote, on the \
                 right with it. Both elect a leader and serve clients alike.",
                900.0,
            ),
            step(
                "A follower is cut off from everyone. Hearing no leader, its election \
                 timer runs out again and again. On the left, each time it raises its \
                 term (its badge climbs). On the right it first asks whether it could \
                 win (pre-vote); nobody answers, so its term stays.",
                2_000.0,
            ),
            step(
                "The partition heals. On the left, the returning node's higher term \
                 reaches the leader, which must step down: an election follows, and the \
                 cluster is without a leader for a while, for no good reason. On the \
                 right, nothing happens.",
                1_000.0,
            ),
        ],
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Lab, Runner};
    use crate::time::Duration;

    #[test]
    fn pre_vote_off_deposes_the_leader_and_on_does_not() {
        let mut lab = Runner::<RejoinLab>::new(RejoinLabConfig::default()).unwrap();
        lab.step(Duration::from_secs(5)).unwrap();
        let m = lab.model();
        assert!(
            m.deposed(false).is_some(),
            "pre-vote off: the leader survived"
        );
        assert!(
            m.deposed(true).is_none(),
            "pre-vote on: the leader was deposed"
        );
        let v = lab.view();
        assert_eq!(v.nodes.len(), 10);
        assert!(v.invariants.iter().all(|i| i.ok), "{:?}", v.invariants);
        assert_eq!(v.invariants.len(), 10);
        let isolated_terms: Vec<_> = m.sides.iter().map(Side::isolated_term).collect();
        let leader_terms: Vec<_> = m.sides.iter().map(|s| s.leader_then.map(|x| x.1)).collect();
        assert!(isolated_terms[0] > leader_terms[0].map(|t| t + 2));
        assert_eq!(isolated_terms[1], leader_terms[1]);
    }

    #[test]
    fn the_merged_trace_uses_the_lab_step_and_the_view_numbering() {
        let mut lab = Runner::<RejoinLab>::new(RejoinLabConfig::default()).unwrap();
        lab.step(Duration::from_millis(1_500)).unwrap();
        let t = lab.trace();
        let events = t["trace"].as_array().unwrap();
        assert!(events.len() > 100);
        let steps: Vec<u64> = events.iter().map(|e| e["step"].as_u64().unwrap()).collect();
        assert!(steps.windows(2).all(|w| w[0] <= w[1]));
        assert!(steps.last().copied().unwrap() <= lab.steps());
        let nodes: Vec<u64> = events
            .iter()
            .flat_map(|e| [&e["node"], &e["from"]["id"], &e["to"]["id"]])
            .filter_map(Value::as_u64)
            .collect();
        assert!(
            nodes.iter().any(|&n| n >= 5),
            "the second run's nodes appear"
        );
        let sides: Vec<_> = events
            .iter()
            .filter(|e| e["type"] == "send" && e["from"]["type"] == "node")
            .map(|e| e["from"]["id"].as_u64().unwrap() < 5)
            .collect();
        assert!(sides.contains(&true) && sides.contains(&false));
    }

    #[test]
    fn bad_configs_name_their_field() {
        let e = Runner::<RejoinLab>::new(RejoinLabConfig {
            heal_at_ms: Millis::of(10),
            ..RejoinLabConfig::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("healAtMs`"), "{e}");
    }
}
