//! A small protocol that makes the network visible: every node pings its peers in turn
//! and answers pings with pongs, and each receiver classifies what arrives as in order,
//! duplicated, late (overtaken) or missing, with an anti-replay window like IPsec's
//! (RFC 4303 §3.4.3). Each node also counts its boots on disk, so restarts are visible.
//!
//! With `intervalMs = 0` it becomes the raw-throughput benchmark: each node keeps exactly
//! one ping in flight and sends the next as soon as the pong returns.

use serde::Serialize;
use std::collections::BTreeMap;

use crate::sim::disk::{Disk, DiskOp};
use crate::sim::node::{ClientRequest, Ctx, Node, NodeId, Reply, TimerId};
use crate::time::{Duration, Time};

const PING_TIMER: TimerId = 0;
const BOOTS_FILE: &str = "boots";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PingMessage {
    Ping { seq: u64, sent: Time },
    Pong { seq: u64, sent: Time },
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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
    boots: u64,
    next_peer: u32,
    next_seq: BTreeMap<NodeId, u64>,
    links: BTreeMap<NodeId, LinkStats>,
    windows: BTreeMap<NodeId, Window>,
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

impl Node for PingNode {
    type Message = PingMessage;
    /// Clients ask a node how many pongs it has received.
    type Request = ();
    type Response = u64;
    type Config = PingConfig;

    fn recover(id: NodeId, config: &PingConfig, disk: &Disk) -> Self {
        // A torn or missing counter reads as zero boots: the file is 8 bytes or nothing.
        let boots = <[u8; 8]>::try_from(disk.read(BOOTS_FILE)).map_or(0, u64::from_le_bytes);
        PingNode {
            id,
            interval: config.interval,
            fanout: config.fanout.max(1),
            boots,
            next_peer: 0,
            next_seq: BTreeMap::new(),
            links: BTreeMap::new(),
            windows: BTreeMap::new(),
        }
    }

    fn on_start(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.boots += 1;
        ctx.disk(DiskOp::Overwrite {
            file: BOOTS_FILE,
            bytes: self.boots.to_le_bytes().to_vec(),
        });
        ctx.disk(DiskOp::Fsync);
        if self.interval == Duration::ZERO {
            let peer = self.next_peer(ctx.node_count());
            self.ping(peer, ctx);
        } else {
            ctx.set_timer(PING_TIMER, self.interval);
        }
    }

    fn on_message(&mut self, from: NodeId, msg: PingMessage, ctx: &mut Ctx<'_, Self>) {
        match msg {
            PingMessage::Ping { seq, sent } => {
                let stats = self.links.entry(from).or_default();
                stats.pings_received += 1;
                self.windows.entry(from).or_default().classify(seq, stats);
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
