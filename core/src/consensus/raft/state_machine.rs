//! The replicated state machine: a key-value store (get / put / delete / compare-and-swap)
//! with client sessions, so that a command a client retries is applied once.
//!
//! Sessions follow the Raft thesis §6.3 ("Implementing linearizable semantics"): each
//! client numbers its commands; the state machine remembers, per client, the highest
//! number it has applied and that command's response. A retried command (same client,
//! same number) that is already applied returns the remembered response instead of
//! applying again — without this, a `put` whose reply was lost and that the client sent
//! again could overwrite a later write, and the history would not be linearizable.
//!
//! Sessions are never expired here: the set of clients in a simulation is bounded. A real
//! deployment expires them deterministically (thesis §6.3), through the log.
//!
//! Cost: O(log K) per command for K keys (a `BTreeMap`, so iteration order — which the
//! view shows — is deterministic).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One operation on the key-value store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "op", rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "tsify", tsify(missing_as_null))]
pub enum KvOp {
    Get {
        key: String,
    },
    Put {
        key: String,
        value: String,
    },
    Delete {
        key: String,
    },
    /// Sets `key` to `new` if its value is `expected` (`null`: the key is absent).
    Cas {
        key: String,
        expected: Option<String>,
        new: String,
    },
}

impl KvOp {
    pub fn key(&self) -> &str {
        match self {
            KvOp::Get { key }
            | KvOp::Put { key, .. }
            | KvOp::Delete { key }
            | KvOp::Cas { key, .. } => key,
        }
    }

    /// Whether the operation only reads (and so may be served without a log entry by
    /// ReadIndex or a lease).
    pub fn is_read(&self) -> bool {
        matches!(self, KvOp::Get { .. })
    }
}

/// A client command: the operation and the session that makes retries safe.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KvCommand {
    /// The client's session id.
    pub session: u64,
    /// The client's number for this command, increasing by one per new command; a retry
    /// sends the same number again.
    pub seq: u64,
    pub op: KvOp,
}

/// What a command returned.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum KvResponse {
    /// A get's answer (`None`: the key is absent).
    Value { value: Option<String> },
    /// A put or delete took effect, or a compare-and-swap matched and wrote.
    Ok,
    /// A compare-and-swap did not match; nothing changed.
    CasFailed { current: Option<String> },
}

/// The last command applied for one client session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Session {
    pub last_seq: u64,
    pub response: KvResponse,
    /// How many of this session's commands were executed (a retry answered from the
    /// session, or a stale one, is not). Nothing here reads it: it lets a checker confirm
    /// from the state machine that no command took effect twice, which a history can hide
    /// (see [`super::soak`]).
    pub executed: u64,
}

/// What applying a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Applied now (or, for a retry, earlier): here is the response to send.
    Response(KvResponse),
    /// An older command of a session that has already moved on: its client no longer
    /// waits for it, so there is nothing to answer.
    Stale,
}

/// The key-value store and its client sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct KvStore {
    data: BTreeMap<String, String>,
    sessions: BTreeMap<u64, Session>,
}

impl KvStore {
    pub fn new() -> Self {
        KvStore::default()
    }

    /// Applies a committed command, at most once per (session, seq).
    pub fn apply(&mut self, cmd: &KvCommand) -> Applied {
        if let Some(s) = self.sessions.get(&cmd.session) {
            if cmd.seq == s.last_seq {
                return Applied::Response(s.response.clone());
            }
            if cmd.seq < s.last_seq {
                return Applied::Stale;
            }
        }
        let response = self.execute(&cmd.op);
        let executed = self.sessions.get(&cmd.session).map_or(0, |s| s.executed) + 1;
        self.sessions.insert(
            cmd.session,
            Session {
                last_seq: cmd.seq,
                response: response.clone(),
                executed,
            },
        );
        Applied::Response(response)
    }

    /// The response already recorded for (session, seq), if that command was applied.
    pub fn cached(&self, session: u64, seq: u64) -> Option<&KvResponse> {
        self.sessions
            .get(&session)
            .filter(|s| s.last_seq == seq)
            .map(|s| &s.response)
    }

    /// Executes an operation without a session (reads served by ReadIndex or a lease).
    pub fn read(&self, key: &str) -> KvResponse {
        KvResponse::Value {
            value: self.data.get(key).cloned(),
        }
    }

    fn execute(&mut self, op: &KvOp) -> KvResponse {
        match op {
            KvOp::Get { key } => self.read(key),
            KvOp::Put { key, value } => {
                self.data.insert(key.clone(), value.clone());
                KvResponse::Ok
            }
            KvOp::Delete { key } => {
                self.data.remove(key);
                KvResponse::Ok
            }
            KvOp::Cas { key, expected, new } => {
                let current = self.data.get(key);
                if current == expected.as_ref() {
                    self.data.insert(key.clone(), new.clone());
                    KvResponse::Ok
                } else {
                    KvResponse::CasFailed {
                        current: current.cloned(),
                    }
                }
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<&String> {
        self.data.get(key)
    }
    /// Every key and value, in key order.
    pub fn data(&self) -> &BTreeMap<String, String> {
        &self.data
    }
    /// Every session, in session order.
    pub fn sessions(&self) -> &BTreeMap<u64, Session> {
        &self.sessions
    }
    pub fn len(&self) -> usize {
        self.data.len()
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Rebuilds a store from its parts (a snapshot being restored).
    pub fn from_parts(data: BTreeMap<String, String>, sessions: BTreeMap<u64, Session>) -> Self {
        KvStore { data, sessions }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(session: u64, seq: u64, op: KvOp) -> KvCommand {
        KvCommand { session, seq, op }
    }
    fn put(k: &str, v: &str) -> KvOp {
        KvOp::Put {
            key: k.into(),
            value: v.into(),
        }
    }

    #[test]
    fn get_put_delete_cas() {
        let mut kv = KvStore::new();
        let get = |k: &str| KvOp::Get { key: k.into() };
        assert_eq!(
            kv.apply(&cmd(1, 1, get("x"))),
            Applied::Response(KvResponse::Value { value: None })
        );
        kv.apply(&cmd(1, 2, put("x", "a")));
        let cas = |e: Option<&str>, n: &str| KvOp::Cas {
            key: "x".into(),
            expected: e.map(String::from),
            new: n.into(),
        };
        assert_eq!(
            kv.apply(&cmd(1, 3, cas(None, "b"))),
            Applied::Response(KvResponse::CasFailed {
                current: Some("a".into())
            })
        );
        assert_eq!(
            kv.apply(&cmd(1, 4, cas(Some("a"), "b"))),
            Applied::Response(KvResponse::Ok)
        );
        assert_eq!(kv.get("x").map(String::as_str), Some("b"));
        kv.apply(&cmd(1, 5, KvOp::Delete { key: "x".into() }));
        assert!(kv.is_empty());
    }

    #[test]
    fn a_retried_command_applies_once() {
        let mut kv = KvStore::new();
        kv.apply(&cmd(1, 1, put("x", "first")));
        kv.apply(&cmd(2, 1, put("x", "second")));
        // Client 1's retry of its first put must not overwrite client 2's later write.
        assert_eq!(
            kv.apply(&cmd(1, 1, put("x", "first"))),
            Applied::Response(KvResponse::Ok)
        );
        assert_eq!(kv.get("x").map(String::as_str), Some("second"));
        kv.apply(&cmd(1, 2, put("y", "1")));
        assert_eq!(kv.apply(&cmd(1, 1, put("x", "first"))), Applied::Stale);
        assert_eq!(kv.cached(1, 2), Some(&KvResponse::Ok));
        assert_eq!(kv.cached(1, 1), None);
        // Two of client 1's commands took effect, however often they were delivered.
        assert_eq!(kv.sessions()[&1].executed, 2);
        assert_eq!(kv.sessions()[&2].executed, 1);
    }

    use proptest::prelude::*;

    proptest! {
        /// Delivering each client's commands in order, each any number of times (the
        /// retries and duplicates a network and a leader change make), leaves the store
        /// exactly as delivering each once.
        #[test]
        fn retries_apply_once(
            cmds in proptest::collection::vec((0u64..3, 0u32..3, 0u32..5), 0..40),
            repeats in proptest::collection::vec(1usize..4, 40),
        ) {
            let mut seqs = [0u64; 3];
            let commands: Vec<KvCommand> = cmds
                .iter()
                .map(|&(session, key, value)| {
                    seqs[session as usize] += 1;
                    cmd(session, seqs[session as usize], put(&format!("k{key}"), &format!("v{value}")))
                })
                .collect();
            let mut once = KvStore::new();
            let mut many = KvStore::new();
            for (c, r) in commands.iter().zip(repeats.iter().cycle()) {
                let first = once.apply(c);
                for _ in 0..*r {
                    prop_assert_eq!(many.apply(c), first.clone());
                }
            }
            prop_assert_eq!(once, many);
        }
    }
}
