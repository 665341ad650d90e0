//! What every cluster lab shares: the fault actions (so crash, partition, loss... work the
//! same in every lab) and the parts of the view that come straight from the simulator.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use std::borrow::Cow;

use crate::lab::json;
use crate::lab::view::{MessageView, PartitionView};
use crate::sim::{Fault, Node, NodeStatus, Sim};

/// A cluster lab's action: any simulator [`Fault`] (`{"type": "crash", "node": 2}`), or
/// one of the lab's own actions `A` (`{"type": "clientRequest", ...}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum ClusterAction<A> {
    Fault(Fault),
    Lab(A),
}

impl<'de, A: DeserializeOwned> Deserialize<'de> for ClusterAction<A> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let is_fault = v
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| Fault::TYPES.contains(&t));
        // Errors keep the path of the bad field ("groups[1][0]: invalid type...").
        let with_path = |(path, problem): (String, String)| match path.as_str() {
            "" => D::Error::custom(problem),
            _ => D::Error::custom(format!("{path}: {problem}")),
        };
        if is_fault {
            json::parse(&v).map(ClusterAction::Fault).map_err(with_path)
        } else {
            json::parse(&v).map(ClusterAction::Lab).map_err(with_path)
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
    sim.in_flight()
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
