//! One seed of the Raft fault soak, as a pure function of the seed: a random cluster size
//! and configuration, a random nemesis script (crashes — some part-way through an event,
//! between a write and its fsync —, pauses, partitions including one-way ones, loss,
//! duplication, reordering, clock skew and drift), closed-loop clients with sessions,
//! the safety invariants checked after every event, liveness after the final repair,
//! the state machine checked to have executed every command exactly once, and the
//! clients' history checked for linearizability.
//!
//! Reads go through the log, ReadIndex or a lease, a third each. A lease is safe only
//! while clocks run within its drift bound and never step ([`super::reads`]), so a lease
//! seed keeps the nemesis' drift (up to ±[`SOAK_MAX_DRIFT_PPM`], which is its bound) and
//! drops its clock steps; the other seeds get both.
//!
//! Why check executions when the history is checked: a put applied twice — a retry that
//! takes effect again after another client's write — can still be linearizable (the
//! retried put's interval spans the other write), so the history alone does not show
//! it. The state machine counts, per session, the commands it executed; after the final
//! repair every command has been answered, and an answered command was executed, so the
//! count must equal the session's commands that went through the log.
//!
//! Being pure and deterministic, a seed runs the same in `cargo test`, in the long soak
//! driver, on any shard of a batch job and in a browser worker; a failure is replayed by
//! running its seed again. Summaries merge by addition, so shards combine.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

use crate::consensus::raft::config::{RaftConfig, ReadMode};
use crate::consensus::raft::harness::{Harness, LogicalOp, Workload};
use crate::consensus::raft::invariants::Violation;
use crate::consensus::raft::node::RaftRequest;
use crate::consensus::raft::state_machine::{KvOp, KvResponse, KvStore};
use crate::rng::SimRng;
use crate::sim::linearizability::{KvInput, KvModel, KvOutput, Operation, Response, check};
use crate::sim::soak::{SeedOutcome, Soak, soak_summary};
use crate::sim::{Fault, NemesisConfig, NodeStatus, ScheduledFault, SimConfig};
use crate::time::{Duration, Time};

/// The largest clock drift the soak's nemesis sets, and the lease seeds' drift bound.
pub const SOAK_MAX_DRIFT_PPM: i64 = 50_000;

/// How hard each seed is pushed.
#[derive(Debug, Clone, PartialEq)]
pub struct SoakOptions {
    /// Faults happen during `[0, fault_ms)`; at `fault_ms` everything is repaired.
    pub fault_ms: u64,
    /// After the repair, a leader must be elected and every pending command answered
    /// within this many maximum election timeouts.
    pub liveness_timeouts: u64,
    /// A seed that processes more events than this fails (a message storm is a bug).
    pub max_events: u64,
    pub check_linearizability: bool,
}

impl Default for SoakOptions {
    fn default() -> Self {
        SoakOptions {
            fault_ms: 4_000,
            liveness_timeouts: 20,
            max_events: 2_000_000,
            check_linearizability: true,
        }
    }
}

/// Why a seed failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum SoakFailure {
    Invariant {
        violation: Violation,
    },
    Liveness {
        detail: String,
    },
    NotLinearizable {
        detail: String,
    },
    /// A session's executed-command count differs from its commands (see the module docs).
    ExactlyOnce {
        detail: String,
    },
    EventBudget {
        events: u64,
    },
}

impl fmt::Display for SoakFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SoakFailure::Invariant { violation } => write!(f, "{violation}"),
            SoakFailure::Liveness { detail } => write!(f, "liveness: {detail}"),
            SoakFailure::NotLinearizable { detail } => write!(f, "not linearizable: {detail}"),
            SoakFailure::ExactlyOnce { detail } => write!(f, "exactly-once: {detail}"),
            SoakFailure::EventBudget { events } => {
                write!(f, "more than {events} events: a message storm?")
            }
        }
    }
}

/// What one seed did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedReport {
    pub seed: u64,
    pub nodes: u32,
    pub pre_vote: bool,
    pub check_quorum: bool,
    pub read_mode: ReadMode,
    pub faults: usize,
    pub events: u64,
    pub commands: usize,
    pub completed: usize,
    /// Crashes, and crashes that tore a write, summed over the nodes' disks.
    pub crashes: u64,
    pub torn_writes: u64,
    /// The highest term reached: roughly how many elections there were.
    pub max_term: u64,
    /// Simulated time from the final repair until a leader was serving and every command
    /// was answered.
    pub recovery: Option<Duration>,
    pub failure: Option<SoakFailure>,
}

impl SeedOutcome for SeedReport {
    fn seed(&self) -> u64 {
        self.seed
    }

    fn failure(&self) -> Option<String> {
        self.failure.as_ref().map(|f| f.to_string())
    }
}

soak_summary! {
    /// Totals over many seeds; merges by addition.
    pub struct SoakSummary for SeedReport {
        sum {
            events: "events",
            commands: "commands",
            crashes: "crashes",
            torn_writes: "torn writes",
        }
        max {
            /// The longest recovery after the final repair, in µs of simulated time.
            worst_recovery_us: "µs worst recovery after the repair",
        }
        failures {
            violations: "violations",
            liveness_failures: "liveness failures",
            linearizability_failures: "linearizability failures",
            /// Seeds whose state machine executed some session's commands other than once each.
            exactly_once_failures: "exactly-once failures",
            other_failures: "other failures",
        }
    }
    fn add(&mut self, r: &SeedReport) {
        self.seeds += 1;
        self.events += r.events;
        self.commands += r.completed as u64;
        self.crashes += r.crashes;
        self.torn_writes += r.torn_writes;
        if let Some(d) = r.recovery {
            self.worst_recovery_us = self.worst_recovery_us.max(d.0);
        }
        if let Some(f) = &r.failure {
            match f {
                SoakFailure::Invariant { .. } => self.violations += 1,
                SoakFailure::Liveness { .. } => self.liveness_failures += 1,
                SoakFailure::NotLinearizable { .. } => self.linearizability_failures += 1,
                SoakFailure::ExactlyOnce { .. } => self.exactly_once_failures += 1,
                SoakFailure::EventBudget { .. } => self.other_failures += 1,
            }
            self.failed_seeds.push(r.seed);
        }
    }
}

/// Runs one seed.
pub fn run_seed(seed: u64, opts: &SoakOptions) -> SeedReport {
    let mut rng = SimRng::derive(seed, 99);
    let nodes = match rng.below(20) {
        0 => 1,
        1..=9 => 3,
        10..=17 => 5,
        _ => 7,
    };
    let read_mode = match rng.below(3) {
        0 => ReadMode::Log,
        1 => ReadMode::ReadIndex,
        _ => ReadMode::Lease,
    };
    let config = RaftConfig {
        pre_vote: rng.chance(0.7),
        check_quorum: rng.chance(0.7),
        read_mode,
        lease_drift_bound_ppm: SOAK_MAX_DRIFT_PPM as u32,
        max_batch: [1, 4, 64][rng.below(3) as usize % 3],
        snapshot_entries: [0, 3, 10, 50, 1_000][rng.below(5) as usize % 5],
        ..RaftConfig::default()
    };
    let mut report = SeedReport {
        seed,
        nodes,
        pre_vote: config.pre_vote,
        check_quorum: config.check_quorum,
        read_mode,
        faults: 0,
        events: 0,
        commands: 0,
        completed: 0,
        crashes: 0,
        torn_writes: 0,
        max_term: 0,
        recovery: None,
        failure: None,
    };
    let repair = Time::from_millis(opts.fault_ms);
    let sim_config = SimConfig {
        seed,
        nodes,
        // Three workload clients and one administrator.
        clients: 4,
        record_trace: false,
        ..SimConfig::default()
    };
    let params = match config.params(nodes) {
        Ok(p) => p,
        Err(e) => {
            report.failure = Some(SoakFailure::Liveness {
                detail: format!("bad configuration: {e}"),
            });
            return report;
        }
    };
    let election_max = params.election_max;
    let workload = Workload {
        stop_at: repair,
        ..Workload::default()
    };
    let mut h = match Harness::new(sim_config, params, workload, true) {
        Ok(h) => h,
        Err(e) => {
            report.failure = Some(SoakFailure::Liveness {
                detail: format!("cannot build the cluster: {e}"),
            });
            return report;
        }
    };
    let nemesis = NemesisConfig {
        intensity: crate::bounded::Probability::saturating(0.3 + 0.7 * rng.next_f64()),
        duration_ms: opts.fault_ms as f64,
        mean_episode_ms: crate::bounded::Millis::of(400),
        max_drift_ppm: SOAK_MAX_DRIFT_PPM,
        max_skew_ms: 200.0,
        ..NemesisConfig::default()
    };
    let mut script = nemesis.generate(nodes, &mut rng).unwrap_or_default();
    if read_mode == ReadMode::Lease {
        // A clock step breaks a lease whatever its bound; drift within it does not.
        script
            .faults
            .retain(|f| !matches!(f.fault, Fault::ClockSkew { .. }));
    }
    // More crashes part-way through an event than the nemesis makes, at every effect
    // position a Raft event has (timer, disk append, fsync, sends, replies): these are
    // what catch a message sent before the write it depends on is durable.
    for _ in 0..rng.below(6) {
        let node = rng.below(nodes as u64) as u32;
        let at = rng.below(repair.0);
        let back = (at + 20_000 + rng.below(300_000)).min(repair.0);
        let effects = rng.below(8) as u32;
        script.faults.push(ScheduledFault {
            at_us: at,
            fault: Fault::CrashMidEvent { node, effects },
        });
        script.faults.push(ScheduledFault {
            at_us: back,
            fault: Fault::Restart { node },
        });
    }
    script.faults.sort_by_key(|f| f.at_us);
    report.faults = script.faults.len();
    let admin = admin_script(nodes, repair, &mut rng);
    if let Err(e) = h.sim_mut().load_script(&script) {
        report.failure = Some(SoakFailure::Liveness {
            detail: format!("bad script: {e}"),
        });
        return report;
    }

    let max_events = opts.max_events;
    for (at, request) in admin {
        h.run_until_or(at, |h| h.sim().steps() > max_events);
        let target = h.leader().unwrap_or(0);
        let _ = h.admin(target, request);
    }
    h.run_until_or(repair, |h| h.sim().steps() > max_events);
    // A crash scheduled part-way through an event fires at the node's next event, which
    // may come after the repair: restart whatever is still down, as an operator would.
    let bound = repair + Duration(election_max.0.saturating_mul(opts.liveness_timeouts));
    let done =
        |h: &Harness| h.sim().steps() > max_events || (h.leader_serving() && h.pending() == 0);
    let mut live = false;
    let mut t = repair;
    while !live && t < bound && h.violation().is_none() {
        for id in 0..h.sim().node_count() {
            if h.sim().status(id) == Some(NodeStatus::Crashed) {
                let _ = h.sim_mut().apply_fault(&Fault::Restart { node: id });
            }
        }
        // Bring back any node an administrator removed and whose re-adding failed.
        if let Some(l) = h.leader() {
            let missing: Vec<u32> = h.sim().node(l).map_or(Vec::new(), |n| {
                (0..nodes)
                    .filter(|id| !n.membership().contains(*id))
                    .collect()
            });
            for node in missing {
                let _ = h.admin(l, RaftRequest::AddNode { node });
            }
        }
        t = (t + Duration::from_millis(100)).min(bound);
        live = h.run_until_or(t, done);
    }
    report.events = h.sim().steps();
    report.commands = h.ops().len();
    report.completed = h.completed();
    for id in 0..h.sim().node_count() {
        if let Some(d) = h.sim().disk(id) {
            report.crashes += d.stats().crashes;
            report.torn_writes += d.stats().torn_writes;
        }
        if let Some(n) = h.sim().node(id) {
            report.max_term = report.max_term.max(n.term());
        }
    }
    if let Some(v) = h.violation() {
        report.failure = Some(SoakFailure::Invariant {
            violation: v.clone(),
        });
        return report;
    }
    if h.sim().steps() > max_events {
        report.failure = Some(SoakFailure::EventBudget { events: max_events });
        return report;
    }
    if !live {
        let states: Vec<String> = (0..h.sim().node_count())
            .map(|id| match (h.sim().status(id), h.sim().node(id)) {
                (Some(NodeStatus::Up), Some(n)) => format!(
                    "n{id} {} t{} last {} (t{}) commit {} voters {:?} learners {:?}",
                    n.raft_role().name(),
                    n.term(),
                    n.log().last_index(),
                    n.log().last_term(),
                    n.commit_index(),
                    n.membership().voters,
                    n.membership().learners,
                ),
                (status, _) => format!("n{id} {status:?}"),
            })
            .collect();
        report.failure = Some(SoakFailure::Liveness {
            detail: format!(
                "{} commands pending {} after the repair; {}",
                h.pending(),
                h.sim().now().saturating_since(repair),
                states.join(", ")
            ),
        });
        return report;
    }
    report.recovery = Some(h.sim().now().saturating_since(repair));
    let leader_kv = h.leader().and_then(|l| h.sim().node(l)).map(|n| n.kv());
    if let Some(kv) = leader_kv
        && let Err(detail) = check_executed_once(h.ops(), kv, read_mode)
    {
        report.failure = Some(SoakFailure::ExactlyOnce { detail });
        return report;
    }
    if opts.check_linearizability {
        let ops = history(h.ops());
        match check(&KvModel, &ops) {
            Ok(r) if r.linearizable => {}
            Ok(r) => {
                let parts: Vec<String> =
                    r.violations().map(|p| format!("{:?}", p.outcome)).collect();
                report.failure = Some(SoakFailure::NotLinearizable {
                    detail: parts.join("; "),
                });
            }
            Err(e) => {
                report.failure = Some(SoakFailure::NotLinearizable {
                    detail: format!("the checker refused the history: {e}"),
                });
            }
        }
    }
    report
}

/// Checks that a state machine that has applied every answered command executed each
/// logical operation of `ops` at most once — and each answered one at least once: per
/// session, the commands it executed (see
/// [`Session::executed`](super::state_machine::Session::executed)) must lie between the
/// session's answered commands that go through the log and all of them (reads do not, in
/// ReadIndex and lease mode). An answered command was executed, so with every command
/// answered, as after the soak's final repair, equality means none ran twice; a shortfall
/// means a session's record was lost.
pub fn check_executed_once(
    ops: &[LogicalOp],
    kv: &KvStore,
    read_mode: ReadMode,
) -> std::result::Result<(), String> {
    // Session → (answered, all) commands through the log.
    let mut expected: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for op in ops {
        if read_mode == ReadMode::Log || !op.op.is_read() {
            let e = expected.entry(op.session).or_default();
            e.0 += u64::from(op.result.is_some());
            e.1 += 1;
        }
    }
    for session in kv.sessions().keys() {
        expected.entry(*session).or_default();
    }
    for (session, (answered, all)) in expected {
        let executed = kv.sessions().get(&session).map_or(0, |s| s.executed);
        if executed > all {
            return Err(format!(
                "session {session} has {all} commands through the log, but the state machine \
                 executed {executed}: a command took effect twice"
            ));
        }
        if executed < answered {
            return Err(format!(
                "session {session} had {answered} commands answered through the log, but the \
                 state machine executed only {executed}: one never took effect, or the \
                 session's record was lost"
            ));
        }
    }
    Ok(())
}

/// Administrative requests during the fault window: a node removed and added back a
/// little later, leadership transfers, snapshots on demand.
fn admin_script(nodes: u32, repair: Time, rng: &mut SimRng) -> Vec<(Time, RaftRequest)> {
    let mut out = Vec::new();
    for _ in 0..rng.below(4) {
        let node = rng.below(nodes as u64) as u32;
        let at = Time(rng.below(repair.0));
        match rng.below(4) {
            0 | 1 if nodes > 1 => {
                let back = Time((at.0 + 50_000 + rng.below(600_000)).min(repair.0));
                out.push((at, RaftRequest::RemoveNode { node }));
                out.push((back, RaftRequest::AddNode { node }));
            }
            2 => out.push((at, RaftRequest::TransferLeadership { to: node })),
            _ => out.push((at, RaftRequest::Snapshot)),
        }
    }
    out.sort_by_key(|(t, _)| *t);
    out
}

/// The clients' logical operations as a history for [`KvModel`], which reads an absent
/// key as the empty string (the workload never writes an empty value, so the two are
/// the same thing): a delete is a put of "", a compare-and-swap expecting absence
/// expects "". An unanswered operation has no return and an unknown output.
pub fn history(ops: &[LogicalOp]) -> Vec<Operation<KvInput, KvOutput>> {
    ops.iter()
        .map(|op| {
            let input = match &op.op {
                KvOp::Get { key } => KvInput::Get { key: key.clone() },
                KvOp::Put { key, value } => KvInput::Put {
                    key: key.clone(),
                    value: value.clone(),
                },
                KvOp::Delete { key } => KvInput::Put {
                    key: key.clone(),
                    value: String::new(),
                },
                KvOp::Cas { key, expected, new } => KvInput::Cas {
                    key: key.clone(),
                    expected: expected.clone().unwrap_or_default(),
                    new: new.clone(),
                },
            };
            let (output, ret) = match &op.result {
                None => (Response::Unknown, None),
                Some((r, at)) => (
                    match r {
                        KvResponse::Value { value } => Response::Value {
                            value: value.clone().unwrap_or_default(),
                        },
                        KvResponse::Ok => Response::Ok,
                        KvResponse::CasFailed { .. } => Response::Failed,
                    },
                    Some(at.0),
                ),
            };
            Operation {
                client: op.client as u64,
                input,
                call: op.invoked.0,
                output,
                ret,
            }
        })
        .collect()
}

impl Soak for SoakOptions {
    const ID: &'static str = "raft";
    type Summary = SoakSummary;

    fn run_seed(&self, seed: u64) -> SeedReport {
        run_seed(seed, self)
    }

    fn fault_ms(&self) -> u64 {
        self.fault_ms
    }

    fn set_fault_ms(&mut self, ms: u64) {
        self.fault_ms = ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::soak::SoakTotals;

    #[test]
    fn a_seed_is_deterministic_and_passes() {
        let opts = SoakOptions {
            fault_ms: 1_000,
            ..SoakOptions::default()
        };
        let a = run_seed(3, &opts);
        let b = run_seed(3, &opts);
        assert_eq!(a, b);
        assert!(a.failure.is_none(), "{:?}", a.failure);
        assert!(a.completed > 10 && a.events > 500, "{a:?}");
        let mut s = SoakSummary::default();
        s.add(&a);
        let mut t = SoakSummary::default();
        t.merge(&s);
        t.merge(&s);
        assert_eq!((t.seeds, t.events), (2, 2 * a.events));
    }

    /// A put applied twice — client 1's retry taking effect again after client 2's write
    /// — leaves a history the checker accepts (the retry's interval spans the other
    /// write), and the state machine's count shows it.
    #[test]
    fn a_put_applied_twice_passes_the_history_check_but_not_the_count() {
        use crate::consensus::raft::state_machine::{KvCommand, Session};
        let put = |value: &str| KvOp::Put {
            key: "k".into(),
            value: value.into(),
        };
        let logical =
            |client: u32, op: KvOp, result: Option<KvResponse>, t: (u64, u64)| LogicalOp {
                client,
                session: 10 + client as u64,
                seq: 1,
                op,
                invoked: Time(t.0),
                result: result.map(|r| (r, Time(t.1))),
                attempts: 2,
            };
        let ops = vec![
            // Client 1's put, retried, spans everything else.
            logical(1, put("a"), Some(KvResponse::Ok), (0, 100)),
            logical(2, put("b"), Some(KvResponse::Ok), (10, 20)),
            logical(
                3,
                KvOp::Get { key: "k".into() },
                Some(KvResponse::Value {
                    value: Some("a".into()),
                }),
                (90, 95),
            ),
        ];
        // What the replicas executed: a, b, then a again (a broken session check), and
        // the get through the log.
        let mut kv = KvStore::new();
        let cmd = |session: u64, op: KvOp| KvCommand {
            session,
            seq: 1,
            op,
        };
        kv.apply(&cmd(11, put("a")));
        kv.apply(&cmd(12, put("b")));
        let mut sessions = kv.sessions().clone();
        let mut twice = KvStore::from_parts(kv.data().clone(), BTreeMap::new());
        twice.apply(&cmd(11, put("a")));
        twice.apply(&cmd(13, KvOp::Get { key: "k".into() }));
        assert_eq!(twice.get("k").map(String::as_str), Some("a"));
        // The history is linearizable: a's retry may take effect after b.
        assert!(check(&KvModel, &history(&ops)).unwrap().linearizable);
        // The count: session 11 executed twice, had one command.
        sessions.insert(
            11,
            Session {
                executed: 2,
                ..sessions[&11].clone()
            },
        );
        sessions.insert(13, twice.sessions()[&13].clone());
        let doubled = KvStore::from_parts(twice.data().clone(), sessions.clone());
        let e = check_executed_once(&ops, &doubled, ReadMode::Log).unwrap_err();
        assert!(e.contains("session 11") && e.contains("twice"), "{e}");
        // The record lost instead (a restore without sessions): a shortfall.
        let e = check_executed_once(&ops, &twice, ReadMode::Log).unwrap_err();
        assert!(e.contains("session 12") && e.contains("only 0"), "{e}");
        // Executed once each: fine; and a read that never went through the log (ReadIndex)
        // is not expected in the count.
        kv.apply(&cmd(13, KvOp::Get { key: "k".into() }));
        check_executed_once(&ops, &kv, ReadMode::Log).unwrap();
        let e = check_executed_once(&ops, &kv, ReadMode::ReadIndex).unwrap_err();
        assert!(e.contains("session 13"), "{e}");
    }

    #[test]
    fn a_lost_write_makes_the_history_not_linearizable() {
        let op = |seq: u64, op: KvOp, result: KvResponse, t: u64| LogicalOp {
            client: 0,
            session: 1,
            seq,
            op,
            invoked: Time(t),
            result: Some((result, Time(t + 1))),
            attempts: 1,
        };
        let ops = vec![
            op(
                1,
                KvOp::Put {
                    key: "k".into(),
                    value: "v1".into(),
                },
                KvResponse::Ok,
                0,
            ),
            op(
                2,
                KvOp::Get { key: "k".into() },
                KvResponse::Value { value: None },
                10,
            ),
        ];
        let r = check(&KvModel, &history(&ops)).unwrap();
        assert!(!r.linearizable);
        let r = check(&KvModel, &history(&ops[..1])).unwrap();
        assert!(r.linearizable);
    }
}
