//! Hedging under faults, in the normal test run: thousands of seeds, each a random hedging
//! policy (attempts, a fixed or percentile delay, which errors are non-fatal, with or
//! without a budget) driving a stream of calls against a dependency whose attempts answer
//! fast, slow, with a fatal or a non-fatal error, or never — and callers that give up at
//! their own deadline. Every action of every call is checked against gRFC A6's rules:
//!
//! - a call ends exactly once, and nothing is sent for it after;
//! - attempts go out numbered 0, 1, 2… and never more than `maxAttempts`;
//! - a success ends the call at once, with that attempt as the winner; a fatal error ends
//!   it with that error; a non-fatal error ends it only when nothing is in flight and no
//!   further attempt may go;
//! - only attempts in flight are cancelled, and every attempt in flight when the call
//!   ends is;
//! - a hedge goes only while the budget holds more than half its tokens.
//!
//! `HEDGING_SOAK_SEEDS=n` changes the number of seeds.

use std::collections::{BTreeMap, BTreeSet};

use distlab_core::bounded::{Count, Millis, Probability};
use distlab_core::resilience::ErrorKind;
use distlab_core::resilience::hedging::{
    HedgeAction, HedgedCall, HedgingConfig, HedgingDelay, HedgingPolicy,
};
use distlab_core::resilience::retry::{RetryBudget, RetryBudgetConfig};
use distlab_core::rng::SimRng;
use distlab_core::{Duration, Time};
use distlab_tests::soak::seed_count;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

const DEFAULT_SEEDS: u64 = if cfg!(target_arch = "wasm32") {
    20
} else {
    3_000
};
const CALLS: u64 = 200;
const KINDS: [ErrorKind; 3] = [
    ErrorKind::Unavailable,
    ErrorKind::Overloaded,
    ErrorKind::Internal,
];

#[derive(Debug, Clone, Copy)]
enum Event {
    Arrive,
    Timer,
    Answer {
        attempt: u32,
        error: Option<ErrorKind>,
    },
    Deadline,
}

/// What the checker knows of one call.
#[derive(Debug, Default)]
struct Tracked {
    sent: u32,
    in_flight: BTreeSet<u32>,
    done: bool,
    /// The budget once held a hedge back: no more go for this call.
    throttled: bool,
}

struct Run {
    rng: SimRng,
    policy: HedgingPolicy,
    budget: Option<RetryBudget>,
    non_fatal: Vec<ErrorKind>,
    max_attempts: u32,
    queue: BTreeMap<(Time, u64), (u64, Event)>,
    seq: u64,
    calls: BTreeMap<u64, HedgedCall>,
    tracked: BTreeMap<u64, Tracked>,
    drop_rate: f64,
    failure_rate: f64,
    slow_rate: f64,
    stats: [u64; 3],
}

impl Run {
    fn new(seed: u64) -> Self {
        let mut rng = SimRng::new(seed);
        let max_attempts = 1 + rng.below(5) as u32;
        let delay = if rng.chance(0.5) {
            HedgingDelay::Fixed {
                ms: Millis::of(rng.below(200) as u32),
            }
        } else {
            HedgingDelay::Percentile {
                quantile: Probability::of([0.5, 0.9, 0.95, 0.99][rng.below(4) as usize]),
                window: Count::of(50),
                min_samples: Count::of(1 + rng.below(50) as u32),
                fallback_ms: Millis::of(rng.below(200) as u32),
            }
        };
        let non_fatal: Vec<ErrorKind> = KINDS.into_iter().filter(|_| rng.chance(0.5)).collect();
        let policy = HedgingPolicy::new(&HedgingConfig {
            max_attempts: Count::of(max_attempts),
            delay,
            non_fatal: non_fatal.clone(),
        })
        .expect("a valid policy");
        let budget = rng.chance(0.5).then(|| {
            RetryBudget::new(&RetryBudgetConfig {
                max_tokens: Count::of(2 + rng.below(20) as u32),
                token_ratio: 0.1 + rng.next_f64(),
            })
            .expect("a valid budget")
        });
        Run {
            drop_rate: rng.next_f64() * 0.2,
            failure_rate: rng.next_f64() * 0.6,
            slow_rate: rng.next_f64() * 0.3,
            rng,
            policy,
            budget,
            non_fatal,
            max_attempts,
            queue: BTreeMap::new(),
            seq: 0,
            calls: BTreeMap::new(),
            tracked: BTreeMap::new(),
            stats: [0; 3],
        }
    }

    fn push(&mut self, at: Time, call: u64, e: Event) {
        self.queue.insert((at, self.seq), (call, e));
        self.seq += 1;
    }

    fn send(&mut self, now: Time, call: u64, attempt: u32) {
        if self.rng.chance(self.drop_rate) {
            return;
        }
        let error = self
            .rng
            .chance(self.failure_rate)
            .then(|| KINDS[self.rng.below(3) as usize]);
        let latency = if self.rng.chance(self.slow_rate) {
            500_000 + self.rng.below(2_000_000)
        } else {
            5_000 + self.rng.below(60_000)
        };
        self.push(
            now.saturating_add(Duration(latency)),
            call,
            Event::Answer { attempt, error },
        );
    }

    /// Applies and checks what the call said after `event`.
    fn check(
        &mut self,
        now: Time,
        call: u64,
        event: Event,
        tokens_before: Option<(f64, f64)>,
        actions: Vec<HedgeAction>,
    ) -> Result<(), String> {
        let max_attempts = self.max_attempts;
        let non_fatal = self.non_fatal.clone();
        let t = self.tracked.entry(call).or_default();
        let ctx = |what: String| format!("call {call} at {} µs after {event:?}: {what}", now.0);
        if t.done && !actions.is_empty() {
            return Err(ctx(format!("acted after it ended: {actions:?}")));
        }
        // What the answer, if any, did to the tokens before any hedge it sends.
        let mut tokens = tokens_before;
        let answered = match event {
            Event::Answer { attempt, error } if t.in_flight.remove(&attempt) => {
                if let (Some(k), Some((tk, _))) = (error, tokens.as_mut())
                    && non_fatal.contains(&k)
                {
                    *tk = (*tk - 1.0).max(0.0);
                }
                Some((attempt, error))
            }
            _ => None,
        };
        let mut ended = None;
        for a in &actions {
            if ended.is_some() {
                return Err(ctx(format!("an action after Done: {actions:?}")));
            }
            match *a {
                HedgeAction::Send { attempt } => {
                    if attempt != t.sent || attempt >= max_attempts {
                        return Err(ctx(format!(
                            "sent attempt {attempt} with {} sent, max {max_attempts}",
                            t.sent
                        )));
                    }
                    if attempt > 0
                        && let Some((tk, max)) = tokens
                        && tk * 2.0 <= max
                    {
                        return Err(ctx(format!("hedged with {tk} of {max} tokens")));
                    }
                    t.sent += 1;
                    t.in_flight.insert(attempt);
                }
                HedgeAction::Cancel { attempt } => {
                    if !t.in_flight.remove(&attempt) {
                        return Err(ctx(format!("cancelled attempt {attempt}, not in flight")));
                    }
                }
                HedgeAction::Done {
                    attempt,
                    error,
                    attempts,
                } => {
                    if attempts != t.sent {
                        return Err(ctx(format!(
                            "Done says {attempts} attempts, {} sent",
                            t.sent
                        )));
                    }
                    if !t.in_flight.is_empty() {
                        return Err(ctx(format!("ended with {:?} in flight", t.in_flight)));
                    }
                    ended = Some((attempt, error));
                }
            }
        }
        let sends = actions
            .iter()
            .filter(|a| matches!(a, HedgeAction::Send { .. }))
            .count();
        match (event, answered, ended) {
            (Event::Deadline, _, Some((_, Some(ErrorKind::Timeout)))) => {}
            (Event::Deadline, _, e) if !t.done => {
                return Err(ctx(format!("the caller gave up but the call ended {e:?}")));
            }
            (_, Some((a, None)), e) if e != Some((a, None)) => {
                return Err(ctx(format!(
                    "attempt {a} succeeded but the call ended {e:?}"
                )));
            }
            (_, Some((a, Some(k))), e) if !non_fatal.contains(&k) && e != Some((a, Some(k))) => {
                return Err(ctx(format!(
                    "fatal {k:?} from {a} but the call ended {e:?}"
                )));
            }
            (_, Some((a, Some(k))), Some(e))
                if non_fatal.contains(&k) && (e != (a, Some(k)) || sends > 0) =>
            {
                return Err(ctx(format!("non-fatal {k:?} ended the call as {e:?}")));
            }
            (Event::Timer | Event::Arrive, _, Some(e)) => {
                return Err(ctx(format!("a timer ended the call: {e:?}")));
            }
            _ => {}
        }
        // A due timer, or a non-fatal error, sends the next attempt unless every attempt
        // went or the budget holds it back — and then no more go for this call.
        let budget_left = tokens.is_none_or(|(tk, max)| tk * 2.0 > max);
        let wants_hedge = match (event, answered) {
            (Event::Timer, _) => true,
            (_, Some((_, Some(k)))) => non_fatal.contains(&k),
            _ => false,
        };
        if wants_hedge && sends == 0 && t.sent < max_attempts && !t.throttled {
            if budget_left {
                return Err(ctx(format!(
                    "no hedge with {} of {max_attempts} sent and the budget above half",
                    t.sent
                )));
            }
            t.throttled = true;
        }
        // At the start, a zero delay sends every attempt the budget lets through.
        if matches!(event, Event::Arrive)
            && t.sent < max_attempts
            && self
                .calls
                .get(&call)
                .is_some_and(|c| c.poll_timeout().is_none())
        {
            t.throttled = true;
        }
        if let Some((_, error)) = ended {
            t.done = true;
            self.stats[usize::from(error.is_some())] += 1;
        }
        for a in actions {
            if let HedgeAction::Send { attempt } = a {
                self.stats[2] += u64::from(attempt > 0);
                self.send(now, call, attempt);
            }
        }
        if let Some(at) = self.calls.get(&call).and_then(HedgedCall::poll_timeout) {
            self.push(at, call, Event::Timer);
        }
        if ended.is_some() {
            self.calls.remove(&call);
        }
        Ok(())
    }

    fn run(mut self) -> Result<[u64; 3], String> {
        let mut at = Time::ZERO;
        for call in 0..CALLS {
            at = at.saturating_add(Duration(self.rng.below(40_000)));
            self.push(at, call, Event::Arrive);
            let patience = 100_000 + self.rng.below(1_500_000);
            self.push(at.saturating_add(Duration(patience)), call, Event::Deadline);
        }
        while let Some(((now, _), (call, event))) = self.queue.pop_first() {
            let tokens_before = self.budget.as_ref().map(|b| (b.tokens(), b.max_tokens()));
            let actions = match event {
                Event::Arrive => {
                    let (c, a) = self.policy.start(now, self.budget.as_mut());
                    self.calls.insert(call, c);
                    a
                }
                _ => {
                    let Some(c) = self.calls.get_mut(&call) else {
                        continue;
                    };
                    match event {
                        Event::Timer if c.poll_timeout() != Some(now) => continue,
                        Event::Timer => {
                            c.handle_timeout(now, &mut self.policy, self.budget.as_mut())
                        }
                        Event::Answer { attempt, error } => {
                            c.on_result(now, attempt, error, &mut self.policy, self.budget.as_mut())
                        }
                        Event::Deadline => c.cancel(&mut self.policy),
                        Event::Arrive => unreachable!("handled above"),
                    }
                }
            };
            self.check(now, call, event, tokens_before, actions)?;
        }
        if let Some((call, _)) = self.tracked.iter().find(|(_, t)| !t.done) {
            return Err(format!("call {call} never ended"));
        }
        let s = self.policy.stats();
        if s.succeeded + s.failed != CALLS || s.calls != CALLS {
            return Err(format!("the policy counted {s:?} for {CALLS} calls"));
        }
        Ok(self.stats)
    }
}

#[distlab_tests::test]
fn every_hedged_call_follows_grpcs_rules_under_faults() {
    let seeds = seed_count("HEDGING_SOAK_SEEDS", DEFAULT_SEEDS);
    let mut totals = [0u64; 3];
    let mut failures = Vec::new();
    for seed in 0..seeds {
        match Run::new(seed).run() {
            Ok(s) => totals.iter_mut().zip(s).for_each(|(t, s)| *t += s),
            Err(e) => failures.push(format!("seed {seed}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let [succeeded, failed, hedges] = totals;
    // The faults reach every branch: successes, failures, and hedges.
    assert!(succeeded > 0 && failed > 0 && hedges > 0, "{totals:?}");
    println!("{seeds} seeds: {succeeded} calls succeeded, {failed} failed, {hedges} hedges");
}
