//! Closed-loop key-value clients over any replicated state machine that takes raft's
//! [`KvCommand`], with the protocol's safety checker run after every event. Paxos, VR and
//! Zab share it: each client is a session that issues one command at a time, follows a
//! "not the leader; try n" hint, and retries a command that failed or timed out with the
//! same session and number, so the server's client table applies a retry once (the
//! client-table scheme of Liskov & Cowling's VR Revisited, §4, which Raft's §6.3 also
//! uses). The clients' logical operations are raft's [`LogicalOp`], so the same history
//! conversion and linearizability checker judge every protocol.

use crate::consensus::raft::harness::{LogicalOp, SESSION_BASE};
use crate::consensus::raft::state_machine::{KvCommand, KvOp, KvResponse};
use crate::error::Result;
use crate::rng::SimRng;
use crate::sim::history::Outcome;
use crate::sim::manual::ClusterChecker;
use crate::sim::{Node, NodeId, RequestId, Sim, SimConfig, Stepped};
use crate::time::{Duration, Time};

/// What the clients do.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub clients: u32,
    pub keys: u32,
    /// How long one attempt waits for an answer.
    pub attempt_timeout: Duration,
    /// Pause before a retry, and between commands.
    pub pause: Duration,
    /// No new command starts after this time.
    pub stop_at: Time,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            clients: 3,
            keys: 3,
            attempt_timeout: Duration::from_millis(400),
            pause: Duration::from_millis(10),
            stop_at: Time::MAX,
        }
    }
}

#[derive(Debug, Clone)]
struct Client {
    seq: u64,
    current: Option<usize>,
    attempt: Option<RequestId>,
    target: NodeId,
}

/// A cluster, its clients and the checker.
#[derive(Debug, Clone)]
pub struct KvHarness<N: Node, C> {
    sim: Sim<N>,
    workload: Workload,
    clients: Vec<Client>,
    ops: Vec<LogicalOp>,
    rng: SimRng,
    checker: C,
    polled_at: u64,
    next_value: u64,
}

impl<N, C> KvHarness<N, C>
where
    N: Node<Request = KvCommand, Response = KvResponse>,
    C: ClusterChecker<N>,
{
    pub fn new(sim_config: SimConfig, params: N::Config, workload: Workload) -> Result<Self> {
        let rng = SimRng::derive(sim_config.seed, 17);
        let nodes = sim_config.nodes.max(1);
        let sim = Sim::new(
            SimConfig {
                clients: sim_config.clients.max(workload.clients),
                ..sim_config
            },
            params,
        )?;
        let clients = (0..workload.clients)
            .map(|c| Client {
                seq: 0,
                current: None,
                attempt: None,
                target: c % nodes,
            })
            .collect();
        let mut h = KvHarness {
            sim,
            clients,
            ops: Vec::new(),
            rng,
            checker: C::default(),
            polled_at: 0,
            next_value: 0,
            workload,
        };
        for c in 0..h.workload.clients {
            let at = Time(h.rng.below(20_000));
            h.sim.schedule_external(at, u64::from(c));
        }
        Ok(h)
    }

    pub fn sim(&self) -> &Sim<N> {
        &self.sim
    }
    pub fn sim_mut(&mut self) -> &mut Sim<N> {
        &mut self.sim
    }
    pub fn ops(&self) -> &[LogicalOp] {
        &self.ops
    }
    pub fn checker(&self) -> &C {
        &self.checker
    }
    pub fn violation(&self) -> Option<&C::Violation> {
        self.checker.violation()
    }
    /// Commands started and not yet answered.
    pub fn pending(&self) -> usize {
        self.clients.iter().filter(|c| c.current.is_some()).count()
    }
    pub fn completed(&self) -> usize {
        self.ops.iter().filter(|o| o.result.is_some()).count()
    }

    /// Processes one event due by `deadline` and checks the invariants; false if none is.
    pub fn step_until(&mut self, deadline: Time) -> bool {
        if !self.step(deadline) {
            return false;
        }
        self.observe();
        true
    }

    /// Processes one event due by `deadline` (a client's turn included), without the
    /// check; false if none is.
    pub fn step(&mut self, deadline: Time) -> bool {
        let Some(stepped) = self.sim.step_until(deadline) else {
            return false;
        };
        if let Stepped::External(tag) = stepped {
            self.client_turn(tag as usize);
        }
        if self.sim.ended_ops() != self.polled_at {
            self.polled_at = self.sim.ended_ops();
            self.poll_clients();
        }
        true
    }

    /// Checks the invariants against every node that changed.
    pub fn observe(&mut self) {
        self.checker.observe(&self.sim);
    }

    /// Clients start no new command from now on (the ones under way go on).
    pub fn stop_clients(&mut self) {
        self.workload.stop_at = self.sim.now();
    }

    /// Runs until `until` holds (checked after every event), time `t`, or a violation.
    pub fn run_until_or(&mut self, t: Time, mut until: impl FnMut(&Self) -> bool) -> bool {
        while self.violation().is_none() {
            if until(self) {
                return true;
            }
            if !self.step_until(t) {
                break;
            }
        }
        if self.violation().is_none() {
            self.sim.advance_clock(t);
        }
        until(self)
    }

    fn random_op(&mut self) -> KvOp {
        let key = format!("k{}", self.rng.below(u64::from(self.workload.keys.max(1))));
        if self.rng.chance(0.4) {
            KvOp::Get { key }
        } else {
            self.next_value += 1;
            KvOp::Put {
                key,
                value: format!("v{}", self.next_value),
            }
        }
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
                let Some(client) = self.clients.get_mut(c) else {
                    return;
                };
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
                client.current = Some(self.ops.len() - 1);
                self.ops.len() - 1
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
        self.checker.issued(&cmd);
        let Some(client) = self.clients.get_mut(c) else {
            return;
        };
        if let Ok(id) =
            self.sim
                .client_request(c as u32, client.target, cmd, self.workload.attempt_timeout)
        {
            client.attempt = Some(id);
        }
    }

    fn poll_clients(&mut self) {
        let nodes = u64::from(self.sim.node_count().max(1));
        for c in 0..self.clients.len() {
            let Some(attempt) = self.clients[c].attempt else {
                continue;
            };
            let Some(op) = self.sim.history().get(attempt as usize) else {
                continue;
            };
            let retry_to = match &op.outcome {
                Outcome::Pending => continue,
                Outcome::Ok { value, at } => {
                    if let Some(i) = self.clients[c].current
                        && let Some(l) = self.ops.get_mut(i)
                    {
                        l.result = Some((value.clone(), *at));
                    }
                    self.clients[c].current = None;
                    None
                }
                Outcome::Fail { reason, .. } => Some(
                    reason
                        .rsplit_once("try ")
                        .and_then(|(_, n)| n.parse::<NodeId>().ok())
                        .unwrap_or(self.rng.below(nodes) as NodeId),
                ),
                Outcome::Timeout { .. } => Some(self.rng.below(nodes) as NodeId),
            };
            let client = &mut self.clients[c];
            client.attempt = None;
            if let Some(t) = retry_to {
                client.target = t;
            }
            let at = self.sim.now() + self.workload.pause;
            self.sim.schedule_external(at, c as u64);
        }
    }

    /// Each live node's answer to `f`, for reports (what each applied, delivered...).
    pub fn per_node<T>(&self, f: impl Fn(&N) -> T) -> Vec<(NodeId, T)> {
        (0..self.sim.node_count())
            .filter_map(|id| self.sim.node(id).map(|n| (id, f(n))))
            .collect()
    }
}
