//! The lessons `consensus.pbft` carries, after Castro & Liskov, "Practical Byzantine Fault
//! Tolerance" (OSDI 1999): a primary that lies is replaced by a view change (§4.4), and
//! the bound n ≥ 3f + 1 is what safety stands on (§3, §4.5): one liar more than the
//! group was built for, and two correct replicas commit different requests at one
//! sequence number.
//!
//! Both run four replicas (f = 1), whose primary in view v is n(v mod 4): n0 in view 0,
//! n1 in view 1. The seeds are those the regression tests use. A test plays each lesson
//! and checks each step's condition is met rather than timed out.

use serde_json::json;

use crate::lab::lesson::{Condition, Lesson, Pause, step, when};

const FOLLOWS: &str = "Castro & Liskov, Practical Byzantine Fault Tolerance (OSDI 1999)";

/// Every lesson of `consensus.pbft`.
pub fn lessons() -> Vec<Lesson> {
    vec![an_equivocating_primary(), one_liar_too_many()]
}

pub(crate) fn an_equivocating_primary() -> Lesson {
    Lesson {
        id: "an-equivocating-primary".into(),
        title: "The primary lies: a view change replaces it".into(),
        follows: format!("{FOLLOWS}, §4.2 and §4.4"),
        config: json!({"seed": 3}),
        steps: vec![
            step(
                "Four replicas tolerate one liar: n = 3f + 1 with f = 1. n0, the primary \
                 of view 0, gives each client request a sequence number in a \
                 PRE-PREPARE. A backup that accepts it multicasts a PREPARE; a replica \
                 holding the pre-prepare and 2f matching prepares has a prepared \
                 certificate and multicasts a COMMIT; with 2f + 1 commits it executes, \
                 and a client takes an answer once f + 1 replicas agree on it.",
                vec![],
                when(Condition::FieldAtLeast {
                    field: "lastExecuted".into(),
                    value: 8.0,
                }),
            ),
            step(
                "n0 turns liar: for each request it now sends the request to n2 and a \
                 null request to n1 and n3 under the same number. n1 and n3 can prepare \
                 the null request between them; n2 cannot prepare the client's alone, so \
                 no correct replica executes it. The backups waiting for it let their \
                 view timers run out and ask for view 1 (VIEW-CHANGE, carrying their \
                 prepared certificates).",
                vec![json!({"type": "makeByzantine", "node": 0, "behaviour": "equivocate"})],
                when(Condition::Role {
                    role: "view-change".into(),
                    at_least: 2,
                }),
            ),
            step(
                "n1, the primary of view 1, gathers 2f + 1 VIEW-CHANGE messages and \
                 multicasts NEW-VIEW: every number a certificate shows prepared keeps its \
                 request, the gaps get null requests. Nothing prepared in view 0 can be \
                 lost, because any 2f + 1 replicas include a correct one that saw it.",
                vec![],
                when(Condition::NodeRole {
                    node: 1,
                    role: "primary".into(),
                }),
            ),
            step(
                "Requests are ordered again, now by n1. n0 still lies, but as a backup it \
                 has one vote in 2f + 1: it can delay nothing and forge nothing (its MACs \
                 name it, so it cannot speak for another replica).",
                vec![],
                Pause::After { ms: 1_000.0 },
            ),
        ],
    }
}

pub(crate) fn one_liar_too_many() -> Lesson {
    Lesson {
        id: "one-liar-too-many".into(),
        title: "f + 1 liars: two correct replicas commit different requests".into(),
        follows: format!("{FOLLOWS}, §3 and §4.5"),
        config: json!({"seed": 2, "liars": [{"node": 0, "behaviour": "equivocate"}]}),
        steps: vec![
            step(
                "n0 lies from the start, splitting each number between the client's \
                 request and a null one. With one liar among four the split goes \
                 nowhere: a request needs 2f + 1 = 3 commits, and the two halves have two \
                 correct replicas at most between them besides n0. The backups change \
                 the view and n1 leads view 1; safety holds.",
                vec![],
                when(Condition::NodeRole {
                    node: 1,
                    role: "primary".into(),
                }),
            ),
            step(
                "Now n1 lies too: two liars in a group built for one. n1 splits its \
                 numbers the same way, and n0 vouches for both halves with prepares and \
                 commits. Each half — one correct replica and the two liars — reaches \
                 2f + 1 = 3 commits, so n2 commits the client's request and n3 the null \
                 one at the same number. The safety invariant breaks: nothing in the \
                 protocol can tell. The fix is the bound itself: tolerating two liars \
                 takes 3 × 2 + 1 = 7 replicas, where any two quorums of 2f + 1 = 5 share \
                 f + 1 = 3 replicas, at least one of them correct.",
                vec![json!({"type": "makeByzantine", "node": 1, "behaviour": "equivocate"})],
                when(Condition::Violated {
                    name: "safety".into(),
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

    fn last_executed(v: &crate::lab::view::View, node: usize) -> u64 {
        v.nodes[node].fields["lastExecuted"].as_u64().unwrap_or(0)
    }

    #[test]
    fn after_the_view_change_the_correct_replicas_execute_again_and_agree() {
        let lesson = an_equivocating_primary();
        let (mut lab, held) = play_through(&lesson, |c| create_lab("consensus.pbft", c)).unwrap();
        assert!(held.iter().all(|h| *h), "{held:?}");
        let v = lab.view();
        assert!(v.invariants.iter().all(|i| i.ok), "{:?}", v.invariants);
        let before: Vec<u64> = (1..4).map(|i| last_executed(&v, i)).collect();
        // Still making progress in view ≥ 1 after the lesson's end.
        let end = lab.now() + crate::Duration::from_millis(1_000);
        while lab.now() < end {
            lab.step(end.saturating_since(lab.now())).unwrap();
        }
        let v = lab.view();
        for (i, b) in (1..4).zip(&before) {
            assert!(
                last_executed(&v, i) > *b,
                "n{i}: {} ≤ {b}",
                last_executed(&v, i)
            );
            assert!(v.nodes[i].fields["view"].as_u64() >= Some(1));
        }
        assert!(v.invariants.iter().all(|i| i.ok), "{:?}", v.invariants);
    }

    #[test]
    fn the_second_liar_breaks_safety_and_the_first_alone_did_not() {
        let lesson = one_liar_too_many();
        let mut first = lesson.clone();
        first.steps.truncate(1);
        let (lab, held) = play_through(&first, |c| create_lab("consensus.pbft", c)).unwrap();
        assert!(held.iter().all(|h| *h), "{held:?}");
        assert!(lab.view().invariants.iter().all(|i| i.ok));
        let (lab, held) = play_through(&lesson, |c| create_lab("consensus.pbft", c)).unwrap();
        assert!(held.iter().all(|h| *h), "{held:?}");
        let broken: Vec<_> = lab
            .view()
            .invariants
            .into_iter()
            .filter(|i| !i.ok)
            .collect();
        assert!(
            broken.iter().any(|i| i.name.starts_with("safety")),
            "{broken:?}"
        );
    }
}
