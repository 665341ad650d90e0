//! The lessons `consensus.raft` carries: guided runs through leader election, log
//! replication, a partition that forces a leader change, and a membership change, in
//! the order the Raft paper explains them (Ongaro & Ousterhout, "In Search of an
//! Understandable Consensus Algorithm", USENIX ATC 2014, §5.2–5.4; membership: Ongaro's
//! thesis, "Consensus: Bridging Theory and Practice", Stanford 2014, §4), and the
//! paper's Figure 8 played with faults (§5.4.2). Each step
//! names its pause, so every reader (and every share link) stops at the same event.
//!
//! The node ids in the actions are those of seed 1: the first leader is n2, and cut off
//! with n0, the other three elect a new one. A test plays every lesson and checks each
//! step's condition is met rather than timed out, so a change that moves them is caught.

use serde_json::{Value, json};

use crate::lab::lesson::{Condition, Lesson, Pause, step, when};

fn a_leader() -> Condition {
    Condition::Role {
        role: "leader".into(),
        at_least: 1,
    }
}

const PAPER: &str = "Ongaro & Ousterhout, In Search of an Understandable Consensus \
                     Algorithm (USENIX ATC 2014)";

/// The first leader of seed 1 (in every lesson's config), and the follower cut off with it.
const FIRST_LEADER: u32 = 2;
const CUT_WITH_LEADER: u32 = 0;
/// Who the other three elect once n2 and n0 are cut off.
const NEXT_LEADER: u32 = 1;

/// Every lesson of `consensus.raft`, in the order to take them.
pub fn lessons() -> Vec<Lesson> {
    vec![
        election(),
        replication(),
        partition(),
        figure_8(),
        membership(),
    ]
}

fn election() -> Lesson {
    Lesson {
        id: "election".into(),
        title: "Electing a leader".into(),
        follows: format!("{PAPER}, §5.2"),
        config: json!({"workload": {"clients": 0}}),
        steps: vec![
            step(
                "Five servers start as followers in term 0 (the number on each). Each \
                 waits for word from a leader; the ring around it fills as its election \
                 timeout runs. The timeouts are drawn at random, so one runs out first.",
                vec![],
                when(Condition::FieldAtLeast {
                    field: "term".into(),
                    value: 1.0,
                }),
            ),
            step(
                "The first server whose timer ran out became a candidate: it moved to \
                 term 1 and asked the others for their votes. Each server votes at most \
                 once per term, for the first candidate whose log is at least as complete \
                 as its own.",
                vec![],
                when(a_leader()),
            ),
            step(
                "A majority — three of five — voted for it, so it leads term 1. Only one \
                 server can gather a majority in a term: that is election safety.",
                vec![],
                Pause::After { ms: 400.0 },
            ),
            step(
                "The leader sends heartbeats (♥), and every follower restarts its timer \
                 when one arrives: their rings stay nearly empty, and no election starts \
                 while the leader is up. The ring around the leader is its lease.",
                vec![],
                Pause::After { ms: 300.0 },
            ),
        ],
    }
}

fn replication() -> Lesson {
    Lesson {
        id: "replication".into(),
        title: "Replicating the log".into(),
        follows: format!("{PAPER}, §5.3"),
        config: json!({"workload": {"clients": 1, "thinkMs": 200.0}}),
        steps: vec![
            step(
                "A client sends its commands to the leader. First the cluster needs one: \
                 watch the election.",
                vec![],
                when(a_leader()),
            ),
            step(
                "The grid under the stage holds every server's log: a column per index, \
                 each entry labelled and coloured by the term it was created in. The \
                 leader appends each command to its log and sends it in AppendEntries; \
                 entries are faded until the server knows they are committed.",
                vec![
                    json!({"type": "clientRequest", "request": {"op": "put", "key": "x", "value": "1"}}),
                ],
                Pause::After { ms: 300.0 },
            ),
            step(
                "Once a majority stores an entry, the leader commits it: the white bar \
                 (the commit index) moves past it, and the followers learn of it with the \
                 next AppendEntries. ▲ marks how far the leader knows each follower's log \
                 matches its own.",
                vec![],
                Pause::After { ms: 300.0 },
            ),
            step(
                "A follower crashes. Four of five is still a majority, so entries keep \
                 committing; the crashed server's row stops growing.",
                vec![json!({"type": "crash", "node": 4})],
                Pause::After { ms: 800.0 },
            ),
            step(
                "It restarts with the log it had stored. The leader's next index for it \
                 (△) finds where the two logs agree, and AppendEntries fills in the rest: \
                 its row catches up.",
                vec![json!({"type": "restart", "node": 4})],
                Pause::After { ms: 1_200.0 },
            ),
        ],
    }
}

fn partition() -> Lesson {
    Lesson {
        id: "partition".into(),
        title: "A partition and a new leader".into(),
        follows: format!("{PAPER}, §5.2 and §5.4"),
        config: Value::Null,
        steps: vec![
            step(
                "Two clients write to a five-server cluster; wait for its leader.",
                vec![],
                when(a_leader()),
            ),
            step(
                "The network splits: the leader n2 and n0 on one side, n1, n3 and n4 on \
                 the other. The leader can still append, but no entry reaches a majority: \
                 its commit index stops. On the other side, the followers hear no \
                 heartbeat; their timers run out.",
                vec![json!({"type": "partition", "groups": [[FIRST_LEADER, CUT_WITH_LEADER]]})],
                when(Condition::NodeRole {
                    node: NEXT_LEADER,
                    role: "leader".into(),
                }),
            ),
            step(
                "The three on the majority side elected n1 in a higher term, and it \
                 commits again. The old leader hears from no majority: with check-quorum \
                 it steps down by itself.",
                vec![],
                Pause::After { ms: 600.0 },
            ),
            step(
                "The partition heals. n2 and n0 see the higher term and follow n1; the \
                 entries they appended but never committed are overwritten by the \
                 leader's (§5.4: a leader never loses a committed entry, uncommitted ones \
                 may go).",
                vec![json!({"type": "heal"})],
                Pause::After { ms: 800.0 },
            ),
        ],
    }
}

/// Figure 8 of the paper, played with faults: why a leader counts only entries of its own
/// term as committed by replica counting. The rule is switched off, and so are pre-vote
/// and check-quorum (they would hold the schedule back), and a leader sends one entry per
/// AppendEntries, so an old entry can reach a majority before the leader's own.
fn figure_8() -> Lesson {
    Lesson {
        id: "figure-8".into(),
        title: "Figure 8: why only current-term entries commit by counting".into(),
        follows: format!("{PAPER}, §5.4.2 and Figure 8"),
        config: json!({
            "workload": {"clients": 0},
            "raft": {
                "currentTermCommitRule": false,
                "maxBatch": 1,
                "preVote": false,
                "checkQuorum": false
            }
        }),
        steps: vec![
            step(
                "This run switches off the rule of §5.4.2 — a leader commits an entry by \
                 counting replicas only if the entry is from its own term — to show what \
                 the rule prevents. Wait for the first leader.",
                vec![],
                when(a_leader()),
            ),
            step(
                "n2 leads term 1; its first entry reaches everyone.",
                vec![],
                Pause::After { ms: 100.0 },
            ),
            step(
                "(a) The network cuts n2 and n0 off from the rest, and a client writes \
                 x=1 to n2: it lands at index 2, on n2 and n0 only.",
                vec![
                    json!({"type": "partition", "groups": [[FIRST_LEADER, CUT_WITH_LEADER]]}),
                    json!({"type": "clientRequest", "node": FIRST_LEADER, "request": {"op": "put", "key": "x", "value": "1"}}),
                ],
                Pause::After { ms: 50.0 },
            ),
            step(
                "(b) The other three elect n4 in term 2. It appends an entry of its own \
                 at index 2 — caught the moment it leads, before the entry travels.",
                vec![],
                when(Condition::Role {
                    role: "leader".into(),
                    at_least: 2,
                }),
            ),
            step(
                "(c) n4 is cut off before its entry spreads, and the other four follow n2 \
                 again in a later term. Sending one entry at a time, n2 first brings its \
                 old index-2 entry (term 1) to n1 and n3: on a majority now, and without \
                 the rule n2 counts it committed — before any entry of its own term is.",
                vec![json!({"type": "partition", "groups": [[4]]})],
                when(Condition::FieldAtLeast {
                    field: "commitIndex".into(),
                    value: 2.0,
                }),
            ),
            step(
                "(d) Now n2 and n0 are cut off. n4's last entry has a higher term (2) than \
                 n1's and n3's (1), so they vote for it; it leads and overwrites index 2. \
                 An entry the cluster committed is gone: the checker flags leader \
                 completeness. With the rule on (the default), n2 would not have counted \
                 index 2 before its own term's entry was on a majority — and n4 could not \
                 have won against that majority.",
                vec![json!({"type": "partition", "groups": [[FIRST_LEADER, CUT_WITH_LEADER]]})],
                when(Condition::Violated {
                    name: "leader completeness".into(),
                }),
            ),
        ],
    }
}

fn membership() -> Lesson {
    Lesson {
        id: "membership".into(),
        title: "Adding and removing a server".into(),
        follows: "Ongaro, Consensus: Bridging Theory and Practice (Stanford PhD thesis, \
                  2014), §4"
            .into(),
        config: json!({"workload": {"clients": 1}}),
        steps: vec![
            step(
                "Changing who is in the cluster is itself an entry in the log. Wait for \
                 the leader.",
                vec![],
                when(a_leader()),
            ),
            step(
                "A sixth server starts empty. The leader adds it as a learner first: it \
                 receives the log but does not vote, so it cannot slow commits while it \
                 catches up.",
                vec![json!({"type": "addNode"})],
                when(Condition::NodeRole {
                    node: 5,
                    role: "follower".into(),
                }),
            ),
            step(
                "Caught up, n5 was promoted: a configuration entry with six voters was \
                 committed, and a majority is now four. One server changes at a time, so \
                 the old and new majorities always overlap.",
                vec![],
                Pause::After { ms: 300.0 },
            ),
            step(
                "Now the leader removes n4. Once the entry without it commits, n4 is not \
                 counted in any majority and gets no more entries (its row stops). It may \
                 never hear that it was removed; pre-vote keeps it from disrupting the \
                 others when its timer runs out.",
                vec![json!({"type": "removeNode", "node": 4})],
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
    fn every_lesson_plays_to_its_end_with_each_condition_met() {
        for lesson in lessons() {
            let (lab, held) = play_through(&lesson, |c| create_lab("consensus.raft", c)).unwrap();
            assert!(held.iter().all(|h| *h), "{}: {held:?}", lesson.id);
            let v = lab.view();
            // Figure 8 ends in the violation it shows; every other lesson keeps them all.
            let broken: Vec<&str> = v
                .invariants
                .iter()
                .filter(|i| !i.ok)
                .map(|i| i.name.as_str())
                .collect();
            let expected: &[&str] = if lesson.id == "figure-8" {
                &["leader completeness"]
            } else {
                &[]
            };
            assert_eq!(broken, expected, "{}", lesson.id);
        }
    }

    #[test]
    fn figure_8_with_the_rule_on_loses_nothing() {
        // The same schedule with the current-term commit rule (the default): nothing
        // committed is lost, so the last step's condition is never met.
        let mut lesson = figure_8();
        lesson.config["raft"]["currentTermCommitRule"] = json!(true);
        let (lab, held) = play_through(&lesson, |c| create_lab("consensus.raft", c)).unwrap();
        assert_eq!(held.last(), Some(&false), "{held:?}");
        assert!(lab.view().invariants.iter().all(|i| i.ok));
    }

    #[test]
    fn a_step_ends_at_the_same_event_however_it_is_sliced() {
        let lesson = election();
        let run = |slice_ms: f64| {
            let mut lab = create_lab("consensus.raft", &lesson.config).unwrap();
            let mut ends = Vec::new();
            for s in &lesson.steps {
                let started = lab.now();
                let slice = crate::time::Duration::try_from_millis_f64("slice", slice_ms).unwrap();
                while !crate::lab::lesson::advance(lab.as_mut(), &s.pause, started, slice).unwrap()
                {
                }
                ends.push((lab.steps(), lab.now()));
            }
            (ends, lab.trace()["hash"].clone())
        };
        assert_eq!(run(0.37), run(16.0));
        assert_eq!(run(16.0), run(10_000.0));
    }
}
