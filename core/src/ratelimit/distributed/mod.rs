//! Lab `ratelimit.distributed`: one rate limit shared by N gateway nodes through a store
//! node that runs the limiter as an atomic script, the way Redis runs a Lua script
//! (`EVALSHA`: one message in, the whole script in one event, one reply out).
//!
//! - [`store`]: the small Redis subset the scripts use, with expiry on the store's clock.
//! - [`scripts`]: the two Lua scripts shipped in `scripts/` (token bucket, sliding window)
//!   and their native twins, checked against a real `redis-server` by
//!   `tests/tests/redis_scripts.rs`.
//! - [`store_node`] and [`gateway`]: the simulator's nodes ([`node`] joins them);
//!   [`settings`]: what gateways are told (limit, mode, fail-open / fail-closed).
//! - [`envelope`]: over-admission against the global limit, checked on every admission.
//! - [`lab`]: the lab.
//!
//! The variants follow the usual designs of distributed rate limiting (Stripe's and
//! GitHub's Redis-backed limiters; Envoy's global rate limit service; the "local quota
//! leasing" of Google's Doorman): a central store that is exact and costs a round trip,
//! leased batches that are fast and approximate, and a policy for when the store cannot be
//! reached — fail open (admit) or fail closed (refuse).

mod envelope;
mod gateway;
pub mod lab;
pub mod node;
pub mod scripts;
pub mod settings;
pub mod store;
mod store_node;

pub use lab::{DistributedLab, DistributedLabAction, DistributedLabConfig};
