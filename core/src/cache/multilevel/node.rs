//! The nodes of `cache.multilevel`, sans-I/O: application nodes `0..apps`, each with its
//! own in-process L1 cache, and one shared L2 node (id `apps`) — a shared cache in front
//! of the system of record, which it writes through to a log on its disk before it
//! acknowledges (so the L2 is never behind the store).
//!
//! A read hits the asking node's L1 if its entry is younger than `l1Ttl`, else asks the
//! L2. A write goes through the L2, which, once the store has it, sends every other
//! application node an invalidation naming the key and the new version — fire and forget,
//! as the invalidation streams of multi-level caches are (Facebook's McSqueal, NSDI 2013
//! §3.4, and the L1/L2 arrangements of Caffeine + Redis setups). An invalidation the
//! network loses or a partition holds back leaves the old value in an L1 until its TTL
//! runs out: the bounded L1 TTL is what caps how stale a read can be.
//!
//! An L1 remembers the newest version each invalidation named and refuses an older fill,
//! so an answer from the L2 that an invalidation overtook does not put the old value
//! back; and it fills only from fetches it sent since it last booted.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::Hash;

use crate::cache::patterns::node::{Versioned, initial, read_store_log};
use crate::sim::disk::{Disk, DiskOp};
use crate::sim::trace::StableHasher;
use crate::sim::{
    ClientId, ClientRequest, Ctx, Fingerprint, Node, NodeId, Reply, RequestId, TimerId,
};
use crate::time::{Duration, Time};

/// The L2's log of the store.
pub const STORE_FILE: &str = "l2-store-log";

/// The settings of every node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MultilevelNodeConfig {
    /// Application nodes; the L2 is node `apps`.
    pub apps: u32,
    pub l1_ttl: Duration,
    /// Whether the L2 sends invalidations at all (off: only the TTL ends an L1 entry).
    pub invalidate: bool,
}

/// Node-to-node messages.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LevelMessage {
    Fetch {
        key: u32,
        client: ClientId,
        request: RequestId,
    },
    Fetched {
        key: u32,
        entry: Versioned,
        client: ClientId,
        request: RequestId,
    },
    Write {
        key: u32,
        entry: Versioned,
        client: ClientId,
        request: RequestId,
    },
    Written {
        key: u32,
        entry: Versioned,
        client: ClientId,
        request: RequestId,
    },
    /// `key` has `version` now: drop older L1 copies.
    Invalidate { key: u32, version: u64 },
}

/// What the application's users ask an application node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LevelRequest {
    Get { key: u32 },
    Put { key: u32, entry: Versioned },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LevelResponse {
    /// From the node's own L1.
    L1Hit(Versioned),
    /// From the L2.
    L2(Versioned),
    Written,
}

/// Counters since the node's last boot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct LevelStats {
    pub gets: u64,
    pub l1_hits: u64,
    pub fetches: u64,
    pub invalidations: u64,
    /// L1 entries an invalidation removed.
    pub invalidated: u64,
    /// Fills refused because an invalidation had named a newer version.
    pub refused_fills: u64,
    pub writes: u64,
    pub invalidations_sent: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct AppState {
    l1: BTreeMap<u32, (Versioned, Time)>,
    /// The newest version an invalidation or a write named, per key.
    floor: BTreeMap<u32, u64>,
    /// Fetches sent since this boot.
    fetching: BTreeSet<RequestId>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct L2State {
    cache: BTreeMap<u32, Versioned>,
    store: BTreeMap<u32, Versioned>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Level {
    App(AppState),
    L2(L2State),
}

/// An application node (with its L1) or the L2.
#[derive(Debug, Clone)]
pub struct LevelNode {
    id: NodeId,
    config: MultilevelNodeConfig,
    level: Level,
    stats: LevelStats,
}

impl LevelNode {
    pub fn stats(&self) -> LevelStats {
        self.stats
    }

    pub fn is_l2(&self) -> bool {
        matches!(self.level, Level::L2(_))
    }

    /// The L1 entry of `key` and when it was filled (an application node).
    pub fn l1_entry(&self, key: u32) -> Option<(Versioned, Time)> {
        match &self.level {
            Level::App(a) => a.l1.get(&key).copied(),
            Level::L2(_) => None,
        }
    }

    /// Entries in this node's cache (L1 or L2).
    pub fn cached(&self) -> usize {
        match &self.level {
            Level::App(a) => a.l1.len(),
            Level::L2(l) => l.cache.len(),
        }
    }

    /// The store's value of `key` (the L2).
    pub fn stored(&self, key: u32) -> Option<Versioned> {
        match &self.level {
            Level::L2(l) => Some(l.store.get(&key).copied().unwrap_or(initial(key))),
            Level::App(_) => None,
        }
    }

    fn l2(&self) -> NodeId {
        self.config.apps
    }
}

impl AppState {
    /// Keeps `entry` unless an invalidation named a newer version.
    fn fill(&mut self, key: u32, entry: Versioned, now: Time) -> bool {
        if self.floor.get(&key).is_some_and(|f| *f > entry.version) {
            return false;
        }
        if self
            .l1
            .get(&key)
            .is_some_and(|(e, _)| e.version > entry.version)
        {
            return false;
        }
        self.l1.insert(key, (entry, now));
        true
    }

    fn raise_floor(&mut self, key: u32, version: u64) {
        let f = self.floor.entry(key).or_insert(0);
        *f = (*f).max(version);
    }
}

impl Fingerprint for LevelMessage {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        self.hash(h);
    }
}

impl Fingerprint for LevelNode {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        let LevelNode {
            id,
            config,
            level,
            stats,
        } = self;
        id.hash(h);
        config.hash(h);
        level.hash(h);
        stats.hash(h);
    }
}

impl Node for LevelNode {
    type Message = LevelMessage;
    type Request = LevelRequest;
    type Response = LevelResponse;
    type Config = MultilevelNodeConfig;

    fn recover(id: NodeId, config: &MultilevelNodeConfig, disk: &Disk) -> Self {
        let level = if id == config.apps {
            Level::L2(L2State {
                cache: BTreeMap::new(),
                store: read_store_log(disk.read(STORE_FILE)),
            })
        } else {
            Level::App(AppState::default())
        };
        LevelNode {
            id,
            config: *config,
            level,
            stats: LevelStats::default(),
        }
    }

    fn on_start(&mut self, _ctx: &mut Ctx<'_, Self>) {}

    fn on_message(&mut self, from: NodeId, msg: LevelMessage, ctx: &mut Ctx<'_, Self>) {
        let now = ctx.now();
        let apps = self.config.apps;
        let invalidate = self.config.invalidate;
        match (&mut self.level, msg) {
            (
                Level::L2(l),
                LevelMessage::Fetch {
                    key,
                    client,
                    request,
                },
            ) => {
                let entry = match l.cache.get(&key) {
                    Some(e) => *e,
                    None => {
                        let e = l.store.get(&key).copied().unwrap_or(initial(key));
                        l.cache.insert(key, e);
                        e
                    }
                };
                ctx.send(
                    from,
                    LevelMessage::Fetched {
                        key,
                        entry,
                        client,
                        request,
                    },
                );
            }
            (
                Level::L2(l),
                LevelMessage::Write {
                    key,
                    entry,
                    client,
                    request,
                },
            ) => {
                self.stats.writes += 1;
                let old = l.store.get(&key).copied().unwrap_or(initial(key));
                if entry.version > old.version {
                    l.store.insert(key, entry);
                    l.cache.insert(key, entry);
                    let mut bytes = Vec::with_capacity(20);
                    bytes.extend_from_slice(&key.to_le_bytes());
                    bytes.extend_from_slice(&entry.version.to_le_bytes());
                    bytes.extend_from_slice(&entry.value.to_le_bytes());
                    ctx.disk(DiskOp::Append {
                        file: STORE_FILE,
                        bytes,
                    });
                    ctx.disk(DiskOp::Fsync);
                    if invalidate {
                        for app in (0..apps).filter(|a| *a != from) {
                            self.stats.invalidations_sent += 1;
                            ctx.send(
                                app,
                                LevelMessage::Invalidate {
                                    key,
                                    version: entry.version,
                                },
                            );
                        }
                    }
                }
                ctx.send(
                    from,
                    LevelMessage::Written {
                        key,
                        entry,
                        client,
                        request,
                    },
                );
            }
            (
                Level::App(a),
                LevelMessage::Fetched {
                    key,
                    entry,
                    client,
                    request,
                },
            ) => {
                // A fetch from before a crash may be older than an invalidation this
                // node no longer remembers: answer it, keep nothing.
                if a.fetching.remove(&request) && !a.fill(key, entry, now) {
                    self.stats.refused_fills += 1;
                }
                ctx.reply(client, request, Reply::Ok(LevelResponse::L2(entry)));
            }
            (
                Level::App(a),
                LevelMessage::Written {
                    key,
                    entry,
                    client,
                    request,
                },
            ) => {
                a.raise_floor(key, entry.version);
                a.fill(key, entry, now);
                ctx.reply(client, request, Reply::Ok(LevelResponse::Written));
            }
            (Level::App(a), LevelMessage::Invalidate { key, version }) => {
                self.stats.invalidations += 1;
                a.raise_floor(key, version);
                if a.l1.get(&key).is_some_and(|(e, _)| e.version < version) {
                    a.l1.remove(&key);
                    self.stats.invalidated += 1;
                }
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, _timer: TimerId, _ctx: &mut Ctx<'_, Self>) {}

    fn on_request(&mut self, request: ClientRequest<LevelRequest>, ctx: &mut Ctx<'_, Self>) {
        let (client, id) = (request.client, request.id);
        let l2 = self.l2();
        let ttl = self.config.l1_ttl;
        let now = ctx.now();
        let Level::App(a) = &mut self.level else {
            ctx.reply(
                client,
                id,
                Reply::Fail("the L2 serves application nodes".into()),
            );
            return;
        };
        match request.body {
            LevelRequest::Get { key } => {
                self.stats.gets += 1;
                match a.l1.get(&key) {
                    Some((e, filled)) if now < *filled + ttl => {
                        self.stats.l1_hits += 1;
                        ctx.reply(client, id, Reply::Ok(LevelResponse::L1Hit(*e)));
                    }
                    _ => {
                        a.l1.remove(&key);
                        a.fetching.insert(id);
                        self.stats.fetches += 1;
                        ctx.send(
                            l2,
                            LevelMessage::Fetch {
                                key,
                                client,
                                request: id,
                            },
                        );
                    }
                }
            }
            LevelRequest::Put { key, entry } => ctx.send(
                l2,
                LevelMessage::Write {
                    key,
                    entry,
                    client,
                    request: id,
                },
            ),
        }
    }

    fn message_kind(msg: &LevelMessage) -> &'static str {
        match msg {
            LevelMessage::Fetch { .. } => "fetch",
            LevelMessage::Fetched { .. } => "fetched",
            LevelMessage::Write { .. } => "write",
            LevelMessage::Written { .. } => "written",
            LevelMessage::Invalidate { .. } => "invalidate",
        }
    }

    fn role(&self) -> &'static str {
        if self.is_l2() { "L2" } else { "app + L1" }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_l1_refuses_a_fill_older_than_an_invalidation() {
        let mut a = AppState::default();
        let v = |version| Versioned { version, value: 0 };
        assert!(a.fill(1, v(1), Time::ZERO));
        a.raise_floor(1, 3);
        assert!(!a.fill(1, v(2), Time::ZERO));
        assert!(a.fill(1, v(3), Time::ZERO));
        assert!(!a.fill(1, v(2), Time::ZERO));
    }
}
