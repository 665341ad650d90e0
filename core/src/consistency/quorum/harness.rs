//! A quorum cluster with closed-loop clients, and its history as the linearizability
//! checker reads it. Each client asks one operation at a time of a node chosen at random
//! (any node coordinates), waits for the answer or gives up after a timeout, pauses, and
//! asks the next; it never retries, so every request is one operation of the history and
//! one that timed out may or may not have taken effect. Every put writes a value no other
//! put writes, so a read names the put it saw.

use crate::consistency::quorum::node::{QuorumNode, QuorumParams, QuorumRequest, QuorumResponse};
use crate::error::Result;
use crate::rng::SimRng;
use crate::sim::history::{ClientOp, Outcome};
use crate::sim::linearizability::{
    CheckOptions, CheckResult, KvInput, KvModel, KvOutput, Operation, Response, check_with,
};
use crate::sim::{Sim, SimConfig, Stepped};
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
            get_share: 0.5,
            timeout: Duration::from_millis(500),
            pause: Duration::from_millis(5),
            stop_at: Time::MAX,
        }
    }
}

/// A cluster and its clients.
#[derive(Debug, Clone)]
pub struct Harness {
    sim: Sim<QuorumNode>,
    workload: Workload,
    /// Each client's request under way, if any.
    waiting: Vec<Option<u64>>,
    rng: SimRng,
    polled_at: u64,
    next_value: u64,
}

impl Harness {
    /// Builds the cluster; errors name the field (`n`, `r`, `w`, `nodes`).
    pub fn new(sim_config: SimConfig, params: QuorumParams, workload: Workload) -> Result<Self> {
        params.validate(sim_config.nodes)?;
        let rng = SimRng::derive(sim_config.seed, 23);
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
            rng,
            polled_at: 0,
            next_value: 0,
            workload,
        };
        for c in 0..h.workload.clients {
            let at = Time(h.rng.below(10_000));
            h.sim.schedule_external(at, u64::from(c));
        }
        Ok(h)
    }

    pub fn sim(&self) -> &Sim<QuorumNode> {
        &self.sim
    }
    pub fn sim_mut(&mut self) -> &mut Sim<QuorumNode> {
        &mut self.sim
    }
    pub fn workload(&self) -> &Workload {
        &self.workload
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
        if self.sim.ended_ops() != self.polled_at {
            self.polled_at = self.sim.ended_ops();
            self.poll_clients();
        }
        true
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

    fn client_turn(&mut self, c: usize) {
        if self.waiting.get(c).is_none_or(Option::is_some)
            || self.sim.now() >= self.workload.stop_at
        {
            return;
        }
        let key = format!("k{}", self.rng.below(u64::from(self.workload.keys.max(1))));
        let body = if self.rng.chance(self.workload.get_share) {
            QuorumRequest::Get { key }
        } else {
            self.next_value += 1;
            QuorumRequest::Put {
                key,
                value: format!("v{}", self.next_value),
            }
        };
        let node = self.rng.below(u64::from(self.sim.node_count().max(1))) as u32;
        if let Ok(id) = self
            .sim
            .client_request(c as u32, node, body, self.workload.timeout)
            && let Some(w) = self.waiting.get_mut(c)
        {
            *w = Some(id);
        }
    }

    fn poll_clients(&mut self) {
        for c in 0..self.waiting.len() {
            let Some(id) = self.waiting[c] else {
                continue;
            };
            if self
                .sim
                .history()
                .get(id as usize)
                .is_none_or(ClientOp::is_pending)
            {
                continue;
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

/// A simulator's client history as the checker's operations: a get answers its value
/// ("" for a key never written), a put answers ok; an operation that timed out or is
/// still pending has no return and an unknown output. A failed one (none fails today)
/// took no effect and is left out.
pub fn history(
    ops: &[ClientOp<QuorumRequest, QuorumResponse>],
) -> Vec<Operation<KvInput, KvOutput>> {
    ops.iter()
        .filter(|op| !matches!(op.outcome, Outcome::Fail { .. }))
        .map(|op| {
            let input = match &op.body {
                QuorumRequest::Get { key } => KvInput::Get { key: key.clone() },
                QuorumRequest::Put { key, value } => KvInput::Put {
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
