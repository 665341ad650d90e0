//! Lab `ratelimit.distributed`: N gateways enforcing one limit through a store node, fed by
//! a workload that spreads requests over the gateways in turn. Click to partition the store
//! away, crash and restart it, switch between central and leasing modes and between
//! fail-open and fail-closed, and watch what it costs: over-admission against one exact
//! limiter seeing every request as it arrives (the ideal), the latency the limiter adds
//! (gateway receipt to decision), the store round trips, and the invariant "admitted ≤ the
//! global limit (+ the leases gateways may hold)" checked on every admission.
//!
//! Samples read only counters kept as of the last event and the sample's own time, so a
//! run stepped by time and its replay stepped by events record the same series.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};

use crate::bounded::{Count, Millis};
use crate::error::{DistlabError, Result, check_range};
use crate::lab::cluster::{ClusterAction, ClusterLab};
use crate::lab::sampling::{Sampled, per_second};
use crate::lab::settings::{ClusterSettings, cluster_lab_config};
use crate::lab::view::{InvariantStatus, Panel, StripItem};
use crate::ratelimit::distributed::envelope::OverAdmission;
use crate::ratelimit::distributed::gateway::Decision;
use crate::ratelimit::distributed::node::{LimiterConfig, LimiterNode, LimiterRequest, STORE, Via};
use crate::ratelimit::distributed::scripts::{MICRO, SLIDING_WINDOW_LUA, TOKEN_BUCKET_LUA};
use crate::ratelimit::distributed::settings::{
    FailurePolicy, GatewaySettings, GlobalLimit, LimiterMode,
};
use crate::ratelimit::distributed::store::{RedisStore, Value as StoreValue};
use crate::sim::workload::{ArrivalFeed, ArrivalProcess};
use crate::sim::{Fault, NodeId, Sim, SimConfig, Stepped};
use crate::time::{Duration, Time};

/// The most gateways the lab runs.
pub const MAX_GATEWAYS: u32 = 16;
/// The most tokens one lease may ask for.
pub const MAX_LEASE_BATCH: u64 = 30;
/// The key every gateway limits.
pub const KEY: &str = "ratelimit:global";
/// Decisions kept for the latency percentiles and the strip.
const RECENT: usize = 4_096;
const STRIP: usize = 40;
/// How long a client waits for its gateway's answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

/// Leasing settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub struct LimiterLeaseConfig {
    /// Tokens a gateway takes per round trip.
    #[schemars(range(min = 1, max = 30))]
    pub batch: u64,
    /// How long leased tokens may be spent before the rest is dropped.
    #[schemars(range(min = 1, max = 600000))]
    pub ttl_ms: f64,
}

impl Default for LimiterLeaseConfig {
    fn default() -> Self {
        LimiterLeaseConfig {
            batch: 5,
            ttl_ms: 1_000.0,
        }
    }
}

cluster_lab_config! {
    /// Configuration of the distributed rate-limit lab.
    pub struct DistributedLabConfig {
        /// Gateway nodes (node 0 is the store).
        pub gateways: Count<1, { MAX_GATEWAYS }> = Count::of(3),
        /// The one limit the gateways enforce together.
        pub limit: GlobalLimit = GlobalLimit::default(),
        pub mode: LimiterMode = LimiterMode::Central,
        pub policy: FailurePolicy = FailurePolicy::FailOpen,
        /// How long a gateway waits for the store before its policy decides.
        pub timeout_ms: Millis<1, 60_000> = Millis::of(50),
        pub lease: LimiterLeaseConfig = LimiterLeaseConfig::default(),
        /// All requests, spread over the gateways in turn.
        pub arrivals: ArrivalProcess = ArrivalProcess::Poisson { rate_per_sec: 15.0 },
    }
}

/// The lab's own actions, besides every fault (`heal`, `crash` and `restart` of node 0...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[cfg_attr(feature = "tsify", derive(tsify::Tsify))]
pub enum DistributedLabAction {
    /// Cuts the store off from every gateway (`heal` joins them again).
    PartitionStore {},
    /// Pushes a new mode to every gateway (each switches when the push arrives).
    SetMode { mode: LimiterMode },
    /// Pushes a new policy to every gateway.
    SetPolicy { policy: FailurePolicy },
    /// Requests arrive following `arrivals` from now on.
    SetArrivals { arrivals: ArrivalProcess },
}

/// Counters over every decision observed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    decided: u64,
    admitted: u64,
    ideal_admitted: u64,
    /// Admitted where the ideal refused.
    beyond_ideal: u64,
    /// Refused where the ideal admitted.
    short_of_ideal: u64,
    round_trips: u64,
    /// [admitted, refused] by [`Via`].
    by_via: [[u64; 2]; 5],
}

impl Totals {
    /// Admitted beyond the ideal, in % of the ideal (negative when fewer were admitted).
    fn over_admission_percent(&self) -> f64 {
        if self.ideal_admitted == 0 {
            return 0.0;
        }
        (self.admitted as f64 - self.ideal_admitted as f64) / self.ideal_admitted as f64 * 100.0
    }
}

/// A decision as the lab saw it, at the simulator's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Observed {
    at: Time,
    decision: Decision,
}

impl Observed {
    fn latency(&self) -> Duration {
        self.decision.decided_at - self.decision.received_at
    }
}

/// What the lab has read of one gateway since its last boot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Seen {
    boots: u32,
    decided: u64,
    round_trips: u64,
}

/// The distributed rate-limit lab.
#[derive(Debug, Clone)]
pub struct DistributedLab {
    sim: Sim<LimiterNode>,
    settings: GatewaySettings,
    gateways: u32,
    feed: ArrivalFeed,
    /// Tag of the arrival event that is current (older ones were replaced).
    arrival_tag: u64,
    arrivals: u64,
    /// One exact limiter deciding every request at its arrival: the ideal.
    oracle: RedisStore,
    seen: Vec<Seen>,
    totals: Totals,
    recent: VecDeque<Observed>,
    checker: OverAdmission,
}

fn check_mode(mode: LimiterMode, limit: &GlobalLimit) -> Result<()> {
    if mode == LimiterMode::Leasing && !limit.leasable() {
        return Err(DistlabError::field(
            "mode",
            "leasing hands out tokens ahead, which needs a tokenBucket limit",
        ));
    }
    Ok(())
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = libm::ceil(p * sorted.len() as f64) as usize;
    sorted
        .get(rank.clamp(1, sorted.len()) - 1)
        .copied()
        .unwrap_or(0.0)
}

impl DistributedLab {
    /// The simulation underneath, for tests.
    pub fn sim(&self) -> &Sim<LimiterNode> {
        &self.sim
    }

    /// Over-admission so far: admitted beyond the ideal, in % of the ideal (negative when
    /// fewer were admitted).
    pub fn over_admission_percent(&self) -> f64 {
        self.totals.over_admission_percent()
    }

    /// (decided, admitted, ideal admitted, store round trips) so far.
    pub fn counts(&self) -> (u64, u64, u64, u64) {
        let t = &self.totals;
        (t.decided, t.admitted, t.ideal_admitted, t.round_trips)
    }

    /// The largest excess over the global limit seen, in requests.
    pub fn max_excess(&self) -> Option<f64> {
        self.checker.max_excess()
    }

    /// The first window past the limit plus the allowance, if any.
    pub fn breach(&self) -> Option<&str> {
        self.checker.breach()
    }

    /// Added latency (gateway receipt to decision) percentiles over the newest decisions,
    /// in ms: (p50, p99).
    pub fn latency_percentiles(&self) -> (f64, f64) {
        let mut l: Vec<f64> = self
            .recent
            .iter()
            .map(|o| o.latency().as_millis_f64())
            .collect();
        l.sort_by(f64::total_cmp);
        (percentile(&l, 0.5), percentile(&l, 0.99))
    }

    fn schedule_arrival(&mut self) {
        self.arrival_tag += 1;
        self.sim
            .schedule_external(self.feed.next_at(), self.arrival_tag);
    }

    fn arrive(&mut self, tag: u64) {
        if tag != self.arrival_tag {
            return;
        }
        let now = self.feed.take();
        let n = self.arrivals;
        self.arrivals += 1;
        let ideal = self
            .settings
            .limit
            .call(KEY, now, 1, false, n)
            .run(&mut self.oracle, now)
            .granted()
            > 0;
        let gateway = 1 + (n % u64::from(self.gateways)) as NodeId;
        // Cannot fail: client 0 and the gateway exist, the timeout is valid.
        let _ =
            self.sim
                .client_request(0, gateway, LimiterRequest::Admit { ideal }, CLIENT_TIMEOUT);
        self.schedule_arrival();
    }

    fn push_settings(&mut self, settings: GatewaySettings) {
        self.settings = settings;
        for g in 1..=self.gateways {
            let _ =
                self.sim
                    .client_request(0, g, LimiterRequest::Configure(settings), CLIENT_TIMEOUT);
        }
        if settings.effective_mode() == LimiterMode::Leasing {
            self.checker
                .allow(u64::from(self.gateways) * settings.lease_batch);
        }
    }

    /// Reads the decisions and round trips every gateway made in the last event.
    fn observe_gateways(&mut self) {
        let now = self.sim.now();
        for g in 1..=self.gateways {
            let boots = self.sim.boots(g);
            let Some(seen) = self.seen.get_mut(g as usize) else {
                continue;
            };
            if seen.boots != boots {
                *seen = Seen {
                    boots,
                    ..Seen::default()
                };
            }
            let Some(gw) = self.sim.node(g).and_then(LimiterNode::as_gateway) else {
                continue;
            };
            let trips = gw.stats().round_trips;
            self.totals.round_trips += trips.saturating_sub(seen.round_trips);
            seen.round_trips = trips;
            let from = seen.decided;
            seen.decided = gw.decided();
            for d in gw.log().iter().filter(|d| d.seq >= from) {
                let t = &mut self.totals;
                t.decided += 1;
                t.admitted += u64::from(d.admitted);
                t.ideal_admitted += u64::from(d.ideal);
                t.beyond_ideal += u64::from(d.admitted && !d.ideal);
                t.short_of_ideal += u64::from(!d.admitted && d.ideal);
                let via = Via::ALL.iter().position(|v| *v == d.via).unwrap_or(0);
                if let Some(row) = t.by_via.get_mut(via) {
                    row[usize::from(!d.admitted)] += 1;
                }
                if d.admitted {
                    self.checker.record(d.store_time.unwrap_or(now));
                }
                if self.recent.len() >= RECENT {
                    self.recent.pop_front();
                }
                self.recent.push_back(Observed {
                    at: now,
                    decision: *d,
                });
            }
        }
    }

    fn store_fields(&self, fields: &mut BTreeMap<String, Value>) {
        let now = self.sim.now();
        if let Some(s) = self.sim.node(STORE).and_then(LimiterNode::as_store) {
            fields.insert("scriptsRun".into(), json!(s.scripts_run()));
            fields.insert("granted".into(), json!(s.granted()));
            fields.insert("keys".into(), json!(s.store().live_keys(now).count()));
            fields.insert("commands".into(), json!(s.store().stats()));
            for (key, value, expires) in s.store().live_keys(now) {
                let v = match value {
                    StoreValue::Hash(h) => json!(h),
                    StoreValue::SortedSet(z) => json!(z.len()),
                };
                fields.insert(format!("{key} ({})", value.type_name()), v);
                fields.insert(
                    format!("{key} ttl ms"),
                    json!(expires.map(|e| (e - now).as_millis_f64())),
                );
            }
            if let GlobalLimit::TokenBucket {
                capacity,
                refill_per_sec,
            } = self.settings.limit
            {
                fields.insert(
                    "tokensNow".into(),
                    json!(tokens_now(s.store(), now, capacity, refill_per_sec)),
                );
            }
        }
    }

    fn gateway_fields(&self, id: NodeId, fields: &mut BTreeMap<String, Value>) {
        let now = self.sim.now();
        if let Some(g) = self.sim.node(id).and_then(LimiterNode::as_gateway) {
            let s = g.settings();
            fields.insert("mode".into(), json!(s.effective_mode()));
            fields.insert("policy".into(), json!(s.policy));
            fields.insert("leaseTokens".into(), json!(g.lease_tokens(now)));
            fields.insert("callsInFlight".into(), json!(g.calls_in_flight()));
            fields.insert("waitingForLease".into(), json!(g.waiting()));
            fields.insert("decided".into(), json!(g.decided()));
            fields.insert("stats".into(), json!(g.stats()));
            if let Some(d) = g.log().back() {
                fields.insert("lastDecision".into(), json!(d));
            }
        }
    }
}

/// The tokens a bucket holds at `now`, as the script would compute them.
fn tokens_now(store: &RedisStore, now: Time, capacity: u64, rate: u64) -> f64 {
    let bucket = store.live_keys(now).find_map(|(k, v, _)| match v {
        StoreValue::Hash(h) if k == KEY => Some(h),
        _ => None,
    });
    let Some(h) = bucket else {
        return capacity as f64;
    };
    let field = |f: &str| h.get(f).and_then(|s| s.parse::<u64>().ok());
    let (Some(tokens), Some(ts)) = (field("tokens"), field("ts")) else {
        return capacity as f64;
    };
    let refill = u128::from(now.0.saturating_sub(ts)) * u128::from(rate);
    let micro = (u128::from(tokens) + refill).min(u128::from(capacity) * u128::from(MICRO));
    micro as f64 / MICRO as f64
}

impl Sampled for DistributedLab {
    type Totals = Totals;

    fn series(&self) -> Vec<(String, String)> {
        [
            ("admitted", "req/s"),
            ("ideal admitted", "req/s"),
            ("over-admission", "%"),
            ("added latency p50", "ms"),
            ("added latency p99", "ms"),
            ("store round trips", "1/s"),
            ("max excess over the limit", "requests"),
        ]
        .map(|(n, u)| (n.into(), u.into()))
        .to_vec()
    }

    fn totals(&self) -> Totals {
        self.totals
    }

    fn sample(&self, at: Time, interval: Duration, since: &Totals) -> Vec<f64> {
        let t = &self.totals;
        let from = at.0.saturating_sub(interval.0);
        let mut lat: Vec<f64> = self
            .recent
            .iter()
            .rev()
            .take_while(|o| o.at.0 > from)
            .filter(|o| o.at.0 <= at.0)
            .map(|o| o.latency().as_millis_f64())
            .collect();
        lat.sort_by(f64::total_cmp);
        vec![
            per_second(t.admitted - since.admitted, interval),
            per_second(t.ideal_admitted - since.ideal_admitted, interval),
            t.over_admission_percent(),
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            per_second(t.round_trips - since.round_trips, interval),
            self.checker.max_excess().unwrap_or(0.0).max(0.0),
        ]
    }
}

impl ClusterLab for DistributedLab {
    const ID: &'static str = "ratelimit.distributed";
    type Config = DistributedLabConfig;
    type Node = LimiterNode;
    type Action = DistributedLabAction;
    const TRACE_TAIL: usize = crate::consensus::raft::lab::TRACE_TAIL;

    fn new(c: &DistributedLabConfig) -> Result<Self> {
        c.limit.validate("limit")?;
        check_mode(c.mode, &c.limit)?;
        if !(1..=MAX_LEASE_BATCH).contains(&c.lease.batch) {
            return Err(DistlabError::field(
                "lease.batch",
                format!(
                    "must be between 1 and {MAX_LEASE_BATCH}, got {}",
                    c.lease.batch
                ),
            ));
        }
        if let GlobalLimit::TokenBucket { capacity, .. } = c.limit
            && c.lease.batch > capacity
        {
            return Err(DistlabError::field(
                "lease.batch",
                format!(
                    "must be at most the capacity ({capacity}), got {}",
                    c.lease.batch
                ),
            ));
        }
        check_range("lease.ttlMs", c.lease.ttl_ms, 1.0, 600_000.0)?;
        let settings = GatewaySettings {
            limit: c.limit,
            mode: c.mode,
            policy: c.policy,
            timeout: c.timeout_ms.duration(),
            lease_batch: c.lease.batch,
            lease_ttl: Duration::try_from_millis_f64("lease.ttlMs", c.lease.ttl_ms)?,
        };
        let sim_config = SimConfig {
            clients: 1,
            record_trace: true,
            trace_limit: 100_000,
            ..c.sim_config(c.gateways.get() + 1)
        };
        let node_config = LimiterConfig {
            settings,
            key: KEY.to_string(),
        };
        let mut sim = Sim::new(sim_config, node_config)?;
        c.load_faults(&mut sim)?;
        // The arrivals draw from their own stream, apart from the simulator's.
        let feed = ArrivalFeed::new(c.seed ^ 0xa11_7a1e, &c.arrivals, Time::ZERO)?;
        let mut checker = OverAdmission::new(c.limit);
        if settings.effective_mode() == LimiterMode::Leasing {
            checker.allow(u64::from(c.gateways.get()) * settings.lease_batch);
        }
        let mut lab = DistributedLab {
            sim,
            settings,
            gateways: c.gateways.get(),
            feed,
            arrival_tag: 0,
            arrivals: 0,
            oracle: RedisStore::new(),
            seen: vec![Seen::default(); c.gateways.get() as usize + 1],
            totals: Totals::default(),
            recent: VecDeque::new(),
            checker,
        };
        for g in 1..=c.gateways.get() {
            if let Some(s) = lab.seen.get_mut(g as usize) {
                s.boots = lab.sim.boots(g);
            }
        }
        lab.schedule_arrival();
        Ok(lab)
    }

    fn sim(&self) -> &Sim<LimiterNode> {
        &self.sim
    }

    fn sim_mut(&mut self) -> &mut Sim<LimiterNode> {
        &mut self.sim
    }

    fn step(&mut self, until: Time) -> bool {
        match self.sim.step_until(until) {
            Some(Stepped::External(tag)) => {
                self.arrive(tag);
                true
            }
            Some(Stepped::Event) => true,
            None => false,
        }
    }

    /// A fault applied now (a crash mid-call, a restart) can change what gateways hold.
    fn observe(&mut self) {
        self.observe_gateways();
    }

    fn act(&mut self, action: &DistributedLabAction) -> Result<()> {
        match action {
            DistributedLabAction::PartitionStore {} => {
                self.sim.apply_fault(&Fault::Partition {
                    groups: vec![vec![STORE]],
                })?;
            }
            DistributedLabAction::SetMode { mode } => {
                check_mode(*mode, &self.settings.limit)?;
                let s = GatewaySettings {
                    mode: *mode,
                    ..self.settings
                };
                self.push_settings(s);
            }
            DistributedLabAction::SetPolicy { policy } => {
                let s = GatewaySettings {
                    policy: *policy,
                    ..self.settings
                };
                self.push_settings(s);
            }
            DistributedLabAction::SetArrivals { arrivals } => {
                self.feed.set_process(arrivals, self.sim.now())?;
                self.schedule_arrival();
            }
        }
        Ok(())
    }

    fn label(&self, id: NodeId) -> String {
        match id {
            STORE => "store".into(),
            g => format!("gateway {g}"),
        }
    }

    fn role(&self, id: NodeId) -> String {
        match id {
            STORE => "store",
            _ => "gateway",
        }
        .into()
    }

    fn node_fields(&self, id: NodeId, fields: &mut BTreeMap<String, Value>) {
        match id {
            STORE => self.store_fields(fields),
            g => self.gateway_fields(g, fields),
        }
    }

    fn panels(&self) -> Vec<Panel> {
        let t = &self.totals;
        let (p50, p99) = self.latency_percentiles();
        let variants = Panel::Table {
            title: "decisions by how they were made".into(),
            columns: ["via", "admitted", "refused"].map(String::from).to_vec(),
            rows: Via::ALL
                .iter()
                .zip(t.by_via)
                .map(|(v, [a, r])| vec![json!(v.name()), json!(a), json!(r)])
                .collect(),
        };
        let summary = Panel::Table {
            title: "against one exact limiter (the ideal)".into(),
            columns: vec!["measure".into(), "value".into()],
            rows: vec![
                vec![json!("decided"), json!(t.decided)],
                vec![json!("admitted"), json!(t.admitted)],
                vec![json!("ideal admitted"), json!(t.ideal_admitted)],
                vec![
                    json!("over-admission %"),
                    json!(self.over_admission_percent()),
                ],
                vec![json!("admitted, ideal refused"), json!(t.beyond_ideal)],
                vec![json!("refused, ideal admitted"), json!(t.short_of_ideal)],
                vec![json!("added latency p50 ms (recent)"), json!(p50)],
                vec![json!("added latency p99 ms (recent)"), json!(p99)],
                vec![json!("store round trips"), json!(t.round_trips)],
                vec![
                    json!("max excess over the limit"),
                    json!(self.checker.max_excess()),
                ],
                vec![json!("leases allowance"), json!(self.checker.allowance())],
            ],
        };
        let script = Panel::Text {
            title: "the script the store runs (EVALSHA)".into(),
            body: match self.settings.limit {
                GlobalLimit::TokenBucket { .. } => TOKEN_BUCKET_LUA,
                GlobalLimit::SlidingWindow { .. } => SLIDING_WINDOW_LUA,
            }
            .to_string(),
        };
        let skip = self.recent.len().saturating_sub(STRIP);
        let strip = Panel::Strip {
            title: format!("last {STRIP} decisions"),
            items: self
                .recent
                .iter()
                .skip(skip)
                .map(|o| StripItem {
                    label: format!(
                        "g{} {} +{:.1} ms",
                        o.decision.gateway,
                        o.decision.via.name(),
                        o.latency().as_millis_f64()
                    ),
                    state: if o.decision.admitted {
                        "ok"
                    } else {
                        "rejected"
                    }
                    .into(),
                })
                .collect(),
        };
        vec![summary, variants, strip, script]
    }

    fn invariants(&self) -> Vec<InvariantStatus> {
        const NAME: &str = "admitted ≤ global limit + leases the gateways may hold";
        let gateways = (1..=self.gateways).collect();
        match self.checker.breach() {
            Some(b) => vec![InvariantStatus::violated(
                NAME,
                format!(
                    "{b}; max excess {:.3}",
                    self.checker.max_excess().unwrap_or(0.0)
                ),
                gateways,
            )],
            None => vec![InvariantStatus::holds(
                NAME,
                format!(
                    "every window between two of the last {} admissions; max excess {} \
                     (allowance {})",
                    crate::ratelimit::distributed::envelope::WINDOW_ADMISSIONS,
                    match self.checker.max_excess() {
                        Some(e) => format!("{e:.3}"),
                        None => "none yet".into(),
                    },
                    self.checker.allowance()
                ),
            )],
        }
    }

    fn example_actions() -> Vec<ClusterAction<DistributedLabAction>> {
        vec![
            ClusterAction::Lab(DistributedLabAction::PartitionStore {}),
            ClusterAction::Fault(Fault::Heal),
            ClusterAction::Fault(Fault::Crash { node: STORE }),
            ClusterAction::Fault(Fault::Restart { node: STORE }),
            ClusterAction::Lab(DistributedLabAction::SetMode {
                mode: LimiterMode::Leasing,
            }),
            ClusterAction::Lab(DistributedLabAction::SetMode {
                mode: LimiterMode::Central,
            }),
            ClusterAction::Lab(DistributedLabAction::SetPolicy {
                policy: FailurePolicy::FailClosed,
            }),
            ClusterAction::Lab(DistributedLabAction::SetPolicy {
                policy: FailurePolicy::FailOpen,
            }),
            ClusterAction::Lab(DistributedLabAction::SetArrivals {
                arrivals: ArrivalProcess::Poisson { rate_per_sec: 40.0 },
            }),
            ClusterAction::Fault(Fault::Crash { node: 1 }),
            ClusterAction::Fault(Fault::Restart { node: 1 }),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Cluster, LabModel};

    fn run(config: DistributedLabConfig, secs: u64) -> DistributedLab {
        let mut lab = Cluster::<DistributedLab>::new(&config).unwrap();
        while lab.step_until(Time::from_millis(secs * 1_000)) {}
        lab.lab().clone()
    }

    #[test]
    fn central_mode_with_a_reachable_store_never_exceeds_the_limit() {
        let lab = run(
            DistributedLabConfig {
                arrivals: ArrivalProcess::Poisson { rate_per_sec: 60.0 },
                timeout_ms: Millis::of(1_000),
                ..DistributedLabConfig::default()
            },
            10,
        );
        let (decided, admitted, ideal, trips) = lab.counts();
        assert!(decided > 400, "{decided}");
        assert!(admitted < decided, "the limit bit: {admitted} of {decided}");
        assert_eq!(trips, decided);
        assert!(lab.breach().is_none(), "{:?}", lab.breach());
        assert!(lab.max_excess().unwrap() <= 0.0);
        // Latency moves decisions by a few ms: admissions track the ideal closely.
        assert!((admitted as f64 - ideal as f64).abs() <= 0.05 * ideal as f64);
    }

    #[test]
    fn errors_name_the_field() {
        let e = DistributedLab::new(&DistributedLabConfig {
            limit: GlobalLimit::SlidingWindow {
                limit: 5,
                window_ms: 100,
            },
            mode: LimiterMode::Leasing,
            ..DistributedLabConfig::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("mode"), "{e}");
        let e = DistributedLab::new(&DistributedLabConfig {
            lease: LimiterLeaseConfig {
                batch: 25,
                ttl_ms: 10.0,
            },
            ..DistributedLabConfig::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("lease.batch"), "{e}");
    }
}
