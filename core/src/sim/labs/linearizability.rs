//! Lab `sim.linearizability`: a history of register or key-value operations grows one event
//! at a time, and the linearizability checker ([`crate::sim::linearizability`]) judges every
//! prefix. It shows what the definition says: each operation is a bar from its call to its
//! return, and the history is linearizable when one instant inside every bar can be chosen so
//! that, read left to right, those instants form a run the sequential object explains. The
//! witness numbers them; a violation shows the longest prefix that can be placed, the state
//! it leaves, and why none of the operations that must come next fits.
//!
//! Histories come from a simulated store, or are pasted as Jepsen text (an etcd log, or EDN
//! key-value lines). The correct store applies each operation at one instant inside its
//! interval, so its histories are linearizable by construction, which the lab checks as an
//! invariant; the lagging replica serves some reads from a copy `lagTicks` behind and loses
//! some acknowledged writes, so violations arise as they do in real systems, and only when
//! an overlap of the bars makes the staleness observable. Operations can be edited, dropped
//! or timed out by hand; each change re-checks only the part (key) it touches.
//!
//! Each step reveals one call or return, calls before returns at equal times (intervals are
//! closed). Operations not yet returned are pending: the checker may place them anywhere
//! after their call, with any output, or leave them out. A call therefore never changes the
//! verdict, and linearizability is prefix-closed, so only a return re-checks, only its own
//! part, and a part found not linearizable only when its report names the operation that
//! returned: no later event can repair it. Each check is bounded by `maxCheckerSteps` (the search is exponential in the worst
//! case); the result is cached in the lab, so `view()` does no search.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::fmt::Debug;
use std::hash::Hasher;

use crate::error::{DistlabError, Result, check_probability, check_range};
use crate::lab::LabModel;
use crate::lab::view::{InvariantStatus, MetricsRecorder, NodeView, Panel, TimelineBar, View};
use crate::rng::SimRng;
use crate::sim::NodeId;
use crate::sim::linearizability::jepsen::{parse_etcd_log, parse_kv_log};
use crate::sim::linearizability::{
    CasRegister, CasRegisterInput, CheckOptions, KvInput, KvModel, Model, Operation,
    PartitionOutcome, Register, RegisterInput, Response, check_with, replay,
};
use crate::sim::trace::StableHasher;
use crate::time::{Duration, Time};

/// The most operations a generated history has: enough to see every phenomenon, few enough
/// that the timeline stays legible and every re-check instant.
pub const MAX_GENERATED_OPERATIONS: u32 = 300;
/// The most concurrent clients of a generated history.
pub const MAX_CLIENTS: u32 = 16;
/// The most keys of a generated key-value history.
pub const MAX_KEYS: u32 = 16;
/// The most operations a pasted history may have.
pub const MAX_PASTED_OPERATIONS: usize = 1_000;
/// The longest pasted text, in bytes.
pub const MAX_PASTED_BYTES: usize = 1 << 20;
/// The latest call or return time an edit may set, in history ticks.
pub const MAX_HISTORY_TIME: u64 = 1_000_000;
/// The most model steps one check may take.
pub const MAX_CHECKER_STEPS: u64 = 10_000_000;
/// The longest replica lag, in ticks.
pub const MAX_LAG_TICKS: u64 = 1_000;
/// The highest timeout probability: beyond it most of the history would be indeterminate.
pub const MAX_TIMEOUT_PROBABILITY: f64 = 0.5;
/// Revealed events kept in the trace.
pub const TRACE_EVENTS: usize = 1_024;
/// Points kept per metric series.
pub const SERIES_POINTS: usize = 600;

/// The sequential object the history is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ModelKind {
    /// One integer register, initially nil: reads and writes.
    #[default]
    Register,
    /// One integer register with compare-and-set as well (what Jepsen's etcd test drives).
    CasRegister,
    /// A string-to-string map (keys `k0`, `k1`...): get, put, append and compare-and-set,
    /// checked one key at a time.
    Kv,
}

/// The store a generated history comes from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum StoreKind {
    /// Every operation takes effect at one instant between its call and its return, and
    /// reads see the latest value: linearizable by construction.
    Correct,
    /// A primary and a replica that lags `lagTicks` behind it. A read is served by the
    /// replica with probability `staleReadProbability` (it answers what the primary held
    /// `lagTicks` ago); a write, append or successful compare-and-set is acknowledged but
    /// lost (never applied, as after a failover to a replica that missed it) with
    /// probability `lostWriteProbability`.
    LaggingReplica {
        #[schemars(range(min = 0, max = 1))]
        stale_read_probability: f64,
        #[schemars(range(min = 0, max = 1))]
        lost_write_probability: f64,
        #[schemars(range(min = 1, max = 1000))]
        lag_ticks: u64,
    },
}

/// The text format of a pasted history; it decides the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum HistoryFormat {
    /// Jepsen's etcd test log (`INFO  jepsen.util - 3 :invoke :cas [3 0]`): a
    /// compare-and-set register.
    EtcdLog,
    /// One EDN map per line (`{:process 0, :type :invoke, :f :get, :key "4", :value nil}`):
    /// a key-value store.
    KvEdn,
}

/// A history given as Jepsen text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PastedHistory {
    pub format: HistoryFormat,
    pub text: String,
}

/// Configuration of the linearizability lab. JSON: `{"seed": 1, "model": "register",
/// "clients": 4, "keys": 3, "operations": 40, "store": {"type": "laggingReplica",
/// "staleReadProbability": 0.2, "lostWriteProbability": 0, "lagTicks": 8},
/// "timeoutProbability": 0.03, "history": null, "tickMs": 100, "maxCheckerSteps": 200000}`.
/// With `history` set, the pasted text replaces the generated history and its format
/// decides the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LinearizabilityLabConfig {
    /// Seed of the generated history.
    pub seed: u64,
    pub model: ModelKind,
    /// Concurrent clients of a generated history (a client whose operation times out is
    /// replaced by a new one, as Jepsen does).
    #[schemars(range(min = 1, max = 16))]
    pub clients: u32,
    /// Keys of a generated key-value history.
    #[schemars(range(min = 1, max = 16))]
    pub keys: u32,
    /// Operations of a generated history.
    #[schemars(range(min = 1, max = 300))]
    pub operations: u32,
    pub store: StoreKind,
    /// Probability that a generated operation's response is lost: it stays pending for
    /// ever (Jepsen `:info`), and took effect or not with even odds.
    #[schemars(range(min = 0, max = 0.5))]
    pub timeout_probability: f64,
    /// A pasted history, used instead of a generated one.
    pub history: Option<PastedHistory>,
    /// Lab milliseconds per history tick: how fast the history unrolls.
    #[schemars(range(min = 0.001, max = 60000))]
    pub tick_ms: f64,
    /// The most model steps one check may take; a part not decided within it is shown
    /// as undecided.
    #[schemars(range(min = 1, max = 10000000))]
    pub max_checker_steps: u64,
}

impl Default for LinearizabilityLabConfig {
    fn default() -> Self {
        LinearizabilityLabConfig {
            seed: 1,
            model: ModelKind::Register,
            clients: 4,
            keys: 3,
            operations: 40,
            store: StoreKind::LaggingReplica {
                stale_read_probability: 0.2,
                lost_write_probability: 0.0,
                lag_ticks: 8,
            },
            timeout_probability: 0.03,
            history: None,
            tick_ms: 100.0,
            max_checker_steps: 200_000,
        }
    }
}

/// A value given in an edit: an integer for the registers (`null` for nil), a string (or
/// an integer, taken as its decimal text) for the key-value store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ValueEdit {
    Int(i64),
    Text(String),
}

/// An operation's new output: `{"result": "value", "value": 3}` (a read's answer),
/// `{"result": "ok"}` (a write, or a compare-and-set that matched), `{"result": "failed"}`
/// (a compare-and-set that did not), `{"result": "unknown"}` (never learned).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "result",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum OutputEdit {
    Value { value: Option<ValueEdit> },
    Ok,
    Failed,
    Unknown,
}

/// What can be done to the history. Operations are named by their number `op` (shown on
/// the timeline and in the operations table), which edits and drops never change. JSON:
/// `{"type": "regenerate", "seed": 7}`, `{"type": "editOutput", "op": 12, "output":
/// {"result": "value", "value": 3}}`, `{"type": "editInterval", "op": 12, "call": 30,
/// "ret": 41}`, `{"type": "dropOperation", "op": 12}`, `{"type": "markTimedOut", "op": 12}`,
/// `{"type": "paste", "format": "etcdLog", "text": "..."}`. Each re-checks what it touches;
/// on an error the history is unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum LinearizabilityLabAction {
    /// A new generated history from `seed` (and, if given, another model or store), revealed
    /// from its start.
    Regenerate {
        seed: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<ModelKind>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        store: Option<StoreKind>,
    },
    /// Sets what operation `op` returned.
    EditOutput { op: u32, output: OutputEdit },
    /// Moves operation `op` to `[call, ret]` (history ticks); it returns again if it had
    /// timed out.
    EditInterval { op: u32, call: u64, ret: u64 },
    /// Removes operation `op` from the history, as if it had never been issued.
    DropOperation { op: u32 },
    /// Loses operation `op`'s response: it never returns and its output is unknown.
    MarkTimedOut { op: u32 },
    /// Replaces the history with pasted Jepsen text, revealed from its start.
    Paste { format: HistoryFormat, text: String },
}

// ---------------------------------------------------------------------------------------
// The three models, seen through one shape.

/// What an operation does, whatever the model: the vocabulary of labels, explanations,
/// edits and the simulated store.
#[derive(Debug, Clone, PartialEq)]
enum Shape<V> {
    Read,
    Write(V),
    Append(V),
    Cas { expected: V, new: V },
}

/// One operation of a history of model `M`.
type Op<M> = Operation<<M as Model>::Input, <M as Model>::Output>;

/// A checker model with the little the lab needs to know about it. A model's state is the
/// value it holds, and its outputs are [`Response`]s of that value.
trait Spec: Model<Output = Response<<Self as Model>::State>> + Copy + Default + Debug {
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

fn show_register(value: &Option<i64>) -> String {
    value.map_or_else(|| "nil".to_string(), |v| v.to_string())
}

fn register_value_from_edit(edit: Option<&ValueEdit>) -> std::result::Result<Option<i64>, String> {
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

    fn key(_input: &RegisterInput) -> Option<&str> {
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

    fn key(_input: &CasRegisterInput) -> Option<&str> {
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
fn execute<M: Spec>(
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
fn label<M: Spec>(input: &M::Input, output: &M::Output, returned: bool) -> String {
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
fn why_not<M: Spec>(state: &M::State, input: &M::Input, output: &M::Output) -> String {
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
            format!("a compare-and-set fails only when the value differs from the expected {now}")
        }
        _ => format!("the model rejects it when the value is {now}"),
    }
}

/// The real-time reason a read cannot see its value, if there is a plain one: the value
/// had been overwritten before the read began (an operation that definitely changed it
/// started after the value's only write had returned, and itself returned before the read
/// was called), or it was written only after the read had returned. `name(i)` names the
/// `i`th operation of `ops`.
fn stale_read_hint<M: Spec>(
    ops: &[Op<M>],
    read: usize,
    name: impl Fn(usize) -> String,
) -> Option<String> {
    let r = ops.get(read)?;
    let (Shape::Read, Response::Value { value }) = (M::shape(&r.input), &r.output) else {
        return None;
    };
    let shown = M::show(value);
    let initial = M::default().init();
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
fn output_from_edit<M: Spec>(input: &M::Input, edit: &OutputEdit) -> Result<M::Output> {
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

// ---------------------------------------------------------------------------------------
// The simulated store.

/// The knobs of a generated history.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Generation {
    seed: u64,
    model: ModelKind,
    clients: u32,
    keys: u32,
    operations: u32,
    store: StoreKind,
    timeout_probability: f64,
}

impl Generation {
    /// Checks every knob, naming the field.
    fn validate(&self) -> Result<()> {
        check_count("clients", self.clients, MAX_CLIENTS)?;
        check_count("keys", self.keys, MAX_KEYS)?;
        check_count("operations", self.operations, MAX_GENERATED_OPERATIONS)?;
        check_range(
            "timeoutProbability",
            self.timeout_probability,
            0.0,
            MAX_TIMEOUT_PROBABILITY,
        )?;
        validate_store(&self.store)
    }
}

fn check_count(field: &str, value: u32, max: u32) -> Result<()> {
    if !(1..=max).contains(&value) {
        return Err(DistlabError::field(
            field,
            format!("must be between 1 and {max}, got {value}"),
        ));
    }
    Ok(())
}

fn validate_store(store: &StoreKind) -> Result<()> {
    if let StoreKind::LaggingReplica {
        stale_read_probability,
        lost_write_probability,
        lag_ticks,
    } = store
    {
        check_probability("store.staleReadProbability", *stale_read_probability)?;
        check_probability("store.lostWriteProbability", *lost_write_probability)?;
        if !(1..=MAX_LAG_TICKS).contains(lag_ticks) {
            return Err(DistlabError::field(
                "store.lagTicks",
                format!("must be between 1 and {MAX_LAG_TICKS}, got {lag_ticks}"),
            ));
        }
    }
    Ok(())
}

/// When one operation of the simulated run happened and who ran it.
#[derive(Debug, Clone, Copy)]
struct Timing {
    client: u64,
    call: u64,
    /// When it takes effect at the primary: strictly inside `[call, ret]`.
    effect: u64,
    /// `None`: the response was lost.
    ret: Option<u64>,
    took_effect: bool,
}

/// Intervals of `operations` operations by `clients` sequential clients: each calls,
/// takes effect 1–3 ticks later, returns 1–3 ticks after that and thinks 0–2 ticks. A
/// client whose response is lost is replaced by a fresh one (Jepsen's `:info` process).
fn schedule(rng: &mut SimRng, g: &Generation) -> Vec<Timing> {
    struct Slot {
        client: u64,
        next_call: u64,
    }
    let mut slots: Vec<Slot> = (0..u64::from(g.clients))
        .map(|client| Slot {
            client,
            next_call: rng.below(3),
        })
        .collect();
    let mut next_client = u64::from(g.clients);
    let mut timings = Vec::with_capacity(g.operations as usize);
    for _ in 0..g.operations {
        let Some(slot) = slots.iter_mut().min_by_key(|s| s.next_call) else {
            break;
        };
        let call = slot.next_call;
        let effect = call + 1 + rng.below(3);
        let timed_out = rng.chance(g.timeout_probability);
        let took_effect = !timed_out || rng.chance(0.5);
        let client = slot.client;
        let ret = if timed_out {
            slot.client = next_client;
            next_client += 1;
            slot.next_call = effect + 1 + rng.below(3);
            None
        } else {
            let ret = effect + 1 + rng.below(3);
            slot.next_call = ret + rng.below(3);
            Some(ret)
        };
        timings.push(Timing {
            client,
            call,
            effect,
            ret,
            took_effect,
        });
    }
    timings
}

/// Draws the next operation on a key holding `current`; `tokens` counts the values
/// written so far, so every written value is new.
fn draw_shape<M: Spec>(rng: &mut SimRng, current: &M::State, tokens: &mut u64) -> Shape<M::State> {
    fn next<M: Spec>(tokens: &mut u64, append: bool) -> M::State {
        *tokens += 1;
        M::token(*tokens, append)
    }
    let [reads, writes, appends, _] = M::MIX;
    let roll = rng.below(100);
    if roll < reads {
        Shape::Read
    } else if roll < reads + writes {
        Shape::Write(next::<M>(tokens, false))
    } else if roll < reads + writes + appends {
        Shape::Append(next::<M>(tokens, true))
    } else {
        // Half the time the value the key holds, so that compare-and-sets often succeed.
        let expected = if rng.below(2) == 0 && *current != M::default().init() {
            current.clone()
        } else {
            M::token(1 + rng.below((*tokens).max(1)), false)
        };
        Shape::Cas {
            expected,
            new: next::<M>(tokens, false),
        }
    }
}

/// A history of the simulated store: operations take effect in the order of their effect
/// times; the primary holds the true values, and a lagging replica answers stale reads
/// with the value the primary held `lag` ticks earlier.
fn generate<M: Spec>(g: &Generation) -> Vec<Op<M>> {
    let mut rng = SimRng::new(g.seed);
    let timings = schedule(&mut rng, g);
    let (stale, lost, lag) = match g.store {
        StoreKind::Correct => (0.0, 0.0, 0),
        StoreKind::LaggingReplica {
            stale_read_probability,
            lost_write_probability,
            lag_ticks,
        } => (stale_read_probability, lost_write_probability, lag_ticks),
    };
    let keys = if M::KIND == ModelKind::Kv { g.keys } else { 1 };
    let initial = M::default().init();
    // Per key, every value the primary took, with when.
    let mut versions: Vec<Vec<(u64, M::State)>> = vec![Vec::new(); keys as usize];
    let mut effect_order: Vec<usize> = (0..timings.len()).collect();
    effect_order.sort_by_key(|&i| (timings.get(i).map_or(0, |t| t.effect), i));
    let mut tokens = 0;
    let mut ops: Vec<(usize, Op<M>)> = Vec::new();
    for i in effect_order {
        let (Some(t), key_index) = (timings.get(i), rng.below(u64::from(keys)) as usize) else {
            continue;
        };
        let Some(history) = versions.get_mut(key_index) else {
            continue;
        };
        let key = format!("k{key_index}");
        let current = history.last().map_or(&initial, |(_, v)| v).clone();
        let shape = draw_shape::<M>(&mut rng, &current, &mut tokens);
        let (Some(input), (mut output, new_value)) = (
            M::input(&key, shape.clone()),
            execute::<M>(&shape, &current),
        ) else {
            continue;
        };
        if shape == Shape::Read && rng.chance(stale) {
            // The replica has applied what the primary took up to `lag` ticks ago.
            let replica = t
                .effect
                .checked_sub(lag)
                .and_then(|as_of| history.iter().rev().find(|(at, _)| *at <= as_of))
                .map_or(&initial, |(_, v)| v);
            output = Response::Value {
                value: replica.clone(),
            };
        }
        if let Some(value) = new_value
            && t.took_effect
            && !rng.chance(lost)
        {
            history.push((t.effect, value));
        }
        ops.push((
            i,
            Operation {
                client: t.client,
                input,
                call: t.call,
                output: if t.ret.is_some() {
                    output
                } else {
                    Response::Unknown
                },
                ret: t.ret,
            },
        ));
    }
    // Numbered in order of call, as a reader scans the timeline.
    ops.sort_by_key(|(i, op)| (op.call, *i));
    ops.into_iter().map(|(_, op)| op).collect()
}

// ---------------------------------------------------------------------------------------
// A history, whatever its model.

/// The operations of the lab's history. Dropped operations keep their slot, so that
/// operation numbers never change.
#[derive(Debug, Clone)]
struct History<M: Spec> {
    ops: Vec<Op<M>>,
    dropped: Vec<bool>,
}

impl<M: Spec> History<M> {
    fn new(ops: Vec<Op<M>>) -> Self {
        History {
            dropped: vec![false; ops.len()],
            ops,
        }
    }

    fn op(&self, op: u32) -> Option<&Op<M>> {
        self.ops.get(op as usize)
    }

    fn op_mut(&mut self, op: u32) -> Option<&mut Op<M>> {
        self.ops.get_mut(op as usize)
    }
}

/// What the checker found in one part, in operation numbers.
#[derive(Debug, Clone, PartialEq)]
enum PartVerdict {
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
struct PartCheck {
    verdict: PartVerdict,
    /// Model steps the search took.
    steps: u64,
    /// Set if the checker's answer does not replay: a witness the model rejects or that
    /// breaks real time, or a prefix that does not lead to the reported state.
    replay_problem: Option<String>,
}

/// The lab's view of a history, whatever its model: what the timeline, the edits and the
/// checks need.
trait HistoryOps: Debug {
    fn model(&self) -> ModelKind;
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
    fn model(&self) -> ModelKind {
        M::KIND
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
        M::default().describe_state(&M::default().init())
    }

    fn check_part(
        &self,
        members: &[u32],
        returned: &dyn Fn(u32) -> bool,
        max_steps: u64,
    ) -> PartCheck {
        let model = M::default();
        let sub: Vec<Op<M>> = members
            .iter()
            .filter_map(|&id| {
                let mut op = self.op(id)?.clone();
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
        };
        let result = match check_with(&model, &sub, &options) {
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
            PartitionOutcome::Linearizable { order, omitted } => {
                match replay(&model, &sub, order) {
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
                }
            }
            PartitionOutcome::Violation {
                prefix,
                unplaceable,
                state,
            } => {
                let (reasons, problem) = match replay(&model, &sub, prefix) {
                    Ok(after) => {
                        let problem = (model.describe_state(&after) != *state).then(|| {
                            format!(
                                "the prefix replays to {}, not the reported {state}",
                                model.describe_state(&after)
                            )
                        });
                        let name = |i: usize| {
                            let id = members.get(i).copied().unwrap_or_default();
                            sub.get(i).map_or_else(String::new, |op| {
                                format!(
                                    "#{id} {}",
                                    label::<M>(&op.input, &op.output, op.ret.is_some())
                                )
                            })
                        };
                        let reasons = unplaceable
                            .iter()
                            .filter_map(|&i| Some((i, sub.get(i)?)))
                            .map(|(i, op)| match model.step(&after, &op.input, &op.output) {
                                None => {
                                    let hint =
                                        stale_read_hint::<M>(&sub, i, name).unwrap_or_default();
                                    format!("{}{hint}", why_not::<M>(&after, &op.input, &op.output))
                                }
                                Some(next) => format!(
                                    "it could go next (leaving the value {}), but then the \
                                     operations left cannot all be placed",
                                    M::show(&next)
                                ),
                            })
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
        }
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

/// A history of one of the three models.
#[derive(Debug, Clone)]
enum AnyHistory {
    Register(History<Register>),
    CasRegister(History<CasRegister>),
    Kv(History<KvModel>),
}

impl AnyHistory {
    fn get(&self) -> &dyn HistoryOps {
        match self {
            AnyHistory::Register(h) => h,
            AnyHistory::CasRegister(h) => h,
            AnyHistory::Kv(h) => h,
        }
    }

    fn get_mut(&mut self) -> &mut dyn HistoryOps {
        match self {
            AnyHistory::Register(h) => h,
            AnyHistory::CasRegister(h) => h,
            AnyHistory::Kv(h) => h,
        }
    }

    fn generate(g: &Generation) -> Self {
        match g.model {
            ModelKind::Register => AnyHistory::Register(History::new(generate::<Register>(g))),
            ModelKind::CasRegister => {
                AnyHistory::CasRegister(History::new(generate::<CasRegister>(g)))
            }
            ModelKind::Kv => AnyHistory::Kv(History::new(generate::<KvModel>(g))),
        }
    }

    /// Parses pasted text; errors name the field `text` and the line.
    fn parse(format: HistoryFormat, text: &str) -> Result<Self> {
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
                    AnyHistory::CasRegister(History::new(ops)),
                    count,
                    "INFO  jepsen.util - 3\t:invoke\t:read\tnil",
                )
            }
            HistoryFormat::KvEdn => {
                let ops = parse_kv_log(text).map_err(at_line)?;
                let count = ops.len();
                (
                    AnyHistory::Kv(History::new(ops)),
                    count,
                    "{:process 0, :type :invoke, :f :get, :key \"4\", :value nil}",
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

// ---------------------------------------------------------------------------------------
// The lab.

/// A call comes before a return at the same time: intervals are closed, so an operation
/// returning at `t` overlaps one called at `t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Call,
    Return,
}

/// One event of the history, in the order events are revealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Event {
    /// History ticks.
    time: u64,
    phase: Phase,
    op: u32,
}

/// One independent part of the history (a key, or the whole register) as far as revealed.
#[derive(Debug, Clone, PartialEq)]
struct Part {
    key: Option<String>,
    /// Revealed operations, in order of call.
    members: Vec<u32>,
    check: PartCheck,
}

impl Part {
    fn name(&self) -> String {
        self.key
            .as_ref()
            .map_or_else(|| "register".to_string(), |k| format!("key {k}"))
    }
}

/// Where the history came from.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Source {
    Generated(Generation),
    Pasted(HistoryFormat),
}

/// One revealed event, for the trace.
#[derive(Debug, Clone, PartialEq)]
struct TraceItem {
    step: u64,
    at: Time,
    event: Event,
    client: u64,
    label: String,
}

const LINEARIZABLE: &str = "history is linearizable";
const CORRECT_STORE: &str = "a correct store's history is linearizable";
const REPLAYS: &str = "the checker's answer replays";

/// The linearizability lab.
#[derive(Debug, Clone)]
pub struct LinearizabilityLab {
    /// The knobs `regenerate` starts from.
    generation: Generation,
    source: Source,
    /// Edits since the history was generated or pasted.
    edits: u32,
    tick: Duration,
    max_checker_steps: u64,
    history: AnyHistory,
    /// Client ids, one lane each, in increasing order.
    lanes: Vec<u64>,
    /// Every event of the history, in reveal order.
    events: Vec<Event>,
    /// How many of `events` are revealed.
    revealed: usize,
    /// The last event revealed: after an edit, everything up to it stays revealed.
    cursor: Option<Event>,
    /// The lab time of tick 0 of the current history.
    origin: Time,
    now: Time,
    steps: u64,
    parts: Vec<Part>,
    /// Revealed calls and returns.
    called: usize,
    returned: usize,
    last_check_steps: u64,
    checks: u64,
    hasher: StableHasher,
    trace: VecDeque<TraceItem>,
    metrics: MetricsRecorder,
}

impl LinearizabilityLab {
    /// Starts showing `history` from its first event, now.
    fn load(&mut self, history: AnyHistory, source: Source) {
        let h = history.get();
        let mut lanes: Vec<u64> = (0..h.slots() as u32).map(|op| h.client(op)).collect();
        lanes.sort_unstable();
        lanes.dedup();
        self.hasher.write_u64(h.slots() as u64);
        self.lanes = lanes;
        self.history = history;
        self.source = source;
        self.edits = 0;
        self.origin = self.now;
        self.cursor = None;
        self.parts.clear();
        self.last_check_steps = 0;
        self.rebuild_events();
    }

    /// Lists the events anew (after a load or an edit); what is at or before the cursor
    /// stays revealed.
    fn rebuild_events(&mut self) {
        let h = self.history.get();
        let mut events = Vec::with_capacity(2 * h.slots());
        for op in 0..h.slots() as u32 {
            if h.is_dropped(op) {
                continue;
            }
            events.push(Event {
                time: h.call(op),
                phase: Phase::Call,
                op,
            });
            if let Some(time) = h.ret(op) {
                events.push(Event {
                    time,
                    phase: Phase::Return,
                    op,
                });
            }
        }
        events.sort_unstable();
        let cursor = self.cursor;
        self.revealed = events.partition_point(|e| cursor.is_some_and(|c| *e <= c));
        let revealed = events.get(..self.revealed).unwrap_or_default();
        self.called = revealed.iter().filter(|e| e.phase == Phase::Call).count();
        self.returned = revealed.len() - self.called;
        self.events = events;
    }

    fn is_revealed(&self, event: Event) -> bool {
        self.cursor.is_some_and(|c| event <= c)
    }

    /// Whether `op`'s call has been revealed.
    fn is_called(&self, op: u32) -> bool {
        let h = self.history.get();
        !h.is_dropped(op)
            && self.is_revealed(Event {
                time: h.call(op),
                phase: Phase::Call,
                op,
            })
    }

    /// Whether `op`'s return has been revealed.
    fn is_returned(&self, op: u32) -> bool {
        let h = self.history.get();
        !h.is_dropped(op)
            && h.ret(op).is_some_and(|time| {
                self.is_revealed(Event {
                    time,
                    phase: Phase::Return,
                    op,
                })
            })
    }

    fn due(&self, event: Event) -> Time {
        self.origin + Duration(event.time.saturating_mul(self.tick.0))
    }

    /// The current position in the history, in ticks.
    fn tick_now(&self) -> u64 {
        self.now.saturating_since(self.origin).0 / self.tick.0.max(1)
    }

    fn check(&mut self, members: &[u32]) -> PartCheck {
        let check = self.history.get().check_part(
            members,
            &|op| self.is_returned(op),
            self.max_checker_steps,
        );
        self.last_check_steps = check.steps;
        self.checks += 1;
        check
    }

    /// Rebuilds the parts from the revealed operations. With `only: Some(key)`, the parts
    /// of other keys keep their check (an edit touches one key).
    fn rebuild_parts(&mut self, only: Option<Option<String>>) {
        let h = self.history.get();
        let mut grouped: Vec<(Option<String>, Vec<u32>)> = Vec::new();
        for e in self.events.get(..self.revealed).unwrap_or_default() {
            if e.phase != Phase::Call {
                continue;
            }
            let key = h.part_key(e.op);
            match grouped.iter_mut().find(|(k, _)| *k == key) {
                Some((_, members)) => members.push(e.op),
                None => grouped.push((key, vec![e.op])),
            }
        }
        let old = std::mem::take(&mut self.parts);
        for (key, members) in grouped {
            let kept = match &only {
                Some(edited) if *edited != key => {
                    old.iter().find(|p| p.key == key).map(|p| p.check.clone())
                }
                _ => None,
            };
            let check = match kept {
                Some(check) => check,
                None => self.check(&members),
            };
            self.parts.push(Part {
                key,
                members,
                check,
            });
        }
    }

    /// A call: the part gains a pending operation, which its witness may leave out, so
    /// the verdict cannot change.
    fn on_call(&mut self, op: u32) {
        let h = self.history.get();
        let key = h.part_key(op);
        let initial = h.initial_state();
        let index = match self.parts.iter().position(|p| p.key == key) {
            Some(index) => index,
            None => {
                self.parts.push(Part {
                    key,
                    members: Vec::new(),
                    check: PartCheck {
                        verdict: PartVerdict::Linearizable {
                            order: Vec::new(),
                            omitted: Vec::new(),
                            state: initial,
                        },
                        steps: 0,
                        replay_problem: None,
                    },
                });
                self.parts.len() - 1
            }
        };
        if let Some(part) = self.parts.get_mut(index) {
            part.members.push(op);
            if let PartVerdict::Linearizable { omitted, .. } = &mut part.check.verdict {
                omitted.push(op);
            }
        }
    }

    /// A return: its part is re-checked, unless it is already known not linearizable and
    /// its report does not name the operation. Such a report stays true: its prefix does
    /// not contain the operation, and the candidates to follow the prefix, called before
    /// the earliest return then known, cannot change with a return revealed later.
    fn on_return(&mut self, op: u32) {
        let key = self.history.get().part_key(op);
        let Some(index) = self.parts.iter().position(|p| p.key == key) else {
            return;
        };
        let Some(part) = self.parts.get(index) else {
            return;
        };
        if let PartVerdict::Violation {
            prefix,
            unplaceable,
            ..
        } = &part.check.verdict
            && !prefix.contains(&op)
            && !unplaceable.contains(&op)
        {
            return;
        }
        let members = part.members.clone();
        let check = self.check(&members);
        if let Some(part) = self.parts.get_mut(index) {
            part.check = check;
        }
    }

    fn reveal(&mut self, event: Event, at: Time) {
        self.revealed += 1;
        self.cursor = Some(event);
        self.steps += 1;
        match event.phase {
            Phase::Call => {
                self.called += 1;
                self.on_call(event.op);
            }
            Phase::Return => {
                self.returned += 1;
                self.on_return(event.op);
            }
        }
        let h = self.history.get();
        let label = h.label(event.op, event.phase == Phase::Return);
        self.hasher.write_u64(self.steps);
        self.hasher.write_u64(at.0);
        self.hasher.write_u64(event.time);
        self.hasher.write_u8(event.phase as u8);
        self.hasher.write_u32(event.op);
        self.hasher.write(label.as_bytes());
        if self.trace.len() >= TRACE_EVENTS {
            self.trace.pop_front();
        }
        self.trace.push_back(TraceItem {
            step: self.steps,
            at,
            event,
            client: h.client(event.op),
            label,
        });
    }

    fn record_due(&mut self, until: u64) {
        let values = vec![
            self.last_check_steps as f64,
            self.called as f64,
            (self.called - self.returned) as f64,
        ];
        self.metrics.record_due(until, |_| values.clone());
    }

    /// Applies `change` to operation `op`, then re-checks its part if it is revealed.
    fn edit(
        &mut self,
        op: u32,
        change: impl FnOnce(&mut dyn HistoryOps) -> Result<()>,
    ) -> Result<()> {
        let h = self.history.get();
        if op as usize >= h.slots() {
            return Err(DistlabError::field(
                "op",
                format!(
                    "no operation {op}: the history has operations 0 to {}",
                    h.slots().saturating_sub(1)
                ),
            ));
        }
        if h.is_dropped(op) {
            return Err(DistlabError::field(
                "op",
                format!("operation {op} was dropped"),
            ));
        }
        let key = h.part_key(op);
        let was_called = self.is_called(op);
        change(self.history.get_mut())?;
        self.edits += 1;
        self.rebuild_events();
        if was_called || self.is_called(op) {
            self.rebuild_parts(Some(key));
        }
        Ok(())
    }

    /// `(state, order)` of every operation slot, for the timeline and the table.
    fn statuses(&self) -> Vec<(&'static str, Option<u32>)> {
        let mut out = vec![("", None); self.history.get().slots()];
        let mut set = |op: u32, state, order: Option<usize>| {
            if let Some(slot) = out.get_mut(op as usize) {
                *slot = (state, order.map(|o| o as u32));
            }
        };
        for part in &self.parts {
            for &op in &part.members {
                let rest = match (&part.check.verdict, self.is_returned(op)) {
                    (PartVerdict::Undecided { .. }, true) => "undecided",
                    (PartVerdict::Violation { .. }, true) => "unreached",
                    _ => "pending",
                };
                set(op, rest, None);
            }
            match &part.check.verdict {
                PartVerdict::Linearizable { order, omitted, .. } => {
                    for (i, &op) in order.iter().enumerate() {
                        set(op, "linearized", Some(i));
                    }
                    for &op in omitted {
                        set(op, "omitted", None);
                    }
                }
                PartVerdict::Violation {
                    prefix,
                    unplaceable,
                    ..
                } => {
                    for (i, &op) in prefix.iter().enumerate() {
                        set(op, "prefix", Some(i));
                    }
                    for &op in unplaceable {
                        set(op, "unplaceable", None);
                    }
                }
                PartVerdict::Undecided { .. } => {}
            }
        }
        out
    }

    fn lane(&self, op: u32) -> NodeId {
        let client = self.history.get().client(op);
        self.lanes.binary_search(&client).unwrap_or(0) as NodeId
    }

    /// `#9 r→1`.
    fn short(&self, op: u32) -> String {
        format!(
            "#{op} {}",
            self.history.get().label(op, self.is_returned(op))
        )
    }

    /// `#9 r→1 (c2, ticks 25–31)`.
    fn long(&self, op: u32) -> String {
        let h = self.history.get();
        let ret = match h.ret(op) {
            Some(ret) if self.is_returned(op) => ret.to_string(),
            _ => "…".to_string(),
        };
        format!(
            "{} (c{}, ticks {}–{ret})",
            self.short(op),
            h.client(op),
            h.call(op)
        )
    }

    /// `#0 w(1) → #2 r→1 → …`, the middle elided past `max` operations.
    fn chain(&self, ops: &[u32], max: usize) -> String {
        let show = |ops: &[u32]| -> Vec<String> { ops.iter().map(|&op| self.short(op)).collect() };
        if ops.len() <= max {
            return show(ops).join(" → ");
        }
        let half = max / 2;
        let head = show(ops.get(..half).unwrap_or_default()).join(" → ");
        let tail = show(ops.get(ops.len() - half..).unwrap_or_default()).join(" → ");
        format!("{head} → … ({} more) … → {tail}", ops.len() - 2 * half)
    }

    fn violations(&self) -> impl Iterator<Item = &Part> {
        self.parts
            .iter()
            .filter(|p| matches!(p.check.verdict, PartVerdict::Violation { .. }))
    }

    /// The client lanes of the operations no extension can place next.
    fn involved_lanes(&self) -> Vec<NodeId> {
        let mut lanes: Vec<NodeId> = self
            .violations()
            .flat_map(|p| match &p.check.verdict {
                PartVerdict::Violation { unplaceable, .. } => unplaceable.clone(),
                _ => Vec::new(),
            })
            .map(|op| self.lane(op))
            .collect();
        lanes.sort_unstable();
        lanes.dedup();
        lanes
    }

    fn source_text(&self) -> String {
        let mut text = match self.source {
            Source::Generated(g) => {
                let store = match g.store {
                    StoreKind::Correct => "a correct store".to_string(),
                    StoreKind::LaggingReplica {
                        stale_read_probability,
                        lost_write_probability,
                        lag_ticks,
                    } => format!(
                        "a store whose replica lags {lag_ticks} ticks (stale reads {}%, lost \
                         writes {}%)",
                        stale_read_probability * 100.0,
                        lost_write_probability * 100.0
                    ),
                };
                format!(
                    "{} history generated by {store}, seed {}, {} clients, timeouts {}%",
                    model_name(g.model),
                    g.seed,
                    g.clients,
                    g.timeout_probability * 100.0
                )
            }
            Source::Pasted(format) => format!(
                "{} history pasted as {}",
                model_name(self.history.get().model()),
                match format {
                    HistoryFormat::EtcdLog => "a Jepsen etcd log",
                    HistoryFormat::KvEdn => "Jepsen EDN key-value lines",
                }
            ),
        };
        if self.edits > 0 {
            text.push_str(&format!(", edited {} time(s)", self.edits));
        }
        text
    }

    fn verdict_text(&self) -> String {
        let undecided = self
            .parts
            .iter()
            .any(|p| matches!(p.check.verdict, PartVerdict::Undecided { .. }));
        let headline = if self.violations().next().is_some() {
            "NOT LINEARIZABLE: no order of the operations fits both real time and the model."
        } else if undecided {
            "UNDECIDED: no violation found, but the checker's step budget ran out."
        } else if self.called == 0 {
            "Nothing revealed yet: the empty history is linearizable."
        } else {
            "LINEARIZABLE so far: one order of the operations fits both real time and the model."
        };
        let mut lines = vec![
            headline.to_string(),
            format!(
                "{}. Revealed {} of {} events (tick {}): {} operations, {} still pending.",
                self.source_text(),
                self.revealed,
                self.events.len(),
                self.tick_now(),
                self.called,
                self.called - self.returned
            ),
        ];
        for part in &self.parts {
            lines.push(String::new());
            lines.extend(self.part_text(part));
        }
        if self.violations().next().is_some() {
            lines.push(String::new());
            lines.push(
                "A history that is not linearizable stays so whatever comes later, so a bad \
                 part is re-checked only when an operation its report names returns, or on \
                 an edit."
                    .to_string(),
            );
        }
        lines.join("\n")
    }

    fn part_text(&self, part: &Part) -> Vec<String> {
        let name = part.name();
        match &part.check.verdict {
            PartVerdict::Linearizable {
                order,
                omitted,
                state,
            } => {
                let mut lines = vec![format!(
                    "{name}: linearizable. Witness ({} operations): {}. Value after it: {state}.",
                    order.len(),
                    if order.is_empty() {
                        "empty".to_string()
                    } else {
                        self.chain(order, 40)
                    }
                )];
                if !omitted.is_empty() {
                    lines.push(format!(
                        "  Left out (pending, they may never take effect): {}.",
                        self.chain(omitted, 20)
                    ));
                }
                lines
            }
            PartVerdict::Violation {
                prefix,
                unplaceable,
                state,
                reasons,
                deadline,
            } => {
                let mut lines = vec![
                    format!("{name}: NOT linearizable."),
                    format!(
                        "  Longest linearizable prefix ({} operations): {}.",
                        prefix.len(),
                        if prefix.is_empty() {
                            "empty".to_string()
                        } else {
                            self.chain(prefix, 16)
                        }
                    ),
                    format!("  Value after it: {state}."),
                    match deadline {
                        Some((op, ret)) => format!(
                            "  Next must come an operation called before #{op} returned at tick \
                             {ret} (real-time order), and none fits:"
                        ),
                        None => "  Next must come one of these, and none fits:".to_string(),
                    },
                ];
                for (i, &op) in unplaceable.iter().enumerate() {
                    let reason = reasons.get(i).map_or("", String::as_str);
                    lines.push(format!("    {}: {reason}.", self.long(op)));
                }
                lines
            }
            PartVerdict::Undecided { reason } => vec![format!("{name}: undecided, {reason}.")],
        }
    }

    fn timeline(&self, statuses: &[(&'static str, Option<u32>)]) -> Panel {
        let h = self.history.get();
        let bars = (0..h.slots() as u32)
            .filter(|&op| self.is_called(op))
            .map(|op| {
                let (state, order) = statuses.get(op as usize).copied().unwrap_or(("", None));
                TimelineBar {
                    lane: self.lane(op),
                    start: h.call(op) as f64,
                    end: h.ret(op).filter(|_| self.is_returned(op)).map(|r| r as f64),
                    label: format!("#{op} {}", h.label(op, self.is_returned(op))),
                    state: state.to_string(),
                    order,
                }
            })
            .collect();
        Panel::Timeline {
            title: format!(
                "history in ticks: a bar per operation from call to return (open: pending), \
                 numbered in witness or prefix order; tick {}",
                self.tick_now()
            ),
            lanes: self.lanes.iter().map(|c| format!("c{c}")).collect(),
            bars,
        }
    }

    fn parts_table(&self) -> Panel {
        let rows = self
            .parts
            .iter()
            .map(|p| {
                let (verdict, placed, state, detail) = match &p.check.verdict {
                    PartVerdict::Linearizable {
                        order,
                        omitted,
                        state,
                    } => (
                        "linearizable",
                        order.len(),
                        state.clone(),
                        format!("{} pending left out", omitted.len()),
                    ),
                    PartVerdict::Violation {
                        prefix,
                        unplaceable,
                        state,
                        ..
                    } => (
                        "not linearizable",
                        prefix.len(),
                        state.clone(),
                        format!(
                            "cannot go next: {}",
                            unplaceable
                                .iter()
                                .map(|&op| self.short(op))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ),
                    PartVerdict::Undecided { reason } => {
                        ("undecided", 0, String::new(), reason.clone())
                    }
                };
                vec![
                    json!(p.name()),
                    json!(p.members.len()),
                    json!(verdict),
                    json!(placed),
                    json!(state),
                    json!(p.check.steps),
                    json!(detail),
                ]
            })
            .collect();
        Panel::Table {
            title: "parts (checked independently: linearizability is local)".into(),
            columns: [
                "part",
                "operations",
                "verdict",
                "placed (witness or prefix)",
                "value after",
                "checker steps",
                "detail",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        }
    }

    fn operations_table(&self, statuses: &[(&'static str, Option<u32>)]) -> Panel {
        let h = self.history.get();
        let rows = (0..h.slots() as u32)
            .filter(|&op| self.is_called(op))
            .map(|op| {
                let (state, order) = statuses.get(op as usize).copied().unwrap_or(("", None));
                vec![
                    json!(op),
                    json!(format!("c{}", h.client(op))),
                    json!(h.label(op, self.is_returned(op))),
                    json!(h.call(op)),
                    json!(h.ret(op).filter(|_| self.is_returned(op))),
                    json!(state),
                    json!(order),
                ]
            })
            .collect();
        Panel::Table {
            title: "revealed operations (op numbers are what edits name)".into(),
            columns: [
                "op",
                "client",
                "operation",
                "call",
                "return",
                "state",
                "order",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        }
    }

    fn client_nodes(&self) -> Vec<NodeView> {
        let h = self.history.get();
        let mut counts = vec![(0u64, None::<String>); self.lanes.len()];
        for op in (0..h.slots() as u32).filter(|&op| self.is_called(op)) {
            if let Some((n, open)) = counts.get_mut(self.lane(op) as usize) {
                *n += 1;
                if !self.is_returned(op) {
                    *open = Some(format!("#{op} {}", h.label(op, false)));
                }
            }
        }
        self.lanes
            .iter()
            .zip(counts)
            .enumerate()
            .map(|(lane, (client, (n, open)))| NodeView {
                id: lane as NodeId,
                label: format!("c{client}"),
                role: "client".into(),
                status: "up".into(),
                fields: [
                    ("operations".to_string(), json!(n)),
                    ("pending".to_string(), json!(open)),
                ]
                .into_iter()
                .collect(),
            })
            .collect()
    }

    fn invariants(&self) -> Vec<InvariantStatus> {
        let violated: Vec<String> = self.violations().map(Part::name).collect();
        let linearizable = if violated.is_empty() {
            InvariantStatus::holds(
                LINEARIZABLE,
                format!(
                    "every part of the {} operations revealed has a witness or is undecided",
                    self.called
                ),
            )
        } else {
            InvariantStatus::violated(
                LINEARIZABLE,
                format!(
                    "{} cannot be linearized; the highlighted clients ran the operations \
                     that cannot go next",
                    violated.join(", ")
                ),
                self.involved_lanes(),
            )
        };
        let correct_store = match self.source {
            Source::Generated(g) if g.store == StoreKind::Correct && self.edits == 0 => {
                if violated.is_empty() {
                    InvariantStatus::holds(
                        CORRECT_STORE,
                        "the correct store applies each operation inside its interval, and \
                         the checker agrees",
                    )
                } else {
                    InvariantStatus::violated(
                        CORRECT_STORE,
                        format!(
                            "the checker rejects {} of a history linearizable by \
                             construction: the generator or the checker is wrong",
                            violated.join(", ")
                        ),
                        self.involved_lanes(),
                    )
                }
            }
            _ => InvariantStatus::holds(
                CORRECT_STORE,
                "not applicable: the history is not the correct store's, unedited",
            ),
        };
        let problems: Vec<String> = self
            .parts
            .iter()
            .filter_map(|p| {
                p.check
                    .replay_problem
                    .as_ref()
                    .map(|e| format!("{}: {e}", p.name()))
            })
            .collect();
        let replays = if problems.is_empty() {
            InvariantStatus::holds(
                REPLAYS,
                "every witness and every reported prefix replays on the model in real-time \
                 order",
            )
        } else {
            InvariantStatus::violated(REPLAYS, problems.join("; "), Vec::new())
        };
        vec![linearizable, correct_store, replays]
    }
}

fn model_name(model: ModelKind) -> &'static str {
    match model {
        ModelKind::Register => "A register",
        ModelKind::CasRegister => "A compare-and-set register",
        ModelKind::Kv => "A key-value",
    }
}

/// A tiny etcd log with a stale read: process 1 reads nil after process 0's write of 1
/// returned.
pub const EXAMPLE_ETCD_LOG: &str = "\
INFO  jepsen.util - 0\t:invoke\t:write\t1
INFO  jepsen.util - 0\t:ok\t:write\t1
INFO  jepsen.util - 2\t:invoke\t:cas\t[1 2]
INFO  jepsen.util - 1\t:invoke\t:read\tnil
INFO  jepsen.util - 2\t:ok\t:cas\t[1 2]
INFO  jepsen.util - 1\t:ok\t:read\t1
INFO  jepsen.util - 0\t:invoke\t:read\tnil
INFO  jepsen.util - 0\t:ok\t:read\t1
";

/// A tiny key-value history, linearizable: the get overlaps the append it observes.
pub const EXAMPLE_KV_EDN: &str = r#"{:process 0, :type :invoke, :f :put, :key "x", :value "a"}
{:process 0, :type :ok, :f :put, :key "x", :value "a"}
{:process 1, :type :invoke, :f :append, :key "x", :value "b"}
{:process 0, :type :invoke, :f :get, :key "x", :value nil}
{:process 0, :type :ok, :f :get, :key "x", :value "ab"}
{:process 1, :type :ok, :f :append, :key "x", :value "b"}
{:process 2, :type :invoke, :f :get, :key "y", :value nil}
{:process 2, :type :ok, :f :get, :key "y", :value ""}
"#;

impl LabModel for LinearizabilityLab {
    const ID: &'static str = "sim.linearizability";
    type Config = LinearizabilityLabConfig;
    type Action = LinearizabilityLabAction;

    fn new(c: &LinearizabilityLabConfig) -> Result<Self> {
        let generation = Generation {
            seed: c.seed,
            model: c.model,
            clients: c.clients,
            keys: c.keys,
            operations: c.operations,
            store: c.store,
            timeout_probability: c.timeout_probability,
        };
        generation.validate()?;
        check_range("tickMs", c.tick_ms, 0.001, 60_000.0)?;
        let tick = Duration::try_from_millis_f64("tickMs", c.tick_ms)?;
        if !(1..=MAX_CHECKER_STEPS).contains(&c.max_checker_steps) {
            return Err(DistlabError::field(
                "maxCheckerSteps",
                format!(
                    "must be between 1 and {MAX_CHECKER_STEPS}, got {}",
                    c.max_checker_steps
                ),
            ));
        }
        let (history, source) = match &c.history {
            Some(pasted) => (
                AnyHistory::parse(pasted.format, &pasted.text)
                    .map_err(|e| crate::sim::workload::within("history", e))?,
                Source::Pasted(pasted.format),
            ),
            None => (
                AnyHistory::generate(&generation),
                Source::Generated(generation),
            ),
        };
        let mut lab = LinearizabilityLab {
            generation,
            source,
            edits: 0,
            tick: Duration(tick.0.max(1)),
            max_checker_steps: c.max_checker_steps,
            history: AnyHistory::Register(History::new(Vec::new())),
            lanes: Vec::new(),
            events: Vec::new(),
            revealed: 0,
            cursor: None,
            origin: Time::ZERO,
            now: Time::ZERO,
            steps: 0,
            parts: Vec::new(),
            called: 0,
            returned: 0,
            last_check_steps: 0,
            checks: 0,
            hasher: StableHasher::default(),
            trace: VecDeque::new(),
            metrics: MetricsRecorder::new(
                tick.0.max(1),
                SERIES_POINTS,
                &[
                    ("checker steps", "steps (latest check)"),
                    ("operations revealed", "ops"),
                    ("operations pending", "ops"),
                ],
            ),
        };
        lab.load(history, source);
        Ok(lab)
    }

    fn step_until(&mut self, deadline: Time) -> bool {
        let Some(&event) = self.events.get(self.revealed) else {
            return false;
        };
        // An edit can move an unrevealed event before the clock: it is revealed now.
        let at = self.due(event).max(self.now);
        if at > deadline {
            return false;
        }
        self.record_due(at.0.saturating_sub(1));
        self.now = at;
        self.reveal(event, at);
        true
    }

    fn advance_clock(&mut self, t: Time) {
        self.record_due(t.0);
        self.now = self.now.max(t);
    }

    fn now(&self) -> Time {
        self.now
    }

    fn steps(&self) -> u64 {
        self.steps
    }

    fn act(&mut self, action: &LinearizabilityLabAction) -> Result<()> {
        use LinearizabilityLabAction::*;
        match action {
            Regenerate { seed, model, store } => {
                let generation = Generation {
                    seed: *seed,
                    model: model.unwrap_or(self.generation.model),
                    store: store.unwrap_or(self.generation.store),
                    ..self.generation
                };
                generation.validate()?;
                self.generation = generation;
                self.load(
                    AnyHistory::generate(&generation),
                    Source::Generated(generation),
                );
            }
            EditOutput { op, output } => self.edit(*op, |h| h.set_output(*op, output))?,
            EditInterval { op, call, ret } => {
                if *call > MAX_HISTORY_TIME {
                    return Err(DistlabError::field(
                        "call",
                        format!("must be at most {MAX_HISTORY_TIME} ticks, got {call}"),
                    ));
                }
                if !(*call..=MAX_HISTORY_TIME).contains(ret) {
                    return Err(DistlabError::field(
                        "ret",
                        format!(
                            "must be between the call ({call}) and {MAX_HISTORY_TIME} ticks, \
                             got {ret}"
                        ),
                    ));
                }
                self.edit(*op, |h| {
                    h.set_interval(*op, *call, Some(*ret));
                    Ok(())
                })?;
            }
            DropOperation { op } => self.edit(*op, |h| {
                h.drop_op(*op);
                Ok(())
            })?,
            MarkTimedOut { op } => self.edit(*op, |h| {
                h.set_interval(*op, h.call(*op), None);
                h.set_output_unknown(*op);
                Ok(())
            })?,
            Paste { format, text } => {
                let history = AnyHistory::parse(*format, text)?;
                self.load(history, Source::Pasted(*format));
            }
        }
        if let Ok(text) = serde_json::to_string(action) {
            self.hasher.write(text.as_bytes());
        }
        Ok(())
    }

    fn view(&self) -> View {
        let statuses = self.statuses();
        View {
            nodes: self.client_nodes(),
            panels: vec![
                self.timeline(&statuses),
                Panel::Text {
                    title: "verdict".into(),
                    body: self.verdict_text(),
                },
                self.parts_table(),
                self.operations_table(&statuses),
            ],
            metrics: self.metrics.series(),
            invariants: self.invariants(),
            ..View::default()
        }
    }

    /// `{hash, events, complete, trace}`: a stable hash of every revealed event (step,
    /// time, tick, call or return, operation, label) and of every action, and the newest
    /// [`TRACE_EVENTS`] revealed events.
    fn trace(&self) -> Value {
        let trace: Vec<Value> = self
            .trace
            .iter()
            .map(|t| {
                json!({
                    "step": t.step,
                    "atUs": t.at.0,
                    "tick": t.event.time,
                    "event": match t.event.phase {
                        Phase::Call => "call",
                        Phase::Return => "return",
                    },
                    "op": t.event.op,
                    "client": t.client,
                    "label": t.label,
                })
            })
            .collect();
        json!({
            "hash": format!("{:016x}", self.hasher.finish()),
            "events": self.steps,
            "complete": self.steps <= self.trace.len() as u64,
            "trace": trace,
        })
    }

    fn example_actions() -> Vec<LinearizabilityLabAction> {
        use LinearizabilityLabAction::*;
        vec![
            Regenerate {
                seed: 2,
                model: None,
                store: None,
            },
            Regenerate {
                seed: 3,
                model: None,
                store: Some(StoreKind::Correct),
            },
            Regenerate {
                seed: 4,
                model: Some(ModelKind::Kv),
                store: Some(StoreKind::LaggingReplica {
                    stale_read_probability: 0.3,
                    lost_write_probability: 0.1,
                    lag_ticks: 10,
                }),
            },
            Regenerate {
                seed: 5,
                model: Some(ModelKind::CasRegister),
                store: Some(StoreKind::Correct),
            },
            EditOutput {
                op: 2,
                output: OutputEdit::Value {
                    value: Some(ValueEdit::Int(1)),
                },
            },
            EditOutput {
                op: 1,
                output: OutputEdit::Unknown,
            },
            EditInterval {
                op: 3,
                call: 0,
                ret: 20,
            },
            DropOperation { op: 0 },
            MarkTimedOut { op: 4 },
            Paste {
                format: HistoryFormat::EtcdLog,
                text: EXAMPLE_ETCD_LOG.to_string(),
            },
            Paste {
                format: HistoryFormat::KvEdn,
                text: EXAMPLE_KV_EDN.to_string(),
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Lab, Runner};
    use crate::sim::linearizability::check;

    fn lab(config: Value) -> Runner<LinearizabilityLab> {
        Runner::from_json(&config).unwrap()
    }

    fn run_to_end(l: &mut Runner<LinearizabilityLab>) {
        l.step(Duration::from_secs(1_000_000_000)).unwrap();
        assert_eq!(l.model().revealed, l.model().events.len());
    }

    fn invariant(v: &View, name: &str) -> InvariantStatus {
        v.invariants
            .iter()
            .find(|i| i.name == name)
            .cloned()
            .unwrap()
    }

    fn field_of(e: DistlabError) -> String {
        match e {
            DistlabError::InvalidField { field, .. } => field,
            other => panic!("expected a field error, got {other}"),
        }
    }

    fn has_violation(l: &Runner<LinearizabilityLab>) -> bool {
        l.model().violations().next().is_some()
    }

    /// The revealed history as the checker sees it: pending operations without return
    /// and output, with the lab's operation numbers.
    fn revealed_history<M: Spec>(
        lab: &LinearizabilityLab,
        h: &History<M>,
    ) -> (Vec<u32>, Vec<Op<M>>) {
        (0..h.ops.len() as u32)
            .filter(|&op| lab.is_called(op))
            .map(|op| {
                let mut o = h.ops[op as usize].clone();
                if !lab.is_returned(op) {
                    o.ret = None;
                    o.output = Response::Unknown;
                }
                (op, o)
            })
            .unzip()
    }

    /// Checks the cached verdict against a fresh check of the whole revealed history, and
    /// each violation's prefix independently: it replays, and it is linearizable on its
    /// own.
    fn audit<M: Spec>(lab: &LinearizabilityLab, h: &History<M>) {
        let (ids, ops) = revealed_history(lab, h);
        let local = |op: &u32| ids.iter().position(|i| i == op).unwrap();
        let fresh = check(&M::default(), &ops).unwrap();
        let cached_bad = lab.violations().next().is_some();
        assert_eq!(fresh.linearizable, !cached_bad, "{}", lab.verdict_text());
        for part in lab.violations() {
            let PartVerdict::Violation { prefix, .. } = &part.check.verdict else {
                unreachable!()
            };
            let prefix: Vec<usize> = prefix.iter().map(local).collect();
            replay(&M::default(), &ops, &prefix).unwrap();
            let alone: Vec<_> = prefix.iter().map(|&i| ops[i].clone()).collect();
            assert!(check(&M::default(), &alone).unwrap().linearizable);
        }
        for part in &lab.parts {
            assert_eq!(part.check.replay_problem, None);
        }
    }

    fn audit_any(lab: &LinearizabilityLab) {
        match &lab.history {
            AnyHistory::Register(h) => audit(lab, h),
            AnyHistory::CasRegister(h) => audit(lab, h),
            AnyHistory::Kv(h) => audit(lab, h),
        }
    }

    #[test]
    fn a_lagging_replica_yields_violations_whose_prefixes_replay() {
        for model in ["register", "casRegister", "kv"] {
            let mut found = 0;
            for seed in 0..20 {
                let mut l = lab(json!({"seed": seed, "model": model, "store": {
                    "type": "laggingReplica", "staleReadProbability": 0.3,
                    "lostWriteProbability": 0.05, "lagTicks": 10}}));
                // Audit at every step: the verdict is cached, never stale.
                while l.step_events(1).unwrap() == 1 {
                    audit_any(l.model());
                }
                if has_violation(&l) {
                    found += 1;
                    let v = l.view();
                    let i = invariant(&v, LINEARIZABLE);
                    assert!(!i.ok && !i.nodes.is_empty(), "{i:?}");
                    assert!(invariant(&v, CORRECT_STORE).ok);
                    assert!(invariant(&v, REPLAYS).ok);
                    let text = l.model().verdict_text();
                    assert!(text.contains("Longest linearizable prefix"), "{text}");
                    assert!(text.contains("none fits"), "{text}");
                }
            }
            assert!(found >= 10, "{model}: only {found} of 20 seeds went wrong");
        }
    }

    #[test]
    fn a_correct_store_is_always_linearizable() {
        for model in ["register", "casRegister", "kv"] {
            for seed in 0..60 {
                let mut l = lab(json!({"seed": seed, "model": model, "clients": 6,
                    "operations": 80, "timeoutProbability": 0.1, "store": {"type": "correct"}}));
                while l.step_events(7).unwrap() > 0 {
                    let v = l.view();
                    let i = invariant(&v, CORRECT_STORE);
                    assert!(
                        i.ok && !i.detail.contains("not applicable"),
                        "{model} {seed}"
                    );
                }
                let m = l.model();
                assert!(
                    m.parts
                        .iter()
                        .all(|p| matches!(p.check.verdict, PartVerdict::Linearizable { .. }))
                );
                audit_any(m);
            }
        }
    }

    #[test]
    fn the_correct_store_invariant_can_fail() {
        // The invariant is a real check: a history it covers that the checker rejects (here
        // faked by flipping the store the lab believes it has) is reported.
        let mut l = lab(Value::Null);
        run_to_end(&mut l);
        let mut m = l.model().clone();
        assert!(m.violations().next().is_some());
        let Source::Generated(mut g) = m.source else {
            panic!()
        };
        g.store = StoreKind::Correct;
        m.source = Source::Generated(g);
        let i = invariant(&m.view(), CORRECT_STORE);
        assert!(!i.ok && i.detail.contains("wrong"), "{i:?}");
    }

    /// A returned read of the revealed history, and its value.
    fn a_read(l: &Runner<LinearizabilityLab>) -> (u32, Option<i64>) {
        let AnyHistory::Register(h) = &l.model().history else {
            panic!()
        };
        h.ops
            .iter()
            .enumerate()
            .rev()
            .find_map(|(i, op)| match (&op.input, &op.output) {
                (RegisterInput::Read, Response::Value { value }) if value.is_some() => {
                    Some((i as u32, *value))
                }
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn an_edit_that_breaks_linearizability_is_caught_and_undoing_it_restores() {
        let mut l = lab(json!({"store": {"type": "correct"}, "seed": 5}));
        run_to_end(&mut l);
        assert!(!has_violation(&l));
        let checks = l.model().checks;
        let (read, value) = a_read(&l);
        l.act(&json!({"type": "editOutput", "op": read,
                      "output": {"result": "value", "value": 999_999}}))
            .unwrap();
        assert!(has_violation(&l));
        assert_eq!(l.model().checks, checks + 1, "one part re-checked");
        let v = l.view();
        assert!(!invariant(&v, LINEARIZABLE).ok);
        assert!(
            invariant(&v, CORRECT_STORE)
                .detail
                .contains("not applicable")
        );
        let text = l.model().verdict_text();
        assert!(text.contains("no operation ever writes 999999"), "{text}");
        assert!(text.contains("edited 1 time"), "{text}");
        audit_any(l.model());
        l.act(&json!({"type": "editOutput", "op": read,
                      "output": {"result": "value", "value": value}}))
            .unwrap();
        assert!(!has_violation(&l));
        assert!(invariant(&l.view(), LINEARIZABLE).ok);
        audit_any(l.model());
    }

    #[test]
    fn dropping_the_write_a_read_saw_breaks_it_and_a_timeout_explains_it() {
        let mut l = lab(json!({"store": {"type": "correct"}, "seed": 5, "timeoutProbability": 0}));
        run_to_end(&mut l);
        let (_, value) = a_read(&l);
        let AnyHistory::Register(h) = &l.model().history else {
            panic!()
        };
        let write = h
            .ops
            .iter()
            .position(|op| {
                op.input
                    == RegisterInput::Write {
                        value: value.unwrap(),
                    }
            })
            .unwrap() as u32;
        let mut dropped = l.model().clone();
        dropped
            .act(&LinearizabilityLabAction::DropOperation { op: write })
            .unwrap();
        assert!(dropped.violations().next().is_some());
        assert!(!dropped.is_called(write));
        // A write whose response was lost may still have taken effect.
        l.act(&json!({"type": "markTimedOut", "op": write}))
            .unwrap();
        assert!(!has_violation(&l));
        assert!(!l.model().is_returned(write));
        let bar = match &l.view().panels[0] {
            Panel::Timeline { bars, .. } => bars
                .iter()
                .find(|b| b.label.starts_with(&format!("#{write} ")))
                .cloned()
                .unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(bar.end, None);
        assert_eq!(bar.state, "linearized");
        // Moving the write after the read that saw it breaks real time.
        let (read, _) = a_read(&l);
        let ret = l.model().history.get().ret(read).unwrap();
        l.act(&json!({"type": "editInterval", "op": write, "call": ret + 1, "ret": ret + 2}))
            .unwrap();
        assert!(has_violation(&l));
        audit_any(l.model());
    }

    #[test]
    fn each_step_reveals_one_event_and_only_returns_re_check() {
        let mut l = lab(json!({"store": {"type": "correct"}, "seed": 9}));
        let total = l.model().events.len();
        let mut last_bars = 0;
        for k in 1..=total {
            assert_eq!(l.step_events(1).unwrap(), 1);
            let m = l.model();
            assert_eq!(m.revealed, k);
            assert_eq!(m.steps, k as u64);
            assert_eq!(m.checks as usize, m.returned, "one check per return");
            let Panel::Timeline { bars, .. } = &l.view().panels[0] else {
                panic!()
            };
            assert!(bars.len() == last_bars || bars.len() == last_bars + 1);
            assert_eq!(bars.len(), m.called);
            assert_eq!(
                bars.iter().filter(|b| b.end.is_none()).count(),
                m.called - m.returned
            );
            last_bars = bars.len();
        }
        assert_eq!(l.step_events(1).unwrap(), 0);
        // Events at equal times: calls first, so closed intervals overlap.
        let events = &l.model().events;
        assert!(events.windows(2).all(|w| w[0] < w[1]));
        // Time: one tick is 100 ms.
        let last = events.last().unwrap().time;
        assert_eq!(l.now(), Time::from_millis(last * 100));
        // Seeking back shows the shorter history again.
        l.seek(10).unwrap();
        assert_eq!(l.model().revealed, 10);
    }

    #[test]
    fn a_violated_part_is_re_checked_only_when_its_report_changes() {
        let mut l = lab(json!({"model": "kv", "seed": 3, "keys": 3}));
        // The audit at every step shows the cached reports stay true.
        while l.step_events(1).unwrap() == 1 {
            audit_any(l.model());
        }
        let m = l.model();
        assert!(m.violations().next().is_some());
        assert!(
            (m.checks as usize) < m.returned,
            "returns the bad part's report does not name need no check"
        );
        let Panel::Table { rows, .. } = &l.view().panels[2] else {
            panic!()
        };
        assert_eq!(rows.len(), 3);
        assert!(rows.iter().any(|r| r[2] == json!("not linearizable")));
        assert!(rows.iter().any(|r| r[2] == json!("linearizable")));
    }

    #[test]
    fn pasted_examples_are_judged() {
        let mut etcd = lab(json!({"history": {"format": "etcdLog", "text": EXAMPLE_ETCD_LOG}}));
        run_to_end(&mut etcd);
        assert!(has_violation(&etcd));
        let text = etcd.model().verdict_text();
        assert!(
            text.contains("cas(1,2)✓") && text.contains("etcd log"),
            "{text}"
        );
        audit_any(etcd.model());
        let mut kv = lab(json!({"history": {"format": "kvEdn", "text": EXAMPLE_KV_EDN}}));
        run_to_end(&mut kv);
        assert!(!has_violation(&kv));
        assert_eq!(kv.model().parts.len(), 2);
        // Pasting into a running lab starts over at the current time.
        let mut l = lab(Value::Null);
        l.step_events(25).unwrap();
        let now = l.now();
        l.act(&json!({"type": "paste", "format": "etcdLog", "text": EXAMPLE_ETCD_LOG}))
            .unwrap();
        assert_eq!(l.model().revealed, 0);
        assert_eq!(l.model().origin, now);
        assert_eq!(l.model().history.get().model(), ModelKind::CasRegister);
        run_to_end(&mut l);
        assert!(has_violation(&l));
    }

    #[test]
    fn labels_read_like_operations() {
        let cas = CasRegisterInput::Cas {
            expected: 1,
            new: 2,
        };
        assert_eq!(label::<CasRegister>(&cas, &Response::Ok, true), "cas(1,2)✓");
        assert_eq!(
            label::<CasRegister>(&cas, &Response::Failed, true),
            "cas(1,2)✗"
        );
        assert_eq!(
            label::<CasRegister>(&cas, &Response::Failed, false),
            "cas(1,2)?"
        );
        let read = RegisterInput::Read;
        let three = Response::Value { value: Some(3) };
        assert_eq!(label::<Register>(&read, &three, true), "r→3");
        assert_eq!(label::<Register>(&read, &three, false), "r→?");
        let nil = Response::Value { value: None };
        assert_eq!(label::<Register>(&read, &nil, true), "r→nil");
        let write = RegisterInput::Write { value: 3 };
        assert_eq!(label::<Register>(&write, &Response::Ok, true), "w(3)");
        let get = KvInput::Get { key: "k0".into() };
        let empty = Response::Value {
            value: String::new(),
        };
        assert_eq!(label::<KvModel>(&get, &empty, true), "k0:r→''");
    }

    #[test]
    fn bad_configs_and_actions_name_the_field_and_change_nothing() {
        let config_cases = [
            (json!({"clients": 0}), "config.clients"),
            (json!({"operations": 301}), "config.operations"),
            (json!({"keys": 17}), "config.keys"),
            (
                json!({"timeoutProbability": 0.9}),
                "config.timeoutProbability",
            ),
            (
                json!({"timeoutProbability": -0.1}),
                "config.timeoutProbability",
            ),
            (json!({"tickMs": 0}), "config.tickMs"),
            (json!({"tickMs": 1e300}), "config.tickMs"),
            (json!({"maxCheckerSteps": 0}), "config.maxCheckerSteps"),
            (
                json!({"store": {"type": "laggingReplica", "staleReadProbability": 2,
                       "lostWriteProbability": 0, "lagTicks": 3}}),
                "config.store.staleReadProbability",
            ),
            (
                json!({"store": {"type": "laggingReplica", "staleReadProbability": 0,
                       "lostWriteProbability": 0, "lagTicks": 0}}),
                "config.store.lagTicks",
            ),
            (
                json!({"history": {"format": "etcdLog", "text": ""}}),
                "config.history.text",
            ),
            (json!({"model": "queue"}), "config.model"),
        ];
        for (config, field) in config_cases {
            let e = Runner::<LinearizabilityLab>::from_json(&config)
                .err()
                .unwrap();
            assert_eq!(field_of(e), field, "{config}");
        }
        let e = Runner::<LinearizabilityLab>::from_json(&json!({"history": {"format": "etcdLog",
                    "text": "INFO  jepsen.util - 0\t:invoke\t:write\t1\nINFO  jepsen.util - x"}}))
        .err()
        .unwrap();
        assert!(e.to_string().contains("config.history.text"), "{e}");
        assert!(e.to_string().contains("line 2"), "{e}");
        let mut l = lab(Value::Null);
        l.step_events(30).unwrap();
        let before = (serde_json::to_value(l.view()).unwrap(), l.trace());
        let action_cases = [
            (
                json!({"type": "editOutput", "op": 40, "output": {"result": "ok"}}),
                "action.op",
            ),
            (
                json!({"type": "editOutput", "op": 2, "output": {"result": "ok"}}),
                "action.output.result",
            ),
            (
                json!({"type": "editOutput", "op": 2, "output": {"result": "value", "value": "x"}}),
                "action.output.value",
            ),
            (
                json!({"type": "editInterval", "op": 2, "call": 5, "ret": 4}),
                "action.ret",
            ),
            (
                json!({"type": "editInterval", "op": 2, "call": u64::MAX, "ret": u64::MAX}),
                "action.call",
            ),
            (json!({"type": "markTimedOut", "op": -1}), "action.op"),
            (
                json!({"type": "paste", "format": "kvEdn", "text": "{:process x}"}),
                "action.text",
            ),
            (
                json!({"type": "paste", "format": "etcdLog", "text": "hello"}),
                "action.text",
            ),
            (
                json!({"type": "regenerate", "seed": 1, "store": {"type": "laggingReplica",
                       "staleReadProbability": 0, "lostWriteProbability": 0, "lagTicks": 1e9}}),
                "action.store.lagTicks",
            ),
            (json!({"type": "editOutputs", "op": 1}), "action.type"),
        ];
        for (action, field) in action_cases {
            let e = l.act(&action).unwrap_err();
            assert_eq!(field_of(e), field, "{action}");
        }
        assert_eq!((serde_json::to_value(l.view()).unwrap(), l.trace()), before);
        l.act(&json!({"type": "dropOperation", "op": 0})).unwrap();
        let e = l
            .act(&json!({"type": "dropOperation", "op": 0}))
            .unwrap_err();
        assert!(e.to_string().contains("was dropped"), "{e}");
        // The key-value store reads strings: null is not one.
        let mut kv = lab(json!({"model": "kv"}));
        run_to_end(&mut kv);
        let AnyHistory::Kv(h) = &kv.model().history else {
            panic!()
        };
        let get = h
            .ops
            .iter()
            .position(|o| matches!(o.input, KvInput::Get { .. }))
            .unwrap();
        let e = kv
            .act(&json!({"type": "editOutput", "op": get, "output": {"result": "value", "value": null}}))
            .unwrap_err();
        assert_eq!(field_of(e), "action.output.value");
        kv.act(
            &json!({"type": "editOutput", "op": get, "output": {"result": "value", "value": 7}}),
        )
        .unwrap();
    }

    #[test]
    fn oversized_pastes_are_refused() {
        let line =
            "INFO  jepsen.util - 0\t:invoke\t:write\t1\nINFO  jepsen.util - 0\t:ok\t:write\t1\n";
        let e = AnyHistory::parse(
            HistoryFormat::EtcdLog,
            &line.repeat(MAX_PASTED_OPERATIONS + 1),
        )
        .unwrap_err();
        assert!(e.to_string().contains("more than the 1000"), "{e}");
        let e = AnyHistory::parse(HistoryFormat::EtcdLog, &" ".repeat(MAX_PASTED_BYTES + 1))
            .unwrap_err();
        assert!(e.to_string().contains("bytes"), "{e}");
    }

    #[test]
    fn a_tiny_budget_leaves_parts_undecided() {
        let mut l = lab(json!({"store": {"type": "correct"}, "maxCheckerSteps": 1, "clients": 8}));
        run_to_end(&mut l);
        let v = l.view();
        assert!(invariant(&v, LINEARIZABLE).ok);
        assert!(l.model().verdict_text().starts_with("UNDECIDED"));
    }

    #[test]
    fn examples_apply_and_schemas_name_the_knobs() {
        let l = lab(Value::Null);
        let schema = l.config_schema().to_string();
        assert!(schema.contains("staleReadProbability") && schema.contains("maxCheckerSteps"));
        let actions = l.action_schema().to_string();
        assert!(actions.contains("editOutput") && actions.contains("markTimedOut"));
        for a in l.example_actions().as_array().unwrap() {
            let mut fresh = lab(Value::Null);
            fresh.step_events(40).unwrap();
            fresh.act(a).unwrap_or_else(|e| panic!("{a}: {e}"));
            run_to_end(&mut fresh);
            audit_any(fresh.model());
        }
        assert_eq!(
            serde_json::to_value(LinearizabilityLabAction::Regenerate {
                seed: 7,
                model: None,
                store: None
            })
            .unwrap(),
            json!({"type": "regenerate", "seed": 7})
        );
    }

    #[test]
    fn the_view_shows_the_history_and_the_verdict() {
        let mut l = lab(Value::Null);
        run_to_end(&mut l);
        let v = l.view();
        let Panel::Timeline { lanes, bars, .. } = &v.panels[0] else {
            panic!()
        };
        assert!(lanes.len() >= 4);
        let states: std::collections::BTreeSet<&str> =
            bars.iter().map(|b| b.state.as_str()).collect();
        assert!(
            states.contains("prefix") && states.contains("unplaceable"),
            "{states:?}"
        );
        assert!(
            bars.iter()
                .filter(|b| b.state == "prefix")
                .all(|b| b.order.is_some())
        );
        assert_eq!(v.nodes.len(), lanes.len());
        assert_eq!(v.metrics.len(), 3);
        assert!(v.metrics[1].y.last().copied().unwrap() > 0.0);
        let trace = l.trace();
        assert_eq!(trace["events"], json!(l.model().events.len()));
        assert_eq!(trace["complete"], json!(true));
        assert_eq!(trace["trace"][0]["event"], json!("call"));
    }
}
