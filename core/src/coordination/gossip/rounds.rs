//! A round-synchronous driver for [`GossipNode`]s, for measuring dissemination against
//! the theory: in each round every node runs its gossip round once (in id order), then
//! every message is delivered, replies included, before the next round starts — the
//! model of Pittel ("On spreading a rumor", SIAM J. Appl. Math. 1987) and of Karp et
//! al. ("Randomized rumor spreading", FOCS 2000).
//!
//! It runs the very node code the simulator runs, without the event queue: the
//! simulator's engine spends most of its time on per-message latency, ordering and
//! tracing, which the round model has none of, and this driver disseminates through
//! 10,000 nodes in milliseconds.
//!
//! One departure from the strict model, for the exchanges that answer (pull,
//! push-pull): the deliveries of a round happen one after another, so a node that
//! learned earlier in the delivery phase answers with what it just learned. Push — the
//! mode Pittel's theorem is about — has no answers and follows the model exactly.

use crate::coordination::gossip::{GOSSIP_TIMER, GossipConfig, GossipMessage, GossipNode, Put};
use crate::error::{DistlabError, Result};
use crate::rng::SimRng;
use crate::sim::disk::Disk;
use crate::sim::engine::MAX_NODES;
use crate::sim::node::{ClientRequest, Ctx, Effect, Node, NodeId};
use crate::time::Time;

/// What one dissemination run measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dissemination {
    /// Rounds until every node held the update, if that happened.
    pub rounds: Option<u32>,
    /// Rounds run (to full dissemination, to quiescence or to the cap).
    pub rounds_run: u32,
    /// Nodes that held the update at the end.
    pub informed: u32,
    pub messages: u64,
}

/// Writes one update at node 0 of `n` nodes and runs rounds until every node holds it,
/// the gossip has gone quiet (rumors all lost interest), or `max_rounds`.
pub fn disseminate(
    n: u32,
    config: GossipConfig,
    seed: u64,
    max_rounds: u32,
) -> Result<Dissemination> {
    if !(2..=MAX_NODES).contains(&n) {
        return Err(DistlabError::field(
            "n",
            format!("must be 2 to {MAX_NODES} nodes, not {n}"),
        ));
    }
    if config.fanout == 0 {
        return Err(DistlabError::field("fanout", "must be at least 1"));
    }
    let disk = Disk::new();
    let mut nodes: Vec<GossipNode> = (0..n)
        .map(|id| GossipNode::recover(id, &config, &disk))
        .collect();
    let mut rng = SimRng::derive(seed, 0x0060_551b);
    let mut effects: Vec<Effect<GossipMessage, crate::coordination::gossip::Version>> = Vec::new();
    {
        let mut ctx = Ctx::new(0, Time(1), n, &mut rng, &mut effects);
        nodes[0].on_request(
            ClientRequest {
                client: 0,
                id: 0,
                body: Put { key: 0, value: 1 },
            },
            &mut ctx,
        );
    }
    let mut informed = 1u32;
    let mut knows = vec![false; n as usize];
    knows[0] = true;
    let mut messages = 0u64;
    let mut queue: Vec<(NodeId, NodeId, GossipMessage)> = Vec::new();
    let mut round = 0;
    while round < max_rounds && informed < n {
        round += 1;
        for (id, node) in nodes.iter_mut().enumerate() {
            effects.clear();
            let mut ctx = Ctx::new(
                id as NodeId,
                Time(u64::from(round)),
                n,
                &mut rng,
                &mut effects,
            );
            node.on_timer(GOSSIP_TIMER, &mut ctx);
            collect(id as NodeId, &mut effects, &mut queue);
        }
        if queue.is_empty()
            && nodes.iter().all(|x| x.hot().is_empty())
            && !config.mode.is_anti_entropy()
        {
            break;
        }
        let mut next = 0;
        while next < queue.len() {
            let (from, to, msg) = queue[next].clone();
            next += 1;
            messages += 1;
            effects.clear();
            let node = &mut nodes[to as usize];
            let mut ctx = Ctx::new(to, Time(u64::from(round)), n, &mut rng, &mut effects);
            node.on_message(from, msg, &mut ctx);
            collect(to, &mut effects, &mut queue);
            if !knows[to as usize] && node.get(0).is_some() {
                knows[to as usize] = true;
                informed += 1;
            }
        }
        queue.clear();
    }
    Ok(Dissemination {
        rounds: (informed == n).then_some(round),
        rounds_run: round,
        informed,
        messages,
    })
}

fn collect(
    from: NodeId,
    effects: &mut Vec<Effect<GossipMessage, crate::coordination::gossip::Version>>,
    queue: &mut Vec<(NodeId, NodeId, GossipMessage)>,
) {
    for e in effects.drain(..) {
        if let Effect::Send { to, msg } = e {
            queue.push((from, to, msg));
        }
    }
}

/// Pittel's leading terms for push with fanout 1: rounds until all n know a rumor one
/// node started are log₂ n + ln n + O(1) (in probability).
pub fn pittel_push_rounds(n: u32) -> f64 {
    let n = f64::from(n.max(1));
    libm::log2(n) + libm::log(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordination::gossip::{GossipMode, LossOfInterest};

    #[test]
    fn push_reaches_everyone_and_pull_too() {
        for mode in [GossipMode::Push, GossipMode::Pull, GossipMode::PushPull] {
            let cfg = GossipConfig {
                mode,
                ..GossipConfig::default()
            };
            let d = disseminate(200, cfg, 1, 200).unwrap();
            assert_eq!(d.informed, 200, "{mode:?}");
            let r = d.rounds.unwrap();
            assert!((5..40).contains(&r), "{mode:?}: {r}");
        }
    }

    #[test]
    fn push_is_exactly_one_hop_per_round() {
        // After round 1 only node 0 and one peer can know; after round r at most 2^r.
        let cfg = GossipConfig::default();
        for r in 1..6 {
            let d = disseminate(1_000, cfg, 9, r).unwrap();
            assert!(d.informed <= 1 << r, "round {r}: {}", d.informed);
            assert_eq!(d.rounds_run, r);
        }
    }

    #[test]
    fn rumors_go_quiet_and_can_leave_a_residue() {
        let cfg = GossipConfig {
            mode: GossipMode::Rumor,
            k: 1,
            feedback: false,
            loss: LossOfInterest::Counter,
            ..GossipConfig::default()
        };
        // Blind counter with k = 1: each node pushes once. It dies out early in most runs.
        let residues = (0..20)
            .filter(|&s| disseminate(500, cfg, s, 1_000).unwrap().rounds.is_none())
            .count();
        assert!(residues > 10, "{residues}");
    }

    #[test]
    fn bad_sizes_are_refused() {
        assert!(disseminate(1, GossipConfig::default(), 0, 5).is_err());
        let zero = GossipConfig {
            fanout: 0,
            ..GossipConfig::default()
        };
        assert!(disseminate(10, zero, 0, 5).is_err());
    }
}
