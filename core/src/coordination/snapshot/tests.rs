//! The marker rule driven by hand: two or three branches, messages delivered in an order
//! the test chooses, so the dangerous schedules are named and replayed exactly.

use super::*;
use crate::bounded::Probability;
use crate::rng::SimRng;
use crate::sim::Effect;

const CONFIG: BankConfig = BankConfig {
    initial_balance: 100,
    transfer_every: None,
    max_transfer: 10,
    snapshot_every: None,
};

/// Branches and the messages they sent, per directed link, in sending order.
struct Hand {
    nodes: Vec<BankNode>,
    rng: SimRng,
    links: BTreeMap<(NodeId, NodeId), Vec<BankMessage>>,
}

impl Hand {
    fn new(n: u32) -> Hand {
        let disk = Disk::new();
        Hand {
            nodes: (0..n)
                .map(|id| BankNode::recover(id, &CONFIG, &disk))
                .collect(),
            rng: SimRng::new(1),
            links: BTreeMap::new(),
        }
    }

    fn run(&mut self, id: NodeId, f: impl FnOnce(&mut BankNode, &mut Ctx<'_, BankNode>)) {
        let mut effects = Vec::new();
        let n = self.nodes.len() as u32;
        let mut ctx = Ctx::new(id, Time::ZERO, n, &mut self.rng, &mut effects);
        f(&mut self.nodes[id as usize], &mut ctx);
        for e in effects {
            if let Effect::Send { to, msg } = e {
                self.links.entry((id, to)).or_default().push(msg);
            }
        }
    }

    fn start(&mut self, id: NodeId) {
        self.run(id, |node, ctx| {
            node.start_snapshot(ctx);
        });
    }

    fn send(&mut self, from: NodeId, to: NodeId, amount: u64) {
        self.run(from, |node, ctx| node.transfer(to, amount, ctx));
    }

    /// Delivers the message at `index` of the link `from → to` (0: the oldest, FIFO).
    fn deliver(&mut self, from: NodeId, to: NodeId, index: usize) {
        let msg = self.links.get_mut(&(from, to)).unwrap().remove(index);
        self.run(to, |node, ctx| node.on_message(from, msg, ctx));
    }

    /// Delivers everything left, oldest first on every link, until the links are empty.
    fn drain(&mut self) {
        while let Some((&(from, to), _)) = self.links.iter().find(|(_, q)| !q.is_empty()) {
            self.deliver(from, to, 0);
        }
    }

    fn snapshot_total(&self, id: SnapshotId) -> Option<u64> {
        let pieces: Vec<&LocalRecord> = self
            .nodes
            .iter()
            .map(|n| n.records().get(&id).filter(|r| r.done()))
            .collect::<Option<_>>()?;
        Some(recorded_total(pieces))
    }
}

const S01: SnapshotId = SnapshotId {
    initiator: 0,
    number: 1,
};

#[test]
fn a_transfer_sent_after_the_marker_stays_out_of_the_cut_on_a_fifo_link() {
    let mut h = Hand::new(2);
    h.start(0);
    h.send(0, 1, 10);
    h.deliver(0, 1, 0); // the marker first: FIFO
    h.drain();
    assert_eq!(h.nodes[1].records()[&S01].balance, 100);
    assert_eq!(h.snapshot_total(S01), Some(200));
}

#[test]
fn a_transfer_overtaking_its_marker_is_counted_twice() {
    // The schedule FIFO forbids: the transfer A sent after its marker arrives first, so
    // B's recorded balance includes coins A's recorded balance still holds.
    let mut h = Hand::new(2);
    h.start(0);
    h.send(0, 1, 10);
    h.deliver(0, 1, 1); // the transfer overtakes the marker
    h.drain();
    assert_eq!(h.nodes[1].records()[&S01].balance, 110);
    assert_eq!(h.snapshot_total(S01), Some(210));
}

#[test]
fn a_marker_overtaking_a_transfer_sent_before_it_loses_the_coins() {
    // A records first. B sends 7 to A, then takes A's marker and records: the 7 were sent
    // before B's cut and arrive after A's, so they belong on the channel B → A. If B's
    // marker overtakes them, A closes that channel first and the coins are in no recorded
    // balance and on no recorded channel.
    let schedule = |overtake: bool| {
        let mut h = Hand::new(2);
        h.start(0);
        h.send(1, 0, 7);
        h.deliver(0, 1, 0); // A's marker reaches B, which records and answers
        h.deliver(1, 0, usize::from(overtake));
        h.drain();
        h
    };
    let fifo = schedule(false);
    assert_eq!(fifo.nodes[0].records()[&S01].channels[&1], vec![7]);
    assert_eq!(fifo.snapshot_total(S01), Some(200));
    let reordered = schedule(true);
    assert!(reordered.nodes[0].records()[&S01].channels[&1].is_empty());
    assert_eq!(reordered.snapshot_total(S01), Some(193));
}

#[test]
fn concurrent_snapshots_from_three_initiators_each_conserve_money() {
    let mut h = Hand::new(3);
    h.start(0);
    h.send(1, 2, 5);
    h.send(0, 1, 9);
    h.start(2);
    h.deliver(0, 1, 0);
    h.send(1, 0, 3);
    h.start(1);
    h.send(2, 0, 4);
    h.drain();
    for initiator in 0..3 {
        let id = SnapshotId {
            initiator,
            number: 1,
        };
        assert_eq!(h.snapshot_total(id), Some(300), "{id}");
    }
    // Every node joined each snapshot exactly once.
    let joined: u64 = h.nodes.iter().map(|n| n.records().len() as u64).sum();
    assert_eq!(joined, 9);
}

#[test]
fn a_restarted_node_refuses_a_snapshot_it_joined_before_its_crash() {
    let mut disk = Disk::new();
    let mut rng = SimRng::new(3);
    let mut effects = Vec::new();
    let mut node = BankNode::recover(0, &CONFIG, &disk);
    {
        let mut ctx = Ctx::new(0, Time::ZERO, 3, &mut rng, &mut effects);
        node.start_snapshot(&mut ctx);
        node.transfer(1, 30, &mut ctx);
    }
    for e in effects {
        if let Effect::Disk(op) = e {
            disk.apply(op);
        }
    }
    disk.crash(&mut rng, 1.0);
    let mut back = BankNode::recover(0, &CONFIG, &disk);
    assert_eq!(back.balance(), 70, "the balance is durable");
    let mut effects = Vec::new();
    let mut ctx = Ctx::new(0, Time::ZERO, 3, &mut rng, &mut effects);
    back.on_message(1, BankMessage::Marker { snapshot: S01 }, &mut ctx);
    assert!(back.records().is_empty());
    assert_eq!(back.markers_ignored(), 1);
    // Its next snapshot takes the next number, not the lost one's.
    assert_eq!(back.start_snapshot(&mut ctx).number, 2);
}

#[test]
fn reordering_loss_and_duplication_are_refused_by_name() {
    assert!(require_fifo(&NetworkConfig::default(), "network").is_ok());
    for (field, net) in [
        (
            "network.reorder",
            NetworkConfig {
                reorder: Probability::of(0.1),
                ..NetworkConfig::default()
            },
        ),
        (
            "network.loss",
            NetworkConfig {
                loss: Probability::of(0.1),
                ..NetworkConfig::default()
            },
        ),
        (
            "network.duplicate",
            NetworkConfig {
                duplicate: Probability::of(0.1),
                ..NetworkConfig::default()
            },
        ),
    ] {
        let e = require_fifo(&net, "network").unwrap_err().to_string();
        assert!(e.contains(field), "{e}");
    }
    let e = require_fifo(
        &NetworkConfig {
            reorder: Probability::of(0.1),
            ..NetworkConfig::default()
        },
        "network",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("FIFO"), "{e}");
}
