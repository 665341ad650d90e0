//! The one interface the page and notebooks drive. A lab is created from its catalog id
//! and a JSON config (validated, with defaults and a JSON Schema the page builds a form
//! from), advanced with `step(dt)` or `step_events(n)`, poked with `act(action)`, observed
//! with `view()`, and rewound with `seek(k)`.
//!
//! This module holds only the interface, the catalog data and the view vocabulary; each
//! primitive's lab lives beside the primitive, and [`crate::registry`] maps ids to labs.

pub mod catalog;
pub mod cluster;
pub mod json;
pub mod lesson;
pub mod local;
pub mod runner;
pub mod sampling;
pub mod settings;
pub mod side_by_side;
pub mod view;

use serde_json::Value;

use crate::error::Result;
pub use crate::registry::{CatalogEntry, catalog, create_lab};
use crate::time::{Duration, Time};
pub use cluster::{Cluster, ClusterAction, ClusterLab};
pub use local::{ArrivalsAction, Driven, DrivenAction, DrivenLab, Local, LocalLab, Moment};
pub use runner::{LabModel, RecordedAction, Runner};
pub use sampling::{Sampled, Sampler};
pub use settings::{ClusterSettings, LabSettings};
pub use view::{FieldsOf, View};

/// A running lab, as the page and the npm package see it.
pub trait Lab {
    /// The catalog id.
    fn id(&self) -> &'static str;
    /// The effective config, defaults filled in.
    fn config(&self) -> Value;
    /// Advances simulated time by `dt`, processing every event due. Returns the number of
    /// events processed.
    fn step(&mut self, dt: Duration) -> Result<u64>;
    /// Processes up to `n` events. Returns how many there were.
    fn step_events(&mut self, n: u64) -> Result<u64>;
    /// Applies an action (a JSON object with a `type`). On error nothing changes.
    fn act(&mut self, action: &Value) -> Result<()>;
    fn view(&self) -> View;
    /// The view with only the `fields` of some nodes (see [`FieldsOf`]).
    fn view_fields_of(&self, fields: &FieldsOf) -> View {
        let mut v = self.view();
        fields.strip(&mut v);
        v
    }
    /// Goes to the state after `k` events (with the actions recorded up to there).
    /// Returns the step reached, less than `k` if the run ends earlier.
    fn seek(&mut self, k: u64) -> Result<u64>;
    fn steps(&self) -> u64;
    fn now(&self) -> Time;
    /// The trace: `{ hash, events, complete, trace: [...] }`.
    fn trace(&self) -> Value;
    /// The trace's events numbered `from` or later, at most the newest `max`, for a reader
    /// that already holds the older ones: `{ hash, events, first, complete, trace }` where
    /// `first` numbers the first event listed. A lab whose trace does not number its
    /// events (no `first`) returns the whole of [`Lab::trace`].
    fn trace_from(&self, from: u64, max: usize) -> Value;
    /// The actions applied so far, each with its step and time: with the config, all it
    /// takes to reproduce this run.
    fn actions(&self) -> Value;
    /// Adds recorded actions (as [`Lab::actions`] gives them) that come at or after this
    /// lab's present and after every action it already has; they apply as the run
    /// reaches their steps, exactly as in a replay. A replica of a run that goes on
    /// (the page's trace worker) so follows it without replaying from the start. On error
    /// nothing changes.
    fn extend_actions(&mut self, actions: &Value) -> Result<()>;
    /// JSON Schema of the config.
    fn config_schema(&self) -> Value;
    /// JSON Schema of the actions.
    fn action_schema(&self) -> Value;
    /// Typical actions (an array), for buttons, documentation and fuzzing.
    fn example_actions(&self) -> Value;
}
