//! Service registry with TTL heartbeats (catalog id `coordination.registry`), and the two
//! ways of discovering through it.
//!
//! The semantics are Netflix Eureka's (the Eureka wiki, "Understanding eureka client
//! server communication" and "Server Self Preservation Mode"; `Lease`,
//! `AbstractInstanceRegistry.evict` and `DiscoveryClient` in Netflix/eureka): an instance
//! registers, then renews its lease every heartbeat (`leaseRenewalIntervalInSeconds`, 30 s);
//! a lease not renewed within its TTL (`leaseExpirationDurationInSeconds`, 90 s) is expired,
//! and the registry drops expired leases in a periodic eviction sweep
//! (`evictionIntervalTimerInMs`, 60 s) — until then it still lists them. Clients fetch the
//! whole list every refresh period (`registryFetchIntervalSeconds`, 30 s) and route from
//! their cache; a renewal the registry does not know is answered "unknown" and the instance
//! registers again. Self-preservation (Eureka's `renewalPercentThreshold`, 85 %) is
//! optional: a sweep evicts nothing while fewer renewals arrived than that share of those
//! expected — here counted over the sweep period, where Eureka counts the last minute.
//! A Consul TTL check (`check.ttl`, passed by the service through
//! `/v1/agent/check/pass`) is the same lease with an eviction period near zero: the check
//! turns critical as the TTL runs out. Two simplifications, stated: the lease is the
//! intended `last renewal + TTL` (Eureka's `Lease.isExpired` documents that its own renewal
//! bookkeeping makes it about twice that), and the registry is one server (Eureka peers
//! replicate; Consul servers run Raft).
//!
//! Two kinds of discovery share the cluster: **client-side** — each client caches the list
//! and picks an instance (Eureka + Ribbon); **server-side** — clients send requests to a
//! router that caches the list itself and picks (an AWS ELB, or nginx / Envoy fed from
//! the registry). Both go stale in the same way, each at its own refresh period.
//!
//! Stale entries after a partition, the point of the lab: an instance cut off from the
//! registry is evicted after its TTL while it still serves; a client cut off from the
//! registry keeps routing from its cache — to an instance that died, for as long as the
//! partition lasts. Without partitions a crash is routed to for at most
//! `TTL + eviction period + refresh + 3 × max latency` ([`audit`] derives it).
//!
//! - [`node`]: the registry, instances, clients and router.
//! - [`audit`]: judges every route against the simulator's truth; the two invariants.
//! - [`lab`], [`soak`].
//!
//! Cost: a renewal is two messages per instance per heartbeat; a fetch carries the whole
//! list (O(instances)) per client per refresh — why Eureka fetches deltas and why the
//! refresh cannot be short with many clients.

pub mod audit;
pub mod lab;
pub mod node;
pub mod soak;
