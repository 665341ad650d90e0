//! The three checker models seen through one vocabulary (read, write, append,
//! compare-and-set): the labels, explanations and output edits the lab shows and takes.

use std::fmt::Debug;

use super::{ModelKind, OutputEdit, ValueEdit};
use crate::error::{DistlabError, Result};
use crate::sim::linearizability::{
    CasRegister, CasRegisterInput, KvInput, KvModel, Model, Operation, Register, RegisterInput,
    Response,
};

/// What an operation does, whatever the model: the vocabulary of labels, explanations,
/// edits and the simulated store.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Shape<V> {
    Read,
    Write(V),
    Append(V),
    Cas { expected: V, new: V },
}

/// One operation of a history of model `M`.
pub(super) type Op<M> = Operation<<M as Model>::Input, <M as Model>::Output>;

/// A checker model with the little the lab needs to know about it. A model's state is the
/// value it holds, and its outputs are [`Response`]s of that value.
pub(super) trait Spec:
    Model<Output = Response<<Self as Model>::State>> + Copy + Default + Debug
{
    const KIND: ModelKind;
    /// Percentages of reads, writes, appends and compare-and-sets in generated histories.
    const MIX: [u64; 4];
    fn shape(input: &Self::Input) -> Shape<Self::State>;
    /// The input for `shape` on `key`; `None` if the model has no such operation.
    fn input(key: &str, shape: Shape<Self::State>) -> Option<Self::Input>;
    /// The part (key) an operation belongs to; `None` for a single register.
    fn key(input: &Self::Input) -> Option<&str>;
    fn show(value: &Self::State) -> String;
    /// The `n`th distinct value a generated history writes (or appends).
    fn token(n: u64, append: bool) -> Self::State;
    fn append(current: &Self::State, suffix: &Self::State) -> Self::State;
    fn value_from_edit(edit: Option<&ValueEdit>) -> std::result::Result<Self::State, String>;
}

/// What every single-register model (a value of `Option<i64>`, no keys) says the same way.
macro_rules! register_spec {
    ($input:ty) => {
        fn key(_input: &$input) -> Option<&str> {
            None
        }

        fn show(value: &Option<i64>) -> String {
            show_register(value)
        }

        fn token(n: u64, _append: bool) -> Option<i64> {
            Some(i64::try_from(n).unwrap_or(i64::MAX))
        }

        fn append(_current: &Option<i64>, suffix: &Option<i64>) -> Option<i64> {
            *suffix
        }

        fn value_from_edit(edit: Option<&ValueEdit>) -> std::result::Result<Option<i64>, String> {
            register_value_from_edit(edit)
        }
    };
}

pub(super) fn show_register(value: &Option<i64>) -> String {
    value.map_or_else(|| "nil".to_string(), |v| v.to_string())
}

pub(super) fn register_value_from_edit(
    edit: Option<&ValueEdit>,
) -> std::result::Result<Option<i64>, String> {
    match edit {
        None => Ok(None),
        Some(ValueEdit::Int(v)) => Ok(Some(*v)),
        Some(ValueEdit::Text(t)) if t == "nil" => Ok(None),
        Some(ValueEdit::Text(t)) => t.parse().map(Some).map_err(|_| {
            format!("the register holds integers (or null for nil), got the string {t:?}")
        }),
    }
}

impl Spec for Register {
    const KIND: ModelKind = ModelKind::Register;
    const MIX: [u64; 4] = [50, 50, 0, 0];

    fn shape(input: &RegisterInput) -> Shape<Option<i64>> {
        match input {
            RegisterInput::Read => Shape::Read,
            RegisterInput::Write { value } => Shape::Write(Some(*value)),
        }
    }

    fn input(_key: &str, shape: Shape<Option<i64>>) -> Option<RegisterInput> {
        match shape {
            Shape::Read => Some(RegisterInput::Read),
            Shape::Write(Some(value)) => Some(RegisterInput::Write { value }),
            _ => None,
        }
    }

    register_spec!(RegisterInput);
}

impl Spec for CasRegister {
    const KIND: ModelKind = ModelKind::CasRegister;
    const MIX: [u64; 4] = [40, 30, 0, 30];

    fn shape(input: &CasRegisterInput) -> Shape<Option<i64>> {
        match input {
            CasRegisterInput::Read => Shape::Read,
            CasRegisterInput::Write { value } => Shape::Write(Some(*value)),
            CasRegisterInput::Cas { expected, new } => Shape::Cas {
                expected: Some(*expected),
                new: Some(*new),
            },
        }
    }

    fn input(_key: &str, shape: Shape<Option<i64>>) -> Option<CasRegisterInput> {
        match shape {
            Shape::Read => Some(CasRegisterInput::Read),
            Shape::Write(Some(value)) => Some(CasRegisterInput::Write { value }),
            Shape::Cas {
                expected: Some(expected),
                new: Some(new),
            } => Some(CasRegisterInput::Cas { expected, new }),
            _ => None,
        }
    }

    register_spec!(CasRegisterInput);
}

impl Spec for KvModel {
    const KIND: ModelKind = ModelKind::Kv;
    const MIX: [u64; 4] = [45, 30, 15, 10];

    fn shape(input: &KvInput) -> Shape<String> {
        match input {
            KvInput::Get { .. } => Shape::Read,
            KvInput::Put { value, .. } => Shape::Write(value.clone()),
            KvInput::Append { value, .. } => Shape::Append(value.clone()),
            KvInput::Cas { expected, new, .. } => Shape::Cas {
                expected: expected.clone(),
                new: new.clone(),
            },
        }
    }

    fn input(key: &str, shape: Shape<String>) -> Option<KvInput> {
        let key = key.to_string();
        Some(match shape {
            Shape::Read => KvInput::Get { key },
            Shape::Write(value) => KvInput::Put { key, value },
            Shape::Append(value) => KvInput::Append { key, value },
            Shape::Cas { expected, new } => KvInput::Cas { key, expected, new },
        })
    }

    fn key(input: &KvInput) -> Option<&str> {
        Some(input.key())
    }

    fn show(value: &String) -> String {
        if value.is_empty() {
            "''".to_string()
        } else {
            value.clone()
        }
    }

    fn token(n: u64, append: bool) -> String {
        if append {
            format!("+{n}")
        } else {
            n.to_string()
        }
    }

    fn append(current: &String, suffix: &String) -> String {
        format!("{current}{suffix}")
    }

    fn value_from_edit(edit: Option<&ValueEdit>) -> std::result::Result<String, String> {
        match edit {
            None => {
                Err("a key-value read returns a string ('' for a missing key), not null".into())
            }
            Some(ValueEdit::Int(v)) => Ok(v.to_string()),
            Some(ValueEdit::Text(t)) => Ok(t.clone()),
        }
    }
}

/// What `shape` does to `current`: its output, and the new value if it changes it.
pub(super) fn execute<M: Spec>(
    shape: &Shape<M::State>,
    current: &M::State,
) -> (Response<M::State>, Option<M::State>) {
    match shape {
        Shape::Read => (
            Response::Value {
                value: current.clone(),
            },
            None,
        ),
        Shape::Write(v) => (Response::Ok, Some(v.clone())),
        Shape::Append(v) => (Response::Ok, Some(M::append(current, v))),
        Shape::Cas { expected, new } if expected == current => (Response::Ok, Some(new.clone())),
        Shape::Cas { .. } => (Response::Failed, None),
    }
}

/// A short label: `w(3)`, `r→3`, `r→?` (not returned), `cas(1,2)✓`, `k0:a(+5)`.
pub(super) fn label<M: Spec>(input: &M::Input, output: &M::Output, returned: bool) -> String {
    let unknown = Response::Unknown;
    let output = if returned { output } else { &unknown };
    let body = match M::shape(input) {
        Shape::Read => match output {
            Response::Value { value } => format!("r→{}", M::show(value)),
            Response::Unknown => "r→?".to_string(),
            Response::Ok => "r→ok".to_string(),
            Response::Failed => "r✗".to_string(),
        },
        Shape::Write(v) => format!("w({})", M::show(&v)),
        Shape::Append(v) => format!("a({})", M::show(&v)),
        Shape::Cas { expected, new } => format!(
            "cas({},{}){}",
            M::show(&expected),
            M::show(&new),
            match output {
                Response::Ok => "✓",
                Response::Failed => "✗",
                _ => "?",
            }
        ),
    };
    match M::key(input) {
        Some(key) => format!("{key}:{body}"),
        None => body,
    }
}

/// Why the model cannot take `input` → `output` in `state`.
pub(super) fn why_not<M: Spec>(state: &M::State, input: &M::Input, output: &M::Output) -> String {
    let now = M::show(state);
    match (M::shape(input), output) {
        (Shape::Read, Response::Value { value }) => format!(
            "a read returns the current value {now}, not {}",
            M::show(value)
        ),
        (Shape::Cas { expected, .. }, Response::Ok) => format!(
            "a compare-and-set succeeds only when the value is {}, and it is {now}",
            M::show(&expected)
        ),
        (Shape::Cas { .. }, Response::Failed) => {
            format!(
                "a compare-and-set fails only when the value differs from the expected one, \
                 and it is {now}"
            )
        }
        _ => format!("the model rejects it when the value is {now}"),
    }
}

/// The real-time reason a read cannot see its value, if there is a plain one: the value
/// had been overwritten before the read began (an operation that definitely changed it
/// started after the value's only write had returned, and itself returned before the read
/// was called), or it was written only after the read had returned. `name(i)` names the
/// `i`th operation of `ops`.
pub(super) fn stale_read_hint<M: Spec>(
    model: &M,
    ops: &[Op<M>],
    read: usize,
    name: impl Fn(usize) -> String,
) -> Option<String> {
    let r = ops.get(read)?;
    let (Shape::Read, Response::Value { value }) = (M::shape(&r.input), &r.output) else {
        return None;
    };
    let shown = M::show(value);
    let initial = model.init();
    let writers: Vec<usize> = (0..ops.len())
        .filter(|&i| {
            ops.get(i)
                .is_some_and(|op| match (M::shape(&op.input), &op.output) {
                    (_, Response::Failed) => false,
                    (Shape::Write(x) | Shape::Cas { new: x, .. }, _) => x == *value,
                    _ => false,
                })
        })
        .collect();
    // Operations that returned and certainly changed the value.
    let changed = |op: &Op<M>| {
        op.ret.is_some()
            && match (M::shape(&op.input), &op.output) {
                (Shape::Write(x) | Shape::Cas { new: x, .. }, Response::Ok) => x != *value,
                (Shape::Append(x), Response::Ok) => x != initial,
                _ => false,
            }
    };
    let before_read = |op: &Op<M>| op.ret.is_some_and(|t| t < r.call);
    match writers.as_slice() {
        [] if *value == initial => (0..ops.len())
            .find(|&i| ops.get(i).is_some_and(|op| changed(op) && before_read(op)))
            .map(|s| {
                format!(
                    "; {shown} is the initial value, and {} had changed it before this read \
                     was called",
                    name(s)
                )
            }),
        [] if M::MIX[2] == 0 => Some(format!("; no operation ever writes {shown}")),
        [w] => {
            let write = ops.get(*w)?;
            if r.ret.is_some_and(|t| t < write.call) {
                return Some(format!(
                    "; it returned before {}, the only operation writing {shown}, was called",
                    name(*w)
                ));
            }
            let written = write.ret?;
            (0..ops.len())
                .find(|&i| {
                    ops.get(i).is_some_and(|op| {
                        i != *w && changed(op) && op.call > written && before_read(op)
                    })
                })
                .map(|s| {
                    format!(
                        "; {shown} was overwritten before the read began: {} was called after \
                         {} returned, and returned before this read was called",
                        name(s),
                        name(*w)
                    )
                })
        }
        _ => None,
    }
}

/// The output an edit asks for, if it fits the operation.
pub(super) fn output_from_edit<M: Spec>(input: &M::Input, edit: &OutputEdit) -> Result<M::Output> {
    let wrong = |problem: &str| Err(DistlabError::field("output.result", problem));
    match (M::shape(input), edit) {
        (_, OutputEdit::Unknown) => Ok(Response::Unknown),
        (Shape::Read, OutputEdit::Value { value }) => Ok(Response::Value {
            value: M::value_from_edit(value.as_ref())
                .map_err(|p| DistlabError::field("output.value", p))?,
        }),
        (Shape::Read, _) => wrong("a read returns a value (or is unknown)"),
        (Shape::Write(_) | Shape::Append(_), OutputEdit::Ok) => Ok(Response::Ok),
        (Shape::Write(_) | Shape::Append(_), _) => wrong("a write returns ok (or is unknown)"),
        (Shape::Cas { .. }, OutputEdit::Ok) => Ok(Response::Ok),
        (Shape::Cas { .. }, OutputEdit::Failed) => Ok(Response::Failed),
        (Shape::Cas { .. }, OutputEdit::Value { .. }) => {
            wrong("a compare-and-set returns ok or failed (or is unknown)")
        }
    }
}
