//! The part every key-value consensus soak shares (Multi-Paxos, VR, Zab, PBFT): play the
//! fault window, with the protocol's own crasher acting between slices of it; after the
//! repair, give the cluster a bounded time to answer every command under way; then judge
//! the seed — an invariant violation first, then the event budget, then liveness, and
//! last the clients' history against the linearizability checker (raft's history
//! conversion, [`crate::sim::linearizability`]). What differs per protocol — the
//! cluster, the nemesis, the crasher, the report's counters — stays in its `soak.rs`.

use serde::Serialize;
use std::fmt;

use crate::consensus::kv_clients::KvHarness;
use crate::consensus::raft::harness::LogicalOp;
use crate::consensus::raft::soak::history;
use crate::consensus::raft::state_machine::{KvCommand, KvResponse};
use crate::sim::NodeId;
use crate::sim::linearizability::{KvModel, check};
use crate::sim::manual::ClusterChecker;
use crate::sim::node::Node;
use crate::time::{Duration, Time};

/// Why a seed failed; `V` is the protocol's invariant violation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum SoakFailure<V> {
    Invariant { violation: V },
    Liveness { detail: String },
    NotLinearizable { detail: String },
    EventBudget { events: u64 },
}

impl<V: fmt::Display> fmt::Display for SoakFailure<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SoakFailure::Invariant { violation } => write!(f, "{violation}"),
            SoakFailure::Liveness { detail } => write!(f, "liveness: {detail}"),
            SoakFailure::NotLinearizable { detail } => write!(f, "not linearizable: {detail}"),
            SoakFailure::EventBudget { events } => write!(f, "more than {events} events"),
        }
    }
}

/// What the driver needs of a cluster with key-value session clients.
pub trait SoakCluster {
    type Violation: Clone;
    /// Runs until `until` holds, time `t`, or a violation; whether `until` held.
    fn run_until_or(&mut self, t: Time, until: impl FnMut(&Self) -> bool) -> bool;
    fn violation(&self) -> Option<&Self::Violation>;
    /// Events processed so far.
    fn events(&self) -> u64;
    /// Commands started and not yet answered.
    fn pending(&self) -> usize;
    fn ops(&self) -> &[LogicalOp];
}

impl<N, C> SoakCluster for KvHarness<N, C>
where
    N: Node<Request = KvCommand, Response = KvResponse>,
    C: ClusterChecker<N>,
    C::Violation: Clone,
{
    type Violation = C::Violation;
    fn run_until_or(&mut self, t: Time, until: impl FnMut(&Self) -> bool) -> bool {
        KvHarness::run_until_or(self, t, until)
    }
    fn violation(&self) -> Option<&C::Violation> {
        KvHarness::violation(self)
    }
    fn events(&self) -> u64 {
        self.sim().steps()
    }
    fn pending(&self) -> usize {
        KvHarness::pending(self)
    }
    fn ops(&self) -> &[LogicalOp] {
        KvHarness::ops(self)
    }
}

/// How a seed is played.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// The faults stop here.
    pub repair: Time,
    /// After the repair every command must be answered within this much simulated time.
    pub settle: Duration,
    pub max_events: u64,
    /// Play the fault window in slices this long, the crasher acting after each; `None`:
    /// in one go (the nemesis script holds every fault).
    pub slice: Option<Duration>,
}

/// Plays the fault window and the settling time; `between(h, faults_allowed)` runs after
/// each slice of the window (allowed) and before each 100 ms of the settling time (not
/// allowed: restart what is down). Returns whether every command was answered in time.
pub fn play<H: SoakCluster>(
    h: &mut H,
    s: &Schedule,
    mut between: impl FnMut(&mut H, bool),
) -> bool {
    let max = s.max_events;
    let over = |h: &H| h.violation().is_some() || h.events() > max;
    let mut t = Time::ZERO;
    match s.slice {
        Some(slice) => {
            while t < s.repair && !over(h) {
                t = (t + slice).min(s.repair);
                h.run_until_or(t, |h| h.events() > max);
                between(h, t < s.repair);
            }
        }
        None => {
            h.run_until_or(s.repair, |h| h.events() > max);
            t = s.repair;
        }
    }
    let bound = s.repair + s.settle;
    let mut live = false;
    while !live && t < bound && !over(h) {
        between(h, false);
        t = (t + Duration::from_millis(100)).min(bound);
        live = h.run_until_or(t, |h| h.events() > max || h.pending() == 0) && h.pending() == 0;
    }
    live
}

/// The seed's verdict once [`play`] returned `live`; `progress` describes how far each
/// node got, for a seed that stalled (e.g. "executed [(0, 12), (1, 9)]").
pub fn judge<H: SoakCluster>(
    h: &H,
    s: &Schedule,
    live: bool,
    progress: impl FnOnce() -> String,
) -> Option<SoakFailure<H::Violation>> {
    if let Some(v) = h.violation() {
        return Some(SoakFailure::Invariant {
            violation: v.clone(),
        });
    }
    if h.events() > s.max_events {
        return Some(SoakFailure::EventBudget {
            events: s.max_events,
        });
    }
    if !live {
        return Some(SoakFailure::Liveness {
            detail: format!(
                "{} commands pending {} ms after the repair; {}",
                h.pending(),
                s.settle.as_micros() / 1_000,
                progress()
            ),
        });
    }
    match check(&KvModel, &history(h.ops())) {
        Ok(r) if r.linearizable => None,
        Ok(r) => {
            let parts: Vec<String> = r.violations().map(|p| format!("{:?}", p.outcome)).collect();
            Some(SoakFailure::NotLinearizable {
                detail: parts.join("; "),
            })
        }
        Err(e) => Some(SoakFailure::NotLinearizable {
            detail: format!("the checker refused the history: {e}"),
        }),
    }
}

/// Every node's progress as `label [(node, n), ...]`.
pub fn progress(label: &str, per_node: &[(NodeId, u64)]) -> String {
    format!("{label} {per_node:?}")
}
