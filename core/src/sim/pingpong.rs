//! A small protocol that makes the network visible: every node pings its peers in turn
//! and answers pings with pongs, and each receiver classifies what arrives as in order,
//! duplicated, late (overtaken) or missing, with an anti-replay window like IPsec's
//! (RFC 4303 §3.4.3). Each node also counts its boots on disk, so restarts are visible.
//!
//! Sequence numbers live in memory and start again at 0 after a restart, so every ping
//! carries its sender's boot epoch (the durable boot count, as in IPsec's rekeying or
//! QUIC's connection IDs: a fresh number space per incarnation), and a receiver keeps one
//! window per (sender, epoch). Without it a restarted sender's pings would look like
//! duplicates of its previous incarnation's.
//!
//! With `intervalMs = 0` it becomes the raw-throughput benchmark: each node keeps exactly
//! one ping in flight and sends the next as soon as the pong returns.

use serde::Serialize;
use std::collections::BTreeMap;
use std::hash::Hash;

use crate::sim::disk::{Disk, DiskOp};
use crate::sim::node::{ClientRequest, Ctx, Fingerprint, Node, NodeId, Reply, TimerId};
use crate::sim::trace::StableHasher;
use crate::time::{Duration, Time};

const PING_TIMER: TimerId = 0;
/// The boot log: one little-endian `u64` epoch per boot, appended and synced before the
/// node sends anything in that epoch.
const BOOTS_FILE: &str = "boots";
/// Bytes of one boot record.
const BOOT_RECORD: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PingMessage {
    /// `epoch`: the sender's boot count when it sent this; `seq` counts within it.
    Ping {
        epoch: u64,
        seq: u64,
        sent: Time,
    },
    Pong {
        seq: u64,
        sent: Time,
    },
}

/// Cluster-wide settings of the ping protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PingConfig {
    /// Time between pings on the node's own clock; zero = ping again on every pong.
    pub interval: Duration,
    /// How many ring successors (id+1, id+2, ...) a node pings in turn; at least 1.
    pub fanout: u32,
}

/// What one node has seen from one peer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkStats {
    pub pings_sent: u64,
    pub pongs_received: u64,
    pub pings_received: u64,
    pub in_order: u64,
    pub duplicates: u64,
    /// Arrived after a later sequence number had already arrived.
    pub late: u64,
    /// Sequence numbers skipped over when a later one arrived (lost or still in flight).
    pub gaps: u64,
    pub last_rtt_us: u64,
    pub rtt_sum_us: u64,
}

/// The receiver side of the anti-replay window for one sender.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
struct Window {
    highest: Option<u64>,
    /// Bit i set: `highest - i` has been seen.
    seen: u64,
}

impl Window {
    fn classify(&mut self, seq: u64, stats: &mut LinkStats) {
        match self.highest {
            None => {
                stats.gaps += seq;
                stats.in_order += 1;
                self.highest = Some(seq);
                self.seen = 1;
            }
            Some(h) if seq > h => {
                let skipped = seq - h - 1;
                stats.gaps += skipped;
                stats.in_order += 1;
                self.seen = if seq - h >= 64 {
                    0
                } else {
                    self.seen << (seq - h)
                };
                self.seen |= 1;
                self.highest = Some(seq);
            }
            Some(h) => {
                let back = h - seq;
                if back < 64 && self.seen & (1 << back) != 0 {
                    stats.duplicates += 1;
                } else {
                    stats.late += 1;
                    if back < 64 {
                        self.seen |= 1 << back;
                    }
                }
            }
        }
    }
}

/// One node of the ping protocol.
#[derive(Debug, Clone)]
pub struct PingNode {
    id: NodeId,
    interval: Duration,
    fanout: u32,
    /// The current epoch once started (the epoch recovered from disk until then).
    boots: u64,
    /// Length of the boot log's whole records: a torn tail beyond it is cut on start.
    boot_log_len: usize,
    next_peer: u32,
    next_seq: BTreeMap<NodeId, u64>,
    links: BTreeMap<NodeId, LinkStats>,
    /// Anti-replay windows by (sender, sender's epoch).
    windows: BTreeMap<(NodeId, u64), Window>,
}

impl PingNode {
    pub fn boots(&self) -> u64 {
        self.boots
    }
    /// Per-peer statistics, by peer id.
    pub fn links(&self) -> &BTreeMap<NodeId, LinkStats> {
        &self.links
    }
    /// Totals over every peer.
    pub fn totals(&self) -> LinkStats {
        let mut t = LinkStats::default();
        for s in self.links.values() {
            t.pings_sent += s.pings_sent;
            t.pongs_received += s.pongs_received;
            t.pings_received += s.pings_received;
            t.in_order += s.in_order;
            t.duplicates += s.duplicates;
            t.late += s.late;
            t.gaps += s.gaps;
            t.rtt_sum_us += s.rtt_sum_us;
            t.last_rtt_us = t.last_rtt_us.max(s.last_rtt_us);
        }
        t
    }

    fn ping(&mut self, to: NodeId, ctx: &mut Ctx<'_, Self>) {
        let seq = self.next_seq.entry(to).or_insert(0);
        let msg = PingMessage::Ping {
            epoch: self.boots,
            seq: *seq,
            sent: ctx.now(),
        };
        *seq += 1;
        self.links.entry(to).or_default().pings_sent += 1;
        ctx.send(to, msg);
    }

    /// The next of the node's ring successors, in turn.
    fn next_peer(&mut self, n: u32) -> NodeId {
        if n <= 1 {
            return self.id;
        }
        let peers = self.fanout.min(n - 1);
        let k = self.next_peer % peers;
        self.next_peer = k + 1;
        (self.id + 1 + k) % n
    }
}

impl Fingerprint for PingMessage {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        self.hash(h);
    }
}

/// Every field: the per-peer statistics too, since a client's request is answered with
/// the pongs received and the anomaly counts are what the protocol is checked by.
impl Fingerprint for PingNode {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        let PingNode {
            id,
            interval,
            fanout,
            boots,
            boot_log_len,
            next_peer,
            next_seq,
            links,
            windows,
        } = self;
        id.hash(h);
        interval.hash(h);
        fanout.hash(h);
        boots.hash(h);
        boot_log_len.hash(h);
        next_peer.hash(h);
        next_seq.hash(h);
        links.hash(h);
        windows.hash(h);
    }
}

impl Node for PingNode {
    type Message = PingMessage;
    /// Clients ask a node how many pongs it has received.
    type Request = ();
    type Response = u64;
    type Config = PingConfig;

    fn recover(id: NodeId, config: &PingConfig, disk: &Disk) -> Self {
        let (boots, boot_log_len) = read_boot_log(disk.read(BOOTS_FILE));
        PingNode {
            id,
            interval: config.interval,
            fanout: config.fanout.max(1),
            boots,
            boot_log_len,
            next_peer: 0,
            next_seq: BTreeMap::new(),
            links: BTreeMap::new(),
            windows: BTreeMap::new(),
        }
    }

    fn on_start(&mut self, ctx: &mut Ctx<'_, Self>) {
        // The new epoch is durable before any ping carries it, so no two incarnations share
        // one: a crash before the fsync loses the record and the next boot reuses an epoch
        // nothing was sent in. The log is only appended to, after cutting a torn tail, so
        // the first unsynced write of a boot is always the cut (the simulated disk tears
        // only the oldest unsynced write, and a cut cannot tear) and an earlier epoch is
        // never overwritten.
        self.boots += 1;
        ctx.disk(DiskOp::Truncate {
            file: BOOTS_FILE,
            len: self.boot_log_len,
        });
        ctx.disk(DiskOp::Append {
            file: BOOTS_FILE,
            bytes: self.boots.to_le_bytes().to_vec(),
        });
        ctx.disk(DiskOp::Fsync);
        self.boot_log_len += BOOT_RECORD;
        if self.interval == Duration::ZERO {
            let peer = self.next_peer(ctx.node_count());
            self.ping(peer, ctx);
        } else {
            ctx.set_timer(PING_TIMER, self.interval);
        }
    }

    fn on_message(&mut self, from: NodeId, msg: PingMessage, ctx: &mut Ctx<'_, Self>) {
        match msg {
            PingMessage::Ping { epoch, seq, sent } => {
                let stats = self.links.entry(from).or_default();
                stats.pings_received += 1;
                self.windows
                    .entry((from, epoch))
                    .or_default()
                    .classify(seq, stats);
                ctx.send(from, PingMessage::Pong { seq, sent });
            }
            PingMessage::Pong { sent, .. } => {
                let stats = self.links.entry(from).or_default();
                stats.pongs_received += 1;
                let rtt = ctx.now().saturating_since(sent).0;
                stats.last_rtt_us = rtt;
                stats.rtt_sum_us += rtt;
                if self.interval == Duration::ZERO {
                    self.ping(from, ctx);
                }
            }
        }
    }

    fn on_timer(&mut self, _timer: TimerId, ctx: &mut Ctx<'_, Self>) {
        let peer = self.next_peer(ctx.node_count());
        self.ping(peer, ctx);
        ctx.set_timer(PING_TIMER, self.interval);
    }

    fn on_request(&mut self, request: ClientRequest<()>, ctx: &mut Ctx<'_, Self>) {
        let pongs = self.totals().pongs_received;
        ctx.reply(request.client, request.id, Reply::Ok(pongs));
    }

    fn message_kind(msg: &PingMessage) -> &'static str {
        match msg {
            PingMessage::Ping { .. } => "ping",
            PingMessage::Pong { .. } => "pong",
        }
    }
}

/// The newest epoch in a boot log and the length of its whole records. A crash can leave
/// a strict prefix of the last append (a torn write), which is not a record: it is
/// ignored here and cut on the next start. An empty log is epoch 0 (never booted).
fn read_boot_log(bytes: &[u8]) -> (u64, usize) {
    let whole = bytes.len() - bytes.len() % BOOT_RECORD;
    let epoch = bytes
        .get(..whole)
        .and_then(|b| b.chunks_exact(BOOT_RECORD).last())
        .and_then(|r| <[u8; BOOT_RECORD]>::try_from(r).ok())
        .map_or(0, u64::from_le_bytes);
    (epoch, whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_classifies_duplicates_late_and_gaps() {
        let mut w = Window::default();
        let mut s = LinkStats::default();
        for seq in [0, 1, 3, 2, 3, 1, 200, 5] {
            w.classify(seq, &mut s);
        }
        assert_eq!(s.in_order, 4); // 0, 1, 3, 200
        assert_eq!(s.duplicates, 2); // 3 again, 1 again
        assert_eq!(s.late, 2); // 2, 5
        assert_eq!(s.gaps, 1 + 196);
    }
}

#[cfg(test)]
mod epoch_tests {
    use super::*;
    use crate::sim::{Fault, NetworkConfig, NodeStatus, Sim, SimConfig};
    use proptest::prelude::*;

    fn sim(seed: u64, torn: f64) -> Sim<PingNode> {
        let config = SimConfig {
            seed,
            nodes: 3,
            torn_write_probability: torn,
            network: NetworkConfig::default(),
            ..SimConfig::default()
        };
        let ping = PingConfig {
            interval: Duration::from_millis(5),
            fanout: 2,
        };
        Sim::new(config, ping).unwrap()
    }

    fn anomalies(sim: &Sim<PingNode>) -> (u64, u64) {
        (0..3)
            .filter_map(|n| sim.node(n))
            .map(|n| n.totals())
            .fold((0, 0), |(d, l), t| (d + t.duplicates, l + t.late))
    }

    #[test]
    fn a_restarted_sender_is_neither_duplicated_nor_late() {
        let mut sim = sim(7, 0.0);
        sim.run_until(Time::from_millis(300), |_, _| {});
        for _ in 0..3 {
            sim.apply_fault(&Fault::Crash { node: 2 }).unwrap();
            sim.run_until(sim.now() + Duration::from_millis(20), |_, _| {});
            sim.apply_fault(&Fault::Restart { node: 2 }).unwrap();
            sim.run_until(sim.now() + Duration::from_millis(300), |_, _| {});
        }
        let pings_from_2: u64 = (0..2)
            .filter_map(|n| sim.node(n))
            .filter_map(|n| n.links().get(&2).map(|s| s.pings_received))
            .sum();
        assert!(pings_from_2 > 100, "node 2 kept pinging: {pings_from_2}");
        assert_eq!(anomalies(&sim), (0, 0));
        assert_eq!(sim.node(2).unwrap().boots(), 4);
    }

    #[test]
    fn the_same_epoch_and_sequence_twice_is_a_duplicate() {
        // Epoch 2 restarts at sequence 0 without being a duplicate of epoch 1, and a real
        // duplicate within an epoch is still one.
        let mut windows: BTreeMap<(NodeId, u64), Window> = BTreeMap::new();
        let mut stats = LinkStats::default();
        for (epoch, seq) in [(1, 0), (1, 1), (2, 0), (2, 1), (1, 1), (2, 1)] {
            windows
                .entry((1, epoch))
                .or_default()
                .classify(seq, &mut stats);
        }
        assert_eq!((stats.in_order, stats.duplicates, stats.late), (4, 2, 0));
    }

    #[test]
    fn the_boot_log_ignores_a_torn_tail() {
        assert_eq!(read_boot_log(&[]), (0, 0));
        let mut log: Vec<u8> = [1u64, 2, 3].iter().flat_map(|e| e.to_le_bytes()).collect();
        assert_eq!(read_boot_log(&log), (3, 24));
        log.extend_from_slice(&4u64.to_le_bytes()[..5]);
        assert_eq!(read_boot_log(&log), (3, 24));
    }

    proptest! {
        /// Whatever crashes hit a node — between any two effects of its boot, with every
        /// unsynced write torn — no two incarnations that sent pings share an epoch.
        #[test]
        fn epochs_never_repeat(seed in any::<u64>(), faults in proptest::collection::vec((0u8..3, 0u32..5), 1..25)) {
            let mut sim = sim(seed, 1.0);
            // (incarnation, epoch) of every incarnation of node 2 that sent a ping.
            let mut used: Vec<(u32, u64)> = Vec::new();
            let note = |sim: &Sim<PingNode>, used: &mut Vec<(u32, u64)>| {
                if let Some(n) = sim.node(2)
                    && n.totals().pings_sent > 0
                    && used.last().is_none_or(|u| u.0 != sim.boots(2))
                {
                    used.push((sim.boots(2), n.boots()));
                }
            };
            for (kind, effects) in faults {
                sim.run_until(sim.now() + Duration::from_millis(12), |_, _| {});
                note(&sim, &mut used);
                let fault = match kind {
                    0 => Fault::Crash { node: 2 },
                    1 => Fault::CrashMidEvent { node: 2, effects },
                    _ => Fault::Restart { node: 2 },
                };
                sim.apply_fault(&fault).unwrap();
            }
            if sim.status(2) == Some(NodeStatus::Crashed) {
                sim.apply_fault(&Fault::Restart { node: 2 }).unwrap();
            }
            sim.run_until(sim.now() + Duration::from_millis(12), |_, _| {});
            note(&sim, &mut used);
            prop_assert!(used.windows(2).all(|w| w[0].1 < w[1].1), "epochs {used:?}");
            prop_assert_eq!(anomalies(&sim), (0, 0));
        }
    }
}

#[cfg(test)]
mod fingerprint_tests {
    use super::*;
    use crate::rng::SimRng;
    use crate::sim::node::Effect;
    use crate::sim::{Fault, Sim, SimConfig};
    use std::collections::BTreeSet;

    fn config() -> PingConfig {
        PingConfig {
            interval: Duration::from_millis(5),
            fanout: 2,
        }
    }

    fn sim(seed: u64) -> Sim<PingNode> {
        let config = SimConfig {
            seed,
            nodes: 3,
            record_trace: false,
            ..SimConfig::default()
        };
        Sim::new(config, self::config()).unwrap()
    }

    /// Node 0 after its first boot (its disk has the boot record, synced).
    fn booted() -> (PingNode, Disk) {
        let mut disk = Disk::new();
        let mut node = PingNode::recover(0, &config(), &disk);
        let mut rng = SimRng::new(0);
        let mut effects = Vec::new();
        node.on_start(&mut Ctx::new(0, Time::ZERO, 3, &mut rng, &mut effects));
        for e in effects {
            if let Effect::Disk(op) = e {
                disk.apply(op);
            }
        }
        (node, disk)
    }

    fn receive(node: &mut PingNode, from: NodeId, msg: PingMessage) {
        let mut rng = SimRng::new(0);
        let mut effects = Vec::new();
        let mut ctx = Ctx::new(0, Time::from_millis(1), 3, &mut rng, &mut effects);
        node.on_message(from, msg, &mut ctx);
    }

    fn ping(epoch: u64, seq: u64) -> PingMessage {
        PingMessage::Ping {
            epoch,
            seq,
            sent: Time::ZERO,
        }
    }

    #[test]
    fn pings_from_two_peers_in_either_order_make_one_state() {
        let (node, _) = booted();
        let mut a = node.clone();
        receive(&mut a, 1, ping(1, 0));
        receive(&mut a, 2, ping(1, 0));
        let mut b = node.clone();
        receive(&mut b, 2, ping(1, 0));
        receive(&mut b, 1, ping(1, 0));
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), node.fingerprint());
        // From one peer, the order is what the windows and counters record.
        let mut c = node.clone();
        receive(&mut c, 1, ping(1, 0));
        receive(&mut c, 1, ping(1, 1));
        let mut d = node.clone();
        receive(&mut d, 1, ping(1, 1));
        receive(&mut d, 1, ping(1, 0));
        assert_ne!(c.fingerprint(), d.fingerprint());
        // A duplicate is counted, so it is another state.
        let mut dup = a.clone();
        receive(&mut dup, 1, ping(1, 0));
        assert_ne!(dup.fingerprint(), a.fingerprint());
    }

    #[test]
    fn every_field_of_the_node_counts() {
        let (node, _) = booted();
        let change = |f: &dyn Fn(&mut PingNode)| {
            let mut n = node.clone();
            f(&mut n);
            n.fingerprint()
        };
        let all: BTreeSet<u64> = [
            node.fingerprint(),
            change(&|n| n.boots += 1),
            change(&|n| n.boot_log_len += 1),
            change(&|n| n.next_peer += 1),
            change(&|n| {
                n.next_seq.insert(1, 1);
            }),
            change(&|n| n.links.entry(1).or_default().pongs_received += 1),
            change(&|n| {
                n.windows.insert((1, 1), Window::default());
            }),
            change(&|n| n.fanout += 1),
            change(&|n| n.interval = Duration::ZERO),
            change(&|n| n.id = 1),
        ]
        .into_iter()
        .collect();
        assert_eq!(all.len(), 10);
        let messages: BTreeSet<u64> = [
            ping(1, 0),
            ping(2, 0),
            ping(1, 1),
            PingMessage::Ping {
                epoch: 1,
                seq: 0,
                sent: Time(1),
            },
            PingMessage::Pong {
                seq: 0,
                sent: Time::ZERO,
            },
        ]
        .iter()
        .map(Fingerprint::fingerprint)
        .collect();
        assert_eq!(messages.len(), 5);
    }

    #[test]
    fn a_crash_that_lost_nothing_recovers_the_same_node() {
        let (_, disk) = booted();
        let mut crashed = disk.clone();
        crashed.crash(&mut SimRng::new(1), 1.0);
        let before = PingNode::recover(0, &config(), &disk);
        let after = PingNode::recover(0, &config(), &crashed);
        assert_eq!(before.fingerprint(), after.fingerprint());
        assert_eq!(disk.fingerprint(), crashed.fingerprint());
        // An unsynced boot record is another disk, and a crash takes it away.
        let mut unsynced = disk.clone();
        unsynced.apply(DiskOp::Append {
            file: BOOTS_FILE,
            bytes: 2u64.to_le_bytes().to_vec(),
        });
        assert_ne!(unsynced.fingerprint(), disk.fingerprint());
        unsynced.crash(&mut SimRng::new(1), 0.0);
        assert_eq!(unsynced.fingerprint(), disk.fingerprint());
    }

    #[test]
    fn a_run_stepped_by_events_or_by_time_reaches_the_same_states() {
        let until = Time::from_millis(200);
        let mut by_events = sim(5);
        while by_events.step_until(until).is_some() {}
        let mut by_time = sim(5);
        for ms in (0..=200).step_by(7) {
            by_time.run_until(Time::from_millis(ms), |_, _| {});
        }
        by_time.run_until(until, |_, _| {});
        for id in 0..3 {
            assert_eq!(by_events.node_fingerprint(id), by_time.node_fingerprint(id));
        }
        // A restart is a new epoch, on disk and in memory.
        let mut restarted = by_time.clone();
        restarted.apply_fault(&Fault::Crash { node: 2 }).unwrap();
        let crashed = restarted.node_fingerprint(2);
        restarted.apply_fault(&Fault::Restart { node: 2 }).unwrap();
        let states: BTreeSet<Option<u64>> = [
            by_time.node_fingerprint(2),
            crashed,
            restarted.node_fingerprint(2),
        ]
        .into_iter()
        .collect();
        assert_eq!(states.len(), 3);
        assert_eq!(restarted.node_fingerprint(0), by_time.node_fingerprint(0));
    }
}
