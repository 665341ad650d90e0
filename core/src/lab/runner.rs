//! The runner that turns any [`LabModel`] into a [`Lab`]: it parses configs and actions,
//! records every action with the step and time it was applied at, keeps snapshots, and so
//! gives every lab `seek` (time travel) and exact replay for free.
//!
//! `seek(k)` restores the newest snapshot at or before step k and re-executes from there,
//! re-applying recorded actions at their steps; snapshots are thinned (every other one
//! dropped, interval doubled) so memory stays bounded on long runs.

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{DistlabError, Result};
use crate::lab::Lab;
use crate::lab::json::{config_from_value, from_value};
use crate::lab::view::{FieldsOf, View};
use crate::time::{Duration, Time};

/// The most events one call processes — `step`, `step_events`, a `seek` past the furthest
/// point the run has reached, the eager part of a replay — so that no call from a page or
/// a notebook cell runs for long: 200,000 events are about a second of the slowest lab
/// (Raft) in wasm. `step(dt)` stops there and returns (the clock where the last event
/// left it: call again to go on); `step_events(n)` and such a `seek` refuse more, saying
/// this limit. Seeks within the part of the run already reached replay from the nearest
/// saved state, whatever their distance.
pub const MAX_EVENTS_PER_CALL: u64 = 200_000;
const FIRST_SNAPSHOT_INTERVAL: u64 = 512;
const MAX_SNAPSHOTS: usize = 64;

/// A primitive's lab: its state, how it advances, how it is poked and how it looks.
/// Must be deterministic: the same config and the same actions at the same steps give
/// the same states.
pub trait LabModel: Clone + 'static {
    /// The catalog id.
    const ID: &'static str;
    type Config: Serialize + DeserializeOwned + Default + JsonSchema + Clone;
    type Action: Serialize + DeserializeOwned + JsonSchema + Clone;

    /// Builds the lab, validating the config (errors name the field).
    fn new(config: &Self::Config) -> Result<Self>;
    /// Processes the next event if it is due no later than `deadline`; false if none is.
    fn step_until(&mut self, deadline: Time) -> bool;
    /// Moves the clock forward to `t` (never back).
    fn advance_clock(&mut self, t: Time);
    fn now(&self) -> Time;
    /// Events processed so far.
    fn steps(&self) -> u64;
    /// Applies an action. On error the lab must be unchanged.
    fn act(&mut self, action: &Self::Action) -> Result<()>;
    fn view(&self) -> View;
    /// The view with only some nodes' fields. Labs whose node fields are costly build just
    /// those; by default the whole view is built and the rest stripped.
    fn view_fields_of(&self, fields: &FieldsOf) -> View {
        let mut v = self.view();
        fields.strip(&mut v);
        v
    }
    /// The trace as JSON.
    fn trace(&self) -> Value;
    /// The trace's events numbered `from` or later, at most `max` (see
    /// [`Lab::trace_from`]); by default the whole trace, without `first`.
    fn trace_from(&self, _from: u64, _max: usize) -> Value {
        self.trace()
    }
    /// Typical actions, for the page's buttons, documentation and fuzzing.
    fn example_actions() -> Vec<Self::Action> {
        Vec::new()
    }
    /// The guided lessons the lab carries, in the order to take them (none for most).
    fn lessons() -> Vec<crate::lab::lesson::Lesson> {
        Vec::new()
    }
}

/// An action as it was applied: after `step` events, at time `atUs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct RecordedAction<A> {
    pub step: u64,
    pub at_us: u64,
    /// The original run had moved the clock to `atUs` with `step(dt)` (not just by
    /// processing events), so a replay moves it too, even when no time passes: moving the
    /// clock can have effects of its own, such as a metric sample falling due.
    /// Always written: a value read back is compared key by key with its input.
    #[serde(default)]
    pub clock_moved: bool,
    pub action: A,
}

/// Names a field error's field as part of `what` (`nodes` → `config.nodes`), so every
/// error from a lab says which argument it is about.
fn within(what: &str, e: DistlabError) -> DistlabError {
    match e {
        DistlabError::InvalidField { field, problem }
            if field != what && !field.starts_with(&format!("{what}.")) =>
        {
            DistlabError::field(format!("{what}.{field}"), problem)
        }
        other => other,
    }
}

#[derive(Debug, Clone)]
struct Snapshot<M> {
    step: u64,
    applied: usize,
    model: M,
}

/// A [`LabModel`] with parsing, action recording, snapshots and seek.
#[derive(Debug, Clone)]
pub struct Runner<M: LabModel> {
    config: M::Config,
    model: M,
    actions: Vec<RecordedAction<M::Action>>,
    /// How many of `actions` the current state has seen.
    applied: usize,
    snapshots: Vec<Snapshot<M>>,
    snapshot_every: u64,
    /// The step count at which `step(dt)` last moved the clock past the events.
    clock_moved_at: Option<u64>,
}

impl<M: LabModel> Runner<M> {
    pub fn new(config: M::Config) -> Result<Self> {
        let model = M::new(&config).map_err(|e| within("config", e))?;
        Ok(Runner {
            snapshots: vec![Snapshot {
                step: 0,
                applied: 0,
                model: model.clone(),
            }],
            config,
            model,
            actions: Vec::new(),
            applied: 0,
            snapshot_every: FIRST_SNAPSHOT_INTERVAL,
            clock_moved_at: None,
        })
    }

    /// Builds a lab from a JSON config (`null` = defaults).
    pub fn from_json(config: &Value) -> Result<Self> {
        Self::new(config_from_value(config)?)
    }

    /// Builds a lab and replays a recorded action script (from [`Lab::actions`]) up to
    /// the last recorded step: the basis of shareable links.
    pub fn replay(config: M::Config, actions: Vec<RecordedAction<M::Action>>) -> Result<Self> {
        let mut r = Self::new(config)?;
        if actions
            .windows(2)
            .any(|w| (w[0].step, w[0].at_us) > (w[1].step, w[1].at_us))
        {
            return Err(DistlabError::field(
                "actions",
                "must be in order of step and time",
            ));
        }
        let last = actions.last().map_or(0, |a| a.step);
        r.actions = actions;
        // At most one call's work now: a later action applies when a seek reaches it.
        let eager = last.min(MAX_EVENTS_PER_CALL);
        r.run(Time::MAX, eager)?;
        let due = r.actions.iter().filter(|a| a.step <= eager).count();
        if r.applied < due {
            return Err(DistlabError::field(
                "actions",
                format!(
                    "only {} of {} actions could be replayed (the run ends at step {})",
                    r.applied,
                    r.actions.len(),
                    r.model.steps()
                ),
            ));
        }
        Ok(r)
    }

    pub fn model(&self) -> &M {
        &self.model
    }

    /// Applies recorded actions that belong at the current step and are not later than
    /// `deadline`.
    fn replay_due(&mut self, deadline: Time) -> Result<()> {
        while let Some(a) = self.actions.get(self.applied) {
            if a.step != self.model.steps() || Time(a.at_us) > deadline {
                break;
            }
            let a = a.clone();
            // Only a clock the original run moved is moved again: moving it, even to where
            // it already is, can have side effects such as sampling.
            if a.clock_moved || Time(a.at_us) > self.model.now() {
                // The original `step(dt)` went through every event due by then, also those
                // that do not count as steps (a stale timer, a message parked at a paused
                // node). They must be gone before the action, as they were: left queued,
                // they would run after it, and differently.
                if self.model.step_until(Time(a.at_us)) {
                    self.actions.truncate(self.applied);
                    return Err(DistlabError::InvalidState(format!(
                        "replaying the action at step {}: an event due by {} µs was not \
                         processed before it in the original run",
                        a.step, a.at_us
                    )));
                }
                self.model.advance_clock(Time(a.at_us));
                self.clock_moved_at = Some(self.model.steps());
            }
            if let Err(e) = self.model.act(&a.action) {
                // This action and those after it are not this run's future: they go, and
                // the run can go on from here.
                self.actions.truncate(self.applied);
                return Err(DistlabError::InvalidState(format!(
                    "replaying the action at step {}: {e}",
                    a.step
                )));
            }
            self.clock_moved_at = None;
            self.applied += 1;
        }
        Ok(())
    }

    fn run(&mut self, deadline: Time, max_events: u64) -> Result<u64> {
        let start = self.model.steps();
        loop {
            self.replay_due(deadline)?;
            if self.model.steps() - start >= max_events || !self.model.step_until(deadline) {
                break;
            }
            self.maybe_snapshot();
        }
        Ok(self.model.steps() - start)
    }

    fn maybe_snapshot(&mut self) {
        let step = self.model.steps();
        if !step.is_multiple_of(self.snapshot_every)
            || self.snapshots.last().is_some_and(|s| s.step >= step)
        {
            return;
        }
        if self.snapshots.len() >= MAX_SNAPSHOTS {
            let mut i = 0;
            self.snapshots.retain(|_| {
                i += 1;
                i % 2 == 1
            });
            self.snapshot_every *= 2;
            if !step.is_multiple_of(self.snapshot_every) {
                return;
            }
        }
        self.snapshots.push(Snapshot {
            step,
            applied: self.applied,
            model: self.model.clone(),
        });
    }
}

impl<M: LabModel> Lab for Runner<M> {
    fn id(&self) -> &'static str {
        M::ID
    }

    fn config(&self) -> Value {
        serde_json::to_value(&self.config).unwrap_or(Value::Null)
    }

    fn step(&mut self, dt: Duration) -> Result<u64> {
        let dt = dt.check("dt")?;
        let deadline = self.model.now() + dt;
        let n = self.run(deadline, MAX_EVENTS_PER_CALL)?;
        if n < MAX_EVENTS_PER_CALL {
            self.model.advance_clock(deadline);
            self.clock_moved_at = Some(self.model.steps());
            self.replay_due(deadline)?;
        }
        Ok(n)
    }

    fn step_events(&mut self, n: u64) -> Result<u64> {
        if n > MAX_EVENTS_PER_CALL {
            return Err(DistlabError::field(
                "n",
                format!("at most {MAX_EVENTS_PER_CALL} events per call, got {n}"),
            ));
        }
        self.run(Time::MAX, n)
    }

    fn act(&mut self, action: &Value) -> Result<()> {
        let action: M::Action = from_value("action", action)?;
        let mut next = self.model.clone();
        next.act(&action).map_err(|e| within("action", e))?;
        // A new action rewrites the future: recorded actions and snapshots past now go.
        let step = self.model.steps();
        self.actions.truncate(self.applied);
        self.snapshots.retain(|s| s.step <= step);
        self.actions.push(RecordedAction {
            step,
            at_us: self.model.now().0,
            clock_moved: self.clock_moved_at == Some(step),
            action,
        });
        self.applied += 1;
        self.model = next;
        // The action may have queued events due now: a next action at this step comes
        // after it, not after a `step(dt)` that went through them.
        self.clock_moved_at = None;
        Ok(())
    }

    fn view(&self) -> View {
        self.view_fields_of(&FieldsOf::All)
    }

    fn view_fields_of(&self, fields: &FieldsOf) -> View {
        let mut v = match fields {
            FieldsOf::All => self.model.view(),
            _ => self.model.view_fields_of(fields),
        };
        v.lab = M::ID.to_string();
        v.step = self.model.steps();
        v.time_us = self.model.now().0;
        v
    }

    fn seek(&mut self, k: u64) -> Result<u64> {
        let here = self.model.steps();
        let snap = self
            .snapshots
            .iter()
            .rev()
            .find(|s| s.step <= k)
            .ok_or_else(|| DistlabError::InvalidState("no snapshot to seek from".into()))?;
        // The furthest point reached: snapshots past the present survive a seek back.
        let frontier = here.max(self.snapshots.last().map_or(0, |s| s.step));
        if k > frontier.saturating_add(MAX_EVENTS_PER_CALL) {
            return Err(DistlabError::field(
                "k",
                format!(
                    "step {k} is {} events past the furthest step this run has reached \
                     ({frontier}); one call runs at most {MAX_EVENTS_PER_CALL} new events: \
                     seek in steps of at most that",
                    k - frontier
                ),
            ));
        }
        // Restore when going back, or when a saved state lies ahead of the present (a
        // scrub forward through a part already run).
        let back = k < here || (k == here && self.applied > 0);
        if back || snap.step > here {
            self.model = snap.model.clone();
            self.applied = snap.applied;
            self.clock_moved_at = None;
        }
        let need = k - self.model.steps();
        let mut done = 0;
        while done < need {
            let chunk = (need - done).min(MAX_EVENTS_PER_CALL);
            let n = self.run(Time::MAX, chunk)?;
            done += n;
            if n < chunk {
                break;
            }
        }
        if done == need {
            self.replay_due(Time::MAX)?;
        }
        Ok(self.model.steps())
    }

    fn steps(&self) -> u64 {
        self.model.steps()
    }

    fn now(&self) -> Time {
        self.model.now()
    }

    fn trace(&self) -> Value {
        self.model.trace()
    }

    fn trace_from(&self, from: u64, max: usize) -> Value {
        self.model.trace_from(from, max)
    }

    fn actions(&self) -> Value {
        serde_json::to_value(self.actions.get(..self.applied).unwrap_or_default())
            .unwrap_or(Value::Null)
    }

    fn extend_actions(&mut self, actions: &Value) -> Result<()> {
        let more: Vec<RecordedAction<M::Action>> = from_value("actions", actions)?;
        let here = (self.model.steps(), self.model.now().0);
        let after = self
            .actions
            .last()
            .map_or(here, |a| here.max((a.step, a.at_us)));
        let mut prev = after;
        for (i, a) in more.iter().enumerate() {
            if (a.step, a.at_us) < prev {
                return Err(DistlabError::field(
                    format!("actions[{i}]"),
                    format!(
                        "at step {} and {} µs comes before step {} and {} µs (this lab's \
                         present, or the action before it)",
                        a.step, a.at_us, prev.0, prev.1
                    ),
                ));
            }
            prev = (a.step, a.at_us);
        }
        self.actions.extend(more);
        Ok(())
    }

    fn config_schema(&self) -> Value {
        serde_json::to_value(schemars::schema_for!(M::Config)).unwrap_or(Value::Null)
    }

    fn action_schema(&self) -> Value {
        serde_json::to_value(schemars::schema_for!(M::Action)).unwrap_or(Value::Null)
    }

    fn example_actions(&self) -> Value {
        serde_json::to_value(M::example_actions()).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::MAX_EVENTS_PER_CALL;
    use crate::registry::{create_lab, replay_lab};
    use crate::time::Duration;

    fn field(e: crate::DistlabError) -> String {
        match e {
            crate::DistlabError::InvalidField { field, .. } => field,
            other => panic!("expected a field error, got {other}"),
        }
    }

    /// A page or a notebook cell asking for 2^32 of anything gets an answer at once.
    #[test]
    fn no_call_runs_more_than_the_limit_of_new_events() {
        let mut lab = create_lab("sim.network", &Value::Null).unwrap();
        let huge = 1u64 << 32;
        assert_eq!(field(lab.seek(huge).unwrap_err()), "k");
        assert_eq!(field(lab.step_events(huge).unwrap_err()), "n");
        assert_eq!(lab.steps(), 0, "refused calls change nothing");
        let n = lab.step(Duration::from_secs(1 << 20)).unwrap();
        assert_eq!(n, MAX_EVENTS_PER_CALL);
        assert_eq!(lab.steps(), MAX_EVENTS_PER_CALL);
        // Within reach of the furthest step so far: allowed.
        let k = 2 * MAX_EVENTS_PER_CALL;
        assert_eq!(lab.seek(k).unwrap(), k);
    }

    /// Back and forth over a part of the run already reached costs at most a snapshot's
    /// distance, so it is never refused, however far the jump.
    #[test]
    fn seeks_within_the_run_reached_go_anywhere() {
        let mut lab = create_lab("sim.network", &json!({"nodes": 3})).unwrap();
        let far = 5 * MAX_EVENTS_PER_CALL;
        while lab.steps() < far {
            lab.step(Duration::from_secs(3_600)).unwrap();
        }
        let end = (lab.steps(), lab.now(), lab.trace()["hash"].clone());
        assert_eq!(lab.seek(10).unwrap(), 10);
        assert_eq!(
            lab.seek(end.0).unwrap(),
            end.0,
            "forward over ground covered"
        );
        assert_eq!((lab.now(), lab.trace()["hash"].clone()), (end.1, end.2));
    }

    /// A shared link whose actions sit at step 2^32 replays one call's worth and leaves
    /// the rest to later seeks, instead of running four billion events.
    #[test]
    fn a_replay_with_a_far_action_does_one_calls_work() {
        let actions = json!([{"step": 1u64 << 32, "atUs": 0, "action": {"type": "heal"}}]);
        let lab = replay_lab("sim.network", &Value::Null, &actions).unwrap();
        assert_eq!(lab.steps(), MAX_EVENTS_PER_CALL);
        assert_eq!(
            lab.actions(),
            json!([]),
            "the far action is not applied yet"
        );
    }
}
