//! The lab's multi-register histories (Knossos' `multi-register`): each operation is a
//! transaction of reads and writes of several registers, applied atomically. They are
//! pasted, never generated, and checked as one part: a transaction may span keys, so the
//! history cannot be split by key up front (the checker's search still treats
//! transactions on disjoint keys as independent, through [`Model::footprint`]).

use std::collections::BTreeSet;

use super::history::{HistoryOps, PartCheck, check_members};
use super::{OutputEdit, RegisterSetup, ValueEdit};
use crate::error::{DistlabError, Result};
use crate::sim::linearizability::jepsen::parse_transaction;
use crate::sim::linearizability::{
    MicroOp, Model, MultiRegister, MultiRegisterOutput, NilRead, Operation, Registers, Response,
};

/// One transaction of a multi-register history.
pub(super) type TxnOp = Operation<Vec<MicroOp>, MultiRegisterOutput>;

/// A multi-register history. Dropped operations keep their slot, as in
/// [`super::history::History`].
#[derive(Debug, Clone)]
pub(super) struct MultiHistory {
    pub(super) ops: Vec<TxnOp>,
    pub(super) dropped: Vec<bool>,
    pub(super) model: MultiRegister,
}

impl MultiHistory {
    /// The history of `ops`, every register it names starting at `register.initial`
    /// (nil when that is `None`), nil reads meaning `register.nil_read`.
    pub(super) fn new(ops: Vec<TxnOp>, register: RegisterSetup) -> Self {
        let keys: BTreeSet<&str> = ops
            .iter()
            .flat_map(|op| op.input.iter().map(MicroOp::key))
            .collect();
        let initial: Vec<(&str, i64)> = match register.initial {
            Some(value) => keys.into_iter().map(|k| (k, value)).collect(),
            None => Vec::new(),
        };
        let model = MultiRegister::new(&initial, register.nil_read);
        MultiHistory {
            dropped: vec![false; ops.len()],
            ops,
            model,
        }
    }

    fn op(&self, op: u32) -> Option<&TxnOp> {
        self.ops.get(op as usize)
    }
}

fn show(value: Option<i64>) -> String {
    value.map_or_else(|| "nil".to_string(), |v| v.to_string())
}

/// A short label, one entry per micro-operation: `x:r→1 y:w(2)`, `x:r→?` (not returned).
pub(super) fn txn_label(op: &TxnOp, returned: bool) -> String {
    let answers = match &op.output {
        Response::Value { value } if returned => Some(value),
        _ => None,
    };
    op.input
        .iter()
        .enumerate()
        .map(|(i, micro)| match micro {
            MicroOp::Write { key, value } => format!("{key}:w({})", show(*value)),
            MicroOp::Read { key } => match answers.and_then(|a| a.get(i)) {
                Some(v) => format!("{key}:r→{}", show(*v)),
                None => format!("{key}:r→?"),
            },
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why `model` cannot apply `op` in `state`: its first read that sees another value
/// (after the transaction's own writes before it), or, if it can go, that what is left
/// cannot follow.
fn why_not(model: &MultiRegister, state: &Registers, op: &TxnOp) -> String {
    if let Some(next) = model.step(state, &op.input, &op.output) {
        return format!(
            "it could go next (leaving {}), but then the operations left cannot all be \
             placed",
            model.describe_state(&next)
        );
    }
    let Response::Value { value: answers } = &op.output else {
        return format!(
            "the model rejects it when the registers hold {}",
            model.describe_state(state)
        );
    };
    if answers.len() != op.input.len() {
        return format!(
            "it answers {} values for {} micro-operations",
            answers.len(),
            op.input.len()
        );
    }
    // Replay the transaction on one register at a time: the first read that differs.
    let mut written: Vec<(&str, Option<i64>)> = Vec::new();
    for (micro, answer) in op.input.iter().zip(answers) {
        match micro {
            MicroOp::Write { key, value } => written.push((key, *value)),
            MicroOp::Read { key } => {
                let own = written.iter().rev().find(|(k, _)| k == key);
                let holds = own.map_or_else(|| state.get(key), |(_, v)| *v);
                let whose = if own.is_some() {
                    " (its own earlier write)"
                } else {
                    ""
                };
                match answer {
                    Some(_) if *answer != holds => {
                        return format!(
                            "its read of {key} returns {}, but {key} holds {}{whose}",
                            show(*answer),
                            show(holds)
                        );
                    }
                    None if model.nil_read == NilRead::Absent && holds.is_some() => {
                        return format!(
                            "its read of {key} returns nil, but {key} holds {}{whose} (with \
                             nilRead absent, nil means an empty register)",
                            show(holds)
                        );
                    }
                    _ => {}
                }
            }
        }
    }
    format!(
        "the model rejects it when the registers hold {}",
        model.describe_state(state)
    )
}

impl HistoryOps for MultiHistory {
    fn model_name(&self) -> &'static str {
        "A multi-register"
    }

    fn whole_part_name(&self) -> &'static str {
        "registers"
    }

    fn slots(&self) -> usize {
        self.ops.len()
    }

    fn is_dropped(&self, op: u32) -> bool {
        self.dropped.get(op as usize).copied().unwrap_or(true)
    }

    fn client(&self, op: u32) -> u64 {
        self.op(op).map_or(0, |o| o.client)
    }

    fn call(&self, op: u32) -> u64 {
        self.op(op).map_or(0, |o| o.call)
    }

    fn ret(&self, op: u32) -> Option<u64> {
        self.op(op).and_then(|o| o.ret)
    }

    /// One part for the whole history: transactions span registers.
    fn part_key(&self, _op: u32) -> Option<String> {
        None
    }

    fn label(&self, op: u32, returned: bool) -> String {
        self.op(op)
            .map(|o| txn_label(o, returned))
            .unwrap_or_default()
    }

    fn initial_state(&self) -> String {
        self.model.describe_state(&self.model.init())
    }

    fn check_part(
        &self,
        members: &[u32],
        returned: &dyn Fn(u32) -> bool,
        max_steps: u64,
    ) -> PartCheck {
        let model = &self.model;
        check_members(
            model,
            &|op| self.op(op),
            members,
            returned,
            max_steps,
            &|op: &TxnOp| txn_label(op, op.ret.is_some()),
            &|after, sub, i, _name| {
                sub.get(i)
                    .map(|op| why_not(model, after, op))
                    .unwrap_or_default()
            },
        )
    }

    /// A transaction's answer is edited as the `:value` of its `:ok`, the same
    /// micro-operations with the values read: `"[[:r :x 1] [:w :y 2]]"`.
    fn set_output(&mut self, op: u32, edit: &OutputEdit) -> Result<()> {
        let Some(o) = self.ops.get_mut(op as usize) else {
            return Err(DistlabError::field("op", format!("no operation {op}")));
        };
        let text = match edit {
            OutputEdit::Unknown => {
                o.output = Response::Unknown;
                return Ok(());
            }
            OutputEdit::Value {
                value: Some(ValueEdit::Text(text)),
            } => text,
            _ => {
                return Err(DistlabError::field(
                    "output",
                    "a transaction returns the values it read, written as its `:ok` \
                     value: {\"result\": \"value\", \"value\": \"[[:r :x 1] [:w :y 2]]\"} \
                     (or is unknown)",
                ));
            }
        };
        let completed = parse_transaction(text).map_err(|e| match e {
            DistlabError::Parse { what, problem } => {
                DistlabError::field("output.value", format!("{what}: {problem}"))
            }
            other => other,
        })?;
        let same = completed.len() == o.input.len()
            && o.input.iter().zip(&completed).all(|(a, (b, _))| {
                a.key() == b.key()
                    && matches!(a, MicroOp::Read { .. }) == matches!(b, MicroOp::Read { .. })
            });
        if !same {
            return Err(DistlabError::field(
                "output.value",
                format!(
                    "operation {op} is `{}`: the answer must list the same reads and writes, \
                     in order",
                    txn_label(o, false)
                ),
            ));
        }
        o.output = Response::Value {
            value: completed.into_iter().map(|(_, v)| v).collect(),
        };
        Ok(())
    }

    fn set_interval(&mut self, op: u32, call: u64, ret: Option<u64>) {
        if let Some(o) = self.ops.get_mut(op as usize) {
            o.call = call;
            o.ret = ret;
        }
    }

    fn set_output_unknown(&mut self, op: u32) {
        if let Some(o) = self.ops.get_mut(op as usize) {
            o.output = Response::Unknown;
        }
    }

    fn drop_op(&mut self, op: u32) {
        if let Some(d) = self.dropped.get_mut(op as usize) {
            *d = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(input: Vec<MicroOp>, answers: Vec<Option<i64>>) -> TxnOp {
        Operation {
            client: 0,
            input,
            call: 0,
            output: Response::Value { value: answers },
            ret: Some(1),
        }
    }

    fn read(key: &str) -> MicroOp {
        MicroOp::Read { key: key.into() }
    }

    fn write(key: &str, value: i64) -> MicroOp {
        MicroOp::Write {
            key: key.into(),
            value: Some(value),
        }
    }

    #[test]
    fn labels_show_each_micro_operation() {
        let op = txn(vec![read("x"), write("y", 2)], vec![Some(1), Some(2)]);
        assert_eq!(txn_label(&op, true), "x:r→1 y:w(2)");
        assert_eq!(txn_label(&op, false), "x:r→? y:w(2)");
    }

    #[test]
    fn explanations_name_the_read_that_differs() {
        let model = MultiRegister::new(&[("x", 1)], NilRead::Absent);
        let state = model.init();
        let stale = txn(vec![read("x")], vec![Some(3)]);
        assert_eq!(
            why_not(&model, &state, &stale),
            "its read of x returns 3, but x holds 1"
        );
        let own = txn(vec![write("x", 5), read("x")], vec![Some(5), Some(1)]);
        assert_eq!(
            why_not(&model, &state, &own),
            "its read of x returns 1, but x holds 5 (its own earlier write)"
        );
        let nil = txn(vec![read("x")], vec![None]);
        assert!(why_not(&model, &state, &nil).starts_with("its read of x returns nil"));
        let fits = txn(vec![read("x")], vec![Some(1)]);
        assert!(why_not(&model, &state, &fits).starts_with("it could go next"));
    }

    #[test]
    fn the_initial_value_applies_to_every_register_named() {
        let h = MultiHistory::new(
            vec![txn(vec![read("x"), write("y", 2)], vec![Some(7), Some(2)])],
            RegisterSetup {
                initial: Some(7),
                nil_read: NilRead::Absent,
            },
        );
        assert_eq!(h.initial_state(), "{x 7, y 7}");
    }
}
