//! Raft's settings: timing (paper §5.6: broadcast time ≪ election timeout ≪ MTBF), the
//! optional mechanisms of the thesis (pre-vote §9.6, check-quorum §6.2), the clock-drift
//! bound lease reads are made safe against (§6.4.1), and the switch that turns off the
//! current-term commit rule so Figure 8's failure can be shown.
//!
//! [`RaftConfig`] is what users write (milliseconds, JSON); [`RaftParams`] is the
//! validated form a node runs with.
//!
//! **Timing.** Raft stays live only if `broadcastTime ≪ electionTimeout ≪ MTBF` (paper
//! §5.6). [`RaftConfig::params`] checks what needs no network (the heartbeat is shorter
//! than the minimum election timeout); [`RaftConfig::check_timing`] checks the timeouts
//! against a network's latency where a driver knows it (the labs do). Taking the
//! broadcast time as a round trip at the latency model's 99th percentile (its maximum
//! when bounded), both the minimum election timeout and the width of the range timeouts
//! are drawn from must be at least [`BROADCASTS_PER_TIMEOUT`] broadcast times: the first
//! must let heartbeats arrive and an election (a pre-vote and a vote round) finish before
//! anyone times out, the second must spread the nodes' timeouts so that one usually
//! wins before another starts. Below that, votes split over and over — a cluster with a
//! 10 ms range over a 100 ms network never settles.
//!
//! Such a configuration is *rejected*, with an error naming the field, rather than
//! accepted with a warning: the existing rule (heartbeat shorter than the election
//! timeout) is a rejection too; the lab views have no place for a warning every renderer
//! shows; and a cluster outside the requirement shows nothing about Raft but endless
//! elections. The bound is half the paper's order of magnitude, so slow-to-elect
//! configurations that are worth watching still run.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{DistlabError, Result, check_range};
use crate::sim::LatencyModel;
use crate::sim::clock::MAX_DRIFT_PPM;
use crate::time::Duration;

/// The most nodes a Raft cluster may start with (the lab's limit; the protocol has none).
pub const MAX_MEMBERS: u32 = 51;
/// The longest log a node keeps before it must snapshot, when snapshots are on.
pub const MAX_SNAPSHOT_ENTRIES: u64 = 1_000_000;
/// The largest number of entries one AppendEntries may carry.
pub const MAX_BATCH: u32 = 10_000;
/// The minimum election timeout, and the width of the range election timeouts are drawn
/// from, must each be at least this many broadcast times (see the module docs).
pub const BROADCASTS_PER_TIMEOUT: f64 = 5.0;
/// The default clock-drift bound for lease reads: 500 ppm, the largest frequency error
/// the NTP reference implementation corrects (RFC 5905, Appendix A: `MAXFREQ`).
pub const DEFAULT_LEASE_DRIFT_BOUND_PPM: u32 = 500;

/// How a leader answers a read (thesis §6.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum ReadMode {
    /// Through the log like a write: linearizable, one round of replication per read.
    #[default]
    Log,
    /// ReadIndex: note the commit index, confirm leadership with one heartbeat round,
    /// wait until applied, answer. Linearizable without a log entry.
    ReadIndex,
    /// Lease: answer from the local state while the leader's lease lasts — from the start
    /// of the newest heartbeat round a majority confirmed, the minimum election timeout
    /// shortened by `leaseDriftBoundPpm`, on its own clock. Fast; safe only while every
    /// clock's rate stays within that bound and no clock steps (see
    /// [`super::reads`]), which the lab lets you break on purpose.
    Lease,
}

/// User-facing Raft settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct RaftConfig {
    /// Election timeouts are drawn uniformly from [min, max) on each node's own clock.
    pub election_timeout_min_ms: f64,
    pub election_timeout_max_ms: f64,
    /// How often a leader sends AppendEntries (possibly empty: a heartbeat).
    pub heartbeat_ms: f64,
    /// Pre-vote (thesis §9.6): ask whether an election could be won before raising the
    /// term, so a node that was cut off cannot depose a healthy leader when it returns.
    pub pre_vote: bool,
    /// Check-quorum (thesis §6.2): a leader that has not heard from a majority within an
    /// election timeout steps down, and followers that heard from a leader recently
    /// ignore vote requests.
    pub check_quorum: bool,
    /// Most entries per AppendEntries.
    pub max_batch: u32,
    /// Commit by counting replicas only entries of the leader's own term (paper §5.4.2,
    /// Figure 8). Turning it off is unsafe: it exists to show why the rule is there.
    pub current_term_commit_rule: bool,
    pub read_mode: ReadMode,
    /// Lease reads stay linearizable while every clock's rate is within this many parts
    /// per million of true time: a lease lasts
    /// `electionTimeoutMin · (1 − ρ) / (1 + ρ)` on the leader's clock (see
    /// [`super::reads`]). At most 500000.
    pub lease_drift_bound_ppm: u32,
    /// Take a snapshot and compact the log once this many entries are applied past the
    /// last snapshot (0: never, except when asked).
    pub snapshot_entries: u64,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            election_timeout_min_ms: 150.0,
            election_timeout_max_ms: 300.0,
            heartbeat_ms: 50.0,
            pre_vote: true,
            check_quorum: true,
            max_batch: 64,
            current_term_commit_rule: true,
            read_mode: ReadMode::Log,
            lease_drift_bound_ppm: DEFAULT_LEASE_DRIFT_BOUND_PPM,
            snapshot_entries: 1_000,
        }
    }
}

/// Validated settings, plus the initial membership.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RaftParams {
    /// Nodes `0..initial_members` are the voters at first boot; nodes added later start
    /// empty and wait for a leader to bring them in.
    pub initial_members: u32,
    pub election_min: Duration,
    pub election_max: Duration,
    pub heartbeat: Duration,
    pub pre_vote: bool,
    pub check_quorum: bool,
    pub max_batch: usize,
    pub current_term_commit_rule: bool,
    pub read_mode: ReadMode,
    pub lease_drift_bound_ppm: u32,
    pub snapshot_entries: u64,
}

impl RaftParams {
    /// How long a lease lasts on the leader's clock after the start of a confirmed round:
    /// the minimum election timeout times `(1 − ρ) / (1 + ρ)`, rounded down. A follower
    /// whose clock runs fast by ρ still waits `election_min / (1 + ρ)` of true time before
    /// it votes again; a leader whose clock runs slow by ρ sees this lease end within
    /// `lease / (1 − ρ)` of true time, which is no longer.
    pub fn lease(&self) -> Duration {
        const PPM: u128 = 1_000_000;
        let rho = self.lease_drift_bound_ppm as u128;
        let min = self.election_min.0 as u128;
        Duration((min * (PPM - rho) / (PPM + rho)) as u64)
    }
}

/// A one-way latency (ms) that `model` exceeds at most 1 % of the time: its maximum when
/// it has one, else its 99th percentile.
pub fn latency_p99_ms(model: &LatencyModel) -> f64 {
    // The standard normal's 99th percentile.
    const Z99: f64 = 2.326_347_874_040_841;
    match *model {
        LatencyModel::Constant { ms } => ms,
        LatencyModel::Uniform { max_ms, .. } => max_ms,
        LatencyModel::Exponential { min_ms, mean_ms } => min_ms + mean_ms * libm::log(100.0),
        LatencyModel::LogNormal { median_ms, sigma } => median_ms * libm::exp(Z99 * sigma),
        LatencyModel::Pareto { scale_ms, shape } => scale_ms * libm::pow(100.0, 1.0 / shape),
    }
}

impl RaftConfig {
    /// Checks every field (naming it) and builds the parameters for a cluster that starts
    /// with `initial_members` voters.
    pub fn params(&self, initial_members: u32) -> Result<RaftParams> {
        if !(1..=MAX_MEMBERS).contains(&initial_members) {
            return Err(DistlabError::field(
                "nodes",
                format!("must be between 1 and {MAX_MEMBERS}, got {initial_members}"),
            ));
        }
        check_range(
            "electionTimeoutMinMs",
            self.election_timeout_min_ms,
            1.0,
            600_000.0,
        )?;
        check_range(
            "electionTimeoutMaxMs",
            self.election_timeout_max_ms,
            1.0,
            600_000.0,
        )?;
        if self.election_timeout_max_ms <= self.election_timeout_min_ms {
            return Err(DistlabError::field(
                "electionTimeoutMaxMs",
                format!(
                    "must be greater than electionTimeoutMinMs ({}), got {}",
                    self.election_timeout_min_ms, self.election_timeout_max_ms
                ),
            ));
        }
        check_range("heartbeatMs", self.heartbeat_ms, 0.1, 600_000.0)?;
        if self.heartbeat_ms >= self.election_timeout_min_ms {
            return Err(DistlabError::field(
                "heartbeatMs",
                format!(
                    "must be less than electionTimeoutMinMs ({}), or followers time out \
                     between heartbeats; got {}",
                    self.election_timeout_min_ms, self.heartbeat_ms
                ),
            ));
        }
        if !(1..=MAX_BATCH).contains(&self.max_batch) {
            return Err(DistlabError::field(
                "maxBatch",
                format!("must be between 1 and {MAX_BATCH}, got {}", self.max_batch),
            ));
        }
        if self.lease_drift_bound_ppm as i64 > MAX_DRIFT_PPM {
            return Err(DistlabError::field(
                "leaseDriftBoundPpm",
                format!(
                    "must be at most {MAX_DRIFT_PPM} (a clock off by half), got {}",
                    self.lease_drift_bound_ppm
                ),
            ));
        }
        if self.snapshot_entries > MAX_SNAPSHOT_ENTRIES {
            return Err(DistlabError::field(
                "snapshotEntries",
                format!(
                    "must be at most {MAX_SNAPSHOT_ENTRIES} (0 turns snapshots off), got {}",
                    self.snapshot_entries
                ),
            ));
        }
        Ok(RaftParams {
            initial_members,
            election_min: Duration::try_from_millis_f64(
                "electionTimeoutMinMs",
                self.election_timeout_min_ms,
            )?,
            election_max: Duration::try_from_millis_f64(
                "electionTimeoutMaxMs",
                self.election_timeout_max_ms,
            )?,
            heartbeat: Duration::try_from_millis_f64("heartbeatMs", self.heartbeat_ms)?,
            pre_vote: self.pre_vote,
            check_quorum: self.check_quorum,
            max_batch: self.max_batch as usize,
            current_term_commit_rule: self.current_term_commit_rule,
            read_mode: self.read_mode,
            lease_drift_bound_ppm: self.lease_drift_bound_ppm,
            snapshot_entries: self.snapshot_entries,
        })
    }

    /// Checks the election timeouts against a network with this latency model (paper
    /// §5.6; see the module docs): the minimum timeout and the width of the range must
    /// each be at least [`BROADCASTS_PER_TIMEOUT`] round trips at the model's 99th
    /// percentile. Call after [`params`](Self::params) has checked the fields alone.
    pub fn check_timing(&self, latency: &LatencyModel) -> Result<()> {
        let broadcast = 2.0 * latency_p99_ms(latency);
        let needed = BROADCASTS_PER_TIMEOUT * broadcast;
        let min = self.election_timeout_min_ms;
        if min < needed {
            return Err(DistlabError::field(
                "electionTimeoutMinMs",
                format!(
                    "must be at least {needed:.1} ms: {BROADCASTS_PER_TIMEOUT} broadcast \
                     times of {broadcast:.1} ms (a round trip at this network's 99th \
                     percentile latency), so that heartbeats arrive and an election ends \
                     before other timers fire (Raft §5.6: broadcast time ≪ election \
                     timeout); got {min}"
                ),
            ));
        }
        let range = self.election_timeout_max_ms - min;
        if range < needed {
            return Err(DistlabError::field(
                "electionTimeoutMaxMs",
                format!(
                    "must exceed electionTimeoutMinMs by at least {needed:.1} ms \
                     ({BROADCASTS_PER_TIMEOUT} broadcast times of {broadcast:.1} ms on this \
                     network): in a narrower range nodes time out together and split the \
                     vote again and again; got a range of {range} ms"
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_fields_are_named() {
        let p = RaftConfig::default().params(5).unwrap();
        assert_eq!(p.election_min, Duration::from_millis(150));
        let bad = |c: RaftConfig, n: u32| c.params(n).unwrap_err().to_string();
        assert!(bad(RaftConfig::default(), 0).contains("`nodes`"));
        assert!(bad(RaftConfig::default(), 52).contains("`nodes`"));
        let e = bad(
            RaftConfig {
                election_timeout_max_ms: 100.0,
                ..RaftConfig::default()
            },
            3,
        );
        assert!(e.contains("`electionTimeoutMaxMs`"), "{e}");
        let e = bad(
            RaftConfig {
                heartbeat_ms: 200.0,
                ..RaftConfig::default()
            },
            3,
        );
        assert!(e.contains("`heartbeatMs`"), "{e}");
        let e = bad(
            RaftConfig {
                max_batch: 0,
                ..RaftConfig::default()
            },
            3,
        );
        assert!(e.contains("`maxBatch`"), "{e}");
        let e = bad(
            RaftConfig {
                election_timeout_min_ms: f64::NAN,
                ..RaftConfig::default()
            },
            3,
        );
        assert!(e.contains("`electionTimeoutMinMs`"), "{e}");
        let e = bad(
            RaftConfig {
                lease_drift_bound_ppm: 500_001,
                ..RaftConfig::default()
            },
            3,
        );
        assert!(e.contains("`leaseDriftBoundPpm`"), "{e}");
    }

    #[test]
    fn the_lease_is_shortened_by_the_drift_bound() {
        let lease = |ppm: u32| {
            RaftConfig {
                lease_drift_bound_ppm: ppm,
                ..RaftConfig::default()
            }
            .params(3)
            .unwrap()
            .lease()
        };
        assert_eq!(lease(0), Duration::from_millis(150));
        // 150 ms · 0.9995 / 1.0005, rounded down.
        assert_eq!(lease(500), Duration(149_850));
        assert_eq!(lease(50_000), Duration(135_714));
        assert_eq!(lease(500_000), Duration(50_000));
        // The promise it rests on: a follower fast by ρ waits E / (1 + ρ) of true time; a
        // leader slow by ρ is done with its lease in no more.
        for ppm in [0u64, 1, 500, 50_000, 333_333, 500_000] {
            let l = lease(ppm as u32).0 as u128;
            let (e, rho, m) = (150_000u128, ppm as u128, 1_000_000u128);
            assert!(l * m * (m + rho) <= e * m * (m - rho), "{ppm} ppm");
        }
    }

    #[test]
    fn timeouts_must_be_well_above_the_network_latency() {
        let fast = LatencyModel::Uniform {
            min_ms: 1.0,
            max_ms: 5.0,
        };
        RaftConfig::default().check_timing(&fast).unwrap();
        // The configurations: a 10 ms range over a network of up to 100 ms, and a
        // minimum election timeout near the latency.
        let slow = LatencyModel::Uniform {
            min_ms: 1.0,
            max_ms: 100.0,
        };
        let narrow = RaftConfig {
            election_timeout_min_ms: 1_500.0,
            election_timeout_max_ms: 1_510.0,
            ..RaftConfig::default()
        };
        let e = narrow.check_timing(&slow).unwrap_err().to_string();
        assert!(
            e.contains("`electionTimeoutMaxMs`") && e.contains("1000.0 ms"),
            "{e}"
        );
        let near = LatencyModel::Constant { ms: 140.0 };
        let e = RaftConfig::default()
            .check_timing(&near)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`electionTimeoutMinMs`"), "{e}");
        // Five broadcast times exactly is enough; a little less is not.
        let c = LatencyModel::Constant { ms: 15.0 };
        RaftConfig::default().check_timing(&c).unwrap();
        let c = LatencyModel::Constant { ms: 15.1 };
        assert!(RaftConfig::default().check_timing(&c).is_err());
        // Unbounded models are taken at their 99th percentile: 1 + 2 ln 100, 3 e^(z₉₉ / 2),
        // 2 · 100^(1/2).
        let p99 = |m: LatencyModel| latency_p99_ms(&m);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-6 * b;
        assert!(close(
            p99(LatencyModel::Exponential {
                min_ms: 1.0,
                mean_ms: 2.0
            }),
            10.210_340_371_976_184
        ));
        assert!(close(
            p99(LatencyModel::LogNormal {
                median_ms: 3.0,
                sigma: 0.5
            }),
            9.600_222_023_828_888
        ));
        assert!(close(
            p99(LatencyModel::Pareto {
                scale_ms: 2.0,
                shape: 2.0
            }),
            20.0
        ));
    }
}
