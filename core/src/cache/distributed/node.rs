//! One cache node of `cache.distributed`, sans-I/O: a key-value store whose keys are
//! placed by a consistent-hash ring ([`crate::balance::consistent_hash`]) on N replicas,
//! Dynamo's preference list (DeCandia et al., SOSP 2007, §4.3 and §4.9: a joining
//! node's ranges are handed to it by the nodes that held them).
//!
//! - **Versions.** Every value carries the version the backing store gave it; a node keeps
//!   the newest it has seen, so copies that arrive in any order agree.
//! - **Replication and migration are one mechanism.** A node that stores a newer version,
//!   or adopts a new ring, puts `(target, key) → version` in its outbox for every other
//!   node of the key's preference list (by its own ring); the outbox is sent in batches
//!   (one per target) on every `retry` tick until acknowledged, so loss and duplication
//!   only delay it. A client's write is pushed at once; a migration — the keys a ring
//!   change or a restarted node's request moves — goes out on the tick, paced rather
//!   than flooding the network at the change, which is what the hinted reads are for. A
//!   node that is no longer on a key's preference list drops the key once every push of it
//!   is acknowledged: data leaves the old owners only after the new ones have it.
//! - **Membership** comes from the operator (a `setMembers` request with an epoch); every
//!   push and acknowledgement carries the sender's epoch and members, and each node gossips
//!   them to one peer per tick, so a node that missed the change learns it. The newest
//!   membership is kept on disk. A node whose cache is empty since boot (its cache is
//!   memory, lost in a crash) asks every member, once it knows it is one, for the keys it
//!   should hold, and asks again each tick until each has answered.
//! - **Hinted reads.** For `hintWindow` after adopting a new ring, a read that misses asks
//!   the key's owner under the previous ring (the previous epoch's members come with
//!   every membership, so a node that has just joined knows them too), whose data may not
//!   have arrived yet, and keeps what it gets.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::Hash;

use serde::{Deserialize, Serialize};

use crate::balance::consistent_hash::HashRing;
use crate::sim::disk::{Disk, DiskOp};
use crate::sim::trace::StableHasher;
use crate::sim::{
    ClientId, ClientRequest, Ctx, Fingerprint, Node, NodeId, Reply, RequestId, TimerId,
};
use crate::time::{Duration, Time};

/// The file a node keeps its newest membership in.
pub const MEMBERSHIP_FILE: &str = "cache-membership";
const TICK: TimerId = 1;
/// Entries in one push message at most.
const BATCH: usize = 64;

/// The ring name of node `id`.
pub fn ring_name(id: NodeId) -> String {
    format!("n{id}")
}

fn node_of(name: &str) -> Option<NodeId> {
    name.strip_prefix('n').and_then(|n| n.parse().ok())
}

/// The ring of `members` (equal weights) under the cluster's settings.
pub fn build_ring(config: &CacheNodeConfig, members: &[NodeId]) -> Option<HashRing> {
    let mut ring = HashRing::new(config.virtual_nodes, config.seed).ok()?;
    for m in members {
        ring.add_node(&ring_name(*m), 1).ok()?;
    }
    Some(ring)
}

/// The nodes that should hold `key` under `ring`: its preference list, at most
/// `replicas` long.
pub fn preference(ring: &HashRing, key: u32, replicas: u32) -> Vec<NodeId> {
    let n = (replicas as usize).min(ring.len());
    ring.preference_list(&key.to_le_bytes(), n)
        .map(|l| l.into_iter().filter_map(node_of).collect())
        .unwrap_or_default()
}

/// The cluster's settings, the same on every node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheNodeConfig {
    pub replicas: u32,
    pub virtual_nodes: u32,
    pub seed: u64,
    /// How often the outbox is re-sent and membership gossiped.
    pub retry: Duration,
    /// How long after a ring change misses are retried at the previous owner.
    pub hint_window: Duration,
}

/// A cached value and the backing store's version of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Versioned {
    pub version: u64,
    pub value: u64,
}

/// The operator's membership: which nodes are on the ring, numbered by epoch, and which
/// were on it the epoch before. The previous members travel with the change because a
/// node cannot know them otherwise: one added by this change never had the old ring, and
/// one that missed an epoch has an older ring than the one the data sits on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Membership {
    pub epoch: u64,
    pub members: Vec<NodeId>,
    /// The members of epoch `epoch - 1` (empty for the first).
    #[serde(default)]
    pub previous: Vec<NodeId>,
}

/// Node-to-node messages.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheMessage {
    /// Entries the receiver should hold (replication or migration).
    Push {
        membership: Membership,
        entries: Vec<(u32, Versioned)>,
    },
    /// The pushed entries, now held.
    Ack {
        membership: Membership,
        entries: Vec<(u32, u64)>,
    },
    /// Membership gossip.
    Members { membership: Membership },
    /// A restarted node asks for the keys it should hold.
    Sync { membership: Membership },
    /// The keys asked for are in the sender's outbox.
    Synced { membership: Membership },
    /// A miss retried at the previous owner.
    HintedRead {
        key: u32,
        client: ClientId,
        request: RequestId,
    },
    HintedReply {
        key: u32,
        entry: Option<Versioned>,
        client: ClientId,
        request: RequestId,
    },
}

/// What clients ask a node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CacheRequest {
    Get {
        key: u32,
    },
    /// Store `entry` under `key` (a write-through or a fill after a miss).
    Put {
        key: u32,
        entry: Versioned,
    },
    /// The operator's new membership.
    SetMembers(Membership),
}

/// What nodes answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CacheResponse {
    Hit(Versioned),
    /// Found at the previous owner during a migration.
    HintedHit(Versioned),
    /// A miss; `hinted` if the previous owner was asked too.
    Miss {
        hinted: bool,
    },
    Stored,
    Members {
        epoch: u64,
    },
}

/// Counters since the node's last boot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CacheNodeStats {
    pub gets: u64,
    pub hits: u64,
    pub hinted_reads: u64,
    pub pushed: u64,
    pub received: u64,
    pub dropped: u64,
}

/// A cache node.
#[derive(Debug, Clone)]
pub struct CacheNode {
    id: NodeId,
    config: CacheNodeConfig,
    membership: Membership,
    /// Derived from `membership` (not fingerprinted).
    ring: Option<HashRing>,
    /// The ring before the newest change, for hinted reads, until `hints_until`.
    previous: Option<HashRing>,
    hints_until: Time,
    store: BTreeMap<u32, Versioned>,
    /// `(key, target) → version` pushed and not yet acknowledged (by key first, so that
    /// whether anything of a key is unsent is one range lookup).
    outbox: BTreeMap<(u32, NodeId), u64>,
    next_gossip: u32,
    /// Whether this node has asked for its keys since it booted.
    sync_started: bool,
    /// Members that have not yet answered its request for its keys.
    syncing: BTreeSet<NodeId>,
    stats: CacheNodeStats,
}

impl CacheNode {
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    pub fn store(&self) -> &BTreeMap<u32, Versioned> {
        &self.store
    }

    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// Members that have not yet answered this node's request for its keys.
    pub fn syncing_len(&self) -> usize {
        self.syncing.len()
    }

    /// Unacknowledged pushes: `(key, target, version)`.
    pub fn outbox(&self) -> impl Iterator<Item = (u32, NodeId, u64)> + '_ {
        self.outbox.iter().map(|((k, t), v)| (*k, *t, *v))
    }

    /// Members that have not yet answered this node's request for its keys.
    pub fn syncing(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.syncing.iter().copied()
    }

    pub fn stats(&self) -> CacheNodeStats {
        self.stats
    }

    pub fn is_member(&self) -> bool {
        self.membership.members.contains(&self.id)
    }

    /// Whether misses are retried at the previous owner now.
    pub fn migrating(&self, now: Time) -> bool {
        self.previous.is_some() && now < self.hints_until
    }

    fn preference(&self, key: u32) -> Option<Vec<NodeId>> {
        self.ring
            .as_ref()
            .map(|r| preference(r, key, self.config.replicas))
    }

    /// Queues pushes of `key` to every other node of its preference list.
    fn replicate(&mut self, key: u32) {
        let (Some(entry), Some(pref)) = (self.store.get(&key).copied(), self.preference(key))
        else {
            return;
        };
        for target in pref {
            if target != self.id {
                let v = self.outbox.entry((key, target)).or_insert(0);
                *v = (*v).max(entry.version);
            }
        }
        self.drop_if_done(key);
    }

    /// Drops `key` if this node is off its preference list and nothing of it is unsent.
    fn drop_if_done(&mut self, key: u32) {
        let Some(pref) = self.preference(key) else {
            return;
        };
        let unsent = self
            .outbox
            .range((key, NodeId::MIN)..=(key, NodeId::MAX))
            .next()
            .is_some();
        if pref.contains(&self.id) || unsent {
            return;
        }
        if self.store.remove(&key).is_some() {
            self.stats.dropped += 1;
        }
    }

    /// Stores `entry` if it is newer; returns whether it was.
    fn store_newer(&mut self, key: u32, entry: Versioned) -> bool {
        match self.store.get(&key) {
            Some(old) if old.version >= entry.version => false,
            _ => {
                self.store.insert(key, entry);
                true
            }
        }
    }

    /// Adopts `m` if it is newer than what this node has.
    fn adopt(&mut self, m: &Membership, ctx: &mut Ctx<'_, Self>) {
        if m.epoch <= self.membership.epoch {
            return;
        }
        // The previous ring is the membership's, not this node's own: a node that joins
        // now had none, and the keys still migrating sit on the owners of epoch - 1.
        self.previous = build_ring(&self.config, &m.previous).filter(|r| !r.is_empty());
        self.hints_until = ctx.now() + self.config.hint_window;
        self.membership = m.clone();
        self.ring = build_ring(&self.config, &m.members);
        if let Ok(bytes) = serde_json::to_vec(m) {
            ctx.disk(DiskOp::Overwrite {
                file: MEMBERSHIP_FILE,
                bytes,
            });
            ctx.disk(DiskOp::Fsync);
        }
        // Pushes to a node that left are moot: it will drop what it gets.
        let members = &self.membership.members;
        self.outbox.retain(|(_, t), _| members.contains(t));
        self.syncing.retain(|p| members.contains(p));
        let keys: Vec<u32> = self.store.keys().copied().collect();
        for key in keys {
            self.replicate(key);
        }
        ctx.state_change(format!("ring epoch {}", m.epoch));
        if !self.sync_started && self.is_member() {
            self.begin_sync(ctx);
        }
    }

    /// Asks every other member for the keys this node should hold.
    fn begin_sync(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.sync_started = true;
        self.syncing = self
            .membership
            .members
            .iter()
            .copied()
            .filter(|m| *m != self.id)
            .collect();
        self.send_sync(ctx);
    }

    fn send_sync(&self, ctx: &mut Ctx<'_, Self>) {
        for peer in &self.syncing {
            ctx.send(
                *peer,
                CacheMessage::Sync {
                    membership: self.membership.clone(),
                },
            );
        }
    }

    /// Sends the outbox, a batch per target.
    fn flush(&mut self, ctx: &mut Ctx<'_, Self>) {
        let mut batches: BTreeMap<NodeId, Vec<(u32, Versioned)>> = BTreeMap::new();
        for (key, target) in self.outbox.keys() {
            let batch = batches.entry(*target).or_default();
            if batch.len() < BATCH
                && let Some(entry) = self.store.get(key)
            {
                batch.push((*key, *entry));
            }
        }
        // An entry whose key is gone (a newer drop) cannot be sent: forget it.
        let store = &self.store;
        self.outbox.retain(|(k, _), _| store.contains_key(k));
        for (target, entries) in batches {
            if !entries.is_empty() {
                self.stats.pushed += entries.len() as u64;
                ctx.send(
                    target,
                    CacheMessage::Push {
                        membership: self.membership.clone(),
                        entries,
                    },
                );
            }
        }
    }
}

impl Fingerprint for CacheMessage {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        match self {
            CacheMessage::Push {
                membership,
                entries,
            } => {
                0u8.hash(h);
                membership.hash(h);
                entries.hash(h);
            }
            CacheMessage::Ack {
                membership,
                entries,
            } => {
                1u8.hash(h);
                membership.hash(h);
                entries.hash(h);
            }
            CacheMessage::Members { membership } => {
                2u8.hash(h);
                membership.hash(h);
            }
            CacheMessage::Sync { membership } => {
                3u8.hash(h);
                membership.hash(h);
            }
            CacheMessage::Synced { membership } => {
                6u8.hash(h);
                membership.hash(h);
            }
            CacheMessage::HintedRead {
                key,
                client,
                request,
            } => {
                4u8.hash(h);
                (key, client, request).hash(h);
            }
            CacheMessage::HintedReply {
                key,
                entry,
                client,
                request,
            } => {
                5u8.hash(h);
                (key, entry, client, request).hash(h);
            }
        }
    }
}

impl Fingerprint for CacheNode {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        let CacheNode {
            id,
            config,
            membership,
            ring: _,     // derived from membership and config
            previous: _, // derived from membership.previous and config
            hints_until,
            store,
            outbox,
            next_gossip,
            sync_started,
            syncing,
            stats,
        } = self;
        id.hash(h);
        (
            config.replicas,
            config.virtual_nodes,
            config.seed,
            config.retry.0,
            config.hint_window.0,
        )
            .hash(h);
        membership.hash(h);
        hints_until.0.hash(h);
        store.hash(h);
        outbox.hash(h);
        next_gossip.hash(h);
        sync_started.hash(h);
        syncing.hash(h);
        stats.hash(h);
    }
}

impl Node for CacheNode {
    type Message = CacheMessage;
    type Request = CacheRequest;
    type Response = CacheResponse;
    type Config = CacheNodeConfig;

    fn recover(id: NodeId, config: &CacheNodeConfig, disk: &Disk) -> Self {
        // A torn membership write fails to parse: the node waits for gossip instead.
        let membership: Membership =
            serde_json::from_slice(disk.read(MEMBERSHIP_FILE)).unwrap_or_default();
        let ring = build_ring(config, &membership.members).filter(|r| !r.is_empty());
        CacheNode {
            id,
            config: *config,
            membership,
            ring,
            previous: None,
            hints_until: Time::ZERO,
            store: BTreeMap::new(),
            outbox: BTreeMap::new(),
            next_gossip: 1,
            sync_started: false,
            syncing: BTreeSet::new(),
            stats: CacheNodeStats::default(),
        }
    }

    fn on_start(&mut self, ctx: &mut Ctx<'_, Self>) {
        if self.is_member() {
            // The cache was memory: ask the others for what this node should hold.
            self.begin_sync(ctx);
        }
        ctx.set_timer(TICK, self.config.retry);
    }

    fn on_message(&mut self, from: NodeId, msg: CacheMessage, ctx: &mut Ctx<'_, Self>) {
        match msg {
            CacheMessage::Push {
                membership,
                entries,
            } => {
                self.adopt(&membership, ctx);
                let mut acks = Vec::with_capacity(entries.len());
                for (key, entry) in entries {
                    self.stats.received += 1;
                    if self.store_newer(key, entry) {
                        self.replicate(key);
                    } else {
                        self.drop_if_done(key);
                    }
                    acks.push((key, entry.version));
                }
                ctx.send(
                    from,
                    CacheMessage::Ack {
                        membership: self.membership.clone(),
                        entries: acks,
                    },
                );
            }
            CacheMessage::Ack {
                membership,
                entries,
            } => {
                self.adopt(&membership, ctx);
                for (key, version) in entries {
                    if self
                        .outbox
                        .get(&(key, from))
                        .is_some_and(|pending| *pending <= version)
                    {
                        self.outbox.remove(&(key, from));
                    }
                    self.drop_if_done(key);
                }
            }
            CacheMessage::Members { membership } => self.adopt(&membership, ctx),
            CacheMessage::Sync { membership } => {
                self.adopt(&membership, ctx);
                let keys: Vec<u32> = self.store.keys().copied().collect();
                for key in keys {
                    if self.preference(key).is_some_and(|p| p.contains(&from)) {
                        let version = self.store.get(&key).map_or(0, |e| e.version);
                        self.outbox.insert((key, from), version);
                    }
                }
                ctx.send(
                    from,
                    CacheMessage::Synced {
                        membership: self.membership.clone(),
                    },
                );
            }
            CacheMessage::Synced { membership } => {
                self.adopt(&membership, ctx);
                self.syncing.remove(&from);
            }
            CacheMessage::HintedRead {
                key,
                client,
                request,
            } => ctx.send(
                from,
                CacheMessage::HintedReply {
                    key,
                    entry: self.store.get(&key).copied(),
                    client,
                    request,
                },
            ),
            CacheMessage::HintedReply {
                key,
                entry,
                client,
                request,
            } => {
                let reply = match entry {
                    Some(e) => {
                        self.stats.hits += 1;
                        if self.store_newer(key, e) {
                            self.replicate(key);
                        }
                        CacheResponse::HintedHit(e)
                    }
                    None => CacheResponse::Miss { hinted: true },
                };
                ctx.reply(client, request, Reply::Ok(reply));
            }
        }
    }

    fn on_timer(&mut self, _timer: TimerId, ctx: &mut Ctx<'_, Self>) {
        self.flush(ctx);
        self.send_sync(ctx);
        let n = ctx.node_count();
        if n > 1 && self.membership.epoch > 0 {
            let peer = (self.id + self.next_gossip) % n;
            self.next_gossip = self.next_gossip % (n - 1) + 1;
            ctx.send(
                peer,
                CacheMessage::Members {
                    membership: self.membership.clone(),
                },
            );
        }
        ctx.set_timer(TICK, self.config.retry);
    }

    fn on_request(&mut self, request: ClientRequest<CacheRequest>, ctx: &mut Ctx<'_, Self>) {
        let (client, id) = (request.client, request.id);
        match request.body {
            CacheRequest::Get { key } => {
                self.stats.gets += 1;
                if let Some(e) = self.store.get(&key) {
                    self.stats.hits += 1;
                    ctx.reply(client, id, Reply::Ok(CacheResponse::Hit(*e)));
                    return;
                }
                let old_owner = self
                    .previous
                    .as_ref()
                    .filter(|_| ctx.now() < self.hints_until)
                    .and_then(|r| {
                        preference(r, key, self.config.replicas)
                            .into_iter()
                            .find(|n| *n != self.id)
                    });
                match old_owner {
                    Some(owner) => {
                        self.stats.hinted_reads += 1;
                        ctx.send(
                            owner,
                            CacheMessage::HintedRead {
                                key,
                                client,
                                request: id,
                            },
                        );
                    }
                    None => ctx.reply(client, id, Reply::Ok(CacheResponse::Miss { hinted: false })),
                }
            }
            CacheRequest::Put { key, entry } => {
                if self.store_newer(key, entry) {
                    self.replicate(key);
                    self.flush(ctx);
                }
                ctx.reply(client, id, Reply::Ok(CacheResponse::Stored));
            }
            CacheRequest::SetMembers(m) => {
                // The pushes it queues go out on the tick: see the module doc.
                self.adopt(&m, ctx);
                ctx.reply(
                    client,
                    id,
                    Reply::Ok(CacheResponse::Members {
                        epoch: self.membership.epoch,
                    }),
                );
            }
        }
    }

    fn message_kind(msg: &CacheMessage) -> &'static str {
        match msg {
            CacheMessage::Push { .. } => "push",
            CacheMessage::Ack { .. } => "ack",
            CacheMessage::Members { .. } => "members",
            CacheMessage::Sync { .. } => "sync",
            CacheMessage::Synced { .. } => "synced",
            CacheMessage::HintedRead { .. } => "hinted read",
            CacheMessage::HintedReply { .. } => "hinted reply",
        }
    }

    fn role(&self) -> &'static str {
        if self.is_member() { "cache" } else { "spare" }
    }
}

/// Keys whose newest copy on the given live nodes is missing from, or older on, a live
/// node of their preference list under `ring`: empty once migration has settled.
pub fn misplaced(
    live: &[(NodeId, &BTreeMap<u32, Versioned>)],
    ring: &HashRing,
    replicas: u32,
) -> Vec<(u32, NodeId)> {
    let mut newest: BTreeMap<u32, u64> = BTreeMap::new();
    for (_, store) in live {
        for (k, e) in *store {
            let v = newest.entry(*k).or_insert(0);
            *v = (*v).max(e.version);
        }
    }
    let holders: BTreeSet<NodeId> = live.iter().map(|(id, _)| *id).collect();
    let mut bad = Vec::new();
    for (key, version) in newest {
        for node in preference(ring, key, replicas) {
            if !holders.contains(&node) {
                continue;
            }
            let held = live
                .iter()
                .find(|(id, _)| *id == node)
                .and_then(|(_, s)| s.get(&key))
                .map(|e| e.version);
            if held != Some(version) {
                bad.push((key, node));
            }
        }
    }
    bad
}
