//! Lessons: a lab may carry guided tours of itself. A lesson is data — a config to start
//! from and ordered steps, each a caption, the actions to take, and when to pause (after
//! some simulated time, or once a condition on the view holds) — so the page, a notebook
//! and a test play it the same way, and every step ends at the same step and time for
//! everyone: that is what lets a share link reopen a step exactly.
//!
//! Playing a step is deterministic whatever slices the driver advances it in: a
//! condition is checked at fixed points of simulated time from the step's start (every
//! [`CHECK_EVERY_MS`]), never "whenever the page happened to look".

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{DistlabError, Result};
use crate::lab::Lab;
use crate::lab::view::View;
use crate::time::{Duration, Time};

/// How often a pause condition is checked, in simulated ms from the step's start.
pub const CHECK_EVERY_MS: u64 = 1;

/// A guided tour of one lab.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct Lesson {
    /// Unique within its lab; the page's links name it.
    pub id: String,
    pub title: String,
    /// The paper (and section) the lesson follows.
    pub follows: String,
    /// The config the lesson starts from (`null`: the lab's defaults).
    #[cfg_attr(feature = "tsify", tsify(type = "unknown"))]
    pub config: Value,
    pub steps: Vec<LessonStep>,
}

/// One step: what to read, what to do, and when to stop and read the next.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct LessonStep {
    /// A few sentences, shown while the step plays and once it paused.
    pub caption: String,
    /// Actions applied when the step starts, in order (the lab's own JSON actions).
    #[cfg_attr(feature = "tsify", tsify(type = "unknown[]"))]
    pub actions: Vec<Value>,
    pub pause: Pause,
}

/// When a step stops playing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum Pause {
    /// After `ms` of simulated time.
    After { ms: f64 },
    /// As soon as `condition` holds on the view, checked every [`CHECK_EVERY_MS`] from
    /// the step's start; after `within_ms` at the latest.
    When {
        condition: Condition,
        within_ms: f64,
    },
}

/// Something that holds, or not, of a view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum Condition {
    /// At least `at_least` nodes that are up have role `role` ("a leader exists").
    Role { role: String, at_least: u32 },
    /// Node `node` (by id) is up with role `role`.
    NodeRole { node: u32, role: String },
    /// Some node's numeric field `field` is at least `value` ("a term reached 2").
    FieldAtLeast { field: String, value: f64 },
    /// The invariant whose name starts with `name` is violated.
    Violated { name: String },
}

impl Condition {
    /// Whether the condition holds of `view` (which must carry every node's fields).
    pub fn holds(&self, view: &View) -> bool {
        let up = || view.nodes.iter().filter(|n| n.status == "up");
        let number = |n: &crate::lab::view::NodeView, field: &str| {
            n.fields.get(field).and_then(Value::as_f64)
        };
        match self {
            Condition::Role { role, at_least } => {
                up().filter(|n| &n.role == role).count() >= *at_least as usize
            }
            Condition::NodeRole { node, role } => up().any(|n| n.id == *node && &n.role == role),
            Condition::FieldAtLeast { field, value } => {
                up().any(|n| number(n, field).is_some_and(|v| v >= *value))
            }
            Condition::Violated { name } => view
                .invariants
                .iter()
                .any(|i| !i.ok && i.name.starts_with(name.as_str())),
        }
    }
}

/// How long a lesson step usually waits for its condition, simulated ms.
pub const WITHIN_MS: f64 = 5_000.0;

/// A step: its caption, the actions it takes when it starts, and when it pauses.
pub fn step(caption: &str, actions: Vec<Value>, pause: Pause) -> LessonStep {
    LessonStep {
        caption: caption.to_string(),
        actions,
        pause,
    }
}

/// Pause once `condition` holds, within [`WITHIN_MS`].
pub fn when(condition: Condition) -> Pause {
    Pause::When {
        condition,
        within_ms: WITHIN_MS,
    }
}

impl Pause {
    /// The longest a step may play, µs.
    fn limit_us(&self, field: &str) -> Result<u64> {
        let ms = match self {
            Pause::After { ms } => *ms,
            Pause::When { within_ms, .. } => *within_ms,
        };
        Ok(Duration::try_from_millis_f64(field, ms)?.0)
    }
}

/// Plays a step that started at `started` for at most `budget` of simulated time: to its
/// pause, or as far as the budget reaches. Returns whether the step reached its pause
/// (then the lab stands exactly there, however the step was sliced).
pub fn advance(lab: &mut dyn Lab, pause: &Pause, started: Time, budget: Duration) -> Result<bool> {
    let end = started.0.saturating_add(pause.limit_us("pause")?);
    let stop = lab.now().0.saturating_add(budget.0).min(end);
    let Pause::When { condition, .. } = pause else {
        go_to(lab, stop)?;
        return Ok(lab.now().0 >= end);
    };
    let every = CHECK_EVERY_MS * 1_000;
    loop {
        let now = lab.now().0;
        // The next check point at or after now.
        let since = now.saturating_sub(started.0);
        let point = started.0 + since.div_ceil(every) * every;
        let point = point.min(end);
        if point > stop {
            go_to(lab, stop)?;
            return Ok(false);
        }
        go_to(lab, point)?;
        if lab.now().0 < point {
            // The run hit the per-call event limit: the caller comes back.
            return Ok(false);
        }
        if point >= end || condition.holds(&lab.view()) {
            return Ok(true);
        }
        if point == stop {
            return Ok(false);
        }
        // Past this check point, to the next.
        go_to(lab, point + 1)?;
    }
}

fn go_to(lab: &mut dyn Lab, t: u64) -> Result<()> {
    let now = lab.now().0;
    if t > now {
        lab.step(Duration(t - now))?;
    }
    Ok(())
}

/// Plays `lesson` from a fresh lab built by `open` (given the lesson's config) to its
/// end, applying each step's actions and playing it to its pause. Returns, per step,
/// whether a `When` step's condition held (rather than its time running out). For tests
/// and notebooks; the page plays steps a frame at a time with [`advance`].
pub fn play_through(
    lesson: &Lesson,
    open: impl FnOnce(&Value) -> Result<Box<dyn Lab>>,
) -> Result<(Box<dyn Lab>, Vec<bool>)> {
    let mut lab = open(&lesson.config)?;
    let mut held = Vec::new();
    for (i, step) in lesson.steps.iter().enumerate() {
        for a in &step.actions {
            lab.act(a)
                .map_err(|e| DistlabError::field(format!("steps[{i}].actions"), e.to_string()))?;
        }
        let started = lab.now();
        while !advance(
            lab.as_mut(),
            &step.pause,
            started,
            Duration::from_secs(3_600),
        )? {}
        held.push(match &step.pause {
            Pause::After { .. } => true,
            Pause::When { condition, .. } => condition.holds(&lab.view()),
        });
    }
    Ok((lab, held))
}
