//! The lesson `consensus.2pc` carries: two-phase commit blocking, then unblocked. A
//! transaction commits; then the coordinator crashes once every participant has voted
//! yes, and the participants, each prepared and uncertain, hold their locks for as long
//! as it stays down — cooperative termination cannot help when every survivor is
//! uncertain (Bernstein, Hadzilacos & Goodman, *Concurrency Control and Recovery in
//! Database Systems*, 1987, §7.4); the coordinator's recovery ends it (presumed abort).
//! Gray & Lamport, "Consensus on Transaction Commit" (2006), name this the
//! protocol's flaw.
//!
//! Seed 1, the client's own transactions nearly off (one a minute on average), so the
//! lesson's `begin` actions are the transactions on the stage. A test plays the lesson
//! and checks each step's condition is met rather than timed out.

use serde_json::json;

use crate::lab::lesson::{Condition, Lesson, step, when};

fn at_least(field: &str, value: f64) -> Condition {
    Condition::FieldAtLeast {
        field: field.into(),
        value,
    }
}

/// Every lesson of `consensus.2pc`.
pub fn lessons() -> Vec<Lesson> {
    vec![blocking()]
}

pub(crate) fn blocking() -> Lesson {
    Lesson {
        id: "blocking".into(),
        title: "Two-phase commit blocks when its coordinator crashes".into(),
        follows: "Gray & Lamport, Consensus on Transaction Commit (2006); Bernstein, \
                  Hadzilacos & Goodman, Concurrency Control and Recovery in Database \
                  Systems (1987), §7"
            .into(),
        config: json!({
            "seed": 1,
            "voteNoProbability": 0.0,
            "txIntervalMs": 60_000,
            "keys": 64
        }),
        steps: vec![
            step(
                "The coordinator (n0) asks the three participants to prepare a write to \
                 k0. Each locks the key, logs that it is prepared and votes yes; with \
                 every vote in, the coordinator logs commit and tells them. Their locks \
                 go and the transactions table shows it committed everywhere.",
                vec![json!({"type": "begin", "key": "k0"})],
                when(at_least("committed", 1.0)),
            ),
            step(
                "A second transaction, on k1 — and this time the coordinator crashes the \
                 moment all three have voted yes, before it decides. A prepared \
                 participant has given up its right to abort: it may not decide alone, \
                 so each keeps k1 locked and waits. The blocking panel counts how long.",
                vec![
                    json!({"type": "crashCoordinatorAfterPrepare"}),
                    json!({"type": "begin", "key": "k1"}),
                ],
                when(at_least("blockedMs", 1_000.0)),
            ),
            step(
                "Cooperative termination is on: each participant asks the others for the \
                 outcome. But all three are uncertain, and the coordinator might have \
                 decided commit just before it crashed, so nobody can decide. The locks \
                 stay held as long as the coordinator stays down: this is the blocking \
                 of two-phase commit.",
                vec![],
                when(at_least("blockedMs", 2_500.0)),
            ),
            step(
                "The coordinator restarts. Its log holds no decision for k1's \
                 transaction, so it presumes abort; the participants' next request \
                 learns it, they abort and release k1. Every participant is free again.",
                vec![json!({"type": "restart", "node": 0})],
                when(Condition::Role {
                    role: "participant".into(),
                    at_least: 3,
                }),
            ),
            step(
                "And the cluster commits again: a new write to k1 goes through. Only the \
                 coordinator's return ended the blocking; three-phase commit \
                 (consensus.3pc) adds a phase so that the participants can decide without \
                 it.",
                vec![json!({"type": "begin", "key": "k1"})],
                when(at_least("committed", 2.0)),
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
    fn the_lesson_blocks_then_recovers_with_every_participant_decided() {
        let (mut lab, held) =
            play_through(&blocking(), |c| create_lab("consensus.2pc", c)).unwrap();
        assert!(held.iter().all(|h| *h), "{held:?}");
        // The last step pauses at the first commit of the new k1 write; let the rest land.
        lab.step(crate::time::Duration::from_millis(500)).unwrap();
        let v = lab.view();
        assert!(v.invariants.iter().all(|i| i.ok), "{:?}", v.invariants);
        for n in v.nodes.iter().filter(|n| n.id != 0) {
            // k0 and the second k1 committed, the blocked k1 aborted; nothing held.
            assert_eq!(n.role, "participant", "n{}", n.id);
            assert_eq!(n.fields["committed"], json!(2), "n{}", n.id);
            assert_eq!(n.fields["aborted"], json!(1), "n{}", n.id);
            assert_eq!(n.fields["blockedMs"], json!(0.0), "n{}", n.id);
        }
        let text = serde_json::to_string(&v.panels).unwrap();
        assert!(text.contains("Longest blocking"), "{text}");
    }

    #[test]
    fn without_the_restart_the_participants_stay_blocked() {
        // The fix is the coordinator's return: drop it and step 4 never reaches its pause.
        let mut lesson = blocking();
        lesson.steps[3].actions.clear();
        lesson.steps.truncate(4);
        let (lab, held) = play_through(&lesson, |c| create_lab("consensus.2pc", c)).unwrap();
        assert_eq!(held, [true, true, true, false]);
        assert!(
            lab.view()
                .nodes
                .iter()
                .filter(|n| n.id != 0)
                .all(|n| n.role == "uncertain")
        );
    }
}
