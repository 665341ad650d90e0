//! A PBFT group with closed-loop key-value clients and the safety checker after every
//! event. A client sends each request to every replica (the paper's multicast, §4.1) and
//! accepts a result once f + 1 replicas have replied with the same one — at least one of
//! them correct — so a liar's reply alone is never believed. With fewer, it retries with
//! the same session and number once every replica has answered or timed out, and the
//! client table makes the retry apply once. The clients' logical operations are raft's
//! [`LogicalOp`], so raft's history conversion and the linearizability checker apply.
//! The workload is VR's [`Workload`].

use std::collections::BTreeMap;

use crate::consensus::pbft::invariants::{Checker, Violation};
use crate::consensus::pbft::replica::{PbftParams, PbftReplica};
use crate::consensus::raft::harness::{LogicalOp, SESSION_BASE};
use crate::consensus::raft::state_machine::{KvCommand, KvOp, KvResponse};
pub use crate::consensus::vr::harness::Workload;
use crate::error::Result;
use crate::rng::SimRng;
use crate::sim::history::Outcome;
use crate::sim::{NodeId, RequestId, Sim, SimConfig, Stepped};
use crate::time::Time;

#[derive(Debug, Clone)]
struct Client {
    seq: u64,
    current: Option<usize>,
    /// One request per replica for the attempt under way.
    attempt: Vec<RequestId>,
}

/// A group, its clients and the checker.
#[derive(Debug, Clone)]
pub struct Harness {
    sim: Sim<PbftReplica>,
    workload: Workload,
    clients: Vec<Client>,
    ops: Vec<LogicalOp>,
    rng: SimRng,
    checker: Checker,
    polled_at: u64,
    next_value: u64,
}

impl Harness {
    pub fn new(sim_config: SimConfig, params: PbftParams, workload: Workload) -> Result<Self> {
        let rng = SimRng::derive(sim_config.seed, 19);
        let sim = Sim::new(
            SimConfig {
                clients: sim_config.clients.max(workload.clients),
                ..sim_config
            },
            params,
        )?;
        let clients = (0..workload.clients)
            .map(|_| Client {
                seq: 0,
                current: None,
                attempt: Vec::new(),
            })
            .collect();
        let mut h = Harness {
            sim,
            clients,
            ops: Vec::new(),
            rng,
            checker: Checker::default(),
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

    pub fn sim(&self) -> &Sim<PbftReplica> {
        &self.sim
    }
    pub fn sim_mut(&mut self) -> &mut Sim<PbftReplica> {
        &mut self.sim
    }
    pub fn ops(&self) -> &[LogicalOp] {
        &self.ops
    }
    pub fn checker(&self) -> &Checker {
        &self.checker
    }
    pub fn violation(&self) -> Option<&Violation> {
        self.checker.violation()
    }
    /// f, for the group's size n = 3f + 1 (or more).
    pub fn f(&self) -> usize {
        (self.sim.node_count().max(1) as usize - 1) / 3
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

    /// Checks the invariants against every correct replica.
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
        if !client.attempt.is_empty() {
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
        let mut attempt = Vec::new();
        for node in 0..self.sim.node_count() {
            if let Ok(id) =
                self.sim
                    .client_request(c as u32, node, cmd.clone(), self.workload.attempt_timeout)
            {
                attempt.push(id);
            }
        }
        if let Some(client) = self.clients.get_mut(c) {
            client.attempt = attempt;
        }
    }

    /// The result f + 1 replicas agree on, and when the last of those f + 1 arrived.
    fn agreed(&self, attempt: &[RequestId]) -> (Option<(KvResponse, Time)>, bool) {
        let mut by_value: BTreeMap<String, (KvResponse, Vec<Time>)> = BTreeMap::new();
        let mut pending = false;
        let mut seen: Vec<NodeId> = Vec::new();
        for &id in attempt {
            let Some(op) = self.sim.history().get(id as usize) else {
                continue;
            };
            match &op.outcome {
                Outcome::Pending => pending = true,
                Outcome::Ok { value, at } if !seen.contains(&op.node) => {
                    seen.push(op.node);
                    by_value
                        .entry(format!("{value:?}"))
                        .or_insert_with(|| (value.clone(), Vec::new()))
                        .1
                        .push(*at);
                }
                _ => {}
            }
        }
        let need = self.f() + 1;
        let agreed = by_value.into_values().find_map(|(v, mut times)| {
            times.sort();
            times.get(need - 1).map(|t| (v, *t))
        });
        (agreed, pending)
    }

    fn poll_clients(&mut self) {
        for c in 0..self.clients.len() {
            if self.clients[c].attempt.is_empty() {
                continue;
            }
            let (agreed, pending) = self.agreed(&self.clients[c].attempt);
            match agreed {
                Some(result) => {
                    if let Some(i) = self.clients[c].current
                        && let Some(l) = self.ops.get_mut(i)
                    {
                        l.result = Some(result);
                    }
                    self.clients[c].current = None;
                }
                None if pending => continue,
                None => {}
            }
            self.clients[c].attempt.clear();
            let at = self.sim.now() + self.workload.pause;
            self.sim.schedule_external(at, c as u64);
        }
    }

    /// Every replica's executed sequence number, for the report of a seed that stalled.
    pub fn applied(&self) -> Vec<(NodeId, u64)> {
        (0..self.sim.node_count())
            .filter_map(|id| self.sim.node(id).map(|n| (id, n.last_executed())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::pbft::byzantine::Behaviour;
    use crate::consensus::pbft::invariants::Invariant;

    pub(crate) fn group(seed: u64, nodes: u32, liars: &[(NodeId, Behaviour)]) -> Harness {
        let params = PbftParams {
            byzantine: liars.iter().copied().collect(),
            ..PbftParams::default()
        };
        let config = SimConfig {
            seed,
            nodes,
            clients: 3,
            record_trace: false,
            ..SimConfig::default()
        };
        Harness::new(config, params, Workload::default()).unwrap()
    }

    fn correct(h: &Harness) -> Vec<&PbftReplica> {
        (0..h.sim().node_count())
            .filter_map(|i| h.sim().node(i))
            .filter(|r| r.behaviour().is_honest())
            .collect()
    }

    #[test]
    fn four_and_seven_replicas_commit_checkpoint_and_agree() {
        for nodes in [4, 7] {
            let mut h = group(1, nodes, &[]);
            h.run_until_or(Time::from_millis(2_000), |_| false);
            assert!(h.violation().is_none(), "{:?}", h.violation());
            assert!(h.completed() > 20, "n={nodes}: {}", h.completed());
            for r in correct(&h) {
                assert!(r.low_watermark() >= 8, "n={nodes}: {:?}", r.low_watermark());
                assert_eq!(r.high_watermark(), r.low_watermark() + 8);
                assert!(r.slots().keys().all(|s| *s > r.low_watermark()));
                assert_eq!(r.stable_proof().len(), 2 * r.f() + 1);
                assert_eq!(r.view(), 0);
            }
        }
    }

    #[test]
    fn a_silent_primary_is_replaced_by_a_view_change() {
        let mut h = group(2, 4, &[(0, Behaviour::Silent)]);
        h.run_until_or(Time::from_millis(3_000), |_| false);
        assert!(h.violation().is_none(), "{:?}", h.violation());
        assert!(h.completed() > 10, "{}", h.completed());
        assert!(correct(&h).iter().all(|r| r.view() >= 1));
    }

    #[test]
    fn a_primary_that_equivocates_triggers_a_view_change_and_the_group_continues() {
        for nodes in [4, 7] {
            let mut h = group(3, nodes, &[(0, Behaviour::Equivocate)]);
            h.run_until_or(Time::from_millis(3_000), |_| false);
            assert!(h.violation().is_none(), "{:?}", h.violation());
            let views: Vec<u64> = correct(&h).iter().map(|r| r.view()).collect();
            assert!(views.iter().all(|v| *v >= 1), "n={nodes}: {views:?}");
            assert!(h.completed() > 10, "n={nodes}: {}", h.completed());
        }
    }

    #[test]
    fn f_plus_one_liars_break_safety_among_correct_replicas() {
        for (nodes, liars) in [(4, vec![0, 1]), (7, vec![0, 1, 2])] {
            let liars: Vec<(NodeId, Behaviour)> =
                liars.iter().map(|&l| (l, Behaviour::Equivocate)).collect();
            // Seed 2: at seven replicas not every schedule lets both halves commit
            // before a view timer runs out (tests/tests/pbft_regressions.rs).
            let mut h = group(2, nodes, &liars);
            h.run_until_or(Time::from_millis(3_000), |_| false);
            let v = h.violation().expect("f + 1 liars must break safety");
            assert_eq!(v.invariant, Invariant::Safety, "{v}");
            // With f of them the same schedule is safe.
            let mut h = group(2, nodes, &liars[..liars.len() - 1]);
            h.run_until_or(Time::from_millis(3_000), |_| false);
            assert!(h.violation().is_none(), "{:?}", h.violation());
        }
    }

    #[test]
    fn forged_messages_are_detected_and_dropped() {
        let mut h = group(5, 4, &[(3, Behaviour::Forge)]);
        h.run_until_or(Time::from_millis(1_000), |_| false);
        assert!(h.violation().is_none(), "{:?}", h.violation());
        let dropped: u64 = correct(&h).iter().map(|r| r.forgeries_dropped()).sum();
        assert!(dropped > 10, "{dropped}");
        assert!(h.completed() > 10);
    }

    #[test]
    fn runs_are_deterministic() {
        let run = || {
            let mut h = group(6, 4, &[(1, Behaviour::Equivocate)]);
            h.run_until_or(Time::from_millis(1_000), |_| false);
            (h.completed(), h.sim().steps(), h.checker().committed())
        };
        assert_eq!(run(), run());
    }
}
