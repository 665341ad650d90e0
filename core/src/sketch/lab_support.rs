//! What the sketch labs share: the keys their workloads feed, a bounded trace with a
//! stable hash of every operation, and a grid that shows an array of any length in at
//! most [`GRID_CELLS`] cells.

use serde::Serialize;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::hash::Hasher;

use crate::error::{DistlabError, Result};
use crate::lab::local::Moment;
use crate::lab::view::{Cell, Panel};
use crate::sim::trace::StableHasher;

/// The most cells a grid panel shows; longer arrays are shown a block per cell.
pub const GRID_CELLS: u64 = 4_096;
/// Operations kept for the trace (its hash covers all).
pub const TRACE_EVENTS: usize = 256;
/// The longest key an action may name, in bytes.
pub const MAX_KEY_BYTES: usize = 256;

/// The `n`-th key a lab's workload inserts.
pub fn item_key(n: u64) -> String {
    format!("item-{n}")
}

/// The `n`-th key a lab probes that its workload never inserts.
pub fn probe_key(n: u64) -> String {
    format!("probe-{n}")
}

/// Checks a key an action names: 1 to [`MAX_KEY_BYTES`] bytes.
pub fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(DistlabError::field(
            "key",
            format!("must be 1 to {MAX_KEY_BYTES} bytes, got {}", key.len()),
        ));
    }
    Ok(())
}

/// One operation of the trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceItem {
    pub step: u64,
    pub at_us: u64,
    pub op: &'static str,
    pub key: String,
    /// What the sketch answered or did (a count, 1/0 for yes/no...).
    pub result: u64,
}

/// The newest operations and a stable hash of all of them.
#[derive(Debug, Clone, Default)]
pub struct SketchTrace {
    hasher: StableHasher,
    noted: u64,
    recent: VecDeque<TraceItem>,
}

impl SketchTrace {
    pub fn note(&mut self, at: Moment, op: &'static str, key: &str, result: u64) {
        self.hasher.write_u64(at.step);
        self.hasher.write_u64(at.now.0);
        self.hasher.write(op.as_bytes());
        self.hasher.write(key.as_bytes());
        self.hasher.write_u64(result);
        self.noted += 1;
        if self.recent.len() >= TRACE_EVENTS {
            self.recent.pop_front();
        }
        self.recent.push_back(TraceItem {
            step: at.step,
            at_us: at.now.0,
            op,
            key: key.to_string(),
            result,
        });
    }

    /// `{hash, events, complete, trace}`.
    pub fn json(&self) -> Value {
        json!({
            "hash": format!("{:016x}", self.hasher.finish()),
            "events": self.noted,
            "complete": self.noted <= self.recent.len() as u64,
            "trace": serde_json::to_value(&self.recent).unwrap_or(Value::Null),
        })
    }
}

/// A grid of `len` values, `value(i)` each, in rows of `columns`: one cell per value up
/// to [`GRID_CELLS`] values, else one per block of consecutive values showing the
/// block's largest (its label says which block).
pub fn grid(title: String, len: u64, columns: u32, value: impl Fn(u64) -> f64) -> Panel {
    let block = len.div_ceil(GRID_CELLS).max(1);
    let cells = (0..len.div_ceil(block))
        .map(|c| {
            let (from, to) = (c * block, ((c + 1) * block).min(len));
            let v = (from..to).map(&value).fold(0.0, f64::max);
            Cell {
                value: v,
                label: if block == 1 {
                    format!("{from}: {v}")
                } else {
                    format!("{from}–{}: max {v}", to - 1)
                },
            }
        })
        .collect();
    let title = if block == 1 {
        title
    } else {
        format!("{title} ({block} per cell, the largest shown)")
    };
    Panel::Grid {
        title,
        columns,
        cells,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_array_is_shown_in_blocks() {
        let Panel::Grid { cells, title, .. } = grid("g".into(), 10_000, 64, |i| i as f64) else {
            unreachable!()
        };
        assert_eq!(cells.len(), 3_334);
        assert_eq!(cells[0].value, 2.0);
        assert_eq!(cells.last().map(|c| c.value), Some(9_999.0));
        assert!(title.contains("3 per cell"));
        let Panel::Grid { cells, .. } = grid("g".into(), 5, 64, |i| i as f64) else {
            unreachable!()
        };
        assert_eq!(cells.len(), 5);
        assert!(check_key("").is_err() && check_key("k").is_ok());
    }
}
