//! The bully algorithm (Garcia-Molina 1982). A node that suspects the coordinator (its
//! heartbeats stopped) sends `Election` to every higher id. A higher node that is alive
//! answers (`Answer`) and starts its own election; a node that hears no answer within
//! `answerTimeout` is the highest alive and announces itself with `Coordinator` to all.
//! A node that got an answer waits `coordinatorTimeout` for the announcement and starts
//! again if none comes. A node that boots starts an election, so a restarted higher node
//! takes over ("bullies" the others).
//!
//! Cost: when the lowest of n nodes notices first, every node above it starts an
//! election too: n(n−1)/2 `Election`s, as many `Answer`s as reached live nodes, and n−1
//! `Coordinator`s — O(n²). When the highest live node notices first, n−1 messages. The
//! node counts what it sent by kind, so the lab can show the cost.
//!
//! The property, once the network has been quiet for a few timeouts: every live node
//! agrees the coordinator is the highest live id ([`agreement`]). Under a partition each
//! side elects its own, which is what the algorithm promises (it assumes a reliable
//! network, as the paper says); the check applies when every live node can reach every
//! other.

use std::hash::Hash;

use crate::sim::disk::Disk;
use crate::sim::node::{ClientRequest, Ctx, Fingerprint, Node, NodeId, TimerId};
use crate::sim::trace::StableHasher;
use crate::sim::{NodeStatus, Sim};
use crate::time::Duration;

const HEARTBEAT_TIMER: TimerId = 1;
const LEADER_WATCH_TIMER: TimerId = 2;
const ELECTION_TIMER: TimerId = 3;

/// Node-to-node messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BullyMessage {
    /// "I am starting an election": sent to higher ids.
    Election,
    /// "I am alive and higher: I take it from here."
    Answer,
    /// "I am the coordinator."
    Coordinator,
    /// The coordinator's periodic sign of life (not part of the election's cost).
    Heartbeat,
}

impl Fingerprint for BullyMessage {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        self.hash(h);
    }
}

/// Cluster-wide timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BullyConfig {
    /// Between two coordinator heartbeats.
    pub heartbeat: Duration,
    /// A follower that hears nothing from the coordinator this long starts an election.
    pub leader_timeout: Duration,
    /// How long an electing node waits for an `Answer` before it declares itself.
    pub answer_timeout: Duration,
    /// How long a node that was answered waits for the `Coordinator`.
    pub coordinator_timeout: Duration,
}

/// Where a node is in the algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BullyPhase {
    Follower,
    /// Sent `Election`s; `answered` once a higher node answered.
    Electing {
        answered: bool,
    },
    Leader,
}

/// Messages a node sent, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct BullySent {
    pub election: u64,
    pub answer: u64,
    pub coordinator: u64,
    pub heartbeat: u64,
}

impl BullySent {
    /// The election's own messages (heartbeats left out).
    pub fn election_messages(&self) -> u64 {
        self.election + self.answer + self.coordinator
    }
}

/// A node of the bully algorithm. It keeps nothing on disk: a restart starts an
/// election, which is the algorithm's recovery.
#[derive(Debug, Clone)]
pub struct BullyNode {
    id: NodeId,
    config: BullyConfig,
    leader: Option<NodeId>,
    phase: BullyPhase,
    elections_started: u64,
    sent: BullySent,
}

impl Fingerprint for BullyNode {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        let BullyNode {
            id,
            config,
            leader,
            phase,
            elections_started,
            sent,
        } = self;
        (id, config, leader, phase, elections_started, sent).hash(h);
    }
}

impl BullyNode {
    /// Whom this node takes for the coordinator.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }
    pub fn phase(&self) -> BullyPhase {
        self.phase
    }
    pub fn elections_started(&self) -> u64 {
        self.elections_started
    }
    pub fn sent(&self) -> BullySent {
        self.sent
    }

    fn send(&mut self, to: NodeId, msg: BullyMessage, ctx: &mut Ctx<'_, Self>) {
        match msg {
            BullyMessage::Election => self.sent.election += 1,
            BullyMessage::Answer => self.sent.answer += 1,
            BullyMessage::Coordinator => self.sent.coordinator += 1,
            BullyMessage::Heartbeat => self.sent.heartbeat += 1,
        }
        ctx.send(to, msg);
    }

    /// Sends `Election` to every higher id, or wins at once if there is none.
    pub fn start_election(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.elections_started += 1;
        self.leader = None;
        ctx.cancel_timer(LEADER_WATCH_TIMER);
        ctx.cancel_timer(HEARTBEAT_TIMER);
        let n = ctx.node_count();
        if self.id + 1 >= n {
            self.become_leader(ctx);
            return;
        }
        self.phase = BullyPhase::Electing { answered: false };
        for higher in self.id + 1..n {
            self.send(higher, BullyMessage::Election, ctx);
        }
        ctx.set_timer(ELECTION_TIMER, self.config.answer_timeout);
        ctx.state_change("started an election");
    }

    fn become_leader(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.phase = BullyPhase::Leader;
        self.leader = Some(self.id);
        ctx.cancel_timer(ELECTION_TIMER);
        ctx.cancel_timer(LEADER_WATCH_TIMER);
        let me = self.id;
        for other in (0..ctx.node_count()).filter(|&o| o != me) {
            self.send(other, BullyMessage::Coordinator, ctx);
        }
        ctx.set_timer(HEARTBEAT_TIMER, self.config.heartbeat);
        ctx.state_change("became the coordinator");
    }

    fn follow(&mut self, leader: NodeId, ctx: &mut Ctx<'_, Self>) {
        if self.leader != Some(leader) {
            ctx.state_change(format!("follows n{leader}"));
        }
        self.leader = Some(leader);
        self.phase = BullyPhase::Follower;
        ctx.cancel_timer(ELECTION_TIMER);
        ctx.cancel_timer(HEARTBEAT_TIMER);
        ctx.set_timer(LEADER_WATCH_TIMER, self.config.leader_timeout);
    }

    /// A lower node acts as coordinator: a leader tells it, anyone else takes over.
    fn bully(&mut self, lower: NodeId, ctx: &mut Ctx<'_, Self>) {
        match self.phase {
            BullyPhase::Leader => self.send(lower, BullyMessage::Coordinator, ctx),
            BullyPhase::Electing { .. } => {}
            BullyPhase::Follower => self.start_election(ctx),
        }
    }
}

impl Node for BullyNode {
    type Message = BullyMessage;
    type Request = ();
    type Response = ();
    type Config = BullyConfig;

    fn recover(id: NodeId, config: &BullyConfig, _disk: &Disk) -> Self {
        BullyNode {
            id,
            config: *config,
            leader: None,
            phase: BullyPhase::Follower,
            elections_started: 0,
            sent: BullySent::default(),
        }
    }

    fn on_start(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.start_election(ctx);
    }

    fn on_message(&mut self, from: NodeId, msg: BullyMessage, ctx: &mut Ctx<'_, Self>) {
        match msg {
            BullyMessage::Election => {
                if from < self.id {
                    self.send(from, BullyMessage::Answer, ctx);
                    self.bully(from, ctx);
                }
            }
            BullyMessage::Answer => {
                if from > self.id && matches!(self.phase, BullyPhase::Electing { .. }) {
                    self.phase = BullyPhase::Electing { answered: true };
                    ctx.set_timer(ELECTION_TIMER, self.config.coordinator_timeout);
                }
            }
            BullyMessage::Coordinator | BullyMessage::Heartbeat => {
                if from > self.id {
                    // A higher node leads: follow it, whatever this node was doing.
                    self.follow(from, ctx);
                } else if from < self.id {
                    self.bully(from, ctx);
                }
            }
        }
    }

    fn on_timer(&mut self, timer: TimerId, ctx: &mut Ctx<'_, Self>) {
        match (timer, self.phase) {
            (HEARTBEAT_TIMER, BullyPhase::Leader) => {
                let me = self.id;
                for other in (0..ctx.node_count()).filter(|&o| o != me) {
                    self.send(other, BullyMessage::Heartbeat, ctx);
                }
                ctx.set_timer(HEARTBEAT_TIMER, self.config.heartbeat);
            }
            (LEADER_WATCH_TIMER, BullyPhase::Follower) => self.start_election(ctx),
            (ELECTION_TIMER, BullyPhase::Electing { answered: false }) => self.become_leader(ctx),
            // Answered, but no coordinator came: the higher node died meanwhile.
            (ELECTION_TIMER, BullyPhase::Electing { answered: true }) => self.start_election(ctx),
            _ => {}
        }
    }

    fn on_request(&mut self, _request: ClientRequest<()>, _ctx: &mut Ctx<'_, Self>) {}

    fn message_kind(msg: &BullyMessage) -> &'static str {
        match msg {
            BullyMessage::Election => "election",
            BullyMessage::Answer => "answer",
            BullyMessage::Coordinator => "coordinator",
            BullyMessage::Heartbeat => "heartbeat",
        }
    }

    fn role(&self) -> &'static str {
        match self.phase {
            BullyPhase::Follower => "follower",
            BullyPhase::Electing { .. } => "candidate",
            BullyPhase::Leader => "leader",
        }
    }
}

/// Checks that every live node follows the highest live id and that node leads; call it
/// once the network has been quiet (no partition, no pause) for a few timeouts.
pub fn agreement(sim: &Sim<BullyNode>) -> Result<NodeId, String> {
    agreement_in(sim, unwrapped)
}

/// [`agreement`] in a simulator whose nodes wrap bully nodes (`bully` unwraps one).
pub fn agreement_in<N: Node>(
    sim: &Sim<N>,
    bully: impl Fn(&N) -> Option<&BullyNode>,
) -> Result<NodeId, String> {
    let live: Vec<NodeId> = (0..sim.node_count())
        .filter(|&id| sim.status(id) == Some(NodeStatus::Up))
        .collect();
    let Some(&highest) = live.iter().max() else {
        return Err("no node is up".into());
    };
    for &id in &live {
        let Some(n) = sim.node(id).and_then(&bully) else {
            continue;
        };
        if n.leader() != Some(highest) {
            return Err(format!(
                "n{id} takes {:?} for the coordinator, the highest live id is n{highest}",
                n.leader()
            ));
        }
    }
    match sim.node(highest).and_then(&bully).map(BullyNode::phase) {
        Some(BullyPhase::Leader) => Ok(highest),
        other => Err(format!(
            "n{highest} is the highest live id but is {other:?}"
        )),
    }
}

/// A bare node, for the `_in` checks over a simulator of them.
fn unwrapped(n: &BullyNode) -> Option<&BullyNode> {
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SimRng;
    use crate::sim::{Effect, Fault, SimConfig};
    use crate::time::Time;

    const CONFIG: BullyConfig = BullyConfig {
        heartbeat: Duration::from_millis(50),
        leader_timeout: Duration::from_millis(200),
        answer_timeout: Duration::from_millis(30),
        coordinator_timeout: Duration::from_millis(100),
    };

    fn sim(nodes: u32, seed: u64) -> Sim<BullyNode> {
        Sim::new(
            SimConfig {
                seed,
                nodes,
                ..SimConfig::default()
            },
            CONFIG,
        )
        .unwrap()
    }

    fn run(sim: &mut Sim<BullyNode>, ms: u64) {
        let end = sim.now() + Duration::from_millis(ms);
        sim.run_until(end, |_, _| {});
    }

    #[test]
    fn the_highest_live_id_wins_loses_and_takes_over_again() {
        for seed in 0..5 {
            let mut s = sim(5, seed);
            run(&mut s, 1_000);
            assert_eq!(agreement(&s), Ok(4));
            s.apply_fault(&Fault::Crash { node: 4 }).unwrap();
            run(&mut s, 1_000);
            assert_eq!(agreement(&s), Ok(3));
            s.apply_fault(&Fault::Crash { node: 3 }).unwrap();
            run(&mut s, 1_000);
            assert_eq!(agreement(&s), Ok(2));
            // A restarted higher node bullies its way back.
            s.apply_fault(&Fault::Restart { node: 4 }).unwrap();
            run(&mut s, 1_000);
            assert_eq!(agreement(&s), Ok(4));
        }
    }

    #[test]
    fn agreement_fails_while_a_partition_splits_the_election() {
        let mut s = sim(5, 1);
        run(&mut s, 1_000);
        s.apply_fault(&Fault::Partition {
            groups: vec![vec![0, 1, 2]],
        })
        .unwrap();
        run(&mut s, 1_000);
        // Each side elected its highest: n2 leads {0,1,2}, n4 leads {3,4}.
        assert_eq!(s.node(0).unwrap().leader(), Some(2));
        assert!(agreement(&s).is_err());
        s.apply_fault(&Fault::Heal).unwrap();
        run(&mut s, 1_000);
        assert_eq!(agreement(&s), Ok(4));
    }

    /// Nodes driven by hand, with one FIFO queue of messages; `down` drops what it gets.
    struct Hand {
        nodes: Vec<BullyNode>,
        rng: SimRng,
        queue: std::collections::VecDeque<(NodeId, NodeId, BullyMessage)>,
        down: NodeId,
    }

    impl Hand {
        fn run(&mut self, id: NodeId, f: impl FnOnce(&mut BullyNode, &mut Ctx<'_, BullyNode>)) {
            let mut effects = Vec::new();
            let n = self.nodes.len() as u32;
            let mut ctx = Ctx::new(id, Time::ZERO, n, &mut self.rng, &mut effects);
            f(&mut self.nodes[id as usize], &mut ctx);
            for e in effects {
                if let Effect::Send { to, msg } = e {
                    self.queue.push_back((id, to, msg));
                }
            }
        }

        fn deliver_all(&mut self) {
            while let Some((from, to, msg)) = self.queue.pop_front() {
                if to != self.down {
                    self.run(to, |n, ctx| n.on_message(from, msg, ctx));
                }
            }
        }
    }

    /// The worst case, driven by hand: n = 8, the coordinator n7 is down and the lowest
    /// node notices first. Every node above n0 starts its own election.
    #[test]
    fn the_lowest_node_noticing_first_costs_n_squared_messages() {
        const N: u32 = 8;
        let disk = Disk::new();
        let mut h = Hand {
            nodes: (0..N)
                .map(|id| BullyNode::recover(id, &CONFIG, &disk))
                .collect(),
            rng: SimRng::new(1),
            queue: Default::default(),
            down: N - 1,
        };
        h.run(0, |n, ctx| n.start_election(ctx));
        h.deliver_all();
        // n6 heard no answer (n7 is down): its answer timer fires.
        h.run(N - 2, |n, ctx| n.on_timer(ELECTION_TIMER, ctx));
        h.deliver_all();
        let mut total = BullySent::default();
        for x in &h.nodes {
            let s = x.sent();
            total.election += s.election;
            total.answer += s.answer;
            total.coordinator += s.coordinator;
        }
        let n = N as u64;
        assert_eq!(total.election, n * (n - 1) / 2);
        assert_eq!(total.answer, (n - 1) * (n - 2) / 2);
        assert_eq!(total.coordinator, n - 1);
        assert!(h.nodes[..7].iter().all(|x| x.leader() == Some(6)));
        assert_eq!(h.nodes[6].phase(), BullyPhase::Leader);
        // The best case: n6 itself notices first. One election message, n − 1 announcements.
        let mut best = Hand {
            nodes: (0..N)
                .map(|id| BullyNode::recover(id, &CONFIG, &disk))
                .collect(),
            rng: SimRng::new(1),
            queue: Default::default(),
            down: N - 1,
        };
        best.run(N - 2, |n, ctx| n.start_election(ctx));
        best.deliver_all();
        best.run(N - 2, |n, ctx| n.on_timer(ELECTION_TIMER, ctx));
        best.deliver_all();
        let cost: u64 = best
            .nodes
            .iter()
            .map(|x| x.sent().election_messages())
            .sum();
        assert_eq!(cost, 1 + (n - 1));
    }

    /// Random crashes, restarts, pauses and partitions for two seconds, then every fault
    /// repaired except the crashes still in force: after a quiet second and a half every
    /// live node follows the highest live id.
    #[test]
    fn after_random_faults_and_a_quiet_spell_the_highest_live_id_leads() {
        for seed in 0..60 {
            let n = 3 + (seed % 5) as u32;
            let mut s = sim(n, seed);
            let mut rng = SimRng::derive(seed, 7);
            let mut t = 0;
            while t < 2_000 {
                t += rng.range_inclusive(20, 300);
                let node = rng.below(n as u64) as NodeId;
                let fault = match rng.below(5) {
                    0 => Fault::Crash { node },
                    1 => Fault::Restart { node },
                    2 => Fault::Pause { node },
                    3 => Fault::Resume { node },
                    _ => Fault::Partition {
                        groups: vec![vec![node]],
                    },
                };
                s.schedule_fault(Time::from_millis(t), fault).unwrap();
                if rng.chance(0.3) {
                    s.schedule_fault(Time::from_millis(t + 50), Fault::Heal)
                        .unwrap();
                }
            }
            // Past the last scheduled fault (t < 2,300 ms, a heal 50 ms after it).
            run(&mut s, 2_400);
            s.apply_fault(&Fault::Heal).unwrap();
            for id in 0..n {
                if s.status(id) == Some(NodeStatus::Paused) {
                    s.apply_fault(&Fault::Resume { node: id }).unwrap();
                }
            }
            if (0..n).all(|id| s.status(id) == Some(NodeStatus::Crashed)) {
                s.apply_fault(&Fault::Restart { node: 0 }).unwrap();
            }
            run(&mut s, 1_500);
            let states: Vec<_> = (0..n)
                .map(|id| (s.status(id), s.node(id).map(|x| (x.phase(), x.leader()))))
                .collect();
            assert!(
                agreement(&s).is_ok(),
                "seed {seed}: {:?} {states:?}",
                agreement(&s)
            );
        }
    }
}
