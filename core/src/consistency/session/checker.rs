//! The session-guarantee checker: reads a client history and finds every read that broke
//! **read your writes** or **monotonic reads** (Terry, Demers, Petersen, Spreitzer, Theimer
//! & Welch 1994, "Session Guarantees for Weakly Consistent Replicated Data", §3), naming
//! the two operations to blame — the earlier one the guarantee protects and the read that
//! did not honour it.
//!
//! The store the history comes from orders every write into one sequence, so a write is
//! named by its version (its position in that sequence, from 1) and a read by the version
//! of the value it returned (0: the key was never written). Per client, the session is
//! the client's operations in the order it issued them; a session is sequential (the
//! paper's sessions are), so an operation that starts before the client's previous one
//! ended is refused rather than ordered by guess.
//!
//! - Read your writes (the paper: "if Read R follows Write W in a session and R is
//!   performed at server S at time t, then W is included in DB(S,t)"): a read of `k`
//!   answered below the version of an acknowledged write of `k` earlier in its session.
//! - Monotonic reads ("if Read R1 occurs before R2 in a session and R1 accesses server S1
//!   at time t1 and R2 accesses server S2 at time t2, then RelevantWrites(S1,t1,R1) is a
//!   subset of DB(S2,t2)"): a read of `k` answered below the version an earlier read of `k`
//!   in its session returned. Only the writes relevant to a read show in its answer, so
//!   this is the part of the guarantee a history can show broken: the same key going back.
//!
//! Operations that did not succeed (timed out, refused) are left out: a write whose
//! acknowledgement never came is not one the client may expect to read. Cost: O(log n)
//! per operation for n (client, key) pairs.

use serde::Serialize;
use std::collections::BTreeMap;

use crate::error::{DistlabError, Result};
use crate::sim::{ClientId, NodeId, RequestId};
use crate::time::Time;

/// A position in the store's one order of writes, from 1; 0 is "never written".
pub type Version = u64;

/// Violations kept with their operations (the counts go on).
pub const KEPT_VIOLATIONS: usize = 64;

/// What a successful operation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum SessionEvent {
    /// A read of `key` that returned the value written at version `saw`.
    Read { key: String, saw: Version },
    /// An acknowledged write of `key`, at `version`.
    Write { key: String, version: Version },
}

/// One successful operation of a client's session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionOp {
    pub client: ClientId,
    pub request: RequestId,
    /// The server that answered.
    pub node: NodeId,
    pub invoked: Time,
    pub ended: Time,
    pub event: SessionEvent,
}

/// Which guarantee a read broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Guarantee {
    ReadYourWrites,
    MonotonicReads,
}

/// A read that broke a guarantee, and the earlier operation of its session it broke it
/// against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Violation {
    pub guarantee: Guarantee,
    pub client: ClientId,
    pub key: String,
    /// The earlier write (read your writes) or read (monotonic reads).
    pub earlier: RequestId,
    pub earlier_node: NodeId,
    /// The version the read had to return at least.
    pub needed: Version,
    /// The read that returned less.
    pub later: RequestId,
    pub later_node: NodeId,
    pub saw: Version,
}

/// The newest version an operation of one session has shown for one key, and which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark {
    version: Version,
    request: RequestId,
    node: NodeId,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct KeyState {
    /// The session's newest acknowledged write of the key.
    wrote: Option<Mark>,
    /// The newest version the session's reads of the key returned.
    read: Option<Mark>,
}

/// Reads a history operation by operation, each session in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionChecker {
    keys: BTreeMap<(ClientId, String), KeyState>,
    /// When each client's last recorded operation ended.
    last_end: BTreeMap<ClientId, Time>,
    reads: u64,
    writes: u64,
    read_your_writes: u64,
    monotonic_reads: u64,
    /// The first [`KEPT_VIOLATIONS`] violations.
    violations: Vec<Violation>,
}

impl SessionChecker {
    pub fn new() -> Self {
        SessionChecker::default()
    }

    /// Takes in the next operation of `op.client`'s session. Errors, with the checker
    /// unchanged, when the operation started before the session's previous one ended (a
    /// session is sequential) or ended before it started.
    pub fn record(&mut self, op: &SessionOp) -> Result<()> {
        if op.ended < op.invoked {
            return Err(DistlabError::InvalidState(format!(
                "request {} ended ({} µs) before it was invoked ({} µs)",
                op.request, op.ended.0, op.invoked.0
            )));
        }
        if let Some(&last) = self.last_end.get(&op.client)
            && op.invoked < last
        {
            return Err(DistlabError::InvalidState(format!(
                "client {}'s request {} started ({} µs) before its previous operation ended \
                 ({} µs): a session is sequential",
                op.client, op.request, op.invoked.0, last.0
            )));
        }
        self.last_end.insert(op.client, op.ended);
        let mark = |version| Mark {
            version,
            request: op.request,
            node: op.node,
        };
        match &op.event {
            SessionEvent::Write { key, version } => {
                self.writes += 1;
                let state = self.keys.entry((op.client, key.clone())).or_default();
                if state.wrote.is_none_or(|w| w.version < *version) {
                    state.wrote = Some(mark(*version));
                }
            }
            SessionEvent::Read { key, saw } => {
                self.reads += 1;
                let state = self.keys.entry((op.client, key.clone())).or_default();
                let mut found = Vec::new();
                if let Some(w) = state.wrote
                    && *saw < w.version
                {
                    found.push((Guarantee::ReadYourWrites, w));
                }
                if let Some(r) = state.read
                    && *saw < r.version
                {
                    found.push((Guarantee::MonotonicReads, r));
                }
                if state.read.is_none_or(|r| r.version < *saw) {
                    state.read = Some(mark(*saw));
                }
                for (guarantee, earlier) in found {
                    match guarantee {
                        Guarantee::ReadYourWrites => self.read_your_writes += 1,
                        Guarantee::MonotonicReads => self.monotonic_reads += 1,
                    }
                    if self.violations.len() < KEPT_VIOLATIONS {
                        self.violations.push(Violation {
                            guarantee,
                            client: op.client,
                            key: key.clone(),
                            earlier: earlier.request,
                            earlier_node: earlier.node,
                            needed: earlier.version,
                            later: op.request,
                            later_node: op.node,
                            saw: *saw,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads recorded.
    pub fn reads(&self) -> u64 {
        self.reads
    }
    /// Writes recorded.
    pub fn writes(&self) -> u64 {
        self.writes
    }
    /// Reads that broke read your writes.
    pub fn read_your_writes_violations(&self) -> u64 {
        self.read_your_writes
    }
    /// Reads that broke monotonic reads.
    pub fn monotonic_read_violations(&self) -> u64 {
        self.monotonic_reads
    }
    /// The first [`KEPT_VIOLATIONS`] violations, in the order found.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }
    /// The first violation of `guarantee`, if one is kept.
    pub fn first(&self, guarantee: Guarantee) -> Option<&Violation> {
        self.violations.iter().find(|v| v.guarantee == guarantee)
    }
}

/// Checks a whole history: each client's operations in the order they were invoked.
/// Errors when a session's operations overlap (see [`SessionChecker::record`]).
pub fn check(ops: &[SessionOp]) -> Result<SessionChecker> {
    let mut sorted: Vec<&SessionOp> = ops.iter().collect();
    sorted.sort_by_key(|o| (o.client, o.invoked, o.ended, o.request));
    let mut checker = SessionChecker::new();
    for op in sorted {
        checker.record(op)?;
    }
    Ok(checker)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Operation `request` of `client` at `node`, from `t` to `t + 1` ms.
    fn op(
        client: ClientId,
        request: RequestId,
        node: NodeId,
        t: u64,
        event: SessionEvent,
    ) -> SessionOp {
        SessionOp {
            client,
            request,
            node,
            invoked: Time::from_millis(t),
            ended: Time::from_millis(t + 1),
            event,
        }
    }
    fn write(key: &str, version: Version) -> SessionEvent {
        SessionEvent::Write {
            key: key.into(),
            version,
        }
    }
    fn read(key: &str, saw: Version) -> SessionEvent {
        SessionEvent::Read {
            key: key.into(),
            saw,
        }
    }

    #[test]
    fn a_read_behind_the_sessions_own_write_is_blamed_on_both() {
        // Client 0 writes k at the primary (version 3), then reads it at a replica that has
        // applied only up to version 1.
        let h = [
            op(0, 10, 0, 0, write("k", 3)),
            op(0, 11, 2, 5, read("k", 1)),
        ];
        let c = check(&h).unwrap();
        assert_eq!(c.read_your_writes_violations(), 1);
        assert_eq!(c.monotonic_read_violations(), 0);
        let v = c.first(Guarantee::ReadYourWrites).unwrap();
        assert_eq!(
            (
                v.earlier,
                v.earlier_node,
                v.needed,
                v.later,
                v.later_node,
                v.saw
            ),
            (10, 0, 3, 11, 2, 1)
        );
        // Never written there at all counts too.
        let c = check(&[op(0, 1, 0, 0, write("k", 1)), op(0, 2, 1, 5, read("k", 0))]).unwrap();
        assert_eq!(c.read_your_writes_violations(), 1);
    }

    #[test]
    fn a_read_going_back_is_a_monotonic_read_violation() {
        // Client 1 reads version 4 at one replica, then version 2 at another.
        let h = [
            op(1, 20, 1, 0, read("k", 4)),
            op(1, 21, 2, 5, read("k", 2)),
            op(1, 22, 2, 9, read("k", 4)),
        ];
        let c = check(&h).unwrap();
        assert_eq!(c.monotonic_read_violations(), 1);
        assert_eq!(c.read_your_writes_violations(), 0);
        let v = c.first(Guarantee::MonotonicReads).unwrap();
        assert_eq!((v.earlier, v.needed, v.later, v.saw), (20, 4, 21, 2));
    }

    #[test]
    fn good_histories_pass() {
        let h = [
            // A session that reads its write, then newer versions, then an equal one.
            op(0, 1, 0, 0, write("k", 2)),
            op(0, 2, 1, 5, read("k", 2)),
            op(0, 3, 2, 10, read("k", 5)),
            op(0, 4, 1, 15, read("k", 5)),
            // Another key is its own history: an older version of `j` is fine.
            op(0, 5, 1, 20, read("j", 1)),
            // Another client's reads behind client 0's write break nothing: the guarantees
            // are per session.
            op(1, 6, 2, 6, read("k", 0)),
            op(1, 7, 1, 8, read("k", 0)),
        ];
        let c = check(&h).unwrap();
        assert_eq!(c.reads(), 6);
        assert_eq!(c.writes(), 1);
        assert_eq!(
            (
                c.read_your_writes_violations(),
                c.monotonic_read_violations()
            ),
            (0, 0)
        );
        assert!(c.violations().is_empty());
    }

    #[test]
    fn a_read_may_break_both_at_once_and_history_order_is_session_order() {
        // Listed out of order: check() sorts each session by invocation.
        let h = [
            op(0, 3, 2, 10, read("k", 1)),
            op(0, 1, 0, 0, write("k", 4)),
            op(0, 2, 1, 5, read("k", 4)),
        ];
        let c = check(&h).unwrap();
        assert_eq!(c.read_your_writes_violations(), 1);
        assert_eq!(c.monotonic_read_violations(), 1);
        assert_eq!(c.violations().len(), 2);
        assert!(c.violations().iter().all(|v| v.later == 3));
    }

    #[test]
    fn overlapping_operations_of_one_session_are_refused() {
        let mut a = op(0, 1, 0, 0, write("k", 1));
        a.ended = Time::from_millis(10);
        let b = op(0, 2, 1, 5, read("k", 0));
        let e = check(&[a.clone(), b.clone()]).unwrap_err().to_string();
        assert!(e.contains("sequential"), "{e}");
        let mut c = SessionChecker::new();
        c.record(&a).unwrap();
        let before = c.clone();
        assert!(c.record(&b).is_err());
        assert_eq!(c, before);
        let mut backwards = op(0, 3, 0, 20, read("k", 1));
        backwards.ended = Time::from_millis(19);
        assert!(c.record(&backwards).is_err());
    }
}
