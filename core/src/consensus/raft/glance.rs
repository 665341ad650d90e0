//! What a Raft cluster shows without a click, in the view vocabulary: each server's term
//! as a badge, its election timer (or, on the leader, its lease) as a ring, a short label
//! on each message in flight, and the replicated logs as a grid of entries coloured by
//! term with the commit, applied and snapshot positions and the leader's match and next
//! index for each follower. It is the picture of Ongaro's RaftScope (the visualisation
//! on raft.github.io, used in the Raft user study, Ongaro & Ousterhout, USENIX ATC 2014),
//! drawn by the page's generic renderers. Only reads state: the runs are unchanged.

use serde_json::json;
use std::collections::BTreeMap;

use crate::consensus::raft::lab::describe;
use crate::consensus::raft::messages::Message;
use crate::consensus::raft::node::RaftNode;
use crate::lab::view::{
    LogCell, LogMarker, LogRow, MessageDetail, NodeGlance, Panel, ProgressRing,
};
use crate::sim::{Endpoint, InFlight, NodeId, Sim};

/// Log indices shown per row of the grid: the newest ones.
pub const GRID_COLUMNS: u64 = 16;

/// Ring names, as the page's legend lists them.
pub const ELECTION_RING: &str = "election timer";
pub const LEASE_RING: &str = "leader lease";

/// Node `id`'s badge (its term) and ring: the election timer running out on a follower
/// or candidate; on a leader, what is left of its lease (a lease lasts the shortest
/// election timeout from the round a quorum confirmed). Nothing for a crashed node.
pub fn glance(sim: &Sim<RaftNode>, id: NodeId, shown_as: NodeId) -> Option<NodeGlance> {
    let n = sim.node(id)?;
    let local = sim.clock(id).map_or(sim.now(), |c| c.local(sim.now()));
    let ring = if n.is_leader() {
        let lease = n.params().election_min.0.max(1) as f64;
        let left = n
            .lease_until()
            .map_or(0.0, |t| t.saturating_since(local).0 as f64);
        ProgressRing::new(LEASE_RING, left / lease)
    } else {
        ProgressRing::new(ELECTION_RING, n.election_progress(local))
    };
    Some(NodeGlance {
        node: shown_as,
        badge: Some(n.term().to_string()),
        rings: vec![ring],
    })
}

/// A message's short label (drawn beside it) and its fields (shown on a click), `id`
/// being the id the view gives it: its route and timing, and from `payload` (the Raft
/// message; `None` for a client's) what RaftScope shows — the term, and for an append
/// its entries, the log position it follows and the leader's commit index.
pub fn message_detail(m: &InFlight, payload: Option<&Message>, id: u64) -> MessageDetail {
    let kind_label = match m.kind {
        "PreVote" => "pre-vote?",
        "PreVoteResponse" => "pre-vote reply",
        "RequestVote" => "vote?",
        "RequestVoteResponse" => "vote reply",
        "heartbeat" => "♥",
        "AppendEntries" => "append",
        "AppendEntriesResponse" => "append reply",
        "InstallSnapshot" => "snapshot",
        "InstallSnapshotResponse" => "snapshot reply",
        "TimeoutNow" => "timeout now",
        other => other,
    };
    let end = |e: Endpoint| match e {
        Endpoint::Node(n) => format!("n{n}"),
        Endpoint::Client(c) => format!("client {c}"),
    };
    let mut fields = BTreeMap::new();
    fields.insert("kind".into(), json!(m.kind));
    fields.insert("from".into(), json!(end(m.from)));
    fields.insert("to".into(), json!(end(m.to)));
    fields.insert("sentMs".into(), json!(m.sent.as_millis_f64()));
    fields.insert("arrivesMs".into(), json!(m.arrives.as_millis_f64()));
    let mut label = kind_label.to_string();
    if let Some(msg) = payload {
        fields.insert("term".into(), json!(msg.term()));
        match msg {
            Message::Vote(v) => {
                fields.insert("lastLogIndex".into(), json!(v.last_log_index));
                fields.insert("lastLogTerm".into(), json!(v.last_log_term));
                if v.transfer {
                    fields.insert("transfer".into(), json!(true));
                }
            }
            Message::VoteReply(v) => {
                fields.insert("granted".into(), json!(v.granted));
                label = format!("{kind_label} {}", if v.granted { "✓" } else { "✗" });
            }
            Message::Append(a) => {
                fields.insert("prevLogIndex".into(), json!(a.prev_log_index));
                fields.insert("prevLogTerm".into(), json!(a.prev_log_term));
                fields.insert("entries".into(), json!(a.entries.len()));
                fields.insert("leaderCommit".into(), json!(a.leader_commit));
                if !a.entries.is_empty() {
                    label = format!("{kind_label} ×{}", a.entries.len());
                }
            }
            Message::AppendReply(a) => {
                fields.insert("success".into(), json!(a.success));
                fields.insert("index".into(), json!(a.index));
                if !a.success {
                    label = format!("{kind_label} ✗");
                }
            }
            Message::InstallSnapshot(s) => {
                fields.insert("lastIncludedIndex".into(), json!(s.snapshot.index));
                fields.insert("lastIncludedTerm".into(), json!(s.snapshot.term));
            }
            Message::SnapshotReply(s) => {
                fields.insert("index".into(), json!(s.index));
            }
            Message::TimeoutNow { .. } => {}
        }
    }
    MessageDetail { id, label, fields }
}

/// The log grid of one cluster: a row per node, the newest [`GRID_COLUMNS`] indices.
pub fn log_grid(title: &str, sim: &Sim<RaftNode>, role: impl Fn(NodeId) -> String) -> Panel {
    let nodes: Vec<(NodeId, Option<&RaftNode>)> =
        (0..sim.node_count()).map(|id| (id, sim.node(id))).collect();
    let last = nodes
        .iter()
        .filter_map(|(_, n)| n.map(|n| n.log().last_index()))
        .max()
        .unwrap_or(0);
    let first_index = last.saturating_sub(GRID_COLUMNS - 1).max(1);
    // The leader of the highest term speaks for the followers' match and next index.
    let leader = nodes
        .iter()
        .filter_map(|(_, n)| n.filter(|n| n.is_leader()))
        .max_by_key(|n| n.term());
    let rows = nodes
        .iter()
        .map(|&(id, node)| {
            let mut row = LogRow {
                label: format!("n{id}"),
                role: role(id),
                cells: Vec::new(),
                markers: Vec::new(),
            };
            let Some(n) = node else {
                return row;
            };
            let log = n.log();
            row.cells = log
                .iter()
                .skip_while(|(i, _)| *i < first_index)
                .map(|(index, e)| LogCell {
                    index,
                    value: e.term,
                    label: e.term.to_string(),
                    detail: describe(&e.data),
                    committed: index <= n.commit_index(),
                })
                .collect();
            let mut mark = |kind: &str, index: u64| {
                row.markers.push(LogMarker {
                    kind: kind.into(),
                    index,
                })
            };
            mark("commit", n.commit_index());
            mark("applied", n.applied_index());
            if log.base_index() > 0 {
                mark("snapshot", log.base_index());
            }
            if let Some(p) = leader.and_then(|l| l.progress().get(&id)) {
                mark("match", p.matched);
                mark("next", p.next);
            }
            row
        })
        .collect();
    Panel::LogGrid {
        title: title.to_string(),
        first_index,
        columns: GRID_COLUMNS as u32,
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::raft::lab::RaftLabConfig;
    use crate::lab::{Lab, Runner};
    use crate::time::Duration;

    type RaftRun = Runner<crate::lab::Cluster<crate::consensus::raft::lab::RaftLab>>;

    #[test]
    fn badges_rings_and_the_grid_follow_the_run() {
        let mut lab = RaftRun::new(RaftLabConfig::default()).unwrap();
        let v0 = lab.view();
        // Before anything happened: every node at term 0 with its election timer.
        assert_eq!(v0.glances.len(), 5);
        assert!(v0.glances.iter().all(|g| g.badge.as_deref() == Some("0")));
        lab.step(Duration::from_millis(40)).unwrap();
        let timers: Vec<f64> = lab
            .view()
            .glances
            .iter()
            .map(|g| g.rings[0].value)
            .collect();
        assert!(timers.iter().all(|t| *t > 0.0 && *t < 1.0), "{timers:?}");
        lab.step(Duration::from_secs(2)).unwrap();
        let v = lab.view();
        let leader = v.nodes.iter().find(|n| n.role == "leader").unwrap().id;
        let g = v.glances.iter().find(|g| g.node == leader).unwrap();
        assert_eq!(g.rings[0].name, LEASE_RING);
        assert_ne!(g.badge.as_deref(), Some("0"));
        let Some(Panel::LogGrid {
            rows, first_index, ..
        }) = v.panels.first()
        else {
            panic!("the log grid comes first: {:?}", v.panels.first());
        };
        assert_eq!(rows.len(), 5);
        let commit = |r: &LogRow| r.markers.iter().find(|m| m.kind == "commit").unwrap().index;
        let leader_row = &rows[leader as usize];
        assert!(commit(leader_row) >= *first_index);
        // The leader's entries reached the followers, with the leader's match for them.
        for (i, r) in rows.iter().enumerate() {
            assert!(r.cells.iter().any(|c| c.committed), "n{i}: {r:?}");
            let has_match = r.markers.iter().any(|m| m.kind == "match");
            assert_eq!(has_match, i != leader as usize, "n{i}");
        }
        // Every message in flight has a label.
        assert_eq!(v.message_details.len(), v.messages.len());
        assert!(v.message_details.iter().all(|d| !d.label.is_empty()));
        // A Raft message shows what it says: its term, and an append its entries and
        // the commit index it carries. Watched a millisecond at a time until appends
        // with entries have been seen in flight.
        let mut appends = 0;
        for _ in 0..2_000 {
            lab.step(Duration::from_millis(1)).unwrap();
            let v = lab.view();
            for d in &v.message_details {
                let kind = d.fields["kind"].as_str().unwrap();
                if kind == "request" || kind == "reply" {
                    continue;
                }
                assert!(d.fields.contains_key("term"), "{d:?}");
                if kind == "AppendEntries" {
                    let n = d.fields["entries"].as_u64().unwrap();
                    assert!(n > 0);
                    assert_eq!(d.label, format!("append ×{n}"));
                    assert!(d.fields.contains_key("leaderCommit"));
                    appends += 1;
                }
            }
            if appends >= 3 {
                break;
            }
        }
        assert!(
            appends >= 3,
            "{appends} appends with entries seen in flight"
        );
    }
}
