//! The client table (Liskov & Cowling 2012, §4.1): per client, the number of its most
//! recent request and, once that request was executed, its reply. A request whose number
//! is below the table's is dropped (the client has moved on); one equal to it that was
//! executed is answered from the table without executing it again. Every replica updates
//! the table as it executes committed ops, so a new primary has it after a view change;
//! a recovered replica rebuilds it by executing the log it recovered.

use std::collections::BTreeMap;
use std::hash::Hash;

use crate::consensus::raft::state_machine::KvResponse;

/// One client's row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientRow {
    pub request: u64,
    /// The reply to `request`, executed.
    pub reply: KvResponse,
}

/// What the table says about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Newer than anything executed for this client.
    New,
    /// Executed: here is the reply.
    Executed(KvResponse),
    /// Older than the client's latest executed request.
    Stale,
}

/// Client id → latest executed request and its reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ClientTable {
    rows: BTreeMap<u64, ClientRow>,
}

impl ClientTable {
    pub fn lookup(&self, client: u64, request: u64) -> Lookup {
        match self.rows.get(&client) {
            Some(r) if r.request == request => Lookup::Executed(r.reply.clone()),
            Some(r) if r.request > request => Lookup::Stale,
            _ => Lookup::New,
        }
    }

    /// Records that `request` of `client` was executed with `reply`.
    pub fn record(&mut self, client: u64, request: u64, reply: KvResponse) {
        self.rows.insert(client, ClientRow { request, reply });
    }

    pub fn rows(&self) -> &BTreeMap<u64, ClientRow> {
        &self.rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executed_requests_are_answered_from_the_table_and_old_ones_dropped() {
        let mut t = ClientTable::default();
        assert_eq!(t.lookup(7, 1), Lookup::New);
        t.record(7, 1, KvResponse::Ok);
        assert_eq!(t.lookup(7, 1), Lookup::Executed(KvResponse::Ok));
        assert_eq!(t.lookup(7, 2), Lookup::New);
        t.record(7, 2, KvResponse::Value { value: None });
        assert_eq!(t.lookup(7, 1), Lookup::Stale);
        assert_eq!(t.lookup(8, 1), Lookup::New);
    }
}
