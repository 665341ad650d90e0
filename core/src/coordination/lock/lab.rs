//! Lab `coordination.lock`: clients take a lease-based lock from the lock server and
//! write to the storage under it (see [`super`]). Pause the holder past its lease — a GC
//! pause, the `pauseHolder` action — or let its clock run slow, and with fencing off its
//! late write lands over the next holder's; with fencing on the storage refuses it. The
//! accepted writes are listed with their tokens; the invariant is Kleppmann's: no write
//! from a holder whose token was superseded lands after the newer holder's. Crash the
//! server or the storage (torn writes and all): both come back from their disks, and two
//! more invariants check that tokens never go back and no acknowledged write is lost.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

use crate::bounded::{Count, Millis};
use crate::coordination::lock::{
    AcceptedWrite, ClientPhase, FIRST_CLIENT, LockConfig, LockNode, SERVER, STORAGE,
};
use crate::error::{DistlabError, Result};
use crate::lab::cluster::{ClusterAction, ClusterLab};
use crate::lab::sampling::Sampled;
use crate::lab::settings::{ClusterSettings, cluster_lab_config};
use crate::lab::view::{InvariantStatus, Panel};
use crate::sim::{Fault, FaultScript, NodeId, ScheduledFault, Sim};
use crate::time::{Duration, Time};

/// The most clients the lab runs.
pub const MAX_CLIENTS: u32 = 16;
const TRACE_TAIL: usize = 20_000;

cluster_lab_config! {
    /// Configuration of the lock lab.
    pub struct LockLabConfig {
        /// Client nodes (from node 2; node 0 is the lock server, node 1 the storage).
        pub clients: Count<2, { MAX_CLIENTS }> = Count::of(2),
        /// How long a grant or renewal lasts.
        pub lease_ms: Millis<1, 60_000> = Millis::of(300),
        /// From a client's lease check to its write leaving.
        pub prepare_ms: Millis<0, 60_000> = Millis::of(5),
        /// Between two writes of one hold.
        pub work_ms: Millis<1, 60_000> = Millis::of(40),
        /// Writes per hold, then the client releases the lock.
        pub writes_per_hold: Count<1, 100> = Count::of(3),
        /// Between holds, and the resend period of an unanswered request.
        pub think_ms: Millis<1, 60_000> = Millis::of(50),
        /// Whether a holder renews its lease (every third of it).
        pub renew: bool = true,
        /// Whether the storage rejects tokens older than the newest it has seen.
        pub fencing: bool = true,
    }
    defaults {
        faults: default_faults(),
    }
}

/// Client n2 is paused for 800 ms at 1 s: whatever it was doing, its lease runs out.
fn default_faults() -> FaultScript {
    let at = |ms: u64, fault| ScheduledFault {
        at_us: ms * 1_000,
        fault,
    };
    FaultScript {
        faults: vec![
            at(1_000, Fault::Pause { node: 2 }),
            at(1_800, Fault::Resume { node: 2 }),
        ],
    }
}

/// The lab's own actions, besides every fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum LockLabAction {
    /// Pause the client holding the lock (one preparing a write first) for `ms`: a GC
    /// pause.
    PauseHolder { ms: Millis<1, 60_000> },
}

/// Running totals for the charts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LockTotals {
    pub accepted: u64,
    pub rejected: u64,
}

/// The lock lab.
#[derive(Debug, Clone)]
pub struct LockLab {
    sim: Sim<LockNode>,
    /// Accepted writes already checked, and the newest token among them.
    checked: u64,
    max_accepted_token: u64,
    /// Every accepted write whose token was older than one accepted before it.
    stale_writes: u64,
    first_stale: Option<(String, NodeId)>,
    /// The server's newest token as last seen (across its restarts: the counter is
    /// durable).
    last_token: u64,
    token_went_back: Option<String>,
    /// Set when the storage came back from a crash with fewer writes than it had
    /// acknowledged.
    writes_lost: Option<String>,
}

impl LockLab {
    /// The first stale write accepted, if any: its description and its client.
    pub fn first_stale(&self) -> Option<&(String, NodeId)> {
        self.first_stale.as_ref()
    }

    pub fn stale_writes(&self) -> u64 {
        self.stale_writes
    }

    pub fn storage(&self) -> Option<&crate::coordination::lock::StorageState> {
        self.sim.node(STORAGE)?.storage()
    }

    fn client_phase(&self, id: NodeId) -> Option<ClientPhase> {
        Some(self.sim.node(id)?.client()?.phase)
    }

    /// Checks one accepted write against those before it.
    fn check_write(&mut self, w: &AcceptedWrite) {
        if w.token < self.max_accepted_token {
            self.stale_writes += 1;
            if self.first_stale.is_none() {
                self.first_stale = Some((
                    format!(
                        "at {} the storage accepted n{}'s write {} with token {} after a \
                         write with token {}",
                        w.at, w.client, w.seq, w.token, self.max_accepted_token
                    ),
                    w.client,
                ));
            }
        }
        self.max_accepted_token = self.max_accepted_token.max(w.token);
    }

    fn writes_table(&self) -> Panel {
        let rows = self
            .storage()
            .map(|s| {
                let mut newest = 0;
                let mut rows: Vec<Vec<Value>> = s
                    .log
                    .iter()
                    .map(|w| {
                        let stale = w.token < newest;
                        newest = newest.max(w.token);
                        vec![
                            json!(w.at.as_millis_f64()),
                            json!(format!("n{}", w.client)),
                            json!(w.token),
                            json!(w.seq),
                            json!(if stale {
                                "STALE: overwrote a newer holder"
                            } else {
                                ""
                            }),
                        ]
                    })
                    .collect();
                rows.reverse();
                rows
            })
            .unwrap_or_default();
        Panel::Table {
            title: "writes the storage accepted (latest first)".into(),
            columns: ["at ms", "client", "token", "seq", "note"]
                .map(String::from)
                .to_vec(),
            rows,
        }
    }
}

impl Sampled for LockLab {
    type Totals = LockTotals;

    fn series(&self) -> Vec<(String, String)> {
        [
            ("newest token", "token"),
            ("writes accepted", "total"),
            ("writes fenced off", "total"),
            ("stale writes accepted", "total"),
        ]
        .map(|(n, u)| (n.into(), u.into()))
        .to_vec()
    }

    fn totals(&self) -> LockTotals {
        let s = self.storage();
        LockTotals {
            accepted: s.map_or(0, |s| s.accepted),
            rejected: s.map_or(0, |s| s.rejected),
        }
    }

    fn sample(&self, _at: Time, _interval: Duration, _since: &LockTotals) -> Vec<f64> {
        let t = self.totals();
        vec![
            self.last_token as f64,
            t.accepted as f64,
            t.rejected as f64,
            self.stale_writes as f64,
        ]
    }
}

impl ClusterLab for LockLab {
    const ID: &'static str = "coordination.lock";
    type Node = LockNode;
    type Config = LockLabConfig;
    type Action = LockLabAction;
    const TRACE_TAIL: usize = TRACE_TAIL;

    fn new(c: &LockLabConfig) -> Result<Self> {
        let config = LockConfig {
            lease: c.lease_ms.duration(),
            prepare: c.prepare_ms.duration(),
            work: c.work_ms.duration(),
            writes_per_hold: c.writes_per_hold.get(),
            think: c.think_ms.duration(),
            renew: c.renew,
            fencing: c.fencing,
        };
        let mut sim = Sim::new(c.sim_config(FIRST_CLIENT + c.clients.get()), config)?;
        c.load_faults(&mut sim)?;
        let mut lab = LockLab {
            last_token: 0,
            writes_lost: None,
            sim,
            checked: 0,
            max_accepted_token: 0,
            stale_writes: 0,
            first_stale: None,
            token_went_back: None,
        };
        lab.observe();
        Ok(lab)
    }

    fn sim(&self) -> &Sim<LockNode> {
        &self.sim
    }

    fn sim_mut(&mut self) -> &mut Sim<LockNode> {
        &mut self.sim
    }

    fn observe(&mut self) {
        let (accepted, new): (u64, Vec<AcceptedWrite>) = match self.storage() {
            Some(s) => {
                let new = s.accepted.saturating_sub(self.checked) as usize;
                let skip = s.log.len().saturating_sub(new);
                (s.accepted, s.log.iter().skip(skip).copied().collect())
            }
            None => (self.checked, Vec::new()),
        };
        if accepted < self.checked && self.writes_lost.is_none() {
            self.writes_lost = Some(format!(
                "the storage came back with {accepted} accepted writes after acknowledging {}",
                self.checked
            ));
        }
        self.checked = self.checked.max(accepted);
        for w in &new {
            self.check_write(w);
        }
        if let Some(token) = self
            .sim
            .node(SERVER)
            .and_then(|n| n.server())
            .map(|s| s.last_token)
        {
            if token < self.last_token && self.token_went_back.is_none() {
                self.token_went_back = Some(format!(
                    "the server's newest token went from {} back to {token}",
                    self.last_token
                ));
            }
            self.last_token = self.last_token.max(token);
        }
    }

    fn act(&mut self, action: &LockLabAction) -> Result<()> {
        match action {
            LockLabAction::PauseHolder { ms } => {
                let holders: Vec<(NodeId, bool)> = (FIRST_CLIENT..self.sim.node_count())
                    .filter_map(|id| match self.client_phase(id)? {
                        ClientPhase::Holding { preparing, .. } => Some((id, preparing)),
                        ClientPhase::Idle { .. } => None,
                    })
                    .collect();
                let Some(&(node, _)) = holders.iter().find(|h| h.1).or_else(|| holders.first())
                else {
                    return Err(DistlabError::InvalidState(
                        "no client holds the lock now (step on until one does)".into(),
                    ));
                };
                let resume = self.sim.now() + ms.duration();
                self.sim.schedule_fault(resume, Fault::Resume { node })?;
                self.sim.apply_fault(&Fault::Pause { node })?;
            }
        }
        Ok(())
    }

    fn node_fields(&self, id: NodeId, fields: &mut BTreeMap<String, Value>) {
        let Some(n) = self.sim.node(id) else {
            return;
        };
        if let Some(s) = n.server() {
            fields.insert("newestToken".into(), json!(s.last_token));
            fields.insert("grants".into(), json!(s.grants));
            fields.insert(
                "holder".into(),
                json!(s.holder.map(|h| json!({"node": h.0, "token": h.1,
                    "leaseEndsMs": h.2.as_millis_f64()}))),
            );
        }
        if let Some(s) = n.storage() {
            fields.insert("newestTokenSeen".into(), json!(s.max_token));
            fields.insert("accepted".into(), json!(s.accepted));
            fields.insert("fencedOff".into(), json!(s.rejected));
        }
        if let Some(c) = n.client() {
            let local = self.sim.clock(id).map(|k| k.local(self.sim.now()));
            match c.phase {
                ClientPhase::Holding {
                    token,
                    until,
                    writes_left,
                    preparing,
                    ..
                } => {
                    fields.insert("token".into(), json!(token));
                    fields.insert(
                        "leaseLeftMsOwnClock".into(),
                        json!(local.map(|t| until.0 as f64 / 1e3 - t.as_millis_f64())),
                    );
                    fields.insert("writesLeft".into(), json!(writes_left));
                    fields.insert("preparingWrite".into(), json!(preparing));
                }
                ClientPhase::Idle { asked } => {
                    fields.insert("asking".into(), json!(asked.is_some()));
                }
            }
            fields.insert("holds".into(), json!(c.holds));
            fields.insert("writesFencedOff".into(), json!(c.writes_fenced));
            fields.insert("leasesExpired".into(), json!(c.leases_expired));
        }
    }

    fn panels(&self) -> Vec<Panel> {
        vec![self.writes_table()]
    }

    fn invariants(&self) -> Vec<InvariantStatus> {
        const STALE: &str = "no superseded holder's write lands";
        const TOKENS: &str = "fencing tokens only grow";
        const DURABLE: &str = "acknowledged writes survive a storage crash";
        vec![
            match &self.first_stale {
                Some((d, n)) => InvariantStatus::violated(STALE, d.clone(), vec![STORAGE, *n]),
                None => InvariantStatus::holds(
                    STALE,
                    "every accepted write's token is at least every earlier accepted one's",
                ),
            },
            match &self.token_went_back {
                Some(d) => InvariantStatus::violated(TOKENS, d.clone(), vec![SERVER]),
                None => InvariantStatus::holds(
                    TOKENS,
                    "each grant's token exceeds the last, across server restarts",
                ),
            },
            match &self.writes_lost {
                Some(d) => InvariantStatus::violated(DURABLE, d.clone(), vec![STORAGE]),
                None => InvariantStatus::holds(DURABLE, "the storage logs a write before its ack"),
            },
        ]
    }

    fn lessons() -> Vec<crate::lab::lesson::Lesson> {
        crate::coordination::lock::lessons::lessons()
    }

    fn example_actions() -> Vec<ClusterAction<LockLabAction>> {
        let mut v: Vec<_> = Fault::examples()
            .into_iter()
            .map(ClusterAction::Fault)
            .collect();
        v.push(ClusterAction::Lab(LockLabAction::PauseHolder {
            ms: Millis::of(1_000),
        }));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Cluster, LabModel};

    #[test]
    fn both_invariants_can_fail() {
        let mut lab = Cluster::<LockLab>::new(&LockLabConfig::default()).unwrap();
        while lab.step_until(Time::from_millis(500)) {}
        assert!(lab.invariants().iter().all(|i| i.ok));
        let mut stale = lab.lab().clone();
        stale.max_accepted_token = 7;
        stale.check_write(&AcceptedWrite {
            client: 2,
            token: 6,
            seq: 0,
            at: Time::ZERO,
        });
        assert!(!stale.invariants()[0].ok);
        assert_eq!(stale.stale_writes(), 1);
        let mut back = lab.lab().clone();
        back.last_token += 5;
        back.observe();
        assert!(!back.invariants()[1].ok);
        let mut lost = lab.lab().clone();
        lost.checked += 1;
        lost.observe();
        assert!(!lost.invariants()[2].ok);
    }

    #[test]
    fn clients_take_turns_and_tokens_grow() {
        let mut lab = Cluster::<LockLab>::new(&LockLabConfig {
            faults: FaultScript::default(),
            ..LockLabConfig::default()
        })
        .unwrap();
        while lab.step_until(Time::from_millis(5_000)) {}
        let s = lab.storage().unwrap();
        assert!(s.accepted > 20, "{}", s.accepted);
        assert_eq!(s.rejected, 0);
        let holds: Vec<u64> = (2..4)
            .map(|id| lab.sim().node(id).unwrap().client().unwrap().holds)
            .collect();
        assert!(holds.iter().all(|&h| h > 3), "{holds:?}");
        assert!(lab.invariants().iter().all(|i| i.ok));
    }
}
