//! The store node: a Redis with no persistence (`--save "" --appendonly no`), so a crash
//! loses every bucket and the limiter restarts from full ones. It runs each `Eval` whole in
//! the event that delivers it and answers at once, with its clock as the script's `now`
//! (what `redis.call('TIME')` would give; passed as an argument, it keeps the script
//! deterministic). Ten times a second it frees expired keys, as Redis's active expiry does
//! at its default `hz 10`.

use std::hash::Hash;

use crate::ratelimit::distributed::node::{LimiterMessage, LimiterNode};
use crate::ratelimit::distributed::scripts::ScriptCall;
use crate::ratelimit::distributed::store::RedisStore;
use crate::sim::node::{Ctx, Fingerprint, NodeId, TimerId};
use crate::sim::trace::StableHasher;
use crate::time::{Duration, Time};

const EXPIRE_TIMER: TimerId = 0;
const EXPIRE_EVERY: Duration = Duration::from_millis(100);

/// The store's volatile state.
#[derive(Debug, Clone, Default)]
pub struct StoreNode {
    store: RedisStore,
    scripts_run: u64,
    granted: u64,
}

impl StoreNode {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn store(&self) -> &RedisStore {
        &self.store
    }
    /// Scripts run since the last boot.
    pub fn scripts_run(&self) -> u64 {
        self.scripts_run
    }
    /// Tokens (or requests) granted since the last boot.
    pub fn granted(&self) -> u64 {
        self.granted
    }

    pub(super) fn on_start(&mut self, ctx: &mut Ctx<'_, LimiterNode>) {
        ctx.set_timer(EXPIRE_TIMER, EXPIRE_EVERY);
    }

    pub(super) fn on_timer(&mut self, ctx: &mut Ctx<'_, LimiterNode>) {
        self.store.expire_due(ctx.now());
        ctx.set_timer(EXPIRE_TIMER, EXPIRE_EVERY);
    }

    pub(super) fn on_message(
        &mut self,
        from: NodeId,
        msg: LimiterMessage,
        ctx: &mut Ctx<'_, LimiterNode>,
    ) {
        let LimiterMessage::Eval { op, call } = msg else {
            return;
        };
        let now = ctx.now();
        let reply = with_now(call, now).run(&mut self.store, now);
        self.scripts_run += 1;
        self.granted += reply.granted();
        ctx.send(
            from,
            LimiterMessage::EvalReply {
                op,
                reply,
                store_time: now,
            },
        );
    }
}

/// Every field: the keyspace (with each key's expiry) and the counters, which the view
/// shows and an invariant may read.
impl Fingerprint for StoreNode {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        let StoreNode {
            store,
            scripts_run,
            granted,
        } = self;
        store.hash(h);
        scripts_run.hash(h);
        granted.hash(h);
    }
}

/// The call with the store's clock as its `now` argument.
fn with_now(mut call: ScriptCall, now: Time) -> ScriptCall {
    match &mut call {
        ScriptCall::TokenBucket { args, .. } => args.now_us = now.0,
        ScriptCall::SlidingWindow { args, .. } => args.now_us = now.0,
    }
    call
}
