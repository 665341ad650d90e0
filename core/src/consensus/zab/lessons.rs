//! The lesson `consensus.zab` carries: Zab losing its leader and establishing a new one
//! in a new epoch. Junqueira, Reed & Serafini, "Zab: High-performance broadcast for
//! primary-backup systems" (DSN 2011): broadcast (phase 3), then on the leader's crash
//! election (phase 0), discovery (phase 1: a new epoch, higher than any a quorum
//! accepted) and synchronisation (phase 2: the new leader's history, proposals of the
//! older epoch included, installed on a quorum before anything new commits).
//!
//! The node ids are those of seed 1: the first leader is n4 (the election prefers the
//! highest id among equally up-to-date peers), and another peer leads the next epoch. A test
//! plays the lesson and checks each step's condition is met rather than timed out.

use serde_json::json;

use crate::lab::lesson::{Condition, Lesson, Pause, step, when};

/// The first leader of seed 1.
const FIRST_LEADER: u32 = 4;
/// The epoch the first leader establishes.
const FIRST_EPOCH: f64 = 1.0;

/// Every lesson of `consensus.zab`.
pub fn lessons() -> Vec<Lesson> {
    vec![a_new_epoch()]
}

pub(crate) fn a_new_epoch() -> Lesson {
    Lesson {
        id: "a-new-epoch".into(),
        title: "The leader crashes: a new epoch".into(),
        follows: "Junqueira, Reed & Serafini, Zab: High-performance broadcast for \
                  primary-backup systems (DSN 2011)"
            .into(),
        config: json!({"seed": 1}),
        steps: vec![
            step(
                "Five peers start looking for a leader: each votes for the peer with the \
                 newest history, ties broken by the highest id. n4 wins; in discovery \
                 the followers accept its new epoch, in synchronisation they take its \
                 history, and it starts broadcasting.",
                vec![],
                when(Condition::NodeRole {
                    node: FIRST_LEADER,
                    role: "leader".into(),
                }),
            ),
            step(
                "Broadcast: the leader gives each client write a zxid — its epoch and a \
                 counter — and proposes it; once a quorum acknowledges, it commits, and \
                 every peer delivers the transactions in zxid order.",
                vec![],
                when(Condition::FieldAtLeast {
                    field: "delivered".into(),
                    value: 5.0,
                }),
            ),
            step(
                "The leader crashes. Proposals it made may have reached only some \
                 followers. Nothing is delivered any more; the followers' timers run \
                 out and they go back to election.",
                vec![json!({"type": "crash", "node": FIRST_LEADER})],
                when(Condition::Role {
                    role: "looking".into(),
                    at_least: 2,
                }),
            ),
            step(
                "The peers elect the one with the newest history. In discovery it asks a \
                 quorum for the epochs they accepted and proposes a higher one, so no \
                 follower will take a proposal from the old leader any more.",
                vec![],
                when(Condition::FieldAtLeast {
                    field: "currentEpoch".into(),
                    value: FIRST_EPOCH + 1.0,
                }),
            ),
            step(
                "Synchronisation: the new leader sends its whole history — the old \
                 epoch's proposals it holds, committed or not, included — and only once \
                 a quorum has it (NewLeader acknowledged) does it commit them and \
                 propose transactions of its own epoch. A proposal that a quorum may \
                 have delivered is never lost.",
                vec![],
                Pause::After { ms: 500.0 },
            ),
            step(
                "n4 restarts and rejoins as a follower of the new epoch: the new leader \
                 sends it its whole history, which replaces n4's own: an old-epoch \
                 proposal that never reached the new leader is dropped.",
                vec![json!({"type": "restart", "node": FIRST_LEADER})],
                when(Condition::NodeRole {
                    node: FIRST_LEADER,
                    role: "follower".into(),
                }),
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
    fn after_the_lesson_all_follow_the_new_epochs_leader_and_nothing_broke() {
        let (lab, held) = play_through(&a_new_epoch(), |c| create_lab("consensus.zab", c)).unwrap();
        assert!(held.iter().all(|h| *h), "{held:?}");
        let v = lab.view();
        assert!(v.invariants.iter().all(|i| i.ok), "{:?}", v.invariants);
        // n4 follows a peer that leads, in an epoch after its own.
        let followed = v.nodes[FIRST_LEADER as usize].fields["leader"].as_u64();
        let leader = v.nodes.iter().find(|n| Some(u64::from(n.id)) == followed);
        assert!(
            leader.is_some_and(|l| l.role == "leader" && l.id != FIRST_LEADER),
            "n4 follows {followed:?}: {:?}",
            v.nodes.iter().map(|n| (n.id, &n.role)).collect::<Vec<_>>()
        );
        // A quorum is in the new epoch (a straggler may still be synchronising).
        let in_new_epoch = v
            .nodes
            .iter()
            .filter(|n| n.fields["currentEpoch"].as_f64() >= Some(FIRST_EPOCH + 1.0))
            .count();
        assert!(in_new_epoch >= 3, "{in_new_epoch}");
    }
}
