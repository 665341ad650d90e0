//! Version vectors for a Dynamo-style store: the concurrent versions (siblings) of one
//! key on one replica, and how reads, writes and anti-entropy reconcile them.
//!
//! What is built: **dotted version vectors** (Preguiça, Baquero, Almeida, Fonte &
//! Gonçalves 2010/2012, "Dotted Version Vectors: Logical Clocks for Optimistic
//! Replication", arXiv:1011.5808), the clocks Riak adopted. Each sibling carries a *dot* —
//! the one event that wrote it, `(server, counter)` — and the version vector of the
//! context its client had read. Why not plain version vectors: with one entry per
//! *server*, two clients writing through one server with the same context get `{s: 1}`
//! then `{s: 2}`, and the second looks like it descends from the first — a concurrent
//! update silently lost (the property test below checks that dots never lose one); with
//! one entry per *client* the concurrency is caught but every vector grows with the number
//! of clients that ever wrote. A dot separates "the event that made this version" from
//! "what its writer had seen", so vectors stay one entry per server and concurrent writes
//! through one server stay siblings.
//!
//! Operations (the paper's kernel): `put(server, context, value)` makes a dot one past
//! every event of `server` known here and in `context`, and drops each sibling whose dot
//! the context covers (the writer had seen it); `get` returns the siblings and their joined
//! context; `sync` merges two replicas' siblings, keeping the ones no other covers. A
//! client reconciles by reading the siblings, merging their values as it sees fit, and
//! writing back with the joined context — the siblings collapse to one. Costs: O(k·s) for
//! s siblings and k servers.

use serde::{Deserialize, Serialize};

use crate::consistency::vector_clock::{ProcessId, VectorClock};
use crate::error::{DistlabError, Result};

/// The write event that made a version: the `counter`-th write coordinated by `server`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Dot {
    pub server: ProcessId,
    pub counter: u64,
}

/// One concurrent version of a key: its dot, what its writer had seen, and the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sibling<V> {
    pub dot: Dot,
    /// The context the writer supplied: every version it had read (and their pasts).
    pub context: VectorClock,
    pub value: V,
}

impl<V> Sibling<V> {
    /// Whether this version's causal history (its context plus its own dot) holds `dot`.
    pub fn covers(&self, dot: Dot) -> bool {
        self.dot == dot || self.context.get(dot.server) >= dot.counter
    }
}

/// The siblings of one key on one replica: versions none of which descends from another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    bound(deserialize = "V: Deserialize<'de>"),
    rename_all = "camelCase",
    deny_unknown_fields
)]
pub struct Siblings<V> {
    /// In dot order, so equal states are equal values.
    versions: Vec<Sibling<V>>,
}

impl<V> Default for Siblings<V> {
    fn default() -> Self {
        Siblings {
            versions: Vec::new(),
        }
    }
}

/// What a read returns: the siblings' values and the context to write back with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Read<'a, V> {
    pub values: Vec<&'a V>,
    pub context: VectorClock,
}

impl<V: Clone> Siblings<V> {
    pub fn new() -> Self {
        Siblings::default()
    }

    /// The versions, in dot order.
    pub fn versions(&self) -> &[Sibling<V>] {
        &self.versions
    }

    pub fn len(&self) -> usize {
        self.versions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    /// The join of every sibling's history: everything a read here has seen. Writing back
    /// with it replaces every sibling.
    pub fn context(&self) -> VectorClock {
        let mut joined = VectorClock::new();
        for s in &self.versions {
            joined.merge(&s.context);
            // The paper's join of one dotted clock: its context with the dot's entry set.
            joined.raise(s.dot.server, s.dot.counter);
        }
        joined
    }

    /// A read: the values (one per sibling) and the context to write back with.
    pub fn get(&self) -> Read<'_, V> {
        Read {
            values: self.versions.iter().map(|s| &s.value).collect(),
            context: self.context(),
        }
    }

    /// A write coordinated by `server` from a client that had read `context`: the new
    /// version replaces every sibling the context covers and stays beside the others.
    /// Returns the new version's dot. Errors (state unchanged) when `server`'s counter
    /// would overflow.
    pub fn put(&mut self, server: ProcessId, context: &VectorClock, value: V) -> Result<Dot> {
        let known = self.context().get(server).max(context.get(server));
        let counter = known.checked_add(1).ok_or_else(|| {
            DistlabError::InvalidState(format!("server {server}'s write counter would overflow"))
        })?;
        let dot = Dot { server, counter };
        self.versions
            .retain(|s| context.get(s.dot.server) < s.dot.counter);
        self.insert(Sibling {
            dot,
            context: context.clone(),
            value,
        });
        Ok(dot)
    }

    /// Anti-entropy: takes in `other`'s versions; a version survives unless a version on
    /// either side covers it.
    pub fn sync(&mut self, other: &Siblings<V>) {
        let mut all: Vec<Sibling<V>> = std::mem::take(&mut self.versions);
        for s in &other.versions {
            if !all.iter().any(|a| a.dot == s.dot) {
                all.push(s.clone());
            }
        }
        let keep: Vec<bool> = all
            .iter()
            .map(|s| !all.iter().any(|o| o.dot != s.dot && o.covers(s.dot)))
            .collect();
        for (s, keep) in all.into_iter().zip(keep) {
            if keep {
                self.insert(s);
            }
        }
    }

    fn insert(&mut self, s: Sibling<V>) {
        let at = self.versions.partition_point(|o| o.dot < s.dot);
        self.versions.insert(at, s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn concurrent_writes_through_one_server_stay_siblings() {
        let mut s = Siblings::new();
        let empty = VectorClock::new();
        s.put(0, &empty, "a").unwrap();
        s.put(0, &empty, "b").unwrap();
        let r = s.get();
        assert_eq!(r.values, vec![&"a", &"b"]);
        // Reconciling: write back with the joined context; both collapse into one.
        let ctx = r.context;
        s.put(1, &ctx, "a+b").unwrap();
        assert_eq!(s.get().values, vec![&"a+b"]);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn a_write_keeps_what_its_context_had_not_seen() {
        let mut a = Siblings::new();
        a.put(0, &VectorClock::new(), 1).unwrap();
        let ctx = a.get().context;
        a.put(0, &VectorClock::new(), 2).unwrap();
        // Written with a context that saw only the first: replaces it, keeps 2.
        a.put(1, &ctx, 3).unwrap();
        assert_eq!(a.get().values, vec![&2, &3]);
    }

    /// A random trace against the truth: clients read from a replica, write through any
    /// server with the context they read, replicas sync at random. Each write knows the
    /// writes its context had seen (transitively). After every replica syncs with every
    /// other, the siblings are exactly the writes no other write had seen: none lost,
    /// none kept that was overwritten.
    #[derive(Debug, Clone)]
    enum Step {
        Read { client: usize, replica: usize },
        Write { client: usize, server: usize },
        Sync { from: usize, to: usize },
    }

    fn step(replicas: usize, clients: usize) -> impl Strategy<Value = Step> {
        prop_oneof![
            (0..clients, 0..replicas).prop_map(|(client, replica)| Step::Read { client, replica }),
            (0..clients, 0..replicas).prop_map(|(client, server)| Step::Write { client, server }),
            (0..replicas, 0..replicas).prop_map(|(from, to)| Step::Sync { from, to }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn no_concurrent_update_is_lost_and_no_overwritten_one_kept(
            steps in proptest::collection::vec(step(3, 3), 0..60)
        ) {
            let mut replicas: Vec<Siblings<usize>> = vec![Siblings::new(); 3];
            // Per client: the context it last read and the writes that context had seen.
            let mut clients: Vec<(VectorClock, BTreeSet<usize>)> =
                vec![(VectorClock::new(), BTreeSet::new()); 3];
            // Per write: the writes it overwrote (its writer had seen).
            let mut seen: Vec<BTreeSet<usize>> = Vec::new();
            for s in steps {
                match s {
                    Step::Read { client, replica } => {
                        let r = replicas[replica].get();
                        let mut knew = BTreeSet::new();
                        for &&w in &r.values {
                            knew.insert(w);
                            knew.extend(seen[w].iter().copied());
                        }
                        clients[client] = (r.context, knew);
                    }
                    Step::Write { client, server } => {
                        let id = seen.len();
                        let (ctx, knew) = clients[client].clone();
                        replicas[server].put(server as u32, &ctx, id).unwrap();
                        seen.push(knew);
                    }
                    Step::Sync { from, to } => {
                        let other = replicas[from].clone();
                        replicas[to].sync(&other);
                    }
                }
                // At every replica, no sibling has overwritten another.
                for r in &replicas {
                    for a in r.versions() {
                        for b in r.versions() {
                            prop_assert!(!seen[a.value].contains(&b.value));
                        }
                    }
                }
            }
            for i in 0..3 {
                for j in 0..3 {
                    let other = replicas[j].clone();
                    replicas[i].sync(&other);
                }
            }
            let overwritten: BTreeSet<usize> = seen.iter().flatten().copied().collect();
            let expected: Vec<usize> =
                (0..seen.len()).filter(|w| !overwritten.contains(w)).collect();
            for r in &replicas {
                let got: Vec<usize> = r.versions().iter().map(|s| s.value).collect();
                let mut got_sorted = got.clone();
                got_sorted.sort_unstable();
                prop_assert_eq!(&got_sorted, &expected);
                prop_assert_eq!(r, &replicas[0]);
            }
        }

        /// A write with the joined context dominates: whatever the siblings, one remains.
        #[test]
        fn siblings_collapse_on_a_dominating_write(
            steps in proptest::collection::vec(step(3, 3), 0..40),
            server in 0u32..3,
        ) {
            let mut replicas: Vec<Siblings<u32>> = vec![Siblings::new(); 3];
            let mut ctxs = vec![VectorClock::new(); 3];
            for s in steps {
                match s {
                    Step::Read { client, replica } => ctxs[client] = replicas[replica].get().context,
                    Step::Write { client, server } => {
                        replicas[server].put(server as u32, &ctxs[client], 0).unwrap();
                    }
                    Step::Sync { from, to } => {
                        let other = replicas[from].clone();
                        replicas[to].sync(&other);
                    }
                }
            }
            let r = &mut replicas[server as usize];
            let ctx = r.get().context;
            let dot = r.put(server, &ctx, 1).unwrap();
            prop_assert_eq!(r.len(), 1);
            prop_assert_eq!(r.versions()[0].dot, dot);
            prop_assert_eq!(r.get().values, vec![&1]);
        }
    }
}
