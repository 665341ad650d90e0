//! Consensus protocols (catalog section `consensus`): replicated state machines that keep
//! a majority of nodes agreeing on one sequence of commands despite crashes, partitions
//! and lost, duplicated or reordered messages.
//!
//! - [`raft`]: Raft (Ongaro & Ousterhout, USENIX ATC 2014; Ongaro's PhD thesis, Stanford
//!   2014), with pre-vote, check-quorum, durable state on the simulated disk and a
//!   replicated key-value store with client sessions.
//! - [`twopc`]: two-phase commit (Gray 1978; Bernstein, Hadzilacos & Goodman 1987), with
//!   durable prepared state and decisions and cooperative termination.
//! - [`threepc`]: three-phase commit (Skeen 1981) with the termination protocol of Skeen &
//!   Stonebraker (1983): non-blocking under crashes, split by partitions.
//! - [`paxos`]: single-decree Paxos (Lamport, "Paxos Made Simple", 2001) and Multi-Paxos
//!   with a stable leader, slots and the replicated key-value store.
//! - [`vr`]: Viewstamped Replication Revisited (Liskov & Cowling 2012): normal operation,
//!   view changes, recovery with nonces and the client table, in memory.
//! - [`pbft`]: Practical Byzantine Fault Tolerance (Castro & Liskov, OSDI 1999) with
//!   view changes, checkpoints and watermarks, and selectable lying replicas.

pub mod kv_clients;
pub mod kv_soak;
pub mod paxos;
pub mod pbft;
pub mod raft;
pub mod threepc;
pub mod twopc;
pub mod vr;
pub mod zab;
