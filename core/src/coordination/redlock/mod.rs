//! Redlock (catalog id `coordination.redlock`): one lock over N independent lock stores,
//! as antirez describes it in "Distributed locks with Redis" (redis.io, the distlock
//! page), and where it fails, after Martin Kleppmann, "How to do distributed locking"
//! (2016), and antirez's reply, "Is Redlock safe?" (2016).
//!
//! Node 0 is the storage the lock protects, nodes `1..=clients` the clients, and the
//! lock stores come after them. A store is a single key with Redis's `SET key value NX PX
//! ttl`: it takes the key if nobody holds it or the holder's time ran out *on the store's
//! own clock*, and deletes it only for the value that set it (the compare-and-delete
//! script). A client asks the stores in turn, waiting at most `storeTimeout` for each;
//! it holds the lock only if a majority said yes and the time the round took is under the
//! TTL, and then for `validity = TTL − elapsed − drift`, with `drift = TTL/100 + 2 ms`
//! (the clock-drift factor of the description). Otherwise it deletes its value on every
//! store and tries again after a random delay. It releases by deleting its value on every
//! store.
//!
//! What goes wrong, as the two posts argue it: (a) the client checks that its validity
//! covers the write it is about to send, is paused (GC) past it, and sends the write when
//! another client already holds the lock; (b) a store's clock jumps forward, so the key
//! expires early there, and with the stores the first client never reached a second
//! client has its majority. Both are mutual-exclusion failures: two clients believe they
//! hold the lock at once ([`checker`] finds them in the history of holds).
//!
//! Fencing is the storage side of [`crate::coordination::lock`]: every write carries a
//! token and the storage refuses one older than the newest it has seen. Redlock has no
//! counter that grows with every grant — Kleppmann's point; a store's random value is
//! unique, not ordered — so here each store keeps a counter that a grant raises past the
//! largest one the client met earlier in its round (`max(counter, floor) + 1`), and the
//! client's token is the last one it got. Two rounds through the same stores give
//! growing tokens, which is enough for the late writes of (a) and (b); two majorities
//! that share only one store need not be ordered, so the soak counts late writes that
//! pass such a fence too.

pub mod checker;
pub mod lab;
pub mod soak;

use std::hash::Hash;

use crate::coordination::lock::{AcceptedWrite, LOG_KEPT, StorageState};
use crate::sim::disk::Disk;
use crate::sim::node::{ClientRequest, Ctx, Fingerprint, Node, NodeId, Reply, TimerId};
use crate::sim::trace::StableHasher;
use crate::time::{Duration, Time};

/// Idle between holds (or after a failed round): when to try again.
const RETRY_TIMER: TimerId = 0;
/// The store being asked has not answered within `storeTimeout`.
const STORE_TIMER: TimerId = 1;
/// Check the validity left, then prepare a write.
const WORK_TIMER: TimerId = 2;
/// Send the prepared write (no second look at the validity).
const SEND_TIMER: TimerId = 3;
/// The validity has run out on the client's clock.
const VALIDITY_TIMER: TimerId = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RedlockMessage {
    /// `SET lock value NX PX ttl`; `floor` is the largest counter the client got so far
    /// in this round.
    SetNx {
        value: u64,
        ttl_us: u64,
        floor: u64,
    },
    SetOk {
        value: u64,
        counter: u64,
    },
    SetTaken {
        value: u64,
    },
    /// Delete the key if it holds `value` (the compare-and-delete script).
    Del {
        value: u64,
    },
    Write {
        token: u64,
        seq: u64,
    },
    WriteAck {
        token: u64,
        seq: u64,
        accepted: bool,
    },
}

impl Fingerprint for RedlockMessage {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        self.hash(h);
    }
}

/// Cluster-wide settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RedlockConfig {
    pub clients: u32,
    pub stores: u32,
    pub ttl: Duration,
    /// How long a client waits for one store before it counts it as a no.
    pub store_timeout: Duration,
    /// From the validity check to the write leaving.
    pub prepare: Duration,
    /// Between two writes of one hold.
    pub work: Duration,
    pub writes_per_hold: u32,
    /// Between holds; a failed round retries after a random delay up to this.
    pub think: Duration,
    pub fencing: bool,
}

impl RedlockConfig {
    /// The storage's node id.
    pub fn storage(&self) -> NodeId {
        0
    }

    /// The client node ids.
    pub fn client_ids(&self) -> std::ops::Range<NodeId> {
        1..self.first_store()
    }

    /// The first lock store's node id.
    pub fn first_store(&self) -> NodeId {
        1 + self.clients
    }

    /// Every node: the storage, the clients and the stores.
    pub fn nodes(&self) -> u32 {
        1 + self.clients + self.stores
    }

    /// Stores that must say yes.
    pub fn quorum(&self) -> u32 {
        self.stores / 2 + 1
    }

    /// The clock-drift allowance: 1 % of the TTL plus 2 ms, as the description has it.
    pub fn drift(&self) -> Duration {
        Duration(self.ttl.0 / 100 + 2_000)
    }
}

/// A lock store's state: the one key and the counter behind the tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct StoreState {
    /// The value holding the key and when it expires on the store's clock.
    pub key: Option<(u64, Time)>,
    pub counter: u64,
    pub grants: u64,
}

/// Where a client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientPhase {
    Idle,
    /// Asking store `next` (then the ones after it) in the round started at `started`.
    Acquiring {
        value: u64,
        started: Time,
        next: u32,
        granted: u32,
        floor: u64,
    },
    /// Holding the lock until `valid_until` on its own clock.
    Holding {
        value: u64,
        token: u64,
        valid_until: Time,
        writes_left: u32,
        preparing: bool,
    },
}

/// A client's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientState {
    pub phase: ClientPhase,
    pub rounds: u64,
    pub holds: u64,
    pub next_seq: u64,
    pub writes_fenced: u64,
    /// Holds that ended because the validity ran out.
    pub validity_lapsed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RedlockRole {
    Store(StoreState),
    Storage(StorageState),
    Client(ClientState),
}

/// A node of the Redlock cluster.
#[derive(Debug, Clone)]
pub struct RedlockNode {
    id: NodeId,
    config: RedlockConfig,
    role: RedlockRole,
}

impl Fingerprint for RedlockNode {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        let RedlockNode { id, config, role } = self;
        (id, config, role).hash(h);
    }
}

impl RedlockNode {
    pub fn role_state(&self) -> &RedlockRole {
        &self.role
    }

    pub fn store(&self) -> Option<&StoreState> {
        match &self.role {
            RedlockRole::Store(s) => Some(s),
            _ => None,
        }
    }

    pub fn storage(&self) -> Option<&StorageState> {
        match &self.role {
            RedlockRole::Storage(s) => Some(s),
            _ => None,
        }
    }

    pub fn client(&self) -> Option<&ClientState> {
        match &self.role {
            RedlockRole::Client(c) => Some(c),
            _ => None,
        }
    }

    /// The token of the hold this client believes it has, if any.
    pub fn believed_token(&self) -> Option<u64> {
        match self.client()?.phase {
            ClientPhase::Holding { token, .. } => Some(token),
            _ => None,
        }
    }

    fn store_message(
        s: &mut StoreState,
        from: NodeId,
        msg: RedlockMessage,
        ctx: &mut Ctx<'_, Self>,
    ) {
        let now = ctx.now();
        match msg {
            RedlockMessage::SetNx {
                value,
                ttl_us,
                floor,
            } => {
                if s.key.is_some_and(|(_, expires)| now < expires) {
                    ctx.send(from, RedlockMessage::SetTaken { value });
                } else {
                    s.key = Some((value, now + Duration(ttl_us)));
                    s.counter = s.counter.max(floor) + 1;
                    s.grants += 1;
                    ctx.send(
                        from,
                        RedlockMessage::SetOk {
                            value,
                            counter: s.counter,
                        },
                    );
                }
            }
            RedlockMessage::Del { value } if s.key.is_some_and(|(v, _)| v == value) => {
                s.key = None;
            }
            _ => {}
        }
    }

    fn storage_message(
        s: &mut StorageState,
        fencing: bool,
        from: NodeId,
        msg: RedlockMessage,
        ctx: &mut Ctx<'_, Self>,
    ) {
        let RedlockMessage::Write { token, seq } = msg else {
            return;
        };
        // The lock service's fence: refuse a token older than the newest seen.
        let accepted = !fencing || token >= s.max_token;
        if accepted {
            s.max_token = s.max_token.max(token);
            s.accepted += 1;
            if s.log.len() >= LOG_KEPT {
                s.log.pop_front();
            }
            s.log.push_back(AcceptedWrite {
                client: from,
                token,
                seq,
                at: ctx.now(),
            });
        } else {
            s.rejected += 1;
            ctx.state_change(format!(
                "storage fenced off n{from}'s write: token {token} < {}",
                s.max_token
            ));
        }
        ctx.send(
            from,
            RedlockMessage::WriteAck {
                token,
                seq,
                accepted,
            },
        );
    }

    /// Starts a round: asks the first store.
    fn start_round(c: &mut ClientState, config: &RedlockConfig, ctx: &mut Ctx<'_, Self>) {
        c.rounds += 1;
        // Unique per client and round, as a random value would be.
        let value = ((ctx.id() as u64) << 40) | c.rounds;
        c.phase = ClientPhase::Acquiring {
            value,
            started: ctx.now(),
            next: 0,
            granted: 0,
            floor: 0,
        };
        Self::ask(value, 0, 0, config, ctx);
    }

    fn ask(value: u64, store: u32, floor: u64, config: &RedlockConfig, ctx: &mut Ctx<'_, Self>) {
        ctx.send(
            config.first_store() + store,
            RedlockMessage::SetNx {
                value,
                ttl_us: config.ttl.0,
                floor,
            },
        );
        ctx.set_timer(STORE_TIMER, config.store_timeout);
    }

    /// The store being asked answered (`Some(counter)` for a yes) or timed out (`None`).
    fn next_store(
        c: &mut ClientState,
        config: &RedlockConfig,
        counter: Option<u64>,
        ctx: &mut Ctx<'_, Self>,
    ) {
        let ClientPhase::Acquiring {
            value,
            started,
            next,
            granted,
            floor,
        } = c.phase
        else {
            return;
        };
        ctx.cancel_timer(STORE_TIMER);
        let (granted, floor) = match counter {
            Some(k) => (granted + 1, floor.max(k)),
            None => (granted, floor),
        };
        let next = next + 1;
        if next < config.stores {
            c.phase = ClientPhase::Acquiring {
                value,
                started,
                next,
                granted,
                floor,
            };
            Self::ask(value, next, floor, config, ctx);
            return;
        }
        let now = ctx.now();
        let elapsed = now.0.saturating_sub(started.0);
        let validity = config
            .ttl
            .0
            .saturating_sub(elapsed)
            .saturating_sub(config.drift().0);
        if granted >= config.quorum() && validity > 0 {
            c.holds += 1;
            c.phase = ClientPhase::Holding {
                value,
                token: floor,
                valid_until: now + Duration(validity),
                writes_left: config.writes_per_hold,
                preparing: false,
            };
            ctx.state_change(format!(
                "n{} holds the lock: {granted} of {} stores, token {floor}, valid {:.1} ms",
                ctx.id(),
                config.stores,
                validity as f64 / 1e3
            ));
            ctx.set_timer(VALIDITY_TIMER, Duration(validity));
            ctx.set_timer(WORK_TIMER, config.work);
        } else {
            Self::release(value, config, ctx);
            c.phase = ClientPhase::Idle;
            let delay = ctx.rng().below(config.think.0.max(1));
            ctx.set_timer(RETRY_TIMER, Duration(delay + 1));
        }
    }

    fn release(value: u64, config: &RedlockConfig, ctx: &mut Ctx<'_, Self>) {
        for store in 0..config.stores {
            ctx.send(config.first_store() + store, RedlockMessage::Del { value });
        }
    }

    /// Stops holding: releases on every store and rests a think time.
    fn let_go(c: &mut ClientState, config: &RedlockConfig, ctx: &mut Ctx<'_, Self>) {
        if let ClientPhase::Holding { value, .. } = c.phase {
            ctx.cancel_timer(WORK_TIMER);
            ctx.cancel_timer(SEND_TIMER);
            ctx.cancel_timer(VALIDITY_TIMER);
            Self::release(value, config, ctx);
        }
        c.phase = ClientPhase::Idle;
        ctx.set_timer(RETRY_TIMER, config.think);
    }

    fn client_message(
        c: &mut ClientState,
        config: &RedlockConfig,
        from: NodeId,
        msg: RedlockMessage,
        ctx: &mut Ctx<'_, Self>,
    ) {
        let asking = match c.phase {
            ClientPhase::Acquiring { value, next, .. } if config.first_store() + next == from => {
                Some(value)
            }
            _ => None,
        };
        match msg {
            RedlockMessage::SetOk { value, counter } if asking == Some(value) => {
                Self::next_store(c, config, Some(counter), ctx);
            }
            RedlockMessage::SetTaken { value } if asking == Some(value) => {
                Self::next_store(c, config, None, ctx);
            }
            RedlockMessage::WriteAck {
                token,
                accepted: false,
                ..
            } => {
                c.writes_fenced += 1;
                if matches!(c.phase, ClientPhase::Holding { token: held, .. } if held == token) {
                    Self::let_go(c, config, ctx);
                }
            }
            _ => {}
        }
    }

    fn client_timer(
        c: &mut ClientState,
        config: &RedlockConfig,
        timer: TimerId,
        ctx: &mut Ctx<'_, Self>,
    ) {
        let now = ctx.now();
        match (timer, c.phase) {
            (RETRY_TIMER, ClientPhase::Idle) => Self::start_round(c, config, ctx),
            (STORE_TIMER, ClientPhase::Acquiring { .. }) => Self::next_store(c, config, None, ctx),
            (VALIDITY_TIMER, ClientPhase::Holding { .. }) => {
                c.validity_lapsed += 1;
                Self::let_go(c, config, ctx);
            }
            (WORK_TIMER, ClientPhase::Holding { valid_until, .. }) => {
                // Enough validity left to prepare and send the write.
                if now + config.prepare < valid_until {
                    if let ClientPhase::Holding { preparing, .. } = &mut c.phase {
                        *preparing = true;
                    }
                    ctx.set_timer(SEND_TIMER, config.prepare);
                } else {
                    c.validity_lapsed += 1;
                    Self::let_go(c, config, ctx);
                }
            }
            (
                SEND_TIMER,
                ClientPhase::Holding {
                    token, writes_left, ..
                },
            ) => {
                // Kleppmann's point: the validity was checked `prepare` ago, not now.
                ctx.send(
                    config.storage(),
                    RedlockMessage::Write {
                        token,
                        seq: c.next_seq,
                    },
                );
                c.next_seq += 1;
                let left = writes_left.saturating_sub(1);
                if left == 0 {
                    Self::let_go(c, config, ctx);
                } else {
                    if let ClientPhase::Holding {
                        writes_left,
                        preparing,
                        ..
                    } = &mut c.phase
                    {
                        *writes_left = left;
                        *preparing = false;
                    }
                    ctx.set_timer(WORK_TIMER, config.work);
                }
            }
            _ => {}
        }
    }
}

impl Node for RedlockNode {
    type Message = RedlockMessage;
    type Request = ();
    type Response = ();
    type Config = RedlockConfig;

    /// Everything is volatile: a store that restarts has lost its key, as a Redis without
    /// fsync-always persistence does (antirez's reply asks for a delayed restart).
    fn recover(id: NodeId, config: &RedlockConfig, _disk: &Disk) -> Self {
        let role = if id == config.storage() {
            RedlockRole::Storage(StorageState::default())
        } else if id >= config.first_store() {
            RedlockRole::Store(StoreState::default())
        } else {
            RedlockRole::Client(ClientState {
                phase: ClientPhase::Idle,
                rounds: 0,
                holds: 0,
                next_seq: 0,
                writes_fenced: 0,
                validity_lapsed: 0,
            })
        };
        RedlockNode {
            id,
            config: *config,
            role,
        }
    }

    fn on_start(&mut self, ctx: &mut Ctx<'_, Self>) {
        if let RedlockRole::Client(_) = self.role {
            let offset = ctx.rng().below(self.config.think.0.max(1));
            ctx.set_timer(RETRY_TIMER, Duration(offset + 1));
        }
    }

    fn on_message(&mut self, from: NodeId, msg: RedlockMessage, ctx: &mut Ctx<'_, Self>) {
        let config = self.config;
        match &mut self.role {
            RedlockRole::Store(s) => Self::store_message(s, from, msg, ctx),
            RedlockRole::Storage(s) => Self::storage_message(s, config.fencing, from, msg, ctx),
            RedlockRole::Client(c) => Self::client_message(c, &config, from, msg, ctx),
        }
    }

    fn on_timer(&mut self, timer: TimerId, ctx: &mut Ctx<'_, Self>) {
        let config = self.config;
        if let RedlockRole::Client(c) = &mut self.role {
            Self::client_timer(c, &config, timer, ctx);
        }
    }

    fn on_request(&mut self, request: ClientRequest<()>, ctx: &mut Ctx<'_, Self>) {
        ctx.reply(
            request.client,
            request.id,
            Reply::Fail("Redlock takes requests from its client nodes".into()),
        );
    }

    fn message_kind(msg: &RedlockMessage) -> &'static str {
        match msg {
            RedlockMessage::SetNx { .. } => "setNx",
            RedlockMessage::SetOk { .. } => "setOk",
            RedlockMessage::SetTaken { .. } => "setTaken",
            RedlockMessage::Del { .. } => "del",
            RedlockMessage::Write { .. } => "write",
            RedlockMessage::WriteAck { .. } => "writeAck",
        }
    }

    fn role(&self) -> &'static str {
        match &self.role {
            RedlockRole::Store(_) => "lock store",
            RedlockRole::Storage(_) => "storage",
            RedlockRole::Client(c) => match c.phase {
                ClientPhase::Holding { .. } => "holder",
                ClientPhase::Acquiring { .. } => "acquiring",
                ClientPhase::Idle => "client",
            },
        }
    }
}
