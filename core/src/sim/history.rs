//! Client histories: what each client asked, of which node, when, and what came back.
//! This is the raw material for the linearizability checker.

use serde::Serialize;

use crate::sim::node::{ClientId, NodeId, RequestId};
use crate::time::Time;

/// How a client operation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Outcome<R> {
    /// No answer yet.
    Pending,
    /// The node answered with a result; the operation took effect.
    Ok { value: R, at: Time },
    /// The node said the operation did not take effect.
    Fail { reason: String, at: Time },
    /// The client gave up: the operation may or may not have taken effect.
    Timeout { at: Time },
}

/// One client operation from invocation to outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientOp<Q, R> {
    pub client: ClientId,
    pub request: RequestId,
    pub node: NodeId,
    pub body: Q,
    pub invoked: Time,
    pub outcome: Outcome<R>,
}

impl<Q, R> ClientOp<Q, R> {
    pub fn is_pending(&self) -> bool {
        matches!(self.outcome, Outcome::Pending)
    }
}
