//! The lab's history, whatever its model: the operations (dropped ones keep their number),
//! the check of one part with its answer replayed and explained, and the parsers of pasted
//! text.

use std::fmt::Debug;

use super::multi::MultiHistory;
use super::spec::{Op, Spec, label, output_from_edit, stale_read_hint, why_not};
use super::store::{Generation, generate};
use super::view::model_name;
use super::{
    HistoryFormat, MAX_PASTED_BYTES, MAX_PASTED_OPERATIONS, ModelKind, OutputEdit, RegisterSetup,
};
use crate::error::{DistlabError, Result};
use crate::sim::linearizability::jepsen::{
    is_multi_register_history, parse_edn_multi_register_history, parse_edn_register_history,
    parse_etcd_log, parse_kv_log,
};
use crate::sim::linearizability::{
    CasRegister, CheckOptions, KvModel, Model, Operation, PartitionOutcome, Register, Response,
    check_with, replay,
};

/// The operations of the lab's history. Dropped operations keep their slot, so that
/// operation numbers never change.
#[derive(Debug, Clone)]
pub(super) struct History<M: Spec> {
    pub(super) ops: Vec<Op<M>>,
    pub(super) dropped: Vec<bool>,
    /// The model the history is checked against (a register's initial value, what its nil
    /// reads mean).
    pub(super) model: M,
}

impl<M: Spec> History<M> {
    pub(super) fn new(ops: Vec<Op<M>>, model: M) -> Self {
        History {
            dropped: vec![false; ops.len()],
            ops,
            model,
        }
    }

    pub(super) fn op(&self, op: u32) -> Option<&Op<M>> {
        self.ops.get(op as usize)
    }

    pub(super) fn op_mut(&mut self, op: u32) -> Option<&mut Op<M>> {
        self.ops.get_mut(op as usize)
    }
}

/// What the checker found in one part, in operation numbers.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum PartVerdict {
    /// `order` is a witness; `omitted` are pending operations it leaves out (they never
    /// took effect); `state` is the value after the witness.
    Linearizable {
        order: Vec<u32>,
        omitted: Vec<u32>,
        state: String,
    },
    /// `prefix` is the longest linearizable prefix, `state` the value after it, and
    /// `unplaceable` the operations that had to come next, none of which can (`reasons`,
    /// one each). `deadline` is the earliest return among the operations not in the
    /// prefix: everything called before it is a candidate to go next.
    Violation {
        prefix: Vec<u32>,
        unplaceable: Vec<u32>,
        state: String,
        reasons: Vec<String>,
        deadline: Option<(u32, u64)>,
    },
    Undecided {
        reason: String,
    },
}

/// One check of one part.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct PartCheck {
    pub(super) verdict: PartVerdict,
    /// Model steps the search took.
    pub(super) steps: u64,
    /// Set if the checker's answer does not replay: a witness the model rejects or that
    /// breaks real time, or a prefix that does not lead to the reported state.
    pub(super) replay_problem: Option<String>,
    /// How many of the part's operations had returned when it was checked.
    pub(super) returned: usize,
}

/// The lab's view of a history, whatever its model: what the timeline, the edits and the
/// checks need.
pub(super) trait HistoryOps: Debug {
    /// What the history is of, for the verdict: `A register`.
    fn model_name(&self) -> &'static str;
    /// What its one part is called when it is not split by key.
    fn whole_part_name(&self) -> &'static str {
        "register"
    }
    /// Operation slots, dropped ones included.
    fn slots(&self) -> usize;
    fn is_dropped(&self, op: u32) -> bool;
    fn client(&self, op: u32) -> u64;
    fn call(&self, op: u32) -> u64;
    fn ret(&self, op: u32) -> Option<u64>;
    /// The part an operation belongs to: its key, or `None` for a register.
    fn part_key(&self, op: u32) -> Option<String>;
    /// The operation's label, its output shown only if `returned`.
    fn label(&self, op: u32, returned: bool) -> String;
    /// The value before any operation.
    fn initial_state(&self) -> String;
    /// Checks the sub-history of `members` (one part), with the operations for which
    /// `returned` is false still pending (no return, output unknown).
    fn check_part(
        &self,
        members: &[u32],
        returned: &dyn Fn(u32) -> bool,
        max_steps: u64,
    ) -> PartCheck;
    fn set_output(&mut self, op: u32, edit: &OutputEdit) -> Result<()>;
    fn set_interval(&mut self, op: u32, call: u64, ret: Option<u64>);
    fn set_output_unknown(&mut self, op: u32);
    fn drop_op(&mut self, op: u32);
}

impl<M: Spec> HistoryOps for History<M> {
    fn model_name(&self) -> &'static str {
        model_name(M::KIND)
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

    fn part_key(&self, op: u32) -> Option<String> {
        self.op(op)
            .and_then(|o| M::key(&o.input))
            .map(str::to_string)
    }

    fn label(&self, op: u32, returned: bool) -> String {
        self.op(op)
            .map(|o| label::<M>(&o.input, &o.output, returned))
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
        let model = self.model;
        check_members(
            &model,
            &|op| self.op(op),
            members,
            returned,
            max_steps,
            &|op: &Op<M>| label::<M>(&op.input, &op.output, op.ret.is_some()),
            &|after, sub, i, name| {
                let Some(op) = sub.get(i) else {
                    return String::new();
                };
                match model.step(after, &op.input, &op.output) {
                    None => {
                        let hint = stale_read_hint::<M>(&model, sub, i, name).unwrap_or_default();
                        format!("{}{hint}", why_not::<M>(after, &op.input, &op.output))
                    }
                    Some(next) => format!(
                        "it could go next (leaving the value {}), but then the operations \
                         left cannot all be placed",
                        M::show(&next)
                    ),
                }
            },
        )
    }

    fn set_output(&mut self, op: u32, edit: &OutputEdit) -> Result<()> {
        let Some(o) = self.op_mut(op) else {
            return Err(DistlabError::field("op", format!("no operation {op}")));
        };
        o.output = output_from_edit::<M>(&o.input, edit)?;
        Ok(())
    }

    fn set_interval(&mut self, op: u32, call: u64, ret: Option<u64>) {
        if let Some(o) = self.op_mut(op) {
            o.call = call;
            o.ret = ret;
        }
    }

    fn set_output_unknown(&mut self, op: u32) {
        if let Some(o) = self.op_mut(op) {
            o.output = Response::Unknown;
        }
    }

    fn drop_op(&mut self, op: u32) {
        if let Some(d) = self.dropped.get_mut(op as usize) {
            *d = true;
        }
    }
}

/// One operation of a history of model `M`.
pub(super) type ModelOp<M> = Operation<<M as Model>::Input, <M as Model>::Output>;

/// Why operation `i` of a sub-history cannot follow a prefix that leaves the state
/// `after`: given the state, the sub-history, `i`, and a namer of its operations.
pub(super) type Explain<'a, M> =
    dyn Fn(&<M as Model>::State, &[ModelOp<M>], usize, &dyn Fn(usize) -> String) -> String + 'a;

/// Checks the sub-history of `members` (one part; `op` looks an operation up by number)
/// against `model`, the operations for which `returned` is false still pending, and
/// replays the answer. `label` names an operation in the reasons, `explain` says why an
/// unplaceable one cannot go next.
pub(super) fn check_members<'h, M, V>(
    model: &M,
    op: &dyn Fn(u32) -> Option<&'h ModelOp<M>>,
    members: &[u32],
    returned: &dyn Fn(u32) -> bool,
    max_steps: u64,
    label: &dyn Fn(&ModelOp<M>) -> String,
    explain: &Explain<'_, M>,
) -> PartCheck
where
    M: Model<Output = Response<V>>,
    M::Input: 'h,
    V: Clone + Debug + 'h,
{
    let sub: Vec<ModelOp<M>> = members
        .iter()
        .filter_map(|&id| {
            let mut op = op(id)?.clone();
            if !returned(id) {
                op.ret = None;
                op.output = Response::Unknown;
            }
            Some(op)
        })
        .collect();
    let ids = |local: &[usize]| -> Vec<u32> {
        local
            .iter()
            .filter_map(|&i| members.get(i).copied())
            .collect()
    };
    let options = CheckOptions {
        max_steps: Some(max_steps),
        check_every_part: false,
    };
    let undecided = |reason: String, steps| PartCheck {
        verdict: PartVerdict::Undecided { reason },
        steps,
        replay_problem: None,
        returned: 0,
    };
    let result = match check_with(model, &sub, &options) {
        Ok(result) => result,
        Err(e) => return undecided(e.to_string(), 0),
    };
    // The sub-history has one key, so the model makes one part of it.
    let outcome = match result.partitions.as_slice() {
        [part] => &part.outcome,
        parts => {
            return undecided(
                format!("the model split one key into {} parts", parts.len()),
                result.steps,
            );
        }
    };
    let (verdict, replay_problem) = match outcome {
        PartitionOutcome::Linearizable { order, omitted } => match replay(model, &sub, order) {
            Ok(state) => (
                PartVerdict::Linearizable {
                    order: ids(order),
                    omitted: ids(omitted),
                    state: model.describe_state(&state),
                },
                None,
            ),
            Err(e) => (
                PartVerdict::Linearizable {
                    order: ids(order),
                    omitted: ids(omitted),
                    state: "?".into(),
                },
                Some(format!("the witness does not replay: {e}")),
            ),
        },
        PartitionOutcome::Violation {
            prefix,
            unplaceable,
            state,
        } => {
            let (reasons, problem) = match replay(model, &sub, prefix) {
                Ok(after) => {
                    let problem = (model.describe_state(&after) != *state).then(|| {
                        format!(
                            "the prefix replays to {}, not the reported {state}",
                            model.describe_state(&after)
                        )
                    });
                    let name = |i: usize| {
                        let id = members.get(i).copied().unwrap_or_default();
                        sub.get(i)
                            .map_or_else(String::new, |op| format!("#{id} {}", label(op)))
                    };
                    let reasons = unplaceable
                        .iter()
                        .filter(|&&i| i < sub.len())
                        .map(|&i| explain(&after, &sub, i, &name))
                        .collect();
                    (reasons, problem)
                }
                Err(e) => (Vec::new(), Some(format!("the prefix does not replay: {e}"))),
            };
            let deadline = sub
                .iter()
                .enumerate()
                .filter(|(i, _)| !prefix.contains(i))
                .filter_map(|(i, op)| Some((op.ret?, i)))
                .min()
                .and_then(|(ret, i)| Some((*members.get(i)?, ret)));
            (
                PartVerdict::Violation {
                    prefix: ids(prefix),
                    unplaceable: ids(unplaceable),
                    state: state.clone(),
                    reasons,
                    deadline,
                },
                problem,
            )
        }
        PartitionOutcome::Undecided => (
            PartVerdict::Undecided {
                reason: format!("not decided within {max_steps} checker steps"),
            },
            None,
        ),
    };
    PartCheck {
        verdict,
        steps: result.steps,
        replay_problem,
        returned: 0,
    }
}

/// A history of one of the four models.
#[derive(Debug, Clone)]
pub(super) enum AnyHistory {
    Register(History<Register>),
    CasRegister(History<CasRegister>),
    Kv(History<KvModel>),
    MultiRegister(MultiHistory),
}

impl AnyHistory {
    pub(super) fn get(&self) -> &dyn HistoryOps {
        match self {
            AnyHistory::Register(h) => h,
            AnyHistory::CasRegister(h) => h,
            AnyHistory::Kv(h) => h,
            AnyHistory::MultiRegister(h) => h,
        }
    }

    pub(super) fn get_mut(&mut self) -> &mut dyn HistoryOps {
        match self {
            AnyHistory::Register(h) => h,
            AnyHistory::CasRegister(h) => h,
            AnyHistory::Kv(h) => h,
            AnyHistory::MultiRegister(h) => h,
        }
    }

    pub(super) fn generate(g: &Generation, register: RegisterSetup) -> Self {
        let RegisterSetup { initial, nil_read } = register;
        match g.model {
            ModelKind::Register => {
                let model = Register::new(initial, nil_read);
                AnyHistory::Register(History::new(generate(g, &model), model))
            }
            ModelKind::CasRegister => {
                let model = CasRegister::new(initial, nil_read);
                AnyHistory::CasRegister(History::new(generate(g, &model), model))
            }
            ModelKind::Kv => AnyHistory::Kv(History::new(generate(g, &KvModel), KvModel)),
        }
    }

    /// Parses pasted text; errors name the field `text` and the line (and, for EDN, the
    /// column). `register` sets up the register models.
    pub(super) fn parse(
        format: HistoryFormat,
        text: &str,
        register: RegisterSetup,
    ) -> Result<Self> {
        if text.len() > MAX_PASTED_BYTES {
            return Err(DistlabError::field(
                "text",
                format!(
                    "{} bytes is more than the {MAX_PASTED_BYTES} a pasted history may have",
                    text.len()
                ),
            ));
        }
        let at_line = |e: DistlabError| match e {
            DistlabError::Parse { what, problem } => {
                DistlabError::field("text", format!("{what}: {problem}"))
            }
            other => other,
        };
        let (history, count, example) = match format {
            HistoryFormat::EtcdLog => {
                let ops = parse_etcd_log(text).map_err(at_line)?;
                let count = ops.len();
                (
                    AnyHistory::CasRegister(History::new(
                        ops,
                        CasRegister::new(register.initial, register.nil_read),
                    )),
                    count,
                    "INFO  jepsen.util - 3\t:invoke\t:read\tnil",
                )
            }
            HistoryFormat::KvEdn => {
                let ops = parse_kv_log(text).map_err(at_line)?;
                let count = ops.len();
                (
                    AnyHistory::Kv(History::new(ops, KvModel)),
                    count,
                    "{:process 0, :type :invoke, :f :get, :key \"4\", :value nil}",
                )
            }
            HistoryFormat::Edn => {
                if is_multi_register_history(text) {
                    return Err(DistlabError::field(
                        "text",
                        "this is a multi-register history (transactions over several keys): \
                         paste it with the format multiRegisterEdn"
                            .to_string(),
                    ));
                }
                let ops = parse_edn_register_history(text).map_err(at_line)?;
                let count = ops.len();
                (
                    AnyHistory::CasRegister(History::new(
                        ops,
                        CasRegister::new(register.initial, register.nil_read),
                    )),
                    count,
                    "{:process 0, :type :invoke, :f :write, :value 3}",
                )
            }
            HistoryFormat::MultiRegisterEdn => {
                let ops = parse_edn_multi_register_history(text).map_err(at_line)?;
                let count = ops.len();
                (
                    AnyHistory::MultiRegister(MultiHistory::new(ops, register)),
                    count,
                    "{:process 0, :type :invoke, :f :txn, :value [[:r :x nil] [:w :y 2]]}",
                )
            }
        };
        if count == 0 {
            return Err(DistlabError::field(
                "text",
                format!("no operations found; expected lines like `{example}`"),
            ));
        }
        if count > MAX_PASTED_OPERATIONS {
            return Err(DistlabError::field(
                "text",
                format!(
                    "{count} operations is more than the {MAX_PASTED_OPERATIONS} a pasted \
                     history may have"
                ),
            ));
        }
        Ok(history)
    }
}
