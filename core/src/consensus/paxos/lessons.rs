//! The lesson `consensus.paxos` carries: the distinguished proposer of Lamport, "Paxos
//! Made Simple" (ACM SIGACT News, 2001), §2.4 and §3 — Multi-Paxos' leader runs phase 1
//! once and then only phase 2 per command — losing its leader, and a new one taking over
//! by phase 1 with a higher ballot, re-proposing whatever a majority may have accepted.
//!
//! Seed 1: the first leader is n3 (ballot 2.3). A test plays the lesson and checks each
//! step's condition is met rather than timed out.

use serde_json::json;

use crate::lab::lesson::{Condition, Lesson, Pause, step, when};

fn at_least(field: &str, value: f64) -> Condition {
    Condition::FieldAtLeast {
        field: field.into(),
        value,
    }
}

const PAPER: &str = "Lamport, Paxos Made Simple (ACM SIGACT News, 2001)";

/// The leader seed 1 elects first.
const FIRST_LEADER: u32 = 3;

/// Every lesson of `consensus.paxos`, in the order to take them.
pub fn lessons() -> Vec<Lesson> {
    vec![a_distinguished_proposer()]
}

pub(crate) fn a_distinguished_proposer() -> Lesson {
    Lesson {
        id: "a-distinguished-proposer".into(),
        title: "A distinguished proposer: Multi-Paxos".into(),
        follows: format!("{PAPER}, §2.4 and §3"),
        config: json!({"seed": 1}),
        steps: vec![
            step(
                "Five nodes, each an acceptor, a learner and a proposer. Proposers that \
                 compete preempt each other's ballots (§2.4), so Multi-Paxos lets one \
                 lead: n3 runs phase 1 for every slot at once and becomes the leader; the \
                 others send their clients to it.",
                vec![],
                when(Condition::NodeRole {
                    node: FIRST_LEADER,
                    role: "leader".into(),
                }),
            ),
            step(
                "Each command now costs one phase 2 round trip: slots are chosen one \
                 after another, and the phase 1 rounds panel stays flat while the \
                 leader's heartbeats keep the others from starting their own.",
                vec![],
                when(at_least("chosen", 20.0)),
            ),
            step(
                "The leader crashes, and nothing more is chosen: the other nodes only \
                 forward commands to it. Its heartbeats stop; after a while another node \
                 runs phase 1 with a higher ballot and becomes the leader. The promises it collects carry every \
                 value a majority may have accepted, and it proposes those again in \
                 their slots: nothing chosen is lost.",
                vec![json!({"type": "crash", "node": FIRST_LEADER})],
                when(Condition::Role {
                    role: "leader".into(),
                    at_least: 1,
                }),
            ),
            step(
                "The new leader serves the clients, four of five being a majority. The \
                 old one restarts as an acceptor with its promises and votes on disk, \
                 and learns the slots it missed.",
                vec![json!({"type": "restart", "node": FIRST_LEADER})],
                Pause::After { ms: 800.0 },
            ),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::create_lab;
    use crate::lab::lesson::play_through;

    #[test]
    fn a_new_leader_takes_over_and_the_rounds_stay_few() {
        let (lab, held) = play_through(&a_distinguished_proposer(), |c| {
            create_lab("consensus.paxos", c)
        })
        .unwrap();
        assert!(held.iter().all(|h| *h), "{held:?}");
        let v = lab.view();
        assert!(v.invariants.iter().all(|i| i.ok), "{:?}", v.invariants);
        let leaders: Vec<crate::sim::NodeId> = v
            .nodes
            .iter()
            .filter(|n| n.role == "leader")
            .map(|n| n.id)
            .collect();
        assert_eq!(leaders.len(), 1, "{leaders:?}");
        // A leader's phase 1 covers every slot: a few rounds in all for many commands.
        let field = |n: &crate::lab::view::NodeView, f: &str| n.fields[f].as_f64().unwrap();
        let rounds: f64 = v.nodes.iter().map(|n| field(n, "phase1Rounds")).sum();
        let chosen = v
            .nodes
            .iter()
            .map(|n| field(n, "chosen"))
            .fold(0.0, f64::max);
        assert!(rounds * 4.0 < chosen, "{rounds} rounds, {chosen} chosen");
    }
}
