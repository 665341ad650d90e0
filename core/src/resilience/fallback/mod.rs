//! A fallback chain: when the call a caller prefers fails or is too slow, ask the next
//! source down a ranked list (personalised recommendations → the popular items → a static
//! default), and report which level answered. A level that fails with an error the chain
//! handles, or that does not answer within its own timeout, passes the call on; an error
//! the chain does not handle (a bad request) ends the call at once, since a lower level
//! would only repeat it. When every level failed, an optional static default answers:
//! it cannot fail, so a chain with one always answers.
//!
//! References: the fallback strategy of Polly v8 (`FallbackStrategyOptions`: a
//! `ShouldHandle` predicate choosing the outcomes that fall back, a `FallbackAction`
//! producing the substitute; several chained for several levels), Resilience4j's
//! `Decorators.withFallback`, and Nygard's *Release It!* on degraded answers ("seed 002"
//! of this project: personalised → popular → static). Each level's timeout is Polly's
//! per-strategy timeout put inside that level, so a slow level costs at most its own
//! timeout before the next one is asked.
//!
//! Sans-I/O: [`FallbackChain::start`] opens a [`FallbackCall`] and says which level to
//! ask; the caller reports answers with [`FallbackCall::on_result`], arms a timer for
//! [`FallbackCall::poll_timeout`] and calls [`FallbackCall::handle_timeout`]. Cost: O(1)
//! per decision; a call remembers one outcome per level it tried.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bounded::Millis;
use crate::error::{DistlabError, Result};
use crate::resilience::{ErrorKind, ErrorKinds};
use crate::time::{Duration, Time};

pub mod lab;
#[cfg(test)]
mod tests;

/// The most levels a chain may have (the static default not counted).
pub const MAX_LEVELS: usize = 8;
/// The longest timeout of one level: an hour, in ms.
pub const MAX_LEVEL_TIMEOUT_MS: u32 = 3_600_000;
/// The longest level name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// One level of the chain. JSON: `{"name": "popular", "timeoutMs": 100}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct FallbackLevel {
    pub name: String,
    /// How long this level may take before the next is asked (0: no timeout).
    #[serde(default = "no_timeout")]
    pub timeout_ms: Millis<0, { MAX_LEVEL_TIMEOUT_MS }>,
}

fn no_timeout() -> Millis<0, { MAX_LEVEL_TIMEOUT_MS }> {
    Millis::of(0)
}

impl FallbackLevel {
    pub fn new(name: &str, timeout_ms: Millis<0, { MAX_LEVEL_TIMEOUT_MS }>) -> Self {
        FallbackLevel {
            name: name.to_string(),
            timeout_ms,
        }
    }
}

/// A chain. JSON: `{"levels": [{"name": "personalised", "timeoutMs": 200}, {"name":
/// "popular", "timeoutMs": 50}], "staticDefault": true, "handle": ["unavailable",
/// "timeout", "overloaded", "internal"]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct FallbackConfig {
    /// The levels, best first.
    pub levels: Vec<FallbackLevel>,
    /// Whether a static default answers once every level has failed.
    pub static_default: bool,
    /// Errors that pass the call to the next level (Polly's `ShouldHandle`); any other
    /// ends it. A level's timeout counts as `timeout`.
    pub handle: Vec<ErrorKind>,
}

impl Default for FallbackConfig {
    fn default() -> Self {
        FallbackConfig {
            levels: vec![
                FallbackLevel::new("personalised", Millis::of(200)),
                FallbackLevel::new("popular", Millis::of(50)),
            ],
            static_default: true,
            handle: vec![
                ErrorKind::Unavailable,
                ErrorKind::Timeout,
                ErrorKind::Overloaded,
                ErrorKind::Internal,
            ],
        }
    }
}

/// Who answered a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum Served {
    /// Level `level` (0: the best) answered.
    Level { level: u32 },
    /// Every level failed; the static default answered.
    StaticDefault,
    /// Nobody answered: the call fails with `error` (the last level's, or an error the
    /// chain does not handle).
    Failed { error: ErrorKind },
}

/// What became of one level a call tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum LevelOutcome {
    /// Being asked.
    Pending,
    Answered,
    Failed {
        error: ErrorKind,
    },
    /// No answer within the level's timeout: cancelled.
    TimedOut,
}

/// What the caller does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum FallbackAction {
    /// Ask level `level`; it has until `deadline` (µs), if it has a timeout.
    Ask {
        level: u32,
        #[cfg_attr(feature = "tsify", tsify(type = "number | null"))]
        deadline: Option<Time>,
    },
    /// Level `level` ran out of time: cancel what was asked of it.
    Cancel { level: u32 },
    /// The call is over, `latency` µs after it started.
    Done {
        served: Served,
        #[cfg_attr(feature = "tsify", tsify(type = "number"))]
        latency: Duration,
    },
}

/// Counters of one level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct LevelStats {
    pub asked: u64,
    pub served: u64,
    pub failed: u64,
    pub timed_out: u64,
}

/// Counters of a chain, over every call it started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct FallbackStats {
    pub calls: u64,
    /// By level, best first.
    pub levels: Vec<LevelStats>,
    pub static_default: u64,
    pub failed: u64,
}

/// A validated chain, shared by the calls through it (it keeps the counters).
#[derive(Debug, Clone, PartialEq)]
pub struct FallbackChain {
    names: Vec<String>,
    timeouts: Vec<Duration>,
    static_default: bool,
    handle: ErrorKinds,
    stats: FallbackStats,
}

impl FallbackChain {
    /// Errors name the field: `levels` empty or longer than [`MAX_LEVELS`],
    /// `levels[i].name` empty, too long or repeated.
    pub fn new(c: &FallbackConfig) -> Result<Self> {
        if c.levels.is_empty() || c.levels.len() > MAX_LEVELS {
            return Err(DistlabError::field(
                "levels",
                format!("must have 1 to {MAX_LEVELS} levels, got {}", c.levels.len()),
            ));
        }
        for (i, level) in c.levels.iter().enumerate() {
            let field = format!("levels[{i}].name");
            if level.name.is_empty() || level.name.len() > MAX_NAME_LEN {
                return Err(DistlabError::field(
                    field,
                    format!(
                        "must be 1 to {MAX_NAME_LEN} bytes, got {}",
                        level.name.len()
                    ),
                ));
            }
            if c.levels[..i].iter().any(|l| l.name == level.name) {
                return Err(DistlabError::field(
                    field,
                    format!("`{}` names two levels", level.name),
                ));
            }
        }
        Ok(FallbackChain {
            names: c.levels.iter().map(|l| l.name.clone()).collect(),
            timeouts: c.levels.iter().map(|l| l.timeout_ms.duration()).collect(),
            static_default: c.static_default,
            handle: ErrorKinds::of(&c.handle),
            stats: FallbackStats {
                levels: vec![LevelStats::default(); c.levels.len()],
                ..FallbackStats::default()
            },
        })
    }

    /// Levels, the static default not counted.
    pub fn levels(&self) -> u32 {
        self.names.len() as u32
    }

    pub fn name(&self, level: u32) -> Option<&str> {
        self.names.get(level as usize).map(String::as_str)
    }

    /// A level's timeout (zero: none).
    pub fn timeout(&self, level: u32) -> Option<Duration> {
        self.timeouts.get(level as usize).copied()
    }

    pub fn has_static_default(&self) -> bool {
        self.static_default
    }

    /// Whether an error of `kind` passes the call to the next level.
    pub fn handles(&self, kind: ErrorKind) -> bool {
        self.handle.contains(kind)
    }

    pub fn stats(&self) -> &FallbackStats {
        &self.stats
    }

    /// Opens a call at `now`: ask the best level.
    pub fn start(&mut self, now: Time) -> (FallbackCall, FallbackAction) {
        self.stats.calls += 1;
        let mut call = FallbackCall {
            started: now,
            outcomes: Vec::new(),
            deadline: None,
            done: false,
        };
        let ask = call.ask(now, self);
        (call, ask)
    }

    fn level_stats(&mut self, level: u32) -> Option<&mut LevelStats> {
        self.stats.levels.get_mut(level as usize)
    }
}

/// One call down the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackCall {
    started: Time,
    /// One per level asked, best first; the last is the level being asked.
    outcomes: Vec<LevelOutcome>,
    deadline: Option<Time>,
    done: bool,
}

impl FallbackCall {
    pub fn started(&self) -> Time {
        self.started
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The level being asked, while the call is open.
    pub fn current(&self) -> Option<u32> {
        (!self.done && !self.outcomes.is_empty()).then(|| self.outcomes.len() as u32 - 1)
    }

    /// What became of each level asked, best first.
    pub fn outcomes(&self) -> &[LevelOutcome] {
        &self.outcomes
    }

    /// When the level being asked runs out of time, if it has a timeout.
    pub fn poll_timeout(&self) -> Option<Time> {
        if self.done { None } else { self.deadline }
    }

    fn ask(&mut self, now: Time, chain: &mut FallbackChain) -> FallbackAction {
        let level = self.outcomes.len() as u32;
        self.outcomes.push(LevelOutcome::Pending);
        let timeout = chain.timeout(level).unwrap_or(Duration::ZERO);
        self.deadline = (timeout > Duration::ZERO).then(|| now.saturating_add(timeout));
        if let Some(s) = chain.level_stats(level) {
            s.asked += 1;
        }
        FallbackAction::Ask {
            level,
            deadline: self.deadline,
        }
    }

    fn finish(&mut self, now: Time, chain: &mut FallbackChain, served: Served) -> FallbackAction {
        self.done = true;
        self.deadline = None;
        match served {
            Served::Level { level } => {
                if let Some(s) = chain.level_stats(level) {
                    s.served += 1;
                }
            }
            Served::StaticDefault => chain.stats.static_default += 1,
            Served::Failed { .. } => chain.stats.failed += 1,
        }
        FallbackAction::Done {
            served,
            latency: now.saturating_since(self.started),
        }
    }

    /// The current level failed with `kind`: the next level, the static default, or the end.
    fn pass_on(&mut self, now: Time, chain: &mut FallbackChain, kind: ErrorKind) -> FallbackAction {
        let next = self.outcomes.len() as u32;
        if !chain.handles(kind) {
            self.finish(now, chain, Served::Failed { error: kind })
        } else if next < chain.levels() {
            self.ask(now, chain)
        } else if chain.static_default {
            self.finish(now, chain, Served::StaticDefault)
        } else {
            self.finish(now, chain, Served::Failed { error: kind })
        }
    }

    /// Level `level` answered at `now`, failing with `error` or not: what to do next.
    /// An answer from a level not being asked (one that timed out, or after the end) is
    /// ignored: no action, nothing changes.
    pub fn on_result(
        &mut self,
        now: Time,
        level: u32,
        error: Option<ErrorKind>,
        chain: &mut FallbackChain,
    ) -> Vec<FallbackAction> {
        if self.current() != Some(level) {
            return Vec::new();
        }
        // A deadline reached before the answer wins (the caller was late calling
        // `handle_timeout`): the level was too slow all the same.
        if self.deadline.is_some_and(|d| d <= now) {
            return self.handle_timeout(now, chain);
        }
        let outcome = match error {
            None => LevelOutcome::Answered,
            Some(error) => LevelOutcome::Failed { error },
        };
        if let Some(o) = self.outcomes.last_mut() {
            *o = outcome;
        }
        vec![match error {
            None => self.finish(now, chain, Served::Level { level }),
            Some(kind) => {
                if let Some(s) = chain.level_stats(level) {
                    s.failed += 1;
                }
                self.pass_on(now, chain, kind)
            }
        }]
    }

    /// The level being asked ran out of time by `now`: cancel it, then ask the next.
    /// Nothing, if no deadline has passed.
    pub fn handle_timeout(&mut self, now: Time, chain: &mut FallbackChain) -> Vec<FallbackAction> {
        let Some(level) = self.current() else {
            return Vec::new();
        };
        if self.deadline.is_none_or(|d| d > now) {
            return Vec::new();
        }
        if let Some(o) = self.outcomes.last_mut() {
            *o = LevelOutcome::TimedOut;
        }
        if let Some(s) = chain.level_stats(level) {
            s.timed_out += 1;
        }
        vec![
            FallbackAction::Cancel { level },
            self.pass_on(now, chain, ErrorKind::Timeout),
        ]
    }
}
