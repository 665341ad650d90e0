//! The cluster's nodes and what they say to each other: node 0 is the store, nodes 1..=N
//! the gateways. A gateway sends the store one `Eval` (the script, its key and arguments:
//! `EVALSHA` in one message); the store runs it whole in that one event and sends back one
//! `EvalReply`, stamped with its clock.

use serde::{Deserialize, Serialize};
use std::hash::{Hash, Hasher};

use crate::ratelimit::distributed::gateway::Gateway;
use crate::ratelimit::distributed::scripts::{ScriptCall, ScriptReply};
use crate::ratelimit::distributed::settings::GatewaySettings;
use crate::ratelimit::distributed::store_node::StoreNode;
use crate::sim::disk::Disk;
use crate::sim::node::{ClientRequest, Ctx, Fingerprint, Node, NodeId, TimerId};
use crate::sim::trace::StableHasher;
use crate::time::Time;

/// The store's node id.
pub const STORE: NodeId = 0;

/// Gateway ⇄ store messages.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LimiterMessage {
    /// Run `call` atomically; `op` names the answer.
    Eval { op: u64, call: ScriptCall },
    /// What the script answered, and the store's clock when it ran.
    EvalReply {
        op: u64,
        reply: ScriptReply,
        store_time: Time,
    },
}

/// What clients ask a gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimiterRequest {
    /// May this request pass? `ideal` is what one exact limiter seeing every request at its
    /// arrival would have said: bookkeeping for the lab, which the gateway only passes on.
    Admit { ideal: bool },
    /// New settings (the operator's push); the gateway keeps them on disk.
    Configure(GatewaySettings),
}

/// How a gateway reached its decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Via {
    /// The store's script answered.
    Store,
    /// Spent from a leased batch.
    Lease,
    /// The store did not answer in time; the policy admitted.
    FailOpen,
    /// The store did not answer in time; the policy refused.
    FailClosed,
    /// Too many requests already waiting for a lease.
    QueueFull,
}

impl Via {
    pub const ALL: [Via; 5] = [
        Via::Store,
        Via::Lease,
        Via::FailOpen,
        Via::FailClosed,
        Via::QueueFull,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Via::Store => "store",
            Via::Lease => "lease",
            Via::FailOpen => "fail-open",
            Via::FailClosed => "fail-closed",
            Via::QueueFull => "queue full",
        }
    }
}

/// A gateway's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum LimiterResponse {
    Decision { admitted: bool, via: Via },
    Configured,
}

/// What every node is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimiterConfig {
    /// The gateways' settings until told otherwise.
    pub settings: GatewaySettings,
    /// The key every gateway limits on (one global limit).
    pub key: String,
}

/// A node of the limiter's cluster.
#[derive(Debug, Clone)]
pub enum LimiterNode {
    Store(StoreNode),
    Gateway(Box<Gateway>),
}

impl LimiterNode {
    pub fn as_gateway(&self) -> Option<&Gateway> {
        match self {
            LimiterNode::Gateway(g) => Some(g),
            LimiterNode::Store(_) => None,
        }
    }
    pub fn as_store(&self) -> Option<&StoreNode> {
        match self {
            LimiterNode::Store(s) => Some(s),
            LimiterNode::Gateway(_) => None,
        }
    }
}

impl Fingerprint for LimiterMessage {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        self.hash(h);
    }
}

/// Which kind of node, then its state (see [`StoreNode`]'s and [`Gateway`]'s).
impl Fingerprint for LimiterNode {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        match self {
            LimiterNode::Store(s) => {
                h.write_u8(0);
                s.fingerprint_into(h);
            }
            LimiterNode::Gateway(g) => {
                h.write_u8(1);
                g.fingerprint_into(h);
            }
        }
    }
}

impl Node for LimiterNode {
    type Message = LimiterMessage;
    type Request = LimiterRequest;
    type Response = LimiterResponse;
    type Config = LimiterConfig;

    fn recover(id: NodeId, config: &LimiterConfig, disk: &Disk) -> Self {
        if id == STORE {
            LimiterNode::Store(StoreNode::new())
        } else {
            LimiterNode::Gateway(Box::new(Gateway::recover(id, config, disk)))
        }
    }

    fn on_start(&mut self, ctx: &mut Ctx<'_, Self>) {
        match self {
            LimiterNode::Store(s) => s.on_start(ctx),
            LimiterNode::Gateway(g) => g.on_start(ctx),
        }
    }

    fn on_message(&mut self, from: NodeId, msg: LimiterMessage, ctx: &mut Ctx<'_, Self>) {
        match self {
            LimiterNode::Store(s) => s.on_message(from, msg, ctx),
            LimiterNode::Gateway(g) => g.on_message(msg, ctx),
        }
    }

    fn on_timer(&mut self, timer: TimerId, ctx: &mut Ctx<'_, Self>) {
        match self {
            LimiterNode::Store(s) => s.on_timer(ctx),
            LimiterNode::Gateway(g) => g.on_timer(timer, ctx),
        }
    }

    fn on_request(&mut self, request: ClientRequest<LimiterRequest>, ctx: &mut Ctx<'_, Self>) {
        match self {
            LimiterNode::Store(_) => ctx.reply(
                request.client,
                request.id,
                crate::sim::Reply::Fail("the store takes scripts from gateways only".into()),
            ),
            LimiterNode::Gateway(g) => g.on_request(request, ctx),
        }
    }

    fn message_kind(msg: &LimiterMessage) -> &'static str {
        match msg {
            LimiterMessage::Eval {
                call: ScriptCall::TokenBucket { args, .. },
                ..
            } if args.partial => "lease",
            LimiterMessage::Eval { .. } => "evalsha",
            LimiterMessage::EvalReply { reply, .. } if reply.granted() > 0 => "granted",
            LimiterMessage::EvalReply { .. } => "denied",
        }
    }

    fn role(&self) -> &'static str {
        match self {
            LimiterNode::Store(_) => "store",
            LimiterNode::Gateway(_) => "gateway",
        }
    }
}
