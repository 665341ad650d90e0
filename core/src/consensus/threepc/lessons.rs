//! The lesson `consensus.3pc` carries: the crash that blocks two-phase commit does not
//! block three-phase commit, and a partition splits its decision. Skeen, "Nonblocking
//! Commit Protocols" (SIGMOD 1981): with a PreCommit phase between the votes and the
//! commit, no participant commits while another is still uncertain, so when the
//! coordinator crashes the survivors' termination protocol (Skeen & Stonebraker 1983)
//! can always decide. That argument assumes failures are crashes and the network is
//! synchronous: cut the network after a PreCommit reached only some participants, and
//! each side's rule decides for it — the coordinator's side commits, the other aborts.
//!
//! Seed 1, the client's own transactions nearly off (one a minute on average), so the
//! lesson's `begin` actions are the transactions on the stage. A test plays the lesson
//! and checks each step's condition is met rather than timed out; the last is the
//! atomicity invariant turning red.

use serde_json::json;

use crate::lab::lesson::{Condition, Lesson, Pause, step};

fn when(condition: Condition) -> Pause {
    Pause::When {
        condition,
        within_ms: 10_000.0,
    }
}

fn at_least(field: &str, value: f64) -> Condition {
    Condition::FieldAtLeast {
        field: field.into(),
        value,
    }
}

/// Every lesson of `consensus.3pc`.
pub fn lessons() -> Vec<Lesson> {
    vec![nonblocking_until_a_partition()]
}

pub(crate) fn nonblocking_until_a_partition() -> Lesson {
    Lesson {
        id: "nonblocking-until-a-partition".into(),
        title: "No blocking on a crash, a split decision on a partition".into(),
        follows: "Skeen, Nonblocking Commit Protocols (SIGMOD 1981); Skeen & Stonebraker, \
                  A Formal Model of Crash Recovery in a Distributed System (IEEE TSE 1983)"
            .into(),
        config: json!({
            "seed": 1,
            "voteNoProbability": 0.0,
            "txIntervalMs": 60_000,
            "keys": 64
        }),
        steps: vec![
            step(
                "A transaction on k0 in three phases: the coordinator (n0) collects yes \
                 votes, sends PreCommit and waits for its acknowledgements, then sends \
                 DoCommit. A participant that is pre-committed knows everyone voted yes.",
                vec![json!({"type": "begin", "key": "k0"})],
                when(at_least("committed", 1.0)),
            ),
            step(
                "The crash that blocks two-phase commit: a transaction on k1, and the \
                 coordinator crashes as soon as every participant has voted yes, before \
                 it pre-commits anyone. The participants hold k1 locked — but only until \
                 their decision timeout runs out. Then one of them becomes the backup \
                 coordinator and asks the others for their states.",
                vec![
                    json!({"type": "crashCoordinatorBeforePreCommit"}),
                    json!({"type": "begin", "key": "k1"}),
                ],
                when(at_least("aborted", 1.0)),
            ),
            step(
                "Everyone is uncertain: no one was pre-committed, so no one can have \
                 committed, and the backup decides abort. The other participants follow, \
                 k1's locks go, and the coordinator is still down: three-phase commit did \
                 not block.",
                vec![],
                when(Condition::Role {
                    role: "participant".into(),
                    at_least: 3,
                }),
            ),
            step(
                "The coordinator restarts, and a transaction on k2 starts. This time the \
                 network is cut at the worst moment: once the PreCommit has reached some \
                 participants but not all, the coordinator and the pre-committed ones are \
                 cut off from the uncertain ones. Each side times out and applies the \
                 rule: the coordinator's side commits (someone was pre-committed), the \
                 other side's backup finds everyone uncertain and aborts. The atomicity \
                 invariant turns red.",
                vec![
                    json!({"type": "restart", "node": 0}),
                    json!({"type": "partitionAfterPreCommit"}),
                    json!({"type": "begin", "key": "k2"}),
                ],
                when(Condition::Violated {
                    name: "atomicity".into(),
                }),
            ),
            step(
                "The partition heals, and nothing can undo the split: k2 is committed at \
                 some nodes and aborted at others. Three-phase commit is nonblocking only \
                 if a silent node has crashed; in an asynchronous network a silent node \
                 may just be cut off. Commit protocols built on consensus (Paxos Commit, \
                 in Gray & Lamport's Consensus on Transaction Commit) need a majority \
                 instead and never split.",
                vec![json!({"type": "heal"})],
                Pause::After { ms: 1_000.0 },
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
    fn the_participants_decide_without_the_coordinator() {
        // Up to the abort without the coordinator: it is still down, no one holds a lock.
        let mut lesson = nonblocking_until_a_partition();
        lesson.steps.truncate(3);
        let (lab, held) = play_through(&lesson, |c| create_lab("consensus.3pc", c)).unwrap();
        assert!(held.iter().all(|h| *h), "{held:?}");
        let v = lab.view();
        assert_eq!(v.nodes[0].status, "crashed");
        for n in &v.nodes[1..] {
            assert_eq!(n.role, "participant", "n{}", n.id);
            assert_eq!(n.fields["aborted"], json!(1), "n{}", n.id);
            assert_eq!(n.fields["committed"], json!(1), "n{}", n.id);
        }
        assert!(v.invariants.iter().all(|i| i.ok), "{:?}", v.invariants);
    }

    #[test]
    fn the_partition_splits_the_decision_and_the_heal_does_not_mend_it() {
        let (lab, held) = play_through(&nonblocking_until_a_partition(), |c| {
            create_lab("consensus.3pc", c)
        })
        .unwrap();
        assert!(held.iter().all(|h| *h), "{held:?}");
        let v = lab.view();
        let broken: Vec<&str> = v
            .invariants
            .iter()
            .filter(|i| !i.ok)
            .map(|i| i.name.as_str())
            .collect();
        assert_eq!(broken.len(), 1, "{broken:?}");
        assert!(broken[0].starts_with("atomicity"), "{broken:?}");
        // Both outcomes of k2's transaction exist among the participants.
        let committed = |n: &crate::lab::view::NodeView| n.fields["committed"].as_u64();
        let outcomes: Vec<Option<u64>> = v.nodes[1..].iter().map(committed).collect();
        assert!(outcomes.contains(&Some(2)), "{outcomes:?}");
        assert!(outcomes.contains(&Some(1)), "{outcomes:?}");
    }
}
