//! What a protocol's fault soak offers the one soak driver (the `soak` binary and the
//! suites in tests/, through `distlab_tests::soak`): a report per seed, totals that add
//! up across threads and shards, and the command that replays a seed. A protocol's soak
//! module implements these three traits on its own report, summary and options; the
//! seed loop, its threads, progress and failure listing are written once, in the driver.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Display;

use crate::error::{DistlabError, Result};

/// What one seed of a soak did.
pub trait SeedOutcome: Serialize + Send {
    fn seed(&self) -> u64;
    /// Why the seed failed, if it did.
    fn failure(&self) -> Option<String>;
    /// The report as pretty JSON (what `--seed S` prints).
    fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| e.to_string())
    }
}

/// Totals over many seeds; they merge by addition, so shards and threads add up, and
/// they travel between machines as JSON.
pub trait SoakTotals: Default + Display + Send + Serialize + DeserializeOwned {
    type Report: SeedOutcome;
    fn add(&mut self, report: &Self::Report);
    fn merge(&mut self, other: &Self);
    fn seeds(&self) -> u64;
    fn failures(&self) -> u64;
    /// The seeds that failed, in the order they were added.
    fn failed_seeds(&self) -> &[u64];
    /// The totals as one line of JSON, for merging shards.
    fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| e.to_string())
    }
    /// Totals written by [`to_json`](Self::to_json), on this or another machine.
    fn from_json(json: &str) -> Result<Self> {
        serde_json::from_str(json).map_err(|e| DistlabError::field("summary", e.to_string()))
    }
}

/// A protocol's soak: its options run a seed and say how to replay one.
pub trait Soak: Default + Sync {
    /// The protocol's id on the driver's command line (`raft`, `2pc`...).
    const ID: &'static str;
    type Summary: SoakTotals;
    fn run_seed(&self, seed: u64) -> <Self::Summary as SoakTotals>::Report;
    /// How long faults are injected before everything is repaired, in simulated ms (the
    /// driver's `--fault-ms`).
    fn fault_ms(&self) -> u64;
    fn set_fault_ms(&mut self, ms: u64);
    /// The command that replays `seed` with these options and prints its report.
    fn replay_command(&self, seed: u64) -> String {
        let mut cmd = format!("cargo xtask soak {} --seed {seed}", Self::ID);
        if self.fault_ms() != Self::default().fault_ms() {
            cmd.push_str(&format!(" --fault-ms {}", self.fault_ms()));
        }
        cmd
    }
}

/// Declares a protocol's soak totals: counters that add up across seeds (`sum`), ones that
/// keep the largest (`max`), the failure counters, and the failed seeds. It writes the
/// struct, `merge`, `failures`, `seeds`, `failed_seeds` and a one-line `Display` listing
/// every counter with its label; the protocol writes `add`, which is where its report
/// maps onto the counters. Without failure counters, `failures` counts the failed seeds.
macro_rules! soak_summary {
    (
        $(#[$meta:meta])*
        pub struct $name:ident for $report:ty {
            sum { $( $(#[$smeta:meta])* $sum:ident : $slabel:literal ),* $(,)? }
            $( max { $( $(#[$mmeta:meta])* $max:ident : $mlabel:literal ),* $(,)? } )?
            failures { $( $(#[$fmeta:meta])* $fail:ident : $flabel:literal ),* $(,)? }
        }
        fn add(&mut $self:ident, $r:ident : &$rty:ty) $add:block
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            pub seeds: u64,
            $( $(#[$smeta])* pub $sum: u64, )*
            $($( $(#[$mmeta])* pub $max: u64, )*)?
            $( $(#[$fmeta])* pub $fail: u64, )*
            /// Failing seeds, in the order they were added.
            pub failed_seeds: Vec<u64>,
        }

        impl $crate::sim::soak::SoakTotals for $name {
            type Report = $report;

            fn add(&mut $self, $r: &$rty) $add

            fn merge(&mut self, other: &Self) {
                self.seeds += other.seeds;
                $( self.$sum += other.$sum; )*
                $($( self.$max = self.$max.max(other.$max); )*)?
                $( self.$fail += other.$fail; )*
                self.failed_seeds.extend_from_slice(&other.failed_seeds);
            }

            fn seeds(&self) -> u64 {
                self.seeds
            }

            fn failures(&self) -> u64 {
                $crate::sim::soak::soak_summary!(@failures self [$($fail)*])
            }

            fn failed_seeds(&self) -> &[u64] {
                &self.failed_seeds
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{} seeds", self.seeds)?;
                $( write!(f, ", {} {}", self.$sum, $slabel)?; )*
                $($( write!(f, ", {} {}", self.$max, $mlabel)?; )*)?
                $( write!(f, ", {} {}", self.$fail, $flabel)?; )*
                write!(
                    f,
                    ", {} failed seed{}",
                    self.failed_seeds.len(),
                    if self.failed_seeds.len() == 1 { "" } else { "s" }
                )
            }
        }
    };
    (@failures $s:ident []) => { $s.failed_seeds.len() as u64 };
    (@failures $s:ident [$($fail:ident)+]) => { 0 $(+ $s.$fail)+ };
}
pub(crate) use soak_summary;
