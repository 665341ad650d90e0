//! Snowflake IDs (Twitter 2010, "Announcing Snowflake"; the layout Discord documents in
//! its API reference, "Snowflakes"): a 64-bit id that sorts by creation time without
//! coordination — 1 unused sign bit, a 41-bit millisecond timestamp since a chosen epoch
//! (about 69 years), a 10-bit node id (Twitter's original splits it 5 + 5 into datacenter
//! and worker; Discord calls the halves internal worker and process) and a 12-bit sequence
//! numbering the ids of one millisecond (4,096 a ms per node).
//!
//! The generator is sans-I/O: it reads the caller's clock (`now_ms`, Unix ms) and either
//! gives an id or says until when to wait ([`Issued::WaitUntil`]). Two things break
//! ordering, and the policy for each is a switch:
//! - **The clock moves backwards** (an NTP step, a VM migration) — [`ClockPolicy`]:
//!   `Naive` trusts it (the id goes backwards and may repeat an earlier one — what the
//!   lab shows), `Refuse` returns an error (Twitter's original), `Wait` says to wait until
//!   the clock is back at the last timestamp, `Borrow` keeps issuing from the last
//!   timestamp (the generator's time runs ahead of the clock until the clock catches up).
//! - **The sequence overflows** within one millisecond: wait for the next millisecond;
//!   under `Borrow` the generator borrows it at once (its time is already logical).
//!
//! `Refuse`, `Wait` and `Borrow` give strictly increasing ids whatever the clock does
//! ([`ClockPolicy::is_monotonic`], checked by property tests); `Naive` does not. Each call
//! is O(1).

use serde::{Deserialize, Serialize};

use crate::error::{DistlabError, Result};

/// Bits of the millisecond timestamp.
pub const TIMESTAMP_BITS: u32 = 41;
/// Bits of the node id.
pub const NODE_BITS: u32 = 10;
/// Bits of the per-millisecond sequence.
pub const SEQUENCE_BITS: u32 = 12;
/// The largest node id (1,023).
pub const MAX_NODE_ID: u16 = (1 << NODE_BITS) - 1;
/// The largest sequence number (4,095).
pub const MAX_SEQUENCE: u16 = (1 << SEQUENCE_BITS) - 1;
const MAX_TIMESTAMP: u64 = (1 << TIMESTAMP_BITS) - 1;
/// Twitter's epoch, 2010-11-04T01:42:54.657Z.
pub const TWITTER_EPOCH_MS: u64 = 1_288_834_974_657;
/// Discord's epoch, 2015-01-01T00:00:00.000Z.
pub const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

/// What to do when the clock reads earlier than the last id's timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum ClockPolicy {
    /// Use the clock as it reads: ids go backwards and may repeat.
    Naive,
    /// Return an error until the clock is back.
    #[default]
    Refuse,
    /// Say to wait until the clock is back at the last timestamp.
    Wait,
    /// Keep using the last timestamp (and the ms after it when its sequence runs out).
    Borrow,
}

impl ClockPolicy {
    pub const ALL: [ClockPolicy; 4] = [
        ClockPolicy::Naive,
        ClockPolicy::Refuse,
        ClockPolicy::Wait,
        ClockPolicy::Borrow,
    ];

    /// Whether every id it gives is greater than the one before, whatever the clock does.
    pub fn is_monotonic(self) -> bool {
        self != ClockPolicy::Naive
    }

    pub fn name(self) -> &'static str {
        match self {
            ClockPolicy::Naive => "naive",
            ClockPolicy::Refuse => "refuse",
            ClockPolicy::Wait => "wait",
            ClockPolicy::Borrow => "borrow",
        }
    }
}

/// The answer to a request for an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Issued {
    Id(u64),
    /// No id now: ask again when the clock reads at least this (Unix ms).
    WaitUntil(u64),
}

/// The answer to a request for several ids at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum IssuedRun {
    /// `count` consecutive ids from `first`: one timestamp, consecutive sequence numbers.
    Ids { first: u64, count: u32 },
    /// No id now: ask again when the clock reads at least this (Unix ms).
    WaitUntil(u64),
}

/// An id taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decoded {
    /// Creation time, Unix ms.
    pub unix_ms: u64,
    pub node_id: u16,
    pub sequence: u16,
}

impl Decoded {
    /// The node id's 5 + 5 split: (datacenter, worker) in Twitter's naming, (internal
    /// worker, internal process) in Discord's.
    pub fn node_halves(&self) -> (u8, u8) {
        ((self.node_id >> 5) as u8, (self.node_id & 0x1f) as u8)
    }
}

/// Takes `id` apart, its timestamp counted from `epoch_ms` (Unix ms). Errors when the
/// sign bit is set (not a Snowflake) or the time overflows.
pub fn decode(id: u64, epoch_ms: u64) -> Result<Decoded> {
    if id >> 63 != 0 {
        return Err(DistlabError::field(
            "id",
            format!("{id} has the sign bit set: not a Snowflake id"),
        ));
    }
    let unix_ms = (id >> (NODE_BITS + SEQUENCE_BITS))
        .checked_add(epoch_ms)
        .ok_or_else(|| DistlabError::field("epochMs", "the id's time overflows"))?;
    Ok(Decoded {
        unix_ms,
        node_id: ((id >> SEQUENCE_BITS) & u64::from(MAX_NODE_ID)) as u16,
        sequence: (id & u64::from(MAX_SEQUENCE)) as u16,
    })
}

/// Puts an id together from a timestamp relative to the epoch.
fn compose(since_epoch_ms: u64, node_id: u16, sequence: u16) -> u64 {
    (since_epoch_ms << (NODE_BITS + SEQUENCE_BITS))
        | (u64::from(node_id) << SEQUENCE_BITS)
        | u64::from(sequence)
}

/// A generator's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SnowflakeConfig {
    /// Unix ms that timestamp 0 stands for (Twitter's epoch if left out).
    #[serde(default = "twitter_epoch")]
    pub epoch_ms: u64,
    /// 0 to 1,023; unique per generator.
    pub node_id: u16,
    /// `refuse` if left out.
    #[serde(default)]
    pub on_clock_backwards: ClockPolicy,
}

fn twitter_epoch() -> u64 {
    TWITTER_EPOCH_MS
}

/// One node's Snowflake generator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snowflake {
    config: SnowflakeConfig,
    /// The last id's timestamp, ms since the epoch (`None` before the first id).
    last_ms: Option<u64>,
    sequence: u16,
}

impl Snowflake {
    /// Errors when the node id does not fit in 10 bits.
    pub fn new(config: SnowflakeConfig) -> Result<Self> {
        if config.node_id > MAX_NODE_ID {
            return Err(DistlabError::field(
                "nodeId",
                format!("must be at most {MAX_NODE_ID}, got {}", config.node_id),
            ));
        }
        Ok(Snowflake {
            config,
            last_ms: None,
            sequence: 0,
        })
    }

    pub fn config(&self) -> SnowflakeConfig {
        self.config
    }

    /// The last id's timestamp, Unix ms.
    pub fn last_unix_ms(&self) -> Option<u64> {
        self.last_ms.map(|t| t + self.config.epoch_ms)
    }

    /// How far the generator's time runs ahead of a clock reading `now_ms` (what `Borrow`
    /// has borrowed; 0 when the clock is at or past it).
    pub fn ahead_of_clock_ms(&self, now_ms: u64) -> u64 {
        self.last_unix_ms()
            .map_or(0, |last| last.saturating_sub(now_ms))
    }

    /// An id at clock reading `now_ms` (Unix ms), or when to ask again. Errors (state
    /// unchanged) when the clock reads before the epoch or past the 41 bits, and under
    /// `Refuse` when the clock has moved backwards.
    pub fn next_id(&mut self, now_ms: u64) -> Result<Issued> {
        let epoch = self.config.epoch_ms;
        let now = now_ms.checked_sub(epoch).ok_or_else(|| {
            DistlabError::field(
                "nowMs",
                format!("{now_ms} is before the epoch {epoch}: no timestamp for it"),
            )
        })?;
        let (ts, sequence) = match self.last_ms {
            None => (now, 0),
            Some(last) if now > last => (now, 0),
            Some(last) if now == last => match self.sequence.checked_add(1) {
                Some(s) if s <= MAX_SEQUENCE => (now, s),
                _ if self.config.on_clock_backwards == ClockPolicy::Borrow => (last + 1, 0),
                _ => return Ok(Issued::WaitUntil(now_ms + 1)),
            },
            Some(last) => match self.config.on_clock_backwards {
                ClockPolicy::Naive => (now, 0),
                ClockPolicy::Refuse => {
                    return Err(DistlabError::InvalidState(format!(
                        "the clock moved backwards by {} ms; refusing to issue an id",
                        last - now
                    )));
                }
                ClockPolicy::Wait => return Ok(Issued::WaitUntil(last + epoch)),
                ClockPolicy::Borrow => match self.sequence.checked_add(1) {
                    Some(s) if s <= MAX_SEQUENCE => (last, s),
                    _ => (last + 1, 0),
                },
            },
        };
        if ts > MAX_TIMESTAMP {
            return Err(DistlabError::field(
                "nowMs",
                format!(
                    "{} ms after the epoch does not fit in {TIMESTAMP_BITS} bits",
                    ts
                ),
            ));
        }
        self.last_ms = Some(ts);
        self.sequence = sequence;
        Ok(Issued::Id(compose(ts, self.config.node_id, sequence)))
    }
}

impl Snowflake {
    /// Up to `wanted` ids at clock reading `now_ms`, as one run: exactly the ids that many
    /// [`Snowflake::next_id`] calls at `now_ms` would give before the millisecond's
    /// sequence runs out (after the first, each call continues the same timestamp). O(1),
    /// for callers that want thousands of ids.
    pub fn next_run(&mut self, now_ms: u64, wanted: u32) -> Result<IssuedRun> {
        let first = match self.next_id(now_ms)? {
            Issued::Id(id) => id,
            Issued::WaitUntil(t) => return Ok(IssuedRun::WaitUntil(t)),
        };
        let room = MAX_SEQUENCE - self.sequence;
        let more = u16::try_from(wanted.saturating_sub(1))
            .unwrap_or(u16::MAX)
            .min(room);
        self.sequence += more;
        Ok(IssuedRun::Ids {
            first,
            count: u32::from(more) + 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn generator(policy: ClockPolicy) -> Snowflake {
        Snowflake::new(SnowflakeConfig {
            epoch_ms: DISCORD_EPOCH_MS,
            node_id: 0b00001_00011,
            on_clock_backwards: policy,
        })
        .unwrap()
    }

    fn id(i: Result<Issued>) -> u64 {
        match i.unwrap() {
            Issued::Id(id) => id,
            w => panic!("expected an id, got {w:?}"),
        }
    }

    #[test]
    fn ids_round_trip_through_decode() {
        let mut g = generator(ClockPolicy::Refuse);
        let t = DISCORD_EPOCH_MS + 1_000;
        let a = id(g.next_id(t));
        let b = id(g.next_id(t));
        let d = decode(b, DISCORD_EPOCH_MS).unwrap();
        assert_eq!((d.unix_ms, d.node_id, d.sequence), (t, 35, 1));
        assert_eq!(d.node_halves(), (1, 3));
        assert!(b > a);
        assert!(decode(1 << 63, 0).is_err());
    }

    #[test]
    fn the_sequence_runs_out_and_waits_for_the_next_ms() {
        let t = DISCORD_EPOCH_MS + 5;
        for policy in ClockPolicy::ALL {
            let mut g = generator(policy);
            for _ in 0..=MAX_SEQUENCE {
                id(g.next_id(t));
            }
            let next = g.next_id(t).unwrap();
            if policy == ClockPolicy::Borrow {
                let Issued::Id(x) = next else {
                    panic!("borrow takes the next ms")
                };
                let d = decode(x, DISCORD_EPOCH_MS).unwrap();
                assert_eq!((d.unix_ms, d.sequence), (t + 1, 0));
                assert_eq!(g.ahead_of_clock_ms(t), 1);
            } else {
                assert_eq!(next, Issued::WaitUntil(t + 1), "{policy:?}");
                let d = decode(id(g.next_id(t + 1)), DISCORD_EPOCH_MS).unwrap();
                assert_eq!((d.unix_ms, d.sequence), (t + 1, 0));
            }
        }
    }

    /// The clock steps back 10 ms: what each policy does with it.
    #[test]
    fn a_backward_clock_step_under_each_policy() {
        let t = DISCORD_EPOCH_MS + 100;
        let mut outcomes = Vec::new();
        for policy in ClockPolicy::ALL {
            let mut g = generator(policy);
            let before = id(g.next_id(t));
            outcomes.push((policy, before, g.next_id(t - 10)));
        }
        let [naive, refuse, wait, borrow] = &outcomes[..] else {
            unreachable!()
        };
        assert!(matches!(naive.2, Ok(Issued::Id(x)) if x < naive.1));
        assert!(refuse.2.is_err());
        assert_eq!(wait.2, Ok(Issued::WaitUntil(t)));
        assert!(matches!(borrow.2, Ok(Issued::Id(x)) if x == borrow.1 + 1));
        let mut naive_gen = generator(ClockPolicy::Naive);
        let first = id(naive_gen.next_id(t - 10));
        id(naive_gen.next_id(t));
        // The naive generator repeats an id it gave 10 ms of clock time earlier.
        assert_eq!(id(naive_gen.next_id(t - 10)), first);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(
            Snowflake::new(SnowflakeConfig {
                epoch_ms: 0,
                node_id: 1024,
                on_clock_backwards: ClockPolicy::Wait
            })
            .is_err()
        );
        let mut g = generator(ClockPolicy::Wait);
        assert!(g.next_id(DISCORD_EPOCH_MS - 1).is_err());
        assert!(g.next_id(DISCORD_EPOCH_MS + MAX_TIMESTAMP + 1).is_err());
        assert_eq!(g.last_unix_ms(), None);
        assert!(g.next_id(DISCORD_EPOCH_MS + MAX_TIMESTAMP).is_ok());
    }

    /// A clock trace: each step moves the clock by `delta` ms (negative: a backward step)
    /// and asks for `calls` ids.
    fn trace() -> impl Strategy<Value = Vec<(i64, u16)>> {
        proptest::collection::vec(
            (
                prop_oneof![8 => 0i64..3, 1 => -50i64..0, 1 => 3i64..100],
                prop_oneof![9 => 1u16..4, 1 => 4000u16..4200],
            ),
            1..60,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// A run is the ids that as many single calls give.
        #[test]
        fn a_run_is_the_ids_single_calls_give(trace in trace(), policy in 0usize..4) {
            let policy = ClockPolicy::ALL[policy];
            let (mut single, mut runs) = (generator(policy), generator(policy));
            let mut now = DISCORD_EPOCH_MS + 1_000;
            for &(delta, calls) in &trace {
                now = now.saturating_add_signed(delta).max(DISCORD_EPOCH_MS);
                let mut left = u32::from(calls);
                while left > 0 {
                    match runs.next_run(now, left) {
                        Ok(IssuedRun::Ids { first, count }) => {
                            prop_assert!(count >= 1 && count <= left);
                            for k in 0..u64::from(count) {
                                prop_assert_eq!(single.next_id(now), Ok(Issued::Id(first + k)));
                            }
                            left -= count;
                        }
                        Ok(IssuedRun::WaitUntil(t)) => {
                            prop_assert_eq!(single.next_id(now), Ok(Issued::WaitUntil(t)));
                            break;
                        }
                        Err(e) => {
                            prop_assert_eq!(single.next_id(now), Err(e));
                            break;
                        }
                    }
                }
                prop_assert_eq!(&single, &runs);
            }
        }

        #[test]
        fn ids_strictly_increase_under_every_policy_that_claims_it(trace in trace()) {
            for policy in ClockPolicy::ALL.into_iter().filter(|p| p.is_monotonic()) {
                let mut g = generator(policy);
                let mut now = DISCORD_EPOCH_MS + 1_000;
                let mut last: Option<u64> = None;
                let mut issued = 0u32;
                for &(delta, calls) in &trace {
                    now = now.saturating_add_signed(delta).max(DISCORD_EPOCH_MS);
                    for _ in 0..calls {
                        match g.next_id(now) {
                            Ok(Issued::Id(x)) => {
                                prop_assert!(last.is_none_or(|l| x > l), "{:?}", policy);
                                // Ids carry the node; only Borrow stamps a time other
                                // than the clock's.
                                let d = decode(x, DISCORD_EPOCH_MS).unwrap();
                                prop_assert_eq!(d.node_id, 35);
                                if policy == ClockPolicy::Borrow {
                                    prop_assert_eq!(d.unix_ms, now + g.ahead_of_clock_ms(now));
                                } else {
                                    prop_assert_eq!(d.unix_ms, now);
                                }
                                last = Some(x);
                                issued += 1;
                            }
                            Ok(Issued::WaitUntil(t)) => prop_assert!(t > now),
                            Err(_) => prop_assert_eq!(policy, ClockPolicy::Refuse),
                        }
                    }
                }
                // Borrow never refuses nor waits: a backward step and a spent sequence are
                // both borrowed.
                if policy == ClockPolicy::Borrow {
                    let calls: u32 = trace.iter().map(|&(_, c)| u32::from(c)).sum();
                    prop_assert_eq!(issued, calls);
                }
            }
        }
    }
}
