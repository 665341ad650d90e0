//! Raft's settings: timing (paper §5.6: broadcast time ≪ election timeout ≪ MTBF), the
//! optional mechanisms of the thesis (pre-vote §9.6, check-quorum §6.2), and the switch
//! that turns off the current-term commit rule so Figure 8's failure can be shown.
//!
//! [`RaftConfig`] is what users write (milliseconds, JSON); [`RaftParams`] is the
//! validated form a node runs with.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{DistlabError, Result, check_range};
use crate::time::Duration;

/// The most nodes a Raft cluster may start with (the lab's limit; the protocol has none).
pub const MAX_MEMBERS: u32 = 51;
/// The longest log a node keeps before it must snapshot, when snapshots are on.
pub const MAX_SNAPSHOT_ENTRIES: u64 = 1_000_000;
/// The largest number of entries one AppendEntries may carry.
pub const MAX_BATCH: u32 = 10_000;

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
    /// Lease: answer from the local state while the leader's lease (a heartbeat round ago,
    /// plus the minimum election timeout, on its own clock) lasts. Fast, and unsafe when
    /// clocks drift: shown on purpose.
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
    pub snapshot_entries: u64,
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
            snapshot_entries: self.snapshot_entries,
        })
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
    }
}
