//! Lab `consensus.zab`: Zab (Junqueira, Reed & Serafini, DSN 2011) on the simulator,
//! closed-loop clients writing and reading a few keys through the leader. Each peer shows
//! its role and phase (election, discovery, synchronisation, broadcast), its accepted and
//! current epochs (both on disk), its last zxid, its delivered prefix and the newest
//! transactions of its history; a table lines up the newest zxids across peers;
//! agreement, primary order, primary integrity, integrity and one leader per epoch are
//! checked after every event. Every fault is an action.
//!
//! Things to try: crash the leader and watch the others elect one by (epoch, zxid, id),
//! run discovery to a new epoch and synchronise their histories before proposing in it
//! (zxids restart at counter 1); restart it and watch it rejoin as a follower of the new
//! epoch, cutting any proposal of its old epoch that never reached a quorum; partition
//! the leader from a quorum and watch it step down.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;

use crate::bounded::{Count, Millis};
use crate::consensus::zab::harness::{Harness, Workload};
use crate::consensus::zab::invariants::Invariant;
use crate::consensus::zab::messages::{PeerState, Phase};
use crate::consensus::zab::peer::{ZabParams, ZabPeer};
use crate::consensus::zab::zxid::{Txn, Zxid};
use crate::error::Result;
use crate::lab::cluster::{ClusterAction, ClusterLab};
use crate::lab::sampling::Sampled;
use crate::lab::settings::{ClusterSettings, cluster_lab_config};
use crate::lab::view::{InvariantStatus, NodeGlance, Panel};
use crate::sim::{Fault, NodeId, Sim, SimConfig};
use crate::time::{Duration, Time};

/// Zxids listed in the table and per peer.
const ROWS: usize = 12;
/// Trace events kept.
const KEPT_EVENTS: usize = 5_000;

cluster_lab_config! {
    /// Configuration of the Zab lab.
    pub struct ZabLabConfig {
        /// Peers: 2f + 1 tolerate f down at once.
        pub nodes: Count<3, 9> = Count::of(5),
        /// The leader's heartbeat (`Commit`) period, and every re-send period.
        pub tick_ms: Millis<1, 60_000> = Millis::of(25),
        /// A follower that hears nothing from its leader for a time drawn from
        /// [timeoutMinMs, timeoutMaxMs] goes back to election.
        pub timeout_min_ms: Millis<1, 60_000> = Millis::of(150),
        pub timeout_max_ms: Millis<1, 60_000> = Millis::of(300),
        /// Closed-loop clients, each with its session and request numbers.
        pub clients: Count<1, 16> = Count::of(3),
        pub keys: Count<1, 64> = Count::of(3),
    }
}

/// The lab's own actions, besides every fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum ZabLabAction {
    /// Clients start no new request (the ones under way finish): the ensemble settles.
    StopClients {},
}

/// The Zab lab.
#[derive(Debug, Clone)]
pub struct ZabLab {
    h: Harness,
}

fn txn_text(t: &Txn) -> String {
    format!("c{}#{} {:?}", t.cmd.session, t.cmd.seq, t.cmd.op)
}

fn phase_text(p: Phase) -> &'static str {
    match p {
        Phase::Election => "election",
        Phase::Discovery => "discovery",
        Phase::Synchronisation => "synchronisation",
        Phase::Broadcast => "broadcast",
    }
}

impl ZabLab {
    pub fn harness(&self) -> &Harness {
        &self.h
    }

    fn peers(&self) -> impl Iterator<Item = &ZabPeer> {
        let sim = self.h.sim();
        (0..sim.node_count()).filter_map(move |id| sim.node(id))
    }

    fn epochs(&self) -> u64 {
        self.peers().map(ZabPeer::epochs_led).sum()
    }

    fn zxid_table(&self) -> Panel {
        let sim = self.h.sim();
        let mut zxids: Vec<Zxid> = self
            .peers()
            .flat_map(|p| p.history().iter().rev().take(ROWS).map(|t| t.zxid))
            .collect();
        zxids.sort_unstable_by(|a, b| b.cmp(a));
        zxids.dedup();
        zxids.truncate(ROWS);
        let mut columns = vec!["zxid".to_string()];
        columns.extend((0..sim.node_count()).map(|id| format!("n{id}")));
        let rows = zxids
            .iter()
            .map(|z| {
                let mut row = vec![json!(z.to_string())];
                row.extend((0..sim.node_count()).map(|id| {
                    json!(match sim.node(id) {
                        None => "down".to_string(),
                        Some(p) => match p.history().binary_search_by(|t| t.zxid.cmp(z)) {
                            Err(_) => "—".to_string(),
                            Ok(i) if i < p.committed() => {
                                format!(
                                    "{} ✓",
                                    p.history().get(i).map(txn_text).unwrap_or_default()
                                )
                            }
                            Ok(i) => p.history().get(i).map(txn_text).unwrap_or_default(),
                        },
                    })
                }));
                row
            })
            .collect();
        Panel::Table {
            title: "zxids, newest first (✓ delivered at that peer)".into(),
            columns,
            rows,
        }
    }

    fn model_text(&self) -> Panel {
        let elections: u64 = self.peers().map(ZabPeer::elections).sum();
        Panel::Text {
            title: "phases and epochs".into(),
            body: format!(
                "{elections} elections started, {} epochs established. A new leader runs \
                 discovery (FollowerInfo, NewEpoch e' = max accepted epoch + 1, AckEpoch with \
                 each follower's current epoch and history) and takes the most recent \
                 history of the quorum; synchronisation (NewLeader, AckLd, CommitLd) makes \
                 it the followers' before it proposes anything of its own. Accepted epoch, \
                 current epoch and history are on disk: a restarted peer keeps them.",
                self.epochs()
            ),
        }
    }
}

/// Running totals: requests answered and epochs established.
impl Sampled for ZabLab {
    type Totals = (usize, u64);

    fn series(&self) -> Vec<(String, String)> {
        [
            ("requests answered", "per interval"),
            ("epochs established", "per interval"),
        ]
        .map(|(n, u)| (n.into(), u.into()))
        .to_vec()
    }

    fn totals(&self) -> (usize, u64) {
        (self.h.completed(), self.epochs())
    }

    fn sample(&self, _at: Time, _interval: Duration, since: &(usize, u64)) -> Vec<f64> {
        let (done, epochs) = self.totals();
        vec![
            done.saturating_sub(since.0) as f64,
            epochs.saturating_sub(since.1) as f64,
        ]
    }
}

impl ClusterLab for ZabLab {
    const ID: &'static str = "consensus.zab";
    type Node = ZabPeer;
    type Config = ZabLabConfig;
    type Action = ZabLabAction;
    const TRACE_TAIL: usize = KEPT_EVENTS;

    fn new(c: &ZabLabConfig) -> Result<Self> {
        let params = ZabParams {
            tick: c.tick_ms.duration(),
            timeout_min: c.timeout_min_ms.duration(),
            timeout_max: c.timeout_max_ms.duration(),
        };
        let workload = Workload {
            clients: c.clients.get(),
            keys: c.keys.get(),
            ..Workload::default()
        };
        let mut h = Harness::new(
            SimConfig {
                clients: c.clients.get(),
                record_trace: true,
                trace_limit: KEPT_EVENTS,
                ..c.sim_config(c.nodes.get())
            },
            params,
            workload,
        )?;
        c.load_faults(h.sim_mut())?;
        Ok(ZabLab { h })
    }

    fn sim(&self) -> &Sim<ZabPeer> {
        self.h.sim()
    }

    fn sim_mut(&mut self) -> &mut Sim<ZabPeer> {
        self.h.sim_mut()
    }

    fn step(&mut self, until: Time) -> bool {
        self.h.step(until)
    }

    fn observe(&mut self) {
        self.h.observe();
    }

    fn act(&mut self, action: &ZabLabAction) -> Result<()> {
        match action {
            ZabLabAction::StopClients {} => {
                self.h.stop_clients();
                Ok(())
            }
        }
    }

    fn node_fields(&self, id: NodeId, fields: &mut BTreeMap<String, Json>) {
        let Some(p) = self.h.sim().node(id) else {
            return;
        };
        fields.insert("phase".into(), json!(phase_text(p.phase())));
        if let Some(l) = p.leader() {
            fields.insert("leader".into(), json!(l));
        }
        fields.insert("acceptedEpoch".into(), json!(p.accepted_epoch()));
        fields.insert("currentEpoch".into(), json!(p.current_epoch()));
        fields.insert("lastZxid".into(), json!(p.last_zxid().to_string()));
        fields.insert(
            "committedZxid".into(),
            json!(p.committed_zxid().to_string()),
        );
        fields.insert("delivered".into(), json!(p.committed()));
        fields.insert("historyLength".into(), json!(p.history().len()));
        if p.state() == PeerState::Looking {
            fields.insert("round".into(), json!(p.round()));
            fields.insert(
                "vote".into(),
                json!(format!("n{} {}", p.vote().leader, p.vote().zxid)),
            );
        }
        if p.state() == PeerState::Leading {
            let l = p.leader_state();
            fields.insert(
                "ackEpochFrom".into(),
                json!(l.acke_recv.keys().collect::<Vec<_>>()),
            );
            fields.insert("ackLdFrom".into(), json!(l.ackld_recv));
        }
        let newest: BTreeMap<String, String> = p
            .history()
            .iter()
            .rev()
            .take(ROWS)
            .map(|t| (t.zxid.to_string(), txn_text(t)))
            .collect();
        fields.insert("history (newest)".into(), json!(newest));
        fields.insert("store".into(), json!(p.service().data()));
    }

    fn glance(&self, id: NodeId) -> Option<NodeGlance> {
        let p = self.h.sim().node(id)?;
        Some(NodeGlance {
            node: id,
            badge: Some(format!(
                "e{} {} {}",
                p.current_epoch(),
                &phase_text(p.phase())[..4],
                p.last_zxid()
            )),
            rings: Vec::new(),
        })
    }

    fn panels(&self) -> Vec<Panel> {
        vec![self.zxid_table(), self.model_text()]
    }

    fn invariants(&self) -> Vec<InvariantStatus> {
        let names = [
            (
                Invariant::Agreement,
                "agreement: one transaction per delivered position",
            ),
            (
                Invariant::PrimaryOrder,
                "primary order: a leader's proposals delivered in zxid order",
            ),
            (
                Invariant::PrimaryIntegrity,
                "primary integrity: older epochs delivered before a leader proposes",
            ),
            (
                Invariant::Integrity,
                "integrity: one transaction per zxid, proposed by its epoch's leader",
            ),
            (Invariant::OneLeaderPerEpoch, "at most one leader per epoch"),
        ];
        let delivered = self.h.checker().delivered();
        names
            .iter()
            .map(|(inv, name)| match self.h.violation() {
                Some(v) if v.invariant == *inv => {
                    InvariantStatus::violated(name, v.to_string(), v.nodes.clone())
                }
                _ => InvariantStatus::holds(name, format!("{delivered} transactions delivered")),
            })
            .collect()
    }

    fn lessons() -> Vec<crate::lab::lesson::Lesson> {
        crate::consensus::zab::lessons::lessons()
    }

    fn example_actions() -> Vec<ClusterAction<ZabLabAction>> {
        let mut v = vec![ClusterAction::Lab(ZabLabAction::StopClients {})];
        v.extend(Fault::examples().into_iter().map(ClusterAction::Fault));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Cluster, Lab, Runner};

    fn lab(config: Json) -> Runner<Cluster<ZabLab>> {
        Runner::from_json(&config).unwrap()
    }

    #[test]
    fn a_crashed_leader_is_replaced_in_a_new_epoch_and_rejoins_when_restarted() {
        let mut l = lab(json!({"nodes": 3}));
        l.step(Duration::from_secs(1)).unwrap();
        let before = l.model().harness().completed();
        assert!(before > 10, "{before}");
        let leader = l.model().harness().serving_leader().unwrap();
        let epoch = l
            .model()
            .harness()
            .sim()
            .node(leader)
            .unwrap()
            .current_epoch();
        l.act(&json!({"type": "crash", "node": leader})).unwrap();
        l.step(Duration::from_secs(2)).unwrap();
        assert!(l.model().harness().completed() > before + 5);
        let next = l.model().harness().serving_leader().unwrap();
        let h = l.model().harness();
        assert!(h.sim().node(next).unwrap().current_epoch() > epoch);
        l.act(&json!({"type": "restart", "node": leader})).unwrap();
        l.step(Duration::from_secs(1)).unwrap();
        let back = l.model().harness().sim().node(leader).unwrap();
        assert_eq!(back.phase(), Phase::Broadcast);
        assert_eq!(back.state(), PeerState::Following);
        let v = l.view();
        assert!(v.invariants.iter().all(|i| i.ok), "{:?}", v.invariants);
        let text = serde_json::to_string(&v.nodes).unwrap();
        assert!(
            text.contains("currentEpoch") && text.contains("lastZxid"),
            "{text}"
        );
        l.act(&json!({"type": "stopClients"})).unwrap();
    }

    #[test]
    fn bad_configs_name_the_field() {
        for (config, field) in [
            (json!({"nodes": 2}), "config.nodes"),
            (json!({"tickMs": 0}), "config.tickMs"),
            (json!({"clients": 99}), "config.clients"),
        ] {
            let e = Runner::<Cluster<ZabLab>>::from_json(&config)
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains(&format!("`{field}")), "{config}: {e}");
        }
    }
}
