//! The shape the mesh scenarios share (`scenario.retry-storm`,
//! `scenario.cascading-failure`): two runs of the `resilience.mesh` lab under one seed —
//! the mesh as it fails, and the same mesh with the fix on its edges — side by side, with
//! what they are compared on measured the same way in both: over the fault's window and
//! after it, the load that reached the struggling service, the attempts per request, the
//! end-to-end success rate, a watched edge's successes, and the recovery time (from the
//! fault's end to the first 100 ms in which 90 % of the requests that ended succeeded).
//!
//! A scenario writes a [`MeshScenarioSpec`]: its id, its config, the two mesh configs and
//! what to watch; [`MeshScenario`] is the lab.

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::Result;
use crate::lab::cluster::ClusterAction;
use crate::lab::side_by_side::SideBySide;
use crate::lab::view::{Panel, View};
use crate::lab::{Cluster, ClusterLab, LabModel};
use crate::resilience::mesh::lab::{MeshLab, MeshLabAction, MeshLabConfig};
use crate::resilience::mesh::node::MeshNode;
use crate::sim::Fault;
use crate::time::{Duration, Time};

/// The window recovery is judged over, and the success rate that counts as recovered.
pub const RECOVERY_WINDOW: Duration = Duration::from_millis(100);
pub const RECOVERED_SUCCESS: f64 = 0.9;

/// What a mesh scenario is particular in.
pub trait MeshScenarioSpec: Clone + std::fmt::Debug + 'static {
    const ID: &'static str;
    type Config: Serialize + DeserializeOwned + Default + JsonSchema + Clone;
    /// The runs' names: the failure, then the fix.
    const NAMES: [&'static str; 2];
    /// The mesh of each run: the failure, then the fix.
    fn runs(c: &Self::Config) -> Result<[MeshLabConfig; 2]>;
    /// When the fault starts and ends.
    fn window(c: &Self::Config) -> (Time, Time);
    /// The service the fault hits.
    fn struggling(c: &Self::Config) -> u32;
    /// An edge whose successes show whether the rest of the mesh stayed healthy.
    fn watched_edge(c: &Self::Config) -> u32;
}

/// Counters of one run at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Snapshot {
    pub at: Time,
    pub requests: u64,
    pub ok: u64,
    pub failed: u64,
    /// Attempts the struggling service received, and every service.
    pub struggling_load: u64,
    pub all_load: u64,
    pub watched_ok: u64,
}

impl Snapshot {
    fn of(lab: &MeshLab, struggling: u32, watched: u32) -> Self {
        let e = lab.end_to_end();
        let load = |i: u32| {
            lab.service(i)
                .and_then(MeshNode::service)
                .map_or(0, |s| s.stats.received)
        };
        Snapshot {
            at: lab.sim().now(),
            requests: e.map_or(0, |e| e.calls),
            ok: e.map_or(0, |e| e.succeeded),
            failed: e.map_or(0, |e| e.failed),
            struggling_load: load(struggling),
            all_load: (0..lab.mesh().services().len() as u32).map(load).sum(),
            watched_ok: lab.edge(watched).map_or(0, |c| c.stats().succeeded),
        }
    }
}

/// What one run showed over an interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowReport {
    pub ms: f64,
    pub requests: u64,
    pub ok: u64,
    pub failed: u64,
    /// Ended requests that succeeded (1 when none ended).
    pub success_rate: f64,
    /// Attempts per second at the struggling service.
    pub struggling_load_per_sec: f64,
    /// Attempts reaching any service per client request.
    pub attempts_per_request: f64,
    pub watched_ok: u64,
}

fn window(a: &Snapshot, b: &Snapshot) -> WindowReport {
    let ms = b.at.saturating_since(a.at).as_millis_f64();
    let requests = b.requests.saturating_sub(a.requests);
    let ok = b.ok.saturating_sub(a.ok);
    let failed = b.failed.saturating_sub(a.failed);
    let load = b.struggling_load.saturating_sub(a.struggling_load);
    WindowReport {
        ms,
        requests,
        ok,
        failed,
        success_rate: if ok + failed == 0 {
            1.0
        } else {
            ok as f64 / (ok + failed) as f64
        },
        struggling_load_per_sec: if ms > 0.0 {
            load as f64 * 1e3 / ms
        } else {
            0.0
        },
        attempts_per_request: if requests == 0 {
            0.0
        } else {
            b.all_load.saturating_sub(a.all_load) as f64 / requests as f64
        },
        watched_ok: b.watched_ok.saturating_sub(a.watched_ok),
    }
}

/// One run's marks: at the fault's start and end, the recovery watch.
#[derive(Debug, Clone, Default)]
struct Watch {
    start: Option<Snapshot>,
    end: Option<Snapshot>,
    /// The recovery window being measured, from its first snapshot.
    bucket: Option<Snapshot>,
    recovered_at: Option<Time>,
}

/// A mesh scenario: run 0 the failure, run 1 the fix.
#[derive(Debug, Clone)]
pub struct MeshScenario<S: MeshScenarioSpec> {
    runs: SideBySide<MeshLab>,
    config: S::Config,
    watch: [Watch; 2],
}

/// What a run showed: during the fault, and from its end to now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    pub during: Option<WindowReport>,
    pub after: Option<WindowReport>,
    /// From the fault's end to the first window that met the bar; null if none yet.
    pub recovery_ms: Option<f64>,
}

impl<S: MeshScenarioSpec> MeshScenario<S> {
    /// The mesh lab of the failing run (`false`) or the fixed one (`true`).
    pub fn run(&self, fixed: bool) -> &MeshLab {
        self.runs.run(usize::from(fixed)).lab()
    }

    pub fn report(&self, fixed: bool) -> RunReport {
        let i = usize::from(fixed);
        let w = &self.watch[i];
        let lab = self.run(fixed);
        let now = Snapshot::of(
            lab,
            S::struggling(&self.config),
            S::watched_edge(&self.config),
        );
        let (_, end) = S::window(&self.config);
        RunReport {
            during: w
                .start
                .as_ref()
                .map(|s| window(s, w.end.as_ref().unwrap_or(&now))),
            after: w.end.as_ref().map(|e| window(e, &now)),
            recovery_ms: w
                .recovered_at
                .map(|t| t.saturating_since(end).as_millis_f64()),
        }
    }

    /// Takes the marks run `i` has reached.
    fn observe(&mut self, i: usize) {
        let lab = self.runs.run(i).lab();
        let (start, end) = S::window(&self.config);
        let now = lab.sim().now();
        let snap = || {
            Snapshot::of(
                lab,
                S::struggling(&self.config),
                S::watched_edge(&self.config),
            )
        };
        let w = &mut self.watch[i];
        if w.start.is_none() && now >= start {
            w.start = Some(snap());
        }
        if w.end.is_none() && now >= end {
            w.end = Some(snap());
            w.bucket = Some(snap());
        }
        if w.recovered_at.is_some() {
            return;
        }
        let Some(b) = w.bucket else { return };
        if now.saturating_since(b.at) < RECOVERY_WINDOW {
            return;
        }
        let s = snap();
        let r = window(&b, &s);
        if r.ok + r.failed > 0 && r.success_rate >= RECOVERED_SUCCESS {
            w.recovered_at = Some(b.at);
        } else {
            w.bucket = Some(s);
        }
    }

    fn comparison(&self) -> Panel {
        let f = |x: Option<f64>| x.map_or(Value::Null, |v| json!((v * 100.0).round() / 100.0));
        let rows = [false, true]
            .into_iter()
            .map(|fixed| {
                let r = self.report(fixed);
                vec![
                    json!(S::NAMES[usize::from(fixed)]),
                    f(r.during.map(|w| w.struggling_load_per_sec)),
                    f(r.during.map(|w| w.attempts_per_request)),
                    f(r.during.map(|w| w.success_rate)),
                    json!(r.during.map(|w| w.watched_ok)),
                    f(r.after.map(|w| w.struggling_load_per_sec)),
                    f(r.after.map(|w| w.success_rate)),
                    f(r.recovery_ms),
                ]
            })
            .collect();
        Panel::Table {
            title: format!("{} vs {}", S::NAMES[0], S::NAMES[1]),
            columns: [
                "run",
                "load on the struggling service during the fault (/s)",
                "attempts per request during",
                "success rate during",
                "watched edge's successes during",
                "load after (/s)",
                "success rate after",
                "recovery (ms)",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        }
    }
}

impl<S: MeshScenarioSpec> LabModel for MeshScenario<S> {
    const ID: &'static str = S::ID;
    type Config = S::Config;
    type Action = ClusterAction<MeshLabAction>;

    fn new(c: &S::Config) -> Result<Self> {
        let [a, b] = S::runs(c)?;
        Ok(MeshScenario {
            runs: SideBySide::new(
                [Cluster::<MeshLab>::new(&a)?, Cluster::<MeshLab>::new(&b)?],
                S::NAMES,
            ),
            config: c.clone(),
            watch: Default::default(),
        })
    }

    fn step_until(&mut self, deadline: Time) -> bool {
        match self.runs.step_until(deadline) {
            Some(i) => {
                self.observe(i);
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
        // The runner acts on a copy: an error in either run leaves the lab unchanged.
        for i in 0..2 {
            self.runs.run_mut(i).act(action)?;
        }
        Ok(())
    }

    fn view(&self) -> View {
        let mut view = self.runs.view();
        view.panels.push(self.comparison());
        view
    }

    fn trace(&self) -> Value {
        self.runs.trace()
    }

    fn example_actions() -> Vec<Self::Action> {
        <MeshLab as ClusterLab>::example_actions()
            .into_iter()
            .chain([ClusterAction::Fault(Fault::Heal)])
            .collect()
    }
}
