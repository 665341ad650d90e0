//! Every protocol's long fault soak, by its id: the one table that the soak driver
//! (tests/src/bin/soak.rs) dispatches on and `cargo xtask soak` checks an id against.
//!
//! A protocol joins by implementing [`Soak`] on its soak options (whose `ID` is the name on
//! the command line) and by one line in the table below.

use crate::sim::soak::Soak;

/// Something done with one soak whatever its options type: run seeds, merge shard
/// summaries...
pub trait SoakVisitor {
    type Output;
    fn visit<S: Soak>(self) -> Self::Output;
}

macro_rules! soak_table {
    ($($options:ty),* $(,)?) => {
        /// The id of every soak, in the order the driver lists them.
        pub const IDS: &[&str] = &[$(<$options as Soak>::ID),*];

        /// Runs `visitor` on the soak named `id`, or `None` if no soak has that id.
        pub fn visit<V: SoakVisitor>(id: &str, visitor: V) -> Option<V::Output> {
            $(
                if id == <$options as Soak>::ID {
                    return Some(visitor.visit::<$options>());
                }
            )*
            None
        }
    };
}

soak_table!(
    crate::consensus::raft::soak::SoakOptions,
    crate::consensus::twopc::soak::SoakOptions,
    crate::consensus::threepc::soak::SoakOptions,
    crate::consensus::paxos::soak::SoakOptions,
    crate::consensus::vr::soak::SoakOptions,
    crate::consensus::zab::soak::SoakOptions,
    crate::consensus::pbft::soak::SoakOptions,
    crate::coordination::redlock::soak::SoakOptions,
    crate::cache::distributed::soak::SoakOptions,
    crate::cache::patterns::soak::SoakOptions,
    crate::cache::multilevel::soak::SoakOptions,
    crate::consistency::quorum::soak::SoakOptions,
    crate::consistency::replication::soak::SoakOptions,
    crate::coordination::snapshot::soak::SoakOptions,
    crate::coordination::leader_election::soak::SoakOptions,
    crate::coordination::registry::soak::SoakOptions,
);

#[cfg(test)]
mod tests {
    use super::*;

    struct Id;
    impl SoakVisitor for Id {
        type Output = &'static str;
        fn visit<S: Soak>(self) -> &'static str {
            S::ID
        }
    }

    #[test]
    fn every_id_is_unique_and_finds_its_own_soak() {
        for (i, id) in IDS.iter().enumerate() {
            assert!(!IDS[..i].contains(id), "{id} is listed twice");
            assert_eq!(visit(id, Id), Some(*id));
        }
        assert_eq!(visit("no-such-soak", Id), None);
    }
}
