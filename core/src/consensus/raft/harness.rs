//! A Raft cluster on the simulator with closed-loop key-value clients, for tests, soaks,
//! benchmarks and the lab: each client has a session, issues one command at a time,
//! follows "not leader; try n" hints, and retries a command that timed out with the
//! same session and number, so a retry applies once. Invariants can be checked after
//! every event, and the clients' history can be handed to a linearizability checker.
//!
//! A *logical* operation spans all attempts of one command: it is invoked when the first
//! attempt is sent and returns when one attempt is answered. That is the history a
//! linearizability checker must see: the session makes the attempts one operation.

use serde::Serialize;

use crate::consensus::raft::config::RaftParams;
use crate::consensus::raft::invariants::{InvariantChecker, Violation};
use crate::consensus::raft::node::{RaftNode, RaftRequest, Role};
use crate::consensus::raft::state_machine::{KvCommand, KvOp, KvResponse};
use crate::error::{DistlabError, Result};
use crate::rng::SimRng;
use crate::sim::history::Outcome;
use crate::sim::{NodeId, RequestId, Sim, SimConfig, Stepped};
use crate::time::{Duration, Time};

/// What the clients do.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub clients: u32,
    /// Keys are `k0 .. k{keys-1}`.
    pub keys: u32,
    /// Fractions of gets and compare-and-swaps (the rest are puts, one in ten a delete).
    pub read_fraction: f64,
    pub cas_fraction: f64,
    /// Pause between one command's answer and the next command.
    pub think: Duration,
    /// How long one attempt waits for an answer.
    pub attempt_timeout: Duration,
    /// Pause before retrying after "not leader".
    pub retry_backoff: Duration,
    /// No new command starts after this time (commands under way keep retrying).
    pub stop_at: Time,
    /// Probability that a new command goes to a random node rather than the last one
    /// that answered, so followers' and stale leaders' answers are exercised too.
    pub random_target: f64,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            clients: 3,
            keys: 3,
            read_fraction: 0.3,
            cas_fraction: 0.2,
            think: Duration::from_millis(5),
            attempt_timeout: Duration::from_millis(400),
            retry_backoff: Duration::from_millis(20),
            stop_at: Time::MAX,
            random_target: 0.2,
        }
    }
}

/// One logical client operation: every attempt of one (session, seq).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogicalOp {
    pub client: u32,
    pub session: u64,
    pub seq: u64,
    pub op: KvOp,
    pub invoked: Time,
    /// The answer and when it arrived; `None` while (or if forever) unanswered.
    pub result: Option<(KvResponse, Time)>,
    pub attempts: u32,
}

#[derive(Debug, Clone)]
struct Client {
    seq: u64,
    /// Index into `ops` of the command under way.
    current: Option<usize>,
    /// The attempt in flight (a simulator request id).
    attempt: Option<RequestId>,
    /// Where to send the next attempt.
    target: NodeId,
}

/// A Raft cluster, its clients, and an invariant checker.
#[derive(Debug, Clone)]
pub struct Harness {
    sim: Sim<RaftNode>,
    workload: Workload,
    clients: Vec<Client>,
    ops: Vec<LogicalOp>,
    rng: SimRng,
    checker: Option<InvariantChecker>,
    violation: Option<Violation>,
    next_value: u64,
    last_stepped: Option<Stepped>,
    /// The simulator's ended-operation count when the clients last looked.
    polled_at: u64,
}

/// External-event tags from here on belong to whoever drives the harness (a lab's
/// scheduled actions); lower tags are the clients'.
pub const DRIVER_TAGS: u64 = 1 << 40;

/// Session ids of harness clients start here, so they never collide with ids a lab
/// hands out for one-off requests.
pub const SESSION_BASE: u64 = 1 << 32;

impl Harness {
    /// Builds the cluster; `check_invariants` turns on checking after every event.
    pub fn new(
        sim_config: SimConfig,
        params: RaftParams,
        workload: Workload,
        check_invariants: bool,
    ) -> Result<Self> {
        if workload.clients > sim_config.clients {
            return Err(DistlabError::field(
                "clients",
                format!(
                    "the workload has {} clients but the simulation only {}",
                    workload.clients, sim_config.clients
                ),
            ));
        }
        if workload.keys == 0 {
            return Err(DistlabError::field("keys", "must be at least 1"));
        }
        let rng = SimRng::derive(sim_config.seed, 17);
        let nodes = sim_config.nodes;
        let sim = Sim::new(sim_config, params)?;
        let clients = (0..workload.clients)
            .map(|c| Client {
                seq: 0,
                current: None,
                attempt: None,
                target: c % nodes.max(1),
            })
            .collect();
        let mut h = Harness {
            sim,
            clients,
            ops: Vec::new(),
            rng,
            checker: check_invariants.then(InvariantChecker::new),
            violation: None,
            next_value: 0,
            last_stepped: None,
            polled_at: 0,
            workload,
        };
        for c in 0..h.workload.clients {
            let at = Time(h.rng.below(h.workload.think.0.max(1) * 4));
            h.sim.schedule_external(at, c as u64);
        }
        Ok(h)
    }

    pub fn sim(&self) -> &Sim<RaftNode> {
        &self.sim
    }
    pub fn sim_mut(&mut self) -> &mut Sim<RaftNode> {
        &mut self.sim
    }
    pub fn ops(&self) -> &[LogicalOp] {
        &self.ops
    }
    pub fn workload(&self) -> &Workload {
        &self.workload
    }
    /// What the last [`step_until`](Self::step_until) processed: drivers schedule their
    /// own events with tags at or above [`DRIVER_TAGS`] and see them here.
    pub fn last_stepped(&self) -> Option<Stepped> {
        self.last_stepped
    }
    /// The first invariant violation found, if any.
    pub fn violation(&self) -> Option<&Violation> {
        self.violation.as_ref()
    }
    /// Commands started and not yet answered.
    pub fn pending(&self) -> usize {
        self.clients.iter().filter(|c| c.current.is_some()).count()
    }
    /// Commands answered.
    pub fn completed(&self) -> usize {
        self.ops.iter().filter(|o| o.result.is_some()).count()
    }

    /// The running leader with the highest term, if any.
    pub fn leader(&self) -> Option<NodeId> {
        (0..self.sim.node_count())
            .filter_map(|id| self.sim.node(id).map(|n| (id, n)))
            .filter(|(_, n)| n.raft_role() == Role::Leader)
            .max_by_key(|(_, n)| n.term())
            .map(|(id, _)| id)
    }

    /// Whether a running leader has committed an entry of its own term: a majority has
    /// accepted it, so it can serve.
    pub fn leader_serving(&self) -> bool {
        self.leader()
            .and_then(|id| self.sim.node(id))
            .is_some_and(|n| n.log().term_at(n.commit_index()) == Some(n.term()))
    }

    /// Sends an administrative request (membership change, transfer, snapshot) from the
    /// client after the workload's clients, which the simulation must have.
    pub fn admin(&mut self, node: NodeId, request: RaftRequest) -> Result<RequestId> {
        let client = self.workload.clients;
        self.sim
            .client_request(client, node, request, self.workload.attempt_timeout)
    }

    /// Processes one event (checking invariants after it if enabled). `false` when the
    /// simulation has nothing left to do before `deadline`.
    pub fn step_until(&mut self, deadline: Time) -> bool {
        let Some(stepped) = self.sim.step_until(deadline) else {
            return false;
        };
        self.last_stepped = Some(stepped);
        if let Stepped::External(tag) = stepped
            && tag < DRIVER_TAGS
        {
            self.client_turn(tag as usize);
        }
        // Only an operation that ended gives a client something to do.
        if self.sim.ended_ops() != self.polled_at {
            self.polled_at = self.sim.ended_ops();
            self.poll_clients();
        }
        if self.violation.is_none()
            && let Some(checker) = self.checker.as_mut()
            && let Err(v) = checker.check_sim(&self.sim)
        {
            self.violation = Some(v);
        }
        true
    }

    /// Runs until `t` (or the first violation), then moves the clock to `t`.
    pub fn run_until(&mut self, t: Time) {
        while self.violation.is_none() && self.step_until(t) {}
        if self.violation.is_none() {
            self.sim.advance_clock(t);
        }
    }

    /// Runs until `until` returns true (checked after every event) or time `t`.
    pub fn run_until_or(&mut self, t: Time, mut until: impl FnMut(&Self) -> bool) -> bool {
        while self.violation.is_none() {
            if until(self) {
                return true;
            }
            if !self.step_until(t) {
                break;
            }
        }
        until(self)
    }

    fn client_turn(&mut self, c: usize) {
        let Some(client) = self.clients.get(c) else {
            return;
        };
        if client.attempt.is_some() {
            return;
        }
        let index = match client.current {
            Some(i) => i,
            None => {
                if self.sim.now() >= self.workload.stop_at {
                    return;
                }
                let op = self.random_op();
                let nodes = self.sim.node_count().max(1) as u64;
                let random = self
                    .rng
                    .chance(self.workload.random_target)
                    .then(|| self.rng.below(nodes) as NodeId);
                let Some(client) = self.clients.get_mut(c) else {
                    return;
                };
                if let Some(t) = random {
                    client.target = t;
                }
                client.seq += 1;
                self.ops.push(LogicalOp {
                    client: c as u32,
                    session: SESSION_BASE + c as u64,
                    seq: client.seq,
                    op,
                    invoked: self.sim.now(),
                    result: None,
                    attempts: 0,
                });
                let i = self.ops.len() - 1;
                client.current = Some(i);
                i
            }
        };
        let Some(op) = self.ops.get_mut(index) else {
            return;
        };
        op.attempts += 1;
        let cmd = KvCommand {
            session: op.session,
            seq: op.seq,
            op: op.op.clone(),
        };
        let Some(client) = self.clients.get_mut(c) else {
            return;
        };
        let target = client.target;
        match self.sim.client_request(
            c as u32,
            target,
            RaftRequest::Kv(Box::new(cmd)),
            self.workload.attempt_timeout,
        ) {
            Ok(id) => client.attempt = Some(id),
            Err(_) => {
                // The target no longer exists (cannot happen in a harness run): try again.
                client.target = 0;
                let at = self.sim.now() + self.workload.retry_backoff;
                self.sim.schedule_external(at, c as u64);
            }
        }
    }

    fn random_op(&mut self) -> KvOp {
        let key = format!("k{}", self.rng.below(self.workload.keys as u64));
        self.next_value += 1;
        // Values are never empty: a checker may read "absent" as the empty string.
        let value = format!("v{}", self.next_value);
        let x = self.rng.next_f64();
        if x < self.workload.read_fraction {
            KvOp::Get { key }
        } else if x < self.workload.read_fraction + self.workload.cas_fraction {
            let expected = if self.rng.chance(0.3) {
                None
            } else {
                Some(format!(
                    "v{}",
                    self.next_value.saturating_sub(1 + self.rng.below(3))
                ))
            };
            KvOp::Cas {
                key,
                expected,
                new: value,
            }
        } else if self.rng.chance(0.1) {
            KvOp::Delete { key }
        } else {
            KvOp::Put { key, value }
        }
    }

    /// Looks at every attempt in flight and reacts to the ones that ended.
    fn poll_clients(&mut self) {
        for c in 0..self.clients.len() {
            let Some(client) = self.clients.get(c) else {
                continue;
            };
            let Some(attempt) = client.attempt else {
                continue;
            };
            let Some(record) = self.sim.history().get(attempt as usize) else {
                continue;
            };
            let now = self.sim.now();
            let nodes = self.sim.node_count().max(1) as u64;
            let (retry_after, target, done) = match &record.outcome {
                Outcome::Pending => continue,
                Outcome::Ok { value, at } => (None, None, Some((value.clone(), *at))),
                Outcome::Fail { reason, .. } => {
                    let hint = reason
                        .rsplit("try ")
                        .next()
                        .and_then(|n| n.trim().parse::<NodeId>().ok())
                        .filter(|&n| n < self.sim.node_count());
                    let target = hint.unwrap_or_else(|| self.rng.below(nodes) as NodeId);
                    (Some(self.workload.retry_backoff), Some(target), None)
                }
                Outcome::Timeout { .. } => (
                    Some(Duration::ZERO),
                    Some(self.rng.below(nodes) as NodeId),
                    None,
                ),
            };
            let Some(client) = self.clients.get_mut(c) else {
                continue;
            };
            client.attempt = None;
            if let Some(t) = target {
                client.target = t;
            }
            if let Some((value, at)) = done {
                if let Some(op) = client.current.take().and_then(|i| self.ops.get_mut(i)) {
                    op.result = Some((value, at));
                }
                let next = now + self.workload.think;
                self.sim.schedule_external(next, c as u64);
            } else if let Some(delay) = retry_after {
                self.sim.schedule_external(now + delay, c as u64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::raft::config::RaftConfig;

    fn harness(seed: u64, nodes: u32) -> Harness {
        let sim = SimConfig {
            seed,
            nodes,
            clients: 3,
            record_trace: false,
            ..SimConfig::default()
        };
        let params = RaftConfig::default().params(nodes).unwrap();
        Harness::new(sim, params, Workload::default(), true).unwrap()
    }

    #[test]
    fn a_quiet_cluster_elects_one_leader_and_serves_clients() {
        for nodes in [1, 3, 5] {
            let mut h = harness(1, nodes);
            h.run_until(Time::from_millis(3_000));
            assert!(h.violation().is_none(), "{:?}", h.violation());
            assert!(h.leader().is_some(), "{nodes} nodes: no leader");
            assert!(h.completed() > 100, "{nodes} nodes: {}", h.completed());
            let leader = h.leader().unwrap();
            let l = h.sim().node(leader).unwrap();
            for id in 0..nodes {
                let n = h.sim().node(id).unwrap();
                assert_eq!(n.term(), l.term(), "node {id}");
                assert_eq!(n.leader(), Some(leader), "node {id}");
            }
        }
    }
}
