//! The replicated service: a key-value store (get / put / delete / compare-and-swap, the
//! operations of raft's [`KvOp`]) behind the [`ClientTable`], so a request that appears in
//! the log again, or is retried after it was executed, takes effect once (§4.1: "the
//! replica ... updates the client's entry in the client-table").

use std::collections::BTreeMap;
use std::hash::Hash;

use crate::consensus::raft::state_machine::{KvOp, KvResponse};
use crate::consensus::vr::client_table::{ClientTable, Lookup};
use crate::consensus::vr::messages::Entry;

/// The store and its client table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct KvService {
    data: BTreeMap<String, String>,
    table: ClientTable,
}

impl KvService {
    /// Executes a committed op; `None` for a request older than its client's latest
    /// (nobody waits for its reply).
    pub fn execute(&mut self, entry: &Entry) -> Option<KvResponse> {
        match self.table.lookup(entry.session, entry.seq) {
            Lookup::Executed(reply) => return Some(reply),
            Lookup::Stale => return None,
            Lookup::New => {}
        }
        let reply = self.apply(&entry.op);
        self.table.record(entry.session, entry.seq, reply.clone());
        Some(reply)
    }

    fn apply(&mut self, op: &KvOp) -> KvResponse {
        match op {
            KvOp::Get { key } => KvResponse::Value {
                value: self.data.get(key).cloned(),
            },
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

    pub fn table(&self) -> &ClientTable {
        &self.table
    }
    pub fn data(&self) -> &BTreeMap<String, String> {
        &self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::raft::state_machine::KvCommand;

    fn put(session: u64, seq: u64, value: &str) -> Entry {
        KvCommand {
            session,
            seq,
            op: KvOp::Put {
                key: "k".into(),
                value: value.into(),
            },
        }
    }

    #[test]
    fn a_request_in_the_log_twice_takes_effect_once() {
        let mut s = KvService::default();
        assert_eq!(s.execute(&put(1, 1, "a")), Some(KvResponse::Ok));
        assert_eq!(s.execute(&put(2, 1, "b")), Some(KvResponse::Ok));
        // Client 1's first request again: answered from the table, "b" stays.
        assert_eq!(s.execute(&put(1, 1, "a")), Some(KvResponse::Ok));
        assert_eq!(s.data().get("k").map(String::as_str), Some("b"));
        s.execute(&put(1, 2, "c"));
        assert_eq!(s.execute(&put(1, 1, "a")), None);
        assert_eq!(s.data().get("k").map(String::as_str), Some("c"));
    }
}
