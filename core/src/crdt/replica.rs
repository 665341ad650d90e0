//! A CRDT replica as a simulated node: it applies client updates (persisting each delta
//! before it answers), and every `gossip` interval pushes its whole state to the next
//! `fanout` peers in round-robin order — state-based anti-entropy (Shapiro et al. 2011,
//! §2.2.2: "a state-based object ... eventually delivers its state to every replica").
//! Round-robin rather than random peers: once the network is whole and quiet, every
//! replica hears every other's latest state within ⌈(n − 1) / fanout⌉ rounds.
//!
//! Durability: a replica must never reuse its own slots, tags or ids after a crash, so
//! each update's delta is appended to the disk (a [`crate::sim::records`] log, with the
//! request's id) and fsynced before the reply; a restart merges the deltas back and
//! remembers the newest request ids, so a duplicate of an acknowledged request that
//! arrives after the restart is not applied twice. A torn last record is cut before
//! anything is appended (it was never acknowledged, and nothing else saw it): appended
//! after the torn bytes, the next delta would be unreadable at the next recovery — an
//! acknowledged increment lost. State merged from peers is not persisted: gossip brings
//! it back.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::hash::{Hash, Hasher};

use crate::crdt::{Crdt, ReplicaId};
use crate::rng::SimRng;
use crate::sim::disk::{Disk, DiskOp};
use crate::sim::records;
use crate::sim::trace::StableHasher;
use crate::sim::{ClientRequest, Ctx, Fingerprint, Node, NodeId, Reply, RequestId, TimerId};
use crate::time::Duration;

/// The file a replica's deltas go to.
pub const DELTA_LOG: &str = "crdt-deltas";
const GOSSIP_TIMER: TimerId = 1;
/// Client requests a replica remembers, to apply a request the network duplicated once.
const RECENT_REQUESTS: usize = 256;

/// The random numbers a client update is made from, the same for every CRDT: each kind
/// reads them its way ([`CrdtKind::resolve`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Draw {
    /// Remove / decrement / delete rather than add / increment / insert.
    pub remove: bool,
    /// An element or key, below the lab's `keys`.
    pub key: u32,
    /// A value to write, below the lab's `keys`.
    pub value: u32,
    /// Picks a position or an element present at the replica when the update arrives.
    pub pick: u64,
}

impl Draw {
    /// Draws an update over `keys` keys, removing with probability `remove`.
    pub fn random(rng: &mut SimRng, keys: u32, remove: f64) -> Draw {
        Draw {
            remove: rng.chance(remove),
            key: rng.below(u64::from(keys)) as u32,
            value: rng.below(u64::from(keys)) as u32,
            pick: rng.next_u64(),
        }
    }
}

/// One of the nine CRDTs as the lab and the soak run it.
pub trait CrdtKind: Clone + Debug + 'static {
    /// The catalog id (`crdt.g-counter`).
    const ID: &'static str;
    type State: Crdt;
    /// What update `draw` means at a replica holding `state`.
    fn resolve(state: &Self::State, draw: &Draw) -> <Self::State as Crdt>::Update;
}

/// A replica's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaConfig {
    pub replicas: u32,
    pub gossip: Duration,
    pub fanout: u32,
}

/// A replica's gossip: its whole state.
#[derive(Debug, Clone, PartialEq)]
pub struct Gossip<C: Crdt> {
    pub state: C,
}

impl<C: Crdt> Fingerprint for Gossip<C> {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        self.state.hash(h);
    }
}

/// Counters a replica keeps since its last boot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ReplicaStats {
    pub updates: u64,
    pub failed_updates: u64,
    pub merges: u64,
    /// Merges refused (the bounds): a replica that refuses stays behind, visibly.
    pub refused_merges: u64,
}

/// A CRDT replica.
#[derive(Debug, Clone)]
pub struct Replica<K: CrdtKind> {
    id: NodeId,
    config: ReplicaConfig,
    state: K::State,
    /// For each peer, the fingerprint of the last state merged from it (0: none yet).
    heard: Vec<u64>,
    next_peer: u32,
    /// The newest client requests applied: a duplicate of one is answered, not applied
    /// again (a counter would count it twice). Rebuilt from the log at a restart.
    recent: VecDeque<RequestId>,
    stats: ReplicaStats,
    /// Where the intact part of the log ends when recovery found a torn tail after it.
    torn_tail: Option<usize>,
}

/// One acknowledged update on a replica's disk.
#[derive(serde::Serialize, serde::Deserialize)]
struct DeltaRecord<C> {
    request: RequestId,
    delta: C,
}

/// The fingerprint of a CRDT state (never 0, which means "nothing heard").
pub fn state_fingerprint<C: Crdt>(state: &C) -> u64 {
    let mut h = StableHasher::default();
    state.hash(&mut h);
    h.finish().max(1)
}

impl<K: CrdtKind> Replica<K> {
    pub fn state(&self) -> &K::State {
        &self.state
    }

    pub fn stats(&self) -> ReplicaStats {
        self.stats
    }

    /// The fingerprint of the last state merged from `peer` (0: none since boot).
    pub fn heard(&self, peer: NodeId) -> u64 {
        self.heard.get(peer as usize).copied().unwrap_or(0)
    }

    fn persist(request: RequestId, delta: K::State, ctx: &mut Ctx<'_, Self>) {
        ctx.disk(records::append(DELTA_LOG, &DeltaRecord { request, delta }));
        ctx.disk(DiskOp::Fsync);
    }

    fn remember(&mut self, request: RequestId) {
        if self.recent.len() == RECENT_REQUESTS {
            self.recent.pop_front();
        }
        self.recent.push_back(request);
    }
}

impl<K: CrdtKind> Fingerprint for Replica<K> {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        let Replica {
            id,
            config,
            state,
            heard,
            next_peer,
            recent,
            stats,
            torn_tail,
        } = self;
        torn_tail.hash(h);
        id.hash(h);
        config.hash(h);
        state.hash(h);
        heard.hash(h);
        next_peer.hash(h);
        recent.hash(h);
        stats.hash(h);
    }
}

impl Hash for ReplicaConfig {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.replicas.hash(h);
        self.gossip.0.hash(h);
        self.fanout.hash(h);
    }
}

impl<K: CrdtKind> Node for Replica<K> {
    type Message = Gossip<K::State>;
    type Request = Draw;
    /// The value after the update, as JSON.
    type Response = String;
    type Config = ReplicaConfig;

    fn recover(id: NodeId, config: &ReplicaConfig, disk: &Disk) -> Self {
        let (log, torn_tail) = records::read_with_tail::<DeltaRecord<K::State>>(disk, DELTA_LOG);
        let mut replica: Replica<K> = Replica {
            id,
            config: *config,
            state: K::State::default(),
            heard: vec![0; config.replicas as usize],
            next_peer: 1,
            recent: VecDeque::new(),
            stats: ReplicaStats::default(),
            torn_tail,
        };
        for r in log {
            // A delta this replica made and merged once merges again (the bounds held).
            if replica.state.merge(&r.delta).is_ok() {
                replica.remember(r.request);
            }
        }
        replica
    }

    fn on_start(&mut self, ctx: &mut Ctx<'_, Self>) {
        if let Some(len) = self.torn_tail.take() {
            for op in records::cut_torn_tail(DELTA_LOG, len) {
                ctx.disk(op);
            }
        }
        ctx.set_timer(GOSSIP_TIMER, self.config.gossip);
    }

    fn on_message(&mut self, from: NodeId, msg: Gossip<K::State>, _ctx: &mut Ctx<'_, Self>) {
        match self.state.merge(&msg.state) {
            Ok(()) => {
                self.stats.merges += 1;
                if let Some(h) = self.heard.get_mut(from as usize) {
                    *h = state_fingerprint(&msg.state);
                }
            }
            Err(_) => self.stats.refused_merges += 1,
        }
    }

    fn on_timer(&mut self, _timer: TimerId, ctx: &mut Ctx<'_, Self>) {
        let n = self.config.replicas;
        if n > 1 {
            for _ in 0..self.config.fanout.min(n - 1) {
                // Peers id+1, id+2, ... in turn, skipping itself.
                let peer = (self.id + self.next_peer) % n;
                self.next_peer = self.next_peer % (n - 1) + 1;
                ctx.send(
                    peer,
                    Gossip {
                        state: self.state.clone(),
                    },
                );
            }
        }
        ctx.set_timer(GOSSIP_TIMER, self.config.gossip);
    }

    fn on_request(&mut self, request: ClientRequest<Draw>, ctx: &mut Ctx<'_, Self>) {
        if self.recent.contains(&request.id) {
            let value = serde_json::to_string(&self.state.value()).unwrap_or_default();
            ctx.reply(request.client, request.id, Reply::Ok(value));
            return;
        }
        let update = K::resolve(&self.state, &request.body);
        let now_ms = ctx.now().0 / 1_000;
        match self.state.update(self.id as ReplicaId, now_ms, &update) {
            Ok(delta) => {
                self.stats.updates += 1;
                self.remember(request.id);
                Self::persist(request.id, delta, ctx);
                let value = serde_json::to_string(&self.state.value()).unwrap_or_default();
                ctx.reply(request.client, request.id, Reply::Ok(value));
            }
            Err(e) => {
                self.stats.failed_updates += 1;
                ctx.reply(request.client, request.id, Reply::Fail(e.to_string()));
            }
        }
    }

    fn message_kind(_msg: &Gossip<K::State>) -> &'static str {
        "state"
    }

    fn role(&self) -> &'static str {
        "replica"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::lab::GCounterKind;
    use crate::sim::history::Outcome;
    use crate::sim::{Fault, Sim, SimConfig};

    fn one_counter() -> Sim<Replica<GCounterKind>> {
        let config = SimConfig {
            seed: 1,
            nodes: 1,
            clients: 1,
            torn_write_probability: 1.0,
            ..SimConfig::default()
        };
        let replica = ReplicaConfig {
            replicas: 1,
            gossip: Duration::from_millis(100),
            fanout: 1,
        };
        Sim::new(config, replica).unwrap()
    }

    /// Sends an increment and runs 100 ms; whether it was acknowledged.
    fn increment(sim: &mut Sim<Replica<GCounterKind>>) -> bool {
        let draw = Draw {
            remove: false,
            key: 0,
            value: 0,
            pick: 0,
        };
        let id = sim
            .client_request(0, 0, draw, Duration::from_millis(50))
            .unwrap();
        sim.run_until(sim.now() + Duration::from_millis(100), |_, _| {});
        matches!(sim.history()[id as usize].outcome, Outcome::Ok { .. })
    }

    fn value(sim: &Sim<Replica<GCounterKind>>) -> u128 {
        sim.node(0).unwrap().state().value()
    }

    /// The replica crashes between appending a delta and its fsync, and the write tears.
    /// After the restart it must cut the torn bytes before it appends the next delta:
    /// appended after them, that acknowledged increment would be unreadable at the next
    /// recovery.
    #[test]
    fn an_update_acknowledged_after_a_torn_write_survives_the_next_crash() {
        let mut sim = one_counter();
        assert!(increment(&mut sim));
        sim.apply_fault(&Fault::CrashMidEvent {
            node: 0,
            effects: 1,
        })
        .unwrap();
        assert!(!increment(&mut sim), "crashed before its fsync and reply");
        assert_eq!(sim.disk(0).unwrap().stats().torn_writes, 1);
        sim.apply_fault(&Fault::Restart { node: 0 }).unwrap();
        assert_eq!(value(&sim), 1);
        assert!(increment(&mut sim));
        sim.apply_fault(&Fault::Crash { node: 0 }).unwrap();
        sim.apply_fault(&Fault::Restart { node: 0 }).unwrap();
        assert_eq!(value(&sim), 2, "both acknowledged increments came back");
    }

    /// The ids of acknowledged requests come back from the disk: a duplicate of one that
    /// arrives after a restart is answered, not applied again.
    #[test]
    fn a_restart_remembers_the_requests_it_applied() {
        let mut sim = one_counter();
        for _ in 0..3 {
            assert!(increment(&mut sim));
        }
        sim.apply_fault(&Fault::Crash { node: 0 }).unwrap();
        sim.apply_fault(&Fault::Restart { node: 0 }).unwrap();
        let replica = sim.node(0).unwrap();
        assert_eq!(replica.recent, VecDeque::from([0, 1, 2]));
        assert_eq!(value(&sim), 3);
    }
}
