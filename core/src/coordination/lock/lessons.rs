//! The lesson `coordination.lock` carries: a lease counted on a slow clock, and the
//! fencing token that makes it harmless (Kleppmann, "How to do distributed locking",
//! 2016, "Making the lock safe with fencing" and "Using time to detect failures").
//!
//! Seed 1, holds of up to 100 writes so that one hold outlasts the story. Client n2's
//! clock runs at half speed; while it can reach the lock server its renewals keep its
//! lease, but once its messages to the server are lost its own clock tells it the lease
//! lasts twice as long as the server grants it. The server gives the lock to n3 and
//! both believe they hold it — the failure; n2's next write carries the older token and
//! the storage refuses it — the fix. A test plays the lesson and checks each step's
//! condition is met rather than timed out, and that without fencing the write lands.

use serde_json::json;

use crate::lab::lesson::{Condition, Lesson, LessonStep, Pause};

fn step(caption: &str, actions: Vec<serde_json::Value>, condition: Condition) -> LessonStep {
    LessonStep {
        caption: caption.to_string(),
        actions,
        pause: Pause::When {
            condition,
            within_ms: 5_000.0,
        },
    }
}

/// Every lesson of `coordination.lock`.
pub fn lessons() -> Vec<Lesson> {
    vec![slow_clock()]
}

pub(crate) fn slow_clock() -> Lesson {
    Lesson {
        id: "slow-clock".into(),
        title: "A lease on a slow clock, and the token that fences it".into(),
        follows: "Kleppmann, \"How to do distributed locking\" (2016)".into(),
        config: json!({
            "seed": 1,
            "writesPerHold": 100,
            "faults": {"faults": []}
        }),
        steps: vec![
            step(
                "Node 0 is the lock server, node 1 the storage, n2 and n3 clients. The \
                 server grants the lock with a 300 ms lease and a token one higher than \
                 the last. The holder renews every third of its lease and writes to the \
                 storage with its token. n2's clock runs at half speed: its renewals \
                 arrive every 200 ms instead of 100, still inside the lease, so nothing \
                 is wrong yet. The step stops when n2 holds the lock.",
                vec![json!({"type": "clockDrift", "node": 2, "ppm": -500_000})],
                Condition::NodeRole {
                    node: 2,
                    role: "holder".into(),
                },
            ),
            step(
                "n2's messages to the lock server are now lost; it still reaches the \
                 storage. Its renewals stop arriving, and the server's lease runs out 300 \
                 ms after the last one: it grants the lock to n3 with the next token. n2 \
                 checks its lease before every write, but on its own clock, where 300 ms \
                 take 600: it still believes it holds the lock. The step stops when two \
                 clients are holders at once.",
                vec![json!({"type": "partitionOneWay", "from": [2], "to": [0]})],
                Condition::Role {
                    role: "holder".into(),
                    at_least: 2,
                },
            ),
            step(
                "n3 writes with its newer token. n2's next write carries the older one, \
                 and the storage, which has seen the newer, refuses it: that is the \
                 fencing token. n2 learns it lost the lock from the refusal and stops. \
                 The writes table holds no stale write; with fencing off (the config's \
                 switch) n2's write would land after n3's.",
                vec![],
                Condition::FieldAtLeast {
                    field: "fencedOff".into(),
                    value: 1.0,
                },
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
    fn the_lesson_fences_the_slow_clients_write() {
        let (mut lab, held) =
            play_through(&slow_clock(), |c| create_lab("coordination.lock", c)).unwrap();
        assert!(held.iter().all(|h| *h), "{held:?}");
        // The lesson stops as the storage refuses the write; let the refusal reach the
        // client.
        lab.step(crate::time::Duration::from_millis(100)).unwrap();
        let v = lab.view();
        assert!(v.invariants.iter().all(|i| i.ok), "{:?}", v.invariants);
        let node = |id: u32| v.nodes.iter().find(|n| n.id == id).unwrap();
        assert_eq!(node(1).fields["fencedOff"], json!(1));
        assert_eq!(node(2).fields["writesFencedOff"], json!(1));
        assert_eq!(node(2).role, "client");
        assert_eq!(node(3).role, "holder");
    }

    #[test]
    fn without_fencing_the_slow_clients_write_lands() {
        let mut lesson = slow_clock();
        lesson.config["fencing"] = json!(false);
        let (lab, held) = play_through(&lesson, |c| create_lab("coordination.lock", c)).unwrap();
        assert_eq!(held, [true, true, false]);
        let v = lab.view();
        let stale = v
            .invariants
            .iter()
            .find(|i| i.name == "no superseded holder's write lands")
            .unwrap();
        assert!(!stale.ok, "{stale:?}");
        assert!(stale.nodes.contains(&2), "{stale:?}");
    }
}
