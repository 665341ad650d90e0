//! Lab `sim.linearizability`: a history of register or key-value operations grows one event
//! at a time, and the linearizability checker ([`crate::sim::linearizability`]) judges every
//! prefix. It shows what the definition says: each operation is a bar from its call to its
//! return, and the history is linearizable when one instant inside every bar can be chosen so
//! that, read left to right, those instants form a run the sequential object explains. The
//! witness numbers them; a violation shows the longest prefix that can be placed, the state
//! it leaves, and why none of the operations that must come next fits.
//!
//! Histories come from a simulated store, or are pasted as Jepsen text (an etcd log, EDN
//! key-value lines, a Knossos / Jepsen EDN register history, or a Knossos multi-register
//! history of transactions). The register models start at `initialValue` and read nil as
//! `nilRead` says. The correct store applies each operation at one instant inside its
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
//! returned: no later event can repair it. Each check is bounded by `maxCheckerSteps` (the
//! search is exponential in the worst case); the result is cached in the lab, so `view()`
//! does no search.
//!
//! A timeline bar's `state` is `linearized` (with its `order` in the witness), `omitted`
//! (pending, left out of the witness: it never took effect), `prefix` (with its position in
//! the longest linearizable prefix), `unplaceable` (had to come next, and cannot),
//! `unreached` (returned, after the violation), `pending` (not returned, not placed) or
//! `undecided` (its part ran out of budget).
//!
//! - `spec`: the three models in one vocabulary (labels, explanations, output edits).
//! - `store`: the simulated store that generates histories.
//! - `history`: the operations, checking one part, parsing pasted text.
//! - `multi`: multi-register histories (Knossos' transactions over several registers).
//! - `view`: the timeline, verdict, tables and invariants.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::fmt::Debug;
use std::hash::Hasher;

use crate::error::{DistlabError, Result, check_range};
use crate::lab::local::{LocalLab, Moment};
use crate::lab::sampling::{DEFAULT_SAMPLE_MS, SampleMs, Sampled, Sampler};
use crate::lab::settings::LabSettings;
use crate::lab::view::{Panel, View};
use crate::sim::linearizability::{NilRead, Register};
use crate::sim::trace::StableHasher;
use crate::time::{Duration, Time};
use history::{AnyHistory, History, HistoryOps, PartCheck, PartVerdict};
use store::Generation;

mod history;
mod multi;
mod spec;
mod store;
mod view;

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
/// The most model steps one check may take: about a tenth of a second.
pub const MAX_CHECKER_STEPS: u64 = 2_000_000;
/// The longest replica lag, in ticks.
pub const MAX_LAG_TICKS: u64 = 1_000;
/// The highest timeout probability. Every lost response leaves an operation pending for
/// ever, the checker's hardest case, and a new client lane.
pub const MAX_TIMEOUT_PROBABILITY: f64 = 0.2;
/// Revealed events kept in the trace.
pub const TRACE_EVENTS: usize = 1_024;

/// The sequential object the history is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
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
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
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
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum HistoryFormat {
    /// Jepsen's etcd test log (`INFO  jepsen.util - 3 :invoke :cas [3 0]`): a
    /// compare-and-set register.
    EtcdLog,
    /// One EDN map per line (`{:process 0, :type :invoke, :f :get, :key "4", :value nil}`):
    /// a key-value store.
    KvEdn,
    /// A Knossos / Jepsen EDN history of one register (`{:process 0, :type :invoke, :f
    /// :write, :value 3}`, `:read`, `:cas` with `[old new]`): one map per line, or one
    /// vector of maps; `:fail` operations are dropped, `:info` ones may or may not have
    /// happened. A compare-and-set register, starting at `initialValue`, nil reads meaning
    /// `nilRead`.
    Edn,
    /// A Knossos EDN multi-register history: each operation a transaction of reads and
    /// writes of several registers, `{:process 0, :type :invoke, :f :txn, :value [[:read
    /// :x nil] [:write :y 2]]}`, its `:ok` carrying the values read (`[:r k v]` / `[:w k
    /// v]` also read). Every register it names starts at `initialValue`; nil reads mean
    /// `nilRead`. Checked as one part, since a transaction may span registers.
    MultiRegisterEdn,
}

/// How the register models start and what their nil reads mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct RegisterSetup {
    pub(crate) initial: Option<i64>,
    pub(crate) nil_read: NilRead,
}

/// A history given as Jepsen text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct PastedHistory {
    pub format: HistoryFormat,
    // Plain text of many lines (one operation a line): forms show a text area.
    #[schemars(extend("contentMediaType" = "text/plain"))]
    pub text: String,
}

/// Configuration of the linearizability lab. JSON: `{"seed": 1, "model": "register",
/// "clients": 4, "keys": 3, "operations": 40, "store": {"type": "laggingReplica",
/// "staleReadProbability": 0.2, "lostWriteProbability": 0, "lagTicks": 8},
/// "timeoutProbability": 0.03, "history": null, "tickMs": 100, "maxCheckerSteps": 200000,
/// "initialValue": null, "nilRead": "absent"}`.
/// With `history` set, the pasted text replaces the generated history and its format
/// decides the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
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
    #[schemars(range(min = 0, max = 0.2))]
    pub timeout_probability: f64,
    /// A pasted history, used instead of a generated one.
    pub history: Option<PastedHistory>,
    /// Lab milliseconds per history tick: how fast the history unrolls.
    #[schemars(range(min = 0.001, max = 60000))]
    pub tick_ms: f64,
    /// The most model steps one check may take; a part not decided within it is shown
    /// as undecided.
    #[schemars(range(min = 1, max = 2000000))]
    pub max_checker_steps: u64,
    /// The registers' value before any operation (`null`: nil), generated or pasted.
    pub initial_value: Option<i64>,
    /// What a register read answering nil means: `absent` (nil is a value, the register
    /// holds nothing; Porcupine's etcd model) or `unknown` (the value was not learned, and
    /// matches anything; Knossos' models).
    pub nil_read: NilRead,
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
            initial_value: None,
            nil_read: NilRead::Absent,
        }
    }
}

/// A value given in an edit: an integer for the registers (`null` for nil), a string (or
/// an integer, taken as its decimal text) for the key-value store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
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
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
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
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
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
    Paste {
        format: HistoryFormat,
        #[schemars(extend("contentMediaType" = "text/plain"))]
        text: String,
    },
}

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
    /// What the part is called when it is the whole history (`key` is `None`).
    whole: &'static str,
    /// Revealed operations, in order of call.
    members: Vec<u32>,
    check: PartCheck,
}

impl Part {
    fn name(&self) -> String {
        self.key
            .as_ref()
            .map_or_else(|| self.whole.to_string(), |k| format!("key {k}"))
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
    /// How register models start, for generated and pasted histories alike.
    register: RegisterSetup,
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
    parts: Vec<Part>,
    /// Revealed calls and returns.
    called: usize,
    returned: usize,
    last_check_steps: u64,
    checks: u64,
    hasher: StableHasher,
    trace: VecDeque<TraceItem>,
}

impl LinearizabilityLab {
    /// Starts showing `history` from its first event, at `now`.
    fn load(&mut self, history: AnyHistory, source: Source, now: Time) {
        let h = history.get();
        let mut lanes: Vec<u64> = (0..h.slots() as u32).map(|op| h.client(op)).collect();
        lanes.sort_unstable();
        lanes.dedup();
        self.hasher.write_u64(h.slots() as u64);
        self.lanes = lanes;
        self.history = history;
        self.source = source;
        self.edits = 0;
        self.origin = now;
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
    fn tick_now(&self, now: Time) -> u64 {
        now.saturating_since(self.origin).0 / self.tick.0.max(1)
    }

    fn check(&mut self, members: &[u32]) -> PartCheck {
        let mut check = self.history.get().check_part(
            members,
            &|op| self.is_returned(op),
            self.max_checker_steps,
        );
        check.returned = members.iter().filter(|&&op| self.is_returned(op)).count();
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
        let whole = h.whole_part_name();
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
                whole,
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
                    whole: h.whole_part_name(),
                    members: Vec::new(),
                    check: PartCheck {
                        verdict: PartVerdict::Linearizable {
                            order: Vec::new(),
                            omitted: Vec::new(),
                            state: initial,
                        },
                        steps: 0,
                        replay_problem: None,
                        returned: 0,
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
    /// the earliest return then known, cannot change with a return revealed later. A part
    /// the last check left undecided is re-checked once twice as many of its operations
    /// have returned: each such check spends the whole budget, and this keeps their number
    /// logarithmic in the length of the history.
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
        if matches!(part.check.verdict, PartVerdict::Undecided { .. }) {
            let returned = part
                .members
                .iter()
                .filter(|&&m| self.is_returned(m))
                .count();
            if returned < 2 * part.check.returned {
                return;
            }
        }
        let members = part.members.clone();
        let check = self.check(&members);
        if let Some(part) = self.parts.get_mut(index) {
            part.check = check;
        }
    }

    /// Reveals `event` as the lab's event number `step` (counted from 1).
    fn reveal(&mut self, event: Event, at: Time, step: u64) {
        self.revealed += 1;
        self.cursor = Some(event);
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
        self.hasher.write_u64(step);
        self.hasher.write_u64(at.0);
        self.hasher.write_u64(event.time);
        self.hasher.write_u8(event.phase as u8);
        self.hasher.write_u32(event.op);
        self.hasher.write(label.as_bytes());
        if self.trace.len() >= TRACE_EVENTS {
            self.trace.pop_front();
        }
        self.trace.push_back(TraceItem {
            step,
            at,
            event,
            client: h.client(event.op),
            label,
        });
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
}

/// A tiny etcd log with a stale read: process 0 reads 1 after process 2's compare-and-set
/// from 1 to 2 has returned.
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

/// A tiny Knossos register history, not linearizable: process 2 reads 1 although the
/// compare-and-set from 1 to 2 had returned before its read began; process 1's write of 3
/// failed (so it did not happen) and process 3's read is indeterminate.
pub const EXAMPLE_EDN: &str = r#"{:process 0, :type :invoke, :f :write, :value 1}
{:process 0, :type :ok, :f :write, :value 1}
{:process 1, :type :invoke, :f :write, :value 3}
{:process 1, :type :fail, :f :write, :value 3}
{:process 0, :type :invoke, :f :cas, :value [1 2]}
{:process 3, :type :invoke, :f :read, :value nil}
{:process 0, :type :ok, :f :cas, :value [1 2]}
{:process 2, :type :invoke, :f :read, :value nil}
{:process 2, :type :ok, :f :read, :value 1}
{:process 3, :type :info, :f :read, :value nil}
"#;

/// A tiny Knossos multi-register history, not linearizable with `nilRead` absent (the
/// default): process 1 reads x = 1 and y = nil in one transaction, but process 0 wrote
/// both atomically before that read began (a torn read). With `nilRead` unknown the nil
/// read matches anything, and it is linearizable.
pub const EXAMPLE_MULTI_REGISTER_EDN: &str = r#"{:process 0, :type :invoke, :f :txn, :value [[:write :x 1] [:write :y 1]]}
{:process 0, :type :ok, :f :txn, :value [[:write :x 1] [:write :y 1]]}
{:process 1, :type :invoke, :f :txn, :value [[:read :x nil] [:read :y nil]]}
{:process 1, :type :ok, :f :txn, :value [[:read :x 1] [:read :y nil]]}
"#;

impl Sampled for LinearizabilityLab {
    type Totals = ();

    fn series(&self) -> Vec<(String, String)> {
        [
            ("checker steps", "steps (latest check)"),
            ("operations revealed", "ops"),
            ("operations pending", "ops"),
        ]
        .map(|(n, u)| (n.into(), u.into()))
        .to_vec()
    }

    fn totals(&self) {}

    fn sample(&self, _at: Time, _interval: Duration, _since: &()) -> Vec<f64> {
        vec![
            self.last_check_steps as f64,
            self.called as f64,
            (self.called - self.returned) as f64,
        ]
    }
}

/// The lab samples once per tick of its history ([`LinearizabilityLab::sample_every`]),
/// not every `sampleMs`: its config has no such field.
impl LabSettings for LinearizabilityLabConfig {
    fn seed(&self) -> u64 {
        self.seed
    }
    fn sample_ms(&self) -> SampleMs {
        DEFAULT_SAMPLE_MS
    }
}

impl LocalLab for LinearizabilityLab {
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
        let register = RegisterSetup {
            initial: c.initial_value,
            nil_read: c.nil_read,
        };
        let (history, source) = match &c.history {
            Some(pasted) => (
                AnyHistory::parse(pasted.format, &pasted.text, register)
                    .map_err(|e| crate::sim::workload::within("history", e))?,
                Source::Pasted(pasted.format),
            ),
            None => (
                AnyHistory::generate(&generation, register),
                Source::Generated(generation),
            ),
        };
        let mut lab = LinearizabilityLab {
            generation,
            register,
            source,
            edits: 0,
            tick: Duration(tick.0.max(1)),
            max_checker_steps: c.max_checker_steps,
            history: AnyHistory::Register(History::new(Vec::new(), Register::default())),
            lanes: Vec::new(),
            events: Vec::new(),
            revealed: 0,
            cursor: None,
            origin: Time::ZERO,
            parts: Vec::new(),
            called: 0,
            returned: 0,
            last_check_steps: 0,
            checks: 0,
            hasher: StableHasher::default(),
            trace: VecDeque::new(),
        };
        lab.load(history, source, Time::ZERO);
        Ok(lab)
    }

    fn sample_every(c: &LinearizabilityLabConfig) -> Result<Duration> {
        // A sample per tick of the history: `new` checked the tick.
        let tick = Duration::try_from_millis_f64("tickMs", c.tick_ms)?;
        Ok(Duration(tick.0.max(1)))
    }

    fn next_event_at(&self, now: Time) -> Option<Time> {
        let event = self.events.get(self.revealed)?;
        // An edit can move an unrevealed event before the clock: it is revealed now.
        Some(self.due(*event).max(now))
    }

    fn on_event(&mut self, _due: Time, at: Moment) {
        if let Some(&event) = self.events.get(self.revealed) {
            self.reveal(event, at.now, at.step + 1);
        }
    }

    fn act(&mut self, at: Moment, action: &LinearizabilityLabAction) -> Result<()> {
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
                    AnyHistory::generate(&generation, self.register),
                    Source::Generated(generation),
                    at.now,
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
                let history = AnyHistory::parse(*format, text, self.register)?;
                self.load(history, Source::Pasted(*format), at.now);
            }
        }
        if let Ok(text) = serde_json::to_string(action) {
            self.hasher.write(text.as_bytes());
        }
        Ok(())
    }

    fn view(&self, at: Moment, _samples: &Sampler<()>) -> View {
        let statuses = self.statuses();
        View {
            nodes: self.client_nodes(),
            panels: vec![
                self.timeline(&statuses, at.now),
                Panel::Text {
                    title: "verdict".into(),
                    body: self.verdict_text(at.now),
                },
                self.parts_table(),
                self.operations_table(&statuses),
            ],
            invariants: self.invariants(),
            // The history, not the client circles, is the picture (Porcupine's).
            stage_panel: Some(0),
            ..View::default()
        }
    }

    /// `{hash, events, complete, trace}`: a stable hash of every revealed event (step,
    /// time, tick, call or return, operation, label) and of every action, and the newest
    /// [`TRACE_EVENTS`] revealed events.
    fn trace(&self, at: Moment) -> Value {
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
            "events": at.step,
            "complete": at.step <= self.trace.len() as u64,
            "trace": trace,
        })
    }

    fn lessons() -> Vec<crate::lab::lesson::Lesson> {
        self::lessons()
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
            Paste {
                format: HistoryFormat::Edn,
                text: EXAMPLE_EDN.to_string(),
            },
            Paste {
                format: HistoryFormat::MultiRegisterEdn,
                text: EXAMPLE_MULTI_REGISTER_EDN.to_string(),
            },
        ]
    }
}

/// The lesson `sim.linearizability` carries: a stale read, and the checker finding it
/// (Herlihy & Wing, "Linearizability: A Correctness Condition for Concurrent Objects",
/// TOPLAS 1990; the search is Wing & Gong's with Lowe's memoisation, as in Porcupine).
pub fn lessons() -> Vec<crate::lab::lesson::Lesson> {
    use crate::lab::lesson::{self, Condition, Lesson, Pause};
    // The steps of this lesson take no action of their own.
    let step = |caption: &str, pause: Pause| lesson::step(caption, Vec::new(), pause);
    vec![Lesson {
        id: "stale-read".into(),
        title: "A stale read, found by the checker".into(),
        follows: "Herlihy & Wing, Linearizability: A Correctness Condition for Concurrent \
                  Objects (ACM TOPLAS 1990)"
            .into(),
        config: serde_json::Value::Null,
        steps: vec![
            step(
                "Five clients read and write one register through a store that answers \
                 some reads from a replica lagging behind. Each operation is a bar from \
                 the moment it was called to the moment it returned.",
                Pause::After { ms: 300.0 },
            ),
            step(
                "The history is linearizable if one instant can be picked inside every \
                 bar so that, read left to right, the operations make sense one at a \
                 time. The numbers on the bars are such an order, as far as the checker \
                 found one. Let the history grow until it cannot.",
                Pause::When {
                    condition: Condition::Violated {
                        name: "history is linearizable".into(),
                    },
                    within_ms: 60_000.0,
                },
            ),
            step(
                "A read returned a value that had already been overwritten before the \
                 read was called: no instant inside its bar explains it. The checker \
                 shows the longest prefix it could place and blames the clients whose \
                 operations cannot go next; the verdict panel says why.",
                Pause::After { ms: 0.0 },
            ),
        ],
    }]
}

#[cfg(test)]
mod tests;
