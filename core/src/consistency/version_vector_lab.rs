//! Lab `consistency.version-vector`: a Dynamo-style store (DeCandia et al. 2007, §4.4 —
//! the shopping cart whose concurrent versions are kept as siblings and merged by the
//! client) whose replicas version each key with the **dotted version vectors** of
//! [`super::version_vector`] (Preguiça et al. 2010/2012). That is what the core has: one
//! entry per server in every vector, and a dot per version for the write that made it.
//!
//! Clients work in read–modify–write loops: each client's arrival is its next step — a
//! read at a random replica (it keeps the context and the siblings it saw), then a write
//! through a random replica with that context, which replaces exactly the versions the
//! read saw: when the read surfaced several siblings the write reconciles them. A share of
//! writes is blind (no context: a client that never read), which always leaves a sibling.
//! Replicas diverge between anti-entropy rounds: every `syncEveryMs` a random pair
//! exchanges its versions, and a version survives unless the other side's covers it.
//!
//! Every write is numbered, and the lab keeps the truth beside the clocks: a write is
//! *live* until a later write whose client had read it replaces it. Invariants, checked
//! after every event: no live write is missing from every replica (no concurrent update
//! lost), and replicas that have converged hold exactly the live writes (nothing
//! overwritten kept).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::hash::Hasher;

use crate::bounded::{Count, Millis, Probability};
use crate::consistency::vector_clock::VectorClock;
use crate::consistency::version_vector::{Dot, Siblings};
use crate::error::{DistlabError, Result};
use crate::lab::local::{DrivenLab, LocalLab, Moment};
use crate::lab::sampling::{Sampled, Sampler, per_second};
use crate::lab::settings::local_lab_config;
use crate::lab::view::{InvariantStatus, NodeView, Panel, View};
use crate::rng::SimRng;
use crate::sim::trace::StableHasher;
use crate::sim::workload::ArrivalProcess;
use crate::time::{Duration, Time};

/// The most replicas.
pub const MAX_REPLICAS: u32 = 8;
/// Operations listed and traced (the newest).
const OPS_KEPT: usize = 16;
const TRACE_KEPT: usize = 2_000;

local_lab_config! {
    /// Configuration of the version-vector lab.
    pub struct VersionVectorLabConfig {
        /// When a client takes its next step (a read, or the write after it).
        pub arrivals: ArrivalProcess = ArrivalProcess::Poisson { rate_per_sec: 20.0 },
        pub replicas: Count<2, { MAX_REPLICAS }> = Count::of(3),
        /// Clients (one more, the last, is yours: the read and write actions).
        pub clients: Count<1, 16> = Count::of(4),
        pub keys: Count<1, 8> = Count::of(1),
        /// Share of writes made without reading first.
        pub blind_write_share: Probability = Probability::of(0.1),
        /// How often a random pair of replicas runs anti-entropy.
        pub sync_every_ms: Millis<1, 60_000> = Millis::of(500),
    }
}

/// What can be done. JSON: `{"type": "read", "replica": 0, "key": "k0"}`,
/// `{"type": "write", "replica": 1, "key": "k0"}`, `{"type": "sync", "from": 0, "to": 1}`,
/// `{"type": "syncAll"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum VersionVectorLabAction {
    /// Your client reads `key` at `replica` and keeps its context.
    Read { replica: u32, key: String },
    /// Your client writes `key` through `replica` with the context it last read (none:
    /// a blind write), replacing what that read saw.
    Write { replica: u32, key: String },
    /// `to` takes in `from`'s versions.
    Sync { from: u32, to: u32 },
    /// Every replica takes in every other's: they converge.
    SyncAll {},
}

/// What a client read last, for the write that follows.
#[derive(Debug, Clone, Default, PartialEq)]
struct Context {
    key: String,
    clock: VectorClock,
    /// The writes the read returned (the siblings its write will replace).
    saw: Vec<u64>,
}

/// A write the lab still shows: live, or held by some replica.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct WriteInfo {
    client: u32,
    replica: u32,
    dot: Dot,
    /// The writes it replaced (two or more: a reconciliation).
    replaced: Vec<u64>,
}

/// One operation, for the table and the trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct OpRow {
    step: u64,
    at_us: u64,
    what: String,
}

/// Running totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionVectorTotals {
    pub reads: u64,
    /// Reads that returned two or more siblings.
    pub reads_with_siblings: u64,
    pub writes: u64,
    /// Writes that replaced two or more siblings.
    pub reconciliations: u64,
    pub syncs: u64,
}

/// The version-vector lab.
#[derive(Debug, Clone)]
pub struct VersionVectorLab {
    /// Per replica, per key, the siblings; a version's value is its write's number.
    replicas: Vec<BTreeMap<String, Siblings<u64>>>,
    keys: u32,
    blind_write_share: f64,
    sync_every: Duration,
    next_sync: Time,
    /// Per client, the context of its last read, until it writes.
    contexts: Vec<Option<Context>>,
    rng: SimRng,
    next_write: u64,
    /// Per key, the writes no later write has replaced.
    live: BTreeMap<String, BTreeSet<u64>>,
    info: BTreeMap<u64, WriteInfo>,
    totals: VersionVectorTotals,
    lost: Option<String>,
    kept: Option<String>,
    ops: VecDeque<OpRow>,
    hasher: StableHasher,
    traced: u64,
}

impl VersionVectorLab {
    pub fn totals(&self) -> VersionVectorTotals {
        self.totals
    }

    /// The siblings of `key` at `replica`.
    pub fn siblings(&self, replica: u32, key: &str) -> Option<&Siblings<u64>> {
        self.replicas.get(replica as usize)?.get(key)
    }

    /// The most siblings any key has on any replica.
    pub fn most_siblings(&self) -> usize {
        self.replicas
            .iter()
            .flat_map(|r| r.values())
            .map(Siblings::len)
            .max()
            .unwrap_or(0)
    }

    /// Live writes (no later write replaced them), over all keys.
    pub fn live_writes(&self) -> usize {
        self.live.values().map(BTreeSet::len).sum()
    }

    fn hand(&self) -> u32 {
        self.contexts.len() as u32 - 1
    }

    fn check_replica(&self, field: &str, r: u32) -> Result<()> {
        if (r as usize) < self.replicas.len() {
            Ok(())
        } else {
            Err(DistlabError::field(
                field,
                format!(
                    "replica {r} does not exist (there are {})",
                    self.replicas.len()
                ),
            ))
        }
    }

    fn check_key(key: &str) -> Result<()> {
        if key.is_empty() || key.len() > 64 {
            return Err(DistlabError::field("key", "must be 1 to 64 bytes"));
        }
        Ok(())
    }

    fn note(&mut self, at: Moment, what: String) {
        self.hasher.write_u64(at.step);
        self.hasher.write_u64(at.now.0);
        self.hasher.write(what.as_bytes());
        self.traced += 1;
        if self.ops.len() == TRACE_KEPT {
            self.ops.pop_front();
        }
        self.ops.push_back(OpRow {
            step: at.step,
            at_us: at.now.0,
            what,
        });
    }

    fn read(&mut self, at: Moment, client: u32, replica: u32, key: &str) {
        let (clock, saw) = match self.siblings(replica, key) {
            Some(s) => {
                let r = s.get();
                (
                    r.context,
                    r.values.into_iter().copied().collect::<Vec<u64>>(),
                )
            }
            None => (VectorClock::new(), Vec::new()),
        };
        self.totals.reads += 1;
        if saw.len() >= 2 {
            self.totals.reads_with_siblings += 1;
        }
        let what = format!("c{client} read {key} at r{replica}: {}", writes_text(&saw));
        if let Some(c) = self.contexts.get_mut(client as usize) {
            *c = Some(Context {
                key: key.to_string(),
                clock,
                saw,
            });
        }
        self.note(at, what);
    }

    /// Client `client` writes `key` through `replica` with `context` (none: blind).
    fn write(
        &mut self,
        at: Moment,
        client: u32,
        replica: u32,
        key: &str,
        context: Option<Context>,
    ) {
        let context = context.filter(|c| c.key == key).unwrap_or_default();
        let id = self.next_write;
        let Some(siblings) = self.replicas.get_mut(replica as usize) else {
            return;
        };
        let siblings = siblings.entry(key.to_string()).or_default();
        let Ok(dot) = siblings.put(replica, &context.clock, id) else {
            return;
        };
        self.next_write += 1;
        self.totals.writes += 1;
        if context.saw.len() >= 2 {
            self.totals.reconciliations += 1;
        }
        let live = self.live.entry(key.to_string()).or_default();
        for w in &context.saw {
            live.remove(w);
        }
        live.insert(id);
        self.info.insert(
            id,
            WriteInfo {
                client,
                replica,
                dot,
                replaced: context.saw.clone(),
            },
        );
        let what = format!(
            "c{client} wrote {key} through r{replica}: w{id} at ({}, {}), replacing {}",
            dot.server,
            dot.counter,
            writes_text(&context.saw)
        );
        self.note(at, what);
        self.judge();
    }

    fn sync(&mut self, at: Moment, from: u32, to: u32) {
        let Some(source) = self.replicas.get(from as usize).cloned() else {
            return;
        };
        let Some(target) = self.replicas.get_mut(to as usize) else {
            return;
        };
        for (key, theirs) in &source {
            target.entry(key.clone()).or_default().sync(theirs);
        }
        self.totals.syncs += 1;
        self.note(at, format!("r{to} took in r{from}'s versions"));
        self.judge();
    }

    fn sync_all(&mut self, at: Moment) {
        let n = self.replicas.len() as u32;
        // Twice round: after the first pass the last replica holds everything, after the
        // second every replica does.
        for _ in 0..2 {
            for to in 0..n {
                for from in 0..n {
                    if from != to {
                        self.sync(at, from, to);
                    }
                }
            }
        }
    }

    /// Checks the two invariants against the truth, and forgets writes nothing shows.
    fn judge(&mut self) {
        if self.lost.is_none() {
            for (key, live) in &self.live {
                for w in live {
                    let held = self
                        .replicas
                        .iter()
                        .any(|r| r.get(key).is_some_and(|s| holds(s, *w)));
                    if !held {
                        self.lost = Some(format!(
                            "w{w} of {key}, which no write had read, is on no replica"
                        ));
                    }
                }
            }
        }
        if self.kept.is_none() {
            for (key, live) in &self.live {
                let mut sets = self
                    .replicas
                    .iter()
                    .map(|r| r.get(key).map(values).unwrap_or_default());
                let Some(first) = sets.next() else {
                    continue;
                };
                let converged = sets.all(|s| s == first);
                if converged && first != *live {
                    let extra: Vec<u64> = first.difference(live).copied().collect();
                    self.kept = Some(format!(
                        "the replicas agree on {key} = {}, but the live writes are {} \
                         (kept though replaced: {})",
                        writes_text(&first.iter().copied().collect::<Vec<_>>()),
                        writes_text(&live.iter().copied().collect::<Vec<_>>()),
                        writes_text(&extra)
                    ));
                }
            }
        }
        let shown: BTreeSet<u64> = self
            .live
            .values()
            .flatten()
            .copied()
            .chain(
                self.replicas
                    .iter()
                    .flat_map(|r| r.values())
                    .flat_map(|s| s.versions().iter().map(|v| v.value)),
            )
            .collect();
        self.info.retain(|w, _| shown.contains(w));
    }

    fn siblings_table(&self) -> Panel {
        let mut rows = Vec::new();
        for (r, keys) in self.replicas.iter().enumerate() {
            for (key, s) in keys {
                for v in s.versions() {
                    let live = self.live.get(key).is_some_and(|l| l.contains(&v.value));
                    let info = self.info.get(&v.value);
                    rows.push(vec![
                        json!(format!("r{r}")),
                        json!(key),
                        json!(format!("w{}", v.value)),
                        json!(format!("({}, {})", v.dot.server, v.dot.counter)),
                        json!(clock_text(&v.context)),
                        json!(info.map(|i| format!("c{}", i.client))),
                        json!(info.map(|i| writes_text(&i.replaced))),
                        json!(if live { "live" } else { "replaced elsewhere" }),
                    ]);
                }
            }
        }
        Panel::Table {
            title: "versions per replica (dot: the write event; context: what its writer had \
                    read)"
                .into(),
            columns: [
                "replica", "key", "write", "dot", "context", "client", "replaced", "truth",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        }
    }

    fn ops_table(&self) -> Panel {
        Panel::Table {
            title: "operations, newest first".into(),
            columns: ["step", "ms", "what"].map(String::from).to_vec(),
            rows: self
                .ops
                .iter()
                .rev()
                .take(OPS_KEPT)
                .map(|o| {
                    vec![
                        json!(o.step),
                        json!(o.at_us as f64 / 1_000.0),
                        json!(o.what),
                    ]
                })
                .collect(),
        }
    }

    fn replica_fields(&self, r: usize) -> BTreeMap<String, Value> {
        let keys = self.replicas.get(r);
        let siblings: BTreeMap<&String, Vec<u64>> = keys
            .map(|k| {
                k.iter()
                    .map(|(key, s)| (key, values(s).into_iter().collect()))
                    .collect()
            })
            .unwrap_or_default();
        let contexts: BTreeMap<&String, String> = keys
            .map(|k| {
                k.iter()
                    .map(|(key, s)| (key, clock_text(&s.context())))
                    .collect()
            })
            .unwrap_or_default();
        BTreeMap::from([
            ("siblings".to_string(), json!(siblings)),
            ("context".into(), json!(contexts)),
        ])
    }
}

fn holds(s: &Siblings<u64>, w: u64) -> bool {
    s.versions().iter().any(|v| v.value == w)
}

fn values(s: &Siblings<u64>) -> BTreeSet<u64> {
    s.versions().iter().map(|v| v.value).collect()
}

fn writes_text(ws: &[u64]) -> String {
    if ws.is_empty() {
        return "nothing".into();
    }
    ws.iter()
        .map(|w| format!("w{w}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn clock_text(c: &VectorClock) -> String {
    let parts: Vec<String> = c.entries().map(|(p, n)| format!("r{p}:{n}")).collect();
    format!("{{{}}}", parts.join(", "))
}

impl Sampled for VersionVectorLab {
    type Totals = VersionVectorTotals;

    fn series(&self) -> Vec<(String, String)> {
        [
            ("most siblings of a key", "versions"),
            ("reads that surfaced siblings", "per second"),
            ("reconciliations", "per second"),
            ("writes", "per second"),
        ]
        .map(|(n, u)| (n.into(), u.into()))
        .to_vec()
    }

    fn totals(&self) -> VersionVectorTotals {
        self.totals
    }

    fn sample(&self, _at: Time, interval: Duration, since: &VersionVectorTotals) -> Vec<f64> {
        let t = self.totals;
        vec![
            self.most_siblings() as f64,
            per_second(t.reads_with_siblings - since.reads_with_siblings, interval),
            per_second(t.reconciliations - since.reconciliations, interval),
            per_second(t.writes - since.writes, interval),
        ]
    }
}

impl LocalLab for VersionVectorLab {
    const ID: &'static str = "consistency.version-vector";
    type Config = VersionVectorLabConfig;
    type Action = VersionVectorLabAction;

    fn new(c: &VersionVectorLabConfig) -> Result<Self> {
        let sync_every = c.sync_every_ms.duration();
        Ok(VersionVectorLab {
            replicas: vec![BTreeMap::new(); c.replicas.get() as usize],
            keys: c.keys.get(),
            blind_write_share: c.blind_write_share.get(),
            sync_every,
            next_sync: Time::ZERO + sync_every,
            contexts: vec![None; c.clients.get() as usize + 1],
            rng: SimRng::derive(c.seed, 41),
            next_write: 0,
            live: BTreeMap::new(),
            info: BTreeMap::new(),
            totals: VersionVectorTotals::default(),
            lost: None,
            kept: None,
            ops: VecDeque::new(),
            hasher: StableHasher::default(),
            traced: 0,
        })
    }

    fn next_event_at(&self, _now: Time) -> Option<Time> {
        Some(self.next_sync)
    }

    fn on_event(&mut self, due: Time, at: Moment) {
        self.next_sync = due + self.sync_every;
        let n = self.replicas.len() as u64;
        let a = self.rng.below(n) as u32;
        let b = (a + 1 + self.rng.below(n - 1) as u32) % n as u32;
        self.sync(at, a, b);
        self.sync(at, b, a);
    }

    fn act(&mut self, at: Moment, action: &VersionVectorLabAction) -> Result<()> {
        match action {
            VersionVectorLabAction::Read { replica, key } => {
                self.check_replica("replica", *replica)?;
                Self::check_key(key)?;
                self.read(at, self.hand(), *replica, key);
            }
            VersionVectorLabAction::Write { replica, key } => {
                self.check_replica("replica", *replica)?;
                Self::check_key(key)?;
                let hand = self.hand();
                let context = self.contexts.get_mut(hand as usize).and_then(Option::take);
                self.write(at, hand, *replica, key, context);
            }
            VersionVectorLabAction::Sync { from, to } => {
                self.check_replica("from", *from)?;
                self.check_replica("to", *to)?;
                self.sync(at, *from, *to);
            }
            VersionVectorLabAction::SyncAll {} => self.sync_all(at),
        }
        Ok(())
    }

    fn view(&self, _at: Moment, _samples: &Sampler<VersionVectorTotals>) -> View {
        const LOST: &str = "no concurrent update lost: every live write is on some replica";
        const KEPT: &str = "converged replicas hold exactly the live writes";
        View {
            nodes: (0..self.replicas.len())
                .map(|r| NodeView {
                    id: r as u32,
                    label: format!("r{r}"),
                    role: "replica".into(),
                    status: "up".into(),
                    fields: self.replica_fields(r),
                    group: None,
                })
                .collect(),
            panels: vec![
                Panel::Text {
                    title: "clocks".into(),
                    body: format!(
                        "dotted version vectors: one entry per replica in every context, \
                         and a dot (replica, counter) per version. {} writes ({} \
                         reconciled siblings), {} reads ({} surfaced siblings), {} syncs; \
                         {} live writes.",
                        self.totals.writes,
                        self.totals.reconciliations,
                        self.totals.reads,
                        self.totals.reads_with_siblings,
                        self.totals.syncs,
                        self.live_writes()
                    ),
                },
                self.siblings_table(),
                self.ops_table(),
            ],
            invariants: vec![
                match &self.lost {
                    Some(d) => InvariantStatus::violated(LOST, d.clone(), Vec::new()),
                    None => InvariantStatus::holds(
                        LOST,
                        format!("{} live writes, each held", self.live_writes()),
                    ),
                },
                match &self.kept {
                    Some(d) => InvariantStatus::violated(KEPT, d.clone(), Vec::new()),
                    None => InvariantStatus::holds(
                        KEPT,
                        "whenever the replicas agree on a key, they hold its live writes",
                    ),
                },
            ],
            ..View::default()
        }
    }

    fn trace(&self, _at: Moment) -> Value {
        json!({
            "hash": format!("{:016x}", self.hasher.finish()),
            "events": self.traced,
            "complete": self.traced <= self.ops.len() as u64,
            "trace": serde_json::to_value(&self.ops).unwrap_or(Value::Null),
        })
    }

    fn example_actions() -> Vec<VersionVectorLabAction> {
        vec![
            VersionVectorLabAction::Read {
                replica: 0,
                key: "k0".into(),
            },
            VersionVectorLabAction::Write {
                replica: 1,
                key: "k0".into(),
            },
            VersionVectorLabAction::Sync { from: 0, to: 1 },
            VersionVectorLabAction::SyncAll {},
        ]
    }
}

impl DrivenLab for VersionVectorLab {
    fn arrivals(c: &VersionVectorLabConfig) -> &ArrivalProcess {
        &c.arrivals
    }

    /// A random client's next step: a read if it holds no context, else the write.
    fn on_arrival(&mut self, at: Moment) {
        let clients = self.hand().max(1);
        let client = self.rng.below(u64::from(clients)) as u32;
        let replica = self.rng.below(self.replicas.len() as u64) as u32;
        let pending = self
            .contexts
            .get_mut(client as usize)
            .and_then(Option::take);
        match pending {
            Some(context) => {
                let key = context.key.clone();
                self.write(at, client, replica, &key, Some(context));
            }
            None => {
                let key = format!("k{}", self.rng.below(u64::from(self.keys)));
                if self.rng.chance(self.blind_write_share) {
                    self.write(at, client, replica, &key, None);
                } else {
                    self.read(at, client, replica, &key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Driven, DrivenAction, Lab, LabModel, Runner};

    fn run(seed: u64, secs: u64) -> Driven<VersionVectorLab> {
        let config = VersionVectorLabConfig {
            seed,
            ..VersionVectorLabConfig::default()
        };
        let mut lab = Driven::<VersionVectorLab>::new(&config).unwrap();
        while lab.step_until(Time::from_millis(secs * 1_000)) {}
        lab
    }

    #[test]
    fn siblings_surface_get_reconciled_and_nothing_is_lost() {
        for seed in 0..10 {
            let mut lab = run(seed, 20);
            let t = lab.totals();
            assert!(t.writes > 100, "seed {seed}: {t:?}");
            assert!(t.reads_with_siblings > 0, "seed {seed}: {t:?}");
            assert!(t.reconciliations > 0, "seed {seed}: {t:?}");
            assert!(lab.view().invariants.iter().all(|i| i.ok), "seed {seed}");
            // Converged, every replica holds exactly the live writes.
            lab.act(&DrivenAction::Lab(VersionVectorLabAction::SyncAll {}))
                .unwrap();
            let live: BTreeSet<u64> = lab.live.values().flatten().copied().collect();
            let mut held = BTreeSet::new();
            for r in 0..3 {
                let s = lab.siblings(r, "k0").unwrap();
                held.extend(values(s));
                assert_eq!(values(s), values(lab.siblings(0, "k0").unwrap()));
            }
            assert_eq!(held, live, "seed {seed}");
            assert!(lab.view().invariants.iter().all(|i| i.ok), "seed {seed}");
        }
    }

    #[test]
    fn a_reconciling_write_collapses_the_siblings_it_read() {
        let mut l = Runner::<Driven<VersionVectorLab>>::from_json(&json!({
            "clients": 1, "arrivals": {"type": "constant", "ratePerSec": 0.001}
        }))
        .unwrap();
        // Two blind writes through two replicas, then anti-entropy: two siblings.
        l.act(&json!({"type": "write", "replica": 0, "key": "cart"}))
            .unwrap();
        l.act(&json!({"type": "write", "replica": 1, "key": "cart"}))
            .unwrap();
        l.act(&json!({"type": "syncAll"})).unwrap();
        assert_eq!(l.model().siblings(2, "cart").unwrap().len(), 2);
        // Read them and write back: one version, everywhere after sync.
        l.act(&json!({"type": "read", "replica": 2, "key": "cart"}))
            .unwrap();
        l.act(&json!({"type": "write", "replica": 2, "key": "cart"}))
            .unwrap();
        assert_eq!(l.model().siblings(2, "cart").unwrap().len(), 1);
        l.act(&json!({"type": "syncAll"})).unwrap();
        for r in 0..3 {
            assert_eq!(l.model().siblings(r, "cart").unwrap().len(), 1);
        }
        assert_eq!(l.model().totals().reconciliations, 1);
        assert!(l.view().invariants.iter().all(|i| i.ok));
    }

    #[test]
    fn both_invariants_can_fail() {
        let at = Moment {
            now: Time::ZERO,
            step: 0,
        };
        // A replica that forgets a live write: lost.
        let mut lab = VersionVectorLab::new(&VersionVectorLabConfig::default()).unwrap();
        lab.write(at, 0, 0, "k0", None);
        lab.replicas[0].clear();
        lab.judge();
        assert!(lab.lost.as_deref().unwrap().contains("w0"));
        // Replicas that agree on a write the truth says was replaced: kept.
        let mut lab = VersionVectorLab::new(&VersionVectorLabConfig::default()).unwrap();
        lab.write(at, 0, 0, "k0", None);
        let stale = lab.replicas[0].clone();
        lab.read(at, 0, 0, "k0");
        let ctx = lab.contexts[0].take();
        lab.write(at, 0, 0, "k0", ctx);
        lab.replicas = vec![stale.clone(), stale.clone(), stale];
        lab.judge();
        assert!(
            lab.kept.as_deref().unwrap().contains("w0"),
            "{:?}",
            lab.kept
        );
        assert!(
            !lab.view(at, &Sampler::new(&lab, Duration::from_millis(100), 10))
                .invariants[1]
                .ok
        );
    }

    #[test]
    fn bad_configs_and_actions_name_the_field() {
        for (config, field) in [
            (json!({"replicas": 1}), "config.replicas"),
            (json!({"syncEveryMs": 0}), "config.syncEveryMs"),
            (json!({"blindWriteShare": 2}), "config.blindWriteShare"),
        ] {
            let e = Runner::<Driven<VersionVectorLab>>::from_json(&config)
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains(&format!("`{field}")), "{config}: {e}");
        }
        let mut l = Runner::<Driven<VersionVectorLab>>::from_json(&Value::Null).unwrap();
        let e = l
            .act(&json!({"type": "read", "replica": 3, "key": "k0"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("replica"), "{e}");
        let e = l
            .act(&json!({"type": "write", "replica": 0, "key": ""}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("key"), "{e}");
    }
}
