//! A process that stamps its events with a logical clock, as a simulated node: the
//! clocks lab's node, one generic for the three clocks ([`ClockKind`]: Lamport, vector,
//! HLC). Every `event` interval of its own (skewable, driftable) clock it has an event: a
//! send to a random peer or a local one; a message's receipt is an event too.
//!
//! Each event is checked where it happens against its direct causal predecessors — the
//! process's previous event and, for a receipt, the send: happened-before is the
//! transitive closure of exactly those edges and timestamp order is transitive, so checking
//! them checks "a → b ⇒ C(a) < C(b)" for every pair. An HLC event is also checked against
//! its bound `l − pt ≤ ε` (Kulkarni et al. 2014, Theorem 1 with ε the clocks' spread).
//!
//! The clock is durable: written and fsynced before the event has any effect, as Lamport's
//! clock must be — a process that forgets its clock in a crash gives its next events
//! timestamps below ones it gave before. Two files take turns, so a crash that tears the
//! write in progress leaves the previous event's clock whole in the other; and each record
//! carries a checksum, because a torn overwrite lays the head of the new record over the
//! tail of the old one, which can parse — a new event count with an old clock (found by
//! `tests/tests/consistency_clocks.rs`, `a_torn_clock_write_does_not_restart_the_clock`).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fmt::Debug;
use std::hash::Hash;

use crate::consistency::hlc::{Hlc, HlcTimestamp};
use crate::consistency::lamport::LamportClock;
use crate::consistency::vector_clock::{ClockOrder, VectorClock};
use crate::error::Result;
use crate::sim::disk::{Disk, DiskOp};
use crate::sim::trace::StableHasher;
use crate::sim::{ClientRequest, Ctx, Fingerprint, Node, NodeId, Reply, TimerId};
use crate::time::Duration;

/// The files the clock is kept in, taking turns event by event.
pub const CLOCK_FILES: [&str; 2] = ["clock-a", "clock-b"];
const EVENT_TIMER: TimerId = 1;
/// Events a node keeps for the lab to read.
pub const RECENT_EVENTS: usize = 16;

/// One of the three logical clocks as the lab runs it.
pub trait ClockKind: Clone + Debug + 'static {
    /// The catalog id (`consistency.lamport`).
    const ID: &'static str;
    /// Whether the clock has a physical part (and [`ClockKind::divergence_ms`] a value).
    const PHYSICAL: bool = false;
    type Clock: Clone + Debug + PartialEq + Hash + Serialize + DeserializeOwned;
    type Stamp: Clone + Debug + PartialEq + Hash + Serialize;
    fn new_clock(config: &ClockNodeConfig) -> Self::Clock;
    /// The stamp of the clock's last event.
    fn current(clock: &Self::Clock) -> Self::Stamp;
    /// A local event or a send by process `me` at physical time `pt_ms`.
    fn tick(clock: &mut Self::Clock, me: NodeId, pt_ms: u64) -> Result<Self::Stamp>;
    /// The receipt of a message stamped `m`.
    fn receive(
        clock: &mut Self::Clock,
        me: NodeId,
        m: &Self::Stamp,
        pt_ms: u64,
    ) -> Result<Self::Stamp>;
    /// Whether the clock orders `a` before `b`.
    fn precedes(a: &Self::Stamp, b: &Self::Stamp) -> bool;
    /// How two stamps are causally related, for the clocks that can tell (vector clocks).
    fn relation(_a: &Self::Stamp, _b: &Self::Stamp) -> Option<ClockOrder> {
        None
    }
    /// `l − pt` for a clock with a physical part (the HLC).
    fn divergence_ms(_s: &Self::Stamp, _pt_ms: u64) -> Option<i64> {
        None
    }
}

/// Lamport clocks.
#[derive(Debug, Clone)]
pub struct LamportKind;
impl ClockKind for LamportKind {
    const ID: &'static str = "consistency.lamport";
    type Clock = LamportClock;
    type Stamp = u64;
    fn new_clock(_: &ClockNodeConfig) -> LamportClock {
        LamportClock::new()
    }
    fn current(clock: &LamportClock) -> u64 {
        clock.time()
    }
    fn tick(clock: &mut LamportClock, _: NodeId, _: u64) -> Result<u64> {
        clock.tick()
    }
    fn receive(clock: &mut LamportClock, _: NodeId, m: &u64, _: u64) -> Result<u64> {
        clock.receive(*m)
    }
    fn precedes(a: &u64, b: &u64) -> bool {
        a < b
    }
}

/// Vector clocks.
#[derive(Debug, Clone)]
pub struct VectorKind;
impl ClockKind for VectorKind {
    const ID: &'static str = "consistency.vector-clock";
    type Clock = VectorClock;
    type Stamp = VectorClock;
    fn new_clock(_: &ClockNodeConfig) -> VectorClock {
        VectorClock::new()
    }
    fn current(clock: &VectorClock) -> VectorClock {
        clock.clone()
    }
    fn tick(clock: &mut VectorClock, me: NodeId, _: u64) -> Result<VectorClock> {
        clock.increment(me)?;
        Ok(clock.clone())
    }
    fn receive(
        clock: &mut VectorClock,
        me: NodeId,
        m: &VectorClock,
        _: u64,
    ) -> Result<VectorClock> {
        let mut next = clock.clone();
        next.merge(m);
        next.increment(me)?;
        *clock = next;
        Ok(clock.clone())
    }
    fn precedes(a: &VectorClock, b: &VectorClock) -> bool {
        a.compare(b) == ClockOrder::Before
    }
    fn relation(a: &VectorClock, b: &VectorClock) -> Option<ClockOrder> {
        Some(a.compare(b))
    }
}

/// Hybrid logical clocks.
#[derive(Debug, Clone)]
pub struct HlcKind;
impl ClockKind for HlcKind {
    const ID: &'static str = "consistency.hlc";
    const PHYSICAL: bool = true;
    type Clock = Hlc;
    type Stamp = HlcTimestamp;
    fn new_clock(config: &ClockNodeConfig) -> Hlc {
        Hlc::new(config.max_offset_ms)
    }
    fn current(clock: &Hlc) -> HlcTimestamp {
        clock.last()
    }
    fn tick(clock: &mut Hlc, _: NodeId, pt_ms: u64) -> Result<HlcTimestamp> {
        clock.tick(pt_ms)
    }
    fn receive(clock: &mut Hlc, _: NodeId, m: &HlcTimestamp, pt_ms: u64) -> Result<HlcTimestamp> {
        clock.receive(*m, pt_ms)
    }
    fn precedes(a: &HlcTimestamp, b: &HlcTimestamp) -> bool {
        a < b
    }
    fn divergence_ms(s: &HlcTimestamp, pt_ms: u64) -> Option<i64> {
        Some(s.l as i64 - pt_ms as i64)
    }
}

/// Every node's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClockNodeConfig {
    /// Time between two of a node's own events, on its clock.
    pub event: Duration,
    /// Share of those events that are sends (in per mille, to keep the config hashable).
    pub send_per_mille: u32,
    /// The HLC's ε.
    pub max_offset_ms: u64,
}

/// What kind of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum EventKind {
    Local,
    Send { to: NodeId },
    Receive { from: NodeId, send: u64 },
}

/// One event as the lab reads it.
#[derive(Debug, Clone, PartialEq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClockEvent<S> {
    /// The process's events are numbered from 1, across crashes.
    pub seq: u64,
    pub kind: EventKind,
    pub stamp: S,
    /// The process's physical clock, ms.
    pub pt_ms: u64,
    /// Whether the stamp is above its predecessors' (the previous event's; the send's).
    pub ordered: bool,
    /// `l − pt` for the HLC.
    pub divergence_ms: Option<i64>,
}

/// A message: the send event's number and stamp.
#[derive(Debug, Clone, PartialEq, Hash)]
pub struct Stamped<S> {
    pub send: u64,
    pub stamp: S,
}

impl<S: Hash> Fingerprint for Stamped<S> {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        self.hash(h);
    }
}

/// A lab's request: one event at this node now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventRequest {
    Local,
    Send { to: NodeId },
}

/// Counts a node keeps since boot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ClockNodeStats {
    /// Messages a clock refused (an HLC's, from too far ahead).
    pub refused: u64,
}

/// What the disk keeps.
#[derive(Serialize, Deserialize)]
#[serde(bound(deserialize = "C: DeserializeOwned"))]
struct Persisted<C> {
    events: u64,
    clock: C,
}

/// A record: the checksum of the JSON body in hex, a space, the body.
fn encode<C: Serialize>(p: &Persisted<C>) -> Vec<u8> {
    let body = serde_json::to_vec(p).unwrap_or_default();
    let mut bytes = format!("{:016x} ", checksum(&body)).into_bytes();
    bytes.extend_from_slice(&body);
    bytes
}

/// The record in `bytes` if it is whole (its checksum matches).
fn decode<C: DeserializeOwned>(bytes: &[u8]) -> Option<Persisted<C>> {
    let sum = bytes.get(..16)?;
    let body = bytes.get(17..)?;
    let sum = u64::from_str_radix(std::str::from_utf8(sum).ok()?, 16).ok()?;
    if bytes.get(16) != Some(&b' ') || checksum(body) != sum {
        return None;
    }
    serde_json::from_slice(body).ok()
}

fn checksum(body: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = StableHasher::default();
    h.write(body);
    h.finish()
}

/// A process with a logical clock.
#[derive(Debug, Clone)]
pub struct ClockNode<K: ClockKind> {
    id: NodeId,
    config: ClockNodeConfig,
    clock: K::Clock,
    events: u64,
    recent: VecDeque<ClockEvent<K::Stamp>>,
    stats: ClockNodeStats,
}

/// Whether `stamp` is above its direct predecessors' stamps: `previous` (the process's
/// last event, if any) and `send` (for a receipt).
pub fn ordered_after<K: ClockKind>(
    previous: Option<&K::Stamp>,
    send: Option<&K::Stamp>,
    stamp: &K::Stamp,
) -> bool {
    previous.is_none_or(|p| K::precedes(p, stamp)) && send.is_none_or(|s| K::precedes(s, stamp))
}

impl<K: ClockKind> ClockNode<K> {
    pub fn clock(&self) -> &K::Clock {
        &self.clock
    }
    pub fn events(&self) -> u64 {
        self.events
    }
    /// The newest events, oldest first.
    pub fn recent(&self) -> impl Iterator<Item = &ClockEvent<K::Stamp>> {
        self.recent.iter()
    }
    pub fn stats(&self) -> ClockNodeStats {
        self.stats
    }

    fn pt_ms(ctx: &Ctx<'_, Self>) -> u64 {
        ctx.now().0 / 1_000
    }

    /// Records an event stamped by `step` (which moves `self.clock`), persists the clock
    /// and returns the stamp; on a clock error nothing happens and the error is returned.
    fn event(
        &mut self,
        kind: EventKind,
        received: Option<&K::Stamp>,
        ctx: &mut Ctx<'_, Self>,
    ) -> Result<K::Stamp> {
        let pt = Self::pt_ms(ctx);
        let previous = (self.events > 0).then(|| K::current(&self.clock));
        let mut clock = self.clock.clone();
        let stamp = match received {
            Some(m) => K::receive(&mut clock, self.id, m, pt)?,
            None => K::tick(&mut clock, self.id, pt)?,
        };
        let bytes = encode(&Persisted {
            events: self.events + 1,
            clock: &clock,
        });
        let file = CLOCK_FILES[(self.events % 2) as usize];
        ctx.disk(DiskOp::Overwrite { file, bytes });
        ctx.disk(DiskOp::Fsync);
        self.clock = clock;
        self.events += 1;
        if self.recent.len() == RECENT_EVENTS {
            self.recent.pop_front();
        }
        self.recent.push_back(ClockEvent {
            seq: self.events,
            kind,
            stamp: stamp.clone(),
            pt_ms: pt,
            ordered: ordered_after::<K>(previous.as_ref(), received, &stamp),
            divergence_ms: K::divergence_ms(&stamp, pt),
        });
        Ok(stamp)
    }

    fn send(&mut self, to: NodeId, ctx: &mut Ctx<'_, Self>) -> Result<()> {
        let stamp = self.event(EventKind::Send { to }, None, ctx)?;
        ctx.send(
            to,
            Stamped {
                send: self.events,
                stamp,
            },
        );
        Ok(())
    }
}

impl<K: ClockKind> Fingerprint for ClockNode<K> {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        let ClockNode {
            id,
            config,
            clock,
            events,
            recent,
            stats,
        } = self;
        id.hash(h);
        config.hash(h);
        clock.hash(h);
        events.hash(h);
        recent.hash(h);
        stats.hash(h);
    }
}

impl<K: ClockKind> Node for ClockNode<K> {
    type Message = Stamped<K::Stamp>;
    type Request = EventRequest;
    /// The event's number.
    type Response = u64;
    type Config = ClockNodeConfig;

    fn recover(id: NodeId, config: &ClockNodeConfig, disk: &Disk) -> Self {
        // The newer of the two whole records; a torn one fails its checksum, and the other
        // then holds the clock of the event before (none: first boot).
        let (events, clock) = CLOCK_FILES
            .iter()
            .filter_map(|f| decode::<K::Clock>(disk.read(f)))
            .max_by_key(|p| p.events)
            .map_or_else(|| (0, K::new_clock(config)), |p| (p.events, p.clock));
        ClockNode {
            id,
            config: *config,
            clock,
            events,
            recent: VecDeque::new(),
            stats: ClockNodeStats::default(),
        }
    }

    fn on_start(&mut self, ctx: &mut Ctx<'_, Self>) {
        ctx.set_timer(EVENT_TIMER, self.config.event);
    }

    fn on_message(&mut self, from: NodeId, msg: Stamped<K::Stamp>, ctx: &mut Ctx<'_, Self>) {
        let kind = EventKind::Receive {
            from,
            send: msg.send,
        };
        if self.event(kind, Some(&msg.stamp), ctx).is_err() {
            self.stats.refused += 1;
        }
    }

    fn on_timer(&mut self, _timer: TimerId, ctx: &mut Ctx<'_, Self>) {
        let n = ctx.node_count();
        let send = n > 1 && ctx.rng().below(1_000) < u64::from(self.config.send_per_mille);
        // A clock that would overflow leaves the event out; the lab shows the count.
        let _ = if send {
            let to = (self.id + 1 + ctx.rng().below(u64::from(n - 1)) as u32) % n;
            self.send(to, ctx)
        } else {
            self.event(EventKind::Local, None, ctx).map(|_| ())
        };
        ctx.set_timer(EVENT_TIMER, self.config.event);
    }

    fn on_request(&mut self, request: ClientRequest<EventRequest>, ctx: &mut Ctx<'_, Self>) {
        let done = match request.body {
            EventRequest::Local => self.event(EventKind::Local, None, ctx).map(|_| ()),
            EventRequest::Send { to } if to < ctx.node_count() && to != self.id => {
                self.send(to, ctx)
            }
            EventRequest::Send { to } => Err(crate::error::DistlabError::field(
                "to",
                format!("node {to} is not another node of the cluster"),
            )),
        };
        let reply = match done {
            Ok(()) => Reply::Ok(self.events),
            Err(e) => Reply::Fail(e.to_string()),
        };
        ctx.reply(request.client, request.id, reply);
    }

    fn message_kind(_msg: &Stamped<K::Stamp>) -> &'static str {
        "stamped"
    }

    fn role(&self) -> &'static str {
        "process"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_torn_into_a_parseable_mixture_is_refused() {
        let old = encode(&Persisted {
            events: 27,
            clock: LamportClock::new(),
        });
        let mut newer = LamportClock::new();
        newer.tick().unwrap();
        let new = encode(&Persisted {
            events: 29,
            clock: newer,
        });
        assert!(decode::<LamportClock>(&new).is_some_and(|p| p.events == 29));
        // Every head of the new record over the tail of the old one: none is taken.
        for keep in 1..new.len() {
            let mut torn = old.clone();
            torn.resize(torn.len().max(keep), 0);
            torn.splice(..keep, new[..keep].iter().copied());
            if torn == new {
                // The old byte under the missing tail was the new one: the record is whole.
                continue;
            }
            assert!(decode::<LamportClock>(&torn).is_none(), "{keep}");
        }
    }

    #[test]
    fn the_order_check_can_fail() {
        // A receipt stamped below its send, a Lamport clock that went back after a
        // crash, and a vector clock concurrent with its predecessor: each caught.
        assert!(!ordered_after::<LamportKind>(Some(&3), Some(&7), &5));
        assert!(!ordered_after::<LamportKind>(Some(&9), None, &1));
        assert!(ordered_after::<LamportKind>(Some(&3), Some(&7), &8));
        let a = VectorClock::try_from(std::collections::BTreeMap::from([(0, 2)])).unwrap();
        let b = VectorClock::try_from(std::collections::BTreeMap::from([(1, 1)])).unwrap();
        assert!(!ordered_after::<VectorKind>(Some(&a), None, &b));
        let h = |l, c| HlcTimestamp { l, c };
        assert!(!ordered_after::<HlcKind>(
            Some(&h(5, 0)),
            Some(&h(5, 2)),
            &h(5, 2)
        ));
        assert!(ordered_after::<HlcKind>(None, None, &h(0, 0)));
    }
}
