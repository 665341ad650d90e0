//! Lab `sim.network`: a small cluster pinging each other under every network fault, so
//! each knob is visible — latency shapes the RTTs, loss opens gaps, duplication and
//! reordering show up as duplicate and late arrivals, partitions silence links, pauses
//! fill inboxes, crashes and restarts bump the boot counter kept on disk.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

use crate::bounded::{Count, Millis};
use crate::error::Result;
use crate::lab::cluster::{ClusterAction, ClusterLab};
use crate::lab::sampling::{Sampled, per_second};
use crate::lab::settings::{ClusterSettings, cluster_lab_config};
use crate::lab::view::{InvariantStatus, Panel};
use crate::sim::history::Outcome;
use crate::sim::pingpong::{LinkStats, PingConfig, PingNode};
use crate::sim::{Fault, NetStats, NodeId, Sim, SimConfig};
use crate::time::{Duration, Time};

/// The largest cluster the lab accepts.
pub const MAX_NODES: u32 = 1_000;
/// Rows of the links table: the links with the most anomalies first.
const LINK_ROWS: usize = 64;
/// Trace events the lab hands out: the newest ones (the hash and the count still cover
/// every event). Serialising an event costs about 17 µs in wasm, and a 1,000-node cluster
/// under load records 150,000 events per simulated second: handing out the whole trace
/// (a million events after a few seconds) kept the page's trace worker busy for tens of
/// seconds per build, on a core the page needs. 100,000 events are the last several
/// minutes of the default cluster, and the size of trace the page's space-time diagram
/// is required to stay responsive for.
pub const TRACE_TAIL: usize = 100_000;

cluster_lab_config! {
    /// Configuration of the network lab.
    pub struct NetworkLabConfig {
        /// Number of nodes.
        pub nodes: Count<2, { MAX_NODES }> = Count::of(5),
        /// How many ring successors each node pings in turn (all peers when the cluster
        /// is smaller), so big clusters keep O(nodes) links.
        pub fanout: Count<1, 64> = Count::of(4),
        /// Time between two pings of one node, on its own clock.
        pub interval_ms: Millis<1, 60_000> = Millis::of(50),
    }
}

/// The lab's own actions, besides every fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum NetworkLabAction {
    /// A client asks `node` how many pongs it has received.
    #[serde(rename_all = "camelCase")]
    ClientRequest {
        node: NodeId,
        #[serde(default = "default_timeout_ms")]
        timeout_ms: f64,
    },
}

fn default_timeout_ms() -> f64 {
    1_000.0
}

/// The network lab.
#[derive(Debug, Clone)]
pub struct NetworkLab {
    sim: Sim<PingNode>,
    duplication_ever_on: bool,
    reordering_ever_on: bool,
}

impl NetworkLab {
    fn totals(&self) -> LinkStats {
        let mut t = LinkStats::default();
        for n in 0..self.sim.node_count() {
            if let Some(node) = self.sim.node(n) {
                let s = node.totals();
                t.pongs_received += s.pongs_received;
                t.rtt_sum_us += s.rtt_sum_us;
                t.duplicates += s.duplicates;
                t.late += s.late;
            }
        }
        t
    }

    fn links_table(&self) -> Panel {
        let mut links: Vec<(u64, NodeId, NodeId, LinkStats)> = Vec::new();
        for from in 0..self.sim.node_count() {
            let Some(n) = self.sim.node(from) else {
                continue;
            };
            for (to, s) in n.links() {
                if s.pings_sent == 0 && s.pings_received == 0 {
                    continue;
                }
                links.push((s.duplicates + s.late + s.gaps, from, *to, *s));
            }
        }
        let total = links.len();
        links.sort_by(|a, b| b.0.cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2))));
        links.truncate(LINK_ROWS);
        let rows = links
            .into_iter()
            .map(|(_, from, to, s)| {
                vec![
                    json!(format!("{from}→{to}")),
                    json!(s.pings_sent),
                    json!(s.pongs_received),
                    json!(s.pings_received),
                    json!(s.duplicates),
                    json!(s.late),
                    json!(s.gaps),
                    json!(mean_rtt_ms(&s)),
                ]
            })
            .collect();
        Panel::Table {
            title: format!(
                "links since each node's last boot: {} of {total}, most anomalies first",
                total.min(LINK_ROWS)
            ),
            columns: [
                "link",
                "pings sent",
                "pongs back",
                "pings in",
                "duplicates",
                "late",
                "gaps",
                "mean RTT ms",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        }
    }

    fn clients_table(&self) -> Panel {
        let rows = self
            .sim
            .history()
            .iter()
            .rev()
            .take(10)
            .map(|op| {
                let (outcome, at) = match &op.outcome {
                    Outcome::Pending => ("pending".to_string(), None),
                    Outcome::Ok { value, at } => (format!("ok: {value} pongs"), Some(*at)),
                    Outcome::Fail { reason, at } => (format!("fail: {reason}"), Some(*at)),
                    Outcome::Timeout { at } => ("timeout (unknown)".to_string(), Some(*at)),
                };
                vec![
                    json!(op.request),
                    json!(op.node),
                    json!(op.invoked.as_millis_f64()),
                    json!(outcome),
                    json!(at.map(|t| t.saturating_since(op.invoked).as_millis_f64())),
                ]
            })
            .collect();
        Panel::Table {
            title: "client requests (latest first)".into(),
            columns: ["request", "node", "invoked ms", "outcome", "latency ms"]
                .map(String::from)
                .to_vec(),
            rows,
        }
    }
}

fn mean_rtt_ms(s: &LinkStats) -> f64 {
    if s.pongs_received == 0 {
        0.0
    } else {
        s.rtt_sum_us as f64 / s.pongs_received as f64 / 1e3
    }
}

impl Sampled for NetworkLab {
    type Totals = NetStats;

    fn series(&self) -> Vec<(String, String)> {
        [
            ("delivered", "msg/s"),
            ("dropped", "msg/s"),
            ("events queued", "events"),
            ("mean RTT", "ms"),
        ]
        .map(|(n, u)| (n.into(), u.into()))
        .to_vec()
    }

    fn totals(&self) -> NetStats {
        self.sim.net_stats()
    }

    fn sample(&self, _at: Time, interval: Duration, since: &NetStats) -> Vec<f64> {
        let now = self.sim.net_stats();
        let dropped = |s: &NetStats| s.lost + s.partitioned + s.to_down_node;
        vec![
            per_second(now.delivered - since.delivered, interval),
            per_second(dropped(&now) - dropped(since), interval),
            self.sim.pending_events() as f64,
            mean_rtt_ms(&self.totals()),
        ]
    }
}

impl ClusterLab for NetworkLab {
    const ID: &'static str = "sim.network";
    type Node = PingNode;
    type Config = NetworkLabConfig;
    type Action = NetworkLabAction;
    const TRACE_TAIL: usize = TRACE_TAIL;

    fn new(c: &NetworkLabConfig) -> Result<Self> {
        let sim_config = SimConfig {
            clients: 1,
            ..c.sim_config(c.nodes.get())
        };
        let ping = PingConfig {
            fanout: c.fanout.get(),
            interval: c.interval_ms.duration(),
        };
        let mut sim = Sim::new(sim_config, ping)?;
        c.load_faults(&mut sim)?;
        let mut lab = NetworkLab {
            sim,
            duplication_ever_on: false,
            reordering_ever_on: false,
        };
        lab.observe();
        Ok(lab)
    }

    fn sim(&self) -> &Sim<PingNode> {
        &self.sim
    }

    fn sim_mut(&mut self) -> &mut Sim<PingNode> {
        &mut self.sim
    }

    fn observe(&mut self) {
        let c = self.sim.network().config();
        self.duplication_ever_on |= c.duplicate.get() > 0.0;
        self.reordering_ever_on |= c.reorder.get() > 0.0;
    }

    fn act(&mut self, action: &NetworkLabAction) -> Result<()> {
        match action {
            NetworkLabAction::ClientRequest { node, timeout_ms } => {
                let timeout = Duration::try_from_millis_f64("timeoutMs", *timeout_ms)?;
                self.sim.client_request(0, *node, (), timeout)?;
            }
        }
        Ok(())
    }

    fn role(&self, _id: NodeId) -> String {
        "node".into()
    }

    fn node_fields(&self, id: NodeId, fields: &mut BTreeMap<String, Value>) {
        if let Some(n) = self.sim.node(id) {
            let t = n.totals();
            fields.insert("durableBootCounter".into(), json!(n.boots()));
            fields.insert("pingsSent".into(), json!(t.pings_sent));
            fields.insert("pongsReceived".into(), json!(t.pongs_received));
            fields.insert("pingsReceived".into(), json!(t.pings_received));
            fields.insert("duplicates".into(), json!(t.duplicates));
            fields.insert("late".into(), json!(t.late));
            fields.insert("gaps".into(), json!(t.gaps));
            fields.insert("meanRttMs".into(), json!(mean_rtt_ms(&t)));
        }
    }

    fn panels(&self) -> Vec<Panel> {
        let c = self.sim.network().config();
        let knobs = Panel::Table {
            title: "network".into(),
            columns: vec!["knob".into(), "value".into()],
            rows: vec![
                vec![json!("latency"), json!(c.latency)],
                vec![json!("mean latency ms"), json!(c.latency.mean_ms())],
                vec![json!("loss"), json!(c.loss)],
                vec![json!("duplicate"), json!(c.duplicate)],
                vec![json!("reorder"), json!(c.reorder)],
                vec![json!("messages"), json!(self.sim.net_stats())],
            ],
        };
        vec![knobs, self.links_table(), self.clients_table()]
    }

    fn invariants(&self) -> Vec<InvariantStatus> {
        let mut out = Vec::new();
        let offenders = |f: fn(&LinkStats) -> u64| -> Vec<NodeId> {
            (0..self.sim.node_count())
                .filter(|&n| self.sim.node(n).is_some_and(|x| f(&x.totals()) > 0))
                .collect()
        };
        const DUP: &str = "no duplicates unless duplication is on";
        let dups = offenders(|t| t.duplicates);
        out.push(if self.duplication_ever_on || dups.is_empty() {
            InvariantStatus::holds(DUP, "each receiver saw every sequence number at most once")
        } else {
            InvariantStatus::violated(DUP, "a receiver saw a sequence number twice", dups)
        });
        const FIFO: &str = "links are FIFO unless reordering is on";
        let late = offenders(|t| t.late);
        out.push(if self.reordering_ever_on || late.is_empty() {
            InvariantStatus::holds(FIFO, "no message overtook an earlier one on its link")
        } else {
            InvariantStatus::violated(FIFO, "a message arrived after a later one", late)
        });
        out
    }

    fn example_actions() -> Vec<ClusterAction<NetworkLabAction>> {
        let mut v: Vec<_> = Fault::examples()
            .into_iter()
            .map(ClusterAction::Fault)
            .collect();
        v.push(ClusterAction::Lab(NetworkLabAction::ClientRequest {
            node: 0,
            timeout_ms: 500.0,
        }));
        v
    }
}

impl NetworkLab {
    /// The simulation underneath, for tests.
    pub fn sim(&self) -> &Sim<PingNode> {
        &self.sim
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::view::FieldsOf;
    use crate::lab::{Cluster, LabModel};

    #[test]
    fn a_crash_and_restart_violates_no_invariant() {
        // A restarted sender starts its sequence numbers again in a new epoch: its pings
        // are neither duplicates nor late (they were, before pings carried the epoch).
        let mut lab = crate::create_lab("sim.network", &json!({})).unwrap();
        lab.step(Duration::from_millis(500)).unwrap();
        lab.act(&json!({ "type": "crash", "node": 2 })).unwrap();
        lab.step(Duration::from_millis(100)).unwrap();
        lab.act(&json!({ "type": "restart", "node": 2 })).unwrap();
        lab.step(Duration::from_millis(2_000)).unwrap();
        let view = lab.view();
        assert!(
            view.invariants.iter().all(|i| i.ok),
            "{:?}",
            view.invariants
        );
        let received: u64 = view
            .nodes
            .iter()
            .map(|n| n.fields["pingsReceived"].as_u64().unwrap_or(0))
            .sum();
        assert!(received > 100);
        assert_eq!(view.nodes[2].fields["durableBootCounter"], json!(2));
    }

    #[test]
    fn the_trace_hands_out_its_newest_events_and_hashes_them_all() {
        let mut lab = crate::create_lab("sim.network", &json!({})).unwrap();
        lab.step(Duration::from_millis(300)).unwrap();
        let whole = lab.trace();
        let all = whole["trace"].as_array().unwrap();
        assert_eq!(whole["complete"], json!(true));
        assert_eq!(all.len() as u64, whole["events"].as_u64().unwrap());
        assert!(all.len() > 60);
        // The lab's trace is the tail of TRACE_TAIL events: here, fewer than that.
        let mut run = Cluster::<NetworkLab>::new(&NetworkLabConfig::default()).unwrap();
        assert_eq!(run.lab().sim().trace().json_from(0, 0)["trace"], json!([]));
        while run.step_until(Time::from_millis(300)) {}
        let tail = run.lab().sim().trace().json_from(0, 50);
        assert_eq!(tail["complete"], json!(false));
        assert_eq!(tail["hash"], whole["hash"]);
        assert_eq!(tail["events"], whole["events"]);
        assert_eq!(tail["trace"].as_array().unwrap()[..], all[all.len() - 50..]);
    }

    #[test]
    fn a_view_with_some_nodes_fields_is_the_whole_view_stripped() {
        let mut lab = crate::create_lab("sim.network", &json!({ "nodes": 12 })).unwrap();
        lab.step(Duration::from_millis(700)).unwrap();
        lab.act(&json!({ "type": "crash", "node": 4 })).unwrap();
        for keep in [vec![], vec![3], vec![0, 4, 11, 99]] {
            let only = FieldsOf::Only(keep.iter().copied().collect());
            let mut whole = lab.view();
            only.strip(&mut whole);
            assert_eq!(lab.view_fields_of(&only), whole, "fields of {keep:?}");
        }
        assert_eq!(lab.view_fields_of(&FieldsOf::All), lab.view());
    }
}
