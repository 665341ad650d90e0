//! The local lab shape: one primitive (a rate limiter, a cache, a sketch, a history being
//! checked...) driven by its own events, most often the arrivals of a workload. The kit
//! holds the clock, the step count and the metric sampler, and with [`super::Runner`] the
//! action log, seek and replay; the lab writes what happens at an event, its own actions,
//! its samples and its view.
//!
//! What a lab author writes: [`LocalLab`] and [`Sampled`]. Register the lab as
//! `Local<MyLab>` in [`crate::registry`].
//!
//! A lab driven by a workload's arrivals (a request reaching a limiter, a key reaching a
//! sketch) also writes [`DrivenLab`] — which arrival process its config names and what
//! happens on one arrival — and is registered as `Driven<MyLab>`: the kit then owns the
//! arrival feed, its `setArrivals` action, and the order of events (at equal times the
//! lab's own events go before the arrival, so a timeout due at `t` fires first).

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use std::borrow::Cow;

use crate::error::Result;
use crate::lab::json;
use crate::lab::runner::LabModel;
use crate::lab::sampling::{SERIES_POINTS, Sampled, Sampler};
use crate::lab::settings::LabSettings;
use crate::lab::view::View;
use crate::sim::workload::{ArrivalFeed, ArrivalProcess};
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
    /// When the lab's next event of its own is due (`now` being the clock), if any. A
    /// [`DrivenLab`] whose only events are its arrivals has none.
    fn next_event_at(&self, _now: Time) -> Option<Time> {
        None
    }
    /// Processes that event, due at `due`; `at.now` is the clock, moved up to `due`.
    fn on_event(&mut self, _due: Time, _at: Moment) {}
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
    /// The workload's arrivals, in a [`Driven`] lab.
    feed: Option<ArrivalFeed>,
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

    fn build(config: &L::Config, feed: Option<ArrivalFeed>) -> Result<Self> {
        let lab = L::new(config)?;
        let sampler = Sampler::new(&lab, L::sample_every(config)?, L::SERIES_POINTS);
        Ok(Local {
            lab,
            now: Time::ZERO,
            steps: 0,
            sampler,
            feed,
        })
    }

    /// Processes the next event due by `deadline`: the lab's own, or else (later, or at
    /// the same time but after it) the feed's next arrival, handed to `on_arrival`.
    fn step_with(&mut self, deadline: Time, on_arrival: fn(&mut L, Moment)) -> bool {
        let own = self.lab.next_event_at(self.now);
        let arrival = self.feed.as_ref().map(ArrivalFeed::next_at);
        let due = match (own, arrival) {
            (Some(o), Some(a)) => o.min(a),
            (o, a) => match o.or(a) {
                Some(due) => due,
                None => return false,
            },
        };
        if due > deadline {
            return false;
        }
        // Samples describe everything before their time.
        self.sampler
            .record_due(&self.lab, Time(due.0.saturating_sub(1)));
        self.now = self.now.max(due);
        let at = self.moment();
        if own.is_some_and(|o| o <= due) {
            self.lab.on_event(due, at);
        } else if let Some(feed) = &mut self.feed {
            feed.take();
            on_arrival(&mut self.lab, at);
        }
        self.steps += 1;
        true
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
        Self::build(config, None)
    }

    fn step_until(&mut self, deadline: Time) -> bool {
        self.step_with(deadline, |_, _| {})
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

/// A local lab driven by a workload's arrivals, which the kit feeds it ([`Driven`]).
pub trait DrivenLab: LocalLab {
    /// The arrival process the config names (its `arrivals` field, most often).
    fn arrivals(config: &Self::Config) -> &ArrivalProcess;
    /// One arrival, at `at.now`.
    fn on_arrival(&mut self, at: Moment);
    /// Arrival processes worth trying, for the page's `setArrivals` buttons.
    fn example_arrivals() -> Vec<ArrivalProcess> {
        vec![ArrivalProcess::Poisson {
            rate_per_sec: 500.0,
        }]
    }
}

/// A [`DrivenLab`] with the kit's clock, steps, sampler and arrival feed: a [`LabModel`]
/// whose actions are the lab's own and `setArrivals`.
#[derive(Debug, Clone)]
pub struct Driven<L: DrivenLab>(Local<L>);

impl<L: DrivenLab> Driven<L> {
    /// The arrival process in force.
    pub fn arrivals(&self) -> Option<&ArrivalProcess> {
        self.0.feed.as_ref().map(ArrivalFeed::process)
    }
}

/// The lab inside, for tests and drivers that read its state.
impl<L: DrivenLab> std::ops::Deref for Driven<L> {
    type Target = L;
    fn deref(&self) -> &L {
        &self.0.lab
    }
}

/// The lab inside, for tests that set up a state by hand.
impl<L: DrivenLab> std::ops::DerefMut for Driven<L> {
    fn deref_mut(&mut self) -> &mut L {
        &mut self.0.lab
    }
}

/// The kit's own action on a driven lab. JSON: `{"type": "setArrivals", "arrivals":
/// {"type": "poisson", "ratePerSec": 500}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum ArrivalsAction {
    /// Arrivals follow `arrivals` from now on.
    SetArrivals { arrivals: ArrivalProcess },
}

/// A driven lab's action: the kit's [`ArrivalsAction`] or one of the lab's own `A`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum DrivenAction<A> {
    Arrivals(ArrivalsAction),
    Lab(A),
}

impl<'de, A: DeserializeOwned + Serialize> Deserialize<'de> for DrivenAction<A> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        if v.get("type").and_then(Value::as_str) == Some("setArrivals") {
            json::parse_within(&v).map(DrivenAction::Arrivals)
        } else {
            json::parse_within(&v).map(DrivenAction::Lab)
        }
    }
}

impl<A: JsonSchema> JsonSchema for DrivenAction<A> {
    fn schema_name() -> Cow<'static, str> {
        format!("DrivenAction_{}", A::schema_name()).into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let arrivals = generator.subschema_for::<ArrivalsAction>();
        let lab = generator.subschema_for::<A>();
        json_schema!({ "anyOf": [arrivals, lab] })
    }
}

impl<L: DrivenLab> LabModel for Driven<L> {
    const ID: &'static str = L::ID;
    type Config = L::Config;
    type Action = DrivenAction<L::Action>;

    fn new(config: &L::Config) -> Result<Self> {
        // The feed draws from the run's seed, as every lab's randomness does.
        let feed = ArrivalFeed::new(config.seed(), L::arrivals(config), Time::ZERO)?;
        Local::build(config, Some(feed)).map(Driven)
    }

    fn step_until(&mut self, deadline: Time) -> bool {
        self.0.step_with(deadline, L::on_arrival)
    }

    fn advance_clock(&mut self, t: Time) {
        self.0.advance_clock(t)
    }

    fn now(&self) -> Time {
        self.0.now
    }

    fn steps(&self) -> u64 {
        self.0.steps
    }

    fn act(&mut self, action: &Self::Action) -> Result<()> {
        match action {
            DrivenAction::Lab(a) => self.0.act(a),
            DrivenAction::Arrivals(ArrivalsAction::SetArrivals { arrivals }) => {
                let now = self.0.now;
                match &mut self.0.feed {
                    Some(feed) => feed.set_process(arrivals, now),
                    None => Ok(()),
                }
            }
        }
    }

    /// The lab's view, with the arrival process in force among the primitive's (the
    /// first node's) fields.
    fn view(&self) -> View {
        let mut view = self.0.view();
        if let (Some(node), Some(process)) = (view.nodes.first_mut(), self.arrivals()) {
            node.fields
                .insert("arrivals".into(), serde_json::json!(process));
        }
        view
    }

    fn trace(&self) -> Value {
        self.0.trace()
    }

    fn example_actions() -> Vec<Self::Action> {
        let own = L::example_actions().into_iter().map(DrivenAction::Lab);
        let arrivals = L::example_arrivals()
            .into_iter()
            .map(|arrivals| DrivenAction::Arrivals(ArrivalsAction::SetArrivals { arrivals }));
        own.chain(arrivals).collect()
    }

    fn lessons() -> Vec<crate::lab::lesson::Lesson> {
        L::lessons()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::settings::local_lab_config;
    use crate::lab::view::NodeView;
    use crate::lab::{Lab, Runner};
    use serde_json::json;

    local_lab_config! {
        /// A clock ticking every second beside a workload.
        pub struct TickConfig {
            pub arrivals: ArrivalProcess = ArrivalProcess::Constant { rate_per_sec: 1.0 },
        }
    }

    /// What happened, in order: the lab's own ticks at whole seconds and arrivals.
    #[derive(Debug, Clone, Default)]
    struct Tick {
        next_tick: Time,
        log: Vec<(&'static str, Time)>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
    enum TickAction {
        Note {},
    }

    impl Sampled for Tick {
        type Totals = ();
        fn series(&self) -> Vec<(String, String)> {
            vec![("events".into(), "events".into())]
        }
        fn totals(&self) {}
        fn sample(&self, _at: Time, _interval: Duration, _since: &()) -> Vec<f64> {
            vec![self.log.len() as f64]
        }
    }

    impl LocalLab for Tick {
        const ID: &'static str = "test.tick";
        type Config = TickConfig;
        type Action = TickAction;
        fn new(_config: &TickConfig) -> Result<Self> {
            Ok(Tick {
                next_tick: Time::from_millis(1_000),
                log: Vec::new(),
            })
        }
        fn next_event_at(&self, _now: Time) -> Option<Time> {
            Some(self.next_tick)
        }
        fn on_event(&mut self, due: Time, _at: Moment) {
            self.log.push(("tick", due));
            self.next_tick = due.saturating_add(Duration::from_millis(1_000));
        }
        fn act(&mut self, at: Moment, _action: &TickAction) -> Result<()> {
            self.log.push(("note", at.now));
            Ok(())
        }
        fn view(&self, _at: Moment, _samples: &Sampler<()>) -> View {
            View {
                nodes: vec![NodeView {
                    id: 0,
                    label: "tick".into(),
                    role: "clock".into(),
                    status: "up".into(),
                    fields: Default::default(),
                    group: None,
                }],
                ..View::default()
            }
        }
        fn trace(&self, _at: Moment) -> Value {
            json!(self.log.len())
        }
    }

    impl DrivenLab for Tick {
        fn arrivals(config: &TickConfig) -> &ArrivalProcess {
            &config.arrivals
        }
        fn on_arrival(&mut self, at: Moment) {
            self.log.push(("arrival", at.now));
        }
    }

    #[test]
    fn the_labs_own_event_goes_before_an_arrival_at_the_same_time() {
        let mut lab = Runner::<Driven<Tick>>::new(TickConfig::default()).unwrap();
        lab.step(Duration::from_millis(2_000)).unwrap();
        let second = Time::from_millis(1_000);
        let at_one_second: Vec<_> = lab.model().log.iter().filter(|e| e.1 == second).collect();
        assert_eq!(at_one_second, [&("tick", second), &("arrival", second)]);
        // Constant arrivals start at time zero: one there, then a tick and an arrival at
        // each whole second.
        assert_eq!(lab.steps(), 5);
    }

    #[test]
    fn set_arrivals_is_the_kits_and_a_bad_one_changes_nothing() {
        let mut lab = Runner::<Driven<Tick>>::new(TickConfig::default()).unwrap();
        lab.act(&json!({"type": "note"})).unwrap();
        lab.act(
            &json!({"type": "setArrivals", "arrivals": {"type": "constant", "ratePerSec": 10}}),
        )
        .unwrap();
        lab.step(Duration::from_millis(999)).unwrap();
        let arrivals = lab.model().log.iter().filter(|e| e.0 == "arrival").count();
        assert_eq!(arrivals, 10, "{:?}", lab.model().log);
        assert_eq!(
            lab.view().nodes[0].fields["arrivals"],
            json!({"type": "constant", "ratePerSec": 10.0})
        );
        for (bad, field) in [
            (
                json!({"type": "setArrivals", "arrivals": {"type": "constant", "ratePerSec": -1}}),
                "arrivals.ratePerSec",
            ),
            (
                json!({"type": "setArrivals", "arrivals": {"type": "constant", "ratePerSec": 1}, "x": 1}),
                "action.x",
            ),
            (json!({"type": "note", "x": 1}), "action.x"),
        ] {
            let e = lab.act(&bad).unwrap_err().to_string();
            assert!(e.contains(field), "{bad}: {e}");
        }
        // Nothing changed: still ten a second.
        let before = lab.model().log.len();
        lab.step(Duration::from_millis(1_000)).unwrap();
        let after: Vec<_> = lab.model().log[before..].iter().map(|e| e.0).collect();
        assert_eq!(
            after.iter().filter(|k| **k == "arrival").count(),
            10,
            "{after:?}"
        );
        assert_eq!(lab.actions().as_array().map(Vec::len), Some(2));
    }
}
