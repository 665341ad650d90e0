//! A lease-based lock service with fencing tokens (catalog id `coordination.lock`),
//! after Martin Kleppmann, "How to do distributed locking" (2016).
//!
//! Node 0 is the lock server, node 1 the storage the lock protects, every other node a
//! client. A client asks for the lock; the server grants it with a lease and a *fencing
//! token* that grows with every grant. The client counts the lease on its own clock from
//! the moment it asked (so the network's delay only shortens it), renews it while it
//! works, checks it before each write — and then, as real code does, takes a moment to
//! prepare the write before sending it. A process pause (GC) or a slow clock in that
//! moment lets the write go out after the lease ran out and another client got the lock:
//! the lease alone cannot stop it. With fencing on, every write carries its token and the
//! storage rejects a token older than the newest it has seen, so the stale write is
//! refused; with fencing off it lands over the newer holder's write.
//!
//! The server and the storage are durable on their simulated disks (a
//! [`crate::sim::records`] log, fsynced before the answer leaves): the server logs each
//! grant's token, the storage each write it accepts. A crashed server comes back with its
//! newest token, so tokens keep growing across restarts; it does not know who held the
//! lock, so it grants nothing for one lease after it restarts (the holder it forgot may
//! still be inside its lease — Chubby's grace period after a master failover, Burrows,
//! OSDI 2006, §2.8). A crashed storage comes back with every write it acknowledged and so
//! with the newest token it has seen: without that, a stale holder's write would pass the
//! fence after a storage restart. Its count of refused writes is a statistic and starts
//! again from zero.

pub mod lab;
pub mod lessons;

use serde::{Deserialize, Serialize};
use std::hash::Hash;

use crate::sim::disk::{Disk, DiskOp};
use crate::sim::node::{ClientRequest, Ctx, Fingerprint, Node, NodeId, Reply, TimerId};
use crate::sim::records;
use crate::sim::trace::StableHasher;
use crate::time::{Duration, Time};

pub const SERVER: NodeId = 0;
pub const STORAGE: NodeId = 1;
/// The first client's id.
pub const FIRST_CLIENT: NodeId = 2;

/// Idle between holds, or waiting for an answer to `Acquire` (resent on expiry).
const ACQUIRE_TIMER: TimerId = 0;
/// Check the lease, then prepare a write.
const WORK_TIMER: TimerId = 1;
/// Send the prepared write (no second look at the lease).
const SEND_TIMER: TimerId = 2;
const RENEW_TIMER: TimerId = 3;
/// Accepted writes the storage keeps for the view.
pub const LOG_KEPT: usize = 64;
/// The server's and the storage's log on their disks.
const LOG: &str = "lock.log";

/// What the server and the storage log, each fsynced before it is acted on.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum LockRecord {
    /// The server granted `token` (a renewal of the same token logs nothing).
    Granted { token: u64 },
    /// The storage accepted a write.
    Accepted {
        client: NodeId,
        token: u64,
        seq: u64,
        at_us: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockMessage {
    Acquire {
        req: u64,
    },
    Granted {
        req: u64,
        token: u64,
        lease_us: u64,
    },
    Busy {
        req: u64,
    },
    /// `sent` is the client's clock when it sent the renewal, echoed in the answer: the
    /// lease it renews counts from then, whichever renewal the answer is for.
    Renew {
        token: u64,
        sent: Time,
    },
    Renewed {
        token: u64,
        sent: Time,
    },
    Lost {
        token: u64,
    },
    Release {
        token: u64,
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

impl Fingerprint for LockMessage {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        self.hash(h);
    }
}

/// Cluster-wide settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockConfig {
    pub lease: Duration,
    /// From the lease check to the write leaving (building the request, say).
    pub prepare: Duration,
    /// Between two writes of one hold.
    pub work: Duration,
    pub writes_per_hold: u32,
    /// Between a release (or a lost lock) and the next request; also the resend period
    /// of an unanswered request.
    pub think: Duration,
    pub renew: bool,
    pub fencing: bool,
}

/// The lock server's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ServerState {
    /// Tokens granted so far; the next is one more.
    pub last_token: u64,
    /// Holder, its token, and when the lease ends on the server's clock.
    pub holder: Option<(NodeId, u64, Time)>,
    pub grants: u64,
    /// After a restart, no grant before this time on the server's clock: one lease, so
    /// that the holder it forgot has run out of its lease.
    pub granting_from: Time,
}

/// What a lease server answers a request for its lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseAnswer {
    /// The lease is the asker's until one lease from now: a `fresh` grant with a new
    /// token (to be logged before the answer leaves), or the asker's own live lease again.
    Granted { token: u64, fresh: bool },
    /// Someone else holds it (who, and their token), or nobody may yet: the grace period
    /// after a restart.
    Busy { holder: Option<(NodeId, u64)> },
}

/// The lease server's rules, shared by the lock server and the leader-election store
/// ([`crate::coordination::leader_election::lease`]): one holder at a time, a token that
/// grows with every fresh grant, expiry on the server's own clock.
impl ServerState {
    /// The holder whose lease has not run out at `now`.
    pub fn live_holder(&self, now: Time) -> Option<(NodeId, u64, Time)> {
        self.holder.filter(|h| now < h.2)
    }

    /// Compare-and-set on the lease: free (or already `from`'s) becomes `from`'s.
    pub fn acquire(&mut self, from: NodeId, now: Time, lease: Duration) -> LeaseAnswer {
        match self.live_holder(now) {
            Some((holder, token, _)) if holder == from => {
                self.holder = Some((from, token, now + lease));
                LeaseAnswer::Granted {
                    token,
                    fresh: false,
                }
            }
            Some((holder, token, _)) => LeaseAnswer::Busy {
                holder: Some((holder, token)),
            },
            None if now < self.granting_from => LeaseAnswer::Busy { holder: None },
            None => {
                self.last_token += 1;
                self.grants += 1;
                self.holder = Some((from, self.last_token, now + lease));
                LeaseAnswer::Granted {
                    token: self.last_token,
                    fresh: true,
                }
            }
        }
    }

    /// Extends `from`'s live lease under `token`; false if it is no longer theirs.
    pub fn renew(&mut self, from: NodeId, token: u64, now: Time, lease: Duration) -> bool {
        match self.live_holder(now) {
            Some((holder, t, _)) if holder == from && t == token => {
                self.holder = Some((from, token, now + lease));
                true
            }
            _ => false,
        }
    }

    pub fn release(&mut self, from: NodeId, token: u64) {
        if self.holder.is_some_and(|h| h.0 == from && h.1 == token) {
            self.holder = None;
        }
    }

    /// After a restart that found grants on disk: no grant for one lease, so that the
    /// holder the server forgot has run out of its lease. Says whether it applies.
    pub fn restarted(&mut self, now: Time, lease: Duration) -> bool {
        if self.grants > 0 {
            self.granting_from = now + lease;
        }
        self.grants > 0
    }

    /// Rebuilds the server from its log (the newest token and the grant count), and
    /// says where a torn tail starts, to be cut with [`cut_lease_log_tail`].
    pub fn recover(disk: &Disk) -> (ServerState, Option<usize>) {
        let (log, torn_tail) = records::read_with_tail::<LockRecord>(disk, LOG);
        let mut s = ServerState::default();
        for r in log {
            if let LockRecord::Granted { token } = r {
                s.last_token = s.last_token.max(token);
                s.grants += 1;
            }
        }
        (s, torn_tail)
    }
}

/// Logs a fresh grant's token and fsyncs it, so that the answer sent after it in this
/// event leaves only once the token is durable.
pub fn persist_grant<N: Node>(token: u64, ctx: &mut Ctx<'_, N>) {
    persist(LockRecord::Granted { token }, ctx);
}

/// Cuts a torn tail found by [`ServerState::recover`] (at start, before any append).
pub fn cut_lease_log_tail(len: usize) -> [DiskOp; 2] {
    records::cut_torn_tail(LOG, len)
}

/// One write the storage accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AcceptedWrite {
    pub client: NodeId,
    pub token: u64,
    pub seq: u64,
    pub at: Time,
}

/// The storage's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct StorageState {
    /// The newest token seen on a write.
    pub max_token: u64,
    /// Writes accepted so far; the newest [`LOG_KEPT`] are in `log`.
    pub accepted: u64,
    pub rejected: u64,
    pub log: std::collections::VecDeque<AcceptedWrite>,
}

/// Where a client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientPhase {
    /// Between holds, or asking (the request's number and when it was sent).
    Idle { asked: Option<(u64, Time)> },
    /// Holding `token` until `until` on its own clock, `writes_left` to go; `preparing`
    /// while a write is between its lease check and its sending.
    Holding {
        token: u64,
        until: Time,
        writes_left: u32,
        preparing: bool,
    },
}

/// A client's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientState {
    pub phase: ClientPhase,
    /// Requests sent so far (the newest one's number).
    pub requests: u64,
    pub next_seq: u64,
    pub holds: u64,
    pub writes_fenced: u64,
    /// Holds given up because the lease had run out at a check.
    pub leases_expired: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LockRole {
    Server(ServerState),
    Storage(StorageState),
    Client(ClientState),
}

/// A node of the lock service.
#[derive(Debug, Clone)]
pub struct LockNode {
    id: NodeId,
    config: LockConfig,
    role: LockRole,
    /// Where the intact part of the log ends when recovery found a torn tail after it:
    /// cut at start, before anything is appended.
    torn_tail: Option<usize>,
}

impl Fingerprint for LockNode {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        let LockNode {
            id,
            config,
            role,
            torn_tail,
        } = self;
        id.hash(h);
        torn_tail.hash(h);
        let LockConfig {
            lease,
            prepare,
            work,
            writes_per_hold,
            think,
            renew,
            fencing,
        } = config;
        (lease, prepare, work, writes_per_hold, think, renew, fencing).hash(h);
        role.hash(h);
    }
}

impl LockNode {
    pub fn role_state(&self) -> &LockRole {
        &self.role
    }

    pub fn server(&self) -> Option<&ServerState> {
        match &self.role {
            LockRole::Server(s) => Some(s),
            _ => None,
        }
    }

    pub fn storage(&self) -> Option<&StorageState> {
        match &self.role {
            LockRole::Storage(s) => Some(s),
            _ => None,
        }
    }

    pub fn client(&self) -> Option<&ClientState> {
        match &self.role {
            LockRole::Client(c) => Some(c),
            _ => None,
        }
    }

    fn ask(c: &mut ClientState, config: &LockConfig, ctx: &mut Ctx<'_, Self>) {
        if let ClientPhase::Idle { .. } = c.phase {
            c.requests += 1;
            c.phase = ClientPhase::Idle {
                asked: Some((c.requests, ctx.now())),
            };
            ctx.send(SERVER, LockMessage::Acquire { req: c.requests });
            ctx.set_timer(ACQUIRE_TIMER, config.think);
        }
    }

    fn give_up(c: &mut ClientState, config: &LockConfig, ctx: &mut Ctx<'_, Self>) {
        if let ClientPhase::Holding { .. } = c.phase {
            ctx.cancel_timer(WORK_TIMER);
            ctx.cancel_timer(SEND_TIMER);
            ctx.cancel_timer(RENEW_TIMER);
        }
        c.phase = ClientPhase::Idle { asked: None };
        ctx.set_timer(ACQUIRE_TIMER, config.think);
    }

    fn server_message(
        s: &mut ServerState,
        config: &LockConfig,
        from: NodeId,
        msg: LockMessage,
        ctx: &mut Ctx<'_, Self>,
    ) {
        let now = ctx.now();
        match msg {
            LockMessage::Acquire { req } => match s.acquire(from, now, config.lease) {
                LeaseAnswer::Granted { token, fresh } => {
                    if fresh {
                        persist_grant(token, ctx);
                        ctx.state_change(format!("n{from} holds the lock, token {token}"));
                    }
                    ctx.send(from, granted(req, token, config));
                }
                LeaseAnswer::Busy { .. } => ctx.send(from, LockMessage::Busy { req }),
            },
            LockMessage::Renew { token, sent } => {
                if s.renew(from, token, now, config.lease) {
                    ctx.send(from, LockMessage::Renewed { token, sent });
                } else {
                    ctx.send(from, LockMessage::Lost { token });
                }
            }
            LockMessage::Release { token } => s.release(from, token),
            _ => {}
        }
    }

    fn storage_message(
        s: &mut StorageState,
        fencing: bool,
        from: NodeId,
        msg: LockMessage,
        ctx: &mut Ctx<'_, Self>,
    ) {
        let LockMessage::Write { token, seq } = msg else {
            return;
        };
        let accepted = !fencing || token >= s.max_token;
        if accepted {
            let at = ctx.now();
            persist(
                LockRecord::Accepted {
                    client: from,
                    token,
                    seq,
                    at_us: at.0,
                },
                ctx,
            );
            s.remember(AcceptedWrite {
                client: from,
                token,
                seq,
                at,
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
            LockMessage::WriteAck {
                token,
                seq,
                accepted,
            },
        );
    }

    fn client_message(
        c: &mut ClientState,
        config: &LockConfig,
        msg: LockMessage,
        ctx: &mut Ctx<'_, Self>,
    ) {
        match (msg, c.phase) {
            (
                LockMessage::Granted {
                    req,
                    token,
                    lease_us,
                },
                ClientPhase::Idle {
                    asked: Some((asked, at)),
                },
            ) if req == asked => {
                ctx.cancel_timer(ACQUIRE_TIMER);
                c.holds += 1;
                c.phase = ClientPhase::Holding {
                    token,
                    until: at + Duration(lease_us),
                    writes_left: config.writes_per_hold,
                    preparing: false,
                };
                ctx.set_timer(WORK_TIMER, config.work);
                if config.renew {
                    ctx.set_timer(RENEW_TIMER, Duration(config.lease.0 / 3));
                }
            }
            // The lease runs from when *this* renewal left, not the newest one: an
            // answer to an older renewal that arrives after a newer one was sent must not
            // stretch the lease past what the server granted (it counted from receiving
            // the older one; the newer one may never arrive).
            (LockMessage::Renewed { token, sent }, ClientPhase::Holding { token: held, .. })
                if token == held =>
            {
                if let ClientPhase::Holding { until, .. } = &mut c.phase {
                    *until = (*until).max(sent + config.lease);
                }
            }
            (LockMessage::Lost { token }, ClientPhase::Holding { token: held, .. })
                if token == held =>
            {
                Self::give_up(c, config, ctx);
            }
            (
                LockMessage::WriteAck {
                    token,
                    accepted: false,
                    ..
                },
                phase,
            ) => {
                c.writes_fenced += 1;
                if matches!(phase, ClientPhase::Holding { token: held, .. } if held == token) {
                    Self::give_up(c, config, ctx);
                }
            }
            _ => {}
        }
    }

    fn client_timer(
        c: &mut ClientState,
        config: &LockConfig,
        timer: TimerId,
        ctx: &mut Ctx<'_, Self>,
    ) {
        let now = ctx.now();
        match (timer, c.phase) {
            (ACQUIRE_TIMER, ClientPhase::Idle { .. }) => Self::ask(c, config, ctx),
            (WORK_TIMER, ClientPhase::Holding { until, .. }) => {
                if now < until {
                    if let ClientPhase::Holding { preparing, .. } = &mut c.phase {
                        *preparing = true;
                    }
                    ctx.set_timer(SEND_TIMER, config.prepare);
                } else {
                    c.leases_expired += 1;
                    Self::give_up(c, config, ctx);
                }
            }
            (
                SEND_TIMER,
                ClientPhase::Holding {
                    token, writes_left, ..
                },
            ) => {
                // Kleppmann's point: the lease was checked `prepare` ago, not now.
                ctx.send(
                    STORAGE,
                    LockMessage::Write {
                        token,
                        seq: c.next_seq,
                    },
                );
                c.next_seq += 1;
                let left = writes_left.saturating_sub(1);
                if left == 0 {
                    ctx.send(SERVER, LockMessage::Release { token });
                    Self::give_up(c, config, ctx);
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
            (RENEW_TIMER, ClientPhase::Holding { token, .. }) => {
                ctx.send(SERVER, LockMessage::Renew { token, sent: now });
                ctx.set_timer(RENEW_TIMER, Duration(config.lease.0 / 3));
            }
            _ => {}
        }
    }
}

impl StorageState {
    fn remember(&mut self, w: AcceptedWrite) {
        self.max_token = self.max_token.max(w.token);
        self.accepted += 1;
        if self.log.len() >= LOG_KEPT {
            self.log.pop_front();
        }
        self.log.push_back(w);
    }
}

/// Appends `record` and fsyncs it: the answer sent after it in this event leaves only
/// once it is durable.
fn persist<N: Node>(record: LockRecord, ctx: &mut Ctx<'_, N>) {
    ctx.disk(records::append(LOG, &record));
    ctx.disk(DiskOp::Fsync);
}

fn granted(req: u64, token: u64, config: &LockConfig) -> LockMessage {
    LockMessage::Granted {
        req,
        token,
        lease_us: config.lease.0,
    }
}

impl Node for LockNode {
    type Message = LockMessage;
    type Request = ();
    type Response = ();
    type Config = LockConfig;

    fn recover(id: NodeId, config: &LockConfig, disk: &Disk) -> Self {
        let (log, torn_tail) = records::read_with_tail::<LockRecord>(disk, LOG);
        let role = match id {
            SERVER => LockRole::Server(ServerState::recover(disk).0),
            STORAGE => {
                let mut s = StorageState::default();
                for r in log {
                    if let LockRecord::Accepted {
                        client,
                        token,
                        seq,
                        at_us,
                    } = r
                    {
                        s.remember(AcceptedWrite {
                            client,
                            token,
                            seq,
                            at: Time(at_us),
                        });
                    }
                }
                LockRole::Storage(s)
            }
            _ => LockRole::Client(ClientState {
                phase: ClientPhase::Idle { asked: None },
                requests: 0,
                next_seq: 0,
                holds: 0,
                writes_fenced: 0,
                leases_expired: 0,
            }),
        };
        LockNode {
            id,
            config: *config,
            role,
            torn_tail,
        }
    }

    fn on_start(&mut self, ctx: &mut Ctx<'_, Self>) {
        if let Some(len) = self.torn_tail.take() {
            for op in records::cut_torn_tail(LOG, len) {
                ctx.disk(op);
            }
        }
        match &mut self.role {
            LockRole::Client(_) => {
                // Clients start one after another, a think time apart at most.
                let offset = ctx.rng().below(self.config.think.0.max(1));
                ctx.set_timer(ACQUIRE_TIMER, Duration(offset));
            }
            LockRole::Server(s) => {
                if s.restarted(ctx.now(), self.config.lease) {
                    ctx.state_change(format!(
                        "the lock server restarted at token {}: no grant for one lease",
                        s.last_token
                    ));
                }
            }
            LockRole::Storage(_) => {}
        }
    }

    fn on_message(&mut self, from: NodeId, msg: LockMessage, ctx: &mut Ctx<'_, Self>) {
        let config = self.config;
        match &mut self.role {
            LockRole::Server(s) => Self::server_message(s, &config, from, msg, ctx),
            LockRole::Storage(s) => Self::storage_message(s, config.fencing, from, msg, ctx),
            LockRole::Client(c) => Self::client_message(c, &config, msg, ctx),
        }
    }

    fn on_timer(&mut self, timer: TimerId, ctx: &mut Ctx<'_, Self>) {
        let config = self.config;
        if let LockRole::Client(c) = &mut self.role {
            Self::client_timer(c, &config, timer, ctx);
        }
    }

    fn on_request(&mut self, request: ClientRequest<()>, ctx: &mut Ctx<'_, Self>) {
        ctx.reply(
            request.client,
            request.id,
            Reply::Fail("the lock service takes requests from its client nodes".into()),
        );
    }

    fn message_kind(msg: &LockMessage) -> &'static str {
        match msg {
            LockMessage::Acquire { .. } => "acquire",
            LockMessage::Granted { .. } => "granted",
            LockMessage::Busy { .. } => "busy",
            LockMessage::Renew { .. } => "renew",
            LockMessage::Renewed { .. } => "renewed",
            LockMessage::Lost { .. } => "lost",
            LockMessage::Release { .. } => "release",
            LockMessage::Write { .. } => "write",
            LockMessage::WriteAck { .. } => "writeAck",
        }
    }

    fn role(&self) -> &'static str {
        match &self.role {
            LockRole::Server(_) => "lock server",
            LockRole::Storage(_) => "storage",
            LockRole::Client(c) => match c.phase {
                ClientPhase::Holding { .. } => "holder",
                ClientPhase::Idle { .. } => "client",
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{LatencyModel, NetworkConfig, Sim, SimConfig};

    /// Renewals every lease / 3 = 100 ms over a 70 ms link: each answer comes back after
    /// the next renewal left. The client must count its lease from the renewal the answer
    /// is for (the server extended it from receiving that one), never from the newest
    /// one sent, which the server has not seen yet and may never see.
    #[test]
    fn a_late_answer_to_an_older_renewal_does_not_stretch_the_lease() {
        let config = LockConfig {
            lease: Duration::from_millis(300),
            prepare: Duration::from_millis(1),
            work: Duration::from_millis(50),
            writes_per_hold: 1_000,
            // Longer than the round trip: an ask is not re-sent before its answer.
            think: Duration::from_millis(500),
            renew: true,
            fencing: true,
        };
        let sim_config = SimConfig {
            nodes: FIRST_CLIENT + 1,
            network: NetworkConfig {
                latency: LatencyModel::Constant { ms: 70.0 },
                ..NetworkConfig::default()
            },
            ..SimConfig::default()
        };
        let mut sim: Sim<LockNode> = Sim::new(sim_config, config).unwrap();
        let mut renewed = 0;
        while sim.step_until(Time::from_millis(3_000)).is_some() {
            let client = sim.node(FIRST_CLIENT).and_then(|n| n.client()).unwrap();
            let server = sim.node(SERVER).and_then(|n| n.server()).unwrap();
            if let ClientPhase::Holding { token, until, .. } = client.phase {
                // No skew, no drift: both clocks read true time.
                if let Some((holder, held, ends)) = server.holder {
                    assert_eq!((holder, held), (FIRST_CLIENT, token));
                    assert!(
                        until <= ends,
                        "at {:?} the client believes its lease runs to {until:?}, the \
                         server to {ends:?}",
                        sim.now()
                    );
                    renewed = renewed.max(until.0);
                }
            }
        }
        // The lease was renewed well past the first grant.
        assert!(renewed > Time::from_millis(2_000).0, "{renewed}");
    }
}
