//! A gateway node: it receives client requests and decides each one, either by running the
//! limiter's script on the store (central mode: exact, one round trip per request) or by
//! spending tokens it leased from the store in batches (leasing mode: one round trip per
//! batch, and the gateways together may run ahead of the limit by the tokens they hold).
//!
//! Every call to the store has a timeout; when it fires, the request (or every request
//! waiting for the lease) is decided by the policy: fail open admits, fail closed refuses.
//! An answer that comes after its timeout is counted and dropped — the store has charged
//! for it all the same, which is part of what failing costs.
//!
//! A gateway asks for a new lease only when it holds no tokens and has no lease in flight,
//! so at any moment it holds or awaits at most one batch: that is the leasing bound.
//! Settings live on disk (a restart keeps them); everything else is volatile.

use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::hash::Hash;

use crate::ratelimit::distributed::node::{
    LimiterConfig, LimiterMessage, LimiterNode, LimiterRequest, LimiterResponse, STORE, Via,
};
use crate::ratelimit::distributed::scripts::ScriptReply;
use crate::ratelimit::distributed::settings::{FailurePolicy, GatewaySettings, LimiterMode};
use crate::sim::disk::{Disk, DiskOp};
use crate::sim::node::{
    ClientId, ClientRequest, Ctx, Fingerprint, NodeId, Reply, RequestId, TimerId,
};
use crate::sim::trace::StableHasher;
use crate::time::Time;

const SETTINGS_FILE: &str = "settings";
/// Decisions a gateway keeps for the lab to read (more than one event can make).
pub const DECISION_LOG: usize = 4_096;
/// Requests that may wait for a lease; more are refused at once.
pub const MAX_WAITING: usize = 1_024;

/// A request waiting for the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Waiting {
    client: ClientId,
    request: RequestId,
    received_at: Time,
    ideal: bool,
}

/// What an outstanding call to the store is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Call {
    Request(Waiting),
    Lease,
}

/// One decision, as the lab reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// The gateway's decision count before this one (since its last boot).
    pub seq: u64,
    pub gateway: NodeId,
    pub request: RequestId,
    pub admitted: bool,
    pub via: Via,
    /// On the gateway's clock.
    pub received_at: Time,
    pub decided_at: Time,
    /// The store's clock when its script decided, for decisions the store made.
    pub store_time: Option<Time>,
    /// What one exact limiter at the arrival would have said.
    pub ideal: bool,
}

/// Counters since the last boot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayStats {
    pub round_trips: u64,
    pub timeouts: u64,
    pub late_replies: u64,
    pub store_errors: u64,
    pub tokens_leased: u64,
    pub tokens_dropped: u64,
}

/// A gateway's state.
#[derive(Debug, Clone)]
pub struct Gateway {
    id: NodeId,
    key: String,
    settings: GatewaySettings,
    next_op: u64,
    calls: BTreeMap<u64, Call>,
    lease_tokens: u64,
    lease_expires: Time,
    lease_call: Option<u64>,
    waiting: VecDeque<Waiting>,
    log: VecDeque<Decision>,
    decided: u64,
    stats: GatewayStats,
}

impl Gateway {
    pub(super) fn recover(id: NodeId, config: &LimiterConfig, disk: &Disk) -> Self {
        // A torn or missing file reads as the cluster's settings.
        let settings = serde_json::from_slice(disk.read(SETTINGS_FILE)).unwrap_or(config.settings);
        Gateway {
            id,
            key: config.key.clone(),
            settings,
            next_op: 0,
            calls: BTreeMap::new(),
            lease_tokens: 0,
            lease_expires: Time::ZERO,
            lease_call: None,
            waiting: VecDeque::new(),
            log: VecDeque::new(),
            decided: 0,
            stats: GatewayStats::default(),
        }
    }

    pub fn settings(&self) -> &GatewaySettings {
        &self.settings
    }
    pub fn stats(&self) -> GatewayStats {
        self.stats
    }
    /// Decisions made since the last boot.
    pub fn decided(&self) -> u64 {
        self.decided
    }
    /// The newest decisions (up to [`DECISION_LOG`]), oldest first.
    pub fn log(&self) -> &VecDeque<Decision> {
        &self.log
    }
    /// Leased tokens it may still spend at `now`.
    pub fn lease_tokens(&self, now: Time) -> u64 {
        if now < self.lease_expires {
            self.lease_tokens
        } else {
            0
        }
    }
    /// Calls to the store awaiting an answer.
    pub fn calls_in_flight(&self) -> usize {
        self.calls.len()
    }
    /// Requests waiting for a lease.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    fn decide(
        &mut self,
        w: Waiting,
        admitted: bool,
        via: Via,
        store_time: Option<Time>,
        ctx: &mut Ctx<'_, LimiterNode>,
    ) {
        let d = Decision {
            seq: self.decided,
            gateway: self.id,
            request: w.request,
            admitted,
            via,
            received_at: w.received_at,
            decided_at: ctx.now(),
            store_time,
            ideal: w.ideal,
        };
        if self.log.len() >= DECISION_LOG {
            self.log.pop_front();
        }
        self.log.push_back(d);
        self.decided += 1;
        ctx.reply(
            w.client,
            w.request,
            Reply::Ok(LimiterResponse::Decision { admitted, via }),
        );
    }

    fn by_policy(&mut self, w: Waiting, ctx: &mut Ctx<'_, LimiterNode>) {
        match self.settings.policy {
            FailurePolicy::FailOpen => self.decide(w, true, Via::FailOpen, None, ctx),
            FailurePolicy::FailClosed => self.decide(w, false, Via::FailClosed, None, ctx),
        }
    }

    fn call_store(
        &mut self,
        call: Call,
        wanted: u64,
        partial: bool,
        request: RequestId,
        ctx: &mut Ctx<'_, LimiterNode>,
    ) -> u64 {
        let op = self.next_op;
        self.next_op += 1;
        let script = self
            .settings
            .limit
            .call(&self.key, ctx.now(), wanted, partial, request);
        ctx.send(STORE, LimiterMessage::Eval { op, call: script });
        ctx.set_timer(op, self.settings.timeout);
        self.calls.insert(op, call);
        self.stats.round_trips += 1;
        op
    }

    /// Numbers this incarnation's calls from a random base, so that an answer meant for the
    /// gateway before a restart cannot be taken for one of its new calls.
    pub(super) fn on_start(&mut self, ctx: &mut Ctx<'_, LimiterNode>) {
        self.next_op = (ctx.rng().next_u64() >> 32) << 32;
    }

    pub(super) fn on_request(
        &mut self,
        r: ClientRequest<LimiterRequest>,
        ctx: &mut Ctx<'_, LimiterNode>,
    ) {
        let ideal = match r.body {
            LimiterRequest::Configure(settings) => {
                if settings.effective_mode() != LimiterMode::Leasing {
                    self.drop_lease();
                }
                self.settings = settings;
                if let Ok(bytes) = serde_json::to_vec(&settings) {
                    ctx.disk(DiskOp::Overwrite {
                        file: SETTINGS_FILE,
                        bytes,
                    });
                    ctx.disk(DiskOp::Fsync);
                }
                ctx.reply(r.client, r.id, Reply::Ok(LimiterResponse::Configured));
                return;
            }
            LimiterRequest::Admit { ideal } => ideal,
        };
        let w = Waiting {
            client: r.client,
            request: r.id,
            received_at: ctx.now(),
            ideal,
        };
        match self.settings.effective_mode() {
            LimiterMode::Central => {
                self.call_store(Call::Request(w), 1, false, r.id, ctx);
            }
            LimiterMode::Leasing => {
                let now = ctx.now();
                if self.lease_tokens(now) > 0 {
                    self.lease_tokens -= 1;
                    self.decide(w, true, Via::Lease, None, ctx);
                    return;
                }
                self.drop_lease();
                if self.waiting.len() >= MAX_WAITING {
                    self.decide(w, false, Via::QueueFull, None, ctx);
                    return;
                }
                self.waiting.push_back(w);
                if self.lease_call.is_none() {
                    let batch = self.settings.lease_batch;
                    self.lease_call = Some(self.call_store(Call::Lease, batch, true, r.id, ctx));
                }
            }
        }
    }

    /// Forgets leased tokens (expired, or no longer leasing).
    fn drop_lease(&mut self) {
        self.stats.tokens_dropped += self.lease_tokens;
        self.lease_tokens = 0;
    }

    pub(super) fn on_message(&mut self, msg: LimiterMessage, ctx: &mut Ctx<'_, LimiterNode>) {
        let LimiterMessage::EvalReply {
            op,
            reply,
            store_time,
        } = msg
        else {
            return;
        };
        let Some(call) = self.calls.remove(&op) else {
            self.stats.late_replies += 1;
            return;
        };
        ctx.cancel_timer(op);
        if let ScriptReply::Error { .. } = reply {
            self.stats.store_errors += 1;
        }
        match call {
            Call::Request(w) => match reply {
                ScriptReply::Error { .. } => self.by_policy(w, ctx),
                r => self.decide(w, r.granted() > 0, Via::Store, Some(store_time), ctx),
            },
            Call::Lease => {
                self.lease_call = None;
                if let ScriptReply::Error { .. } = reply {
                    while let Some(w) = self.waiting.pop_front() {
                        self.by_policy(w, ctx);
                    }
                    return;
                }
                let mut granted = reply.granted();
                self.stats.tokens_leased += granted;
                while let Some(w) = self.waiting.pop_front() {
                    if granted > 0 {
                        granted -= 1;
                        self.decide(w, true, Via::Lease, None, ctx);
                    } else {
                        // The store had fewer than the batch: it is empty now.
                        self.decide(w, false, Via::Store, Some(store_time), ctx);
                    }
                }
                if self.settings.effective_mode() == LimiterMode::Leasing {
                    self.lease_tokens = granted;
                    self.lease_expires = ctx.now() + self.settings.lease_ttl;
                } else {
                    self.stats.tokens_dropped += granted;
                }
            }
        }
    }

    pub(super) fn on_timer(&mut self, timer: TimerId, ctx: &mut Ctx<'_, LimiterNode>) {
        let Some(call) = self.calls.remove(&timer) else {
            return;
        };
        self.stats.timeouts += 1;
        match call {
            Call::Request(w) => self.by_policy(w, ctx),
            Call::Lease => {
                self.lease_call = None;
                while let Some(w) = self.waiting.pop_front() {
                    self.by_policy(w, ctx);
                }
            }
        }
    }
}

/// Every field, the decision log and the counters included: the lab's totals and its
/// over-admission check read the decisions, and each decision is numbered by the count.
impl Fingerprint for Gateway {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        let Gateway {
            id,
            key,
            settings,
            next_op,
            calls,
            lease_tokens,
            lease_expires,
            lease_call,
            waiting,
            log,
            decided,
            stats,
        } = self;
        id.hash(h);
        key.hash(h);
        settings.hash(h);
        next_op.hash(h);
        calls.hash(h);
        lease_tokens.hash(h);
        lease_expires.hash(h);
        lease_call.hash(h);
        waiting.hash(h);
        log.hash(h);
        decided.hash(h);
        stats.hash(h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SimRng;
    use crate::sim::node::Effect;
    use crate::time::Duration;

    type Effects = Vec<Effect<LimiterMessage, LimiterResponse>>;

    fn gateway(mode: LimiterMode, policy: FailurePolicy) -> Gateway {
        let settings = GatewaySettings {
            mode,
            policy,
            ..GatewaySettings::default()
        };
        let config = LimiterConfig {
            settings,
            key: "k".into(),
        };
        Gateway::recover(1, &config, &Disk::new())
    }

    /// Runs `f` on the gateway at `now`; returns the effects it wrote.
    fn handle(
        g: &mut Gateway,
        now: Time,
        f: impl FnOnce(&mut Gateway, &mut Ctx<'_, LimiterNode>),
    ) -> Effects {
        let mut rng = SimRng::new(0);
        let mut effects = Vec::new();
        let mut ctx = Ctx::new(1, now, 2, &mut rng, &mut effects);
        f(g, &mut ctx);
        effects
    }

    fn admit(id: RequestId) -> ClientRequest<LimiterRequest> {
        ClientRequest {
            client: 0,
            id,
            body: LimiterRequest::Admit { ideal: true },
        }
    }

    /// The op of the one `Eval` among `effects`.
    fn sent_op(effects: &Effects) -> u64 {
        let ops: Vec<u64> = effects
            .iter()
            .filter_map(|e| match e {
                Effect::Send {
                    to: STORE,
                    msg: LimiterMessage::Eval { op, .. },
                } => Some(*op),
                _ => None,
            })
            .collect();
        assert_eq!(ops.len(), 1, "{effects:?}");
        ops[0]
    }

    fn reply(op: u64, granted: u64) -> LimiterMessage {
        LimiterMessage::EvalReply {
            op,
            reply: ScriptReply::TokenBucket(
                crate::ratelimit::distributed::scripts::TokenBucketReply {
                    granted,
                    micro_tokens_left: 0,
                    retry_after_us: 0,
                },
            ),
            store_time: Time::from_millis(3),
        }
    }

    #[test]
    fn central_mode_asks_the_store_and_a_timeout_falls_to_the_policy() {
        for (policy, admitted, via) in [
            (FailurePolicy::FailOpen, true, Via::FailOpen),
            (FailurePolicy::FailClosed, false, Via::FailClosed),
        ] {
            let mut g = gateway(LimiterMode::Central, policy);
            let e = handle(&mut g, Time::ZERO, |g, c| g.on_request(admit(7), c));
            let op = sent_op(&e);
            handle(&mut g, Time::from_millis(5), |g, c| {
                g.on_message(reply(op, 1), c)
            });
            let d = g.log().back().copied().unwrap();
            assert_eq!(
                (d.admitted, d.via, d.store_time),
                (true, Via::Store, Some(Time::from_millis(3)))
            );
            assert_eq!(d.decided_at - d.received_at, Duration::from_millis(5));
            // The next call times out; its late answer is counted and ignored.
            let e = handle(&mut g, Time::from_millis(10), |g, c| {
                g.on_request(admit(8), c)
            });
            let op = sent_op(&e);
            handle(&mut g, Time::from_millis(60), |g, c| g.on_timer(op, c));
            let d = g.log().back().copied().unwrap();
            assert_eq!((d.admitted, d.via), (admitted, via));
            handle(&mut g, Time::from_millis(70), |g, c| {
                g.on_message(reply(op, 1), c)
            });
            assert_eq!(g.decided(), 2);
            assert_eq!(g.stats().late_replies, 1);
            assert_eq!(g.stats().timeouts, 1);
        }
    }

    #[test]
    fn fingerprints_follow_the_state_of_gateways_stores_and_messages() {
        let g = gateway(LimiterMode::Central, FailurePolicy::FailOpen);
        let again = gateway(LimiterMode::Central, FailurePolicy::FailOpen);
        assert_eq!(g.fingerprint(), again.fingerprint());
        let leasing = gateway(LimiterMode::Leasing, FailurePolicy::FailOpen);
        assert_ne!(g.fingerprint(), leasing.fingerprint());
        let mut asked = g.clone();
        let e = handle(&mut asked, Time::ZERO, |g, c| g.on_request(admit(7), c));
        assert_ne!(asked.fingerprint(), g.fingerprint());
        let op = sent_op(&e);
        let mut answered = asked.clone();
        handle(&mut answered, Time::from_millis(5), |g, c| {
            g.on_message(reply(op, 1), c)
        });
        let mut timed_out = asked.clone();
        handle(&mut timed_out, Time::from_millis(5), |g, c| {
            g.on_timer(op, c)
        });
        let states: std::collections::BTreeSet<u64> = [&g, &asked, &answered, &timed_out]
            .iter()
            .map(|g| g.fingerprint())
            .collect();
        assert_eq!(states.len(), 4);
        // The same state under another kind of node is another node.
        let node = LimiterNode::Gateway(Box::new(g.clone()));
        assert_eq!(node.fingerprint(), node.clone().fingerprint());
        let store = LimiterNode::Store(crate::ratelimit::distributed::store_node::StoreNode::new());
        assert_ne!(node.fingerprint(), store.fingerprint());
        assert_ne!(reply(op, 1).fingerprint(), reply(op, 2).fingerprint());
        assert_ne!(reply(op, 1).fingerprint(), reply(op + 1, 1).fingerprint());
    }

    #[test]
    fn leasing_holds_one_batch_at_most_and_serves_the_waiting_first() {
        let mut g = gateway(LimiterMode::Leasing, FailurePolicy::FailClosed);
        let e = handle(&mut g, Time::ZERO, |g, c| g.on_request(admit(1), c));
        let op = sent_op(&e);
        // A second request waits for the same lease: no second call.
        let e = handle(&mut g, Time::ZERO, |g, c| g.on_request(admit(2), c));
        assert!(e.iter().all(|e| !matches!(e, Effect::Send { .. })));
        assert_eq!(g.waiting(), 2);
        handle(&mut g, Time::from_millis(4), |g, c| {
            g.on_message(reply(op, 5), c)
        });
        assert_eq!(g.decided(), 2);
        assert_eq!(g.lease_tokens(Time::from_millis(4)), 3);
        // Spent locally, with no round trip, until the batch is gone.
        for id in 3..6 {
            let e = handle(&mut g, Time::from_millis(5), |g, c| {
                g.on_request(admit(id), c)
            });
            assert!(e.iter().all(|e| !matches!(e, Effect::Send { .. })));
        }
        assert_eq!(g.stats().round_trips, 1);
        assert!(g.log().iter().all(|d| d.admitted && d.via == Via::Lease));
        // A thin lease: one token for two waiting, the other is refused by the store.
        let e = handle(&mut g, Time::from_millis(6), |g, c| {
            g.on_request(admit(6), c)
        });
        let op = sent_op(&e);
        handle(&mut g, Time::from_millis(6), |g, c| {
            g.on_request(admit(7), c)
        });
        handle(&mut g, Time::from_millis(9), |g, c| {
            g.on_message(reply(op, 1), c)
        });
        let last: Vec<(bool, Via)> = g
            .log()
            .iter()
            .rev()
            .take(2)
            .map(|d| (d.admitted, d.via))
            .collect();
        assert_eq!(last, vec![(false, Via::Store), (true, Via::Lease)]);
        // Leased tokens expire unspent.
        let e = handle(&mut g, Time::from_millis(10), |g, c| {
            g.on_request(admit(8), c)
        });
        let op = sent_op(&e);
        handle(&mut g, Time::from_millis(12), |g, c| {
            g.on_message(reply(op, 5), c)
        });
        assert_eq!(g.lease_tokens(Time::from_millis(2_000)), 0);
    }
}
