//! `cache.distributed`: cache nodes on a consistent-hash ring with a replication factor,
//! node add / remove with data migration, and hinted reads during a migration — the
//! partitioning and membership of Amazon's Dynamo (DeCandia et al., SOSP 2007, §4.2–4.3,
//! §4.9) applied to a cache. [`node`] is the sans-I/O node, [`lab`] its cluster lab.

pub mod lab;
pub mod node;
pub mod soak;

pub use node::{CacheNode, CacheNodeConfig, Versioned};
