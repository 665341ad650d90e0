//! The mesh's nodes: the client, and the services with the caller side of each edge they
//! call. See the module docs of [`super`] for the model.

use std::collections::{BTreeMap, VecDeque};
use std::hash::Hash;

use crate::resilience::ErrorKind;
use crate::resilience::circuit_breaker::BreakerState;
use crate::resilience::mesh::metrics::{EdgeStats, ServiceStats};
use crate::resilience::mesh::{CLIENT, GATEWAY, MAX_OPEN_CALLS, Mesh, Pick, ServiceConfig};
use crate::resilience::policy::{Outcome, Pipeline, PolicyAction, Strategy, Target};
use crate::sim::disk::Disk;
use crate::sim::network::LatencyModel;
use crate::sim::node::{ClientRequest, Ctx, Fingerprint, Node, NodeId, Reply, TimerId};
use crate::sim::trace::StableHasher;
use crate::time::{Duration, Time};

/// Timer kinds, in the top bits of a [`TimerId`]; the low bits name the edge or job.
const KIND_SHIFT: u32 = 40;
const EDGE_TIMER: u64 = 1;
const JOB_TIMER: u64 = 2;
const ARRIVAL_TIMER: u64 = 3;
const LOW_MASK: u64 = (1 << KIND_SHIFT) - 1;

fn timer(kind: u64, low: u64) -> TimerId {
    (kind << KIND_SHIFT) | (low & LOW_MASK)
}

/// What travels between nodes: an attempt on an edge, its answer, its cancellation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MeshMessage {
    Call {
        edge: u32,
        attempt: u64,
    },
    Reply {
        edge: u32,
        attempt: u64,
        error: Option<ErrorKind>,
    },
    Cancel {
        edge: u32,
        attempt: u64,
    },
}

impl Fingerprint for MeshMessage {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        self.hash(h);
    }
}

/// What the lab's operator asks a service (a fault-injection admin API).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Control {
    /// Its work takes `factor` times as long.
    Slow { factor: u32 },
    /// Its work fails with this probability instead of its configured error rate.
    Fail { error_rate: f64 },
    /// Back to its configuration.
    Heal,
}

/// A fault in force on a service.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServiceFault {
    /// 1: no slowdown.
    pub latency_factor: u32,
    /// In place of the configured error rate.
    pub error_rate: Option<f64>,
}

impl Default for ServiceFault {
    fn default() -> Self {
        ServiceFault {
            latency_factor: 1,
            error_rate: None,
        }
    }
}

/// Who waits for a call: a client request (end to end), or a service's job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Owner {
    Request,
    Job(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct OpenCall {
    owner: Owner,
    started: Time,
}

/// A call that ended, for its owner: failed with the error, or not.
type Completion = (Owner, Option<ErrorKind>);

/// The caller's side of one edge.
#[derive(Debug, Clone)]
pub struct EdgeCaller {
    edge: u32,
    to: NodeId,
    pipeline: Option<Pipeline>,
    /// Open calls by call id (for a plain edge the call id is the attempt's).
    open: BTreeMap<u64, OpenCall>,
    next_call: u64,
    stats: EdgeStats,
}

impl EdgeCaller {
    pub fn stats(&self) -> &EdgeStats {
        &self.stats
    }

    pub fn open_calls(&self) -> usize {
        self.open.len()
    }

    /// The most attempts one call may send: 1 on a plain edge.
    pub fn max_attempts_per_call(&self) -> u64 {
        self.pipeline
            .as_ref()
            .map_or(1, Pipeline::max_attempts_per_call)
    }

    /// Whether the edge sent more attempts than its calls times its policy's most
    /// attempts per call (the amplification bound): what is wrong, if so.
    pub fn check_amplification(&self) -> std::result::Result<(), String> {
        let max = self.max_attempts_per_call();
        let s = &self.stats;
        if s.attempts > s.calls.saturating_mul(max) {
            return Err(format!(
                "{} attempts for {} calls, at most {max} each",
                s.attempts, s.calls
            ));
        }
        Ok(())
    }

    /// The state of the edge's first circuit breaker, if its policy has one.
    pub fn breaker_state(&self) -> Option<BreakerState> {
        self.pipeline.as_ref().and_then(|p| {
            p.strategies().iter().find_map(|s| match s {
                Strategy::CircuitBreaker(b) => Some(b.state()),
                _ => None,
            })
        })
    }
}

/// A request waiting for a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Incoming {
    pub from: NodeId,
    pub edge: u32,
    pub attempt: u64,
    pub arrived: Time,
}

/// A request a worker holds: waiting on its dependencies, then working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Job {
    pub request: Incoming,
    /// Dependency calls not answered yet.
    pub waiting: u32,
    /// The first dependency failure.
    pub failed: Option<ErrorKind>,
    /// Its own work has started (a timer runs).
    pub working: bool,
}

/// A service: its worker pool, queue and fault.
#[derive(Debug, Clone)]
pub struct ServiceState {
    pub workers: u32,
    pub queue_bound: u32,
    latency: LatencyModel,
    error_rate: f64,
    pick: Pick,
    honors_cancel: bool,
    /// (edge, weight) of each dependency.
    deps: Vec<(u32, u32)>,
    pub queue: VecDeque<Incoming>,
    /// The jobs holding a worker, by id.
    pub jobs: BTreeMap<u64, Job>,
    next_job: u64,
    pub fault: ServiceFault,
    pub stats: ServiceStats,
}

impl ServiceState {
    fn new(c: &ServiceConfig, deps: Vec<(u32, u32)>) -> Self {
        ServiceState {
            workers: c.workers.get(),
            queue_bound: c.queue.get(),
            latency: c.latency,
            error_rate: c.error_rate.get(),
            pick: c.pick,
            honors_cancel: c.honors_cancel,
            deps,
            queue: VecDeque::new(),
            jobs: BTreeMap::new(),
            next_job: 0,
            fault: ServiceFault::default(),
            stats: ServiceStats::default(),
        }
    }

    /// Workers busy.
    pub fn busy(&self) -> usize {
        self.jobs.len()
    }

    /// The pool's invariant: never more jobs than workers, never a longer queue than
    /// its bound, and no request queued while a worker is free. The error says which.
    pub fn check_pool(&self) -> std::result::Result<(), String> {
        if self.jobs.len() > self.workers as usize {
            return Err(format!(
                "{} jobs on {} workers",
                self.jobs.len(),
                self.workers
            ));
        }
        if self.queue.len() > self.queue_bound as usize {
            return Err(format!(
                "{} queued, bound {}",
                self.queue.len(),
                self.queue_bound
            ));
        }
        if !self.queue.is_empty() && self.jobs.len() < self.workers as usize {
            return Err(format!(
                "{} queued while {} of {} workers are free",
                self.queue.len(),
                self.workers as usize - self.jobs.len(),
                self.workers
            ));
        }
        Ok(())
    }

    fn error_rate(&self) -> f64 {
        self.fault.error_rate.unwrap_or(self.error_rate)
    }

    fn note_peaks(&mut self) {
        self.stats.peak_busy = self.stats.peak_busy.max(self.jobs.len() as u64);
        self.stats.peak_queue = self.stats.peak_queue.max(self.queue.len() as u64);
    }
}

/// A node of the mesh: the client (node 0) or a service.
#[derive(Debug, Clone)]
pub struct MeshNode {
    id: NodeId,
    /// The caller's side of each edge this node calls, by edge.
    callers: BTreeMap<u32, EdgeCaller>,
    service: Option<ServiceState>,
    /// The client's request rate (0 on a service).
    rate: u32,
}

impl Fingerprint for MeshNode {
    /// The pipelines' inner state (breaker windows, retry timers) goes in through what
    /// they expose: their stats, breaker states and open calls. No model checker
    /// explores the mesh; the trace hash is what its tests compare.
    fn fingerprint_into(&self, h: &mut StableHasher) {
        let MeshNode {
            id,
            callers,
            service,
            rate,
        } = self;
        (id, rate).hash(h);
        for (e, c) in callers {
            (e, c.edge, c.to, c.next_call, &c.open, &c.stats).hash(h);
            if let Some(p) = &c.pipeline {
                let s = p.stats();
                (s.calls, s.succeeded, s.fell_back, s.failed, s.attempts).hash(h);
                (s.fallback_attempts, s.cancelled, p.open_calls()).hash(h);
                c.breaker_state().map(BreakerState::name).hash(h);
            }
        }
        if let Some(s) = service {
            (
                s.workers,
                s.queue_bound,
                &s.queue,
                &s.jobs,
                s.next_job,
                s.stats,
            )
                .hash(h);
            (s.fault.latency_factor, s.fault.error_rate.map(f64::to_bits)).hash(h);
        }
    }
}

impl MeshNode {
    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn service(&self) -> Option<&ServiceState> {
        self.service.as_ref()
    }

    /// For tests that build a bad state by hand.
    pub fn service_mut(&mut self) -> Option<&mut ServiceState> {
        self.service.as_mut()
    }

    /// The caller's side of edge `edge`, if this node calls it.
    pub fn caller(&self, edge: u32) -> Option<&EdgeCaller> {
        self.callers.get(&edge)
    }

    /// For tests that build a bad state by hand.
    pub fn edge_stats_mut(&mut self, edge: u32) -> Option<&mut EdgeStats> {
        self.callers.get_mut(&edge).map(|c| &mut c.stats)
    }

    /// Opens a call on `edge` for `owner`; the calls that ended at once.
    fn start_call(&mut self, edge: u32, owner: Owner, ctx: &mut Ctx<'_, Self>) -> Vec<Completion> {
        let now = ctx.now();
        let Some(c) = self.callers.get_mut(&edge) else {
            return vec![(owner, Some(ErrorKind::Unavailable))];
        };
        c.stats.calls += 1;
        if c.open.len() >= MAX_OPEN_CALLS {
            c.stats.refused += 1;
            c.stats.failed += 1;
            return vec![(owner, Some(ErrorKind::Overloaded))];
        }
        let open = OpenCall {
            owner,
            started: now,
        };
        match &mut c.pipeline {
            Some(p) => {
                let (call, actions) = p.start(now, ctx.rng());
                c.open.insert(call, open);
                Self::apply(c, actions, ctx)
            }
            None => {
                let attempt = c.next_call;
                c.next_call += 1;
                c.open.insert(attempt, open);
                c.stats.attempts += 1;
                ctx.send(c.to, MeshMessage::Call { edge, attempt });
                Vec::new()
            }
        }
    }

    /// Carries out a pipeline's actions on edge caller `c`; the calls that ended.
    fn apply(
        c: &mut EdgeCaller,
        actions: Vec<PolicyAction>,
        ctx: &mut Ctx<'_, Self>,
    ) -> Vec<Completion> {
        let now = ctx.now();
        let mut work: VecDeque<PolicyAction> = actions.into();
        let mut done = Vec::new();
        while let Some(a) = work.pop_front() {
            match a {
                PolicyAction::Send {
                    attempt,
                    target: Target::Dependency,
                    ..
                } => {
                    c.stats.attempts += 1;
                    ctx.send(
                        c.to,
                        MeshMessage::Call {
                            edge: c.edge,
                            attempt,
                        },
                    );
                }
                PolicyAction::Send {
                    attempt,
                    target: Target::Fallback { .. },
                    ..
                } => {
                    // A fallback source is the caller's own (a cache, a static answer):
                    // it answers at once.
                    if let Some(p) = &mut c.pipeline {
                        let more = p.on_result(now, attempt, None, ctx.rng());
                        work.extend(more.unwrap_or_default());
                    }
                }
                PolicyAction::Cancel { attempt } => ctx.send(
                    c.to,
                    MeshMessage::Cancel {
                        edge: c.edge,
                        attempt,
                    },
                ),
                PolicyAction::Done {
                    call,
                    outcome,
                    latency,
                    ..
                } => {
                    let error = match outcome {
                        Outcome::Succeeded | Outcome::FellBack { .. } => None,
                        Outcome::Failed { error, .. } => Some(error),
                    };
                    if let Some(open) = c.open.remove(&call) {
                        Self::record(&mut c.stats, latency, error);
                        done.push((open.owner, error));
                    }
                }
            }
        }
        if let Some(p) = &c.pipeline {
            let t = timer(EDGE_TIMER, u64::from(c.edge));
            match p.poll_timeout() {
                Some(at) => ctx.set_timer(t, at.saturating_since(now).max(Duration(1))),
                None => ctx.cancel_timer(t),
            }
        }
        done
    }

    fn record(stats: &mut EdgeStats, latency: Duration, error: Option<ErrorKind>) {
        stats.latency.record(latency);
        match error {
            None => stats.succeeded += 1,
            Some(_) => stats.failed += 1,
        }
    }

    /// Hands ended calls to their owners and fills free workers from the queue, until
    /// nothing more happens at once (a loop, not recursion: a breaker failing calls fast
    /// can end a whole queue of jobs in one event).
    fn drive(&mut self, mut done: VecDeque<Completion>, ctx: &mut Ctx<'_, Self>) {
        loop {
            while let Some((owner, error)) = done.pop_front() {
                if let Owner::Job(id) = owner {
                    self.dependency_done(id, error, ctx);
                }
            }
            let Some(s) = &mut self.service else { return };
            if s.jobs.len() >= s.workers as usize {
                break;
            }
            let Some(request) = s.queue.pop_front() else {
                break;
            };
            done.extend(self.start_job(request, ctx));
        }
        if let Some(s) = &mut self.service {
            s.note_peaks();
        }
    }

    /// A worker takes `request`: it calls the dependencies (or works at once).
    fn start_job(&mut self, request: Incoming, ctx: &mut Ctx<'_, Self>) -> Vec<Completion> {
        let Some(s) = &mut self.service else {
            return Vec::new();
        };
        let id = s.next_job;
        s.next_job += 1;
        let deps: Vec<u32> = match s.pick {
            Pick::All => s.deps.iter().map(|(e, _)| *e).collect(),
            Pick::One => {
                let total: u64 = s.deps.iter().map(|(_, w)| u64::from(*w)).sum();
                let mut draw = if total == 0 {
                    0
                } else {
                    ctx.rng().below(total)
                };
                s.deps
                    .iter()
                    .find(|(_, w)| {
                        let hit = draw < u64::from(*w);
                        draw = draw.saturating_sub(u64::from(*w));
                        hit
                    })
                    .map(|(e, _)| vec![*e])
                    .unwrap_or_default()
            }
        };
        s.jobs.insert(
            id,
            Job {
                request,
                waiting: deps.len() as u32,
                failed: None,
                working: false,
            },
        );
        if deps.is_empty() {
            self.begin_work(id, ctx);
            return Vec::new();
        }
        let mut done = Vec::new();
        for e in deps {
            done.extend(self.start_call(e, Owner::Job(id), ctx));
        }
        done
    }

    fn begin_work(&mut self, id: u64, ctx: &mut Ctx<'_, Self>) {
        let Some(s) = &mut self.service else { return };
        let Some(job) = s.jobs.get_mut(&id) else {
            return;
        };
        job.working = true;
        let d = s.latency.sample(ctx.rng());
        let d = Duration(d.0.saturating_mul(u64::from(s.fault.latency_factor)));
        ctx.set_timer(timer(JOB_TIMER, id), d);
    }

    fn dependency_done(&mut self, id: u64, error: Option<ErrorKind>, ctx: &mut Ctx<'_, Self>) {
        let Some(s) = &mut self.service else { return };
        let Some(job) = s.jobs.get_mut(&id) else {
            // The job was cancelled: its late answers are dropped.
            return;
        };
        job.waiting = job.waiting.saturating_sub(1);
        if job.failed.is_none() {
            job.failed = error;
        }
        if job.waiting > 0 {
            return;
        }
        match job.failed {
            // A dependency failed: the request fails with its error (as a gRPC server
            // passing the status on), without this service's own work.
            Some(e) => self.finish_job(id, Some(e), ctx),
            None => self.begin_work(id, ctx),
        }
    }

    /// The job answers its caller and frees its worker.
    fn finish_job(&mut self, id: u64, error: Option<ErrorKind>, ctx: &mut Ctx<'_, Self>) {
        let Some(s) = &mut self.service else { return };
        let Some(job) = s.jobs.remove(&id) else {
            return;
        };
        match error {
            None => s.stats.ok += 1,
            Some(_) => s.stats.errors += 1,
        }
        let r = job.request;
        ctx.send(
            r.from,
            MeshMessage::Reply {
                edge: r.edge,
                attempt: r.attempt,
                error,
            },
        );
    }

    fn on_call(&mut self, from: NodeId, edge: u32, attempt: u64, ctx: &mut Ctx<'_, Self>) {
        let now = ctx.now();
        let Some(s) = &mut self.service else { return };
        s.stats.received += 1;
        if s.jobs.len() < s.workers as usize || s.queue.len() < s.queue_bound as usize {
            s.queue.push_back(Incoming {
                from,
                edge,
                attempt,
                arrived: now,
            });
            self.drive(VecDeque::new(), ctx);
        } else {
            s.stats.rejected += 1;
            ctx.send(
                from,
                MeshMessage::Reply {
                    edge,
                    attempt,
                    error: Some(ErrorKind::Overloaded),
                },
            );
        }
    }

    /// The caller gave up on an attempt: dropped from the queue, or its worker freed
    /// and its plain dependency calls cancelled in turn (a pipeline's calls run out on
    /// their own policy: the pipeline has no call-level cancel).
    fn on_cancel(&mut self, from: NodeId, edge: u32, attempt: u64, ctx: &mut Ctx<'_, Self>) {
        let Some(s) = &mut self.service else { return };
        if !s.honors_cancel {
            return;
        }
        let is = |r: &Incoming| r.from == from && r.edge == edge && r.attempt == attempt;
        if let Some(k) = s.queue.iter().position(is) {
            s.queue.remove(k);
            s.stats.cancelled += 1;
            return;
        }
        let Some(id) = s
            .jobs
            .iter()
            .find_map(|(id, j)| is(&j.request).then_some(*id))
        else {
            return;
        };
        s.jobs.remove(&id);
        s.stats.cancelled += 1;
        ctx.cancel_timer(timer(JOB_TIMER, id));
        for c in self.callers.values_mut() {
            if c.pipeline.is_some() {
                continue;
            }
            let mine: Vec<u64> = c
                .open
                .iter()
                .filter_map(|(a, o)| (o.owner == Owner::Job(id)).then_some(*a))
                .collect();
            for a in mine {
                c.open.remove(&a);
                c.stats.failed += 1;
                ctx.send(
                    c.to,
                    MeshMessage::Cancel {
                        edge: c.edge,
                        attempt: a,
                    },
                );
            }
        }
        self.drive(VecDeque::new(), ctx);
    }

    fn on_reply(
        &mut self,
        edge: u32,
        attempt: u64,
        error: Option<ErrorKind>,
        ctx: &mut Ctx<'_, Self>,
    ) {
        let now = ctx.now();
        let Some(c) = self.callers.get_mut(&edge) else {
            return;
        };
        let done = match &mut c.pipeline {
            Some(p) => {
                let actions = p
                    .on_result(now, attempt, error, ctx.rng())
                    .unwrap_or_default();
                Self::apply(c, actions, ctx)
            }
            None => match c.open.remove(&attempt) {
                Some(open) => {
                    Self::record(&mut c.stats, now.saturating_since(open.started), error);
                    vec![(open.owner, error)]
                }
                None => Vec::new(),
            },
        };
        self.drive(done.into(), ctx);
    }

    fn schedule_arrival(&self, ctx: &mut Ctx<'_, Self>) {
        if self.rate == 0 {
            return;
        }
        let mean_ms = 1_000.0 / f64::from(self.rate);
        let gap = ctx.rng().exponential(mean_ms);
        let us = libm::round(gap * 1_000.0).clamp(1.0, 3.6e9) as u64;
        ctx.set_timer(timer(ARRIVAL_TIMER, 0), Duration(us));
    }
}

impl Node for MeshNode {
    type Message = MeshMessage;
    type Request = Control;
    type Response = ();
    type Config = Mesh;

    fn recover(id: NodeId, mesh: &Mesh, _disk: &Disk) -> Self {
        let callers = mesh
            .edges()
            .iter()
            .enumerate()
            .filter(|(_, e)| e.from == id)
            .map(|(k, e)| {
                let caller = EdgeCaller {
                    edge: k as u32,
                    to: e.to,
                    // Checked by `Mesh::new`: it cannot fail here.
                    pipeline: e.policy.as_ref().and_then(|p| Pipeline::new(p).ok()),
                    open: BTreeMap::new(),
                    next_call: 0,
                    stats: EdgeStats::default(),
                };
                (k as u32, caller)
            })
            .collect::<BTreeMap<_, _>>();
        let deps = callers
            .values()
            .map(|c| {
                let w = mesh.edges().get(c.edge as usize).map_or(1, |e| e.weight);
                (c.edge, w)
            })
            .collect();
        MeshNode {
            id,
            callers,
            service: mesh.service_of(id).map(|s| ServiceState::new(s, deps)),
            rate: if id == CLIENT {
                mesh.requests_per_sec()
            } else {
                0
            },
        }
    }

    fn on_start(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.schedule_arrival(ctx);
    }

    fn on_message(&mut self, from: NodeId, msg: MeshMessage, ctx: &mut Ctx<'_, Self>) {
        match msg {
            MeshMessage::Call { edge, attempt } => self.on_call(from, edge, attempt, ctx),
            MeshMessage::Reply {
                edge,
                attempt,
                error,
            } => self.on_reply(edge, attempt, error, ctx),
            MeshMessage::Cancel { edge, attempt } => self.on_cancel(from, edge, attempt, ctx),
        }
    }

    fn on_timer(&mut self, t: TimerId, ctx: &mut Ctx<'_, Self>) {
        let low = t & LOW_MASK;
        match t >> KIND_SHIFT {
            EDGE_TIMER => {
                let now = ctx.now();
                let Some(c) = self.callers.get_mut(&(low as u32)) else {
                    return;
                };
                let Some(p) = &mut c.pipeline else { return };
                let actions = p.handle_timeout(now, ctx.rng());
                let done = Self::apply(c, actions, ctx);
                self.drive(done.into(), ctx);
            }
            JOB_TIMER => {
                let Some(s) = &self.service else { return };
                if !s.jobs.get(&low).is_some_and(|j| j.working) {
                    return;
                }
                let p = s.error_rate();
                let error = ctx.rng().chance(p).then_some(ErrorKind::Internal);
                self.finish_job(low, error, ctx);
                self.drive(VecDeque::new(), ctx);
            }
            ARRIVAL_TIMER => {
                self.schedule_arrival(ctx);
                let done = self.start_call(0, Owner::Request, ctx);
                self.drive(done.into(), ctx);
            }
            _ => {}
        }
    }

    fn on_request(&mut self, request: ClientRequest<Control>, ctx: &mut Ctx<'_, Self>) {
        let reply = match &mut self.service {
            Some(s) => {
                s.fault = match request.body {
                    Control::Slow { factor } => ServiceFault {
                        latency_factor: factor.max(1),
                        ..s.fault
                    },
                    Control::Fail { error_rate } => ServiceFault {
                        error_rate: Some(error_rate.clamp(0.0, 1.0)),
                        ..s.fault
                    },
                    Control::Heal => ServiceFault::default(),
                };
                ctx.state_change(format!("fault {:?}", s.fault));
                Reply::Ok(())
            }
            None => Reply::Fail("not a service".into()),
        };
        ctx.reply(request.client, request.id, reply);
    }

    fn message_kind(msg: &MeshMessage) -> &'static str {
        match msg {
            MeshMessage::Call { .. } => "call",
            MeshMessage::Reply { error: None, .. } => "ok",
            MeshMessage::Reply { .. } => "error",
            MeshMessage::Cancel { .. } => "cancel",
        }
    }

    fn role(&self) -> &'static str {
        match self.id {
            CLIENT => "client",
            GATEWAY => "gateway",
            _ => "service",
        }
    }
}
