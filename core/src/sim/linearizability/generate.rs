//! Random histories that are linearizable by construction, for tests, benchmarks and labs.
//!
//! A sequential execution is simulated: operation `k` takes effect at time `t_k`, with the
//! `t_k` strictly increasing by 1 to 3, and a free client sees the interval `[call, ret]`
//! drawn around `t_k` (each end up to three times the number of clients away), so the
//! intervals of different clients overlap as in a real concurrent run, most clients busy
//! at any time, while the order of the `t_k` remains a valid linearization. One operation
//! in a hundred times out: its return is lost (`ret: None`, output unknown), half of those
//! took effect at `t_k` and half never did, and the client is replaced by a fresh one, as
//! Jepsen does with a process whose operation ended in `:info`.

use super::model::Operation;
use super::models::{CasRegisterInput, KvInput, KvOutput, RegisterOutput, Response};
use crate::error::{DistlabError, Result};
use crate::rng::SimRng;

/// One in this many operations times out.
const TIMEOUT_ONE_IN: u64 = 100;

/// When an operation of the simulated run happened and who ran it.
struct Timing {
    client: u64,
    call: u64,
    ret: Option<u64>,
}

/// A client slot: the client now using it and when it may issue its next call.
struct ClientSlot {
    client: u64,
    free_from: u64,
}

/// Draws overlapping intervals around strictly increasing effect times.
struct OverlappingSchedule {
    slots: Vec<ClientSlot>,
    next_client: u64,
    clock: u64,
    spread: u64,
}

impl OverlappingSchedule {
    fn new(clients: usize) -> Self {
        OverlappingSchedule {
            slots: (0..clients as u64)
                .map(|client| ClientSlot {
                    client,
                    free_from: 0,
                })
                .collect(),
            next_client: clients as u64,
            clock: 0,
            spread: 3 * clients as u64,
        }
    }

    fn next(&mut self, rng: &mut SimRng, timed_out: bool) -> Timing {
        self.clock += 1 + rng.below(3);
        let mut slot_index = rng.below(self.slots.len() as u64) as usize;
        if self
            .slots
            .get(slot_index)
            .is_some_and(|s| s.free_from > self.clock)
        {
            // That client is still busy: take the one that frees up first, waiting for it.
            slot_index = self
                .slots
                .iter()
                .enumerate()
                .min_by_key(|(_, s)| s.free_from)
                .map_or(0, |(i, _)| i);
        }
        let Some(slot) = self.slots.get_mut(slot_index) else {
            return Timing {
                client: 0,
                call: self.clock,
                ret: Some(self.clock),
            };
        };
        self.clock = self.clock.max(slot.free_from);
        let effect = self.clock;
        let call = effect
            .saturating_sub(rng.below(self.spread + 1))
            .max(slot.free_from);
        let client = slot.client;
        let ret = if timed_out {
            slot.client = self.next_client;
            self.next_client += 1;
            slot.free_from = effect + 1;
            None
        } else {
            let ret = effect + rng.below(self.spread + 1);
            slot.free_from = ret + 1;
            Some(ret)
        };
        Timing { client, call, ret }
    }
}

/// The largest history the generators make: enough for any benchmark, small enough that
/// a mistyped size cannot exhaust memory.
pub const MAX_GENERATED_OPERATIONS: usize = 10_000_000;

/// The most clients, and keys, the generators accept.
pub const MAX_GENERATED_CLIENTS: usize = 100_000;

fn check_count(field: &str, value: usize, max: usize) -> Result<()> {
    if value > max {
        return Err(DistlabError::field(
            field,
            format!("must be at most {max}, got {value}"),
        ));
    }
    Ok(())
}

fn check_sizes(ops: usize, clients: usize) -> Result<()> {
    if clients == 0 {
        return Err(DistlabError::field("clients", "must be at least 1"));
    }
    check_count("clients", clients, MAX_GENERATED_CLIENTS)?;
    check_count("ops", ops, MAX_GENERATED_OPERATIONS)
}

/// Draws what happened to one operation: whether it timed out and, if so, whether it still
/// took effect.
fn draw_fate(rng: &mut SimRng) -> (bool, bool) {
    let timed_out = rng.below(TIMEOUT_ONE_IN) == 0;
    let took_effect = !timed_out || rng.below(2) == 0;
    (timed_out, took_effect)
}

/// A linearizable key-value history of `ops` operations over `keys` keys (named `k0`,
/// `k1`...) issued by `clients` concurrent clients, for [`super::models::KvModel`]: about
/// 45% gets, 10% puts, 40% appends and 5% compare-and-sets. Same seed, same history.
pub fn random_kv_history(
    seed: u64,
    ops: usize,
    keys: usize,
    clients: usize,
) -> Result<Vec<Operation<KvInput, KvOutput>>> {
    check_sizes(ops, clients)?;
    if keys == 0 {
        return Err(DistlabError::field("keys", "must be at least 1"));
    }
    check_count("keys", keys, MAX_GENERATED_CLIENTS)?;
    let mut rng = SimRng::new(seed);
    let mut schedule = OverlappingSchedule::new(clients);
    let mut values = vec![String::new(); keys];
    let mut history = Vec::with_capacity(ops);
    for number in 0..ops {
        let key_index = rng.below(keys as u64) as usize;
        let key = format!("k{key_index}");
        let (timed_out, took_effect) = draw_fate(&mut rng);
        let timing = schedule.next(&mut rng, timed_out);
        let Some(value) = values.get_mut(key_index) else {
            continue;
        };
        let roll = rng.below(100);
        let (input, output) = if roll < 45 {
            let output = Response::Value {
                value: value.clone(),
            };
            (KvInput::Get { key }, output)
        } else if roll < 55 {
            let new = format!("p{number};");
            if took_effect {
                value.clone_from(&new);
            }
            (KvInput::Put { key, value: new }, Response::Ok)
        } else if roll < 95 {
            let suffix = format!("{number};");
            if took_effect {
                value.push_str(&suffix);
            }
            (KvInput::Append { key, value: suffix }, Response::Ok)
        } else {
            let expected = if rng.below(2) == 0 {
                value.clone()
            } else {
                format!("p{};", rng.below(number as u64 + 1))
            };
            let new = format!("c{number};");
            let matched = *value == expected;
            if matched && took_effect {
                value.clone_from(&new);
            }
            let output = if matched {
                Response::Ok
            } else {
                Response::Failed
            };
            (KvInput::Cas { key, expected, new }, output)
        };
        history.push(Operation {
            client: timing.client,
            input,
            call: timing.call,
            output: if timed_out { Response::Unknown } else { output },
            ret: timing.ret,
        });
    }
    Ok(history)
}

/// A linearizable history of one [`super::models::CasRegister`]: `ops` operations by
/// `clients` concurrent clients, about 50% reads, 25% writes and 25% compare-and-sets of
/// values below 5 (so that compare-and-sets often succeed). Same seed, same history.
pub fn random_cas_register_history(
    seed: u64,
    ops: usize,
    clients: usize,
) -> Result<Vec<Operation<CasRegisterInput, RegisterOutput>>> {
    check_sizes(ops, clients)?;
    let mut rng = SimRng::new(seed);
    let mut schedule = OverlappingSchedule::new(clients);
    let mut register: Option<i64> = None;
    let mut history = Vec::with_capacity(ops);
    for _ in 0..ops {
        let (timed_out, took_effect) = draw_fate(&mut rng);
        let timing = schedule.next(&mut rng, timed_out);
        let roll = rng.below(4);
        let (input, output) = match roll {
            0 | 1 => (CasRegisterInput::Read, Response::Value { value: register }),
            2 => {
                let value = rng.below(5) as i64;
                if took_effect {
                    register = Some(value);
                }
                (CasRegisterInput::Write { value }, Response::Ok)
            }
            _ => {
                let expected = rng.below(5) as i64;
                let new = rng.below(5) as i64;
                let matched = register == Some(expected);
                if matched && took_effect {
                    register = Some(new);
                }
                let output = if matched {
                    Response::Ok
                } else {
                    Response::Failed
                };
                (CasRegisterInput::Cas { expected, new }, output)
            }
        };
        history.push(Operation {
            client: timing.client,
            input,
            call: timing.call,
            output: if timed_out { Response::Unknown } else { output },
            ret: timing.ret,
        });
    }
    Ok(history)
}
