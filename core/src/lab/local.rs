//! The local lab shape: one primitive (a rate limiter, a cache, a sketch, a history being
//! checked...) driven by its own events, most often the arrivals of a workload. The kit
//! holds the clock, the step count and the metric sampler, and with [`super::Runner`] the
//! action log, seek and replay; the lab writes what happens at an event, its own actions,
//! its samples and its view.
//!
//! What a lab author writes: [`LocalLab`] and [`Sampled`]. Register the lab as
//! `Local<MyLab>` in [`crate::registry`].

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::Result;
use crate::lab::runner::LabModel;
use crate::lab::sampling::{SERIES_POINTS, Sampled, Sampler};
use crate::lab::settings::LabSettings;
use crate::lab::view::View;
use crate::time::{Duration, Time};

/// When something happens in a lab: the lab's clock and the number of events processed
/// before it (the step a recorded action or an event is numbered with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moment {
    pub now: Time,
    pub step: u64,
}

/// A local primitive's lab: what is particular to it, and nothing else.
pub trait LocalLab: Sampled + Clone + 'static {
    /// The catalog id.
    const ID: &'static str;
    /// Declared with [`crate::lab::settings::local_lab_config!`], which adds the seed and
    /// `sampleMs`.
    type Config: Serialize + DeserializeOwned + Default + JsonSchema + Clone + LabSettings;
    type Action: Serialize + DeserializeOwned + JsonSchema + Clone;
    /// Points kept per metric series.
    const SERIES_POINTS: usize = SERIES_POINTS;

    /// Builds the lab at time zero, validating the config (errors name the field).
    fn new(config: &Self::Config) -> Result<Self>;
    /// How often the metrics are sampled: the config's `sampleMs` unless the lab says
    /// otherwise.
    fn sample_every(config: &Self::Config) -> Result<Duration> {
        Ok(config.sample_ms().duration())
    }
    /// When the next event is due (`now` being the clock), if any.
    fn next_event_at(&self, now: Time) -> Option<Time>;
    /// Processes that event, due at `due`; `at.now` is the clock, moved up to `due`.
    fn on_event(&mut self, due: Time, at: Moment);
    /// Applies one of the lab's actions. On error the lab must be unchanged.
    fn act(&mut self, at: Moment, action: &Self::Action) -> Result<()>;
    /// Everything but the metrics, which the kit adds (`samples` has them, for panels
    /// that chart some of them).
    fn view(&self, at: Moment, samples: &Sampler<Self::Totals>) -> View;
    /// The trace as JSON: `{hash, events, complete, trace}` (`at.step` events so far).
    fn trace(&self, at: Moment) -> Value;
    /// Typical actions, for the page's buttons, documentation and fuzzing.
    fn example_actions() -> Vec<Self::Action> {
        Vec::new()
    }
    /// The guided lessons the lab carries, in the order to take them (none for most).
    fn lessons() -> Vec<crate::lab::lesson::Lesson> {
        Vec::new()
    }
}

/// A [`LocalLab`] with its clock, steps and sampler: a [`LabModel`].
#[derive(Debug, Clone)]
pub struct Local<L: LocalLab> {
    lab: L,
    now: Time,
    steps: u64,
    sampler: Sampler<L::Totals>,
}

impl<L: LocalLab> Local<L> {
    /// The lab inside, for tests and drivers that read its state.
    pub fn lab(&self) -> &L {
        &self.lab
    }

    fn moment(&self) -> Moment {
        Moment {
            now: self.now,
            step: self.steps,
        }
    }
}

/// The lab inside, for tests and drivers that read its state.
impl<L: LocalLab> std::ops::Deref for Local<L> {
    type Target = L;
    fn deref(&self) -> &L {
        &self.lab
    }
}

/// The lab inside, for tests that set up a state by hand (a driver goes through
/// [`super::Lab`], which records what it does).
impl<L: LocalLab> std::ops::DerefMut for Local<L> {
    fn deref_mut(&mut self) -> &mut L {
        &mut self.lab
    }
}

impl<L: LocalLab> LabModel for Local<L> {
    const ID: &'static str = L::ID;
    type Config = L::Config;
    type Action = L::Action;

    fn new(config: &L::Config) -> Result<Self> {
        let lab = L::new(config)?;
        let sampler = Sampler::new(&lab, L::sample_every(config)?, L::SERIES_POINTS);
        Ok(Local {
            lab,
            now: Time::ZERO,
            steps: 0,
            sampler,
        })
    }

    fn step_until(&mut self, deadline: Time) -> bool {
        let Some(due) = self.lab.next_event_at(self.now) else {
            return false;
        };
        if due > deadline {
            return false;
        }
        // Samples describe everything before their time.
        self.sampler
            .record_due(&self.lab, Time(due.0.saturating_sub(1)));
        self.now = self.now.max(due);
        let at = self.moment();
        self.lab.on_event(due, at);
        self.steps += 1;
        true
    }

    fn advance_clock(&mut self, t: Time) {
        self.sampler.record_due(&self.lab, t);
        self.now = self.now.max(t);
    }

    fn now(&self) -> Time {
        self.now
    }

    fn steps(&self) -> u64 {
        self.steps
    }

    fn act(&mut self, action: &L::Action) -> Result<()> {
        let at = self.moment();
        self.lab.act(at, action)
    }

    fn view(&self) -> View {
        let mut view = self.lab.view(self.moment(), &self.sampler);
        view.metrics = self.sampler.series();
        view
    }

    fn trace(&self) -> Value {
        self.lab.trace(self.moment())
    }

    fn example_actions() -> Vec<L::Action> {
        L::example_actions()
    }

    fn lessons() -> Vec<crate::lab::lesson::Lesson> {
        L::lessons()
    }
}
