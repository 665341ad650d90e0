//! Epidemic dissemination (catalog id `coordination.gossip`): a replicated key-value
//! store kept in step by gossip, following Demers et al., "Epidemic algorithms for
//! replicated database maintenance" (PODC 1987).
//!
//! Every `period` each node contacts `fanout` peers chosen uniformly at random and runs
//! one of the paper's exchanges:
//! - anti-entropy, [`GossipMode::Push`]: it sends its whole store and the peer keeps
//!   whatever is newer; [`GossipMode::Pull`]: it sends a digest (key → version) and the
//!   peer answers with what is newer than it; [`GossipMode::PushPull`]: both at once.
//!   Anti-entropy never stops, so it reaches every node that stays reachable, at the
//!   price of traffic in every period forever.
//! - rumor mongering, [`GossipMode::Rumor`]: a node that learns something new makes it
//!   *hot* and pushes its hot entries each period; it loses interest after `k` pushes
//!   ([`LossOfInterest::Counter`]) or with probability 1/k at each
//!   ([`LossOfInterest::Coin`]), counting either every push (blind) or only pushes the
//!   peer answers with "I knew that already" (`feedback`). It goes quiet on its own but
//!   may leave a *residue* of nodes that never heard (the paper's §1.4: about e^-(k+1)
//!   of them for counter with feedback). In the paper's terms a node is *susceptible*
//!   (does not know), *infective* (spreading) or *removed* (knows, stopped spreading).
//!
//! A write is stamped with a [`Version`] (the writer's clock, kept strictly increasing
//! per node, and its id), and merging keeps the larger version per key — last writer
//! wins, so any two nodes that hold the same updates hold the same store.
//!
//! The store is volatile: a node that crashes comes back empty and, under anti-entropy,
//! learns everything again; under rumor mongering it stays susceptible to old rumors.
//!
//! Cost per period and node: O(fanout · s) message entries for a store of s keys
//! (anti-entropy) or h hot keys (rumors); merging is O(s log s).

pub mod lab;
pub mod rounds;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::hash::Hash;

use crate::sim::disk::Disk;
use crate::sim::node::{ClientRequest, Ctx, Fingerprint, Node, NodeId, Reply, TimerId};
use crate::sim::trace::StableHasher;
use crate::time::Duration;

/// The timer of the gossip period.
pub const GOSSIP_TIMER: TimerId = 0;

/// Which of Demers et al.'s exchanges the nodes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum GossipMode {
    /// Anti-entropy, push: send the whole store.
    Push,
    /// Anti-entropy, pull: send a digest, receive what is newer.
    Pull,
    /// Anti-entropy, push-pull: send the store, receive what is newer.
    PushPull,
    /// Rumor mongering: push hot entries until interest is lost.
    Rumor,
}

impl GossipMode {
    /// Whether the mode is one of the anti-entropy exchanges.
    pub fn is_anti_entropy(self) -> bool {
        !matches!(self, GossipMode::Rumor)
    }
}

/// How a rumor monger loses interest in a hot entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum LossOfInterest {
    /// After `k` counted pushes.
    Counter,
    /// With probability 1/k at each counted push.
    Coin,
}

/// Cluster-wide settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GossipConfig {
    pub mode: GossipMode,
    /// Peers contacted per period (at most n − 1 are).
    pub fanout: u32,
    /// Time between two rounds of a node, on its own clock.
    pub period: Duration,
    /// Rumors: count only pushes the peer answers "already known" (else every push).
    pub feedback: bool,
    pub loss: LossOfInterest,
    /// Rumors: the k of the counter or the coin (at least 1).
    pub k: u32,
    /// Whether a node's first round comes at a random point of its first period (as real
    /// nodes booted at different times), or exactly one period after its start.
    pub stagger_start: bool,
}

impl Default for GossipConfig {
    fn default() -> Self {
        GossipConfig {
            mode: GossipMode::Push,
            fanout: 1,
            period: Duration::from_millis(100),
            feedback: true,
            loss: LossOfInterest::Counter,
            k: 2,
            stagger_start: true,
        }
    }
}

/// A write's identity and order: larger wins.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "camelCase")]
pub struct Version {
    /// The writer's clock in microseconds, strictly increasing per writer.
    pub stamp: u64,
    pub origin: NodeId,
}

/// One key's value as a node holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub key: u64,
    pub version: Version,
    pub value: u64,
}

/// What nodes gossip.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GossipMessage {
    /// Anti-entropy push: the sender's store.
    Push {
        entries: Vec<Entry>,
    },
    /// Anti-entropy pull: the sender's versions; the answer carries what is newer.
    PullRequest {
        digest: Vec<(u64, Version)>,
    },
    PullReply {
        entries: Vec<Entry>,
    },
    /// Anti-entropy push-pull: the sender's store; the answer carries what is newer.
    PushPull {
        entries: Vec<Entry>,
    },
    PushPullReply {
        entries: Vec<Entry>,
    },
    /// Rumor mongering: the sender's hot entries.
    Rumor {
        entries: Vec<Entry>,
    },
    /// The answer to a rumor: the keys the receiver already held at that version or newer.
    Feedback {
        known: Vec<u64>,
    },
}

impl Fingerprint for GossipMessage {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        self.hash(h);
    }
}

/// A client's write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Put {
    pub key: u64,
    pub value: u64,
}

/// Running counts of one node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GossipStats {
    pub messages_sent: u64,
    pub messages_received: u64,
    /// Entries that were new to this node.
    pub entries_applied: u64,
    /// Entries received that it already had (the cost of redundancy).
    pub entries_redundant: u64,
    /// Hot entries it lost interest in.
    pub rumors_dropped: u64,
    pub rounds: u64,
}

/// What a node knows of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stored {
    pub version: Version,
    pub value: u64,
}

/// One node of the gossip protocol.
#[derive(Debug, Clone)]
pub struct GossipNode {
    id: NodeId,
    config: GossipConfig,
    store: BTreeMap<u64, Stored>,
    /// Rumors: the keys this node still spreads, with their counts.
    hot: BTreeMap<u64, u32>,
    /// The newest stamp this node gave a write.
    last_stamp: u64,
    stats: GossipStats,
}

impl GossipNode {
    pub fn store(&self) -> &BTreeMap<u64, Stored> {
        &self.store
    }
    /// What the node holds of `key`.
    pub fn get(&self, key: u64) -> Option<Stored> {
        self.store.get(&key).copied()
    }
    /// Whether the node still spreads `key` (rumor mongering).
    pub fn is_hot(&self, key: u64) -> bool {
        self.hot.contains_key(&key)
    }
    /// Hot keys, with their loss-of-interest counts.
    pub fn hot(&self) -> &BTreeMap<u64, u32> {
        &self.hot
    }
    pub fn stats(&self) -> GossipStats {
        self.stats
    }
    pub fn config(&self) -> &GossipConfig {
        &self.config
    }

    fn entries(&self) -> Vec<Entry> {
        self.store
            .iter()
            .map(|(&key, s)| Entry {
                key,
                version: s.version,
                value: s.value,
            })
            .collect()
    }

    fn hot_entries(&self) -> Vec<Entry> {
        self.hot
            .keys()
            .filter_map(|&key| {
                let s = self.store.get(&key)?;
                Some(Entry {
                    key,
                    version: s.version,
                    value: s.value,
                })
            })
            .collect()
    }

    /// Keeps each entry newer than what the node holds; returns the keys it already had
    /// at that version or newer.
    fn merge(&mut self, entries: &[Entry]) -> Vec<u64> {
        let mut known = Vec::new();
        for e in entries {
            let newer = self.store.get(&e.key).is_none_or(|s| s.version < e.version);
            if newer {
                self.store.insert(
                    e.key,
                    Stored {
                        version: e.version,
                        value: e.value,
                    },
                );
                self.stats.entries_applied += 1;
                if self.config.mode == GossipMode::Rumor {
                    self.hot.insert(e.key, 0);
                }
            } else {
                self.stats.entries_redundant += 1;
                known.push(e.key);
            }
        }
        known
    }

    /// What this node holds that is newer than `digest` says, or missing from it.
    fn newer_than(&self, digest: impl Iterator<Item = (u64, Version)>) -> Vec<Entry> {
        let theirs: BTreeMap<u64, Version> = digest.collect();
        self.store
            .iter()
            .filter(|(k, s)| theirs.get(k).is_none_or(|v| *v < s.version))
            .map(|(&key, s)| Entry {
                key,
                version: s.version,
                value: s.value,
            })
            .collect()
    }

    /// `fanout` distinct peers other than this node, uniformly at random.
    fn pick_peers(&self, ctx: &mut Ctx<'_, Self>) -> Vec<NodeId> {
        let n = ctx.node_count();
        let others = n.saturating_sub(1);
        let want = self.config.fanout.min(others) as usize;
        let mut peers: Vec<NodeId> = Vec::with_capacity(want);
        while peers.len() < want {
            // Uniform over the n − 1 others: draw below n − 1 and skip over self.
            let mut p = ctx.rng().below(others as u64) as NodeId;
            if p >= self.id {
                p += 1;
            }
            if !peers.contains(&p) {
                peers.push(p);
            }
        }
        peers
    }

    /// Counts one push of the hot `keys` towards losing interest.
    fn count_push(&mut self, keys: &[u64], ctx: &mut Ctx<'_, Self>) {
        let k = self.config.k.max(1);
        for key in keys {
            let Some(count) = self.hot.get_mut(key) else {
                continue;
            };
            *count += 1;
            let lose = match self.config.loss {
                LossOfInterest::Counter => *count >= k,
                LossOfInterest::Coin => ctx.rng().below(k as u64) == 0,
            };
            if lose {
                self.hot.remove(key);
                self.stats.rumors_dropped += 1;
            }
        }
    }

    /// One gossip round: contact the peers.
    fn round(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.stats.rounds += 1;
        let msg = match self.config.mode {
            // Nothing to push from an empty store: the exchange would carry nothing.
            GossipMode::Push if self.store.is_empty() => return,
            GossipMode::Push => GossipMessage::Push {
                entries: self.entries(),
            },
            GossipMode::Pull => GossipMessage::PullRequest {
                digest: self.store.iter().map(|(&k, s)| (k, s.version)).collect(),
            },
            GossipMode::PushPull => GossipMessage::PushPull {
                entries: self.entries(),
            },
            GossipMode::Rumor if self.hot.is_empty() => return,
            GossipMode::Rumor => GossipMessage::Rumor {
                entries: self.hot_entries(),
            },
        };
        let peers = self.pick_peers(ctx);
        for &p in &peers {
            self.stats.messages_sent += 1;
            ctx.send(p, msg.clone());
        }
        if self.config.mode == GossipMode::Rumor && !self.config.feedback {
            // Blind: every push counts, whatever the peer knew.
            let keys: Vec<u64> = self.hot.keys().copied().collect();
            for _ in &peers {
                self.count_push(&keys, ctx);
            }
        }
    }

    fn first_delay(&self, ctx: &mut Ctx<'_, Self>) -> Duration {
        let period = self.config.period.0.max(1);
        if self.config.stagger_start {
            Duration(1 + ctx.rng().below(period))
        } else {
            Duration(period)
        }
    }
}

/// Every field.
impl Fingerprint for GossipNode {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        let GossipNode {
            id,
            config,
            store,
            hot,
            last_stamp,
            stats,
        } = self;
        id.hash(h);
        config.hash(h);
        store.len().hash(h);
        for (k, s) in store {
            k.hash(h);
            s.hash(h);
        }
        hot.len().hash(h);
        for (k, c) in hot {
            k.hash(h);
            c.hash(h);
        }
        last_stamp.hash(h);
        stats.hash(h);
    }
}

impl Node for GossipNode {
    type Message = GossipMessage;
    type Request = Put;
    type Response = Version;
    type Config = GossipConfig;

    fn recover(id: NodeId, config: &GossipConfig, _disk: &Disk) -> Self {
        GossipNode {
            id,
            config: *config,
            store: BTreeMap::new(),
            hot: BTreeMap::new(),
            last_stamp: 0,
            stats: GossipStats::default(),
        }
    }

    fn on_start(&mut self, ctx: &mut Ctx<'_, Self>) {
        let first = self.first_delay(ctx);
        ctx.set_timer(GOSSIP_TIMER, first);
    }

    fn on_message(&mut self, from: NodeId, msg: GossipMessage, ctx: &mut Ctx<'_, Self>) {
        self.stats.messages_received += 1;
        match msg {
            GossipMessage::Push { entries } | GossipMessage::PullReply { entries } => {
                self.merge(&entries);
            }
            GossipMessage::PushPullReply { entries } => {
                self.merge(&entries);
            }
            GossipMessage::PullRequest { digest } => {
                let entries = self.newer_than(digest.into_iter());
                if !entries.is_empty() {
                    self.stats.messages_sent += 1;
                    ctx.send(from, GossipMessage::PullReply { entries });
                }
            }
            GossipMessage::PushPull { entries } => {
                // Answer from the store as it was, then take theirs: the reply carries
                // only what the sender lacks.
                let reply = self.newer_than(entries.iter().map(|e| (e.key, e.version)));
                self.merge(&entries);
                if !reply.is_empty() {
                    self.stats.messages_sent += 1;
                    ctx.send(from, GossipMessage::PushPullReply { entries: reply });
                }
            }
            GossipMessage::Rumor { entries } => {
                let known = self.merge(&entries);
                if self.config.feedback && !known.is_empty() {
                    self.stats.messages_sent += 1;
                    ctx.send(from, GossipMessage::Feedback { known });
                }
            }
            GossipMessage::Feedback { known } => {
                if self.config.feedback {
                    self.count_push(&known, ctx);
                }
            }
        }
    }

    fn on_timer(&mut self, timer: TimerId, ctx: &mut Ctx<'_, Self>) {
        if timer == GOSSIP_TIMER {
            self.round(ctx);
            ctx.set_timer(GOSSIP_TIMER, Duration(self.config.period.0.max(1)));
        }
    }

    fn on_request(&mut self, request: ClientRequest<Put>, ctx: &mut Ctx<'_, Self>) {
        // Strictly increasing per node even if the clock stood still or went back (a
        // skew fault): two writes of one node never share a version.
        let stamp = ctx.now().0.max(self.last_stamp + 1);
        self.last_stamp = stamp;
        let version = Version {
            stamp,
            origin: self.id,
        };
        let Put { key, value } = request.body;
        self.store.insert(key, Stored { version, value });
        if self.config.mode == GossipMode::Rumor {
            self.hot.insert(key, 0);
        }
        ctx.reply(request.client, request.id, Reply::Ok(version));
    }

    fn message_kind(msg: &GossipMessage) -> &'static str {
        match msg {
            GossipMessage::Push { .. } => "push",
            GossipMessage::PullRequest { .. } => "pull",
            GossipMessage::PullReply { .. } => "pull-reply",
            GossipMessage::PushPull { .. } => "push-pull",
            GossipMessage::PushPullReply { .. } => "push-pull-reply",
            GossipMessage::Rumor { .. } => "rumor",
            GossipMessage::Feedback { .. } => "feedback",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SimRng;
    use crate::sim::node::Effect;
    use crate::time::Time;

    type Effects = Vec<Effect<GossipMessage, Version>>;

    fn node(id: NodeId, config: GossipConfig) -> GossipNode {
        GossipNode::recover(id, &config, &Disk::new())
    }

    fn sends(effects: &Effects) -> Vec<(NodeId, GossipMessage)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Send { to, msg } => Some((*to, msg.clone())),
                _ => None,
            })
            .collect()
    }

    fn put(n: &mut GossipNode, key: u64, value: u64, now: u64, rng: &mut SimRng) -> Effects {
        let mut fx = Vec::new();
        let mut ctx = Ctx::new(n.id, Time(now), 5, rng, &mut fx);
        n.on_request(
            ClientRequest {
                client: 0,
                id: 0,
                body: Put { key, value },
            },
            &mut ctx,
        );
        fx
    }

    fn deliver(n: &mut GossipNode, from: NodeId, msg: GossipMessage, rng: &mut SimRng) -> Effects {
        let mut fx = Vec::new();
        let mut ctx = Ctx::new(n.id, Time(0), 5, rng, &mut fx);
        n.on_message(from, msg, &mut ctx);
        fx
    }

    fn tick(n: &mut GossipNode, rng: &mut SimRng) -> Effects {
        let mut fx = Vec::new();
        let mut ctx = Ctx::new(n.id, Time(0), 5, rng, &mut fx);
        n.on_timer(GOSSIP_TIMER, &mut ctx);
        fx
    }

    #[test]
    fn the_larger_version_wins_and_stamps_never_repeat() {
        let mut rng = SimRng::new(1);
        let mut a = node(0, GossipConfig::default());
        put(&mut a, 7, 1, 100, &mut rng);
        // The clock went back: the next write still gets a larger stamp.
        put(&mut a, 7, 2, 50, &mut rng);
        let v = a.get(7).unwrap();
        assert_eq!((v.value, v.version.stamp), (2, 101));
        let mut b = node(1, GossipConfig::default());
        let old = Entry {
            key: 7,
            version: Version {
                stamp: 100,
                origin: 0,
            },
            value: 1,
        };
        deliver(
            &mut b,
            0,
            GossipMessage::Push {
                entries: a.entries(),
            },
            &mut rng,
        );
        let known = b.merge(&[old]);
        assert_eq!(known, vec![7], "an older version is not taken");
        assert_eq!(b.get(7).unwrap().value, 2);
    }

    #[test]
    fn push_pull_answers_only_with_what_the_sender_lacks() {
        let mut rng = SimRng::new(2);
        let cfg = GossipConfig {
            mode: GossipMode::PushPull,
            ..GossipConfig::default()
        };
        let mut a = node(0, cfg);
        let mut b = node(1, cfg);
        put(&mut a, 1, 10, 5, &mut rng);
        put(&mut b, 1, 11, 1, &mut rng); // older than a's key 1
        put(&mut b, 2, 20, 5, &mut rng);
        let fx = tick(&mut a, &mut rng);
        let (to, msg) = sends(&fx).pop().unwrap();
        assert_ne!(to, 0, "never gossips with itself");
        let reply = sends(&deliver(&mut b, 0, msg, &mut rng));
        assert_eq!(b.get(1).unwrap().value, 10, "b took a's newer key 1");
        let [(0, GossipMessage::PushPullReply { entries })] = reply.as_slice() else {
            panic!("{reply:?}");
        };
        assert_eq!(entries.iter().map(|e| e.key).collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn pull_sends_a_digest_and_gets_only_newer_entries() {
        let mut rng = SimRng::new(3);
        let cfg = GossipConfig {
            mode: GossipMode::Pull,
            ..GossipConfig::default()
        };
        let mut a = node(0, cfg);
        let mut b = node(1, cfg);
        put(&mut b, 4, 40, 9, &mut rng);
        let fx = tick(&mut a, &mut rng);
        let out = sends(&fx);
        let [(_, req @ GossipMessage::PullRequest { .. })] = out.as_slice() else {
            panic!("{fx:?}");
        };
        let reply = sends(&deliver(&mut b, 0, req.clone(), &mut rng));
        deliver(&mut a, 1, reply[0].1.clone(), &mut rng);
        assert_eq!(a.get(4).unwrap().value, 40);
        // Now a is up to date: b has nothing newer and stays silent.
        let digest = GossipMessage::PullRequest {
            digest: vec![(4, a.get(4).unwrap().version)],
        };
        assert!(sends(&deliver(&mut b, 0, digest, &mut rng)).is_empty());
    }

    #[test]
    fn a_rumor_monger_with_feedback_stops_after_k_redundant_pushes() {
        let mut rng = SimRng::new(4);
        let cfg = GossipConfig {
            mode: GossipMode::Rumor,
            k: 2,
            feedback: true,
            loss: LossOfInterest::Counter,
            ..GossipConfig::default()
        };
        let mut a = node(0, cfg);
        put(&mut a, 1, 1, 1, &mut rng);
        assert!(a.is_hot(1));
        // A push the peer did not know does not count.
        let mut fresh = node(1, cfg);
        let fx = tick(&mut a, &mut rng);
        let rumor = sends(&fx)[0].1.clone();
        assert!(sends(&deliver(&mut fresh, 0, rumor.clone(), &mut rng)).is_empty());
        assert!(fresh.is_hot(1), "a new rumor makes the receiver infective");
        assert_eq!(a.hot()[&1], 0);
        // Two "already known" answers: interest lost.
        for round in 0..2 {
            assert!(a.is_hot(1), "round {round}");
            let fb = sends(&deliver(&mut fresh, 0, rumor.clone(), &mut rng));
            deliver(&mut a, 1, fb[0].1.clone(), &mut rng);
        }
        assert!(!a.is_hot(1));
        assert_eq!(a.stats().rumors_dropped, 1);
        assert!(sends(&tick(&mut a, &mut rng)).is_empty(), "removed: silent");
    }

    #[test]
    fn a_blind_counter_counts_every_push() {
        let mut rng = SimRng::new(5);
        let cfg = GossipConfig {
            mode: GossipMode::Rumor,
            k: 3,
            fanout: 1,
            feedback: false,
            loss: LossOfInterest::Counter,
            ..GossipConfig::default()
        };
        let mut a = node(0, cfg);
        put(&mut a, 1, 1, 1, &mut rng);
        let pushes: usize = (0..10).map(|_| sends(&tick(&mut a, &mut rng)).len()).sum();
        assert_eq!(pushes, 3);
    }

    #[test]
    fn fanout_peers_are_distinct_and_capped_at_the_others() {
        let mut rng = SimRng::new(6);
        let a = node(
            2,
            GossipConfig {
                fanout: 9,
                ..GossipConfig::default()
            },
        );
        let mut fx = Vec::new();
        let mut ctx = Ctx::new(2, Time(0), 5, &mut rng, &mut fx);
        let mut peers = a.pick_peers(&mut ctx);
        peers.sort();
        assert_eq!(peers, vec![0, 1, 3, 4]);
    }
}
