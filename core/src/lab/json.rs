//! Reading configs and actions from JSON with errors that name the field.
//!
//! serde_path_to_error tracks the path of a bad field, except inside internally tagged
//! enums (`{"type": "crash", "node": "x"}`): serde buffers those, and the error comes back
//! without a path. For that case [`locate`] finds the field whose value the message
//! quotes, so a user still reads `action.node: invalid type: string "x", expected u32`.
//!
//! serde also lets unknown keys through in places `deny_unknown_fields` cannot reach: a
//! variant of an internally tagged enum (`{"type": "crash", "node": 1, "nodes": 2}`), an
//! untagged enum. So every value read here is written back and compared: a key of the
//! input that the written-back value does not have is an unknown field, and an error.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{DistlabError, Result};

/// Deserialises `value` as `T`; the error's field is `what` followed by the path of the
/// offending field (`config.network.latency.minMs`).
pub fn from_value<T: DeserializeOwned + Serialize>(what: &str, value: &Value) -> Result<T> {
    parse(value).map_err(|(path, problem)| {
        let field = if path.is_empty() {
            what.to_string()
        } else {
            join(what, &path)
        };
        DistlabError::field(field, problem)
    })
}

/// Deserialises `value`, returning on failure the path of the bad field (possibly
/// empty) and the problem. Keys the type does not know are errors, wherever they are.
pub fn parse<T: DeserializeOwned + Serialize>(
    value: &Value,
) -> std::result::Result<T, (String, String)> {
    let parsed: T = parse_lenient(value)?;
    // A type that cannot be written back has nothing to compare; none of ours is one.
    if let Ok(back) = serde_json::to_value(&parsed)
        && let Some(path) = unknown_key(value, &back)
    {
        let key = path.rsplit(['.', '[']).next().unwrap_or(&path).to_string();
        return Err((path, format!("unknown field `{key}`")));
    }
    Ok(parsed)
}

/// [`parse`] inside a `Deserialize` impl that picks one of several types by the value's
/// `type` (a kit action or the lab's own): the error keeps the bad field's path as a
/// prefix ("groups[1][0]: invalid type..."), which [`from_value`]'s caller reads back.
pub fn parse_within<T: DeserializeOwned + Serialize, E: serde::de::Error>(
    value: &Value,
) -> std::result::Result<T, E> {
    parse(value).map_err(|(path, problem)| match path.as_str() {
        "" => E::custom(problem),
        _ => E::custom(format!("{path}: {problem}")),
    })
}

/// The path of the first key of `input` that `back` (the parsed value written back) does
/// not have. A key given as `null` may be missing from `back`: an optional field that is
/// not written when empty.
fn unknown_key(input: &Value, back: &Value) -> Option<String> {
    match (input, back) {
        (Value::Object(i), Value::Object(b)) => i.iter().find_map(|(k, v)| match b.get(k) {
            None if v.is_null() => None,
            None => Some(k.clone()),
            Some(bv) => unknown_key(v, bv).map(|p| join(k, &p)),
        }),
        (Value::Array(i), Value::Array(b)) if i.len() == b.len() => i
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(n, (iv, bv))| unknown_key(iv, bv).map(|p| join(&format!("[{n}]"), &p))),
        _ => None,
    }
}

fn parse_lenient<T: DeserializeOwned>(value: &Value) -> std::result::Result<T, (String, String)> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut path = e.path().to_string();
        if path == "." {
            path.clear();
        }
        let problem = e.into_inner().to_string();
        let inner = if path.is_empty() {
            Some(value)
        } else {
            pointer(value, &path)
        };
        if let Some(sub) = inner.and_then(|v| locate(v, &problem)) {
            path = join(&path, &sub);
            return (path, problem);
        }
        // A deserialiser that parses a part itself (a cluster lab's action) reports that
        // part's path at the head of its message: `groups[1][0]: invalid type...`.
        if let Some((sub, rest)) = problem.split_once(": ")
            && !sub.contains(' ')
            && inner.and_then(|v| pointer(v, sub)).is_some()
        {
            return (join(&path, sub), rest.to_string());
        }
        (path, problem)
    })
}

/// A config given as JSON `null` means "all defaults".
pub fn config_from_value<T: DeserializeOwned + Serialize + Default>(value: &Value) -> Result<T> {
    match value {
        Value::Null => Ok(T::default()),
        Value::Object(_) => from_value("config", value),
        other => Err(DistlabError::field(
            "config",
            format!(
                "must be an object (or null for defaults), got {}",
                kind_of(other)
            ),
        )),
    }
}

pub(crate) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.starts_with('[')) {
        (true, _) => b.to_string(),
        (false, true) => format!("{a}{b}"),
        (false, false) => format!("{a}.{b}"),
    }
}

/// Follows a serde_path_to_error path (`a.b[2].c`) into `value`.
fn pointer<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    let mut v = value;
    for part in path.split('.') {
        let (key, indices) = part
            .split_once('[')
            .map_or((part, ""), |(k, rest)| (k, rest));
        if !key.is_empty() {
            v = v.get(key)?;
        }
        for idx in indices.split('[').filter(|s| !s.is_empty()) {
            v = v.get(idx.trim_end_matches(']').parse::<usize>().ok()?)?;
        }
    }
    Some(v)
}

/// How serde describes an unexpected value in "invalid type: …" / "invalid value: …".
fn unexpected(v: &Value) -> Vec<String> {
    match v {
        Value::Null => vec!["null".into(), "unit value".into()],
        Value::Bool(b) => vec![format!("boolean `{b}`")],
        Value::Number(n) if n.is_f64() => vec![format!("floating point `{n}`")],
        Value::Number(n) => vec![format!("integer `{n}`")],
        Value::String(s) => vec![format!("string {s:?}")],
        Value::Array(_) => vec!["sequence".into()],
        Value::Object(_) => vec!["map".into()],
    }
}

/// The path (below `value`) of the first field whose value the message complains about.
fn locate(value: &Value, problem: &str) -> Option<String> {
    let children: Vec<(String, &Value)> = match value {
        Value::Object(m) => m
            .iter()
            .filter(|(k, _)| *k != "type")
            .map(|(k, v)| (k.clone(), v))
            .collect(),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("[{i}]"), v))
            .collect(),
        _ => return None,
    };
    for (key, child) in &children {
        if let Some(deeper) = locate(child, problem) {
            return Some(join(key, &deeper));
        }
    }
    let unknown = problem
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next());
    children.into_iter().find_map(|(key, child)| {
        if unknown == Some(key.as_str()) {
            return Some(key);
        }
        unexpected(child)
            .iter()
            .any(|u| {
                problem.contains(&format!("invalid type: {u}"))
                    || problem.contains(&format!("invalid value: {u}"))
            })
            .then_some(key)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::Fault;
    use serde_json::json;

    #[test]
    fn errors_inside_tagged_enums_still_name_the_field() {
        let e = from_value::<Fault>("action", &json!({"type": "crash", "node": "x"})).unwrap_err();
        assert!(e.to_string().contains("`action.node`"), "{e}");
        let e = from_value::<Fault>(
            "action",
            &json!({"type": "partition", "groups": [[0], [-1]]}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("`action.groups[1][0]`"), "{e}");
        let e = from_value::<Fault>("action", &json!({"type": "crash"})).unwrap_err();
        assert!(e.to_string().contains("missing field `node`"), "{e}");
        let e = from_value::<crate::sim::NetworkConfig>(
            "network",
            &json!({"latency": {"type": "uniform", "minMs": 1, "maxMs": true}}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("`network.latency.maxMs`"), "{e}");
    }

    /// serde's `deny_unknown_fields` does not reach into internally tagged variants; the
    /// written-back comparison does, at any depth.
    #[test]
    fn unknown_keys_are_errors_even_inside_tagged_enums() {
        let e = from_value::<Fault>("action", &json!({"type": "crash", "node": 1, "nodes": 2}))
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("`action.nodes`: unknown field `nodes`"),
            "{e}"
        );
        let e = from_value::<crate::sim::NetworkConfig>(
            "network",
            &json!({"latency": {"type": "constant", "ms": 1, "jitter": 2}}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("`network.latency.jitter`"), "{e}");
        let e = from_value::<Vec<Fault>>(
            "faults",
            &json!([{"type": "heal"}, {"type": "pause", "node": 0, "forMs": 5}]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("`faults[1].forMs`"), "{e}");
        let ok = from_value::<Fault>("action", &json!({"type": "crash", "node": 1})).unwrap();
        assert_eq!(ok, Fault::Crash { node: 1 });
    }
}
