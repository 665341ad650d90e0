//! Parsers for Jepsen's history formats, from text (no I/O): the `jepsen.util` log lines
//! of Jepsen's etcd test (a compare-and-set register), and EDN histories (see `edn.rs`) as
//! Knossos and Jepsen write them: registers, compare-and-set registers, multi-registers,
//! and the key-value histories of Porcupine's test data.
//!
//! Both record events, not operations: a process `:invoke`s an operation, and later the
//! same process reports `:ok` (it happened, here is the result), `:fail` (it did not
//! happen) or `:info` (unknown: it may or may not have happened, now or later). An event's
//! time is its position among the event lines. An `:info` operation, or one still open at
//! the end of the log, gets no return time and an [`Response::Unknown`] output. A `:fail`
//! read, write, put, get or append definitely did nothing and is dropped; a `:fail` cas is
//! kept as [`Response::Failed`], because Jepsen clients report a comparison that did not
//! match as a failure, and the model then checks that it indeed did not match.

use rustc_hash::FxHashMap;

use super::edn::{self, Edn, EdnError, EdnKind};
use super::model::Operation;
use super::models::{
    CasRegisterInput, KvInput, KvOutput, MicroOp, MultiRegisterOutput, RegisterOutput, Response,
};
use crate::error::{DistlabError, Result};

/// How a process reported the end of its operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventType {
    Invoke,
    Ok,
    Fail,
    Info,
}

impl EventType {
    fn parse(keyword: &str) -> std::result::Result<Self, String> {
        match keyword {
            "invoke" => Ok(EventType::Invoke),
            "ok" => Ok(EventType::Ok),
            "fail" => Ok(EventType::Fail),
            "info" => Ok(EventType::Info),
            other => Err(format!(
                "unknown event type `:{other}` (expected :invoke, :ok, :fail or :info)"
            )),
        }
    }
}

/// What became of an operation.
enum Completion<O> {
    Returned(O),
    DidNotHappen,
    Indeterminate,
}

/// Pairs each process's invocation with its completion.
struct HistoryBuilder<I, O> {
    /// Operations in invocation order; `None` for those that did not happen.
    ops: Vec<Option<Operation<I, O>>>,
    /// Per process, its open operation: index in `ops` and function name.
    open: FxHashMap<u64, (usize, String)>,
    time: u64,
}

impl<I, O> HistoryBuilder<I, O> {
    fn new() -> Self {
        HistoryBuilder {
            ops: Vec::new(),
            open: FxHashMap::default(),
            time: 0,
        }
    }

    fn invoke(
        &mut self,
        process: u64,
        function: &str,
        input: I,
        unknown: O,
    ) -> std::result::Result<(), String> {
        if let Some((open, _)) = self.open.get(&process) {
            return Err(format!(
                "process {process} invokes while its operation number {open} is still open"
            ));
        }
        self.open
            .insert(process, (self.ops.len(), function.to_string()));
        self.ops.push(Some(Operation {
            client: process,
            input,
            call: self.time,
            output: unknown,
            ret: None,
        }));
        self.time += 1;
        Ok(())
    }

    fn complete(
        &mut self,
        process: u64,
        function: &str,
        completion: Completion<O>,
    ) -> std::result::Result<(), String> {
        let Some((index, invoked)) = self.open.remove(&process) else {
            return Err(format!(
                "process {process} completes an operation it never invoked"
            ));
        };
        if invoked != function {
            return Err(format!(
                "process {process} completes :{function} but invoked :{invoked}"
            ));
        }
        let slot = self.ops.get_mut(index);
        match completion {
            Completion::Returned(output) => {
                if let Some(Some(op)) = slot {
                    op.output = output;
                    op.ret = Some(self.time);
                }
            }
            Completion::DidNotHappen => {
                if let Some(slot) = slot {
                    *slot = None;
                }
            }
            Completion::Indeterminate => {}
        }
        self.time += 1;
        Ok(())
    }

    /// The input of `process`'s open operation.
    fn open_input(&self, process: u64) -> Option<&I> {
        let (index, _) = self.open.get(&process)?;
        self.ops.get(*index)?.as_ref().map(|op| &op.input)
    }

    /// The history; operations still open stay indeterminate.
    fn finish(self) -> Vec<Operation<I, O>> {
        self.ops.into_iter().flatten().collect()
    }
}

fn parse_int(text: &str) -> std::result::Result<i64, String> {
    text.parse()
        .map_err(|_| format!("`{text}` is not an integer"))
}

/// Parses Jepsen's etcd test log: lines like `INFO  jepsen.util - 3 :invoke :cas [3 0]`
/// for a [`super::models::CasRegister`]. Lines without `jepsen.util` (other log output)
/// are skipped; a malformed event line is an error naming its line number.
pub fn parse_etcd_log(text: &str) -> Result<Vec<Operation<CasRegisterInput, RegisterOutput>>> {
    let mut builder = HistoryBuilder::new();
    for (index, line) in text.lines().enumerate() {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let Some(marker) = tokens.iter().position(|&t| t == "jepsen.util") else {
            continue;
        };
        let event = tokens.get(marker + 1..).unwrap_or(&[]);
        parse_etcd_event(&mut builder, event).map_err(|problem| {
            DistlabError::parse(format!("etcd log line {}", index + 1), problem)
        })?;
    }
    Ok(builder.finish())
}

fn parse_etcd_event(
    builder: &mut HistoryBuilder<CasRegisterInput, RegisterOutput>,
    event: &[&str],
) -> std::result::Result<(), String> {
    let ["-", process, event_type, function, value @ ..] = event else {
        return Err("expected `- <process> :<type> :<function> <value>`".to_string());
    };
    let process: u64 = process
        .parse()
        .map_err(|_| format!("process `{process}` is not a number"))?;
    let event_type = EventType::parse(event_type.strip_prefix(':').unwrap_or(event_type))?;
    let function = function.strip_prefix(':').unwrap_or(function);
    let value = value.join(" ");
    match event_type {
        EventType::Invoke => {
            let input = match function {
                "read" => CasRegisterInput::Read,
                "write" => CasRegisterInput::Write {
                    value: parse_int(&value)?,
                },
                "cas" => {
                    let (expected, new) = parse_int_pair(&value)?;
                    CasRegisterInput::Cas { expected, new }
                }
                other => return Err(format!("unknown function `:{other}`")),
            };
            builder.invoke(process, function, input, Response::Unknown)
        }
        EventType::Ok => {
            let output = match function {
                "read" if value == "nil" => Response::Value { value: None },
                "read" => Response::Value {
                    value: Some(parse_int(&value)?),
                },
                _ => Response::Ok,
            };
            builder.complete(process, function, Completion::Returned(output))
        }
        EventType::Fail if function == "cas" => {
            builder.complete(process, function, Completion::Returned(Response::Failed))
        }
        EventType::Fail => builder.complete(process, function, Completion::DidNotHappen),
        EventType::Info => builder.complete(process, function, Completion::Indeterminate),
    }
}

/// Parses `[a b]`.
fn parse_int_pair(text: &str) -> std::result::Result<(i64, i64), String> {
    let inner = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .ok_or_else(|| format!("expected `[expected new]`, got `{text}`"))?;
    let mut parts = inner.split_whitespace();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(a), Some(b), None) => Ok((parse_int(a)?, parse_int(b)?)),
        _ => Err(format!("expected `[expected new]`, got `{text}`")),
    }
}

/// The operation maps of an EDN history: every top-level value a map (one a line, as
/// Jepsen's `history.edn` has them, or spread over lines), or a single vector or list of
/// maps (as Knossos' test data has them).
fn op_maps(text: &str) -> std::result::Result<Vec<Edn>, EdnError> {
    let mut values = edn::read_all(text)?;
    if let [single] = values.as_mut_slice()
        && let EdnKind::Vector(items) | EdnKind::List(items) = &mut single.kind
    {
        values = std::mem::take(items);
    }
    for value in &values {
        if !matches!(value.kind, EdnKind::Map(_)) {
            return Err(value.error(format!(
                "expected an operation map like `{{:process 0, :type :invoke, :f :read, \
                 :value nil}}`, found {}",
                value.describe()
            )));
        }
    }
    Ok(values)
}

/// The fields every operation map has.
struct EdnEvent<'a> {
    map: &'a Edn,
    process: u64,
    event_type: EventType,
    function: &'a str,
    /// `:value`, `nil` when absent.
    value: Option<&'a Edn>,
}

impl<'a> EdnEvent<'a> {
    /// Reads the common fields; `None` for an event of a process that is not a client
    /// (Jepsen's `:process :nemesis`), which the checker ignores.
    fn read(map: &'a Edn) -> std::result::Result<Option<Self>, EdnError> {
        let field = |name: &str| {
            map.get(name)
                .ok_or_else(|| map.error(format!("this operation has no `:{name}`")))
        };
        let process = field("process")?;
        let process = match &process.kind {
            EdnKind::Int(p) => {
                u64::try_from(*p).map_err(|_| process.error(format!("process {p} is negative")))?
            }
            EdnKind::Keyword(_) => return Ok(None),
            _ => {
                return Err(process.error(format!(
                    "`:process` must be an integer, found {}",
                    process.describe()
                )));
            }
        };
        let event_type = field("type")?;
        let event_type = match &event_type.kind {
            EdnKind::Keyword(k) => {
                EventType::parse(k).map_err(|problem| event_type.error(problem))?
            }
            _ => {
                return Err(event_type.error(format!(
                    "`:type` must be :invoke, :ok, :fail or :info, found {}",
                    event_type.describe()
                )));
            }
        };
        let function = field("f")?;
        let function = match &function.kind {
            EdnKind::Keyword(k) => k.as_str(),
            _ => {
                return Err(function.error(format!(
                    "`:f` must be a keyword, found {}",
                    function.describe()
                )));
            }
        };
        Ok(Some(EdnEvent {
            map,
            process,
            event_type,
            function,
            value: map.get("value").filter(|v| v.kind != EdnKind::Nil),
        }))
    }

    /// `:value`, which must be present.
    fn value(&self) -> std::result::Result<&'a Edn, EdnError> {
        self.value.ok_or_else(|| {
            let at = self.map.get("value").unwrap_or(self.map);
            at.error(format!("`:{}` needs a `:value`", self.function))
        })
    }

    fn error(&self, problem: String) -> EdnError {
        self.map.error(problem)
    }
}

fn edn_int(value: &Edn, what: &str) -> std::result::Result<i64, EdnError> {
    match value.kind {
        EdnKind::Int(i) => Ok(i),
        _ => Err(value.error(format!(
            "{what} must be an integer, found {}",
            value.describe()
        ))),
    }
}

/// An integer or nil.
fn edn_register_value(
    value: Option<&Edn>,
    what: &str,
) -> std::result::Result<Option<i64>, EdnError> {
    value.map(|v| edn_int(v, what)).transpose()
}

/// Runs `event` for every client event of `text` in order, and turns errors into the
/// crate's, naming `what` and the line and column.
fn read_events<I, O>(
    text: &str,
    what: &str,
    mut event: impl FnMut(&mut HistoryBuilder<I, O>, &EdnEvent<'_>) -> std::result::Result<(), EdnError>,
) -> Result<Vec<Operation<I, O>>> {
    let to_error = |e: EdnError| DistlabError::parse(what, e.to_string());
    let maps = op_maps(text).map_err(to_error)?;
    let mut builder = HistoryBuilder::new();
    for map in &maps {
        let Some(e) = EdnEvent::read(map).map_err(to_error)? else {
            continue;
        };
        event(&mut builder, &e).map_err(to_error)?;
    }
    Ok(builder.finish())
}

/// Completes `e`'s process's operation, the builder's error placed at the map.
fn complete<I, O>(
    builder: &mut HistoryBuilder<I, O>,
    e: &EdnEvent<'_>,
    completion: Completion<O>,
) -> std::result::Result<(), EdnError> {
    builder
        .complete(e.process, e.function, completion)
        .map_err(|problem| e.error(problem))
}

/// Parses a Knossos / Jepsen register history in EDN, for a
/// [`super::models::CasRegister`] (or a plain register: one that never sees a cas):
/// `{:process 0, :type :invoke, :f :write, :value 3}`, `:read` (its invocation's value
/// nil, its `:ok` value the value read, nil included) and `:cas` with value `[old new]`.
/// As Knossos does, a `:fail` operation of any kind, cas included, did not happen and is
/// dropped (unlike the etcd log, where Porcupine reads a failed cas as a comparison that
/// did not match); `:info` leaves it indeterminate, and an operation still open at the
/// end too. Events of `:process :nemesis` are skipped. Errors name the line and column.
pub fn parse_edn_register_history(
    text: &str,
) -> Result<Vec<Operation<CasRegisterInput, RegisterOutput>>> {
    read_events(text, "EDN history", |builder, e| match e.event_type {
        EventType::Invoke => {
            let input = match e.function {
                "read" => CasRegisterInput::Read,
                "write" => CasRegisterInput::Write {
                    value: edn_int(e.value()?, "a write's `:value`")?,
                },
                "cas" => {
                    let value = e.value()?;
                    match value.items() {
                        Some([expected, new]) => CasRegisterInput::Cas {
                            expected: edn_int(expected, "a cas's expected value")?,
                            new: edn_int(new, "a cas's new value")?,
                        },
                        _ => {
                            return Err(value.error(format!(
                                "a cas's `:value` must be [old new], found {}",
                                value.describe()
                            )));
                        }
                    }
                }
                other => {
                    return Err(e.error(format!(
                        "unknown function `:{other}` for a register (expected :read, :write \
                         or :cas; a multi-register history reads and writes vectors of \
                         [:read k v] / [:write k v])"
                    )));
                }
            };
            builder
                .invoke(e.process, e.function, input, Response::Unknown)
                .map_err(|problem| e.error(problem))
        }
        EventType::Ok => {
            let output = match e.function {
                "read" => Response::Value {
                    value: edn_register_value(e.value, "a read's `:value`")?,
                },
                _ => Response::Ok,
            };
            complete(builder, e, Completion::Returned(output))
        }
        EventType::Fail => complete(builder, e, Completion::DidNotHappen),
        EventType::Info => complete(builder, e, Completion::Indeterminate),
    })
}

/// A register's name in a multi-register history: a keyword's name, an integer or a
/// string (`:x`, `1`, `"x"` name registers `x`, `1`, `x`).
fn register_key(key: &Edn) -> std::result::Result<String, EdnError> {
    match &key.kind {
        EdnKind::Keyword(k) | EdnKind::Str(k) | EdnKind::Symbol(k) => Ok(k.clone()),
        EdnKind::Int(i) => Ok(i.to_string()),
        _ => Err(key.error(format!(
            "a register's key must be a keyword, an integer or a string, found {}",
            key.describe()
        ))),
    }
}

/// A transaction's micro-operations, with the values written in it: a vector of
/// `[:read k v]` / `[:write k v]` (also `:r` / `:w`), or a map `{k v}` read (`:f :read`)
/// or written (`:f :write`) key by key.
fn micro_ops(e: &EdnEvent<'_>) -> std::result::Result<Vec<(MicroOp, Option<i64>)>, EdnError> {
    micro_ops_of(e.value()?, e.function)
}

/// The micro-operations of a transaction's `:value`, `function` its `:f`.
fn micro_ops_of(
    value: &Edn,
    function: &str,
) -> std::result::Result<Vec<(MicroOp, Option<i64>)>, EdnError> {
    if let EdnKind::Map(entries) = &value.kind {
        let write = match function {
            "read" => false,
            "write" => true,
            other => {
                return Err(value.error(format!(
                    "a map value goes with :read or :write, not `:{other}`"
                )));
            }
        };
        return entries
            .iter()
            .map(|(k, v)| {
                let key = register_key(k)?;
                let v = edn_register_value(
                    Some(v).filter(|v| v.kind != EdnKind::Nil),
                    "a register's value",
                )?;
                Ok(if write {
                    (MicroOp::Write { key, value: v }, v)
                } else {
                    (MicroOp::Read { key }, v)
                })
            })
            .collect();
    }
    let Some(items) = value.items() else {
        return Err(value.error(format!(
            "a multi-register `:value` must be a vector of [:read k v] / [:write k v] or a \
             map, found {}",
            value.describe()
        )));
    };
    items
        .iter()
        .map(|micro| {
            let Some([f, k, v]) = micro.items() else {
                return Err(micro.error(format!(
                    "a micro-operation must be [f k v], found {}",
                    micro.describe()
                )));
            };
            let key = register_key(k)?;
            let v = edn_register_value(
                Some(v).filter(|v| v.kind != EdnKind::Nil),
                "a register's value",
            )?;
            match &f.kind {
                EdnKind::Keyword(name) if name == "read" || name == "r" => {
                    Ok((MicroOp::Read { key }, v))
                }
                EdnKind::Keyword(name) if name == "write" || name == "w" => {
                    Ok((MicroOp::Write { key, value: v }, v))
                }
                _ => Err(f.error(format!(
                    "a micro-operation is :read or :write (or :r, :w), found {}",
                    f.describe()
                ))),
            }
        })
        .collect()
}

/// Parses a Knossos multi-register history in EDN, for a
/// [`super::models::MultiRegister`]: `{:process 0, :type :invoke, :f :txn, :value
/// [[:read :x nil] [:write :y 2]]}` and its `:ok` with the values read filled in (a map
/// `{:x 1, :y 2}` with `:f :read` or `:write` also works). `:fail` drops the
/// transaction, `:info` leaves it indeterminate; the `:ok` must list the same
/// micro-operations as the invocation. Errors name the line and column.
pub fn parse_edn_multi_register_history(
    text: &str,
) -> Result<Vec<Operation<Vec<MicroOp>, MultiRegisterOutput>>> {
    read_events(text, "EDN history", |builder, e| match e.event_type {
        EventType::Invoke => {
            let input: Vec<MicroOp> = micro_ops(e)?.into_iter().map(|(m, _)| m).collect();
            builder
                .invoke(e.process, e.function, input, Response::Unknown)
                .map_err(|problem| e.error(problem))
        }
        EventType::Ok => {
            let completed = micro_ops(e)?;
            let invoked = builder.open_input(e.process).cloned();
            if let Some(invoked) = invoked {
                let same = invoked.len() == completed.len()
                    && invoked.iter().zip(&completed).all(|(a, (b, _))| {
                        a.key() == b.key()
                            && matches!(a, MicroOp::Read { .. })
                                == matches!(b, MicroOp::Read { .. })
                    });
                if !same {
                    return Err(e.error(format!(
                        "process {} completes a transaction whose micro-operations differ \
                         from the ones it invoked",
                        e.process
                    )));
                }
            }
            let answers = completed.into_iter().map(|(_, v)| v).collect();
            complete(
                builder,
                e,
                Completion::Returned(Response::Value { value: answers }),
            )
        }
        EventType::Fail => complete(builder, e, Completion::DidNotHappen),
        EventType::Info => complete(builder, e, Completion::Indeterminate),
    })
}

/// Parses one transaction as a multi-register history's `:ok` writes it, `[[:read :x 1]
/// [:write :y 2]]`: its micro-operations, each with its value (the value read, or
/// written). What the lab's edit of a transaction's answer takes. Errors name the line
/// and column within `text`.
pub fn parse_transaction(text: &str) -> Result<Vec<(MicroOp, Option<i64>)>> {
    let to_error = |e: EdnError| DistlabError::parse("transaction", e.to_string());
    let values = edn::read_all(text).map_err(to_error)?;
    match values.as_slice() {
        [value] => micro_ops_of(value, "txn").map_err(to_error),
        _ => Err(DistlabError::parse(
            "transaction",
            format!(
                "expected one vector like `[[:read :x 1] [:write :y 2]]`, found {} values",
                values.len()
            ),
        )),
    }
}

/// Whether an EDN history is a multi-register one: some operation is a `:txn`, or its
/// value is a vector of micro-operations or a map. Decides which parser the lab uses.
pub fn is_multi_register_history(text: &str) -> bool {
    let Ok(maps) = op_maps(text) else {
        return false;
    };
    maps.iter().any(|map| {
        let txn = matches!(map.get("f").map(|f| &f.kind), Some(EdnKind::Keyword(f)) if f == "txn");
        let value = map.get("value").map(|v| &v.kind);
        let nested = match value {
            Some(EdnKind::Map(_)) => true,
            Some(EdnKind::Vector(items)) => items.iter().any(|i| i.items().is_some()),
            _ => false,
        };
        txn || nested
    })
}

/// A key-value history's text value: a string, an integer (as its decimal text), or nil
/// (the empty string).
fn edn_text(value: Option<&Edn>, what: &str) -> std::result::Result<String, EdnError> {
    match value.map(|v| (&v.kind, v)) {
        None => Ok(String::new()),
        Some((EdnKind::Str(s), _)) => Ok(s.clone()),
        Some((EdnKind::Int(i), _)) => Ok(i.to_string()),
        Some((_, v)) => Err(v.error(format!("{what} must be a string, found {}", v.describe()))),
    }
}

/// Parses a key-value history, one EDN map per line, such as
/// `{:process 0, :type :invoke, :f :append, :key "4", :value "x 0 1 y"}`, for a
/// [`super::models::KvModel`]. Functions are `:get`, `:put`, `:append` and `:cas` (whose
/// value is `["expected" "new"]`); a nil value reads as the empty string. A `:fail` cas
/// is kept as a comparison that did not match, other `:fail`s are dropped. Errors name the
/// line and column.
pub fn parse_kv_log(text: &str) -> Result<Vec<Operation<KvInput, KvOutput>>> {
    read_events(text, "kv history", |builder, e| {
        let key_field = e
            .map
            .get("key")
            .ok_or_else(|| e.error("this operation has no `:key`".to_string()))?;
        let key = edn_text(Some(key_field).filter(|k| k.kind != EdnKind::Nil), "`:key`")?;
        match e.event_type {
            EventType::Invoke => {
                let input = match e.function {
                    "get" => KvInput::Get { key },
                    "put" => KvInput::Put {
                        key,
                        value: edn_text(e.value, "`:value`")?,
                    },
                    "append" => KvInput::Append {
                        key,
                        value: edn_text(e.value, "`:value`")?,
                    },
                    "cas" => {
                        let value = e.value()?;
                        match value.items() {
                            Some([expected, new]) => KvInput::Cas {
                                key,
                                expected: edn_text(Some(expected), "`:value`")?,
                                new: edn_text(Some(new), "`:value`")?,
                            },
                            _ => {
                                return Err(value.error("a cas `:value` must be [expected new]"));
                            }
                        }
                    }
                    other => return Err(e.error(format!("unknown function `:{other}`"))),
                };
                builder
                    .invoke(e.process, e.function, input, Response::Unknown)
                    .map_err(|problem| e.error(problem))
            }
            EventType::Ok => {
                let output = match e.function {
                    "get" => Response::Value {
                        value: edn_text(e.value, "`:value`")?,
                    },
                    _ => Response::Ok,
                };
                complete(builder, e, Completion::Returned(output))
            }
            EventType::Fail if e.function == "cas" => {
                complete(builder, e, Completion::Returned(Response::Failed))
            }
            EventType::Fail => complete(builder, e, Completion::DidNotHappen),
            EventType::Info => complete(builder, e, Completion::Indeterminate),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_log_pairs_events_per_process() {
        let log = "INFO  jepsen.util - 0\t:invoke\t:read\tnil\n\
                   INFO  jepsen.core - some other line\n\
                   INFO  jepsen.util - 1\t:invoke\t:cas\t[3 0]\n\
                   INFO  jepsen.util - 2 :invoke :write 4\n\
                   INFO  jepsen.util - 0\t:ok\t:read\t7\n\
                   INFO  jepsen.util - 1\t:fail\t:cas\t[3 0]\n\
                   INFO  jepsen.util - 2\t:info\t:write\t:timed-out\n\
                   INFO  jepsen.util - 3\t:invoke\t:write\t1\n\
                   INFO  jepsen.util - 3\t:fail\t:write\t1\n\
                   INFO  jepsen.util - 4\t:invoke\t:read\tnil\n";
        let ops = parse_etcd_log(log).unwrap();
        assert_eq!(ops.len(), 4);
        assert_eq!(ops[0].input, CasRegisterInput::Read);
        assert_eq!(ops[0].output, Response::Value { value: Some(7) });
        assert_eq!((ops[0].call, ops[0].ret), (0, Some(3)));
        assert_eq!(
            ops[1].input,
            CasRegisterInput::Cas {
                expected: 3,
                new: 0
            }
        );
        assert_eq!(ops[1].output, Response::Failed);
        assert_eq!(ops[2].input, CasRegisterInput::Write { value: 4 });
        assert_eq!(
            (ops[2].output.clone(), ops[2].ret),
            (Response::Unknown, None)
        );
        // The failed write is gone; the read still open at the end is indeterminate.
        assert_eq!(ops[3].client, 4);
        assert_eq!(
            (ops[3].output.clone(), ops[3].ret),
            (Response::Unknown, None)
        );
    }

    #[test]
    fn etcd_errors_name_the_line() {
        for (log, needle) in [
            ("INFO jepsen.util - 0 :invoke :write x\n", "line 1"),
            ("\nINFO jepsen.util - 0 :ok :read 1\n", "line 2"),
            (
                "INFO jepsen.util - 0 :invoke :read nil\nINFO jepsen.util - 0 :invoke :read nil",
                "line 2",
            ),
            (
                "INFO jepsen.util - 0 :invoke :read nil\nINFO jepsen.util - 0 :ok :write 1",
                "line 2",
            ),
            ("INFO jepsen.util - 0 :invoke :cas [1]\n", "line 1"),
            ("INFO jepsen.util - 0 :begin :read nil\n", "line 1"),
            ("INFO jepsen.util - x :invoke :read nil\n", "line 1"),
            ("INFO jepsen.util -\n", "line 1"),
        ] {
            let err = parse_etcd_log(log).unwrap_err().to_string();
            assert!(err.contains(needle), "{log:?}: {err}");
        }
    }

    #[test]
    fn kv_log_reads_edn_maps() {
        let log = "{:process 0, :type :invoke, :f :put, :key \"k\", :value \"a \\\"q\\\"\"}\n\
                   \n\
                   {:process 1, :type :invoke, :f :get, :key \"k\", :value nil}\n\
                   {:process 0, :type :ok, :f :put, :key \"k\", :value \"a \\\"q\\\"\"}\n\
                   {:process 1, :type :ok, :f :get, :key \"k\", :value \"a \\\"q\\\"\"}\n\
                   {:process 2 :type :invoke :f :cas :key 7 :value [\"x\" \"y\"]}\n\
                   {:process 2, :type :fail, :f :cas, :key 7, :value [\"x\" \"y\"]}\n\
                   {:process 3, :type :invoke, :f :append, :key \"k\", :value \"z\"}\n\
                   {:process 3, :type :info, :f :append, :key \"k\", :value \"z\"}\n";
        let ops = parse_kv_log(log).unwrap();
        assert_eq!(ops.len(), 4);
        assert_eq!(
            ops[0].input,
            KvInput::Put {
                key: "k".into(),
                value: "a \"q\"".into()
            }
        );
        assert_eq!(
            ops[1].output,
            Response::Value {
                value: "a \"q\"".into()
            }
        );
        assert_eq!(
            ops[2].input,
            KvInput::Cas {
                key: "7".into(),
                expected: "x".into(),
                new: "y".into()
            }
        );
        assert_eq!(ops[2].output, Response::Failed);
        assert_eq!(ops[3].ret, None);
    }

    #[test]
    fn kv_errors_name_the_line() {
        for (log, needle) in [
            (
                "{:process 0, :type :invoke, :f :get, :key \"k\"\n",
                "line 1",
            ),
            (
                "\n\n{:process 0, :type :invoke, :f :get, :value nil}\n",
                "line 3",
            ),
            (
                "{:process 0, :type :invoke, :f :get, :key \"k, :value nil}",
                "line 1",
            ),
            (
                "{:process -1, :type :invoke, :f :get, :key \"k\", :value nil}",
                "line 1",
            ),
            (
                "{:process 0, :type :ok, :f :get, :key \"k\", :value \"\"}",
                "line 1",
            ),
            (
                "{:process 0, :type :invoke, :f :pop, :key \"k\", :value nil}",
                "line 1",
            ),
            (
                "{:process 0, :type :invoke, :f :get, :key \"k\", :value nil} x",
                "line 1",
            ),
            ("not a map", "line 1"),
        ] {
            let err = parse_kv_log(log).unwrap_err().to_string();
            assert!(err.contains(needle), "{log:?}: {err}");
        }
    }
}
