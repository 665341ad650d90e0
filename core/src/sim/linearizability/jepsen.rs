//! Parsers for two Jepsen history formats, from text (no I/O): the `jepsen.util` log lines
//! of Jepsen's etcd test (a compare-and-set register) and the EDN-like one-map-per-line
//! format of key-value histories, as used by Porcupine's test data.
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

use super::model::Operation;
use super::models::{CasRegisterInput, KvInput, KvOutput, RegisterOutput, Response};
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

/// An EDN value, as far as history lines use them.
#[derive(Debug, Clone, PartialEq)]
enum Edn<'a> {
    Nil,
    Keyword(&'a str),
    Int(i64),
    Str(String),
    Vector(Vec<Edn<'a>>),
}

/// A cursor over one line of EDN.
struct EdnReader<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> EdnReader<'a> {
    fn peek(&self) -> Option<char> {
        self.text
            .get(self.pos..)
            .and_then(|rest| rest.chars().next())
    }

    /// Skips whitespace; EDN counts commas as whitespace.
    fn skip_blank(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_whitespace() || c == ',' {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
    }

    fn expect(&mut self, wanted: char) -> std::result::Result<(), String> {
        self.skip_blank();
        match self.peek() {
            Some(c) if c == wanted => {
                self.pos += c.len_utf8();
                Ok(())
            }
            Some(c) => Err(format!(
                "expected `{wanted}` at column {}, found `{c}`",
                self.pos + 1
            )),
            None => Err(format!("expected `{wanted}`, found the end of the line")),
        }
    }

    /// A run of symbol characters (keyword names, numbers, nil).
    fn symbol(&mut self) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_whitespace() || matches!(c, ',' | '}' | ']' | '{' | '[' | '"') {
                break;
            }
            self.pos += c.len_utf8();
        }
        self.text.get(start..self.pos).unwrap_or("")
    }

    fn string(&mut self) -> std::result::Result<String, String> {
        let start = self.pos;
        self.pos += 1; // the opening quote
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(format!(
                    "string starting at column {} is not closed",
                    start + 1
                ));
            };
            self.pos += c.len_utf8();
            match c {
                '"' => return Ok(out),
                '\\' => {
                    let escaped = self.peek().ok_or("line ends inside an escape")?;
                    self.pos += escaped.len_utf8();
                    out.push(match escaped {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        other => other,
                    });
                }
                other => out.push(other),
            }
        }
    }

    fn value(&mut self) -> std::result::Result<Edn<'a>, String> {
        self.skip_blank();
        match self.peek() {
            None => Err("expected a value, found the end of the line".to_string()),
            Some('"') => self.string().map(Edn::Str),
            Some('[') => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_blank();
                    if self.peek() == Some(']') {
                        self.pos += 1;
                        return Ok(Edn::Vector(items));
                    }
                    items.push(self.value()?);
                }
            }
            Some(':') => {
                self.pos += 1;
                Ok(Edn::Keyword(self.symbol()))
            }
            Some(_) => {
                let column = self.pos + 1;
                match self.symbol() {
                    "nil" => Ok(Edn::Nil),
                    "" => Err(format!("unexpected character at column {column}")),
                    number => number
                        .parse()
                        .map(Edn::Int)
                        .map_err(|_| format!("unexpected `{number}` at column {column}")),
                }
            }
        }
    }

    /// A whole line holding one map from keywords to values.
    fn map(text: &'a str) -> std::result::Result<Vec<(&'a str, Edn<'a>)>, String> {
        let mut reader = EdnReader { text, pos: 0 };
        reader.expect('{')?;
        let mut entries = Vec::new();
        loop {
            reader.skip_blank();
            if reader.peek() == Some('}') {
                reader.pos += 1;
                break;
            }
            let key = match reader.value()? {
                Edn::Keyword(k) => k,
                other => return Err(format!("map key {other:?} is not a keyword")),
            };
            entries.push((key, reader.value()?));
        }
        reader.skip_blank();
        match reader.peek() {
            None => Ok(entries),
            Some(c) => Err(format!(
                "unexpected `{c}` after the map at column {}",
                reader.pos + 1
            )),
        }
    }
}

fn field<'m, 'a>(
    map: &'m [(&'a str, Edn<'a>)],
    name: &str,
) -> std::result::Result<&'m Edn<'a>, String> {
    map.iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .ok_or_else(|| format!("missing `:{name}`"))
}

fn edn_text(value: &Edn<'_>, name: &str) -> std::result::Result<String, String> {
    match value {
        Edn::Str(s) => Ok(s.clone()),
        Edn::Int(i) => Ok(i.to_string()),
        Edn::Nil => Ok(String::new()),
        other => Err(format!("`:{name}` must be a string, got {other:?}")),
    }
}

/// Parses a key-value history, one EDN map per line, such as
/// `{:process 0, :type :invoke, :f :append, :key "4", :value "x 0 1 y"}`, for a
/// [`super::models::KvModel`]. Functions are `:get`, `:put`, `:append` and `:cas` (whose
/// value is `["expected" "new"]`); a nil value reads as the empty string. Blank lines are
/// skipped; anything else that is not such a map is an error naming its line number.
pub fn parse_kv_log(text: &str) -> Result<Vec<Operation<KvInput, KvOutput>>> {
    let mut builder = HistoryBuilder::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        parse_kv_event(&mut builder, line).map_err(|problem| {
            DistlabError::parse(format!("kv history line {}", index + 1), problem)
        })?;
    }
    Ok(builder.finish())
}

fn parse_kv_event(
    builder: &mut HistoryBuilder<KvInput, KvOutput>,
    line: &str,
) -> std::result::Result<(), String> {
    let map = EdnReader::map(line)?;
    let process = match field(&map, "process")? {
        Edn::Int(p) => u64::try_from(*p).map_err(|_| format!("process {p} is negative"))?,
        other => return Err(format!("`:process` must be an integer, got {other:?}")),
    };
    let event_type = match field(&map, "type")? {
        Edn::Keyword(k) => EventType::parse(k)?,
        other => return Err(format!("`:type` must be a keyword, got {other:?}")),
    };
    let function = match field(&map, "f")? {
        Edn::Keyword(k) => *k,
        other => return Err(format!("`:f` must be a keyword, got {other:?}")),
    };
    let key = edn_text(field(&map, "key")?, "key")?;
    let value = field(&map, "value")?;
    match event_type {
        EventType::Invoke => {
            let input = match function {
                "get" => KvInput::Get { key },
                "put" => KvInput::Put {
                    key,
                    value: edn_text(value, "value")?,
                },
                "append" => KvInput::Append {
                    key,
                    value: edn_text(value, "value")?,
                },
                "cas" => match value {
                    Edn::Vector(pair) => match pair.as_slice() {
                        [expected, new] => KvInput::Cas {
                            key,
                            expected: edn_text(expected, "value")?,
                            new: edn_text(new, "value")?,
                        },
                        _ => return Err("a cas `:value` must be [expected new]".to_string()),
                    },
                    _ => return Err("a cas `:value` must be [expected new]".to_string()),
                },
                other => return Err(format!("unknown function `:{other}`")),
            };
            builder.invoke(process, function, input, Response::Unknown)
        }
        EventType::Ok => {
            let output = match function {
                "get" => Response::Value {
                    value: edn_text(value, "value")?,
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
