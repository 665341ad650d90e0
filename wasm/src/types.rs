//! The TypeScript names that tie the generic lab API to the generated shapes: every
//! config, action and view type is derived from the core's serde types by `tsify` (core
//! feature `tsify`); this file only says which config and action belong to which lab id.
//! A native test checks that it names exactly the registered labs.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TS_LAB_TYPES: &str = LAB_TYPES;

// Read by the test below; the wasm-bindgen attribute above consumes it unseen by rustc.
#[allow(dead_code)]
const LAB_TYPES: &str = r#"
/** Each implemented lab's config and action types, by catalog id. */
export interface LabTypes {
    "sim.network": { config: NetworkLabConfig; action: ClusterAction<NetworkLabAction> };
    "consensus.raft": { config: RaftLabConfig; action: ClusterAction<RaftLabAction> };
    "scenario.disruptive-rejoin": { config: RejoinLabConfig; action: ClusterAction<RejoinLabAction> };
    "sim.workload": { config: WorkloadLabConfig; action: WorkloadLabAction };
    "sim.linearizability": { config: LinearizabilityLabConfig; action: LinearizabilityLabAction };
    "ratelimit.token-bucket": { config: TokenBucketLabConfig; action: TokenBucketLabAction };
    "ratelimit.distributed": { config: DistributedLabConfig; action: ClusterAction<DistributedLabAction> };
    "ratelimit.fixed-window": { config: CompareLabConfig; action: CompareLabAction };
    "ratelimit.sliding-log": { config: CompareLabConfig; action: CompareLabAction };
    "ratelimit.sliding-counter": { config: CompareLabConfig; action: CompareLabAction };
    "ratelimit.leaky-bucket": { config: CompareLabConfig; action: CompareLabAction };
    "ratelimit.keyed": { config: CompareLabConfig; action: CompareLabAction };
}
/** The id of a lab that `createLab` can build. */
export type LabId = keyof LabTypes;
/** A config of any lab; every field is optional (defaults fill the rest). */
export type LabConfig = LabTypes[LabId]["config"];
/** An action of any lab: a simulator fault or the lab's own. */
export type LabAction = LabTypes[LabId]["action"];
/** Options of `Lab.view`. */
export interface ViewOptions {
    /** Only these nodes keep their `fields` (the others get an empty object). */
    fieldsOf?: number[];
}
/** A JSON Schema document (draft 2020-12), as schemars writes it. */
export type JsonSchema = { [key: string]: unknown };
"#;

/// The lab ids `LAB_TYPES` names, in order.
#[cfg(test)]
fn typed_ids() -> Vec<&'static str> {
    LAB_TYPES
        .lines()
        .filter_map(|l| l.trim().strip_prefix('"')?.split('"').next())
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_registered_lab_has_typescript_types() {
        let mut registered: Vec<&str> = distlab_core::registry::registered()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        registered.sort();
        let mut typed = super::typed_ids();
        typed.sort();
        assert_eq!(
            typed, registered,
            "wasm/src/types.rs must name each registered lab's config and action types"
        );
    }
}
