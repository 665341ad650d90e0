//! SWIM membership (catalog id `coordination.swim`): Das, Gupta & Motivala, "SWIM:
//! Scalable Weakly-consistent Infection-style Process Group Membership Protocol" (DSN
//! 2002), with the Lifeguard refinements of Dadgar, Phillips & Currey ("Lifeguard: Local
//! Health Awareness for More Accurate Failure Detection", 2018) switchable, as
//! hashicorp/memberlist has them.
//!
//! Each protocol period a member pings the next member of its probe order; without an
//! ack within `probe_timeout` it asks `indirect_checks` others to ping the target for it
//! (ping-req) and, with no ack by the period's end, *suspects* the target. A suspicion
//! becomes *dead* after the suspicion timeout unless the suspect refutes it: a member
//! that hears itself suspected (or declared dead) raises its *incarnation* number and
//! spreads `alive` at the new number, which overrides every older claim. Updates ride on
//! pings and acks (infection-style dissemination), each sent at most λ·⌈log₁₀(n+1)⌉
//! times (memberlist's retransmit limit), the least-sent first.
//!
//! The probe order is round-robin over the members, re-shuffled each round, so every
//! member is probed once per round (the paper's §4.3 time bound). The shuffle is an
//! affine permutation i ↦ (a·i + b) mod n with a random a coprime to n and a random b,
//! drawn per round: constant memory per node instead of a stored list, which is what lets
//! 10,000 nodes fit.
//!
//! Lifeguard, when on: the local health multiplier (a score 0..8 that grows when this
//! member's own probes fail or it must refute, and shrinks on acks; it scales the probe
//! interval and timeout, so a slow member blames others less), the dynamic suspicion
//! timeout (start at `suspicion_max_mult` × the minimum and shrink towards it as
//! independent suspicions confirm: memberlist's log(c+1)/log(k+1) law), and nacks from
//! ping-req helpers (a helper that got no ack says so, which tells the requester the
//! helper itself is reachable).
//!
//! Membership is static (nodes 0..n; no join protocol). Dead members stay in the probe
//! order, pinged with their death notice attached: that is their way back — a live
//! member told it is dead refutes — and what heals membership after a partition, as
//! memberlist's gossip to the dead and push-pull sync do. All state is volatile: a
//! restarted member starts at incarnation 0 and refutes whatever older claims it meets.
//!
//! Cost per member and period: O(1) messages (a ping and its ack; k+1 more on a failed
//! probe), each with at most `max_piggyback` updates.

pub mod lab;
pub mod lessons;

use std::collections::{BTreeMap, BTreeSet};
use std::hash::Hash;

use crate::sim::disk::Disk;
use crate::sim::node::{ClientRequest, Ctx, Fingerprint, Node, NodeId, TimerId};
use crate::sim::trace::StableHasher;
use crate::time::{Duration, Time};

/// The protocol period's tick.
const PROBE_TICK: TimerId = 0;
/// The direct ping's deadline within a period.
const PROBE_TIMEOUT: TimerId = 1;
/// The period's end: no ack by then makes the target suspect.
const PROBE_END: TimerId = 2;
/// Suspicion deadlines, one per member: `SUSPICION | member`.
const SUSPICION: TimerId = 1 << 40;
/// A helper's deadline for a forwarded ping: `FORWARD | seq`.
const FORWARD: TimerId = 2 << 40;
/// The Lifeguard health score's ceiling (memberlist's AwarenessMaxMultiplier).
pub const MAX_HEALTH_SCORE: u32 = 8;

/// Cluster-wide settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SwimConfig {
    pub probe_interval: Duration,
    /// Wait for a direct ack before asking for indirect pings.
    pub probe_timeout: Duration,
    /// Members asked to ping a target that did not answer (the paper's k).
    pub indirect_checks: u32,
    /// Suspicion timeout: this × max(1, log₁₀ n) × the probe interval (memberlist).
    pub suspicion_mult: u32,
    /// Lifeguard: the first timeout is this × the minimum.
    pub suspicion_max_mult: u32,
    /// λ: each update is sent at most λ·⌈log₁₀(n + 1)⌉ times.
    pub retransmit_mult: u32,
    /// Updates one message carries at most.
    pub max_piggyback: u32,
    /// Lifeguard's health multiplier, dynamic suspicion timeout and nacks.
    pub lifeguard: bool,
}

impl Default for SwimConfig {
    fn default() -> Self {
        SwimConfig {
            probe_interval: Duration::from_millis(200),
            probe_timeout: Duration::from_millis(60),
            indirect_checks: 3,
            suspicion_mult: 4,
            suspicion_max_mult: 6,
            retransmit_mult: 4,
            max_piggyback: 8,
            lifeguard: true,
        }
    }
}

/// What one member believes of another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    Alive,
    Suspect,
    Dead,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Alive => "alive",
            Status::Suspect => "suspect",
            Status::Dead => "dead",
        }
    }
}

/// A membership claim, disseminated by piggybacking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Update {
    pub member: NodeId,
    pub status: Status,
    pub incarnation: u64,
    /// Who suspected or declared it dead (the member itself for alive).
    pub from: NodeId,
}

/// SWIM's messages; every one carries piggybacked updates.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SwimMessage {
    Ping {
        seq: u64,
        updates: Vec<Update>,
    },
    Ack {
        seq: u64,
        updates: Vec<Update>,
    },
    /// Ping `target` for me and tell me.
    PingReq {
        seq: u64,
        target: NodeId,
        updates: Vec<Update>,
    },
    /// A helper's ping-req got no ack in time (Lifeguard).
    Nack {
        seq: u64,
        updates: Vec<Update>,
    },
}

impl SwimMessage {
    fn updates(&self) -> &[Update] {
        match self {
            SwimMessage::Ping { updates, .. }
            | SwimMessage::Ack { updates, .. }
            | SwimMessage::PingReq { updates, .. }
            | SwimMessage::Nack { updates, .. } => updates,
        }
    }
}

impl Fingerprint for SwimMessage {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        self.hash(h);
    }
}

/// What a member holds about another, when it differs from "alive at incarnation 0".
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Member {
    pub status: Status,
    pub incarnation: u64,
    /// Since when (own clock) it is in this status.
    pub since: Time,
    /// Suspect: who has independently suspected it (the first one included).
    pub suspecters: BTreeSet<NodeId>,
    /// Suspect: when the suspicion ends (own clock).
    pub deadline: Time,
}

impl Member {
    fn alive(incarnation: u64, since: Time) -> Self {
        Member {
            status: Status::Alive,
            incarnation,
            since,
            suspecters: BTreeSet::new(),
            deadline: Time::ZERO,
        }
    }
}

/// The probe in progress this period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Probe {
    target: NodeId,
    seq: u64,
    acked: bool,
    /// Helpers asked; nacks heard from them.
    helpers: u32,
    nacks: u32,
}

/// A helper's forwarded ping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Forward {
    requester: NodeId,
    requester_seq: u64,
    nack: bool,
}

/// Running counts of one member.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SwimStats {
    pub probes: u64,
    pub indirect_probes: u64,
    pub suspicions_raised: u64,
    pub declared_dead: u64,
    pub refutations: u64,
    pub messages_sent: u64,
}

/// One SWIM member.
#[derive(Debug, Clone)]
pub struct SwimNode {
    id: NodeId,
    n: u32,
    config: SwimConfig,
    incarnation: u64,
    /// Claims about others that differ from alive at incarnation 0.
    members: BTreeMap<NodeId, Member>,
    /// Updates to piggyback, with how often each was sent; one per member.
    outbox: BTreeMap<NodeId, (Update, u32)>,
    /// Probe order of this round: position i ↦ (a·i + b) mod n, `next` the position.
    order: (u64, u64),
    next: u64,
    probe: Option<Probe>,
    forwards: BTreeMap<u64, Forward>,
    seq: u64,
    /// Lifeguard's local health score (0 = healthy).
    health: u32,
    stats: SwimStats,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl SwimNode {
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }
    pub fn health(&self) -> u32 {
        self.health
    }
    pub fn stats(&self) -> SwimStats {
        self.stats
    }
    pub fn config(&self) -> &SwimConfig {
        &self.config
    }
    /// What this member believes of `member`: (status, incarnation).
    pub fn view_of(&self, member: NodeId) -> (Status, u64) {
        if member == self.id {
            return (Status::Alive, self.incarnation);
        }
        self.members
            .get(&member)
            .map_or((Status::Alive, 0), |m| (m.status, m.incarnation))
    }
    /// Members held as other than alive at incarnation 0.
    pub fn members(&self) -> &BTreeMap<NodeId, Member> {
        &self.members
    }
    /// Updates waiting to be piggybacked.
    pub fn pending_updates(&self) -> usize {
        self.outbox.len()
    }

    /// λ·⌈log₁₀(n + 1)⌉.
    pub fn retransmit_limit(&self) -> u32 {
        let scale = libm::ceil(libm::log10(f64::from(self.n) + 1.0)) as u32;
        self.config.retransmit_mult * scale.max(1)
    }

    fn scaled(&self, d: Duration) -> Duration {
        if self.config.lifeguard {
            Duration(d.0 * u64::from(self.health + 1))
        } else {
            d
        }
    }

    fn adjust_health(&mut self, delta: i32) {
        if self.config.lifeguard {
            self.health = (self.health as i32 + delta).clamp(0, MAX_HEALTH_SCORE as i32 - 1) as u32;
        }
    }

    /// The shortest suspicion timeout: suspicion_mult × max(1, log₁₀ n) × interval.
    pub fn min_suspicion(&self) -> Duration {
        let scale = libm::log10(f64::from(self.n.max(1))).max(1.0);
        let us =
            f64::from(self.config.suspicion_mult) * scale * self.config.probe_interval.0 as f64;
        Duration(us as u64)
    }

    /// The suspicion timeout after `confirmations` independent suspicions beyond the first.
    pub fn suspicion_timeout(&self, confirmations: u32) -> Duration {
        let min = self.min_suspicion();
        if !self.config.lifeguard {
            return min;
        }
        let max = Duration(min.0 * u64::from(self.config.suspicion_max_mult.max(1)));
        let mut k = self.config.suspicion_mult.saturating_sub(2);
        if self.n.saturating_sub(2) < k {
            k = 0;
        }
        if k == 0 {
            return min;
        }
        let frac = libm::log(f64::from(confirmations) + 1.0) / libm::log(f64::from(k) + 1.0);
        let raw = max.0 as f64 - frac * (max.0 - min.0) as f64;
        Duration((raw.max(min.0 as f64)) as u64)
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn enqueue(&mut self, u: Update) {
        self.outbox.insert(u.member, (u, 0));
    }

    /// Up to `max_piggyback` updates, the least-sent first; each counts one send.
    fn piggyback(&mut self) -> Vec<Update> {
        let limit = self.retransmit_limit();
        // The least-sent first, and this member's own refutation before others' news.
        let mut by_sends: Vec<(u32, bool, NodeId)> = self
            .outbox
            .iter()
            .map(|(&m, &(_, c))| (c, m != self.id, m))
            .collect();
        by_sends.sort_unstable();
        by_sends.truncate(self.config.max_piggyback as usize);
        let mut out = Vec::with_capacity(by_sends.len());
        for (_, _, m) in by_sends {
            if let Some((u, c)) = self.outbox.get_mut(&m) {
                out.push(*u);
                *c += 1;
                if *c >= limit {
                    self.outbox.remove(&m);
                }
            }
        }
        out
    }

    fn send(&mut self, to: NodeId, msg: SwimMessage, ctx: &mut Ctx<'_, Self>) {
        self.stats.messages_sent += 1;
        ctx.send(to, msg);
    }

    /// A ping to `target`, with its own non-alive status attached so it can refute.
    fn ping(&mut self, target: NodeId, seq: u64, ctx: &mut Ctx<'_, Self>) {
        let mut updates = self.piggyback();
        if let Some(m) = self.members.get(&target)
            && m.status != Status::Alive
            && !updates.iter().any(|u| u.member == target)
        {
            updates.push(Update {
                member: target,
                status: m.status,
                incarnation: m.incarnation,
                from: self.id,
            });
        }
        self.send(target, SwimMessage::Ping { seq, updates }, ctx);
    }

    fn new_round(&mut self, ctx: &mut Ctx<'_, Self>) {
        let n = u64::from(self.n.max(1));
        let a = loop {
            let a = 1 + ctx.rng().below(n);
            if gcd(a, n) == 1 {
                break a;
            }
        };
        self.order = (a, ctx.rng().below(n));
        self.next = 0;
    }

    /// The next member to probe: round-robin over the others, a new order each round.
    fn next_target(&mut self, ctx: &mut Ctx<'_, Self>) -> Option<NodeId> {
        let n = u64::from(self.n);
        if n < 2 {
            return None;
        }
        for _ in 0..2 * n {
            if self.next >= n {
                self.new_round(ctx);
            }
            let (a, b) = self.order;
            let m = ((a * self.next + b) % n) as NodeId;
            self.next += 1;
            if m != self.id {
                return Some(m);
            }
        }
        None
    }

    fn on_probe_tick(&mut self, ctx: &mut Ctx<'_, Self>) {
        let interval = self.scaled(self.config.probe_interval);
        ctx.set_timer(PROBE_TICK, interval);
        let Some(target) = self.next_target(ctx) else {
            return;
        };
        let seq = self.next_seq();
        self.stats.probes += 1;
        self.probe = Some(Probe {
            target,
            seq,
            acked: false,
            helpers: 0,
            nacks: 0,
        });
        self.ping(target, seq, ctx);
        ctx.set_timer(PROBE_TIMEOUT, self.scaled(self.config.probe_timeout));
        // The period's end, a little before the next tick.
        ctx.set_timer(PROBE_END, Duration(interval.0.saturating_sub(1).max(1)));
    }

    fn on_probe_timeout(&mut self, ctx: &mut Ctx<'_, Self>) {
        let Some(p) = self.probe else { return };
        if p.acked {
            return;
        }
        // Ask k others, chosen at random among those not known dead.
        let candidates: Vec<NodeId> = (0..self.n)
            .filter(|&m| m != self.id && m != p.target && self.view_of(m).0 != Status::Dead)
            .collect();
        let k = (self.config.indirect_checks as usize).min(candidates.len());
        let mut chosen: Vec<NodeId> = Vec::with_capacity(k);
        while chosen.len() < k {
            let c = candidates[ctx.rng().below(candidates.len() as u64) as usize];
            if !chosen.contains(&c) {
                chosen.push(c);
            }
        }
        self.stats.indirect_probes += 1;
        for &h in &chosen {
            let updates = self.piggyback();
            self.send(
                h,
                SwimMessage::PingReq {
                    seq: p.seq,
                    target: p.target,
                    updates,
                },
                ctx,
            );
        }
        if let Some(p) = &mut self.probe {
            p.helpers = chosen.len() as u32;
        }
    }

    fn on_probe_end(&mut self, ctx: &mut Ctx<'_, Self>) {
        let Some(p) = self.probe.take() else { return };
        if p.acked {
            return;
        }
        // Lifeguard: missing nacks point at our own trouble; with no helpers, count one.
        let delta = if self.config.lifeguard && p.helpers > 0 {
            (p.helpers - p.nacks.min(p.helpers)) as i32
        } else {
            1
        };
        self.adjust_health(delta);
        let (status, incarnation) = self.view_of(p.target);
        if status == Status::Alive {
            self.stats.suspicions_raised += 1;
            self.apply(
                Update {
                    member: p.target,
                    status: Status::Suspect,
                    incarnation,
                    from: self.id,
                },
                ctx,
            );
        }
    }

    fn start_suspicion_timer(&mut self, member: NodeId, ctx: &mut Ctx<'_, Self>) {
        let now = ctx.now();
        let Some(m) = self.members.get(&member) else {
            return;
        };
        let after = m.deadline.saturating_since(now);
        ctx.set_timer(SUSPICION | u64::from(member), Duration(after.0.max(1)));
    }

    fn on_suspicion_timer(&mut self, member: NodeId, ctx: &mut Ctx<'_, Self>) {
        let now = ctx.now();
        let Some(m) = self.members.get(&member) else {
            return;
        };
        if m.status != Status::Suspect {
            return;
        }
        if m.deadline > now {
            self.start_suspicion_timer(member, ctx);
            return;
        }
        let incarnation = m.incarnation;
        self.stats.declared_dead += 1;
        self.apply(
            Update {
                member,
                status: Status::Dead,
                incarnation,
                from: self.id,
            },
            ctx,
        );
    }

    /// Takes a claim in, by SWIM's precedence rules; spreads it on if it changed anything.
    fn apply(&mut self, u: Update, ctx: &mut Ctx<'_, Self>) {
        let now = ctx.now();
        if u.member == self.id {
            if u.status != Status::Alive && u.incarnation >= self.incarnation {
                // Refute: a higher incarnation overrides every claim at a lower one.
                self.incarnation = u.incarnation + 1;
                self.stats.refutations += 1;
                self.adjust_health(1);
                self.enqueue(Update {
                    member: self.id,
                    status: Status::Alive,
                    incarnation: self.incarnation,
                    from: self.id,
                });
            } else if u.status != Status::Alive {
                // A stale claim (an incarnation already refuted): whoever holds it missed
                // the refutation, whose retransmissions may be spent. Say it again, at the
                // same incarnation — found by the soak: members held dead for good after
                // a heal.
                self.outbox.entry(self.id).or_insert((
                    Update {
                        member: self.id,
                        status: Status::Alive,
                        incarnation: self.incarnation,
                        from: self.id,
                    },
                    0,
                ));
            } else if u.incarnation > self.incarnation {
                // Our own older boot's claim: move past it.
                self.incarnation = u.incarnation + 1;
                self.enqueue(Update {
                    member: self.id,
                    status: Status::Alive,
                    incarnation: self.incarnation,
                    from: self.id,
                });
            }
            return;
        }
        if u.member >= self.n {
            return;
        }
        let (status, incarnation) = self.view_of(u.member);
        match u.status {
            Status::Alive => {
                if u.incarnation > incarnation {
                    self.members
                        .insert(u.member, Member::alive(u.incarnation, now));
                    self.enqueue(u);
                }
            }
            Status::Suspect => {
                let newer = u.incarnation > incarnation;
                if status == Status::Dead && !newer {
                    return;
                }
                if status == Status::Suspect && !newer {
                    // Lifeguard: an independent suspicion brings the deadline in.
                    if !self.config.lifeguard {
                        return;
                    }
                    let Some(m) = self.members.get(&u.member) else {
                        return;
                    };
                    if m.suspecters.contains(&u.from) {
                        return;
                    }
                    let confirmations = m.suspecters.len() as u32;
                    let timeout = self.suspicion_timeout(confirmations);
                    let since = m.since;
                    if let Some(m) = self.members.get_mut(&u.member) {
                        m.suspecters.insert(u.from);
                        m.deadline = since + timeout;
                    }
                    self.enqueue(u);
                    self.start_suspicion_timer(u.member, ctx);
                    return;
                }
                if status == Status::Alive && u.incarnation < incarnation {
                    return;
                }
                let timeout = self.suspicion_timeout(0);
                self.members.insert(
                    u.member,
                    Member {
                        status: Status::Suspect,
                        incarnation: u.incarnation,
                        since: now,
                        suspecters: BTreeSet::from([u.from]),
                        deadline: now + timeout,
                    },
                );
                self.enqueue(u);
                self.start_suspicion_timer(u.member, ctx);
            }
            Status::Dead => {
                if u.incarnation < incarnation || (status == Status::Dead) {
                    return;
                }
                let mut m = Member::alive(u.incarnation, now);
                m.status = Status::Dead;
                self.members.insert(u.member, m);
                self.enqueue(u);
            }
        }
    }

    fn on_ack(&mut self, from: NodeId, seq: u64, ctx: &mut Ctx<'_, Self>) {
        if let Some(p) = &mut self.probe
            && p.seq == seq
            && !p.acked
        {
            p.acked = true;
            self.adjust_health(-1);
            return;
        }
        // An ack for a ping this member forwarded: pass it to the requester.
        if let Some(f) = self.forwards.remove(&seq) {
            let updates = self.piggyback();
            self.send(
                f.requester,
                SwimMessage::Ack {
                    seq: f.requester_seq,
                    updates,
                },
                ctx,
            );
            ctx.cancel_timer(FORWARD | seq);
        }
        let _ = from;
    }
}

/// Every field.
impl Fingerprint for SwimNode {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        let SwimNode {
            id,
            n,
            config,
            incarnation,
            members,
            outbox,
            order,
            next,
            probe,
            forwards,
            seq,
            health,
            stats,
        } = self;
        id.hash(h);
        n.hash(h);
        config.hash(h);
        incarnation.hash(h);
        members.len().hash(h);
        for (k, m) in members {
            k.hash(h);
            m.hash(h);
        }
        outbox.len().hash(h);
        for (k, u) in outbox {
            k.hash(h);
            u.hash(h);
        }
        order.hash(h);
        next.hash(h);
        probe.hash(h);
        forwards.len().hash(h);
        for (k, f) in forwards {
            k.hash(h);
            f.hash(h);
        }
        seq.hash(h);
        health.hash(h);
        stats.hash(h);
    }
}

impl Node for SwimNode {
    type Message = SwimMessage;
    type Request = ();
    type Response = ();
    /// The settings and the member count.
    type Config = (SwimConfig, u32);

    fn recover(id: NodeId, config: &(SwimConfig, u32), _disk: &Disk) -> Self {
        SwimNode {
            id,
            n: config.1,
            config: config.0,
            incarnation: 0,
            members: BTreeMap::new(),
            outbox: BTreeMap::new(),
            order: (1, 0),
            next: u64::MAX,
            probe: None,
            forwards: BTreeMap::new(),
            seq: 0,
            health: 0,
            stats: SwimStats::default(),
        }
    }

    fn on_start(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.n = self.n.min(ctx.node_count());
        // Members boot at different moments: the first tick at a random point of a period.
        let first = 1 + ctx.rng().below(self.config.probe_interval.0.max(1));
        ctx.set_timer(PROBE_TICK, Duration(first));
    }

    fn on_message(&mut self, from: NodeId, msg: SwimMessage, ctx: &mut Ctx<'_, Self>) {
        for &u in msg.updates() {
            self.apply(u, ctx);
        }
        // Hearing from a member is not proof against a suspicion: only its refutation
        // (a higher incarnation) is, as the paper has it.
        match msg {
            SwimMessage::Ping { seq, .. } => {
                let updates = self.piggyback();
                self.send(from, SwimMessage::Ack { seq, updates }, ctx);
            }
            SwimMessage::Ack { seq, .. } => self.on_ack(from, seq, ctx),
            SwimMessage::PingReq { seq, target, .. } => {
                let my_seq = self.next_seq();
                self.forwards.insert(
                    my_seq,
                    Forward {
                        requester: from,
                        requester_seq: seq,
                        nack: self.config.lifeguard,
                    },
                );
                self.ping(target, my_seq, ctx);
                // The helper waits a probe timeout, less than the requester's period.
                ctx.set_timer(FORWARD | my_seq, self.config.probe_timeout);
            }
            SwimMessage::Nack { seq, .. } => {
                if let Some(p) = &mut self.probe
                    && p.seq == seq
                {
                    p.nacks += 1;
                }
            }
        }
    }

    fn on_timer(&mut self, timer: TimerId, ctx: &mut Ctx<'_, Self>) {
        match timer {
            PROBE_TICK => self.on_probe_tick(ctx),
            PROBE_TIMEOUT => self.on_probe_timeout(ctx),
            PROBE_END => self.on_probe_end(ctx),
            t if t & !((1 << 40) - 1) == SUSPICION => {
                self.on_suspicion_timer((t & ((1 << 40) - 1)) as NodeId, ctx)
            }
            t if t & !((1 << 40) - 1) == FORWARD => {
                let seq = t & ((1 << 40) - 1);
                if let Some(f) = self.forwards.remove(&seq)
                    && f.nack
                {
                    let updates = self.piggyback();
                    self.send(
                        f.requester,
                        SwimMessage::Nack {
                            seq: f.requester_seq,
                            updates,
                        },
                        ctx,
                    );
                }
            }
            _ => {}
        }
    }

    fn on_request(&mut self, _request: ClientRequest<()>, _ctx: &mut Ctx<'_, Self>) {}

    fn message_kind(msg: &SwimMessage) -> &'static str {
        match msg {
            SwimMessage::Ping { .. } => "ping",
            SwimMessage::Ack { .. } => "ack",
            SwimMessage::PingReq { .. } => "ping-req",
            SwimMessage::Nack { .. } => "nack",
        }
    }
}
