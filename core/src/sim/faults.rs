//! Faults (catalog id `sim.faults`): crashes, restarts, pauses, partitions, network knobs
//! and clock skew as values; fault scripts that schedule them, serde round-trippable so a
//! run can be saved and replayed exactly; and a nemesis that writes random scripts for
//! soaks, in the spirit of Jepsen's nemeses (Kingsbury, jepsen.io).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bounded::{Millis, Probability};
use crate::error::{DistlabError, Result, check_range};
use crate::rng::SimRng;
use crate::sim::clock::MAX_DRIFT_PPM;
use crate::sim::network::LatencyModel;
use crate::sim::node::NodeId;
use crate::time::{Duration, MAX_DURATION, Time};

/// The largest clock skew a fault may set: one day.
pub const MAX_SKEW_MS: f64 = 86_400_000.0;

/// One fault, applied at an instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
#[cfg_attr(feature = "tsify", tsify(missing_as_null))]
pub enum Fault {
    /// The node stops; its volatile state and unsynced disk writes are lost.
    Crash {
        node: NodeId,
    },
    /// The node crashes part-way through its next event, after executing `effects` of the
    /// effects that event produced (a crash between a disk write and its fsync, say).
    CrashMidEvent {
        node: NodeId,
        effects: u32,
    },
    /// A crashed node boots again from what its disk kept.
    Restart {
        node: NodeId,
    },
    /// The node stops taking events; its timers and inbox wait until it resumes.
    Pause {
        node: NodeId,
    },
    Resume {
        node: NodeId,
    },
    /// Nodes in different groups cannot talk; unnamed nodes form one more group.
    Partition {
        groups: Vec<Vec<NodeId>>,
    },
    /// Messages from any node in `from` to any node in `to` are dropped.
    PartitionOneWay {
        from: Vec<NodeId>,
        to: Vec<NodeId>,
    },
    /// Removes every partition.
    Heal,
    SetLoss {
        probability: Probability,
    },
    SetDuplicate {
        probability: Probability,
    },
    SetReorder {
        probability: Probability,
    },
    SetLatency {
        latency: LatencyModel,
    },
    /// Overrides (or with `null`, restores) the latency of one directed link.
    SetLinkLatency {
        from: NodeId,
        to: NodeId,
        latency: Option<LatencyModel>,
    },
    /// The node's clock reads `skewMs` ahead of true time (negative: behind).
    #[serde(rename_all = "camelCase")]
    ClockSkew {
        node: NodeId,
        skew_ms: f64,
    },
    /// The node's clock runs fast (positive) or slow by `ppm` parts per million.
    ClockDrift {
        node: NodeId,
        ppm: i64,
    },
}

impl Fault {
    /// One of every fault, for documentation and fuzzing.
    pub fn examples() -> Vec<Fault> {
        vec![
            Fault::Crash { node: 1 },
            Fault::Restart { node: 1 },
            Fault::Pause { node: 2 },
            Fault::Resume { node: 2 },
            Fault::Partition {
                groups: vec![vec![0, 1]],
            },
            Fault::PartitionOneWay {
                from: vec![0],
                to: vec![2],
            },
            Fault::Heal,
            Fault::SetLoss {
                probability: Probability::of(0.2),
            },
            Fault::SetDuplicate {
                probability: Probability::of(0.1),
            },
            Fault::SetReorder {
                probability: Probability::of(0.1),
            },
            Fault::SetLatency {
                latency: LatencyModel::LogNormal {
                    median_ms: 5.0,
                    sigma: 1.0,
                },
            },
            Fault::SetLinkLatency {
                from: 0,
                to: 1,
                latency: Some(LatencyModel::Constant { ms: 50.0 }),
            },
            Fault::ClockSkew {
                node: 0,
                skew_ms: -200.0,
            },
            Fault::ClockDrift {
                node: 0,
                ppm: 100_000,
            },
        ]
    }

    /// The `type` tag of every fault, as it appears in JSON.
    pub const TYPES: &'static [&'static str] = &[
        "crash",
        "crashMidEvent",
        "restart",
        "pause",
        "resume",
        "partition",
        "partitionOneWay",
        "heal",
        "setLoss",
        "setDuplicate",
        "setReorder",
        "setLatency",
        "setLinkLatency",
        "clockSkew",
        "clockDrift",
    ];

    /// Checks the fault's own values and that every node it names exists.
    pub fn validate(&self, nodes: u32) -> Result<()> {
        let node = |field: &str, n: NodeId| -> Result<()> {
            if n < nodes {
                Ok(())
            } else {
                Err(DistlabError::field(
                    field,
                    format!("node {n} does not exist (the cluster has {nodes} nodes)"),
                ))
            }
        };
        match self {
            Fault::Crash { node: n }
            | Fault::Restart { node: n }
            | Fault::Pause { node: n }
            | Fault::Resume { node: n }
            | Fault::CrashMidEvent { node: n, .. } => node("node", *n),
            Fault::Partition { groups } => {
                if groups.is_empty() {
                    return Err(DistlabError::field(
                        "groups",
                        "must name at least one group (`heal` removes partitions)",
                    ));
                }
                let mut seen = std::collections::BTreeSet::new();
                for (i, group) in groups.iter().enumerate() {
                    let field = format!("groups[{i}]");
                    if group.is_empty() {
                        return Err(DistlabError::field(
                            field,
                            "an empty group cuts nobody off: name at least one node",
                        ));
                    }
                    for n in group {
                        node(&field, *n)?;
                        if !seen.insert(*n) {
                            return Err(DistlabError::field(
                                field,
                                format!("node {n} appears twice (in one group or in two)"),
                            ));
                        }
                    }
                }
                Ok(())
            }
            Fault::PartitionOneWay { from, to } => {
                let mut seen_from = std::collections::BTreeSet::new();
                let mut seen_to = std::collections::BTreeSet::new();
                for (field, side, seen) in
                    [("from", from, &mut seen_from), ("to", to, &mut seen_to)]
                {
                    if side.is_empty() {
                        return Err(DistlabError::field(field, "must name at least one node"));
                    }
                    for n in side {
                        node(field, *n)?;
                        if !seen.insert(*n) {
                            return Err(DistlabError::field(
                                field,
                                format!("node {n} appears twice"),
                            ));
                        }
                    }
                }
                match seen_from.intersection(&seen_to).next() {
                    Some(n) => Err(DistlabError::field(
                        "to",
                        format!(
                            "node {n} is in both `from` and `to`: a node cannot be cut off from itself"
                        ),
                    )),
                    None => Ok(()),
                }
            }
            Fault::Heal => Ok(()),
            // Their type bounds them.
            Fault::SetLoss { .. } | Fault::SetDuplicate { .. } | Fault::SetReorder { .. } => Ok(()),
            Fault::SetLatency { latency } => latency.validate("latency"),
            Fault::SetLinkLatency { from, to, latency } => {
                node("from", *from)?;
                node("to", *to)?;
                latency.as_ref().map_or(Ok(()), |l| l.validate("latency"))
            }
            Fault::ClockSkew { node: n, skew_ms } => {
                node("node", *n)?;
                check_range("skewMs", *skew_ms, -MAX_SKEW_MS, MAX_SKEW_MS).map(drop)
            }
            Fault::ClockDrift { node: n, ppm } => {
                node("node", *n)?;
                if ppm.abs() > MAX_DRIFT_PPM {
                    return Err(DistlabError::field(
                        "ppm",
                        format!("must be between -{MAX_DRIFT_PPM} and {MAX_DRIFT_PPM}, got {ppm}"),
                    ));
                }
                Ok(())
            }
        }
    }
}

/// A fault and when it happens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct ScheduledFault {
    /// Simulated time in microseconds (integer, so a replay is exact).
    pub at_us: u64,
    pub fault: Fault,
}

/// A timeline of faults. Serialises to JSON and back without loss, so a run that found a
/// bug can be saved, shared and replayed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct FaultScript {
    pub faults: Vec<ScheduledFault>,
}

impl FaultScript {
    pub fn validate(&self, nodes: u32) -> Result<()> {
        for (i, f) in self.faults.iter().enumerate() {
            if f.at_us > MAX_DURATION.0 {
                return Err(DistlabError::field(
                    format!("faults[{i}].atUs"),
                    format!(
                        "{} µs is beyond the longest run ({} µs)",
                        f.at_us, MAX_DURATION.0
                    ),
                ));
            }
            f.fault.validate(nodes).map_err(|e| match e {
                DistlabError::InvalidField { field, problem } => {
                    DistlabError::field(format!("faults[{i}].fault.{field}"), problem)
                }
                other => other,
            })?;
        }
        Ok(())
    }

    /// Time of the last fault (zero for an empty script).
    pub fn end(&self) -> Time {
        Time(self.faults.iter().map(|f| f.at_us).max().unwrap_or(0))
    }

    fn push(&mut self, at: Time, fault: Fault) {
        self.faults.push(ScheduledFault { at_us: at.0, fault });
    }
}

/// Which kinds of fault a nemesis may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct FaultKinds {
    pub crash: bool,
    pub pause: bool,
    pub partition: bool,
    pub one_way: bool,
    pub loss: bool,
    pub duplicate: bool,
    pub reorder: bool,
    pub clock: bool,
}

impl Default for FaultKinds {
    fn default() -> Self {
        FaultKinds {
            crash: true,
            pause: true,
            partition: true,
            one_way: true,
            loss: true,
            duplicate: true,
            reorder: true,
            clock: true,
        }
    }
}

/// A random fault-script generator for soaks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct NemesisConfig {
    /// 0 = no faults; 1 = a new fault episode every `meanEpisodeMs` on average.
    pub intensity: Probability,
    /// Faults start within `[0, durationMs)`; by `durationMs` everything is healed.
    pub duration_ms: f64,
    /// Mean length of one fault episode.
    pub mean_episode_ms: Millis<1, 3_600_000>,
    /// The highest loss / duplication / reorder probability an episode sets.
    pub max_loss: Probability,
    pub max_skew_ms: f64,
    pub max_drift_ppm: i64,
    pub kinds: FaultKinds,
}

impl Default for NemesisConfig {
    fn default() -> Self {
        NemesisConfig {
            intensity: Probability::of(0.5),
            duration_ms: 10_000.0,
            mean_episode_ms: Millis::of(1_000),
            max_loss: Probability::of(0.3),
            max_skew_ms: 500.0,
            max_drift_ppm: 50_000,
            kinds: FaultKinds::default(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Episode {
    Crash,
    Pause,
    Partition,
    OneWay,
    Loss,
    Duplicate,
    Reorder,
    Clock,
}

impl NemesisConfig {
    pub fn validate(&self) -> Result<()> {
        check_range(
            "durationMs",
            self.duration_ms,
            0.0,
            MAX_DURATION.0 as f64 / 1_000.0,
        )?;
        check_range("maxSkewMs", self.max_skew_ms, 0.0, MAX_SKEW_MS)?;
        if !(0..=MAX_DRIFT_PPM).contains(&self.max_drift_ppm) {
            return Err(DistlabError::field(
                "maxDriftPpm",
                format!(
                    "must be between 0 and {MAX_DRIFT_PPM}, got {}",
                    self.max_drift_ppm
                ),
            ));
        }
        Ok(())
    }

    /// Writes a random script for a cluster of `nodes` nodes. Episodes start at random
    /// times (a Poisson process whose rate grows with intensity), may overlap, and each
    /// ends with its own repair; at `durationMs` a final block repairs everything, so
    /// liveness can be asserted after it.
    pub fn generate(&self, nodes: u32, rng: &mut SimRng) -> Result<FaultScript> {
        self.validate()?;
        let mut script = FaultScript::default();
        let duration = Duration::try_from_millis_f64("durationMs", self.duration_ms)?;
        let end = Time(duration.0);
        let k = self.kinds;
        let mut menu = Vec::new();
        let mut offer = |on: bool, e: Episode| {
            if on {
                menu.push(e);
            }
        };
        offer(k.crash, Episode::Crash);
        offer(k.pause, Episode::Pause);
        offer(k.partition && nodes > 1, Episode::Partition);
        offer(k.one_way && nodes > 1, Episode::OneWay);
        offer(k.loss, Episode::Loss);
        offer(k.duplicate, Episode::Duplicate);
        offer(k.reorder, Episode::Reorder);
        offer(k.clock, Episode::Clock);
        if self.intensity.get() <= 0.0 || menu.is_empty() || nodes == 0 || duration.0 == 0 {
            return Ok(script);
        }
        let mean_gap_us = self.mean_episode_ms.get() * 1_000.0 / self.intensity.get();
        let mean_len_us = self.mean_episode_ms.get() * 1_000.0;
        let mut t = rng.exponential(mean_gap_us);
        while t < duration.0 as f64 {
            let start = Time(t as u64);
            let len = rng.exponential(mean_len_us).max(1_000.0) as u64;
            let stop = Time((start.0 + len).min(end.0));
            let pick = menu.get(rng.below(menu.len() as u64) as usize).copied();
            if let Some(episode) = pick {
                self.episode(episode, nodes, start, stop, rng, &mut script);
            }
            t += rng.exponential(mean_gap_us);
        }
        self.repair_all(nodes, end, &mut script);
        // Stable sort: simultaneous faults keep the order they were written in.
        script.faults.sort_by_key(|f| f.at_us);
        Ok(script)
    }

    fn episode(
        &self,
        episode: Episode,
        nodes: u32,
        start: Time,
        stop: Time,
        rng: &mut SimRng,
        s: &mut FaultScript,
    ) {
        let node = rng.below(nodes as u64) as NodeId;
        let level = Probability::saturating(self.max_loss.get() * rng.next_f64());
        match episode {
            Episode::Crash => {
                let fault = if rng.chance(0.5) {
                    Fault::Crash { node }
                } else {
                    Fault::CrashMidEvent {
                        node,
                        effects: rng.below(4) as u32,
                    }
                };
                s.push(start, fault);
                s.push(stop, Fault::Restart { node });
            }
            Episode::Pause => {
                s.push(start, Fault::Pause { node });
                s.push(stop, Fault::Resume { node });
            }
            Episode::Partition => {
                let mut side: Vec<NodeId> = (0..nodes).filter(|_| rng.chance(0.5)).collect();
                if side.is_empty() || side.len() == nodes as usize {
                    side = vec![node];
                }
                s.push(start, Fault::Partition { groups: vec![side] });
                s.push(stop, Fault::Heal);
            }
            Episode::OneWay => {
                let to = (node + 1 + rng.below(nodes as u64 - 1) as u32) % nodes;
                s.push(
                    start,
                    Fault::PartitionOneWay {
                        from: vec![node],
                        to: vec![to],
                    },
                );
                s.push(stop, Fault::Heal);
            }
            Episode::Loss => {
                s.push(start, Fault::SetLoss { probability: level });
                s.push(
                    stop,
                    Fault::SetLoss {
                        probability: Probability::NEVER,
                    },
                );
            }
            Episode::Duplicate => {
                s.push(start, Fault::SetDuplicate { probability: level });
                s.push(
                    stop,
                    Fault::SetDuplicate {
                        probability: Probability::NEVER,
                    },
                );
            }
            Episode::Reorder => {
                s.push(start, Fault::SetReorder { probability: level });
                s.push(
                    stop,
                    Fault::SetReorder {
                        probability: Probability::NEVER,
                    },
                );
            }
            Episode::Clock => {
                let skew = self.max_skew_ms * (2.0 * rng.next_f64() - 1.0);
                let drift = rng.range_inclusive(0, 2 * self.max_drift_ppm as u64) as i64
                    - self.max_drift_ppm;
                s.push(
                    start,
                    Fault::ClockSkew {
                        node,
                        skew_ms: skew,
                    },
                );
                s.push(start, Fault::ClockDrift { node, ppm: drift });
                s.push(stop, Fault::ClockDrift { node, ppm: 0 });
            }
        }
    }

    fn repair_all(&self, nodes: u32, end: Time, s: &mut FaultScript) {
        s.push(end, Fault::Heal);
        s.push(
            end,
            Fault::SetLoss {
                probability: Probability::NEVER,
            },
        );
        s.push(
            end,
            Fault::SetDuplicate {
                probability: Probability::NEVER,
            },
        );
        s.push(
            end,
            Fault::SetReorder {
                probability: Probability::NEVER,
            },
        );
        for node in 0..nodes {
            s.push(end, Fault::Resume { node });
            s.push(end, Fault::Restart { node });
            s.push(end, Fault::ClockDrift { node, ppm: 0 });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_round_trip_through_json() {
        let cfg = NemesisConfig {
            intensity: Probability::of(1.0),
            ..NemesisConfig::default()
        };
        let script = cfg.generate(5, &mut SimRng::new(4)).unwrap();
        assert!(script.faults.len() > 10);
        let json = serde_json::to_string(&script).unwrap();
        let back: FaultScript = serde_json::from_str(&json).unwrap();
        assert_eq!(back, script);
        script.validate(5).unwrap();
    }

    #[test]
    fn same_seed_same_script_and_sorted() {
        let cfg = NemesisConfig::default();
        let a = cfg.generate(3, &mut SimRng::new(1)).unwrap();
        let b = cfg.generate(3, &mut SimRng::new(1)).unwrap();
        let c = cfg.generate(3, &mut SimRng::new(2)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.faults.windows(2).all(|w| w[0].at_us <= w[1].at_us));
        assert_eq!(a.end(), Time(10_000_000));
    }

    #[test]
    fn zero_intensity_means_no_faults_and_bad_configs_are_errors() {
        let quiet = NemesisConfig {
            intensity: Probability::NEVER,
            ..NemesisConfig::default()
        };
        assert!(
            quiet
                .generate(3, &mut SimRng::new(1))
                .unwrap()
                .faults
                .is_empty()
        );
        let bad = serde_json::from_value::<NemesisConfig>(serde_json::json!({"intensity": 1.5}));
        assert!(bad.unwrap_err().to_string().contains("between 0 and 1"));
    }

    #[test]
    fn malformed_partitions_are_refused_naming_the_part() {
        let cases = [
            (Fault::Partition { groups: vec![] }, "`groups`"),
            (
                Fault::Partition {
                    groups: vec![vec![0], vec![]],
                },
                "`groups[1]`",
            ),
            (
                Fault::Partition {
                    groups: vec![vec![0, 1, 0]],
                },
                "`groups[0]`",
            ),
            (
                Fault::Partition {
                    groups: vec![vec![0], vec![2, 0]],
                },
                "`groups[1]`",
            ),
            (
                Fault::Partition {
                    groups: vec![vec![5]],
                },
                "`groups[0]`",
            ),
            (
                Fault::PartitionOneWay {
                    from: vec![],
                    to: vec![1],
                },
                "`from`",
            ),
            (
                Fault::PartitionOneWay {
                    from: vec![0],
                    to: vec![],
                },
                "`to`",
            ),
            (
                Fault::PartitionOneWay {
                    from: vec![0, 0],
                    to: vec![1],
                },
                "`from`",
            ),
            (
                Fault::PartitionOneWay {
                    from: vec![0, 1],
                    to: vec![1],
                },
                "`to`",
            ),
        ];
        for (fault, field) in cases {
            let e = fault.validate(3).unwrap_err().to_string();
            assert!(e.contains(field), "{fault:?}: {e}");
        }
        Fault::Partition {
            groups: vec![vec![0], vec![2, 1]],
        }
        .validate(3)
        .unwrap();
        Fault::PartitionOneWay {
            from: vec![0],
            to: vec![1, 2],
        }
        .validate(3)
        .unwrap();
    }

    #[test]
    fn every_fault_type_name_is_a_serde_tag() {
        for t in Fault::TYPES {
            let e = serde_json::from_value::<Fault>(serde_json::json!({ "type": t }));
            let msg = e.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(!msg.contains("unknown variant"), "{t}: {msg}");
        }
        let heal: Fault = serde_json::from_value(serde_json::json!({"type": "heal"})).unwrap();
        assert_eq!(heal, Fault::Heal);
    }

    #[test]
    fn validation_names_the_field_and_index() {
        let s = FaultScript {
            faults: vec![
                ScheduledFault {
                    at_us: 0,
                    fault: Fault::Heal,
                },
                ScheduledFault {
                    at_us: 5,
                    fault: Fault::Crash { node: 9 },
                },
            ],
        };
        let e = s.validate(3).unwrap_err().to_string();
        assert!(e.contains("faults[1].fault.node"), "{e}");
        let bad: std::result::Result<Fault, _> =
            serde_json::from_str(r#"{"type":"crash","node":1,"extra":2}"#);
        assert!(bad.is_err());
    }
}
