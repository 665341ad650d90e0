//! The lesson `consensus.vr` carries: Viewstamped Replication losing its primary and
//! getting a new one, then a crashed replica recovering without a disk log. Liskov &
//! Cowling, "Viewstamped Replication Revisited" (MIT-CSAIL-TR-2012-021, 2012): normal
//! operation (§4.1), the view change (§4.2) — the primary of view v is replica
//! v mod n, so view 1 is led by n1 — and recovery with a nonce (§4.3).
//!
//! Seed 1. A test plays the lesson and checks each step's condition is met rather than
//! timed out.

use serde_json::json;

use crate::lab::lesson::{Condition, Lesson, Pause, step, when};

fn node_is(node: u32, role: &str) -> Condition {
    Condition::NodeRole {
        node,
        role: role.into(),
    }
}

/// The primary of view 0, and of view 1 (v mod 5).
const FIRST_PRIMARY: u32 = 0;
const NEXT_PRIMARY: u32 = 1;

/// Every lesson of `consensus.vr`.
pub fn lessons() -> Vec<Lesson> {
    vec![view_change_and_recovery()]
}

pub(crate) fn view_change_and_recovery() -> Lesson {
    Lesson {
        id: "view-change-and-recovery".into(),
        title: "A primary crashes: the view change, then a replica's recovery".into(),
        follows: "Liskov & Cowling, Viewstamped Replication Revisited \
                  (MIT-CSAIL-TR-2012-021, 2012), §4"
            .into(),
        config: json!({"seed": 1}),
        steps: vec![
            step(
                "Five replicas in view 0; its primary is n0. Clients send requests to \
                 it; it assigns each an op-number and sends Prepare, the backups answer \
                 PrepareOK, and with f + 1 = 3 of them it commits and replies. The \
                 commit number climbs.",
                vec![],
                when(Condition::FieldAtLeast {
                    field: "commitNumber".into(),
                    value: 5.0,
                }),
            ),
            step(
                "The primary crashes. Nothing commits: the clients' requests go \
                 unanswered, and the backups hear no more Commit heartbeats. The first \
                 whose timer runs out moves to view 1 and sends StartViewChange.",
                vec![json!({"type": "crash", "node": FIRST_PRIMARY})],
                when(Condition::FieldAtLeast {
                    field: "view".into(),
                    value: 1.0,
                }),
            ),
            step(
                "Once f + 1 agree to change views, each sends DoViewChange with its log \
                 to n1, the primary of view 1. From f + 1 logs it picks the one of the \
                 latest normal view with the highest op-number — every committed \
                 operation is in it — and sends StartView.",
                vec![],
                when(node_is(NEXT_PRIMARY, "primary")),
            ),
            step(
                "View 1 runs normally: the clients find the new primary and requests \
                 commit again, four replicas of five being enough.",
                vec![],
                Pause::After { ms: 500.0 },
            ),
            step(
                "n0 restarts. VR writes no log to disk (this lab keeps only the view \
                 there), so n0 has lost its log: it is recovering. It sends Recovery with a fresh nonce and \
                 waits for f + 1 answers carrying that nonce, one of them from the \
                 primary of the latest view, whose log it adopts. The nonce keeps an \
                 answer to an older recovery from counting. Once the answers are in, \
                 n0 is a backup of view 1 with the primary's log.",
                vec![json!({"type": "restart", "node": FIRST_PRIMARY})],
                when(node_is(FIRST_PRIMARY, "backup")),
            ),
            step(
                "n0 prepares new operations again, and the five replicas commit as \
                 before.",
                vec![],
                Pause::After { ms: 300.0 },
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
    fn after_the_lesson_every_replica_is_in_the_new_view_and_nothing_broke() {
        let (lab, held) = play_through(&view_change_and_recovery(), |c| {
            create_lab("consensus.vr", c)
        })
        .unwrap();
        assert!(held.iter().all(|h| *h), "{held:?}");
        let v = lab.view();
        assert!(v.invariants.iter().all(|i| i.ok), "{:?}", v.invariants);
        let n0 = &v.nodes[FIRST_PRIMARY as usize];
        let n1 = &v.nodes[NEXT_PRIMARY as usize];
        assert_eq!(n1.role, "primary");
        assert_eq!(n0.role, "backup");
        assert_eq!(n0.fields["view"], n1.fields["view"]);
        // The recovered replica holds the operations committed while it was down.
        let commit = |n: &crate::lab::view::NodeView| n.fields["commitNumber"].as_u64().unwrap();
        assert!(commit(n0) > 5, "{}", commit(n0));
    }
}
