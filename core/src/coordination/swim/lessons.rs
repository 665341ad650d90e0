//! The lesson `coordination.swim` carries: a member cut off for a moment is suspected,
//! not declared dead, and refutes the suspicion with a higher incarnation once it is
//! heard again; a member that really crashed is declared dead, and the death reaches
//! every member by gossip (Das, Gupta & Motivala, "SWIM", DSN 2002, §4.2 the suspicion
//! mechanism and §4.1 infection-style dissemination; Dadgar, Phillips & Currey,
//! "Lifeguard", 2018, for the suspicion timeout that shrinks as suspicions confirm).
//!
//! Seed 1, eight members, Lifeguard on (the default). A test plays the lesson and checks
//! each step's condition is met rather than timed out, and where it ends: n3 alive at a
//! higher incarnation in every view, n5 dead in every view.

use serde_json::json;

use crate::lab::lesson::{Condition, Lesson, Pause, step};

fn when(condition: Condition, within_ms: f64) -> Pause {
    Pause::When {
        condition,
        within_ms,
    }
}

/// Every lesson of `coordination.swim`.
pub fn lessons() -> Vec<Lesson> {
    vec![suspicion()]
}

pub(crate) fn suspicion() -> Lesson {
    Lesson {
        id: "suspicion".into(),
        title: "Suspected, refuted; crashed, declared dead".into(),
        follows: "Das, Gupta & Motivala, \"SWIM: Scalable Weakly-consistent \
                  Infection-style Process Group Membership Protocol\" (DSN 2002); \
                  Dadgar, Phillips & Currey, \"Lifeguard\" (2018)"
            .into(),
        config: json!({"seed": 1, "nodes": 8}),
        steps: vec![
            step(
                "Eight members. Every 200 ms each pings the next member of its probe \
                 order and waits 60 ms for an ack; what it has learnt rides along on \
                 pings and acks. Every member is alive in every view.",
                vec![],
                Pause::After { ms: 2_000.0 },
            ),
            step(
                "n3 is cut off from everyone. A ping to n3 goes unanswered, and so do \
                 the pings three other members send it on the prober's behalf. The \
                 prober does not declare n3 dead: it suspects it, and gossips the \
                 suspicion (the step stops when n3 turns suspect).",
                vec![json!({"type": "partition", "groups": [[3]]})],
                when(
                    Condition::NodeRole {
                        node: 3,
                        role: "suspect".into(),
                    },
                    5_000.0,
                ),
            ),
            step(
                "The cut heals before the suspicion times out. n3 hears that it is \
                 suspected, raises its incarnation and spreads that it is alive at the \
                 new number, which overrides the older suspicion everywhere. Without the \
                 suspicion stage the first failed probe would have declared a live \
                 member dead (the step stops at the refutation).",
                vec![json!({"type": "heal"})],
                when(
                    Condition::FieldAtLeast {
                        field: "incarnation".into(),
                        value: 1.0,
                    },
                    5_000.0,
                ),
            ),
            step(
                "The refutation spreads; every member holds n3 alive again.",
                vec![],
                Pause::After { ms: 2_000.0 },
            ),
            step(
                "Now n5 crashes. It is suspected in the same way, but nobody can refute \
                 for it: once the suspicion timeout runs out (shorter the more members \
                 confirm it, as Lifeguard has it) a member declares n5 dead (the step \
                 stops there).",
                vec![json!({"type": "crash", "node": 5})],
                when(
                    Condition::FieldAtLeast {
                        field: "deadCount".into(),
                        value: 1.0,
                    },
                    10_000.0,
                ),
            ),
            step(
                "The death notice rides on the next pings and acks, and within a few \
                 periods every member holds n5 dead: no central detector, and each \
                 member's load stays the same whatever the group's size.",
                vec![],
                Pause::After { ms: 3_000.0 },
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
    fn n3_refutes_and_n5_is_dead_everywhere() {
        let (lab, held) =
            play_through(&suspicion(), |c| create_lab("coordination.swim", c)).unwrap();
        assert!(held.iter().all(|h| *h), "{held:?}");
        let v = lab.view();
        assert!(v.invariants.iter().all(|i| i.ok), "{:?}", v.invariants);
        for n in &v.nodes {
            match n.id {
                3 => {
                    assert_eq!(n.role, "alive");
                    assert!(n.fields["incarnation"].as_u64().unwrap() >= 1);
                }
                5 => assert_eq!(n.role, "down"),
                _ => {
                    assert_eq!(n.role, "alive", "n{}", n.id);
                    assert_eq!(n.fields["dead"], json!([5]), "n{}", n.id);
                    assert_eq!(n.fields["deadCount"], json!(1), "n{}", n.id);
                }
            }
        }
    }
}
