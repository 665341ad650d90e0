//! A replicated cluster with closed-loop clients, the invariants checked after every
//! event, and the clients' history as the linearizability checker reads it.
//!
//! Each client asks one operation at a time of the node it believes is the primary, waits
//! for the answer or gives up after a timeout, pauses, and asks the next; refused ("not
//! the primary") or timed out, it tries the next node in turn. It never retries an
//! operation, so every request is one operation of the history. Every put writes a value
//! no other put writes.
//!
//! The invariants, checked after every event at the moments they can change (a node
//! becoming primary, a write being acknowledged):
//! - **one primary per epoch**: no two nodes are ever primary in the same epoch;
//! - **no acknowledged write lost**: every primary holds, at the index it was
//!   acknowledged at, every write acknowledged in a lower epoch — a primary that lacks one
//!   will overwrite the replicas' copies with its own log (Raft's leader completeness).

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

use crate::consistency::replication::node::{
    ReplRequest, ReplResponse, ReplicaNode, ReplicationParams,
};
use crate::error::Result;
use crate::rng::SimRng;
use crate::sim::history::{ClientOp, Outcome};
use crate::sim::linearizability::{
    CheckOptions, CheckResult, KvInput, KvModel, KvOutput, Operation, Response, check_with,
};
use crate::sim::{NodeId, Sim, SimConfig, Stepped};
use crate::time::{Duration, Time};

/// What the clients do.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub clients: u32,
    pub keys: u32,
    /// Share of operations that are gets.
    pub get_share: f64,
    /// How long a client waits for an answer.
    pub timeout: Duration,
    /// Pause between a client's operations.
    pub pause: Duration,
    /// No new operation starts after this time.
    pub stop_at: Time,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            clients: 3,
            keys: 2,
            get_share: 0.4,
            timeout: Duration::from_millis(300),
            pause: Duration::from_millis(5),
            stop_at: Time::MAX,
        }
    }
}

/// A write a client was told succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AckedWrite {
    pub request: u64,
    pub key: String,
    pub value: String,
    pub epoch: u64,
    pub index: u64,
    pub primary: NodeId,
    pub at: Time,
}

/// The first breach of an invariant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Breach {
    pub at: Time,
    pub what: String,
    pub nodes: Vec<NodeId>,
}

/// The invariants' state, updated after every event.
#[derive(Debug, Clone, Default)]
pub struct Watch {
    /// Each epoch's primaries, as seen.
    primaries: BTreeMap<u64, BTreeSet<NodeId>>,
    /// Each node's (is primary, epoch) after the last event.
    roles: Vec<Option<(bool, u64)>>,
    acked: Vec<AckedWrite>,
    /// Acknowledged writes some later primary lacked (each counted once).
    lost: BTreeSet<u64>,
    pub two_primaries: Option<Breach>,
    pub lost_write: Option<Breach>,
}

impl Watch {
    pub fn acked(&self) -> &[AckedWrite] {
        &self.acked
    }
    /// Acknowledged writes found missing from a later primary.
    pub fn lost_count(&self) -> usize {
        self.lost.len()
    }
    /// Epochs that had two primaries.
    pub fn split_epochs(&self) -> usize {
        self.primaries.values().filter(|p| p.len() > 1).count()
    }

    fn lacks(node: &ReplicaNode, w: &AckedWrite) -> bool {
        node.entry(w.index)
            .is_none_or(|e| e.request.map(|(_, r)| r) != Some(w.request))
    }

    fn check_primary(&mut self, node: &ReplicaNode, now: Time) {
        let epoch = node.epoch();
        let set = self.primaries.entry(epoch).or_default();
        set.insert(node.id());
        if set.len() > 1 && self.two_primaries.is_none() {
            self.two_primaries = Some(Breach {
                at: now,
                what: format!(
                    "two primaries in epoch {epoch}: {}",
                    set.iter()
                        .map(|n| format!("n{n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                nodes: set.iter().copied().collect(),
            });
        }
        let missing: Vec<AckedWrite> = self
            .acked
            .iter()
            .filter(|w| w.epoch < epoch && Self::lacks(node, w))
            .cloned()
            .collect();
        for w in missing {
            self.note_lost(w, node, now);
        }
    }

    fn note_lost(&mut self, w: AckedWrite, node: &ReplicaNode, now: Time) {
        if !self.lost.insert(w.request) || self.lost_write.is_some() {
            return;
        }
        self.lost_write = Some(Breach {
            at: now,
            what: format!(
                "acknowledged write lost: put {} = {} (acknowledged by n{} in epoch {} at \
                 index {}, {:.1} ms) is not in the log of n{}, primary of epoch {}",
                w.key,
                w.value,
                w.primary,
                w.epoch,
                w.index,
                w.at.as_millis_f64(),
                node.id(),
                node.epoch()
            ),
            nodes: vec![w.primary, node.id()],
        });
    }

    /// Checks what the last event changed.
    pub fn observe(&mut self, sim: &Sim<ReplicaNode>, new_acks: Vec<AckedWrite>) {
        let now = sim.now();
        let n = sim.node_count() as usize;
        self.roles.resize(n, None);
        for id in 0..sim.node_count() {
            let now_role = sim.node(id).map(|x| (x.is_primary(), x.epoch()));
            let Some(slot) = self.roles.get_mut(id as usize) else {
                continue;
            };
            if *slot != now_role {
                *slot = now_role;
                if let (Some((true, _)), Some(node)) = (now_role, sim.node(id)) {
                    self.check_primary(node, now);
                }
            }
        }
        for w in new_acks {
            for id in 0..sim.node_count() {
                if let Some(node) = sim.node(id)
                    && node.is_primary()
                    && node.epoch() > w.epoch
                    && Self::lacks(node, &w)
                {
                    self.note_lost(w.clone(), node, now);
                }
            }
            self.acked.push(w);
        }
    }
}

/// A cluster and its clients.
#[derive(Debug, Clone)]
pub struct Harness {
    sim: Sim<ReplicaNode>,
    workload: Workload,
    /// Each client's request under way, if any, and the node it believes is primary.
    waiting: Vec<Option<u64>>,
    target: Vec<NodeId>,
    rng: SimRng,
    polled_at: u64,
    /// History entries before this index have ended and been looked at.
    scanned: usize,
    /// Puts already reported acknowledged.
    acked_ids: BTreeSet<u64>,
    next_value: u64,
    watch: Watch,
}

impl Harness {
    /// Builds the cluster (node 0 is the first primary).
    pub fn new(
        sim_config: SimConfig,
        params: ReplicationParams,
        workload: Workload,
    ) -> Result<Self> {
        let rng = SimRng::derive(sim_config.seed, 29);
        let sim = Sim::new(
            SimConfig {
                clients: sim_config.clients.max(workload.clients),
                ..sim_config
            },
            params,
        )?;
        let mut h = Harness {
            sim,
            waiting: vec![None; workload.clients as usize],
            target: vec![0; workload.clients as usize],
            rng,
            polled_at: 0,
            scanned: 0,
            acked_ids: BTreeSet::new(),
            next_value: 0,
            workload,
            watch: Watch::default(),
        };
        for c in 0..h.workload.clients {
            let at = Time(h.rng.below(10_000));
            h.sim.schedule_external(at, u64::from(c));
        }
        h.watch.observe(&h.sim, Vec::new());
        Ok(h)
    }

    pub fn sim(&self) -> &Sim<ReplicaNode> {
        &self.sim
    }
    pub fn sim_mut(&mut self) -> &mut Sim<ReplicaNode> {
        &mut self.sim
    }
    pub fn workload(&self) -> &Workload {
        &self.workload
    }
    pub fn watch(&self) -> &Watch {
        &self.watch
    }
    /// Operations under way.
    pub fn pending(&self) -> usize {
        self.waiting.iter().flatten().count()
    }
    /// Operations answered.
    pub fn completed(&self) -> usize {
        self.sim
            .history()
            .iter()
            .filter(|o| matches!(o.outcome, Outcome::Ok { .. }))
            .count()
    }
    /// Clients start nothing new from now on.
    pub fn stop_clients(&mut self) {
        self.workload.stop_at = self.sim.now();
    }

    /// Processes one event due by `deadline` (a client's turn included); false if none is.
    pub fn step(&mut self, deadline: Time) -> bool {
        let Some(stepped) = self.sim.step_until(deadline) else {
            return false;
        };
        if let Stepped::External(tag) = stepped {
            self.client_turn(tag as usize);
        }
        self.observe();
        true
    }

    /// Looks at what the last event or action changed: client outcomes, the invariants.
    pub fn observe(&mut self) {
        let mut acks = Vec::new();
        if self.sim.ended_ops() != self.polled_at {
            self.polled_at = self.sim.ended_ops();
            acks = self.new_acks();
            self.poll_clients();
        }
        self.watch.observe(&self.sim, acks);
    }

    /// Runs until time `t`, or until `until` holds (checked after every event).
    pub fn run_until_or(&mut self, t: Time, mut until: impl FnMut(&Self) -> bool) -> bool {
        while !until(self) {
            if !self.step(t) {
                self.sim.advance_clock(t);
                break;
            }
        }
        until(self)
    }

    fn new_acks(&mut self) -> Vec<AckedWrite> {
        let mut acks = Vec::new();
        let history = self.sim.history();
        // Operations end out of order: look at every operation from the oldest pending.
        let from = self.scanned;
        for op in history.get(from..).unwrap_or_default() {
            if let (ReplRequest::Put { key, value }, Outcome::Ok { value: r, at }) =
                (&op.body, &op.outcome)
                && self.acked_ids.insert(op.request)
            {
                acks.push(AckedWrite {
                    request: op.request,
                    key: key.clone(),
                    value: value.clone(),
                    epoch: r.epoch,
                    index: r.index,
                    primary: r.primary,
                    at: *at,
                });
            }
        }
        self.scanned = history
            .get(from..)
            .and_then(|rest| rest.iter().position(ClientOp::is_pending))
            .map_or(history.len(), |k| from + k);
        acks
    }

    fn client_turn(&mut self, c: usize) {
        if self.waiting.get(c).is_none_or(Option::is_some)
            || self.sim.now() >= self.workload.stop_at
        {
            return;
        }
        let key = format!("k{}", self.rng.below(u64::from(self.workload.keys.max(1))));
        let body = if self.rng.chance(self.workload.get_share) {
            ReplRequest::Get { key }
        } else {
            self.next_value += 1;
            ReplRequest::Put {
                key,
                value: format!("v{}", self.next_value),
            }
        };
        let node = self.target.get(c).copied().unwrap_or(0);
        if let Ok(id) = self
            .sim
            .client_request(c as u32, node, body, self.workload.timeout)
            && let Some(w) = self.waiting.get_mut(c)
        {
            *w = Some(id);
        }
    }

    fn poll_clients(&mut self) {
        let nodes = self.sim.node_count().max(1);
        for c in 0..self.waiting.len() {
            let Some(id) = self.waiting[c] else {
                continue;
            };
            let Some(op) = self.sim.history().get(id as usize) else {
                continue;
            };
            if op.is_pending() {
                continue;
            }
            if !matches!(op.outcome, Outcome::Ok { .. })
                && let Some(t) = self.target.get_mut(c)
            {
                *t = (*t + 1) % nodes;
            }
            self.waiting[c] = None;
            let at = self.sim.now() + self.workload.pause;
            self.sim.schedule_external(at, c as u64);
        }
    }

    /// The clients' history for the checker.
    pub fn history(&self) -> Vec<Operation<KvInput, KvOutput>> {
        history(self.sim.history())
    }

    /// Checks the history against a key-value store, within `max_steps` of search.
    pub fn check(&self, max_steps: Option<u64>) -> Result<CheckResult> {
        let opts = CheckOptions {
            max_steps,
            ..CheckOptions::default()
        };
        check_with(&KvModel, &self.history(), &opts)
    }
}

/// A simulator's client history as the checker's operations: a get answers its value, a
/// put answers ok; an operation that timed out or is pending has no return and an unknown
/// output; a refused one ("not the primary") took no effect and is left out.
pub fn history(ops: &[ClientOp<ReplRequest, ReplResponse>]) -> Vec<Operation<KvInput, KvOutput>> {
    ops.iter()
        .filter(|op| !matches!(op.outcome, Outcome::Fail { .. }))
        .map(|op| {
            let input = match &op.body {
                ReplRequest::Get { key } => KvInput::Get { key: key.clone() },
                ReplRequest::Put { key, value } => KvInput::Put {
                    key: key.clone(),
                    value: value.clone(),
                },
            };
            let (output, ret) = match &op.outcome {
                Outcome::Ok { value, at } => (
                    match &value.value {
                        Some(v) => Response::Value { value: v.clone() },
                        None => Response::Ok,
                    },
                    Some(at.0),
                ),
                _ => (Response::Unknown, None),
            };
            Operation {
                client: u64::from(op.client),
                input,
                call: op.invoked.0,
                output,
                ret,
            }
        })
        .collect()
}
