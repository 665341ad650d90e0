//! Lab `consistency.id-gen`: four Snowflake generators ([`super::id_gen`]) side by side,
//! one per clock policy — naive, refuse, wait, borrow — reading one wall clock and asked
//! for the same ids. The clock steps back by `backwardStepMs` at `stepAtMs` (and by hand:
//! `stepClock`), which is when they part: the naive generator's ids go backwards and
//! repeat ids it gave before, `refuse` turns requests away until the clock is back,
//! `wait` holds them until then, `borrow` keeps counting from its last timestamp. A
//! request for `batch` ids at once beyond 4,096 in one millisecond spends the sequence:
//! the generators wait for the next millisecond, or borrow it.
//!
//! Invariants: each policy that claims it gives strictly increasing ids; the naive one is
//! shown against the same check (it claims nothing, and fails after a step). Repeats are
//! counted against the ids each generator issued, kept as ranges (the newest
//! [`REMEMBERED_RANGES`]). Ids are taken in runs ([`Snowflake::next_run`]: one timestamp,
//! consecutive sequence numbers), so a step costs O(runs), not O(ids).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::hash::Hasher;

use crate::bounded::{Count, Millis};
use crate::consistency::id_gen::{
    ClockPolicy, DISCORD_EPOCH_MS, IssuedRun, Snowflake, SnowflakeConfig, decode,
};
use crate::error::{DistlabError, Result};
use crate::lab::local::{DrivenLab, LocalLab, Moment};
use crate::lab::sampling::{Sampled, Sampler, per_second};
use crate::lab::settings::local_lab_config;
use crate::lab::view::{InvariantStatus, NodeView, Panel, View};
use crate::sim::trace::StableHasher;
use crate::sim::workload::ArrivalProcess;
use crate::time::{Duration, Time};

/// Ranges of issued ids remembered per generator to count repeats (the newest).
pub const REMEMBERED_RANGES: usize = 4_096;
/// Runs of ids shown per generator.
const SHOWN_RUNS: usize = 8;
/// Trace entries kept (the newest).
const TRACE_KEPT: usize = 2_000;
/// The most ids one request may ask for.
pub const MAX_BATCH: u32 = 20_000;
/// The longest clock step, ms.
pub const MAX_STEP_MS: u32 = 3_600_000;
/// Where the wall clock starts: 2026-01-01T00:00:00Z, Unix ms.
const CLOCK_START_MS: u64 = 1_767_225_600_000;

local_lab_config! {
    /// Configuration of the Snowflake lab.
    pub struct IdGenLabConfig {
        /// When a request for ids arrives (each generator is asked for the same ids).
        pub arrivals: ArrivalProcess = ArrivalProcess::Constant { rate_per_sec: 200.0 },
        /// Ids each request asks for; above 4,096 the sequence runs out within a ms.
        pub batch: Count<1, { MAX_BATCH }> = Count::of(1),
        /// When the wall clock steps back, in lab time.
        pub step_at_ms: Millis<0, 3_600_000> = Millis::of(2_000),
        /// How far it steps back (0: never).
        pub backward_step_ms: Count<0, { MAX_STEP_MS }> = Count::of(500),
        /// The node id every generator stamps (0 to 1,023).
        pub node_id: Count<0, 1_023> = Count::of(1),
    }
}

/// What can be done. JSON: `{"type": "stepClock", "backMs": 300}`,
/// `{"type": "stepClock", "forwardMs": 50}`, `{"type": "request", "count": 5000}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum IdGenLabAction {
    /// Steps the wall clock back by `backMs` and then forward by `forwardMs` (each 0 if
    /// left out).
    StepClock {
        back_ms: Option<Count<0, { MAX_STEP_MS }>>,
        forward_ms: Option<Count<0, { MAX_STEP_MS }>>,
    },
    /// Asks every generator for `count` ids now.
    Request { count: Count<1, { MAX_BATCH }> },
}

/// One generator and what became of its requests.
#[derive(Debug, Clone)]
struct Lane {
    generator: Snowflake,
    last: Option<u64>,
    issued: u64,
    /// Ids below the one before.
    backwards: u64,
    /// Ids issued before (among the remembered ranges).
    repeats: u64,
    refused: u64,
    /// Ids asked for and not yet given, held until the clock reads `waiting_until` (a
    /// step back under `wait`, a spent sequence).
    pending: u64,
    waiting_until: Option<u64>,
    /// The first id that did not increase: (previous, id).
    first_backwards: Option<(u64, u64)>,
    /// The ids issued, as disjoint ranges `start → end` (inclusive), the newest
    /// [`REMEMBERED_RANGES`].
    issued_ranges: BTreeMap<u64, u64>,
    /// The newest runs: (first id, count).
    shown: VecDeque<(u64, u32)>,
}

impl Lane {
    fn new(config: SnowflakeConfig) -> Result<Self> {
        Ok(Lane {
            generator: Snowflake::new(config)?,
            last: None,
            issued: 0,
            backwards: 0,
            repeats: 0,
            refused: 0,
            pending: 0,
            waiting_until: None,
            first_backwards: None,
            issued_ranges: BTreeMap::new(),
            shown: VecDeque::new(),
        })
    }

    fn policy(&self) -> ClockPolicy {
        self.generator.config().on_clock_backwards
    }

    /// Takes in the run `first ..= end`: counts how it orders and repeats.
    fn take(&mut self, first: u64, count: u32) {
        let end = first + u64::from(count) - 1;
        self.issued += u64::from(count);
        if let Some(prev) = self.last
            && first <= prev
        {
            self.backwards += u64::from(first < prev);
            self.first_backwards.get_or_insert((prev, first));
        }
        // Ranges overlapping or touching the run merge into one.
        let (mut start, mut stop) = (first, end);
        let touching: Vec<(u64, u64)> = self
            .issued_ranges
            .range(..=end.saturating_add(1))
            .rev()
            .take_while(|(_, e)| e.saturating_add(1) >= first)
            .map(|(s, e)| (*s, *e))
            .collect();
        for (s, e) in touching {
            let overlap = e.min(end).saturating_add(1).saturating_sub(s.max(first));
            self.repeats += overlap;
            self.issued_ranges.remove(&s);
            start = start.min(s);
            stop = stop.max(e);
        }
        self.issued_ranges.insert(start, stop);
        if self.issued_ranges.len() > REMEMBERED_RANGES {
            self.issued_ranges.pop_first();
        }
        if self.shown.len() == SHOWN_RUNS {
            self.shown.pop_front();
        }
        self.shown.push_back((first, count));
        self.last = Some(end);
    }

    /// Serves the pending ids at clock reading `now_ms`, as far as the generator lets.
    fn serve(&mut self, now_ms: u64) {
        while self.pending > 0 {
            let wanted = u32::try_from(self.pending).unwrap_or(u32::MAX);
            match self.generator.next_run(now_ms, wanted) {
                Ok(IssuedRun::Ids { first, count }) => {
                    self.pending -= u64::from(count);
                    self.waiting_until = None;
                    self.take(first, count);
                }
                Ok(IssuedRun::WaitUntil(t)) => {
                    self.waiting_until = Some(t);
                    return;
                }
                Err(_) => {
                    self.refused += self.pending;
                    self.pending = 0;
                    self.waiting_until = None;
                }
            }
        }
    }
}

/// Running totals for the rate series.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdGenTotals {
    issued: Vec<u64>,
}

/// One traced request.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct TraceItem {
    step: u64,
    at_us: u64,
    clock_ms: u64,
    count: u32,
    /// Per policy, the last id after the request (0: none).
    last: Vec<u64>,
}

/// The Snowflake lab.
#[derive(Debug, Clone)]
pub struct IdGenLab {
    lanes: Vec<Lane>,
    batch: u32,
    /// Wall clock offset from lab time, ms (negative after a backward step).
    offset_ms: i64,
    step_at: Time,
    backward_step_ms: u32,
    stepped: bool,
    hasher: StableHasher,
    traced: u64,
    trace: VecDeque<TraceItem>,
}

impl IdGenLab {
    /// The wall clock at lab time `now`, Unix ms.
    pub fn clock_ms(&self, now: Time) -> u64 {
        let ms = CLOCK_START_MS as i64 + (now.0 / 1_000) as i64 + self.offset_ms;
        ms.max(0) as u64
    }

    /// Per policy (naive, refuse, wait, borrow): ids issued, ids below their predecessor,
    /// repeats, requests refused.
    pub fn tallies(&self) -> Vec<(ClockPolicy, u64, u64, u64, u64)> {
        self.lanes
            .iter()
            .map(|l| (l.policy(), l.issued, l.backwards, l.repeats, l.refused))
            .collect()
    }

    fn step_clock(&mut self, back_ms: u32, forward_ms: u32) {
        self.offset_ms = self.offset_ms - i64::from(back_ms) + i64::from(forward_ms);
    }

    fn request(&mut self, at: Moment, count: u32) {
        let now_ms = self.clock_ms(at.now);
        for lane in &mut self.lanes {
            lane.pending += u64::from(count);
            lane.serve(now_ms);
        }
        self.note(at, now_ms, count);
    }

    fn note(&mut self, at: Moment, clock_ms: u64, count: u32) {
        let last: Vec<u64> = self.lanes.iter().map(|l| l.last.unwrap_or(0)).collect();
        self.hasher.write_u64(at.step);
        self.hasher.write_u64(at.now.0);
        self.hasher.write_u64(clock_ms);
        self.hasher.write_u32(count);
        for l in &last {
            self.hasher.write_u64(*l);
        }
        self.traced += 1;
        if self.trace.len() == TRACE_KEPT {
            self.trace.pop_front();
        }
        self.trace.push_back(TraceItem {
            step: at.step,
            at_us: at.now.0,
            clock_ms,
            count,
            last,
        });
    }

    fn lane_fields(&self, lane: &Lane, now_ms: u64) -> BTreeMap<String, Value> {
        let decoded = lane.last.and_then(|id| decode(id, DISCORD_EPOCH_MS).ok());
        BTreeMap::from([
            ("policy".to_string(), json!(lane.policy().name())),
            (
                "claimsIncreasing".into(),
                json!(lane.policy().is_monotonic()),
            ),
            ("issued".into(), json!(lane.issued)),
            ("wentBackwards".into(), json!(lane.backwards)),
            ("repeats".into(), json!(lane.repeats)),
            ("refused".into(), json!(lane.refused)),
            ("pending".into(), json!(lane.pending)),
            ("waitingUntilMs".into(), json!(lane.waiting_until)),
            (
                "aheadOfClockMs".into(),
                json!(lane.generator.ahead_of_clock_ms(now_ms)),
            ),
            ("lastId".into(), json!(lane.last.map(|i| i.to_string()))),
            ("lastIdTimeMs".into(), json!(decoded.map(|d| d.unix_ms))),
            ("lastIdSequence".into(), json!(decoded.map(|d| d.sequence))),
        ])
    }

    fn ids_table(&self) -> Panel {
        let rows = self
            .lanes
            .iter()
            .flat_map(|l| {
                let mut prev: Option<u64> = None;
                l.shown
                    .iter()
                    .map(|&(first, count)| {
                        let d = decode(first, DISCORD_EPOCH_MS).ok();
                        let order = match prev {
                            Some(p) if first < p => "↓ backwards",
                            Some(p) if first == p => "= repeat",
                            _ => "↑",
                        };
                        prev = Some(first + u64::from(count) - 1);
                        vec![
                            json!(l.policy().name()),
                            json!(first.to_string()),
                            json!(count),
                            json!(d.map(|d| d.unix_ms as i64 - CLOCK_START_MS as i64)),
                            json!(d.map(|d| d.sequence)),
                            json!(order),
                        ]
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        Panel::Table {
            title: "newest runs of ids per policy (one timestamp, consecutive sequences)".into(),
            columns: [
                "policy",
                "first id",
                "ids",
                "ms since clock start",
                "first sequence",
                "order",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        }
    }
}

fn increasing(lane: &Lane) -> InvariantStatus {
    let claims = if lane.policy().is_monotonic() {
        "claims it"
    } else {
        "claims nothing"
    };
    let name = format!("{}: ids strictly increase ({claims})", lane.policy().name());
    match lane.first_backwards {
        None => InvariantStatus::holds(&name, format!("{} ids, each above the last", lane.issued)),
        Some((prev, id)) => InvariantStatus::violated(
            &name,
            format!(
                "{} ids below their predecessor, {} repeats; first: {id} after {prev}",
                lane.backwards, lane.repeats
            ),
            vec![policy_node(lane.policy())],
        ),
    }
}

fn policy_node(p: ClockPolicy) -> u32 {
    ClockPolicy::ALL.iter().position(|q| *q == p).unwrap_or(0) as u32
}

impl Sampled for IdGenLab {
    type Totals = IdGenTotals;

    fn series(&self) -> Vec<(String, String)> {
        let mut s: Vec<(String, String)> = ClockPolicy::ALL
            .iter()
            .map(|p| (format!("{} ids", p.name()), "ids/s".to_string()))
            .collect();
        s.push(("naive ids below their predecessor".into(), "ids".into()));
        s.push(("wait: ids held".into(), "ids".into()));
        s
    }

    fn totals(&self) -> IdGenTotals {
        IdGenTotals {
            issued: self.lanes.iter().map(|l| l.issued).collect(),
        }
    }

    fn sample(&self, _at: Time, interval: Duration, since: &IdGenTotals) -> Vec<f64> {
        let mut v: Vec<f64> = self
            .lanes
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let before = since.issued.get(i).copied().unwrap_or(0);
                per_second(l.issued.saturating_sub(before), interval)
            })
            .collect();
        let lane = |p: ClockPolicy| self.lanes.get(policy_node(p) as usize);
        v.push(lane(ClockPolicy::Naive).map_or(0.0, |l| l.backwards as f64));
        v.push(lane(ClockPolicy::Wait).map_or(0.0, |l| l.pending as f64));
        v
    }
}

impl LocalLab for IdGenLab {
    const ID: &'static str = "consistency.id-gen";
    type Config = IdGenLabConfig;
    type Action = IdGenLabAction;

    fn new(c: &IdGenLabConfig) -> Result<Self> {
        let node_id = u16::try_from(c.node_id.get())
            .map_err(|_| DistlabError::field("nodeId", "must be at most 1023"))?;
        let lanes = ClockPolicy::ALL
            .iter()
            .map(|&on_clock_backwards| {
                Lane::new(SnowflakeConfig {
                    epoch_ms: DISCORD_EPOCH_MS,
                    node_id,
                    on_clock_backwards,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(IdGenLab {
            lanes,
            batch: c.batch.get(),
            offset_ms: 0,
            step_at: Time(c.step_at_ms.as_micros()),
            backward_step_ms: c.backward_step_ms.get(),
            stepped: false,
            hasher: StableHasher::default(),
            traced: 0,
            trace: VecDeque::new(),
        })
    }

    /// The scheduled clock step, and the moment a held request may go.
    fn next_event_at(&self, now: Time) -> Option<Time> {
        let step = (!self.stepped).then_some(self.step_at);
        let now_ms = self.clock_ms(now);
        let wake = self
            .lanes
            .iter()
            .filter_map(|l| l.waiting_until)
            .min()
            // The wall clock reads whole ms of lab time: it reads `t` at the start of the
            // lab ms `t − now_ms` after this one.
            .map(|t| {
                let ahead_us = t.saturating_sub(now_ms).saturating_mul(1_000);
                Time((now.0 - now.0 % 1_000).saturating_add(ahead_us)).max(now)
            });
        step.into_iter().chain(wake).min()
    }

    fn on_event(&mut self, _due: Time, at: Moment) {
        if !self.stepped && at.now >= self.step_at {
            self.stepped = true;
            self.step_clock(self.backward_step_ms, 0);
            self.note(at, self.clock_ms(at.now), 0);
        }
        let now_ms = self.clock_ms(at.now);
        for lane in &mut self.lanes {
            if lane.waiting_until.is_some_and(|t| t <= now_ms) {
                lane.serve(now_ms);
            }
        }
    }

    fn act(&mut self, at: Moment, action: &IdGenLabAction) -> Result<()> {
        match action {
            IdGenLabAction::StepClock {
                back_ms,
                forward_ms,
            } => {
                self.step_clock(
                    back_ms.map_or(0, Count::get),
                    forward_ms.map_or(0, Count::get),
                );
                self.note(at, self.clock_ms(at.now), 0);
            }
            IdGenLabAction::Request { count } => self.request(at, count.get()),
        }
        Ok(())
    }

    fn view(&self, at: Moment, _samples: &Sampler<IdGenTotals>) -> View {
        let now_ms = self.clock_ms(at.now);
        View {
            nodes: self
                .lanes
                .iter()
                .map(|l| NodeView {
                    id: policy_node(l.policy()),
                    label: l.policy().name().into(),
                    role: "snowflake".into(),
                    status: "up".into(),
                    fields: self.lane_fields(l, now_ms),
                    group: None,
                })
                .collect(),
            panels: vec![
                Panel::Text {
                    title: "wall clock".into(),
                    body: format!(
                        "{} ms since the clock started ({} ms off lab time); a step back of \
                         {} ms {}.",
                        now_ms.saturating_sub(CLOCK_START_MS),
                        self.offset_ms,
                        self.backward_step_ms,
                        if self.stepped {
                            "has happened"
                        } else {
                            "is scheduled"
                        }
                    ),
                },
                self.ids_table(),
            ],
            invariants: self.lanes.iter().map(increasing).collect(),
            ..View::default()
        }
    }

    fn trace(&self, _at: Moment) -> Value {
        json!({
            "hash": format!("{:016x}", self.hasher.finish()),
            "events": self.traced,
            "complete": self.traced <= self.trace.len() as u64,
            "trace": serde_json::to_value(&self.trace).unwrap_or(Value::Null),
        })
    }

    fn example_actions() -> Vec<IdGenLabAction> {
        vec![
            IdGenLabAction::StepClock {
                back_ms: Some(Count::of(300)),
                forward_ms: None,
            },
            IdGenLabAction::StepClock {
                back_ms: None,
                forward_ms: Some(Count::of(300)),
            },
            IdGenLabAction::Request {
                count: Count::of(5_000),
            },
        ]
    }
}

impl DrivenLab for IdGenLab {
    fn arrivals(c: &IdGenLabConfig) -> &ArrivalProcess {
        &c.arrivals
    }

    fn on_arrival(&mut self, at: Moment) {
        self.request(at, self.batch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Driven, Lab, Runner};

    fn run(config: Value, until_ms: u64) -> Runner<Driven<IdGenLab>> {
        let mut lab = Runner::<Driven<IdGenLab>>::from_json(&config).unwrap();
        lab.step(Duration::from_millis(until_ms)).unwrap();
        lab
    }

    fn tallies(lab: &Runner<Driven<IdGenLab>>) -> Vec<(ClockPolicy, u64, u64, u64, u64)> {
        lab.model().tallies()
    }

    #[test]
    fn after_a_step_back_only_the_naive_ids_go_backwards() {
        let lab = run(json!({}), 4_000);
        let t = tallies(&lab);
        let [naive, refuse, wait, borrow] = &t[..] else {
            panic!("{t:?}")
        };
        // 200 requests a second for 4 s, the clock 500 ms back at 2 s.
        assert!(naive.2 >= 1 && naive.3 > 0, "{naive:?}");
        assert_eq!((refuse.2, wait.2, borrow.2), (0, 0, 0));
        assert_eq!((refuse.3, wait.3, borrow.3), (0, 0, 0));
        // Refuse turned away the half second's requests; wait held them and then served
        // them; borrow served every request at once.
        assert!(refuse.4 >= 90, "{refuse:?}");
        assert_eq!(borrow.1, naive.1);
        assert!(
            wait.1 + 2 >= naive.1 && wait.1 <= naive.1,
            "{wait:?} {naive:?}"
        );
        let v = lab.view();
        let ok: Vec<bool> = v.invariants.iter().map(|i| i.ok).collect();
        assert_eq!(ok, vec![false, true, true, true]);
    }

    #[test]
    fn a_spent_sequence_waits_for_the_next_ms_or_borrows_it() {
        let lab = run(
            json!({"batch": 10000, "backwardStepMs": 0, "arrivals": {"type": "constant", "ratePerSec": 10}}),
            1_000,
        );
        for (p, issued, backwards, repeats, refused) in tallies(&lab) {
            // 10 requests of 10,000 ids: three ms' worth of sequence each.
            assert_eq!((backwards, repeats, refused), (0, 0, 0), "{p:?}");
            assert!(issued >= 90_000, "{p:?}: {issued}");
        }
    }
}
