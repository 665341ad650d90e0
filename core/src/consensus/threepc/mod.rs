//! Three-phase commit (catalog id `consensus.3pc`): Skeen, "Nonblocking Commit Protocols"
//! (SIGMOD 1981), the central-site protocol — CanCommit / vote, PreCommit / ack,
//! DoCommit — with the termination protocol of Skeen & Stonebraker, "A Formal Model of
//! Crash Recovery in a Distributed System" (IEEE TSE 1983): when the coordinator falls
//! silent, a backup coordinator elected among the participants polls their states and
//! decides. Atomicity is TLA+ TCommit's `TCConsistent` (Lamport & Gray, "Consensus on
//! Transaction Commit", 2006), checked by the two-phase commit's checker.
//!
//! Three-phase commit does not block under crash failures: no participant can be
//! committed while another live one is still uncertain, so the survivors can always
//! decide. It does not survive partitions: the two sides each run the termination
//! protocol and may decide differently — the split the soak finds on purpose.
//!
//! - [`node`]: the coordinator and participants as simulator nodes, durable on their
//!   disks (a [`crate::sim::records`] log).
//! - [`harness`]: a cluster with a client, the atomicity checker, the longest time a live
//!   participant stayed undecided.
//! - [`soak`]: one seed of the fault soak, as a pure function of the seed.
//! - [`lab`]: the `consensus.3pc` lab.
//! - [`lessons`]: its lesson, a crash that does not block and a partition that splits.
//!
//! Cost: one transaction is 6(n − 1) messages (CanCommit, vote, PreCommit, ack, decision,
//! ack) and two fsyncs at each participant; the termination protocol adds a poll, reports
//! and a round of PreCommits.

pub mod harness;
pub mod lab;
pub mod lessons;
pub mod node;
pub mod soak;

pub use harness::{Harness, Workload};
pub use node::{
    COORDINATOR, Message, Phase, ReportedState, ThreePcNode, ThreePcParams, TxId, TxRequest,
};
