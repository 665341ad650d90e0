//! The cluster lab shape: a protocol's nodes on the simulator ([`Sim`]). The kit holds
//! the loop — every simulator fault as an action (crash, partition, loss... the same in
//! every cluster lab), the messages in flight, the partitions, the simulator's own node
//! fields (boots, clock, disk), the trace, and the metric sampler — and with
//! [`super::Runner`] the action log, seek and replay. The lab writes how to build its
//! simulator, its own actions, its samples, its nodes' roles and fields, its panels and
//! its invariants.
//!
//! What a lab author writes: [`ClusterLab`] and [`Sampled`]. Register the lab as
//! `Cluster<MyLab>` in [`crate::registry`].

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};
use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::error::Result;
use crate::lab::json;
use crate::lab::runner::LabModel;
use crate::lab::sampling::{SERIES_POINTS, Sampled, Sampler};
use crate::lab::settings::{ClusterSettings, LabSettings};
use crate::lab::view::{
    FieldsOf, InvariantStatus, MessageDetail, MessageView, NodeGlance, NodeView, Panel,
    PartitionView, View,
};
use crate::sim::{Fault, InFlight, Node, NodeId, NodeStatus, Sim};
use crate::time::{Duration, Time};

/// A protocol's lab over the simulator: what is particular to it, and nothing else.
pub trait ClusterLab: Sampled + Clone + 'static {
    /// The catalog id.
    const ID: &'static str;
    type Node: Node;
    /// Declared with [`crate::lab::settings::cluster_lab_config!`], which adds the shared
    /// settings (seed, network, faults, sampleMs).
    type Config: Serialize + DeserializeOwned + Default + JsonSchema + Clone + ClusterSettings;
    /// The lab's own actions; every [`Fault`] is an action too.
    type Action: Serialize + DeserializeOwned + JsonSchema + Clone;
    /// Trace events [`crate::lab::Lab::trace`] hands out: the newest ones (its hash and
    /// count cover them all).
    const TRACE_TAIL: usize;
    /// Points kept per metric series.
    const SERIES_POINTS: usize = SERIES_POINTS;

    /// Builds the lab and its simulator, validating the config (errors name the field).
    fn new(config: &Self::Config) -> Result<Self>;
    /// How often the metrics are sampled: the config's `sampleMs`.
    fn sample_every(config: &Self::Config) -> Result<Duration> {
        Ok(config.sample_ms().duration())
    }
    fn sim(&self) -> &Sim<Self::Node>;
    fn sim_mut(&mut self) -> &mut Sim<Self::Node>;
    /// Processes the simulator's next event if it is due by `until`; false if it was
    /// one that does not count as a step (a stale timer). A lab that drives clients or
    /// schedules its own events handles them here.
    fn step(&mut self, until: Time) -> bool {
        self.sim_mut().step_until(until).is_some()
    }
    /// Called after every event and every action (a fault included): for state the lab
    /// derives from the simulator's.
    fn observe(&mut self) {}
    /// Applies one of the lab's own actions. On error the lab must be unchanged.
    fn act(&mut self, action: &Self::Action) -> Result<()>;
    /// Called after a fault applied as an action (not one a script scheduled).
    fn on_fault_action(&mut self, _fault: &Fault) {}
    /// The node's label ("n3" unless the lab says otherwise).
    fn label(&self, id: NodeId) -> String {
        format!("n{id}")
    }
    /// The node's role: what the node says, "down" while it is crashed.
    fn role(&self, id: NodeId) -> String {
        self.sim().node(id).map_or("down", Node::role).to_string()
    }
    /// Adds the lab's fields of a node to `fields`, which holds the simulator's (boots,
    /// clock, disk). One map filled in place: a big cluster's view builds thousands.
    fn node_fields(&self, id: NodeId, fields: &mut BTreeMap<String, Value>);
    /// What node `id` shows on the stage without a click (a badge, progress rings), if
    /// anything.
    fn glance(&self, _id: NodeId) -> Option<NodeGlance> {
        None
    }
    /// What a message in flight carries beyond its kind (a label, fields), if the lab
    /// describes its messages; `payload` is the peer message (`None` for a client's).
    fn message_detail(
        &self,
        _message: &InFlight,
        _payload: Option<&<Self::Node as Node>::Message>,
    ) -> Option<MessageDetail> {
        None
    }
    fn panels(&self) -> Vec<Panel>;
    fn invariants(&self) -> Vec<InvariantStatus>;
    /// Typical actions: by default one of every fault.
    fn example_actions() -> Vec<ClusterAction<Self::Action>> {
        Fault::examples()
            .into_iter()
            .map(ClusterAction::Fault)
            .collect()
    }
    /// The guided lessons the lab carries, in the order to take them (none for most).
    fn lessons() -> Vec<crate::lab::lesson::Lesson> {
        Vec::new()
    }
}

/// A [`ClusterLab`] with its sampler: a [`LabModel`].
#[derive(Debug, Clone)]
pub struct Cluster<L: ClusterLab> {
    lab: L,
    sampler: Sampler<L::Totals>,
}

impl<L: ClusterLab> Cluster<L> {
    /// The lab inside, for tests and drivers that read its state.
    pub fn lab(&self) -> &L {
        &self.lab
    }

    fn node_view(&self, id: NodeId, with_fields: bool) -> NodeView {
        let sim = self.lab.sim();
        let mut fields = BTreeMap::new();
        if with_fields {
            fields = sim_fields(sim, id);
            self.lab.node_fields(id, &mut fields);
        }
        NodeView {
            id,
            label: self.lab.label(id),
            role: self.lab.role(id),
            status: status_name(sim.status(id)).into(),
            fields,
            group: None,
        }
    }
}

/// The lab inside, for tests and drivers that read its state.
impl<L: ClusterLab> std::ops::Deref for Cluster<L> {
    type Target = L;
    fn deref(&self) -> &L {
        &self.lab
    }
}

/// The lab inside, for tests that set up a state by hand (a driver goes through
/// [`super::Lab`], which records what it does).
impl<L: ClusterLab> std::ops::DerefMut for Cluster<L> {
    fn deref_mut(&mut self) -> &mut L {
        &mut self.lab
    }
}

impl<L: ClusterLab> LabModel for Cluster<L> {
    const ID: &'static str = L::ID;
    type Config = L::Config;
    type Action = ClusterAction<L::Action>;

    fn new(config: &L::Config) -> Result<Self> {
        let lab = L::new(config)?;
        let sampler = Sampler::new(&lab, L::sample_every(config)?, L::SERIES_POINTS);
        Ok(Cluster { lab, sampler })
    }

    fn step_until(&mut self, deadline: Time) -> bool {
        loop {
            let Some(next) = self.lab.sim().next_event_time() else {
                return false;
            };
            if next > deadline {
                return false;
            }
            // Samples describe the state after every event before their time.
            if next.0 > 0 {
                self.sampler.record_due(&self.lab, Time(next.0 - 1));
            }
            // Only events at `next`: a stale timer there must not let a later event run
            // before the samples between them are taken.
            if self.lab.step(next) {
                self.lab.observe();
                return true;
            }
        }
    }

    fn advance_clock(&mut self, t: Time) {
        self.sampler.record_due(&self.lab, t);
        self.lab.sim_mut().advance_clock(t);
    }

    fn now(&self) -> Time {
        self.lab.sim().now()
    }

    fn steps(&self) -> u64 {
        self.lab.sim().steps()
    }

    fn act(&mut self, action: &Self::Action) -> Result<()> {
        match action {
            ClusterAction::Fault(f) => {
                self.lab.sim_mut().apply_fault(f)?;
                self.lab.on_fault_action(f);
            }
            ClusterAction::Lab(a) => self.lab.act(a)?,
        }
        self.lab.observe();
        Ok(())
    }

    fn view(&self) -> View {
        self.view_fields_of(&FieldsOf::All)
    }

    fn view_fields_of(&self, fields: &FieldsOf) -> View {
        let sim = self.lab.sim();
        let in_flight = sim.in_flight_with_messages();
        View {
            nodes: (0..sim.node_count())
                .map(|n| self.node_view(n, fields.wants(n)))
                .collect(),
            glances: (0..sim.node_count())
                .filter_map(|n| self.lab.glance(n))
                .collect(),
            message_details: in_flight
                .iter()
                .filter_map(|(m, payload)| self.lab.message_detail(m, *payload))
                .collect(),
            messages: message_views(in_flight.into_iter().map(|(m, _)| m).collect()),
            partitions: partitions(sim),
            panels: self.lab.panels(),
            metrics: self.sampler.series(),
            invariants: self.lab.invariants(),
            ..View::default()
        }
    }

    fn trace(&self) -> Value {
        self.lab.sim().trace().json_from(0, L::TRACE_TAIL)
    }

    fn trace_from(&self, from: u64, max: usize) -> Value {
        self.lab.sim().trace().json_from(from, max)
    }

    fn example_actions() -> Vec<Self::Action> {
        L::example_actions()
    }

    fn lessons() -> Vec<crate::lab::lesson::Lesson> {
        L::lessons()
    }
}

/// What the simulator knows of node `id`: its boots, clock, inbox while paused and disk.
pub fn sim_fields<N: Node>(sim: &Sim<N>, id: NodeId) -> BTreeMap<String, Value> {
    let mut fields = BTreeMap::new();
    let clock = sim.clock(id).copied().unwrap_or_default();
    fields.insert("boots".into(), json!(sim.boots(id)));
    fields.insert(
        "clockSkewMs".into(),
        json!(clock.skew_at(sim.now()) as f64 / 1e3),
    );
    fields.insert("clockDriftPpm".into(), json!(clock.drift_ppm()));
    fields.insert("inboxWhilePaused".into(), json!(sim.parked(id)));
    if let Some(d) = sim.disk(id) {
        fields.insert("disk".into(), json!(d.stats()));
    }
    fields
}

/// A cluster lab's action: any simulator [`Fault`] (`{"type": "crash", "node": 2}`), or
/// one of the lab's own actions `A` (`{"type": "clientRequest", ...}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum ClusterAction<A> {
    Fault(Fault),
    Lab(A),
}

impl<'de, A: DeserializeOwned + Serialize> Deserialize<'de> for ClusterAction<A> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let is_fault = v
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| Fault::TYPES.contains(&t));
        if is_fault {
            json::parse_within(&v).map(ClusterAction::Fault)
        } else {
            json::parse_within(&v).map(ClusterAction::Lab)
        }
    }
}

impl<A: JsonSchema> JsonSchema for ClusterAction<A> {
    fn schema_name() -> Cow<'static, str> {
        format!("ClusterAction_{}", A::schema_name()).into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let fault = generator.subschema_for::<Fault>();
        let lab = generator.subschema_for::<A>();
        json_schema!({ "anyOf": [fault, lab] })
    }
}

/// "up", "paused" or "crashed".
pub fn status_name(status: Option<NodeStatus>) -> &'static str {
    match status {
        Some(NodeStatus::Up) => "up",
        Some(NodeStatus::Paused) => "paused",
        Some(NodeStatus::Crashed) | None => "crashed",
    }
}

/// Messages in flight, for animation.
pub fn messages<N: Node>(sim: &Sim<N>) -> Vec<MessageView> {
    message_views(sim.in_flight())
}

fn message_views(in_flight: Vec<InFlight>) -> Vec<MessageView> {
    in_flight
        .into_iter()
        .map(|m| MessageView {
            id: m.id,
            from: m.from,
            to: m.to,
            kind: m.kind.to_string(),
            progress: m.progress,
        })
        .collect()
}

/// Current partitions.
pub fn partitions<N: Node>(sim: &Sim<N>) -> PartitionView {
    PartitionView {
        groups: sim.network().groups(),
        one_way: sim.network().one_way_cuts(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
    enum Own {
        Poke { node: u32 },
    }

    #[test]
    fn faults_and_lab_actions_parse_with_field_errors() {
        let a: ClusterAction<Own> =
            serde_json::from_value(json!({"type": "crash", "node": 2})).unwrap();
        assert_eq!(a, ClusterAction::Fault(Fault::Crash { node: 2 }));
        let b: ClusterAction<Own> =
            serde_json::from_value(json!({"type": "poke", "node": 1})).unwrap();
        assert_eq!(b, ClusterAction::Lab(Own::Poke { node: 1 }));
        let e = serde_json::from_value::<ClusterAction<Own>>(
            json!({"type": "partition", "groups": [[0], ["x"]]}),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("groups[1][0]"), "{e}");
        let e = serde_json::from_value::<ClusterAction<Own>>(json!({"type": "nope"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown variant"), "{e}");
        let back = serde_json::to_value(&a).unwrap();
        assert_eq!(back, json!({"type": "crash", "node": 2}));
    }
}
