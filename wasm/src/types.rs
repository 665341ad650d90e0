//! The TypeScript names that tie the generic lab API to the generated shapes: every
//! config, action and view type is derived from the core's serde types by `tsify` (core
//! feature `tsify`), and which config and action belong to which lab id comes from the
//! core's one list of labs (`distlab_core::registry::LAB_TYPES_TS`).

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TS_LAB_TYPES: &str = distlab_core::registry::LAB_TYPES_TS;

#[wasm_bindgen(typescript_custom_section)]
const TS_BOUNDED_TYPES: &str = distlab_core::bounded::TYPESCRIPT;

#[wasm_bindgen(typescript_custom_section)]
const TS_LAB_API_TYPES: &str = r#"
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

#[cfg(test)]
mod tests {
    /// The lab ids the generated map names, in order.
    fn typed_ids() -> Vec<&'static str> {
        distlab_core::registry::LAB_TYPES_TS
            .lines()
            .filter_map(|l| l.trim().strip_prefix('"')?.split('"').next())
            .collect()
    }

    #[test]
    fn every_registered_lab_has_typescript_types() {
        let registered: Vec<&str> = distlab_core::registry::registered()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(typed_ids(), registered);
    }
}
