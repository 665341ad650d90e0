//! The settings labs share, declared once: every lab's seed and sampling interval
//! ([`LabSettings`]), and a cluster lab's network and fault script besides
//! ([`ClusterSettings`]).
//!
//! A lab's config is written with [`local_lab_config!`] or [`cluster_lab_config!`]: the lab
//! lists its own fields, each with its default, and the macro adds the shared ones with
//! their docs, defaults and bounds, the serde / JSON Schema / TypeScript derives,
//! `Default`, and the settings traits, through which the kit reads them (the sampling
//! interval; the fault script, with errors under `faults.`).
//!
//! Why a macro and not a nested struct: the JSON stays flat (`{nodes: 5, network: {…}}`,
//! as notebooks and share links already write it), and serde's `flatten` — the other way
//! to keep it flat — loses the path of a bad field inside the flattened part and every
//! lab's own default for it.

use crate::error::Result;
use crate::lab::sampling::SampleMs;
use crate::sim::workload::within;
use crate::sim::{FaultScript, NetworkConfig, Node, Sim, SimConfig};

/// What the kit reads from every lab's config.
pub trait LabSettings {
    /// Seed of every random choice in the run.
    fn seed(&self) -> u64;
    /// How often the metrics are sampled.
    fn sample_ms(&self) -> SampleMs;
}

/// What the kit reads from a cluster lab's config, besides [`LabSettings`].
pub trait ClusterSettings: LabSettings {
    /// Latency, loss, duplication and reordering at the start.
    fn network(&self) -> &NetworkConfig;
    /// Faults scheduled from the start.
    fn faults(&self) -> &FaultScript;

    /// A simulator config with this seed and network and `nodes` nodes; the rest is
    /// [`SimConfig::default`] for the lab to change.
    fn sim_config(&self, nodes: u32) -> SimConfig {
        SimConfig {
            seed: self.seed(),
            nodes,
            network: self.network().clone(),
            ..SimConfig::default()
        }
    }

    /// Schedules the config's fault script on `sim`; an error names its field under
    /// `faults.`.
    fn load_faults<N: Node>(&self, sim: &mut Sim<N>) -> Result<()> {
        sim.load_script(self.faults())
            .map_err(|e| within("faults", e))
    }
}

/// Declares a cluster lab's config: its own fields, each `pub name: Type = default,` with
/// its doc comment, then the shared settings (see the module docs). A lab whose shared
/// defaults differ names them after the struct: `defaults { faults: …, }`.
macro_rules! cluster_lab_config {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$field_meta:meta])* pub $field:ident : $ty:ty = $default:expr ),* $(,)?
        }
        $( defaults { $( $shared:ident : $shared_default:expr ),* $(,)? } )?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
        #[serde(rename_all = "camelCase", deny_unknown_fields, default)]
        #[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
        pub struct $name {
            /// Seed of every random choice in the run.
            pub seed: u64,
            $( $(#[$field_meta])* pub $field: $ty, )*
            /// Latency, loss, duplication and reordering at the start.
            pub network: $crate::sim::NetworkConfig,
            /// Faults scheduled from the start.
            pub faults: $crate::sim::FaultScript,
            /// How often the metrics are sampled, in simulated milliseconds.
            pub sample_ms: $crate::lab::sampling::SampleMs,
        }

        impl Default for $name {
            fn default() -> Self {
                #[allow(unused_mut)]
                let mut config = $name {
                    seed: 1,
                    $( $field: $default, )*
                    network: $crate::sim::NetworkConfig::default(),
                    faults: $crate::sim::FaultScript::default(),
                    sample_ms: $crate::lab::sampling::DEFAULT_SAMPLE_MS,
                };
                $( $( config.$shared = $shared_default; )* )?
                config
            }
        }

        impl $crate::lab::settings::LabSettings for $name {
            fn seed(&self) -> u64 {
                self.seed
            }
            fn sample_ms(&self) -> $crate::lab::sampling::SampleMs {
                self.sample_ms
            }
        }

        impl $crate::lab::settings::ClusterSettings for $name {
            fn network(&self) -> &$crate::sim::NetworkConfig {
                &self.network
            }
            fn faults(&self) -> &$crate::sim::FaultScript {
                &self.faults
            }
        }
    };
}
pub(crate) use cluster_lab_config;

/// Declares a local lab's config: its own fields, each `pub name: Type = default,` with
/// its doc comment, between the `seed` and `sampleMs` every lab has.
macro_rules! local_lab_config {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$field_meta:meta])* pub $field:ident : $ty:ty = $default:expr ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
        #[serde(rename_all = "camelCase", deny_unknown_fields, default)]
        #[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
        pub struct $name {
            /// Seed of every random choice in the run.
            pub seed: u64,
            $( $(#[$field_meta])* pub $field: $ty, )*
            /// How often the metrics are sampled, in simulated milliseconds.
            pub sample_ms: $crate::lab::sampling::SampleMs,
        }

        impl Default for $name {
            fn default() -> Self {
                $name {
                    seed: 1,
                    $( $field: $default, )*
                    sample_ms: $crate::lab::sampling::DEFAULT_SAMPLE_MS,
                }
            }
        }

        impl $crate::lab::settings::LabSettings for $name {
            fn seed(&self) -> u64 {
                self.seed
            }
            fn sample_ms(&self) -> $crate::lab::sampling::SampleMs {
                self.sample_ms
            }
        }
    };
}
pub(crate) use local_lab_config;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bounded::Count;
    use crate::lab::json;
    use crate::sim::{Fault, ScheduledFault};
    use serde_json::json;

    cluster_lab_config! {
        /// A config as a lab declares it.
        pub struct ExampleConfig {
            /// Number of nodes.
            pub nodes: Count<2, 9> = Count::of(3),
        }
        defaults {
            faults: FaultScript {
                faults: vec![ScheduledFault { at_us: 5, fault: Fault::Heal }],
            },
        }
    }

    local_lab_config! {
        /// A local lab's config.
        pub struct LocalExample {
            /// Items per second.
            pub rate: Count<1, 100> = Count::of(7),
        }
    }

    #[test]
    fn a_local_config_has_a_seed_and_a_sampling_interval() {
        let c: LocalExample = json::from_value("config", &json!({"rate": 9})).unwrap();
        assert_eq!((c.seed(), c.rate.get()), (1, 9));
        assert_eq!(c.sample_ms(), crate::lab::sampling::DEFAULT_SAMPLE_MS);
        let e = json::from_value::<LocalExample>("config", &json!({"sampleMs": 0}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("config.sampleMs"), "{e}");
        let e = json::from_value::<LocalExample>("config", &json!({"network": {}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `network`"), "{e}");
    }

    #[test]
    fn shared_fields_sit_beside_the_labs_own_with_their_defaults() {
        let c: ExampleConfig = json::from_value("config", &json!({"nodes": 4})).unwrap();
        assert_eq!(c.nodes.get(), 4);
        assert_eq!(c.seed, 1);
        assert_eq!(c.faults.faults.len(), 1, "the lab's own default script");
        let back = serde_json::to_value(&c).unwrap();
        for key in ["seed", "nodes", "network", "faults", "sampleMs"] {
            assert!(back.get(key).is_some(), "{key} in {back}");
        }
    }

    #[test]
    fn a_bad_shared_field_is_named_by_its_path() {
        let e = json::from_value::<ExampleConfig>("config", &json!({"network": {"loss": 2}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("config.network.loss"), "{e}");
        let e = json::from_value::<ExampleConfig>("config", &json!({"sampleMs": 0}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("config.sampleMs"), "{e}");
    }

    #[test]
    fn faults_load_with_their_field_named() {
        let c: ExampleConfig = json::from_value(
            "config",
            &json!({"faults": {"faults": [{"atUs": 1, "fault": {"type": "crash", "node": 7}}]}}),
        )
        .unwrap();
        let mut sim: Sim<crate::sim::pingpong::PingNode> = Sim::new(
            c.sim_config(c.nodes.get()),
            crate::sim::pingpong::PingConfig {
                interval: crate::time::Duration::from_millis(10),
                fanout: 1,
            },
        )
        .unwrap();
        let e = c.load_faults(&mut sim).unwrap_err().to_string();
        assert!(e.contains("`faults.faults[0].fault.node`"), "{e}");
    }
}
