//! Lab `coordination.failure-detector`: senders heartbeat a monitor over the simulated
//! network, and the monitor's φ accrual and fixed-timeout detectors judge them. The chart
//! plots each sender's φ against the threshold; jitter (the latency model), loss, pauses
//! and crashes are the simulator's faults. The lab knows the truth the monitor cannot —
//! whether a suspected sender had crashed or was only slow or paused — and scores every
//! detector: wrong suspicions, and for crashes the detection time (true time from the
//! crash to the suspicion). φ is judged against a ladder of thresholds at once, so one
//! run shows detection time against wrong suspicions as the threshold moves
//! (Hayashibara et al. 2004, §5's trade-off).
//!
//! A sender already suspected when it crashes counts as neither: the suspicion that was
//! wrong when it began is scored as such, and there is no new one to time.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

use crate::bounded::{Count, Millis};
use crate::coordination::failure_detector::node::{
    DetectorNode, DetectorNodeConfig, MONITOR, THRESHOLD_LADDER, Watch,
};
use crate::coordination::failure_detector::phi_accrual::MAX_SAMPLE_SIZE;
use crate::coordination::failure_detector::{
    FixedTimeoutConfig, MAX_DETECTOR_MS, PhiAccrual, PhiAccrualConfig,
};
use crate::error::Result;
use crate::lab::cluster::{ClusterAction, ClusterLab};
use crate::lab::sampling::Sampled;
use crate::lab::settings::{ClusterSettings, cluster_lab_config};
use crate::lab::view::{InvariantStatus, Panel};
use crate::sim::{
    Fault, FaultScript, LatencyModel, NetworkConfig, NodeId, NodeStatus, ScheduledFault, Sim,
};
use crate::time::{Duration, Time};

/// The most senders the lab runs.
pub const MAX_SENDERS: u32 = 31;
/// Senders whose φ is charted.
const CHARTED: u32 = 4;
/// Trace events handed out.
const TRACE_TAIL: usize = 20_000;

cluster_lab_config! {
    /// Configuration of the failure-detector lab.
    pub struct FailureDetectorLabConfig {
        /// Nodes that heartbeat the monitor (node 0).
        pub senders: Count<1, { MAX_SENDERS }> = Count::of(2),
        /// Time between two heartbeats of a sender, on its own clock; also the φ
        /// detector's first estimate of the interval.
        pub heartbeat_interval_ms: Millis<1, 60_000> = Millis::of(100),
        /// How often the monitor re-evaluates its detectors, on its own clock.
        pub check_every_ms: Millis<1, 60_000> = Millis::of(10),
        /// φ at or above which a sender is suspected (over 0, at most 1,000).
        pub threshold: f64 = 8.0,
        /// Inter-arrival times the φ detector keeps.
        pub max_sample_size: Count<1, { MAX_SAMPLE_SIZE }> = Count::of(200),
        /// Floor of the φ detector's standard deviation.
        pub min_std_deviation_ms: Millis<1, { MAX_DETECTOR_MS }> = Millis::of(10),
        /// Added to the φ detector's mean: silence tolerated before φ climbs.
        pub acceptable_heartbeat_pause_ms: Millis<0, { MAX_DETECTOR_MS }> = Millis::of(0),
        /// The fixed-timeout detector's timeout.
        pub timeout_ms: Millis<1, { MAX_DETECTOR_MS }> = Millis::of(250),
    }
    defaults {
        network: NetworkConfig {
            latency: LatencyModel::LogNormal { median_ms: 10.0, sigma: 0.6 },
            ..NetworkConfig::default()
        },
        faults: default_faults(),
        sample_ms: Millis::of(20),
    }
}

/// Sender 1 pauses for 600 ms at 3 s (a GC pause: alive, but silent), then crashes at
/// 6 s; sender 2, if there is one, is the control.
fn default_faults() -> FaultScript {
    let at = |ms: u64, fault| ScheduledFault {
        at_us: ms * 1_000,
        fault,
    };
    FaultScript {
        faults: vec![
            at(3_000, Fault::Pause { node: 1 }),
            at(3_600, Fault::Resume { node: 1 }),
            at(6_000, Fault::Crash { node: 1 }),
        ],
    }
}

/// The lab's own actions, besides every fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum FailureDetectorLabAction {
    /// Zero every detector's score (after a warm-up, say).
    ResetScores {},
}

/// One detector's score.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Score {
    /// Suspicions of a sender that was up or paused.
    pub wrong: u64,
    /// Crashes followed by a suspicion.
    pub detections: u64,
    pub detection_us_sum: u64,
    pub detection_us_max: u64,
}

impl Score {
    /// Mean detection time in ms, if any crash was detected.
    pub fn mean_detection_ms(&self) -> Option<f64> {
        (self.detections > 0).then(|| self.detection_us_sum as f64 / self.detections as f64 / 1e3)
    }
}

/// What the lab tracks of one sender.
#[derive(Debug, Clone, Default, PartialEq)]
struct SenderTruth {
    crashed_at: Option<Time>,
    /// Per detector (the φ thresholds, then the fixed timeout): suspicions seen so far,
    /// whether this crash was detected, the heartbeat count when the suspicion began.
    seen: Vec<u64>,
    detected: Vec<bool>,
    suspected: Vec<bool>,
    heartbeats_at_suspicion: Vec<u64>,
}

/// The failure-detector lab.
#[derive(Debug, Clone)]
pub struct FailureDetectorLab {
    sim: Sim<DetectorNode>,
    /// Thresholds, the configured one first, as the monitor judges them.
    thresholds: Vec<f64>,
    timeout: Duration,
    monitor_boots: u32,
    truth: Vec<SenderTruth>,
    /// Per detector: the φ thresholds, then the fixed timeout.
    scores: Vec<Score>,
    /// The first breach of each invariant.
    trusted_without_heartbeat: Option<(String, NodeId)>,
    verdict_off_rule: Option<(String, NodeId)>,
}

/// Where `w` ends a suspicion without a heartbeat since it began, for detector `d`
/// (`suspected`: the verdict the lab saw before; `heartbeats_then`: the count then).
fn trusted_without_heartbeat(
    suspected_before: bool,
    suspected_now: bool,
    heartbeats_then: u64,
    w: &Watch,
) -> bool {
    suspected_before && !suspected_now && w.heartbeats == heartbeats_then
}

impl FailureDetectorLab {
    fn detectors(&self) -> usize {
        self.thresholds.len() + 1
    }

    pub fn scores(&self) -> &[Score] {
        &self.scores
    }

    /// The configured threshold's score, then the ladder's, then the fixed timeout's,
    /// each with its name.
    pub fn named_scores(&self) -> Vec<(String, Score)> {
        let mut out: Vec<(String, Score)> = self
            .thresholds
            .iter()
            .zip(&self.scores)
            .enumerate()
            .map(|(i, (t, s))| {
                let name = if i == 0 {
                    format!("φ ≥ {t} (configured)")
                } else {
                    format!("φ ≥ {t}")
                };
                (name, *s)
            })
            .collect();
        if let Some(s) = self.scores.last() {
            out.push((format!("silence > {} ms", self.timeout.as_millis_f64()), *s));
        }
        out
    }

    fn monitor_now(&self, at: Time) -> Option<Time> {
        self.sim.clock(MONITOR).map(|c| c.local(at))
    }

    fn watch(&self, sender: NodeId) -> Option<&Watch> {
        self.sim.node(MONITOR)?.watch(sender)
    }

    fn senders_table(&self) -> Panel {
        let now = self.monitor_now(self.sim.now()).unwrap_or(self.sim.now());
        let rows = (1..self.sim.node_count())
            .map(|s| {
                let truth = crate::lab::cluster::status_name(self.sim.status(s));
                match self.watch(s) {
                    Some(w) => vec![
                        json!(format!("n{s}")),
                        json!(truth),
                        json!(w.phi.phi(now)),
                        json!(w.phi_suspects.first().copied().unwrap_or(false)),
                        json!(w.fixed.silence(now).as_millis_f64()),
                        json!(w.fixed_suspects),
                        json!(w.heartbeats),
                        json!(w.phi.history().mean() / 1e3),
                        json!(w.phi.history().std_deviation() / 1e3),
                    ],
                    None => vec![json!(format!("n{s}")), json!(truth)],
                }
            })
            .collect();
        Panel::Table {
            title: "senders as the monitor sees them (truth: the simulator's)".into(),
            columns: [
                "sender",
                "truth",
                "φ",
                "φ suspects",
                "silence ms",
                "timeout suspects",
                "heartbeats",
                "mean interval ms",
                "σ ms",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        }
    }

    fn tradeoff_table(&self) -> Panel {
        let rows = self
            .named_scores()
            .into_iter()
            .map(|(name, s)| {
                vec![
                    json!(name),
                    json!(s.wrong),
                    json!(s.detections),
                    json!(s.mean_detection_ms()),
                    json!(s.detection_us_max as f64 / 1e3),
                ]
            })
            .collect();
        Panel::Table {
            title: "detection time against wrong suspicions as the threshold moves".into(),
            columns: [
                "detector",
                "wrong suspicions",
                "crashes detected",
                "mean detection ms",
                "max detection ms",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        }
    }

    /// Scores new suspicions against the truth and checks the invariants for `sender`.
    fn observe_sender(&mut self, sender: NodeId, now: Time) {
        let i = sender as usize - 1;
        let crashed = self.sim.status(sender) == Some(NodeStatus::Crashed);
        let detectors = self.detectors();
        let Some(truth) = self.truth.get_mut(i) else {
            return;
        };
        match (crashed, truth.crashed_at) {
            (true, None) => {
                truth.crashed_at = Some(now);
                truth.detected = vec![false; detectors];
            }
            (false, Some(_)) => truth.crashed_at = None,
            _ => {}
        }
        let Some(w) = self.sim.node(MONITOR).and_then(|m| m.watch(sender)) else {
            return;
        };
        for d in 0..detectors {
            let (count, suspects) = if d + 1 == detectors {
                (w.fixed_suspicions, w.fixed_suspects)
            } else {
                (
                    w.phi_suspicions.get(d).copied().unwrap_or(0),
                    w.phi_suspects.get(d).copied().unwrap_or(false),
                )
            };
            let new = count.saturating_sub(truth.seen[d]);
            truth.seen[d] = count;
            if trusted_without_heartbeat(
                truth.suspected[d],
                suspects,
                truth.heartbeats_at_suspicion[d],
                w,
            ) && self.trusted_without_heartbeat.is_none()
            {
                self.trusted_without_heartbeat = Some((
                    format!("at {now} the monitor trusted n{sender} again without a heartbeat"),
                    sender,
                ));
            }
            if new > 0 {
                truth.heartbeats_at_suspicion[d] = w.heartbeats;
                let score = &mut self.scores[d];
                match truth.crashed_at {
                    Some(at) if !truth.detected[d] => {
                        truth.detected[d] = true;
                        let took = now.saturating_since(at).0;
                        score.detections += 1;
                        score.detection_us_sum += took;
                        score.detection_us_max = score.detection_us_max.max(took);
                        score.wrong += new - 1;
                    }
                    _ => score.wrong += new,
                }
            }
            truth.suspected[d] = suspects;
        }
        if self.verdict_off_rule.is_none()
            && let Some(e) = w.verdict_errors().into_iter().next()
        {
            self.verdict_off_rule = Some((format!("n{sender}: {e}"), sender));
        }
    }

    fn fresh_truth(detectors: usize) -> SenderTruth {
        SenderTruth {
            crashed_at: None,
            seen: vec![0; detectors],
            detected: vec![false; detectors],
            suspected: vec![false; detectors],
            heartbeats_at_suspicion: vec![0; detectors],
        }
    }
}

impl Sampled for FailureDetectorLab {
    type Totals = ();

    fn series(&self) -> Vec<(String, String)> {
        let charted = (self.sim.node_count() - 1).min(CHARTED);
        let mut s: Vec<(String, String)> = (1..=charted)
            .map(|n| (format!("φ n{n}"), "φ".to_string()))
            .collect();
        s.push(("threshold".into(), "φ".into()));
        s.push(("wrong suspicions, φ".into(), "total".into()));
        s.push(("wrong suspicions, timeout".into(), "total".into()));
        s
    }

    fn totals(&self) {}

    fn sample(&self, at: Time, _interval: Duration, _since: &()) -> Vec<f64> {
        let charted = (self.sim.node_count() - 1).min(CHARTED);
        let local = self.monitor_now(at);
        let mut v: Vec<f64> = (1..=charted)
            .map(|n| match (self.watch(n), local) {
                (Some(w), Some(t)) => w.phi.phi(t),
                _ => f64::NAN,
            })
            .collect();
        v.push(self.thresholds.first().copied().unwrap_or(f64::NAN));
        v.push(self.scores.first().map_or(0, |s| s.wrong) as f64);
        v.push(self.scores.last().map_or(0, |s| s.wrong) as f64);
        v
    }
}

impl ClusterLab for FailureDetectorLab {
    const ID: &'static str = "coordination.failure-detector";
    type Node = DetectorNode;
    type Config = FailureDetectorLabConfig;
    type Action = FailureDetectorLabAction;
    const TRACE_TAIL: usize = TRACE_TAIL;

    fn new(c: &FailureDetectorLabConfig) -> Result<Self> {
        let phi = PhiAccrualConfig {
            threshold: c.threshold,
            max_sample_size: c.max_sample_size,
            min_std_deviation_ms: c.min_std_deviation_ms,
            acceptable_heartbeat_pause_ms: c.acceptable_heartbeat_pause_ms,
            first_heartbeat_estimate_ms: Millis::new(
                "heartbeatIntervalMs",
                c.heartbeat_interval_ms.get(),
            )?,
        };
        // Checks the threshold, which the config names alike.
        let detector = PhiAccrual::new(phi)?;
        let node_config = DetectorNodeConfig {
            heartbeat_interval: c.heartbeat_interval_ms.duration(),
            check_every: c.check_every_ms.duration(),
            phi,
            fixed: FixedTimeoutConfig {
                timeout_ms: c.timeout_ms,
            },
        };
        let mut sim = Sim::new(c.sim_config(c.senders.get() + 1), node_config)?;
        c.load_faults(&mut sim)?;
        let thresholds: Vec<f64> = std::iter::once(detector.threshold())
            .chain(THRESHOLD_LADDER)
            .collect();
        let detectors = thresholds.len() + 1;
        let mut lab = FailureDetectorLab {
            truth: vec![Self::fresh_truth(detectors); c.senders.get() as usize],
            scores: vec![Score::default(); detectors],
            thresholds,
            timeout: c.timeout_ms.duration(),
            monitor_boots: sim.boots(MONITOR),
            sim,
            trusted_without_heartbeat: None,
            verdict_off_rule: None,
        };
        lab.observe();
        Ok(lab)
    }

    fn sim(&self) -> &Sim<DetectorNode> {
        &self.sim
    }

    fn sim_mut(&mut self) -> &mut Sim<DetectorNode> {
        &mut self.sim
    }

    fn observe(&mut self) {
        let boots = self.sim.boots(MONITOR);
        if boots != self.monitor_boots {
            // A restarted monitor starts from nothing: so do the lab's counts of what
            // it has decided (the scores stay).
            self.monitor_boots = boots;
            let detectors = self.detectors();
            for t in &mut self.truth {
                let crashed_at = t.crashed_at;
                *t = Self::fresh_truth(detectors);
                t.crashed_at = crashed_at;
            }
        }
        let now = self.sim.now();
        for s in 1..self.sim.node_count() {
            self.observe_sender(s, now);
        }
    }

    fn act(&mut self, action: &FailureDetectorLabAction) -> Result<()> {
        match action {
            FailureDetectorLabAction::ResetScores {} => {
                self.scores.iter_mut().for_each(|s| *s = Score::default());
            }
        }
        Ok(())
    }

    fn node_fields(&self, id: NodeId, fields: &mut BTreeMap<String, Value>) {
        let Some(n) = self.sim.node(id) else {
            return;
        };
        if id == MONITOR {
            fields.insert("threshold".into(), json!(self.thresholds.first()));
            fields.insert("timeoutMs".into(), json!(self.timeout.as_millis_f64()));
            fields.insert("watching".into(), json!(n.watches().len()));
            return;
        }
        fields.insert("heartbeatsSent".into(), json!(n.sent()));
        let now = self.monitor_now(self.sim.now()).unwrap_or(self.sim.now());
        if let Some(w) = self.watch(id) {
            fields.insert("phiAtMonitor".into(), json!(w.phi.phi(now)));
            fields.insert(
                "suspectedByPhi".into(),
                json!(w.phi_suspects.first().copied().unwrap_or(false)),
            );
            fields.insert("suspectedByTimeout".into(), json!(w.fixed_suspects));
            fields.insert(
                "silenceMs".into(),
                json!(w.fixed.silence(now).as_millis_f64()),
            );
        }
    }

    fn panels(&self) -> Vec<Panel> {
        vec![self.senders_table(), self.tradeoff_table()]
    }

    fn invariants(&self) -> Vec<InvariantStatus> {
        const TRUST: &str = "a suspicion ends only with a heartbeat";
        const RULE: &str = "each verdict follows its detector's rule";
        let status = |name: &str, breach: &Option<(String, NodeId)>, ok: &str| match breach {
            Some((d, n)) => InvariantStatus::violated(name, d.clone(), vec![MONITOR, *n]),
            None => InvariantStatus::holds(name, ok),
        };
        vec![
            status(
                TRUST,
                &self.trusted_without_heartbeat,
                "every sender the monitor stopped suspecting had sent a heartbeat since",
            ),
            status(
                RULE,
                &self.verdict_off_rule,
                "φ ≥ threshold ⇔ suspected, silence > timeout ⇔ suspected, after every event",
            ),
        ]
    }

    fn example_actions() -> Vec<ClusterAction<FailureDetectorLabAction>> {
        let mut v: Vec<_> = Fault::examples()
            .into_iter()
            .map(ClusterAction::Fault)
            .collect();
        v.push(ClusterAction::Lab(FailureDetectorLabAction::ResetScores {}));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Cluster, Lab, LabModel, Runner};

    fn run(config: Value, ms: u64) -> Runner<Cluster<FailureDetectorLab>> {
        let mut l = Runner::<Cluster<FailureDetectorLab>>::from_json(&config).unwrap();
        l.step(Duration::from_millis(ms)).unwrap();
        l
    }

    #[test]
    fn the_default_run_suspects_the_paused_sender_wrongly_and_detects_its_crash() {
        let l = run(Value::Null, 8_000);
        let lab = l.model().lab();
        let scores = lab.named_scores();
        let configured = scores[0].1;
        // A 600 ms pause against a 100 ms heartbeat: φ ≥ 8 fires, wrongly.
        assert!(configured.wrong >= 1, "{scores:?}");
        assert_eq!(configured.detections, 1, "{scores:?}");
        let fixed = scores.last().unwrap().1;
        assert_eq!(fixed.detections, 1);
        assert!(fixed.wrong >= 1);
        // The timeout fires 250 ms after the last heartbeat arrived, checked every 10 ms.
        let took = fixed.mean_detection_ms().unwrap();
        assert!((150.0..400.0).contains(&took), "{took}");
        // The ladder: a higher threshold never detects sooner.
        let ladder: Vec<f64> = scores[1..scores.len() - 1]
            .iter()
            .filter_map(|(_, s)| s.mean_detection_ms())
            .collect();
        assert!(ladder.windows(2).all(|w| w[0] <= w[1]), "{ladder:?}");
        assert!(l.view().invariants.iter().all(|i| i.ok));
        // Sender 2 was never suspected by the configured threshold.
        let w2 = lab.watch(2).unwrap();
        assert_eq!(w2.phi_suspicions[0], 0);
    }

    #[test]
    fn a_sender_that_resumes_is_trusted_again() {
        let l = run(Value::Null, 4_000);
        let w = l.model().lab().watch(1).unwrap();
        assert!(w.phi_suspicions[0] >= 1);
        assert!(!w.phi_suspects[0] && !w.fixed_suspects);
    }

    #[test]
    fn both_invariants_can_fail() {
        let mut m =
            Cluster::<FailureDetectorLab>::new(&FailureDetectorLabConfig::default()).unwrap();
        while m.step_until(Time::from_millis(3_500)) {}
        let w = m.lab().watch(1).unwrap().clone();
        assert!(w.phi_suspects[0], "paused sender suspected at 3.5 s");
        // A verdict that does not follow φ.
        let mut off = w.clone();
        off.phi_suspects[0] = false;
        assert!(!off.verdict_errors().is_empty());
        let mut off = w.clone();
        off.fixed_suspects = !off.fixed_suspects;
        assert!(!off.verdict_errors().is_empty());
        assert!(w.verdict_errors().is_empty());
        // Trust restored with no heartbeat since the suspicion began.
        assert!(trusted_without_heartbeat(true, false, w.heartbeats, &w));
        assert!(!trusted_without_heartbeat(
            true,
            false,
            w.heartbeats - 1,
            &w
        ));
        // Through the lab: a monitor whose watch was tampered with is caught.
        let mut lab = m.lab().clone();
        let mut mon = lab.sim.node(MONITOR).unwrap().clone();
        mon.watches_mut()[0].phi_suspects[0] = false;
        assert!(!mon.watch(1).unwrap().verdict_errors().is_empty());
        lab.trusted_without_heartbeat = Some(("x".into(), 1));
        assert!(!lab.invariants()[0].ok);
    }

    #[test]
    fn same_seed_same_run_and_bad_configs_name_the_field() {
        let a = run(json!({"seed": 4, "network": {"loss": 0.2}}), 3_000);
        let b = run(json!({"seed": 4, "network": {"loss": 0.2}}), 3_000);
        assert_eq!(a.trace()["hash"], b.trace()["hash"]);
        for (config, field) in [
            (json!({"threshold": 0}), "config.threshold"),
            (json!({"threshold": -1}), "config.threshold"),
            (json!({"senders": 0}), "config.senders"),
            (json!({"timeoutMs": 0}), "config.timeoutMs"),
        ] {
            let e = Runner::<Cluster<FailureDetectorLab>>::from_json(&config)
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains(&format!("`{field}`")), "{config}: {e}");
        }
    }
}
