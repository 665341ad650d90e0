//! Lab `scenario.zombie-leader` (Kleppmann, "How to do distributed locking", 2016; the
//! same failure as a deposed leader in Chubby, Burrows OSDI 2006 §2.4, which its
//! sequencers fence): the same cluster, same seed, run twice side by side — the storage
//! without fencing and with it.
//!
//! The cluster is [`crate::coordination::lock`]'s: a lease service (node 0) elects one
//! client at a time as leader by granting it a lease and an epoch (the fencing token),
//! the leader renews its lease while it writes to the storage (node 1), and a new leader
//! is elected when the lease runs out. From `pauseAtMs` on, the first leader found
//! between its lease check and its write is paused (a GC pause) for `pauseMs`, longer
//! than the lease. The lease runs out, another client is elected and writes; the old
//! leader wakes and sends the write it had prepared. Without fencing the storage accepts
//! it over the new leader's write — a lost update, marked in the storage's history; with
//! fencing the storage has seen the newer epoch and refuses it.
//!
//! Both runs are the lock lab itself ([`LockLab`]), so their nodes, panels and invariants
//! are the lock lab's; they are drawn in one view, without fencing as nodes `0..n`, with
//! it as nodes `n..2n`. Until the old leader's write both runs are the same event for
//! event: fencing only changes what the storage does with a stale token.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::bounded::{Count, Millis};
use crate::coordination::lock::ClientPhase;
use crate::coordination::lock::lab::{LockLab, LockLabAction, LockLabConfig, MAX_CLIENTS};
use crate::error::Result;
use crate::lab::cluster::ClusterAction;
use crate::lab::sampling::{DEFAULT_SAMPLE_MS, SampleMs};
use crate::lab::side_by_side::SideBySide;
use crate::lab::view::{Panel, View};
use crate::lab::{Cluster, ClusterLab, LabModel};
use crate::sim::{Fault, FaultScript, NetworkConfig, NodeId};
use crate::time::Time;

/// Configuration of the zombie-leader scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct ZombieLabConfig {
    pub seed: u64,
    /// Candidates for leader (from node 2; node 0 is the lease service, node 1 the
    /// storage).
    pub clients: Count<2, { MAX_CLIENTS }>,
    /// How long a lease lasts; the leader renews it every third of it.
    pub lease_ms: Millis<1, 60_000>,
    /// From the leader's lease check to its write leaving.
    pub prepare_ms: Millis<0, 60_000>,
    /// From this time on, the first leader found preparing a write is paused...
    pub pause_at_ms: Millis<0, 3_600_000>,
    /// ...for this long.
    pub pause_ms: Millis<1, 60_000>,
    pub network: NetworkConfig,
    pub sample_ms: SampleMs,
}

impl Default for ZombieLabConfig {
    fn default() -> Self {
        ZombieLabConfig {
            seed: 1,
            clients: Count::of(2),
            lease_ms: Millis::of(300),
            prepare_ms: Millis::of(20),
            pause_at_ms: Millis::of(1_000),
            pause_ms: Millis::of(1_500),
            network: NetworkConfig::default(),
            sample_ms: DEFAULT_SAMPLE_MS,
        }
    }
}

/// The scenario's own actions, besides every fault (each applied to both runs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum ZombieLabAction {
    /// Pause the leader now in both runs, for `ms`.
    PauseLeader { ms: Millis<1, 60_000> },
}

/// The first client of `lab` between its lease check and its write.
fn preparing_leader(lab: &LockLab) -> Option<NodeId> {
    let sim = lab.sim();
    (0..sim.node_count()).find(|&id| {
        matches!(
            sim.node(id).and_then(|n| n.client()).map(|c| c.phase),
            Some(ClientPhase::Holding {
                preparing: true,
                ..
            })
        )
    })
}

/// The newest token `lab`'s lease service granted: the current epoch.
fn epoch(lab: &LockLab) -> u64 {
    lab.sim()
        .node(crate::coordination::lock::SERVER)
        .and_then(|n| n.server())
        .map_or(0, |s| s.last_token)
}

/// The zombie-leader scenario: run 0 without fencing, run 1 with it.
#[derive(Debug, Clone)]
pub struct ZombieLab {
    runs: SideBySide<LockLab>,
    /// The leader paused by the scenario in each run, and when.
    zombies: [Option<(NodeId, Time)>; 2],
    pause_at: Time,
    pause_ms: Millis<1, 60_000>,
}

impl ZombieLab {
    /// The lock lab of the run without fencing (`false`) or with it (`true`).
    pub fn run(&self, fencing: bool) -> &LockLab {
        self.runs.run(usize::from(fencing)).lab()
    }

    /// The leader the scenario paused in that run, and when.
    pub fn zombie(&self, fencing: bool) -> Option<(NodeId, Time)> {
        self.zombies[usize::from(fencing)]
    }

    /// Pauses run `i`'s leader preparing a write, once, when the time has come.
    fn maybe_pause(&mut self, i: usize) {
        let run = self.runs.run_mut(i);
        if self.zombies[i].is_some() || run.sim().now() < self.pause_at {
            return;
        }
        if let Some(node) = preparing_leader(run) {
            let now = run.sim().now();
            let resume = now + self.pause_ms.duration();
            let sim = run.sim_mut();
            if sim.schedule_fault(resume, Fault::Resume { node }).is_ok()
                && sim.apply_fault(&Fault::Pause { node }).is_ok()
            {
                self.zombies[i] = Some((node, now));
            }
        }
    }

    fn comparison(&self) -> Panel {
        let rows = (0..2)
            .map(|i| {
                let l = self.runs.run(i).lab();
                let zombie = self.zombies[i];
                vec![
                    json!(self.runs.name(i)),
                    json!(zombie.map(|(n, _)| format!("n{n}"))),
                    json!(zombie.map(|(_, t)| t.as_millis_f64())),
                    json!(epoch(l)),
                    json!(l.first_stale().map(|(d, _)| d.clone())),
                    json!(l.storage().map_or(0, |s| s.rejected)),
                ]
            })
            .collect();
        Panel::Table {
            title: "fencing off vs on".into(),
            columns: [
                "run",
                "zombie leader",
                "paused at ms",
                "epoch now",
                "lost update",
                "stale writes refused",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        }
    }
}

impl LabModel for ZombieLab {
    const ID: &'static str = "scenario.zombie-leader";
    type Config = ZombieLabConfig;
    type Action = ClusterAction<ZombieLabAction>;

    fn new(c: &ZombieLabConfig) -> Result<Self> {
        let run = |fencing: bool| -> Result<Cluster<LockLab>> {
            Cluster::<LockLab>::new(&LockLabConfig {
                seed: c.seed,
                clients: c.clients,
                lease_ms: c.lease_ms,
                prepare_ms: c.prepare_ms,
                fencing,
                network: c.network.clone(),
                faults: FaultScript::default(),
                sample_ms: c.sample_ms,
                ..LockLabConfig::default()
            })
        };
        Ok(ZombieLab {
            runs: SideBySide::new([run(false)?, run(true)?], ["fencing off", "fencing on"]),
            zombies: [None, None],
            pause_at: Time::ZERO + c.pause_at_ms.duration(),
            pause_ms: c.pause_ms,
        })
    }

    fn step_until(&mut self, deadline: Time) -> bool {
        match self.runs.step_until(deadline) {
            Some(i) => {
                self.maybe_pause(i);
                true
            }
            None => false,
        }
    }

    fn advance_clock(&mut self, t: Time) {
        self.runs.advance_clock(t);
    }

    fn now(&self) -> Time {
        self.runs.now()
    }

    fn steps(&self) -> u64 {
        self.runs.steps()
    }

    fn act(&mut self, action: &Self::Action) -> Result<()> {
        let lock_action = match action {
            ClusterAction::Fault(f) => ClusterAction::Fault(f.clone()),
            ClusterAction::Lab(ZombieLabAction::PauseLeader { ms }) => {
                ClusterAction::Lab(LockLabAction::PauseHolder { ms: *ms })
            }
        };
        // The runner acts on a copy: an error in either run leaves the lab unchanged.
        for i in 0..2 {
            self.runs.run_mut(i).act(&lock_action)?;
        }
        Ok(())
    }

    fn view(&self) -> View {
        let mut view = self.runs.view();
        view.panels.push(self.comparison());
        view
    }

    /// Both runs' newest events merged in the order the lab processed them, with the
    /// fenced run's nodes renumbered as in the view and every event's `step` in the lab's
    /// coordinate (what seeking takes).
    fn trace(&self) -> Value {
        self.runs.trace()
    }

    fn example_actions() -> Vec<Self::Action> {
        vec![
            ClusterAction::Lab(ZombieLabAction::PauseLeader {
                ms: Millis::of(1_000),
            }),
            ClusterAction::Fault(Fault::Pause { node: 2 }),
            ClusterAction::Fault(Fault::Resume { node: 2 }),
            ClusterAction::Fault(Fault::Crash { node: 1 }),
            ClusterAction::Fault(Fault::Restart { node: 1 }),
        ]
    }
}
