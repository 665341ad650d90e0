//! Lab `coordination.redlock`: clients take one lock from a majority of independent lock
//! stores and write to the storage under it (see [`super`]). Pause the holder while it
//! prepares a write — the `pauseHolder` action, a GC pause — or jump a store's clock ahead
//! (`jumpClock`), and two clients believe they hold the lock at once; the holds table
//! shows them overlap and the first invariant breaks. With fencing on, the storage
//! refuses the late write; with it off, the write lands after the newer holder's.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

use crate::bounded::{Count, Millis};
use crate::coordination::lock::{AcceptedWrite, StorageState};
use crate::coordination::redlock::checker::{Hold, MutualExclusion};
use crate::coordination::redlock::{ClientPhase, RedlockConfig, RedlockNode};
use crate::error::{DistlabError, Result};
use crate::lab::cluster::{ClusterAction, ClusterLab};
use crate::lab::sampling::Sampled;
use crate::lab::settings::{ClusterSettings, cluster_lab_config};
use crate::lab::view::{InvariantStatus, Panel};
use crate::sim::{Fault, FaultScript, NodeId, ScheduledFault, Sim, SimConfig};
use crate::time::{Duration, Time};

/// The most clients the lab runs.
pub const MAX_CLIENTS: u32 = 16;
/// The most lock stores.
pub const MAX_STORES: u32 = 15;
const TRACE_TAIL: usize = 20_000;

cluster_lab_config! {
    /// Configuration of the Redlock lab.
    pub struct RedlockLabConfig {
        /// Client nodes (from node 1; node 0 is the storage, the stores come last).
        pub clients: Count<2, { MAX_CLIENTS }> = Count::of(2),
        /// Independent lock stores; a client needs a majority of them.
        pub stores: Count<1, { MAX_STORES }> = Count::of(5),
        /// The key's time to live, set on each store.
        pub ttl_ms: Millis<10, 600_000> = Millis::of(300),
        /// How long a client waits for one store before counting it as a no.
        pub store_timeout_ms: Millis<1, 60_000> = Millis::of(10),
        /// From a client's validity check to its write leaving.
        pub prepare_ms: Millis<0, 60_000> = Millis::of(20),
        /// Between two writes of one hold.
        pub work_ms: Millis<1, 60_000> = Millis::of(40),
        /// Writes per hold, then the client releases the lock.
        pub writes_per_hold: Count<1, 100> = Count::of(3),
        /// Between holds; a failed round retries after a random delay up to this.
        pub think_ms: Millis<1, 60_000> = Millis::of(50),
        /// Whether the storage rejects tokens older than the newest it has seen.
        pub fencing: bool = true,
    }
    defaults {
        faults: default_faults(),
    }
}

/// Client n1 is paused for 800 ms at 1 s: if it holds the lock, its validity runs out.
fn default_faults() -> FaultScript {
    let at = |ms: u64, fault| ScheduledFault {
        at_us: ms * 1_000,
        fault,
    };
    FaultScript {
        faults: vec![
            at(1_000, Fault::Pause { node: 1 }),
            at(1_800, Fault::Resume { node: 1 }),
        ],
    }
}

/// The lab's own actions, besides every fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum RedlockLabAction {
    /// Pause the client holding the lock (one preparing a write first) for `ms`: a GC
    /// pause.
    PauseHolder { ms: Millis<1, 60_000> },
    /// Move `node`'s clock `ms` ahead at once (an NTP step, an operator's `date`): a
    /// store's key then expires early.
    JumpClock {
        node: NodeId,
        ms: Millis<1, 3_600_000>,
    },
}

/// Running totals for the charts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RedlockTotals {
    pub holds: u64,
    pub overlaps: u64,
    pub late_writes: u64,
    pub fenced: u64,
}

/// The Redlock lab.
#[derive(Debug, Clone)]
pub struct RedlockLab {
    sim: Sim<RedlockNode>,
    config: RedlockConfig,
    mutex: MutualExclusion,
    /// Accepted writes already looked at, and the newest hold among their writers.
    checked: u64,
    newest_hold_written: Option<u64>,
    /// Accepted writes from a hold older than one that had already written.
    late_writes: u64,
    first_late: Option<(String, NodeId)>,
}

impl RedlockLab {
    pub fn mutual_exclusion(&self) -> &MutualExclusion {
        &self.mutex
    }

    /// Writes the storage accepted from a superseded hold.
    pub fn late_writes(&self) -> u64 {
        self.late_writes
    }

    pub fn first_late_write(&self) -> Option<&(String, NodeId)> {
        self.first_late.as_ref()
    }

    pub fn storage(&self) -> Option<&StorageState> {
        self.sim.node(self.config.storage())?.storage()
    }

    pub fn redlock_config(&self) -> &RedlockConfig {
        &self.config
    }

    fn client_phase(&self, id: NodeId) -> Option<ClientPhase> {
        Some(self.sim.node(id)?.client()?.phase)
    }

    /// Places one accepted write among the holds.
    fn check_write(&mut self, w: &AcceptedWrite) {
        let Some(hold) = self.mutex.hold_of(w.client, w.token).map(|h| h.number) else {
            return;
        };
        if let Some(newest) = self.newest_hold_written
            && hold < newest
        {
            self.late_writes += 1;
            if self.first_late.is_none() {
                self.first_late = Some((
                    format!(
                        "at {} the storage accepted n{}'s write {} (token {}, hold #{hold}) \
                         after a write from the later hold #{newest}",
                        w.at, w.client, w.seq, w.token
                    ),
                    w.client,
                ));
            }
        }
        self.newest_hold_written = Some(self.newest_hold_written.map_or(hold, |n| n.max(hold)));
    }

    fn holds_table(&self) -> Panel {
        let holds: Vec<&Hold> = self.mutex.recent().collect();
        let end = |h: &Hold| h.to.unwrap_or(Time::MAX);
        let rows = holds
            .iter()
            .rev()
            .map(|h| {
                let overlapped = holds
                    .iter()
                    .any(|o| o.client != h.client && o.from < end(h) && h.from < end(o));
                vec![
                    json!(h.number),
                    json!(format!("n{}", h.client)),
                    json!(h.token),
                    json!(h.from.as_millis_f64()),
                    json!(h.to.map(|t| t.as_millis_f64())),
                    json!(if overlapped {
                        "OVERLAP: another client held it too"
                    } else {
                        ""
                    }),
                ]
            })
            .collect();
        Panel::Table {
            title: "who believed they held the lock (latest first)".into(),
            columns: ["hold", "client", "token", "from ms", "to ms", "note"]
                .map(String::from)
                .to_vec(),
            rows,
        }
    }

    fn writes_table(&self) -> Panel {
        let rows = self
            .storage()
            .map(|s| {
                let mut newest: Option<u64> = None;
                let mut rows: Vec<Vec<Value>> = s
                    .log
                    .iter()
                    .map(|w| {
                        let hold = self.mutex.hold_of(w.client, w.token).map(|h| h.number);
                        let late = matches!((hold, newest), (Some(h), Some(n)) if h < n);
                        if let Some(h) = hold {
                            newest = Some(newest.map_or(h, |n| n.max(h)));
                        }
                        vec![
                            json!(w.at.as_millis_f64()),
                            json!(format!("n{}", w.client)),
                            json!(w.token),
                            json!(hold),
                            json!(w.seq),
                            json!(if late {
                                "LATE: landed after a newer holder's write"
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
            columns: ["at ms", "client", "token", "hold", "seq", "note"]
                .map(String::from)
                .to_vec(),
            rows,
        }
    }
}

impl RedlockLab {
    /// Builds the lab; a soak leaves the trace out (its hash is kept either way).
    pub fn build(c: &RedlockLabConfig, record_trace: bool) -> Result<Self> {
        let config = RedlockConfig {
            clients: c.clients.get(),
            stores: c.stores.get(),
            ttl: c.ttl_ms.duration(),
            store_timeout: c.store_timeout_ms.duration(),
            prepare: c.prepare_ms.duration(),
            work: c.work_ms.duration(),
            writes_per_hold: c.writes_per_hold.get(),
            think: c.think_ms.duration(),
            fencing: c.fencing,
        };
        let sim_config = SimConfig {
            record_trace,
            ..c.sim_config(config.nodes())
        };
        let mut sim = Sim::new(sim_config, config)?;
        c.load_faults(&mut sim)?;
        let mut lab = RedlockLab {
            sim,
            config,
            mutex: MutualExclusion::default(),
            checked: 0,
            newest_hold_written: None,
            late_writes: 0,
            first_late: None,
        };
        lab.observe();
        Ok(lab)
    }
}

impl Sampled for RedlockLab {
    type Totals = RedlockTotals;

    fn series(&self) -> Vec<(String, String)> {
        [
            ("clients believing they hold it", "clients"),
            ("holds", "total"),
            ("overlapping holds", "total"),
            ("late writes accepted", "total"),
            ("writes fenced off", "total"),
        ]
        .map(|(n, u)| (n.into(), u.into()))
        .to_vec()
    }

    fn totals(&self) -> RedlockTotals {
        RedlockTotals {
            holds: self.mutex.holds(),
            overlaps: self.mutex.overlaps(),
            late_writes: self.late_writes,
            fenced: self.storage().map_or(0, |s| s.rejected),
        }
    }

    fn sample(&self, _at: Time, _interval: Duration, _since: &RedlockTotals) -> Vec<f64> {
        let t = self.totals();
        let believing = self
            .config
            .client_ids()
            .filter(|&id| self.mutex.open_hold(id).is_some())
            .count();
        vec![
            believing as f64,
            t.holds as f64,
            t.overlaps as f64,
            t.late_writes as f64,
            t.fenced as f64,
        ]
    }
}

impl ClusterLab for RedlockLab {
    const ID: &'static str = "coordination.redlock";
    type Node = RedlockNode;
    type Config = RedlockLabConfig;
    type Action = RedlockLabAction;
    const TRACE_TAIL: usize = TRACE_TAIL;

    fn new(c: &RedlockLabConfig) -> Result<Self> {
        RedlockLab::build(c, true)
    }

    fn sim(&self) -> &Sim<RedlockNode> {
        &self.sim
    }

    fn sim_mut(&mut self) -> &mut Sim<RedlockNode> {
        &mut self.sim
    }

    fn observe(&mut self) {
        let now = self.sim.now();
        for id in self.config.client_ids() {
            let believes = self.sim.node(id).and_then(RedlockNode::believed_token);
            self.mutex.observe(now, id, believes);
        }
        let (accepted, new): (u64, Vec<AcceptedWrite>) = match self.storage() {
            Some(s) => {
                let new = s.accepted.saturating_sub(self.checked) as usize;
                let skip = s.log.len().saturating_sub(new);
                (s.accepted, s.log.iter().skip(skip).copied().collect())
            }
            None => (self.checked, Vec::new()),
        };
        // The storage is volatile: after a restart it counts from zero again.
        self.checked = accepted;
        for w in &new {
            self.check_write(w);
        }
    }

    fn act(&mut self, action: &RedlockLabAction) -> Result<()> {
        match action {
            RedlockLabAction::PauseHolder { ms } => {
                let holders: Vec<(NodeId, bool)> = self
                    .config
                    .client_ids()
                    .filter_map(|id| match self.client_phase(id)? {
                        ClientPhase::Holding { preparing, .. } => Some((id, preparing)),
                        _ => None,
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
            RedlockLabAction::JumpClock { node, ms } => {
                let Some(clock) = self.sim.clock(*node) else {
                    return Err(DistlabError::field(
                        "node",
                        format!("no node {node} (there are {})", self.sim.node_count()),
                    ));
                };
                let ahead_ms = clock.skew_at(self.sim.now()) as f64 / 1e3;
                self.sim.apply_fault(&Fault::ClockSkew {
                    node: *node,
                    skew_ms: ahead_ms + ms.get(),
                })?;
            }
        }
        Ok(())
    }

    fn node_fields(&self, id: NodeId, fields: &mut BTreeMap<String, Value>) {
        let Some(n) = self.sim.node(id) else {
            return;
        };
        let local = self.sim.clock(id).map(|k| k.local(self.sim.now()));
        let left_ms = |until: Time| local.map(|t| (until.0 as f64 - t.0 as f64) / 1e3);
        if let Some(s) = n.store() {
            let live = s
                .key
                .filter(|(_, expires)| local.is_some_and(|t| t < *expires));
            fields.insert(
                "keyHeldBy".into(),
                json!(live.map(|(value, _)| format!("n{}", value >> 40))),
            );
            fields.insert(
                "expiresInMsOwnClock".into(),
                json!(live.and_then(|(_, e)| left_ms(e))),
            );
            fields.insert("counter".into(), json!(s.counter));
            fields.insert("grants".into(), json!(s.grants));
        }
        if let Some(s) = n.storage() {
            fields.insert("newestTokenSeen".into(), json!(s.max_token));
            fields.insert("accepted".into(), json!(s.accepted));
            fields.insert("fencedOff".into(), json!(s.rejected));
        }
        if let Some(c) = n.client() {
            match c.phase {
                ClientPhase::Holding {
                    token,
                    valid_until,
                    writes_left,
                    preparing,
                    ..
                } => {
                    fields.insert("token".into(), json!(token));
                    fields.insert("validityLeftMsOwnClock".into(), json!(left_ms(valid_until)));
                    fields.insert("writesLeft".into(), json!(writes_left));
                    fields.insert("preparingWrite".into(), json!(preparing));
                }
                ClientPhase::Acquiring { next, granted, .. } => {
                    fields.insert("asking".into(), json!(self.config.first_store() + next));
                    fields.insert("yesSoFar".into(), json!(granted));
                }
                ClientPhase::Idle => {}
            }
            fields.insert("rounds".into(), json!(c.rounds));
            fields.insert("holds".into(), json!(c.holds));
            fields.insert("writesFencedOff".into(), json!(c.writes_fenced));
            fields.insert("validityLapsed".into(), json!(c.validity_lapsed));
        }
    }

    fn panels(&self) -> Vec<Panel> {
        vec![self.holds_table(), self.writes_table()]
    }

    fn invariants(&self) -> Vec<InvariantStatus> {
        const MUTEX: &str = "at most one client believes it holds the lock";
        const LATE: &str = "no superseded holder's write lands";
        vec![
            match self.mutex.first_overlap() {
                Some(o) => InvariantStatus::violated(
                    MUTEX,
                    o.to_string(),
                    vec![o.earlier.client, o.later.client],
                ),
                None => InvariantStatus::holds(MUTEX, "every hold began after the last one ended"),
            },
            match &self.first_late {
                Some((d, n)) => {
                    InvariantStatus::violated(LATE, d.clone(), vec![self.config.storage(), *n])
                }
                None => {
                    InvariantStatus::holds(LATE, "no write landed after a write from a later hold")
                }
            },
        ]
    }

    fn example_actions() -> Vec<ClusterAction<RedlockLabAction>> {
        let mut v: Vec<_> = Fault::examples()
            .into_iter()
            .map(ClusterAction::Fault)
            .collect();
        v.push(ClusterAction::Lab(RedlockLabAction::PauseHolder {
            ms: Millis::of(1_000),
        }));
        v.push(ClusterAction::Lab(RedlockLabAction::JumpClock {
            node: 3,
            ms: Millis::of(1_000),
        }));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Cluster, LabModel};

    fn quiet() -> RedlockLabConfig {
        RedlockLabConfig {
            faults: FaultScript::default(),
            ..RedlockLabConfig::default()
        }
    }

    #[test]
    fn clients_take_turns_without_faults() {
        let mut lab = Cluster::<RedlockLab>::new(&quiet()).unwrap();
        while lab.step_until(Time::from_millis(5_000)) {}
        let m = lab.mutual_exclusion();
        assert!(m.holds() > 10, "{}", m.holds());
        assert_eq!(m.overlaps(), 0);
        let s = lab.storage().unwrap();
        assert!(s.accepted > 20 && s.rejected == 0, "{s:?}");
        let holds: Vec<u64> = lab
            .redlock_config()
            .client_ids()
            .map(|id| lab.sim().node(id).unwrap().client().unwrap().holds)
            .collect();
        assert!(holds.iter().all(|&h| h > 3), "{holds:?}");
        assert!(lab.invariants().iter().all(|i| i.ok));
    }

    #[test]
    fn both_invariants_can_fail() {
        let mut lab = Cluster::<RedlockLab>::new(&quiet()).unwrap();
        while lab.step_until(Time::from_millis(500)) {}
        assert!(lab.invariants().iter().all(|i| i.ok));
        let mut two = lab.lab().clone();
        let now = two.sim.now();
        two.mutex.observe(now, 1, Some(90));
        two.mutex.observe(now, 2, Some(91));
        assert!(!two.invariants()[0].ok);
        let mut late = lab.lab().clone();
        late.mutex.observe(now, 1, Some(90));
        late.mutex.observe(now, 1, None);
        late.mutex.observe(now, 2, Some(91));
        late.newest_hold_written = None;
        let write = |client, token| AcceptedWrite {
            client,
            token,
            seq: 0,
            at: now,
        };
        late.check_write(&write(2, 91));
        late.check_write(&write(1, 90));
        assert!(!late.invariants()[1].ok);
        assert_eq!(late.late_writes(), 1);
    }

    #[test]
    fn a_jump_needs_a_node_that_exists() {
        let mut lab = Cluster::<RedlockLab>::new(&quiet()).unwrap();
        let e = lab
            .act(&ClusterAction::Lab(RedlockLabAction::JumpClock {
                node: 99,
                ms: Millis::of(5),
            }))
            .unwrap_err()
            .to_string();
        assert!(e.contains("node"), "{e}");
    }
}
