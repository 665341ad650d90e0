//! Lab `consensus.2pc`: a coordinator and its participants running two-phase commit on
//! the simulator, a client asking for transactions on a few keys. Each node shows what it
//! knows (the coordinator's epoch, votes and decisions; a participant's locks, uncertain
//! transactions and store), a table shows every recent transaction at every node, and the
//! atomicity invariant (TCommit's TCConsistent) is checked after every event. The action
//! "crash the coordinator after prepare" waits for the moment every participant has
//! voted yes and crashes the coordinator then: the participants block, locks held, and
//! the blocking panel counts how long.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

use crate::bounded::{Count, Millis, Probability};
use crate::consensus::twopc::harness::{Harness, Workload};
use crate::consensus::twopc::node::{COORDINATOR, TwoPcNode, TwoPcParams, TxId, TxState};
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
    /// Configuration of the two-phase commit lab.
    pub struct TwoPcLabConfig {
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
        /// An uncertain participant asks for the decision after this much silence.
        pub decision_timeout_ms: Millis<1, 60_000> = Millis::of(200),
        /// Uncertain participants ask each other too (Bernstein et al. 1987, §7.4).
        pub cooperative_termination: bool = true,
    }
}

/// The lab's own actions, besides every fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum TwoPcLabAction {
    /// The client asks for a transaction writing `key` now.
    Begin { key: String },
    /// Crash the coordinator as soon as every participant has voted yes on a transaction
    /// it has not decided yet: the schedule that blocks them.
    CrashCoordinatorAfterPrepare {},
}

/// The two-phase commit lab.
#[derive(Debug, Clone)]
pub struct TwoPcLab {
    h: Harness,
    crash_after_prepare: bool,
}

impl TwoPcLab {
    pub fn harness(&self) -> &Harness {
        &self.h
    }

    /// A transaction the coordinator is voting on and every participant has prepared.
    fn all_prepared(&self) -> Option<TxId> {
        let sim = self.h.sim();
        let coordinator = sim.node(COORDINATOR)?;
        coordinator.active().keys().copied().find(|tx| {
            (1..sim.node_count()).all(|p| {
                sim.node(p)
                    .and_then(|n| n.txs().get(tx))
                    .is_some_and(|t| t.state == TxState::Prepared)
            })
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
                txs.extend(n.uncertain());
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
                        (None, Some(a)) => format!("voting ({} yes)", a.yes.len()),
                        (None, None) => "—".into(),
                    },
                };
                let mut row = vec![json!(format!("{tx:#x}")), json!(coordinator)];
                row.extend((1..sim.node_count()).map(|p| {
                    json!(match sim.node(p) {
                        None => "down",
                        Some(n) => match n.txs().get(tx).map(|t| t.state) {
                            Some(TxState::Prepared) => "prepared (locked)",
                            Some(TxState::Committed) => "committed",
                            Some(TxState::Aborted) => "aborted",
                            None => "—",
                        },
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

    fn blocking_text(&self) -> Panel {
        let now = self.h.blocking().map(|b| {
            format!(
                "BLOCKED now: the coordinator is down and participants {:?} are uncertain about \
                 tx {:#x}, its lock held, for {:.0} ms so far; only the coordinator's recovery \
                 ends it.",
                b.holders,
                b.tx,
                b.lasted.as_millis_f64()
            )
        });
        let longest = self.h.longest_blocking().map(|b| {
            format!(
                "Longest blocking: tx {:#x} at {:?}, {:.0} ms from t = {:.0} ms.",
                b.tx,
                b.holders,
                b.lasted.as_millis_f64(),
                b.since.as_millis_f64()
            )
        });
        let hint = self.h.longest_blocking().is_none().then(|| {
            "Not blocked so far: crash the coordinator after prepare to see it.".to_string()
        });
        Panel::Text {
            title: "blocking".into(),
            body: [now, longest, hint]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

/// Running totals: transactions with an outcome, and committed ones.
impl Sampled for TwoPcLab {
    type Totals = (usize, usize);

    fn series(&self) -> Vec<(String, String)> {
        [
            ("committed", "per interval"),
            ("aborted", "per interval"),
            ("locks held", "locks"),
        ]
        .map(|(n, u)| (n.into(), u.into()))
        .to_vec()
    }

    fn totals(&self) -> (usize, usize) {
        self.h.checker().counts()
    }

    fn sample(&self, _at: Time, _interval: Duration, since: &(usize, usize)) -> Vec<f64> {
        let (all, committed) = self.totals();
        let locks: usize = (1..self.h.sim().node_count())
            .filter_map(|p| self.h.sim().node(p))
            .map(|n| n.locks().len())
            .sum();
        vec![
            committed.saturating_sub(since.1) as f64,
            (all - committed).saturating_sub(since.0 - since.1) as f64,
            locks as f64,
        ]
    }
}

impl ClusterLab for TwoPcLab {
    const ID: &'static str = "consensus.2pc";
    type Node = TwoPcNode;
    type Config = TwoPcLabConfig;
    type Action = TwoPcLabAction;
    const TRACE_TAIL: usize = KEPT_EVENTS;

    fn new(c: &TwoPcLabConfig) -> Result<Self> {
        let params = TwoPcParams {
            tick: Duration::from_millis(50),
            vote_timeout: c.vote_timeout_ms.duration(),
            decision_timeout: c.decision_timeout_ms.duration(),
            vote_no_ppm: (c.vote_no_probability.get() * 1e6) as u32,
            cooperative_termination: c.cooperative_termination,
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
        Ok(TwoPcLab {
            h,
            crash_after_prepare: false,
        })
    }

    fn sim(&self) -> &Sim<TwoPcNode> {
        self.h.sim()
    }

    fn sim_mut(&mut self) -> &mut Sim<TwoPcNode> {
        self.h.sim_mut()
    }

    fn step(&mut self, until: Time) -> bool {
        self.h.step(until)
    }

    fn observe(&mut self) {
        if self.crash_after_prepare && self.all_prepared().is_some() {
            self.crash_after_prepare = false;
            let _ = self
                .h
                .sim_mut()
                .apply_fault(&Fault::Crash { node: COORDINATOR });
        }
        self.h.observe();
    }

    fn act(&mut self, action: &TwoPcLabAction) -> Result<()> {
        match action {
            TwoPcLabAction::Begin { key } => {
                if key.is_empty() || key.len() > 64 {
                    return Err(DistlabError::field(
                        "key",
                        "must be 1 to 64 characters long",
                    ));
                }
                self.h.begin(key.clone())
            }
            TwoPcLabAction::CrashCoordinatorAfterPrepare {} => {
                self.crash_after_prepare = true;
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
            let voting: BTreeMap<String, usize> = n
                .active()
                .iter()
                .map(|(tx, a)| (format!("{tx:#x}"), a.yes.len()))
                .collect();
            fields.insert("votingOn (yes votes)".into(), json!(voting));
            let commits = n.decisions().values().filter(|c| **c).count();
            fields.insert("commitDecisions".into(), json!(commits));
            fields.insert(
                "abortDecisions".into(),
                json!(n.decisions().len() - commits),
            );
            fields.insert("unacknowledged".into(), json!(n.unacked().len()));
            fields.insert(
                "armedCrashAfterPrepare".into(),
                json!(self.crash_after_prepare),
            );
        } else {
            let locks: BTreeMap<&String, String> = n
                .locks()
                .iter()
                .map(|(k, tx)| (k, format!("{tx:#x}")))
                .collect();
            fields.insert("locks".into(), json!(locks));
            let uncertain: Vec<String> = n.uncertain().map(|tx| format!("{tx:#x}")).collect();
            fields.insert("uncertain".into(), json!(uncertain));
            let committed = n
                .txs()
                .values()
                .filter(|t| t.state == TxState::Committed)
                .count();
            fields.insert("committed".into(), json!(committed));
            fields.insert(
                "aborted".into(),
                json!(
                    n.txs()
                        .values()
                        .filter(|t| t.state == TxState::Aborted)
                        .count()
                ),
            );
            fields.insert("store".into(), json!(n.data()));
            // How long this participant has been blocked so far (0 when it is not): a
            // number, so a lesson can pause once the blocking has lasted a while.
            let blocked_ms = self
                .h
                .blocking()
                .filter(|b| b.holders.contains(&id))
                .map_or(0.0, |b| b.lasted.as_millis_f64());
            fields.insert("blockedMs".into(), json!(blocked_ms));
        }
    }

    fn glance(&self, id: NodeId) -> Option<NodeGlance> {
        let n = self.h.sim().node(id)?;
        let badge = if n.is_coordinator() {
            (!n.active().is_empty()).then(|| format!("voting {}", n.active().len()))
        } else {
            (!n.locks().is_empty()).then(|| format!("{} locked", n.locks().len()))
        };
        Some(NodeGlance {
            node: id,
            badge,
            rings: Vec::new(),
        })
    }

    fn panels(&self) -> Vec<Panel> {
        vec![self.transactions_table(), self.blocking_text()]
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
        crate::consensus::twopc::lessons::lessons()
    }

    fn example_actions() -> Vec<ClusterAction<TwoPcLabAction>> {
        let mut v = vec![
            ClusterAction::Lab(TwoPcLabAction::Begin { key: "k0".into() }),
            ClusterAction::Lab(TwoPcLabAction::CrashCoordinatorAfterPrepare {}),
        ];
        v.extend(Fault::examples().into_iter().map(ClusterAction::Fault));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Cluster, Lab, Runner};

    fn lab(config: Value) -> Runner<Cluster<TwoPcLab>> {
        Runner::from_json(&config).unwrap()
    }

    #[test]
    fn transactions_commit_and_the_invariant_holds() {
        let mut l = lab(json!({"voteNoProbability": 0.0, "keys": 64}));
        l.step(Duration::from_secs(3)).unwrap();
        let v = l.view();
        assert!(v.invariants[0].ok, "{:?}", v.invariants);
        let (all, committed) = l.model().harness().checker().counts();
        assert!(committed > 5 && all >= committed, "{all} {committed}");
        assert!(v.metrics.iter().any(|s| s.name == "committed"));
    }

    #[test]
    fn crashing_the_coordinator_after_prepare_blocks_the_participants() {
        let mut l = lab(json!({"voteNoProbability": 0.0, "txIntervalMs": 100}));
        l.step(Duration::from_millis(300)).unwrap();
        l.act(&json!({"type": "crashCoordinatorAfterPrepare"}))
            .unwrap();
        l.step(Duration::from_secs(2)).unwrap();
        let h = l.model().harness();
        assert!(h.sim().node(COORDINATOR).is_none(), "crashed");
        let b = h.blocking().expect("blocked");
        assert_eq!(b.holders.len(), 3);
        assert!(b.lasted >= Duration::from_millis(1_000), "{b:?}");
        let text = serde_json::to_string(&l.view().panels).unwrap();
        assert!(text.contains("BLOCKED now"), "{text}");
        let blocked_ms = |l: &Runner<Cluster<TwoPcLab>>, p: u32| {
            l.view().nodes[p as usize].fields["blockedMs"]
                .as_f64()
                .unwrap()
        };
        assert!(blocked_ms(&l, 1) >= 1_000.0, "{}", blocked_ms(&l, 1));
        l.act(&json!({"type": "restart", "node": 0})).unwrap();
        l.step(Duration::from_secs(2)).unwrap();
        assert!(l.model().harness().blocking().is_none());
        assert_eq!(blocked_ms(&l, 1), 0.0);
        assert!(l.view().invariants[0].ok);
    }

    #[test]
    fn bad_configs_and_actions_name_the_field() {
        for (config, field) in [
            (json!({"participants": 0}), "config.participants"),
            (json!({"voteNoProbability": 2}), "config.voteNoProbability"),
            (json!({"txIntervalMs": 0}), "config.txIntervalMs"),
        ] {
            let e = Runner::<Cluster<TwoPcLab>>::from_json(&config)
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains(&format!("`{field}")), "{config}: {e}");
        }
        let mut l = lab(Value::Null);
        let e = l
            .act(&json!({"type": "begin", "key": ""}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("key"), "{e}");
    }
}
