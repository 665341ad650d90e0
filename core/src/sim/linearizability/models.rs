//! Ready-made sequential specifications: a read/write register, a compare-and-set register
//! (what Jepsen's etcd test drives), Knossos' multi-register (transactions reading and
//! writing several registers at once) and a key-value store, partitioned by key or whole.
//!
//! The registers start at a chosen value (nil by default), and say what a read answering
//! nil means ([`NilRead`]): the register holds nothing, or, as Knossos has it, the value
//! was not learned.
//!
//! An output of [`Response::Unknown`] marks an operation whose outcome was never learned
//! (timed out): every model accepts it in any state, and applies its effect as if it had
//! succeeded. Such operations usually also have no return time, and then the checker may
//! leave them out altogether: "it never happened".

use rustc_hash::FxHashMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::model::{Footprint, Model, Operation};

/// What an operation returned, for values of type `V`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "camelCase")]
pub enum Response<V> {
    /// A read's answer.
    Value { value: V },
    /// A write, or a compare-and-set whose comparison matched.
    Ok,
    /// A compare-and-set whose comparison did not match: it definitely changed nothing.
    Failed,
    /// The outcome was never learned.
    Unknown,
}

/// A read: the answer must be the current state, which it leaves unchanged.
fn read<V: PartialEq + Clone>(state: &V, output: &Response<V>) -> Option<V> {
    match output {
        Response::Value { value } if value == state => Some(state.clone()),
        Response::Unknown => Some(state.clone()),
        _ => None,
    }
}

/// What a register read that answers nil means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum NilRead {
    /// Nil is a value: the register holds nothing (it starts at nil and was never
    /// written). A nil read of a register that holds a value is a violation. What
    /// Porcupine's etcd model does.
    #[default]
    Absent,
    /// Nil means the value was not learned, and matches anything: Knossos' register,
    /// compare-and-set register and multi-register (its docs: "nil reads are always
    /// legal"), where a read's invocation carries `:value nil` and a crashed read keeps it.
    Unknown,
}

/// A register read: the answer must be the current value, unless it is nil and nil
/// means "unknown".
fn register_read(
    state: &Option<i64>,
    output: &RegisterOutput,
    nil: NilRead,
) -> Option<Option<i64>> {
    match output {
        Response::Value { value: None } if nil == NilRead::Unknown => Some(*state),
        _ => read(state, output),
    }
}

/// A blind write: always succeeds.
fn write<V>(new_state: V, output: &Response<V>) -> Option<V> {
    match output {
        Response::Ok | Response::Unknown => Some(new_state),
        _ => None,
    }
}

/// A compare-and-set: succeeds exactly when the state equals `expected`.
fn compare_and_set<V: PartialEq + Clone>(
    state: &V,
    expected: &V,
    new_state: V,
    output: &Response<V>,
) -> Option<V> {
    let matches = state == expected;
    match output {
        Response::Ok if matches => Some(new_state),
        Response::Failed if !matches => Some(state.clone()),
        Response::Unknown => Some(if matches { new_state } else { state.clone() }),
        _ => None,
    }
}

fn describe_register_value(value: &Option<i64>) -> String {
    value.map_or_else(|| "nil".to_string(), |v| v.to_string())
}

fn describe_response<V>(output: &Response<V>, show: impl Fn(&V) -> String) -> String {
    match output {
        Response::Value { value } => show(value),
        Response::Ok => "ok".to_string(),
        Response::Failed => "fail".to_string(),
        Response::Unknown => "unknown".to_string(),
    }
}

/// The output type of [`Register`] and [`CasRegister`]; a read answers `None` for nil.
pub type RegisterOutput = Response<Option<i64>>;

/// An operation on a [`Register`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum RegisterInput {
    Read,
    Write { value: i64 },
}

/// A single register of integers with reads and blind writes. `Register::default()`
/// starts at nil and takes a nil read as "the register holds nothing".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Register {
    /// The value before any operation (`None`: nil).
    pub initial: Option<i64>,
    pub nil_read: NilRead,
}

impl Register {
    /// A register that starts at `initial` (`None`: nil), nil reads meaning `nil_read`.
    pub fn new(initial: Option<i64>, nil_read: NilRead) -> Self {
        Register { initial, nil_read }
    }
}

impl Model for Register {
    type State = Option<i64>;
    type Input = RegisterInput;
    type Output = RegisterOutput;

    fn init(&self) -> Option<i64> {
        self.initial
    }

    fn step(
        &self,
        state: &Option<i64>,
        input: &RegisterInput,
        output: &RegisterOutput,
    ) -> Option<Option<i64>> {
        match input {
            RegisterInput::Read => register_read(state, output, self.nil_read),
            RegisterInput::Write { value } => write(Some(*value), output),
        }
    }

    fn describe(&self, input: &RegisterInput, output: &RegisterOutput) -> String {
        match input {
            RegisterInput::Read => format!(
                "read() -> {}",
                describe_response(output, describe_register_value)
            ),
            RegisterInput::Write { value } => format!("write({value})"),
        }
    }

    fn describe_state(&self, state: &Option<i64>) -> String {
        describe_register_value(state)
    }
}

/// An operation on a [`CasRegister`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum CasRegisterInput {
    Read,
    Write { value: i64 },
    Cas { expected: i64, new: i64 },
}

/// A single register of integers with reads, blind writes and compare-and-set; a cas
/// against nil always fails. `CasRegister::default()` starts at nil and takes a nil read
/// as "the register holds nothing" (what Jepsen's etcd test means by it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CasRegister {
    /// The value before any operation (`None`: nil).
    pub initial: Option<i64>,
    pub nil_read: NilRead,
}

impl CasRegister {
    /// A register that starts at `initial` (`None`: nil), nil reads meaning `nil_read`.
    pub fn new(initial: Option<i64>, nil_read: NilRead) -> Self {
        CasRegister { initial, nil_read }
    }
}

impl Model for CasRegister {
    type State = Option<i64>;
    type Input = CasRegisterInput;
    type Output = RegisterOutput;

    fn init(&self) -> Option<i64> {
        self.initial
    }

    fn step(
        &self,
        state: &Option<i64>,
        input: &CasRegisterInput,
        output: &RegisterOutput,
    ) -> Option<Option<i64>> {
        match input {
            CasRegisterInput::Read => register_read(state, output, self.nil_read),
            CasRegisterInput::Write { value } => write(Some(*value), output),
            CasRegisterInput::Cas { expected, new } => {
                compare_and_set(state, &Some(*expected), Some(*new), output)
            }
        }
    }

    fn describe(&self, input: &CasRegisterInput, output: &RegisterOutput) -> String {
        match input {
            CasRegisterInput::Read => format!(
                "read() -> {}",
                describe_response(output, describe_register_value)
            ),
            CasRegisterInput::Write { value } => format!("write({value})"),
            CasRegisterInput::Cas { expected, new } => format!(
                "cas({expected}, {new}) -> {}",
                describe_response(output, describe_register_value)
            ),
        }
    }

    fn describe_state(&self, state: &Option<i64>) -> String {
        describe_register_value(state)
    }
}

/// The output type of [`KvModel`]; a get of a missing key answers the empty string.
pub type KvOutput = Response<String>;

/// An operation on a [`KvModel`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum KvInput {
    Get {
        key: String,
    },
    Put {
        key: String,
        value: String,
    },
    Append {
        key: String,
        value: String,
    },
    Cas {
        key: String,
        expected: String,
        new: String,
    },
}

impl KvInput {
    /// The key the operation touches.
    pub fn key(&self) -> &str {
        match self {
            KvInput::Get { key }
            | KvInput::Put { key, .. }
            | KvInput::Append { key, .. }
            | KvInput::Cas { key, .. } => key,
        }
    }
}

/// A string-to-string map where a missing key reads as the empty string. Keys are
/// independent, so the history is checked one key at a time and a state is the value of
/// one key (this model relies on its own [`Model::partition`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct KvModel;

impl Model for KvModel {
    type State = String;
    type Input = KvInput;
    type Output = KvOutput;

    fn init(&self) -> String {
        String::new()
    }

    fn step(&self, state: &String, input: &KvInput, output: &KvOutput) -> Option<String> {
        match input {
            KvInput::Get { .. } => read(state, output),
            KvInput::Put { value, .. } => write(value.clone(), output),
            KvInput::Append { value, .. } => {
                let mut appended = String::with_capacity(state.len() + value.len());
                appended.push_str(state);
                appended.push_str(value);
                write(appended, output)
            }
            KvInput::Cas { expected, new, .. } => {
                compare_and_set(state, expected, new.clone(), output)
            }
        }
    }

    /// One part per key, in order of first appearance.
    fn partition(&self, ops: &[Operation<KvInput, KvOutput>]) -> Vec<Vec<usize>> {
        let mut part_of_key: FxHashMap<&str, usize> = FxHashMap::default();
        let mut parts: Vec<Vec<usize>> = Vec::new();
        for (index, op) in ops.iter().enumerate() {
            let next_part = parts.len();
            let part = *part_of_key.entry(op.input.key()).or_insert(next_part);
            match parts.get_mut(part) {
                Some(members) => members.push(index),
                None => parts.push(vec![index]),
            }
        }
        parts
    }

    fn describe(&self, input: &KvInput, output: &KvOutput) -> String {
        let quoted = |s: &String| format!("'{s}'");
        match input {
            KvInput::Get { key } => {
                format!("get('{key}') -> {}", describe_response(output, quoted))
            }
            KvInput::Put { key, value } => format!("put('{key}', '{value}')"),
            KvInput::Append { key, value } => format!("append('{key}', '{value}')"),
            KvInput::Cas { key, expected, new } => format!(
                "cas('{key}', '{expected}', '{new}') -> {}",
                describe_response(output, quoted)
            ),
        }
    }

    fn describe_state(&self, state: &String) -> String {
        format!("'{state}'")
    }
}

/// A key-value store's state as one value: the keys set so far, sorted, with their values.
/// Values are shared (`Rc`), so the checker's copy of a state per configuration costs a
/// reference count per key, not a string copy.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct KvMap(Vec<(std::rc::Rc<str>, std::rc::Rc<str>)>);

impl KvMap {
    /// The value of `key`, the empty string if it was never set.
    pub fn get(&self, key: &str) -> &str {
        match self.0.binary_search_by(|(k, _)| (**k).cmp(key)) {
            Ok(i) => self.0.get(i).map_or("", |(_, v)| v),
            Err(_) => "",
        }
    }

    fn with(&self, key: &str, value: &str) -> KvMap {
        let mut next = self.0.clone();
        match next.binary_search_by(|(k, _)| (**k).cmp(key)) {
            Ok(i) => {
                if let Some(slot) = next.get_mut(i) {
                    slot.1 = value.into();
                }
            }
            Err(i) => next.insert(i, (key.into(), value.into())),
        }
        KvMap(next)
    }
}

/// The key-value store of [`KvModel`] checked as one object, without splitting the
/// history by key: every operation is in one part, and a state is the whole map. Slower
/// than [`KvModel`] by nature (locality is what makes per-key checking cheap), it is what
/// a checker faces when operations span keys, and a test of the search itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct KvStoreModel;

impl Model for KvStoreModel {
    type State = KvMap;
    type Input = KvInput;
    type Output = KvOutput;

    fn init(&self) -> KvMap {
        KvMap::default()
    }

    fn step(&self, state: &KvMap, input: &KvInput, output: &KvOutput) -> Option<KvMap> {
        let key = input.key();
        let current = state.get(key).to_string();
        let next = KvModel.step(&current, input, output)?;
        Some(if next == current {
            state.clone()
        } else {
            state.with(key, &next)
        })
    }

    fn footprint(&self, input: &KvInput) -> Footprint {
        Footprint::Keys(vec![key_number(input.key())])
    }

    fn describe(&self, input: &KvInput, output: &KvOutput) -> String {
        KvModel.describe(input, output)
    }
}

/// A fixed (never OS-seeded) hash of a key's name, for [`Model::footprint`].
fn key_number(key: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = rustc_hash::FxHasher::default();
    key.hash(&mut hasher);
    hasher.finish()
}

/// One step of a [`MultiRegister`] transaction: Knossos' `[:read k v]` or `[:write k v]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum MicroOp {
    Read { key: String },
    Write { key: String, value: Option<i64> },
}

impl MicroOp {
    pub fn key(&self) -> &str {
        match self {
            MicroOp::Read { key } | MicroOp::Write { key, .. } => key,
        }
    }
}

/// A transaction's answer: one entry per micro-operation, the value read for a read
/// (`None`: nil) and ignored for a write.
pub type MultiRegisterOutput = Response<Vec<Option<i64>>>;

/// The registers of a [`MultiRegister`] that hold a value, sorted by key (shared
/// names, so copying a state costs reference counts).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Registers(Vec<(std::rc::Rc<str>, i64)>);

impl Registers {
    /// The value of register `key`, `None` if it holds nothing (nil).
    pub fn get(&self, key: &str) -> Option<i64> {
        self.0
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .and_then(|i| self.0.get(i))
            .map(|(_, v)| *v)
    }

    fn set(&mut self, key: &str, value: Option<i64>) {
        match (self.0.binary_search_by(|(k, _)| (**k).cmp(key)), value) {
            (Ok(i), Some(v)) => {
                if let Some(slot) = self.0.get_mut(i) {
                    slot.1 = v;
                }
            }
            (Ok(i), None) => {
                self.0.remove(i);
            }
            (Err(i), Some(v)) => self.0.insert(i, (key.into(), v)),
            (Err(_), None) => {}
        }
    }
}

/// Knossos' multi-register: registers named by keys, each nil until written (or set by
/// `initial`), and operations that are transactions, a sequence of reads and writes of
/// several registers applied atomically in order. A read inside a transaction sees the
/// writes before it in the same transaction. Operations touching disjoint keys are
/// independent ([`Model::footprint`]), which the search exploits; the history is not
/// split by key, since one transaction may span several.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MultiRegister {
    pub initial: Registers,
    pub nil_read: NilRead,
}

impl MultiRegister {
    /// Registers starting at `initial` (any key not named is nil), nil reads meaning
    /// `nil_read`.
    pub fn new(initial: &[(&str, i64)], nil_read: NilRead) -> Self {
        let mut registers = Registers::default();
        for &(key, value) in initial {
            registers.set(key, Some(value));
        }
        MultiRegister {
            initial: registers,
            nil_read,
        }
    }
}

impl Model for MultiRegister {
    type State = Registers;
    type Input = Vec<MicroOp>;
    type Output = MultiRegisterOutput;

    fn init(&self) -> Registers {
        self.initial.clone()
    }

    fn step(
        &self,
        state: &Registers,
        input: &Vec<MicroOp>,
        output: &MultiRegisterOutput,
    ) -> Option<Registers> {
        let answers = match output {
            Response::Value { value } if value.len() == input.len() => Some(value),
            Response::Unknown => None,
            _ => return None,
        };
        let mut next = state.clone();
        for (index, micro) in input.iter().enumerate() {
            match micro {
                MicroOp::Write { key, value } => next.set(key, *value),
                MicroOp::Read { key } => {
                    let answer = answers.and_then(|a| a.get(index)).copied();
                    let matches = match answer {
                        // Unknown outcome, or nil meaning "not learned".
                        None => true,
                        Some(None) if self.nil_read == NilRead::Unknown => true,
                        Some(read) => read == next.get(key),
                    };
                    if !matches {
                        return None;
                    }
                }
            }
        }
        Some(next)
    }

    fn footprint(&self, input: &Vec<MicroOp>) -> Footprint {
        Footprint::Keys(input.iter().map(|m| key_number(m.key())).collect())
    }

    fn describe(&self, input: &Vec<MicroOp>, output: &MultiRegisterOutput) -> String {
        let answers = match output {
            Response::Value { value } => Some(value),
            _ => None,
        };
        let steps: Vec<String> = input
            .iter()
            .enumerate()
            .map(|(index, micro)| match micro {
                MicroOp::Write { key, value } => {
                    format!("w {key} {}", describe_register_value(value))
                }
                MicroOp::Read { key } => match answers.and_then(|a| a.get(index)) {
                    Some(value) => format!("r {key} {}", describe_register_value(value)),
                    None => format!("r {key} ?"),
                },
            })
            .collect();
        format!("txn[{}]", steps.join(", "))
    }

    fn describe_state(&self, state: &Registers) -> String {
        let entries: Vec<String> = state.0.iter().map(|(k, v)| format!("{k} {v}")).collect();
        format!("{{{}}}", entries.join(", "))
    }
}
