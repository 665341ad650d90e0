//! Lab `sim.engine`: the discrete-event simulator itself, made visible. A few pinging
//! nodes run on the engine: the view shows its clock, its step count and its event queue
//! in the order it will run (by time, ties in the order queued), the events it has just
//! processed, and a twin — a second engine built from the same seed and config, fed the
//! same actions — whose trace hash is compared with the run's after every event.
//!
//! Invariant: same seed, same config, same actions ⇒ the same trace, event by event
//! (natively and in wasm; the golden tests pin the hashes across platforms).
//!
//! Reference: the event-queue simulation of FoundationDB (Zhou et al., SIGMOD 2021) and
//! TigerBeetle's VOPR; time in integer microseconds, randomness from one seeded stream.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

use crate::bounded::{Count, Millis};
use crate::error::Result;
use crate::lab::cluster::{ClusterAction, ClusterLab};
use crate::lab::sampling::Sampled;
use crate::lab::settings::{ClusterSettings, cluster_lab_config};
use crate::lab::view::{InvariantStatus, Panel};
use crate::sim::pingpong::{PingConfig, PingNode};
use crate::sim::{Fault, NodeId, Sim, SimConfig};
use crate::time::{Duration, Time};

/// The largest cluster the lab takes.
pub const MAX_NODES: u32 = 8;
/// Queued events listed.
const QUEUE_ROWS: usize = 16;
/// Processed events listed.
const RECENT_ROWS: usize = 12;
/// Events each engine keeps (the hash covers all of them).
const KEPT_EVENTS: usize = 5_000;

cluster_lab_config! {
    /// Configuration of the engine lab. The seed drives the run and its twin.
    pub struct EngineLabConfig {
        pub nodes: Count<1, { MAX_NODES }> = Count::of(3),
        /// Time between two pings of one node.
        pub interval_ms: Millis<1, 60_000> = Millis::of(200),
    }
}

/// The lab's own actions, besides every fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum EngineLabAction {
    /// A client asks `node` how many pongs it has had: a client request and its timeout
    /// join the queue.
    #[serde(rename_all = "camelCase")]
    ClientRequest {
        node: NodeId,
        #[serde(default = "default_timeout_ms")]
        timeout_ms: f64,
    },
}

fn default_timeout_ms() -> f64 {
    500.0
}

/// The engine lab.
#[derive(Debug, Clone)]
pub struct EngineLab {
    sim: Sim<PingNode>,
    /// The same seed and config, fed the same actions.
    twin: Sim<PingNode>,
    /// The first step after which the twin's trace differed: (step, run's hash, twin's).
    diverged: Option<(u64, u64, u64)>,
}

impl EngineLab {
    fn build(c: &EngineLabConfig) -> Result<Sim<PingNode>> {
        let mut sim = Sim::new(
            SimConfig {
                clients: 1,
                record_trace: true,
                trace_limit: KEPT_EVENTS,
                ..c.sim_config(c.nodes.get())
            },
            PingConfig {
                fanout: 2,
                interval: c.interval_ms.duration(),
            },
        )?;
        c.load_faults(&mut sim)?;
        Ok(sim)
    }

    /// The twin's clock where the run's is: the kit moves only the run's clock.
    fn sync_twin_clock(&mut self) {
        self.twin.advance_clock(self.sim.now());
    }

    fn compare(&mut self) {
        let (a, b) = (self.sim.trace().hash(), self.twin.trace().hash());
        if a != b && self.diverged.is_none() {
            self.diverged = Some((self.sim.steps(), a, b));
        }
    }

    fn queue_table(&self) -> Panel {
        let rows = self
            .sim
            .queued(QUEUE_ROWS)
            .into_iter()
            .map(|q| {
                vec![
                    json!(q.at.as_millis_f64()),
                    json!(q.seq),
                    json!(q.kind),
                    json!(q.node.map(|n| format!("n{n}"))),
                    json!(q.detail),
                ]
            })
            .collect();
        Panel::Table {
            title: format!(
                "event queue: the next {} of {}, in the order they run",
                QUEUE_ROWS.min(self.sim.pending_events()),
                self.sim.pending_events()
            ),
            columns: ["at ms", "seq", "kind", "node", "what"]
                .map(String::from)
                .to_vec(),
            rows,
        }
    }

    fn recent_table(&self) -> Panel {
        let rows = self
            .sim
            .trace()
            .events()
            .rev()
            .take(RECENT_ROWS)
            .map(|e| {
                let mut v = serde_json::to_value(&e.kind).unwrap_or(Value::Null);
                let kind = v
                    .as_object_mut()
                    .and_then(|m| m.remove("type"))
                    .unwrap_or(Value::Null);
                vec![json!(e.step), json!(e.time.as_millis_f64()), kind, v]
            })
            .collect();
        Panel::Table {
            title: "latest trace events (newest first)".into(),
            columns: ["step", "ms", "kind", "detail"].map(String::from).to_vec(),
            rows,
        }
    }

    fn clock_text(&self) -> Panel {
        let next = self
            .sim
            .next_event_time()
            .map_or("none".into(), |t| format!("{} ms", t.as_millis_f64()));
        Panel::Text {
            title: "the engine".into(),
            body: format!(
                "clock {} ms, {} events processed, {} queued, next at {next}.\nrun's trace hash \
                 {:016x}, twin's {:016x}.",
                self.sim.now().as_millis_f64(),
                self.sim.steps(),
                self.sim.pending_events(),
                self.sim.trace().hash(),
                self.twin.trace().hash()
            ),
        }
    }
}

impl Sampled for EngineLab {
    /// Events processed so far.
    type Totals = u64;

    fn series(&self) -> Vec<(String, String)> {
        [("events", "per interval"), ("queue length", "events")]
            .map(|(n, u)| (n.into(), u.into()))
            .to_vec()
    }

    fn totals(&self) -> u64 {
        self.sim.steps()
    }

    fn sample(&self, _at: Time, _interval: Duration, since: &u64) -> Vec<f64> {
        vec![
            (self.sim.steps() - since) as f64,
            self.sim.pending_events() as f64,
        ]
    }
}

impl ClusterLab for EngineLab {
    const ID: &'static str = "sim.engine";
    type Node = PingNode;
    type Config = EngineLabConfig;
    type Action = EngineLabAction;
    const TRACE_TAIL: usize = KEPT_EVENTS;

    fn new(c: &EngineLabConfig) -> Result<Self> {
        let sim = Self::build(c)?;
        Ok(EngineLab {
            twin: sim.clone(),
            sim,
            diverged: None,
        })
    }

    fn sim(&self) -> &Sim<PingNode> {
        &self.sim
    }

    fn sim_mut(&mut self) -> &mut Sim<PingNode> {
        &mut self.sim
    }

    fn step(&mut self, until: Time) -> bool {
        self.sync_twin_clock();
        let stepped = self.sim.step_until(until).is_some();
        self.twin.step_until(until);
        self.compare();
        stepped
    }

    fn on_fault_action(&mut self, fault: &Fault) {
        self.sync_twin_clock();
        // Valid for the run, so valid for its twin.
        let _ = self.twin.apply_fault(fault);
        self.compare();
    }

    fn act(&mut self, action: &EngineLabAction) -> Result<()> {
        match action {
            EngineLabAction::ClientRequest { node, timeout_ms } => {
                let timeout = Duration::try_from_millis_f64("timeoutMs", *timeout_ms)?;
                self.sim.client_request(0, *node, (), timeout)?;
                self.sync_twin_clock();
                self.twin.client_request(0, *node, (), timeout)?;
                self.compare();
            }
        }
        Ok(())
    }

    fn node_fields(&self, id: NodeId, fields: &mut BTreeMap<String, Value>) {
        let queued = self
            .sim
            .queued(usize::MAX)
            .into_iter()
            .filter(|q| q.node == Some(id))
            .count();
        fields.insert("queuedEventsAtNode".into(), json!(queued));
        if let Some(n) = self.sim.node(id) {
            fields.insert("pingsSent".into(), json!(n.totals().pings_sent));
        }
    }

    fn panels(&self) -> Vec<Panel> {
        vec![self.clock_text(), self.queue_table(), self.recent_table()]
    }

    fn invariants(&self) -> Vec<InvariantStatus> {
        const SAME: &str = "same seed, same run: the twin's trace equals the run's";
        vec![match self.diverged {
            None => InvariantStatus::holds(
                SAME,
                format!(
                    "trace hashes equal after each of {} events",
                    self.sim.steps()
                ),
            ),
            Some((step, a, b)) => InvariantStatus::violated(
                SAME,
                format!("after step {step}: run {a:016x}, twin {b:016x}"),
                Vec::new(),
            ),
        }]
    }

    fn example_actions() -> Vec<ClusterAction<EngineLabAction>> {
        let mut v = vec![ClusterAction::Lab(EngineLabAction::ClientRequest {
            node: 0,
            timeout_ms: 500.0,
        })];
        v.extend(Fault::examples().into_iter().map(ClusterAction::Fault));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Cluster, Lab, LabModel, Runner};

    fn lab(config: Value) -> Runner<Cluster<EngineLab>> {
        Runner::from_json(&config).unwrap()
    }

    #[test]
    fn the_queue_lists_events_in_the_order_they_run() {
        let mut l = lab(Value::Null);
        l.step(Duration::from_millis(450)).unwrap();
        let q = l.model().sim().queued(usize::MAX);
        assert_eq!(q.len(), l.model().sim().pending_events());
        assert!(
            q.windows(2)
                .all(|w| (w[0].at, w[0].seq) < (w[1].at, w[1].seq))
        );
        // The first listed is the next to run (a timer may turn out stale: then the next
        // real event runs, later).
        let first = (q[0].at, q[0].kind);
        l.step_events(1).unwrap();
        assert!(l.now() == first.0 || (first.1 == "timer" && l.now() > first.0));
    }

    #[test]
    fn the_twin_follows_every_event_action_and_clock_move() {
        let mut l = lab(json!({"network": {"loss": 0.2, "reorder": 0.2}}));
        for (i, a) in EngineLab::example_actions().iter().enumerate() {
            l.step(Duration::from_millis(97 + i as u64)).unwrap();
            l.act(&serde_json::to_value(a).unwrap()).unwrap();
            l.step_events(5).unwrap();
        }
        l.step(Duration::from_secs(2)).unwrap();
        let m = l.model();
        assert_eq!(m.sim.trace().hash(), m.twin.trace().hash());
        assert!(l.view().invariants[0].ok, "{:?}", l.view().invariants);
    }

    #[test]
    fn a_twin_that_differs_is_caught() {
        let mut m = Cluster::<EngineLab>::new(&EngineLabConfig::default()).unwrap();
        while m.step_until(Time::from_millis(300)) {}
        // Behind the lab's back: the twin alone loses a node.
        m.twin.apply_fault(&Fault::Crash { node: 1 }).unwrap();
        while m.step_until(Time::from_millis(900)) {}
        assert!(!m.view().invariants[0].ok);
    }

    #[test]
    fn bad_configs_name_the_field() {
        for (config, field) in [
            (json!({"nodes": 0}), "config.nodes"),
            (json!({"intervalMs": 0}), "config.intervalMs"),
            (
                json!({"faults": {"faults": [{"atUs": 0, "fault": {"type": "pause", "node": 7}}]}}),
                "config.faults",
            ),
        ] {
            let e = Runner::<Cluster<EngineLab>>::from_json(&config)
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains(&format!("`{field}")), "{config}: {e}");
        }
    }
}
