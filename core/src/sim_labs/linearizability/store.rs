//! The simulated store a generated history comes from: sequential clients with
//! overlapping intervals, a primary that applies each operation at one instant inside its
//! interval, and optionally a replica that lags behind it.

use super::spec::{Op, Shape, Spec, execute};
use super::{
    MAX_CLIENTS, MAX_GENERATED_OPERATIONS, MAX_KEYS, MAX_LAG_TICKS, MAX_TIMEOUT_PROBABILITY,
    ModelKind, StoreKind,
};
use crate::error::{DistlabError, Result, check_probability, check_range};
use crate::rng::SimRng;
use crate::sim::linearizability::{Operation, Response};

/// The knobs of a generated history.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Generation {
    pub(super) seed: u64,
    pub(super) model: ModelKind,
    pub(super) clients: u32,
    pub(super) keys: u32,
    pub(super) operations: u32,
    pub(super) store: StoreKind,
    pub(super) timeout_probability: f64,
}

impl Generation {
    /// Checks every knob, naming the field.
    pub(super) fn validate(&self) -> Result<()> {
        check_count("clients", self.clients, MAX_CLIENTS)?;
        check_count("keys", self.keys, MAX_KEYS)?;
        check_count("operations", self.operations, MAX_GENERATED_OPERATIONS)?;
        check_range(
            "timeoutProbability",
            self.timeout_probability,
            0.0,
            MAX_TIMEOUT_PROBABILITY,
        )?;
        validate_store(&self.store)
    }
}

pub(super) fn check_count(field: &str, value: u32, max: u32) -> Result<()> {
    if !(1..=max).contains(&value) {
        return Err(DistlabError::field(
            field,
            format!("must be between 1 and {max}, got {value}"),
        ));
    }
    Ok(())
}

pub(super) fn validate_store(store: &StoreKind) -> Result<()> {
    if let StoreKind::LaggingReplica {
        stale_read_probability,
        lost_write_probability,
        lag_ticks,
    } = store
    {
        check_probability("store.staleReadProbability", *stale_read_probability)?;
        check_probability("store.lostWriteProbability", *lost_write_probability)?;
        if !(1..=MAX_LAG_TICKS).contains(lag_ticks) {
            return Err(DistlabError::field(
                "store.lagTicks",
                format!("must be between 1 and {MAX_LAG_TICKS}, got {lag_ticks}"),
            ));
        }
    }
    Ok(())
}

/// When one operation of the simulated run happened and who ran it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timing {
    client: u64,
    call: u64,
    /// When it takes effect at the primary: strictly inside `[call, ret]`.
    effect: u64,
    /// `None`: the response was lost.
    ret: Option<u64>,
    took_effect: bool,
}

/// Intervals of `operations` operations by `clients` sequential clients: each calls,
/// takes effect 1–3 ticks later, returns 1–3 ticks after that and thinks for up to
/// `clients / 2` ticks, so that concurrency grows with the clients but gently: the search
/// is exponential in how many operations overlap, and a page must stay responsive. A
/// client whose response is lost is replaced by a fresh one (Jepsen's `:info` process).
pub(super) fn schedule(rng: &mut SimRng, g: &Generation) -> Vec<Timing> {
    struct Slot {
        client: u64,
        next_call: u64,
    }
    let mut slots: Vec<Slot> = (0..u64::from(g.clients))
        .map(|client| Slot {
            client,
            next_call: rng.below(3),
        })
        .collect();
    let mut next_client = u64::from(g.clients);
    let think = 1 + u64::from(g.clients) / 2;
    let mut timings = Vec::with_capacity(g.operations as usize);
    for _ in 0..g.operations {
        let Some(slot) = slots.iter_mut().min_by_key(|s| s.next_call) else {
            break;
        };
        let call = slot.next_call;
        let effect = call + 1 + rng.below(3);
        let timed_out = rng.chance(g.timeout_probability);
        let took_effect = !timed_out || rng.chance(0.5);
        let client = slot.client;
        let ret = if timed_out {
            slot.client = next_client;
            next_client += 1;
            slot.next_call = effect + 1 + rng.below(think);
            None
        } else {
            let ret = effect + 1 + rng.below(3);
            slot.next_call = ret + rng.below(think);
            Some(ret)
        };
        timings.push(Timing {
            client,
            call,
            effect,
            ret,
            took_effect,
        });
    }
    timings
}

/// Draws the next operation on a key holding `current`; `tokens` counts the values
/// written so far, so every written value is new.
pub(super) fn draw_shape<M: Spec>(
    rng: &mut SimRng,
    initial: &M::State,
    current: &M::State,
    tokens: &mut u64,
) -> Shape<M::State> {
    fn next<M: Spec>(tokens: &mut u64, append: bool) -> M::State {
        *tokens += 1;
        M::token(*tokens, append)
    }
    let [reads, writes, appends, _] = M::MIX;
    let roll = rng.below(100);
    if roll < reads {
        Shape::Read
    } else if roll < reads + writes {
        Shape::Write(next::<M>(tokens, false))
    } else if roll < reads + writes + appends {
        Shape::Append(next::<M>(tokens, true))
    } else {
        // Half the time the value the key holds, so that compare-and-sets often succeed.
        let expected = if rng.below(2) == 0 && current != initial {
            current.clone()
        } else {
            M::token(1 + rng.below((*tokens).max(1)), false)
        };
        Shape::Cas {
            expected,
            new: next::<M>(tokens, false),
        }
    }
}

/// A history of the simulated store: operations take effect in the order of their effect
/// times; the primary holds the true values, and a lagging replica answers stale reads
/// with the value the primary held `lag` ticks earlier.
pub(super) fn generate<M: Spec>(g: &Generation, model: &M) -> Vec<Op<M>> {
    let mut rng = SimRng::new(g.seed);
    let timings = schedule(&mut rng, g);
    let (stale, lost, lag) = match g.store {
        StoreKind::Correct => (0.0, 0.0, 0),
        StoreKind::LaggingReplica {
            stale_read_probability,
            lost_write_probability,
            lag_ticks,
        } => (stale_read_probability, lost_write_probability, lag_ticks),
    };
    let keys = if M::KIND == ModelKind::Kv { g.keys } else { 1 };
    let initial = model.init();
    // Per key, every value the primary took, with when.
    let mut versions: Vec<Vec<(u64, M::State)>> = vec![Vec::new(); keys as usize];
    let mut effect_order: Vec<usize> = (0..timings.len()).collect();
    effect_order.sort_by_key(|&i| (timings.get(i).map_or(0, |t| t.effect), i));
    let mut tokens = 0;
    let mut ops: Vec<(usize, Op<M>)> = Vec::new();
    for i in effect_order {
        let (Some(t), key_index) = (timings.get(i), rng.below(u64::from(keys)) as usize) else {
            continue;
        };
        let Some(history) = versions.get_mut(key_index) else {
            continue;
        };
        let key = format!("k{key_index}");
        let current = history.last().map_or(&initial, |(_, v)| v).clone();
        let shape = draw_shape::<M>(&mut rng, &initial, &current, &mut tokens);
        let (Some(input), (mut output, new_value)) = (
            M::input(&key, shape.clone()),
            execute::<M>(&shape, &current),
        ) else {
            continue;
        };
        if shape == Shape::Read && rng.chance(stale) {
            // The replica has applied what the primary took up to `lag` ticks ago.
            let replica = t
                .effect
                .checked_sub(lag)
                .and_then(|as_of| history.iter().rev().find(|(at, _)| *at <= as_of))
                .map_or(&initial, |(_, v)| v);
            output = Response::Value {
                value: replica.clone(),
            };
        }
        if let Some(value) = new_value
            && t.took_effect
            && !rng.chance(lost)
        {
            history.push((t.effect, value));
        }
        ops.push((
            i,
            Operation {
                client: t.client,
                input,
                call: t.call,
                output: if t.ret.is_some() {
                    output
                } else {
                    Response::Unknown
                },
                ret: t.ret,
            },
        ));
    }
    // Numbered in order of call, as a reader scans the timeline.
    ops.sort_by_key(|(i, op)| (op.call, *i));
    ops.into_iter().map(|(_, op)| op).collect()
}
