//! The two nodes of `cache.patterns`, sans-I/O: a cache (node [`CACHE`]) and the backing
//! store behind it (node [`STORE`]), which answers after `storeLatency` on top of the
//! network's and keeps its data in a log on its disk (a crashed store loses nothing it
//! acknowledged). The application is the lab's client; what each pattern puts in the cache
//! node and what in the application follows the usual descriptions of the patterns
//! (cache-aside and read-/write-through as in the AWS caching whitepaper; write-behind and
//! refresh-ahead as in Oracle Coherence's "Read-Through, Write-Through, Write-Behind, and
//! Refresh-Ahead Caching"):
//!
//! - **cache-aside**: the cache only looks up, stores and deletes; the application reads
//!   the store on a miss and fills the cache, and on a write updates the store then
//!   deletes the cache entry.
//! - **read-through**: the cache loads a miss from the store itself (one load per key in
//!   flight, the other readers wait for it); writes as in cache-aside.
//! - **write-through**: reads as read-through; a write goes to the cache, which writes the
//!   store and, once it has acknowledged, the cache entry, then answers.
//! - **write-back** (write-behind): a write is answered as soon as the cache holds it; dirty
//!   entries are flushed to the store every `tick`, at most `maxDirty` of them at once (a
//!   write that would exceed the bound waits for a flush to free room). Dirty entries are
//!   memory: a crash of the cache loses them.
//! - **refresh-ahead**: read-through, plus a hit on an entry older than `refreshAfter`
//!   reloads it in the background, so hot keys rarely miss when their TTL runs out.
//!
//! **Leases** (Nishtala et al., "Scaling Memcache at Facebook", NSDI 2013, §3.2.1) fix
//! the stale set: a miss hands the reader a lease token, a delete invalidates it, and a
//! set whose token is no longer the key's is refused. So a reader that read the store
//! before a concurrent write cannot put the old value back after the write's delete. In
//! the cache's own loads (read-through, refresh-ahead, write-through) the same rule is a
//! load that a delete or a write overtook: it answers its readers but does not fill.
//!
//! **Capacity**: the cache holds at most `capacity` entries and evicts the least recently
//! used one ([`crate::cache::Lru`]) to make room, skipping write-back's dirty entries: an
//! evicted dirty entry would make the next read of its key miss and load the store's
//! older version. The lab keeps `maxDirty` below `capacity`, so a clean entry is always
//! there to evict.

use std::collections::{BTreeMap, VecDeque};
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};

use crate::cache::{EvictionCause, Lru};
use crate::sim::disk::{Disk, DiskOp};
use crate::sim::trace::StableHasher;
use crate::sim::{
    ClientId, ClientRequest, Ctx, Fingerprint, Node, NodeId, Reply, RequestId, TimerId,
};
use crate::time::{Duration, Time};

pub use crate::cache::distributed::Versioned;

/// The cache node's id.
pub const CACHE: NodeId = 0;
/// The backing store's id.
pub const STORE: NodeId = 1;
/// The store's log file: one [`RECORD`]-byte record per write.
pub const STORE_FILE: &str = "store-log";
const RECORD: usize = 20;
/// The cache's retry and flush timer; the store numbers its delayed answers from 1.
const TICK: TimerId = 0;
/// Loads, saves or flushes sent per tick at most.
const BATCH: usize = 64;

/// The caching pattern.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum Pattern {
    #[default]
    CacheAside,
    ReadThrough,
    WriteThrough,
    WriteBack,
    RefreshAhead,
}

impl Pattern {
    pub const ALL: [Pattern; 5] = [
        Pattern::CacheAside,
        Pattern::ReadThrough,
        Pattern::WriteThrough,
        Pattern::WriteBack,
        Pattern::RefreshAhead,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Pattern::CacheAside => "cache-aside",
            Pattern::ReadThrough => "read-through",
            Pattern::WriteThrough => "write-through",
            Pattern::WriteBack => "write-back",
            Pattern::RefreshAhead => "refresh-ahead",
        }
    }

    /// Whether the cache loads misses itself.
    pub fn loads(self) -> bool {
        self != Pattern::CacheAside
    }

    /// Whether writes go through the cache (else the application writes the store and
    /// deletes the cache entry).
    pub fn writes_through_cache(self) -> bool {
        matches!(self, Pattern::WriteThrough | Pattern::WriteBack)
    }
}

/// The settings of both nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PatternNodeConfig {
    pub pattern: Pattern,
    pub leases: bool,
    /// How long a cached entry lives.
    pub ttl: Duration,
    /// The most entries the cache holds (least recently used clean ones go first).
    pub capacity: u32,
    /// How long the store takes to answer, on top of the network.
    pub store_latency: Duration,
    /// How often the cache retries its loads and saves and flushes dirty entries.
    pub tick: Duration,
    /// Write-back: the most dirty entries.
    pub max_dirty: u32,
    /// Refresh-ahead: a hit on an entry older than this reloads it.
    pub refresh_after: Duration,
}

/// Cache ↔ store messages.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PatternMessage {
    Load {
        key: u32,
        load: u64,
    },
    Loaded {
        key: u32,
        entry: Versioned,
        load: u64,
    },
    Save {
        key: u32,
        entry: Versioned,
    },
    /// The store holds `version` of `key` or newer.
    Saved {
        key: u32,
        version: u64,
    },
}

/// What the application asks.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PatternRequest {
    /// To the cache: the cached value; a miss is loaded from the store except in
    /// cache-aside, where it is answered with a lease (if leases are on).
    Get { key: u32 },
    /// To the cache: store `entry` (cache-aside's fill), holding `lease` if leases are on.
    Set {
        key: u32,
        entry: Versioned,
        lease: Option<u64>,
    },
    /// To the cache: drop `key` (and its lease).
    Delete { key: u32 },
    /// To the cache: a write (write-through, write-back).
    Write { key: u32, entry: Versioned },
    /// To the store.
    Read { key: u32 },
    /// To the store: keeps `entry` if it is newer than what it has.
    Update { key: u32, entry: Versioned },
}

/// What the nodes answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PatternResponse {
    Hit(Versioned),
    Miss {
        lease: Option<u64>,
    },
    /// A miss the cache loaded from the store.
    Loaded(Versioned),
    /// Whether a `Set` was kept (a set holding a stale lease is not).
    Set {
        stored: bool,
    },
    Deleted,
    Written,
    /// The store's value.
    Value(Versioned),
    Updated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Cached {
    entry: Versioned,
    filled: Time,
}

/// A load from the store in flight.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Load {
    key: u32,
    readers: Vec<(ClientId, RequestId)>,
    /// Cleared when a delete or write overtakes it (leases on): it must not fill.
    fills: bool,
    sent: Time,
}

/// A write-through write waiting for the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Saving {
    key: u32,
    client: ClientId,
    request: RequestId,
    entry: Versioned,
    sent: Time,
}

/// Counters since the node's last boot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PatternNodeStats {
    pub gets: u64,
    pub hits: u64,
    pub loads: u64,
    pub refreshes: u64,
    pub fills: u64,
    /// Entries evicted to make room (the capacity), not counting expiries.
    pub evictions: u64,
    /// Sets refused for a stale lease, and loads not filled because a write overtook them.
    pub refused_fills: u64,
    pub saves: u64,
    /// Write-back writes that waited for room among the dirty entries.
    pub blocked_writes: u64,
    pub store_reads: u64,
    pub store_writes: u64,
}

/// The cached entries, least recently used last ([`crate::cache::Lru`]). Two are equal,
/// and fingerprint alike, when they hold the same entries in the same order.
#[derive(Debug, Clone)]
struct Entries(Lru<u32, Cached>);

impl PartialEq for Entries {
    fn eq(&self, other: &Self) -> bool {
        self.0.max_entries() == other.0.max_entries() && self.0.iter().eq(other.0.iter())
    }
}

impl Eq for Entries {}

impl Hash for Entries {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.0.max_entries().hash(h);
        self.0.len().hash(h);
        for (k, e) in self.0.iter() {
            k.hash(h);
            e.hash(h);
        }
    }
}

/// The cache's state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheState {
    entries: Entries,
    leases: BTreeMap<u32, u64>,
    next_lease: u64,
    loads: BTreeMap<u64, Load>,
    /// The load new readers of a key join.
    loading: BTreeMap<u32, u64>,
    next_load: u64,
    saving: Vec<Saving>,
    dirty: BTreeMap<u32, Versioned>,
    blocked: VecDeque<Saving>,
}

/// The store's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct StoreState {
    data: BTreeMap<u32, Versioned>,
    delayed: BTreeMap<TimerId, Delayed>,
    next_timer: TimerId,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Delayed {
    Reply(ClientId, RequestId, PatternResponse),
    Send(NodeId, PatternMessage),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Role {
    Cache(Box<CacheState>),
    Store(StoreState),
}

/// A node of `cache.patterns`: the cache or the store.
#[derive(Debug, Clone)]
pub struct PatternNode {
    config: PatternNodeConfig,
    role: Role,
    stats: PatternNodeStats,
}

/// The store's value of `key` before any write: version 0.
pub fn initial(key: u32) -> Versioned {
    Versioned {
        version: 0,
        value: u64::from(key),
    }
}

impl PatternNode {
    pub fn stats(&self) -> PatternNodeStats {
        self.stats
    }

    pub fn is_cache(&self) -> bool {
        matches!(self.role, Role::Cache(_))
    }

    /// Write-back's entries not yet in the store.
    pub fn dirty(&self) -> usize {
        match &self.role {
            Role::Cache(c) => c.dirty.len(),
            Role::Store(_) => 0,
        }
    }

    /// Entries the cache holds (expired ones not yet dropped included).
    pub fn cached(&self) -> usize {
        match &self.role {
            Role::Cache(c) => c.entries.0.len(),
            Role::Store(_) => 0,
        }
    }

    /// The cached entry of `key` and when it was filled.
    pub fn cached_entry(&self, key: u32) -> Option<(Versioned, Time)> {
        match &self.role {
            Role::Cache(c) => c.entries.0.peek(&key).map(|e| (e.entry, e.filled)),
            Role::Store(_) => None,
        }
    }

    /// Outstanding leases, loads in flight, writes waiting (for the view).
    pub fn in_flight(&self) -> (usize, usize, usize) {
        match &self.role {
            Role::Cache(c) => (
                c.leases.len(),
                c.loads.len(),
                c.saving.len() + c.blocked.len(),
            ),
            Role::Store(_) => (0, 0, 0),
        }
    }

    /// The store's value of `key`.
    pub fn stored(&self, key: u32) -> Option<Versioned> {
        match &self.role {
            Role::Store(s) => Some(s.data.get(&key).copied().unwrap_or(initial(key))),
            Role::Cache(_) => None,
        }
    }

    pub fn stored_keys(&self) -> usize {
        match &self.role {
            Role::Store(s) => s.data.len(),
            Role::Cache(_) => 0,
        }
    }
}

// ---- the cache ----

impl CacheState {
    fn new(capacity: u32) -> Self {
        CacheState {
            entries: Entries(Lru::clamped(capacity as usize)),
            leases: BTreeMap::new(),
            next_lease: 0,
            loads: BTreeMap::new(),
            loading: BTreeMap::new(),
            next_load: 0,
            saving: Vec::new(),
            dirty: BTreeMap::new(),
            blocked: VecDeque::new(),
        }
    }

    /// The entry of `key` if it has not expired (a dirty one never does), made the most
    /// recently used.
    fn fresh(&mut self, key: u32, now: Time, ttl: Duration) -> Option<Cached> {
        let hit = self
            .entries
            .0
            .peek(&key)
            .copied()
            .filter(|c| now < c.filled + ttl || self.dirty.contains_key(&key))?;
        self.entries.0.get(&key);
        Some(hit)
    }

    /// Keeps `entry` if it is newer than the cached one (or none is cached).
    fn fill_newer(
        &mut self,
        key: u32,
        entry: Versioned,
        now: Time,
        stats: &mut PatternNodeStats,
    ) -> bool {
        if self
            .entries
            .0
            .peek(&key)
            .is_some_and(|c| c.entry.version > entry.version)
        {
            return false;
        }
        self.insert(key, Cached { entry, filled: now }, stats);
        true
    }

    /// Stores `cached` as the most recently used entry. A full cache evicts its least
    /// recently used clean entry: a dirty one stays until it is flushed, or the next read
    /// of its key would load the store's older version. (Were every entry dirty, which
    /// `maxDirty` < `capacity` rules out, the least recently used would go; its write
    /// would still be flushed from `dirty`, not lost.)
    fn insert(&mut self, key: u32, cached: Cached, stats: &mut PatternNodeStats) {
        let lru = &mut self.entries.0;
        let dirty = &self.dirty;
        if !lru.contains(&key)
            && lru.len() >= lru.max_entries()
            && lru.peek_lru().is_some_and(|(k, _)| dirty.contains_key(k))
        {
            let victim = lru
                .iter()
                .map(|(k, _)| *k)
                .filter(|k| !dirty.contains_key(k))
                .last();
            if let Some(v) = victim {
                lru.remove(&v);
                stats.evictions += 1;
            }
        }
        stats.evictions += lru.put(key, cached).count(EvictionCause::Capacity) as u64;
    }

    /// A delete or write of `key`: loads of it in flight must not fill (with leases),
    /// and its lease is void.
    fn overtake(&mut self, key: u32, leases: bool) {
        if !leases {
            return;
        }
        self.leases.remove(&key);
        if let Some(id) = self.loading.remove(&key)
            && let Some(l) = self.loads.get_mut(&id)
        {
            l.fills = false;
        }
    }
}

impl PatternNode {
    fn cache_request(
        &mut self,
        client: ClientId,
        id: RequestId,
        body: PatternRequest,
        ctx: &mut Ctx<'_, Self>,
    ) {
        let config = self.config;
        let now = ctx.now();
        let Role::Cache(c) = &mut self.role else {
            return;
        };
        let reply = match body {
            PatternRequest::Get { key } => {
                self.stats.gets += 1;
                if let Some(hit) = c.fresh(key, now, config.ttl) {
                    self.stats.hits += 1;
                    if config.pattern == Pattern::RefreshAhead
                        && now >= hit.filled + config.refresh_after
                        && !c.loading.contains_key(&key)
                    {
                        self.stats.refreshes += 1;
                        Self::start_load(c, &mut self.stats, key, None, ctx);
                    }
                    Some(PatternResponse::Hit(hit.entry))
                } else if config.pattern.loads() {
                    let current = c.loading.get(&key).copied();
                    if let Some(load) = current.and_then(|l| c.loads.get_mut(&l)) {
                        load.readers.push((client, id));
                    } else {
                        Self::start_load(c, &mut self.stats, key, Some((client, id)), ctx);
                    }
                    None
                } else {
                    let lease = config.leases.then(|| {
                        c.next_lease += 1;
                        let token = c.next_lease;
                        c.leases.insert(key, token);
                        token
                    });
                    Some(PatternResponse::Miss { lease })
                }
            }
            PatternRequest::Set { key, entry, lease } => {
                let allowed =
                    !config.leases || (lease.is_some() && c.leases.get(&key) == lease.as_ref());
                if allowed {
                    c.leases.remove(&key);
                    c.insert(key, Cached { entry, filled: now }, &mut self.stats);
                    self.stats.fills += 1;
                } else {
                    self.stats.refused_fills += 1;
                }
                Some(PatternResponse::Set { stored: allowed })
            }
            PatternRequest::Delete { key } => {
                c.entries.0.remove(&key);
                c.overtake(key, config.leases);
                Some(PatternResponse::Deleted)
            }
            PatternRequest::Write { key, entry } => match config.pattern {
                Pattern::WriteThrough => {
                    c.overtake(key, config.leases);
                    let s = Saving {
                        key,
                        client,
                        request: id,
                        entry,
                        sent: now,
                    };
                    c.saving.push(s);
                    self.stats.saves += 1;
                    ctx.send(STORE, PatternMessage::Save { key, entry });
                    None
                }
                Pattern::WriteBack => {
                    let s = Saving {
                        key,
                        client,
                        request: id,
                        entry,
                        sent: now,
                    };
                    if c.dirty.contains_key(&key) || c.dirty.len() < config.max_dirty as usize {
                        Self::write_back(c, &mut self.stats, &config, key, entry, now);
                        Some(PatternResponse::Written)
                    } else {
                        self.stats.blocked_writes += 1;
                        c.blocked.push_back(s);
                        Self::flush(c, &mut self.stats, ctx);
                        None
                    }
                }
                _ => {
                    ctx.reply(
                        client,
                        id,
                        Reply::Fail(format!(
                            "{} writes go to the store, not the cache",
                            config.pattern.name()
                        )),
                    );
                    None
                }
            },
            PatternRequest::Read { .. } | PatternRequest::Update { .. } => {
                ctx.reply(client, id, Reply::Fail("this is the cache".into()));
                None
            }
        };
        if let Some(r) = reply {
            ctx.reply(client, id, Reply::Ok(r));
        }
    }

    fn write_back(
        c: &mut CacheState,
        stats: &mut PatternNodeStats,
        config: &PatternNodeConfig,
        key: u32,
        entry: Versioned,
        now: Time,
    ) {
        c.overtake(key, config.leases);
        if c.dirty.get(&key).is_none_or(|d| d.version < entry.version) {
            c.dirty.insert(key, entry);
        }
        c.fill_newer(key, entry, now, stats);
    }

    fn start_load(
        c: &mut CacheState,
        stats: &mut PatternNodeStats,
        key: u32,
        reader: Option<(ClientId, RequestId)>,
        ctx: &mut Ctx<'_, Self>,
    ) {
        c.next_load += 1;
        let load = c.next_load;
        c.loads.insert(
            load,
            Load {
                key,
                readers: reader.into_iter().collect(),
                fills: true,
                sent: ctx.now(),
            },
        );
        c.loading.insert(key, load);
        stats.loads += 1;
        ctx.send(STORE, PatternMessage::Load { key, load });
    }

    /// Sends every dirty entry to the store (at most [`BATCH`]).
    fn flush(c: &CacheState, stats: &mut PatternNodeStats, ctx: &mut Ctx<'_, Self>) {
        for (key, entry) in c.dirty.iter().take(BATCH) {
            stats.saves += 1;
            ctx.send(
                STORE,
                PatternMessage::Save {
                    key: *key,
                    entry: *entry,
                },
            );
        }
    }

    fn cache_message(&mut self, msg: PatternMessage, ctx: &mut Ctx<'_, Self>) {
        let config = self.config;
        let now = ctx.now();
        let Role::Cache(c) = &mut self.role else {
            return;
        };
        match msg {
            PatternMessage::Loaded { key, entry, load } => {
                let Some(l) = c.loads.remove(&load) else {
                    return; // a duplicate, or a load from before a crash
                };
                if c.loading.get(&key) == Some(&load) {
                    c.loading.remove(&key);
                }
                if l.fills && c.fill_newer(key, entry, now, &mut self.stats) {
                    self.stats.fills += 1;
                } else if !l.fills {
                    self.stats.refused_fills += 1;
                }
                for (client, request) in l.readers {
                    ctx.reply(client, request, Reply::Ok(PatternResponse::Loaded(entry)));
                }
            }
            PatternMessage::Saved { key, version } => {
                // Write-through: answer the writes the store now holds, newest into the cache.
                let mut done = Vec::new();
                c.saving.retain(|s| {
                    let held = s.key == key && s.entry.version <= version;
                    if held {
                        done.push(*s);
                    }
                    !held
                });
                for s in done {
                    c.fill_newer(key, s.entry, now, &mut self.stats);
                    ctx.reply(s.client, s.request, Reply::Ok(PatternResponse::Written));
                }
                // Write-back: the entry is clean once the store has its version.
                if c.dirty.get(&key).is_some_and(|d| d.version <= version) {
                    c.dirty.remove(&key);
                }
                while c.dirty.len() < config.max_dirty as usize
                    && let Some(s) = c.blocked.pop_front()
                {
                    Self::write_back(c, &mut self.stats, &config, s.key, s.entry, now);
                    ctx.reply(s.client, s.request, Reply::Ok(PatternResponse::Written));
                }
            }
            PatternMessage::Load { .. } | PatternMessage::Save { .. } => {}
        }
    }

    fn cache_tick(&mut self, ctx: &mut Ctx<'_, Self>) {
        let tick = self.config.tick;
        let now = ctx.now();
        let Role::Cache(c) = &mut self.role else {
            return;
        };
        // Retry what the network may have lost.
        let mut sent = 0;
        for (id, l) in c.loads.iter_mut() {
            if sent < BATCH && now >= l.sent + tick {
                l.sent = now;
                sent += 1;
                ctx.send(
                    STORE,
                    PatternMessage::Load {
                        key: l.key,
                        load: *id,
                    },
                );
            }
        }
        for s in c
            .saving
            .iter_mut()
            .filter(|s| now >= s.sent + tick)
            .take(BATCH)
        {
            s.sent = now;
            self.stats.saves += 1;
            ctx.send(
                STORE,
                PatternMessage::Save {
                    key: s.key,
                    entry: s.entry,
                },
            );
        }
        Self::flush(c, &mut self.stats, ctx);
        // Expired entries go (a dirty one stays until it is flushed).
        let ttl = self.config.ttl;
        let expired: Vec<u32> = c
            .entries
            .0
            .iter()
            .filter(|(k, e)| now >= e.filled + ttl && !c.dirty.contains_key(k))
            .map(|(k, _)| *k)
            .collect();
        for k in expired {
            c.entries.0.remove(&k);
        }
        ctx.set_timer(TICK, tick);
    }
}

/// The value the application writes as `version` of `key` (the key in the high bits, so
/// a value read in the trace says whose it is).
pub fn entry_for(key: u32, version: u64) -> Versioned {
    Versioned {
        version,
        value: (u64::from(key) << 32) | (version & 0xffff_ffff),
    }
}

// ---- the store ----

impl PatternNode {
    fn store_apply(s: &mut StoreState, key: u32, entry: Versioned, ctx: &mut Ctx<'_, Self>) {
        let old = s.data.get(&key).copied().unwrap_or(initial(key));
        if entry.version > old.version {
            s.data.insert(key, entry);
            let mut bytes = Vec::with_capacity(RECORD);
            bytes.extend_from_slice(&key.to_le_bytes());
            bytes.extend_from_slice(&entry.version.to_le_bytes());
            bytes.extend_from_slice(&entry.value.to_le_bytes());
            ctx.disk(DiskOp::Append {
                file: STORE_FILE,
                bytes,
            });
            ctx.disk(DiskOp::Fsync);
        }
    }

    fn delay(&mut self, what: Delayed, ctx: &mut Ctx<'_, Self>) {
        let latency = self.config.store_latency;
        let Role::Store(s) = &mut self.role else {
            return;
        };
        s.next_timer += 1;
        s.delayed.insert(s.next_timer, what);
        ctx.set_timer(s.next_timer, latency);
    }

    fn store_request(
        &mut self,
        client: ClientId,
        id: RequestId,
        body: PatternRequest,
        ctx: &mut Ctx<'_, Self>,
    ) {
        let Role::Store(s) = &mut self.role else {
            return;
        };
        let answer = match body {
            PatternRequest::Read { key } => {
                self.stats.store_reads += 1;
                PatternResponse::Value(s.data.get(&key).copied().unwrap_or(initial(key)))
            }
            PatternRequest::Update { key, entry } => {
                self.stats.store_writes += 1;
                Self::store_apply(s, key, entry, ctx);
                PatternResponse::Updated
            }
            _ => {
                ctx.reply(client, id, Reply::Fail("this is the store".into()));
                return;
            }
        };
        self.delay(Delayed::Reply(client, id, answer), ctx);
    }

    fn store_message(&mut self, from: NodeId, msg: PatternMessage, ctx: &mut Ctx<'_, Self>) {
        let Role::Store(s) = &mut self.role else {
            return;
        };
        let answer = match msg {
            PatternMessage::Load { key, load } => {
                self.stats.store_reads += 1;
                let entry = s.data.get(&key).copied().unwrap_or(initial(key));
                PatternMessage::Loaded { key, entry, load }
            }
            PatternMessage::Save { key, entry } => {
                self.stats.store_writes += 1;
                Self::store_apply(s, key, entry, ctx);
                PatternMessage::Saved {
                    key,
                    version: entry.version,
                }
            }
            PatternMessage::Loaded { .. } | PatternMessage::Saved { .. } => return,
        };
        self.delay(Delayed::Send(from, answer), ctx);
    }
}

/// The store's data read back from its log; a torn last record is ignored.
pub fn read_store_log(bytes: &[u8]) -> BTreeMap<u32, Versioned> {
    let mut data: BTreeMap<u32, Versioned> = BTreeMap::new();
    for r in bytes.chunks_exact(RECORD) {
        let word = |from: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&r[from..from + 8]);
            u64::from_le_bytes(b)
        };
        let key = u32::from_le_bytes([r[0], r[1], r[2], r[3]]);
        let entry = Versioned {
            version: word(4),
            value: word(12),
        };
        if data.get(&key).is_none_or(|e| e.version < entry.version) {
            data.insert(key, entry);
        }
    }
    data
}

impl Fingerprint for PatternMessage {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        self.hash(h);
    }
}

impl Fingerprint for PatternNode {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        let PatternNode {
            config,
            role,
            stats,
        } = self;
        config.hash(h);
        role.hash(h);
        stats.hash(h);
    }
}

impl Node for PatternNode {
    type Message = PatternMessage;
    type Request = PatternRequest;
    type Response = PatternResponse;
    type Config = PatternNodeConfig;

    fn recover(id: NodeId, config: &PatternNodeConfig, disk: &Disk) -> Self {
        let role = if id == STORE {
            Role::Store(StoreState {
                data: read_store_log(disk.read(STORE_FILE)),
                ..StoreState::default()
            })
        } else {
            Role::Cache(Box::new(CacheState::new(config.capacity)))
        };
        PatternNode {
            config: *config,
            role,
            stats: PatternNodeStats::default(),
        }
    }

    fn on_start(&mut self, ctx: &mut Ctx<'_, Self>) {
        if let Role::Cache(c) = &mut self.role {
            // Lease tokens from before a crash must not match new ones.
            c.next_lease = ctx.rng().next_u64() >> 16;
            ctx.set_timer(TICK, self.config.tick);
        }
    }

    fn on_message(&mut self, from: NodeId, msg: PatternMessage, ctx: &mut Ctx<'_, Self>) {
        if self.is_cache() {
            self.cache_message(msg, ctx);
        } else {
            self.store_message(from, msg, ctx);
        }
    }

    fn on_timer(&mut self, timer: TimerId, ctx: &mut Ctx<'_, Self>) {
        if self.is_cache() {
            self.cache_tick(ctx);
        } else if let Role::Store(s) = &mut self.role {
            match s.delayed.remove(&timer) {
                Some(Delayed::Reply(client, id, r)) => ctx.reply(client, id, Reply::Ok(r)),
                Some(Delayed::Send(to, m)) => ctx.send(to, m),
                None => {}
            }
        }
    }

    fn on_request(&mut self, request: ClientRequest<PatternRequest>, ctx: &mut Ctx<'_, Self>) {
        let (client, id) = (request.client, request.id);
        if self.is_cache() {
            self.cache_request(client, id, request.body, ctx);
        } else {
            self.store_request(client, id, request.body, ctx);
        }
    }

    fn message_kind(msg: &PatternMessage) -> &'static str {
        match msg {
            PatternMessage::Load { .. } => "load",
            PatternMessage::Loaded { .. } => "loaded",
            PatternMessage::Save { .. } => "save",
            PatternMessage::Saved { .. } => "saved",
        }
    }

    fn role(&self) -> &'static str {
        if self.is_cache() { "cache" } else { "store" }
    }
}
