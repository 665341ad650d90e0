//! Lab `consensus.3pc`: a coordinator and its participants running three-phase commit on
//! the simulator, a client asking for transactions on a few keys. Each node shows what it
//! knows (the coordinator's epoch, votes, PreCommit acknowledgements and decisions; a
//! participant's locks, uncertain and pre-committed transactions, the termination rounds
//! it runs as backup coordinator, and its store); a table shows every recent transaction
//! at every node, and the atomicity invariant (TCommit's TCConsistent) is checked after
//! every event.
//!
//! Two armed actions stage the famous schedules. "Crash the coordinator before
//! PreCommit" waits until every participant has voted yes and crashes the coordinator
//! before it pre-commits anyone: where two-phase commit blocks, the participants elect a
//! backup, find everyone uncertain and abort. "Partition after a PreCommit" waits until
//! the PreCommit has reached some participants but not all, then cuts the coordinator and
//! the pre-committed ones off from the uncertain ones: the coordinator commits, the other
//! side's backup aborts, and the invariant turns red. Its tests are in the suite
//! (tests/tests/threepc_lab.rs).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

use crate::bounded::{Count, Millis, Probability};
use crate::consensus::threepc::harness::{Harness, Workload};
use crate::consensus::threepc::node::{COORDINATOR, Phase, ThreePcNode, ThreePcParams, TxId};
use crate::error::{DistlabError, Result};
use crate::lab::cluster::{ClusterAction, ClusterLab};
use crate::lab::sampling::Sampled;
use crate::lab::settings::{ClusterSettings, cluster_lab_config};
use crate::lab::view::{InvariantStatus, NodeGlance, Panel};
use crate::sim::{Fault, NodeId, Sim, SimConfig};
use crate::time::{Duration, Time};

/// The most participants the lab takes.
pub const MAX_PARTICIPANTS: u32 = 9;
/// Transactions listed in the table.
const TX_ROWS: usize = 12;
/// Trace events kept.
const KEPT_EVENTS: usize = 5_000;

cluster_lab_config! {
    /// Configuration of the three-phase commit lab.
    pub struct ThreePcLabConfig {
        /// Participants besides the coordinator (node 0).
        pub participants: Count<1, { MAX_PARTICIPANTS }> = Count::of(3),
        /// Mean time between two transactions the client asks for.
        pub tx_interval_ms: Millis<1, 60_000> = Millis::of(250),
        /// Keys the transactions write (fewer keys, more lock conflicts).
        pub keys: Count<1, 64> = Count::of(3),
        /// Chance that a participant refuses a transaction it could commit.
        pub vote_no_probability: Probability = Probability::of(0.05),
        /// The coordinator aborts a transaction whose votes are not all in by then.
        pub vote_timeout_ms: Millis<1, 60_000> = Millis::of(300),
        /// The coordinator commits this long after PreCommit even if an ack is missing.
        pub ack_timeout_ms: Millis<1, 60_000> = Millis::of(300),
        /// An undecided participant runs the termination protocol after this much silence
        /// (plus a stagger by its rank).
        pub decision_timeout_ms: Millis<1, 60_000> = Millis::of(1_000),
    }
}

/// The lab's own actions, besides every fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum ThreePcLabAction {
    /// The client asks for a transaction writing `key` now.
    Begin { key: String },
    /// Crash the coordinator as soon as every participant has voted yes on a transaction
    /// it has not pre-committed: the participants abort without it.
    CrashCoordinatorBeforePreCommit {},
    /// As soon as a PreCommit has reached some participants but not all, partition the
    /// coordinator and the pre-committed participants from the uncertain ones: the two
    /// sides decide differently.
    PartitionAfterPreCommit {},
}

/// The three-phase commit lab.
#[derive(Debug, Clone)]
pub struct ThreePcLab {
    h: Harness,
    crash_before_precommit: bool,
    partition_after_precommit: bool,
}

impl ThreePcLab {
    pub fn harness(&self) -> &Harness {
        &self.h
    }

    fn phase(&self, p: NodeId, tx: TxId) -> Option<Phase> {
        self.h.sim().node(p)?.txs().get(&tx).map(|t| t.phase)
    }

    /// A transaction the coordinator is collecting votes for and every participant has
    /// voted yes on.
    fn all_voted(&self) -> Option<TxId> {
        let sim = self.h.sim();
        let coordinator = sim.node(COORDINATOR)?;
        coordinator
            .active()
            .iter()
            .filter(|(_, a)| a.precommit.is_none())
            .map(|(tx, _)| *tx)
            .find(|tx| (1..sim.node_count()).all(|p| self.phase(p, *tx) == Some(Phase::Uncertain)))
    }

    /// A transaction some participants are pre-committed on and others still uncertain
    /// about: the pre-committed ones.
    fn partly_precommitted(&self) -> Option<Vec<NodeId>> {
        let sim = self.h.sim();
        let coordinator = sim.node(COORDINATOR)?;
        coordinator
            .active()
            .iter()
            .filter(|(_, a)| a.precommit.is_some())
            .find_map(|(tx, _)| {
                let ahead: Vec<NodeId> = (1..sim.node_count())
                    .filter(|p| self.phase(*p, *tx) == Some(Phase::PreCommitted))
                    .collect();
                let behind =
                    (1..sim.node_count()).any(|p| self.phase(p, *tx) == Some(Phase::Uncertain));
                (!ahead.is_empty() && behind).then_some(ahead)
            })
    }

    fn transactions_table(&self) -> Panel {
        let sim = self.h.sim();
        let mut txs: BTreeSet<TxId> = self.h.checker().outcomes().keys().copied().collect();
        if let Some(c) = sim.node(COORDINATOR) {
            txs.extend(c.active().keys());
        }
        for p in 1..sim.node_count() {
            if let Some(n) = sim.node(p) {
                txs.extend(n.undecided().map(|(tx, _)| tx));
            }
        }
        let mut columns = vec!["tx".to_string(), "coordinator".to_string()];
        columns.extend((1..sim.node_count()).map(|p| format!("n{p}")));
        let rows = txs
            .iter()
            .rev()
            .take(TX_ROWS)
            .map(|tx| {
                let coordinator = match sim.node(COORDINATOR) {
                    None => "down".to_string(),
                    Some(c) => match (c.decisions().get(tx), c.active().get(tx)) {
                        (Some(true), _) => "commit".into(),
                        (Some(false), _) => "abort".into(),
                        (None, Some(a)) => match &a.precommit {
                            None => format!("voting ({} yes)", a.yes.len()),
                            Some((_, acks)) => format!("pre-commit ({} acks)", acks.len()),
                        },
                        (None, None) => "—".into(),
                    },
                };
                let mut row = vec![json!(format!("{tx:#x}")), json!(coordinator)];
                row.extend((1..sim.node_count()).map(|p| {
                    json!(match sim.node(p) {
                        None => "down",
                        Some(n) => {
                            let backup = n.terminating().contains_key(tx);
                            match (n.txs().get(tx).map(|t| t.phase), backup) {
                                (Some(Phase::Uncertain), false) => "uncertain (locked)",
                                (Some(Phase::Uncertain), true) => "uncertain, backup",
                                (Some(Phase::PreCommitted), false) => "pre-committed",
                                (Some(Phase::PreCommitted), true) => "pre-committed, backup",
                                (Some(Phase::Committed), _) => "committed",
                                (Some(Phase::Aborted), _) => "aborted",
                                (None, _) => "—",
                            }
                        }
                    })
                }));
                row
            })
            .collect();
        Panel::Table {
            title: "transactions, newest first".into(),
            columns,
            rows,
        }
    }

    fn termination_text(&self) -> Panel {
        let sim = self.h.sim();
        let backups: Vec<String> = (1..sim.node_count())
            .filter_map(|p| sim.node(p).map(|n| (p, n)))
            .flat_map(|(p, n)| {
                n.terminating().iter().map(move |(tx, t)| {
                    format!(
                        "n{p} is backup coordinator for tx {tx:#x}: {} reports{}",
                        t.reports.len(),
                        if t.precommitting.is_some() {
                            ", pre-committing the uncertain ones"
                        } else {
                            ", polling"
                        }
                    )
                })
            })
            .collect();
        let longest = self.h.longest_undecided().map(|u| {
            format!(
                "Longest a live participant stayed undecided: n{} on tx {:#x}, {:.0} ms from \
                 t = {:.0} ms.",
                u.node,
                u.tx,
                u.lasted.as_millis_f64(),
                u.since.as_millis_f64()
            )
        });
        let split = self.h.violation().map(|v| {
            format!(
                "SPLIT: tx {:#x} committed at {:?} and aborted at {:?} — each side of the \
                 partition ran the termination protocol on what it could see.",
                v.tx, v.committed, v.aborted
            )
        });
        Panel::Text {
            title: "termination".into(),
            body: backups
                .into_iter()
                .chain(longest)
                .chain(split)
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

/// Running totals: transactions with an outcome, and committed ones.
impl Sampled for ThreePcLab {
    type Totals = (usize, usize);

    fn series(&self) -> Vec<(String, String)> {
        [
            ("committed", "per interval"),
            ("aborted", "per interval"),
            ("undecided participants", "transactions"),
        ]
        .map(|(n, u)| (n.into(), u.into()))
        .to_vec()
    }

    fn totals(&self) -> (usize, usize) {
        self.h.checker().counts()
    }

    fn sample(&self, _at: Time, _interval: Duration, since: &(usize, usize)) -> Vec<f64> {
        let (all, committed) = self.totals();
        let undecided: usize = (1..self.h.sim().node_count())
            .filter_map(|p| self.h.sim().node(p))
            .map(|n| n.undecided().count())
            .sum();
        vec![
            committed.saturating_sub(since.1) as f64,
            (all - committed).saturating_sub(since.0 - since.1) as f64,
            undecided as f64,
        ]
    }
}

impl ClusterLab for ThreePcLab {
    const ID: &'static str = "consensus.3pc";
    type Node = ThreePcNode;
    type Config = ThreePcLabConfig;
    type Action = ThreePcLabAction;
    const TRACE_TAIL: usize = KEPT_EVENTS;

    fn new(c: &ThreePcLabConfig) -> Result<Self> {
        let params = ThreePcParams {
            vote_timeout: c.vote_timeout_ms.duration(),
            ack_timeout: c.ack_timeout_ms.duration(),
            decision_timeout: c.decision_timeout_ms.duration(),
            vote_no_ppm: (c.vote_no_probability.get() * 1e6) as u32,
            ..ThreePcParams::default()
        };
        let workload = Workload {
            interval: c.tx_interval_ms.duration(),
            keys: c.keys.get(),
            ..Workload::default()
        };
        let mut h = Harness::new(
            SimConfig {
                clients: 1,
                record_trace: true,
                trace_limit: KEPT_EVENTS,
                ..c.sim_config(c.participants.get() + 1)
            },
            params,
            workload,
        )?;
        c.load_faults(h.sim_mut())?;
        Ok(ThreePcLab {
            h,
            crash_before_precommit: false,
            partition_after_precommit: false,
        })
    }

    fn sim(&self) -> &Sim<ThreePcNode> {
        self.h.sim()
    }

    fn sim_mut(&mut self) -> &mut Sim<ThreePcNode> {
        self.h.sim_mut()
    }

    fn step(&mut self, until: Time) -> bool {
        self.h.step(until)
    }

    fn observe(&mut self) {
        if self.crash_before_precommit && self.all_voted().is_some() {
            self.crash_before_precommit = false;
            let _ = self
                .h
                .sim_mut()
                .apply_fault(&Fault::Crash { node: COORDINATOR });
        }
        if self.partition_after_precommit
            && let Some(ahead) = self.partly_precommitted()
        {
            self.partition_after_precommit = false;
            let mut side = vec![COORDINATOR];
            side.extend(ahead);
            let _ = self
                .h
                .sim_mut()
                .apply_fault(&Fault::Partition { groups: vec![side] });
        }
        self.h.observe();
    }

    fn act(&mut self, action: &ThreePcLabAction) -> Result<()> {
        match action {
            ThreePcLabAction::Begin { key } => {
                if key.is_empty() || key.len() > 64 {
                    return Err(DistlabError::field(
                        "key",
                        "must be 1 to 64 characters long",
                    ));
                }
                self.h.begin(key.clone())
            }
            ThreePcLabAction::CrashCoordinatorBeforePreCommit {} => {
                self.crash_before_precommit = true;
                Ok(())
            }
            ThreePcLabAction::PartitionAfterPreCommit {} => {
                if self.h.sim().node_count() < 3 {
                    return Err(DistlabError::field(
                        "type",
                        "a partition between participants needs at least two of them",
                    ));
                }
                self.partition_after_precommit = true;
                Ok(())
            }
        }
    }

    fn node_fields(&self, id: NodeId, fields: &mut BTreeMap<String, Value>) {
        let Some(n) = self.h.sim().node(id) else {
            return;
        };
        if n.is_coordinator() {
            fields.insert("epoch".into(), json!(n.epoch()));
            let working: BTreeMap<String, String> = n
                .active()
                .iter()
                .map(|(tx, a)| {
                    let what = match &a.precommit {
                        None => format!("{} yes votes", a.yes.len()),
                        Some((_, acks)) => format!("pre-commit, {} acks", acks.len()),
                    };
                    (format!("{tx:#x}"), what)
                })
                .collect();
            fields.insert("workingOn".into(), json!(working));
            let commits = n.decisions().values().filter(|c| **c).count();
            fields.insert("commitDecisions".into(), json!(commits));
            fields.insert(
                "abortDecisions".into(),
                json!(n.decisions().len() - commits),
            );
            fields.insert("unacknowledged".into(), json!(n.unacked().len()));
            fields.insert(
                "armedCrashBeforePreCommit".into(),
                json!(self.crash_before_precommit),
            );
            fields.insert(
                "armedPartitionAfterPreCommit".into(),
                json!(self.partition_after_precommit),
            );
        } else {
            let locks: BTreeMap<&String, String> = n
                .locks()
                .iter()
                .map(|(k, tx)| (k, format!("{tx:#x}")))
                .collect();
            fields.insert("locks".into(), json!(locks));
            let of = |phase: Phase| -> Vec<String> {
                n.undecided()
                    .filter(|(_, p)| *p == phase)
                    .map(|(tx, _)| format!("{tx:#x}"))
                    .collect()
            };
            fields.insert("uncertain".into(), json!(of(Phase::Uncertain)));
            fields.insert("preCommitted".into(), json!(of(Phase::PreCommitted)));
            let backup: Vec<String> = n
                .terminating()
                .keys()
                .map(|tx| format!("{tx:#x}"))
                .collect();
            fields.insert("backupCoordinatorFor".into(), json!(backup));
            let count = |phase: Phase| n.txs().values().filter(|t| t.phase == phase).count();
            fields.insert("committed".into(), json!(count(Phase::Committed)));
            fields.insert("aborted".into(), json!(count(Phase::Aborted)));
            fields.insert("store".into(), json!(n.data()));
        }
    }

    fn glance(&self, id: NodeId) -> Option<NodeGlance> {
        let n = self.h.sim().node(id)?;
        let badge = if n.is_coordinator() {
            (!n.active().is_empty()).then(|| format!("working {}", n.active().len()))
        } else if !n.terminating().is_empty() {
            Some("backup".into())
        } else {
            let undecided = n.undecided().count();
            (undecided > 0).then(|| format!("{undecided} undecided"))
        };
        Some(NodeGlance {
            node: id,
            badge,
            rings: Vec::new(),
        })
    }

    fn panels(&self) -> Vec<Panel> {
        vec![self.transactions_table(), self.termination_text()]
    }

    fn invariants(&self) -> Vec<InvariantStatus> {
        const ATOMICITY: &str =
            "atomicity (TCConsistent): no node commits a transaction another aborts";
        vec![match self.h.violation() {
            None => {
                let (all, committed) = self.h.checker().counts();
                InvariantStatus::holds(
                    ATOMICITY,
                    format!("{all} transactions decided, {committed} committed, none split"),
                )
            }
            Some(v) => InvariantStatus::violated(
                ATOMICITY,
                v.to_string(),
                v.committed.union(&v.aborted).copied().collect(),
            ),
        }]
    }

    fn lessons() -> Vec<crate::lab::lesson::Lesson> {
        crate::consensus::threepc::lessons::lessons()
    }

    fn example_actions() -> Vec<ClusterAction<ThreePcLabAction>> {
        let mut v = vec![
            ClusterAction::Lab(ThreePcLabAction::Begin { key: "k0".into() }),
            ClusterAction::Lab(ThreePcLabAction::CrashCoordinatorBeforePreCommit {}),
            ClusterAction::Lab(ThreePcLabAction::PartitionAfterPreCommit {}),
        ];
        v.extend(Fault::examples().into_iter().map(ClusterAction::Fault));
        v
    }
}
