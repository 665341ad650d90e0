//! Options of `Lab.view(options)`. `fieldsOf: [ids]` keeps the inspectable `fields` of
//! those nodes only (the others get an empty object): a page animating 1,000 nodes needs
//! the fields of the node it inspects, and the rest is most of the view (about 360 of
//! 465 KB of JSON for a 1,000-node `sim.network`), paid for every frame in conversion
//! and garbage collection. The lab is asked for just those fields
//! ([`distlab_core::lab::FieldsOf`]), so a lab that builds fields per node (`sim.network`)
//! skips building the rest.

use std::collections::BTreeSet;

use distlab_core::lab::FieldsOf;
use serde_json::Value;

/// What `view()` leaves out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ViewOptions {
    /// `Some(ids)`: only these nodes keep their fields.
    pub fields_of: Option<BTreeSet<u32>>,
}

impl ViewOptions {
    /// Reads `{ fieldsOf?: number[] }` (or null / undefined for the defaults), naming the
    /// field and the problem on bad input.
    pub fn from_json(v: &Value) -> Result<Self, String> {
        let map = match v {
            Value::Null => return Ok(Self::default()),
            Value::Object(map) => map,
            other => {
                return Err(format!(
                    "invalid `options`: expected an object, got {other}"
                ));
            }
        };
        let mut options = Self::default();
        for (key, value) in map {
            match key.as_str() {
                "fieldsOf" => options.fields_of = Some(node_ids(value)?),
                _ => {
                    return Err(format!(
                        "invalid `options`: unknown field `{key}`, expected `fieldsOf`"
                    ));
                }
            }
        }
        Ok(options)
    }

    /// Which nodes' fields the view carries.
    pub fn fields(&self) -> FieldsOf {
        match &self.fields_of {
            Some(ids) => FieldsOf::Only(ids.clone()),
            None => FieldsOf::All,
        }
    }
}

fn node_ids(v: &Value) -> Result<BTreeSet<u32>, String> {
    let Value::Array(items) = v else {
        return Err(format!(
            "invalid `options.fieldsOf`: expected an array of node ids, got {v}"
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            item.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    format!("invalid `options.fieldsOf[{i}]`: expected a node id, got {item}")
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use distlab_core::create_lab;
    use serde_json::json;

    /// Tests return errors rather than unwrap, so nothing in wasm/src reads as a panic.
    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn fields_of_keeps_only_the_named_nodes_fields() -> TestResult {
        let lab = create_lab("sim.network", &json!({ "nodes": 5 }))?;
        let full = lab.view();
        let view =
            lab.view_fields_of(&ViewOptions::from_json(&json!({ "fieldsOf": [3] }))?.fields());
        for (got, want) in view.nodes.iter().zip(&full.nodes) {
            assert_eq!(got.fields.is_empty(), got.id != 3, "node {}", got.id);
            assert_eq!(
                (&got.label, &got.role, &got.status),
                (&want.label, &want.role, &want.status)
            );
        }
        assert_eq!(view.messages, full.messages);
        assert_eq!(view.invariants, full.invariants);
        Ok(())
    }

    #[test]
    fn no_options_change_nothing() -> TestResult {
        let lab = create_lab("sim.network", &json!({}))?;
        let full = lab.view();
        for options in [Value::Null, json!({})] {
            let fields = ViewOptions::from_json(&options)?.fields();
            assert_eq!(lab.view_fields_of(&fields), full);
        }
        Ok(())
    }

    #[test]
    fn bad_options_name_the_field() {
        for (bad, field) in [
            (json!(3), "`options`"),
            (json!({ "fieldOf": [1] }), "fieldOf"),
            (json!({ "fieldsOf": 1 }), "`options.fieldsOf`"),
            (json!({ "fieldsOf": [1, -1] }), "`options.fieldsOf[1]`"),
            (json!({ "fieldsOf": [0.5] }), "`options.fieldsOf[0]`"),
            (
                json!({ "fieldsOf": [5_000_000_000u64] }),
                "`options.fieldsOf[0]`",
            ),
        ] {
            let e = ViewOptions::from_json(&bad).unwrap_err();
            assert!(e.contains(field), "{bad}: {e}");
        }
    }
}
