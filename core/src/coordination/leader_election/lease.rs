//! Lease-based leader election on a store, as Chubby's master lease and the etcd/ZooKeeper
//! election recipes do it (Burrows, "The Chubby lock service", OSDI 2006, §2.8; Gray &
//! Cheriton, "Leases", SOSP 1989, for why a lease needs a bound on clock drift).
//!
//! Node 0 is the store, every other node a candidate. The store keeps one record, the
//! leader lease, with the rules of [`crate::coordination::lock`]'s lock server (its
//! [`ServerState`]): a `Claim` is a compare-and-set — "if the lease is free, or already
//! mine, make it mine" — answered `Elected` with the term (the lock's fencing token, one
//! more with each fresh grant, durable on the store's disk) or `Held` with who holds it
//! and in which term. Candidates claim every `poll`: that is how followers learn the
//! leader, and how one of them takes over once the lease ran out. The leader renews every
//! `renew`; it counts its lease on its own clock from the moment it *sent* the claim or
//! renewal (the network only shortens it), shortened by `driftMarginPpm`, and steps down
//! when that runs out without an answer — the store's lease started later, on another
//! clock.
//!
//! The clock bound it relies on (Gray & Cheriton's): the store's clock may run at most
//! `driftMarginPpm` faster than a leader's, and no clock jumps. Under it, a leader's lease
//! ends (on its clock) before the store's does (on the store's), and the store grants no
//! one else before its own ends — so no two candidates hold a valid lease at once
//! ([`valid_leaders`]). A restarted store grants nothing for one lease (it forgot the
//! holder). A slow leader clock beyond the margin, or a clock stepped back, breaks it: the
//! tests build both.
//!
//! Cost: a takeover is one `Claim` and one `Elected`, and each follower learns the new
//! leader with its next `Claim`/`Held` pair — O(n) messages, against the bully
//! algorithm's O(n²) when the lowest node notices first; the price is the steady polling
//! (two messages per follower per `poll`) and a store every election depends on.

use std::hash::Hash;

use crate::coordination::lock::{LeaseAnswer, ServerState, cut_lease_log_tail, persist_grant};
use crate::sim::disk::Disk;
use crate::sim::node::{ClientRequest, Ctx, Fingerprint, Node, NodeId, TimerId};
use crate::sim::trace::StableHasher;
use crate::sim::{NodeStatus, Sim};
use crate::time::{Duration, Time};

/// The store holding the leader lease.
pub const STORE: NodeId = 0;
/// The first candidate's id.
pub const FIRST_CANDIDATE: NodeId = 1;

/// A candidate's next claim (followers) or renewal (the leader).
const CLAIM_TIMER: TimerId = 1;
const RENEW_TIMER: TimerId = 2;
/// When the leader's lease runs out on its own clock.
const STEP_DOWN_TIMER: TimerId = 3;

const PPM: u64 = 1_000_000;

/// Store ↔ candidate messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaseMessage {
    /// Compare-and-set: "if the leader lease is free or mine, make it mine".
    Claim {
        req: u64,
    },
    /// The claim won: the lease is the claimer's for `lease_us` in `term`.
    Elected {
        req: u64,
        term: u64,
        lease_us: u64,
    },
    /// The claim lost: `leader` holds it in its term (`None` during the store's grace
    /// period after a restart).
    Held {
        req: u64,
        leader: Option<(NodeId, u64)>,
    },
    /// The leader extends its lease.
    Renew {
        req: u64,
        term: u64,
    },
    Renewed {
        req: u64,
        term: u64,
    },
    /// The lease is no longer the renewer's.
    Lost {
        term: u64,
    },
}

impl Fingerprint for LeaseMessage {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        self.hash(h);
    }
}

/// Cluster-wide settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseElectionConfig {
    /// The lease the store grants, on its clock.
    pub lease: Duration,
    /// Between a leader's renewals.
    pub renew: Duration,
    /// Between a follower's claims.
    pub poll: Duration,
    /// How much faster than a leader's clock the store's may run (parts per million):
    /// the leader counts its lease that much shorter.
    pub drift_margin_ppm: u64,
}

impl LeaseElectionConfig {
    /// The lease as the leader counts it on its own clock.
    pub fn leader_lease(&self) -> Duration {
        let margin = self.drift_margin_ppm.min(PPM);
        Duration(self.lease.0 / PPM * (PPM - margin) + self.lease.0 % PPM * (PPM - margin) / PPM)
    }
}

/// Messages a node sent, by kind (a candidate's claims and renewals, the store's
/// answers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct LeaseSent {
    pub claim: u64,
    pub renew: u64,
    pub elected: u64,
    pub held: u64,
    pub renewed: u64,
    pub lost: u64,
}

impl LeaseSent {
    pub fn total(&self) -> u64 {
        self.claim + self.renew + self.elected + self.held + self.renewed + self.lost
    }

    /// The claims and their answers: what it takes to elect and to learn the leader
    /// (renewals left out, as bully's heartbeats are).
    pub fn election_messages(&self) -> u64 {
        self.claim + self.elected + self.held
    }
}

/// Where a candidate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CandidatePhase {
    /// Follows `leader` (as the store last said, with its term); `asked` is the
    /// outstanding claim and when it left, on this node's clock.
    Follower {
        leader: Option<(NodeId, u64)>,
        asked: Option<(u64, Time)>,
    },
    /// Leads in `term` until `until` on its own clock; `renewing` is the outstanding
    /// renewal and when it left.
    Leader {
        term: u64,
        until: Time,
        renewing: Option<(u64, Time)>,
    },
}

/// A candidate's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CandidateState {
    pub phase: CandidatePhase,
    /// Requests sent so far (claims and renewals share the numbering).
    pub requests: u64,
    pub terms_won: u64,
    /// Times it gave up leading because its lease ran out on its clock.
    pub stepped_down: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LeaseRole {
    Store(ServerState),
    Candidate(CandidateState),
}

/// A node of the lease election: the store or a candidate.
#[derive(Debug, Clone)]
pub struct LeaseNode {
    id: NodeId,
    config: LeaseElectionConfig,
    role: LeaseRole,
    sent: LeaseSent,
    /// Where the store's log is torn, cut at start.
    torn_tail: Option<usize>,
}

impl Fingerprint for LeaseNode {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        let LeaseNode {
            id,
            config,
            role,
            sent,
            torn_tail,
        } = self;
        (id, config, role, sent, torn_tail).hash(h);
    }
}

impl LeaseNode {
    pub fn role_state(&self) -> &LeaseRole {
        &self.role
    }

    pub fn store(&self) -> Option<&ServerState> {
        match &self.role {
            LeaseRole::Store(s) => Some(s),
            LeaseRole::Candidate(_) => None,
        }
    }

    pub fn candidate(&self) -> Option<&CandidateState> {
        match &self.role {
            LeaseRole::Candidate(c) => Some(c),
            LeaseRole::Store(_) => None,
        }
    }

    pub fn sent(&self) -> LeaseSent {
        self.sent
    }

    /// Whom this node takes for the leader, and the term: itself while it leads.
    pub fn believed_leader(&self) -> Option<(NodeId, u64)> {
        match self.candidate()?.phase {
            CandidatePhase::Follower { leader, .. } => leader,
            CandidatePhase::Leader { term, .. } => Some((self.id, term)),
        }
    }

    /// The term and lease end (on this node's clock) while it leads.
    pub fn leading(&self) -> Option<(u64, Time)> {
        match self.candidate()?.phase {
            CandidatePhase::Leader { term, until, .. } => Some((term, until)),
            CandidatePhase::Follower { .. } => None,
        }
    }

    fn send(&mut self, to: NodeId, msg: LeaseMessage, ctx: &mut Ctx<'_, Self>) {
        let count = match msg {
            LeaseMessage::Claim { .. } => &mut self.sent.claim,
            LeaseMessage::Renew { .. } => &mut self.sent.renew,
            LeaseMessage::Elected { .. } => &mut self.sent.elected,
            LeaseMessage::Held { .. } => &mut self.sent.held,
            LeaseMessage::Renewed { .. } => &mut self.sent.renewed,
            LeaseMessage::Lost { .. } => &mut self.sent.lost,
        };
        *count += 1;
        ctx.send(to, msg);
    }

    /// A follower claims the lease (and so learns who holds it).
    pub fn claim(&mut self, ctx: &mut Ctx<'_, Self>) {
        let now = ctx.now();
        let LeaseRole::Candidate(c) = &mut self.role else {
            return;
        };
        let CandidatePhase::Follower { leader, .. } = c.phase else {
            return;
        };
        c.requests += 1;
        let req = c.requests;
        c.phase = CandidatePhase::Follower {
            leader,
            asked: Some((req, now)),
        };
        self.send(STORE, LeaseMessage::Claim { req }, ctx);
        ctx.set_timer(CLAIM_TIMER, self.config.poll);
    }

    fn step_down(&mut self, ctx: &mut Ctx<'_, Self>, why: &str) {
        let LeaseRole::Candidate(c) = &mut self.role else {
            return;
        };
        let CandidatePhase::Leader { term, .. } = c.phase else {
            return;
        };
        c.phase = CandidatePhase::Follower {
            leader: None,
            asked: None,
        };
        ctx.cancel_timer(RENEW_TIMER);
        ctx.cancel_timer(STEP_DOWN_TIMER);
        ctx.set_timer(CLAIM_TIMER, self.config.poll);
        ctx.state_change(format!("stepped down from term {term}: {why}"));
    }

    /// Leads until `until`; the step-down timer fires then, on this node's clock.
    fn lead_until(&mut self, until: Time, ctx: &mut Ctx<'_, Self>) {
        let left = until.saturating_since(ctx.now());
        ctx.set_timer(STEP_DOWN_TIMER, left);
    }

    fn store_message(&mut self, from: NodeId, msg: LeaseMessage, ctx: &mut Ctx<'_, Self>) {
        let now = ctx.now();
        let lease = self.config.lease;
        let LeaseRole::Store(s) = &mut self.role else {
            return;
        };
        let answer = match msg {
            LeaseMessage::Claim { req } => match s.acquire(from, now, lease) {
                LeaseAnswer::Granted { token, fresh } => {
                    if fresh {
                        persist_grant(token, ctx);
                        ctx.state_change(format!("n{from} leads in term {token}"));
                    }
                    LeaseMessage::Elected {
                        req,
                        term: token,
                        lease_us: lease.0,
                    }
                }
                LeaseAnswer::Busy { holder } => LeaseMessage::Held {
                    req,
                    leader: holder,
                },
            },
            LeaseMessage::Renew { req, term } => {
                if s.renew(from, term, now, lease) {
                    LeaseMessage::Renewed { req, term }
                } else {
                    LeaseMessage::Lost { term }
                }
            }
            _ => return,
        };
        self.send(from, answer, ctx);
    }

    fn candidate_message(&mut self, msg: LeaseMessage, ctx: &mut Ctx<'_, Self>) {
        let now = ctx.now();
        let config = self.config;
        let LeaseRole::Candidate(c) = &mut self.role else {
            return;
        };
        match (msg, c.phase) {
            (
                LeaseMessage::Elected {
                    req,
                    term,
                    lease_us,
                },
                CandidatePhase::Follower {
                    asked: Some((asked, at)),
                    ..
                },
            ) if req == asked => {
                let lease = LeaseElectionConfig {
                    lease: Duration(lease_us),
                    ..config
                }
                .leader_lease();
                let until = at + lease;
                if now >= until {
                    return; // the answer came too late to be of use
                }
                c.terms_won += 1;
                c.phase = CandidatePhase::Leader {
                    term,
                    until,
                    renewing: None,
                };
                ctx.cancel_timer(CLAIM_TIMER);
                ctx.set_timer(RENEW_TIMER, config.renew);
                self.lead_until(until, ctx);
                ctx.state_change(format!("leads in term {term}"));
            }
            (LeaseMessage::Held { req, leader }, CandidatePhase::Follower { asked, .. })
                if asked.is_some_and(|a| a.0 == req) =>
            {
                if let CandidatePhase::Follower { leader: known, .. } = &mut c.phase {
                    *known = leader;
                }
            }
            (
                LeaseMessage::Renewed { req, term },
                CandidatePhase::Leader {
                    term: held,
                    until,
                    renewing: Some((asked, at)),
                },
            ) if term == held && req == asked => {
                // Counted from when this renewal left: the store's extension started
                // later. A late answer to an older renewal is ignored.
                let until = until.max(at + config.leader_lease());
                c.phase = CandidatePhase::Leader {
                    term,
                    until,
                    renewing: None,
                };
                self.lead_until(until, ctx);
            }
            (LeaseMessage::Lost { term }, CandidatePhase::Leader { term: held, .. })
                if term == held =>
            {
                self.step_down(ctx, "the store says the lease is gone");
            }
            _ => {}
        }
    }
}

impl Node for LeaseNode {
    type Message = LeaseMessage;
    type Request = ();
    type Response = ();
    type Config = LeaseElectionConfig;

    fn recover(id: NodeId, config: &LeaseElectionConfig, disk: &Disk) -> Self {
        let (role, torn_tail) = if id == STORE {
            let (s, torn) = ServerState::recover(disk);
            (LeaseRole::Store(s), torn)
        } else {
            (
                LeaseRole::Candidate(CandidateState {
                    phase: CandidatePhase::Follower {
                        leader: None,
                        asked: None,
                    },
                    requests: 0,
                    terms_won: 0,
                    stepped_down: 0,
                }),
                None,
            )
        };
        LeaseNode {
            id,
            config: *config,
            role,
            sent: LeaseSent::default(),
            torn_tail,
        }
    }

    fn on_start(&mut self, ctx: &mut Ctx<'_, Self>) {
        if let Some(len) = self.torn_tail.take() {
            for op in cut_lease_log_tail(len) {
                ctx.disk(op);
            }
        }
        let now = ctx.now();
        match &mut self.role {
            LeaseRole::Store(s) => {
                if s.restarted(now, self.config.lease) {
                    ctx.state_change(format!(
                        "the store restarted at term {}: no grant for one lease",
                        s.last_token
                    ));
                }
            }
            LeaseRole::Candidate(_) => {
                // Candidates start spread over one poll period.
                let offset = ctx.rng().below(self.config.poll.0.max(1));
                ctx.set_timer(CLAIM_TIMER, Duration(offset));
            }
        }
    }

    fn on_message(&mut self, from: NodeId, msg: LeaseMessage, ctx: &mut Ctx<'_, Self>) {
        if self.id == STORE {
            self.store_message(from, msg, ctx);
        } else if from == STORE {
            self.candidate_message(msg, ctx);
        }
    }

    fn on_timer(&mut self, timer: TimerId, ctx: &mut Ctx<'_, Self>) {
        let now = ctx.now();
        let Some(c) = self.candidate() else {
            return;
        };
        match (timer, c.phase) {
            (CLAIM_TIMER, CandidatePhase::Follower { .. }) => self.claim(ctx),
            (STEP_DOWN_TIMER | RENEW_TIMER, CandidatePhase::Leader { until, .. })
                if now >= until =>
            {
                if let LeaseRole::Candidate(c) = &mut self.role {
                    c.stepped_down += 1;
                }
                self.step_down(ctx, "its lease ran out on its own clock");
            }
            (RENEW_TIMER, CandidatePhase::Leader { term, until, .. }) => {
                let LeaseRole::Candidate(c) = &mut self.role else {
                    return;
                };
                c.requests += 1;
                let req = c.requests;
                c.phase = CandidatePhase::Leader {
                    term,
                    until,
                    renewing: Some((req, now)),
                };
                self.send(STORE, LeaseMessage::Renew { req, term }, ctx);
                ctx.set_timer(RENEW_TIMER, self.config.renew);
            }
            _ => {}
        }
    }

    fn on_request(&mut self, _request: ClientRequest<()>, _ctx: &mut Ctx<'_, Self>) {}

    fn message_kind(msg: &LeaseMessage) -> &'static str {
        match msg {
            LeaseMessage::Claim { .. } => "claim",
            LeaseMessage::Elected { .. } => "elected",
            LeaseMessage::Held { .. } => "held",
            LeaseMessage::Renew { .. } => "renew",
            LeaseMessage::Renewed { .. } => "renewed",
            LeaseMessage::Lost { .. } => "lost",
        }
    }

    fn role(&self) -> &'static str {
        match &self.role {
            LeaseRole::Store(_) => "store",
            LeaseRole::Candidate(c) => match c.phase {
                CandidatePhase::Leader { .. } => "leader",
                CandidatePhase::Follower { .. } => "follower",
            },
        }
    }
}

/// The candidates that lead with a lease still valid on their own clock at the
/// simulator's present instant, with their terms. A paused leader counts: its clock runs
/// on while it sleeps, and it would act as leader the moment it wakes if the lease were
/// still valid. More than one is the split brain the lease exists to prevent.
pub fn valid_leaders(sim: &Sim<LeaseNode>) -> Vec<(NodeId, u64)> {
    valid_leaders_in(sim, unwrapped)
}

/// [`valid_leaders`] in a simulator whose nodes wrap lease nodes (`lease` unwraps one).
pub fn valid_leaders_in<N: Node>(
    sim: &Sim<N>,
    lease: impl Fn(&N) -> Option<&LeaseNode>,
) -> Vec<(NodeId, u64)> {
    let now = sim.now();
    (FIRST_CANDIDATE..sim.node_count())
        .filter(|&id| matches!(sim.status(id), Some(NodeStatus::Up | NodeStatus::Paused)))
        .filter_map(|id| {
            let (term, until) = lease(sim.node(id)?)?.leading()?;
            let local = sim.clock(id)?.local(now);
            (local < until).then_some((id, term))
        })
        .collect()
}

/// Checks that every live candidate follows one leader with a valid lease and that leader
/// leads; call it once the network has been quiet for a few leases.
pub fn agreement(sim: &Sim<LeaseNode>) -> Result<(NodeId, u64), String> {
    agreement_in(sim, unwrapped)
}

/// [`agreement`] in a simulator whose nodes wrap lease nodes.
pub fn agreement_in<N: Node>(
    sim: &Sim<N>,
    lease: impl Fn(&N) -> Option<&LeaseNode>,
) -> Result<(NodeId, u64), String> {
    let leaders = valid_leaders_in(sim, &lease);
    let &[(leader, term)] = leaders.as_slice() else {
        return Err(format!("valid leaders: {leaders:?}"));
    };
    for id in FIRST_CANDIDATE..sim.node_count() {
        if sim.status(id) != Some(NodeStatus::Up) {
            continue;
        }
        let believed = sim
            .node(id)
            .and_then(&lease)
            .and_then(LeaseNode::believed_leader);
        if believed != Some((leader, term)) {
            return Err(format!(
                "n{id} takes {believed:?} for the leader, n{leader} leads in term {term}"
            ));
        }
    }
    Ok((leader, term))
}

/// A bare node, for the `_in` checks over a simulator of them.
fn unwrapped(n: &LeaseNode) -> Option<&LeaseNode> {
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SimRng;
    use crate::sim::{Effect, Fault, SimConfig};

    const CONFIG: LeaseElectionConfig = LeaseElectionConfig {
        lease: Duration::from_millis(300),
        renew: Duration::from_millis(100),
        poll: Duration::from_millis(100),
        drift_margin_ppm: 100_000,
    };

    fn sim(candidates: u32, seed: u64) -> Sim<LeaseNode> {
        Sim::new(
            SimConfig {
                seed,
                nodes: FIRST_CANDIDATE + candidates,
                ..SimConfig::default()
            },
            CONFIG,
        )
        .unwrap()
    }

    /// Runs `ms` and returns the most candidates that held a valid lease at one instant
    /// (checked after every event: between events a lease can only run out).
    fn run(sim: &mut Sim<LeaseNode>, ms: u64) -> usize {
        let end = sim.now() + Duration::from_millis(ms);
        let mut most = valid_leaders(sim).len();
        while sim.step_until(end).is_some() {
            most = most.max(valid_leaders(sim).len());
        }
        sim.advance_clock(end);
        most
    }

    #[test]
    fn the_leader_lease_is_shortened_by_the_margin() {
        assert_eq!(CONFIG.leader_lease(), Duration::from_millis(270));
        let whole = LeaseElectionConfig {
            drift_margin_ppm: 0,
            ..CONFIG
        };
        assert_eq!(whole.leader_lease(), CONFIG.lease);
    }

    #[test]
    fn one_leader_is_elected_and_a_crash_hands_over_to_a_higher_term() {
        for seed in 0..8 {
            let mut s = sim(4, seed);
            assert!(run(&mut s, 1_000) <= 1);
            let (first, term) = agreement(&s).unwrap();
            s.apply_fault(&Fault::Crash { node: first }).unwrap();
            assert!(run(&mut s, 1_000) <= 1);
            let (second, next) = agreement(&s).unwrap();
            assert_ne!(second, first);
            assert!(next > term, "seed {seed}: term {term} then {next}");
            // Back from its crash, the old leader follows.
            s.apply_fault(&Fault::Restart { node: first }).unwrap();
            assert!(run(&mut s, 1_000) <= 1);
            assert_eq!(agreement(&s), Ok((second, next)), "seed {seed}");
        }
    }

    #[test]
    fn a_leader_cut_off_from_the_store_steps_down_before_anyone_takes_over() {
        let mut s = sim(4, 3);
        run(&mut s, 1_000);
        let (leader, term) = agreement(&s).unwrap();
        s.apply_fault(&Fault::Partition {
            groups: vec![vec![leader]],
        })
        .unwrap();
        assert!(run(&mut s, 1_000) <= 1);
        let leader_state = s.node(leader).unwrap();
        assert_eq!(leader_state.leading(), None);
        assert_eq!(leader_state.candidate().unwrap().stepped_down, 1);
        // The cut-off node knows no leader; the others follow the next one.
        let &[(next, next_term)] = valid_leaders(&s).as_slice() else {
            panic!("{:?}", valid_leaders(&s));
        };
        assert_ne!(next, leader);
        assert_eq!(next_term, term + 1);
        assert_eq!(s.node(leader).unwrap().believed_leader(), None);
        s.apply_fault(&Fault::Heal).unwrap();
        assert!(run(&mut s, 500) <= 1);
        assert_eq!(agreement(&s), Ok((next, next_term)));
    }

    #[test]
    fn a_restarted_store_keeps_its_terms_and_waits_one_lease() {
        let mut s = sim(3, 5);
        run(&mut s, 1_000);
        let (_, term) = agreement(&s).unwrap();
        s.apply_fault(&Fault::Crash { node: STORE }).unwrap();
        assert!(run(&mut s, 200) <= 1);
        s.apply_fault(&Fault::Restart { node: STORE }).unwrap();
        let store = s.node(STORE).unwrap().store().unwrap();
        assert_eq!(store.last_token, term, "the term survived on disk");
        assert!(store.granting_from > Time::ZERO);
        assert!(run(&mut s, 1_500) <= 1);
        let (_, next) = agreement(&s).unwrap();
        assert!(next > term);
    }

    #[test]
    fn a_paused_leader_wakes_up_without_its_lease() {
        let mut s = sim(3, 7);
        run(&mut s, 1_000);
        let (leader, _) = agreement(&s).unwrap();
        s.apply_fault(&Fault::Pause { node: leader }).unwrap();
        assert!(run(&mut s, 1_000) <= 1);
        s.apply_fault(&Fault::Resume { node: leader }).unwrap();
        assert!(run(&mut s, 1_000) <= 1);
        let (next, _) = agreement(&s).unwrap();
        assert_ne!(next, leader);
    }

    /// Drifts inside the stated bound (each clock within ±4 %, so no two differ by more
    /// than the 10 % margin) with partitions of the leader: never two valid leases.
    #[test]
    fn drift_within_the_margin_never_gives_two_leaders() {
        for seed in 0..20 {
            let mut s = sim(3, seed);
            let mut rng = SimRng::derive(seed, 11);
            for id in 0..s.node_count() {
                let ppm = rng.range_inclusive(0, 80_000) as i64 - 40_000;
                s.apply_fault(&Fault::ClockDrift { node: id, ppm }).unwrap();
            }
            for _ in 0..4 {
                run(&mut s, 700);
                if let Some(&(leader, _)) = valid_leaders(&s).first() {
                    s.apply_fault(&Fault::Partition {
                        groups: vec![vec![leader]],
                    })
                    .unwrap();
                }
                assert!(run(&mut s, 700) <= 1, "seed {seed}");
                s.apply_fault(&Fault::Heal).unwrap();
            }
        }
    }

    /// The known-dangerous schedules (Gray & Cheriton §3; Kleppmann 2016): the leader's
    /// clock runs slower than the margin allows, or is stepped back, while it is cut off
    /// from the store. It still believes in its lease when the store has granted the next.
    #[test]
    fn a_slow_or_stepped_back_leader_clock_gives_two_leaders() {
        for fault in [
            |node| Fault::ClockDrift {
                node,
                ppm: -400_000,
            },
            |node| Fault::ClockSkew {
                node,
                skew_ms: -250.0,
            },
        ] {
            let mut s = sim(3, 2);
            run(&mut s, 1_000);
            let (leader, term) = agreement(&s).unwrap();
            s.apply_fault(&fault(leader)).unwrap();
            s.apply_fault(&Fault::Partition {
                groups: vec![vec![leader]],
            })
            .unwrap();
            assert_eq!(run(&mut s, 1_000), 2, "{:?}", fault(leader));
            s.apply_fault(&Fault::Heal).unwrap();
            run(&mut s, 1_000);
            assert!(agreement(&s).unwrap().1 > term);
        }
    }

    /// Driven by hand: the leader of term 1 is gone and its lease ran out at the store.
    /// A takeover is one claim and one answer, and every other follower learns the new
    /// leader with its own claim and answer: 2(n − 1) messages for n − 1 live
    /// candidates, where the bully algorithm's worst case is quadratic.
    #[test]
    fn a_takeover_costs_two_messages_per_live_candidate() {
        const CANDIDATES: u32 = 7;
        let disk = Disk::new();
        let n = FIRST_CANDIDATE + CANDIDATES;
        let mut nodes: Vec<LeaseNode> = (0..n)
            .map(|id| LeaseNode::recover(id, &CONFIG, &disk))
            .collect();
        if let LeaseRole::Store(st) = &mut nodes[STORE as usize].role {
            st.last_token = 1;
            st.grants = 1;
            st.holder = Some((n - 1, 1, Time::from_millis(100)));
        }
        let mut rng = SimRng::new(1);
        let mut queue = std::collections::VecDeque::new();
        let now = Time::from_millis(500);
        let mut drive =
            |nodes: &mut Vec<LeaseNode>,
             queue: &mut std::collections::VecDeque<(NodeId, NodeId, LeaseMessage)>,
             id: NodeId,
             f: &dyn Fn(&mut LeaseNode, &mut Ctx<'_, LeaseNode>)| {
                let mut effects = Vec::new();
                let mut ctx = Ctx::new(id, now, n, &mut rng, &mut effects);
                f(&mut nodes[id as usize], &mut ctx);
                for e in effects {
                    if let Effect::Send { to, msg } = e {
                        queue.push_back((id, to, msg));
                    }
                }
            };
        // Every live candidate (all but the old leader) claims once.
        for id in FIRST_CANDIDATE..n - 1 {
            drive(&mut nodes, &mut queue, id, &|x, ctx| x.claim(ctx));
        }
        while let Some((from, to, msg)) = queue.pop_front() {
            drive(&mut nodes, &mut queue, to, &|x, ctx| {
                x.on_message(from, msg, ctx)
            });
        }
        let total: u64 = nodes.iter().map(|x| x.sent().total()).sum();
        assert_eq!(total, 2 * (CANDIDATES as u64 - 1));
        let winner = (FIRST_CANDIDATE, 2);
        assert_eq!(
            nodes[FIRST_CANDIDATE as usize].believed_leader(),
            Some(winner)
        );
        for x in &nodes[FIRST_CANDIDATE as usize + 1..n as usize - 1] {
            assert_eq!(x.believed_leader(), Some(winner));
        }
        // The bully algorithm on the same survivors, lowest noticing first (see
        // `bully::tests`): n(n−1)/2 elections, (n−1)(n−2)/2 answers, n−1 coordinators.
        let m = CANDIDATES as u64;
        let bully_worst = m * (m - 1) / 2 + (m - 1) * (m - 2) / 2 + (m - 1);
        assert!(total < bully_worst / 3, "{total} vs {bully_worst}");
    }
}
