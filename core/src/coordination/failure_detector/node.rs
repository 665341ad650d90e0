//! The failure detectors as a cluster protocol: node 0 monitors, every other node sends
//! it a heartbeat every interval on its own clock. The monitor runs, for each sender, a
//! [`FixedTimeout`] and a [`PhiAccrual`] detector judged against a ladder of thresholds
//! at once (the configured one first), re-evaluating every `checkEvery` and at each
//! heartbeat, so the lab can show what each threshold would have decided on one run.
//!
//! Everything here is volatile: a monitor that restarts knows nothing of the senders,
//! and treats them as not monitored (φ = 0) until they are heard from again, as Pekko does.

use std::hash::{Hash, Hasher};

use crate::coordination::failure_detector::{
    FixedTimeout, FixedTimeoutConfig, PhiAccrual, PhiAccrualConfig,
};
use crate::error::Result;
use crate::sim::disk::Disk;
use crate::sim::node::{ClientRequest, Ctx, Fingerprint, Node, NodeId, Reply, TimerId};
use crate::sim::trace::StableHasher;
use crate::time::{Duration, Time};

/// The node every other node heartbeats to.
pub const MONITOR: NodeId = 0;
const HEARTBEAT_TIMER: TimerId = 0;
const CHECK_TIMER: TimerId = 1;
/// Thresholds the monitor also judges φ against, besides the configured one: the lab's
/// detection-time / wrong-suspicion trade-off is read off these.
pub const THRESHOLD_LADDER: [f64; 8] = [0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 16.0];

/// A heartbeat: the sender's count since its boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Heartbeat {
    pub seq: u64,
}

impl Fingerprint for Heartbeat {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        self.seq.hash(h);
    }
}

/// Cluster-wide settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorNodeConfig {
    pub heartbeat_interval: Duration,
    pub check_every: Duration,
    pub phi: PhiAccrualConfig,
    pub fixed: FixedTimeoutConfig,
}

/// What the monitor knows and decides about one sender.
#[derive(Debug, Clone, PartialEq)]
pub struct Watch {
    pub phi: PhiAccrual,
    pub fixed: FixedTimeout,
    pub heartbeats: u64,
    /// The monitor's clock when the verdicts were last made.
    pub evaluated_at: Time,
    /// φ at `evaluated_at`.
    pub last_phi: f64,
    /// One verdict per threshold: the configured one, then [`THRESHOLD_LADDER`].
    pub phi_suspects: Vec<bool>,
    /// Suspicions begun, per threshold.
    pub phi_suspicions: Vec<u64>,
    pub fixed_suspects: bool,
    pub fixed_suspicions: u64,
}

impl Watch {
    fn new(config: &DetectorNodeConfig, thresholds: usize) -> Result<Self> {
        Ok(Watch {
            phi: PhiAccrual::new(config.phi)?,
            fixed: FixedTimeout::new(config.fixed)?,
            heartbeats: 0,
            evaluated_at: Time::ZERO,
            last_phi: 0.0,
            phi_suspects: vec![false; thresholds],
            phi_suspicions: vec![0; thresholds],
            fixed_suspects: false,
            fixed_suspicions: 0,
        })
    }

    /// Every threshold φ is judged against: the configured one, then the ladder.
    pub fn thresholds(&self) -> impl Iterator<Item = f64> + '_ {
        std::iter::once(self.phi.threshold()).chain(THRESHOLD_LADDER)
    }

    /// Makes every verdict at `now`; returns the thresholds (by index) and whether the
    /// fixed timeout began a suspicion.
    fn evaluate(&mut self, now: Time) -> (Vec<usize>, bool) {
        self.evaluated_at = now;
        self.last_phi = self.phi.phi(now);
        let phi = self.last_phi;
        let verdicts: Vec<bool> = self.thresholds().map(|t| phi >= t).collect();
        let mut begun = Vec::new();
        for (i, suspect) in verdicts.into_iter().enumerate() {
            if suspect && !self.phi_suspects[i] {
                self.phi_suspicions[i] += 1;
                begun.push(i);
            }
            self.phi_suspects[i] = suspect;
        }
        let fixed = !self.fixed.is_available(now);
        let fixed_begun = fixed && !self.fixed_suspects;
        if fixed_begun {
            self.fixed_suspicions += 1;
        }
        self.fixed_suspects = fixed;
        (begun, fixed_begun)
    }

    /// Where a verdict does not follow its detector's rule at `evaluated_at` (φ at or
    /// above the threshold, silence beyond the timeout), described; empty when all do.
    pub fn verdict_errors(&self) -> Vec<String> {
        let at = self.evaluated_at;
        let phi = self.phi.phi(at);
        let mut errors = Vec::new();
        for (t, suspects) in self.thresholds().zip(&self.phi_suspects) {
            if (phi >= t) != *suspects {
                errors.push(format!(
                    "φ = {phi:.3} at {at} against threshold {t}, yet suspected = {suspects}"
                ));
            }
        }
        let silent_too_long = !self.fixed.is_available(at);
        if silent_too_long != self.fixed_suspects {
            errors.push(format!(
                "silent {} against timeout {}, yet suspected = {}",
                self.fixed.silence(at),
                self.fixed.timeout(),
                self.fixed_suspects
            ));
        }
        errors
    }
}

/// A monitor or a sender.
#[derive(Debug, Clone)]
pub struct DetectorNode {
    id: NodeId,
    config: DetectorNodeConfig,
    /// Heartbeats sent since boot (senders).
    sent: u64,
    /// Watches by sender id - 1 (monitor; empty on senders).
    watches: Vec<Watch>,
}

impl DetectorNode {
    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// The monitor's watch over `sender`.
    pub fn watch(&self, sender: NodeId) -> Option<&Watch> {
        let i = (sender as usize).checked_sub(1)?;
        self.watches.get(i)
    }

    pub fn watches(&self) -> &[Watch] {
        &self.watches
    }

    /// For tests that build a bad state by hand.
    #[cfg(test)]
    pub(crate) fn watches_mut(&mut self) -> &mut Vec<Watch> {
        &mut self.watches
    }

    fn evaluate(&mut self, i: usize, now: Time, ctx: &mut Ctx<'_, Self>) {
        let Some(w) = self.watches.get_mut(i) else {
            return;
        };
        let (begun, fixed_begun) = w.evaluate(now);
        let sender = i + 1;
        if begun.first() == Some(&0) {
            ctx.state_change(format!("φ suspects n{sender} (φ = {:.2})", w.last_phi));
        }
        if fixed_begun {
            ctx.state_change(format!("the fixed timeout suspects n{sender}"));
        }
    }
}

impl Fingerprint for DetectorNode {
    fn fingerprint_into(&self, h: &mut StableHasher) {
        let DetectorNode {
            id,
            config,
            sent,
            watches,
        } = self;
        id.hash(h);
        let DetectorNodeConfig {
            heartbeat_interval,
            check_every,
            phi: _,
            fixed: _,
        } = config;
        // The detector configs are inside every watch's detectors, hashed there.
        heartbeat_interval.hash(h);
        check_every.hash(h);
        sent.hash(h);
        watches.len().hash(h);
        for w in watches {
            let Watch {
                phi,
                fixed,
                heartbeats,
                evaluated_at,
                last_phi,
                phi_suspects,
                phi_suspicions,
                fixed_suspects,
                fixed_suspicions,
            } = w;
            phi.fingerprint_into(h);
            fixed.hash(h);
            heartbeats.hash(h);
            evaluated_at.hash(h);
            h.write_u64(last_phi.to_bits());
            phi_suspects.hash(h);
            phi_suspicions.hash(h);
            fixed_suspects.hash(h);
            fixed_suspicions.hash(h);
        }
    }
}

impl Node for DetectorNode {
    type Message = Heartbeat;
    type Request = ();
    type Response = ();
    type Config = DetectorNodeConfig;

    fn recover(id: NodeId, config: &DetectorNodeConfig, _disk: &Disk) -> Self {
        DetectorNode {
            id,
            config: *config,
            sent: 0,
            watches: Vec::new(),
        }
    }

    fn on_start(&mut self, ctx: &mut Ctx<'_, Self>) {
        if self.id == MONITOR {
            let thresholds = 1 + THRESHOLD_LADDER.len();
            let senders = ctx.node_count().saturating_sub(1) as usize;
            // The configs were checked when the lab was built, so this cannot fail; a
            // monitor without watches would only see nothing.
            self.watches = (0..senders)
                .filter_map(|_| Watch::new(&self.config, thresholds).ok())
                .collect();
            ctx.set_timer(CHECK_TIMER, self.config.check_every);
        } else {
            ctx.set_timer(HEARTBEAT_TIMER, Duration::ZERO);
        }
    }

    fn on_message(&mut self, from: NodeId, _msg: Heartbeat, ctx: &mut Ctx<'_, Self>) {
        let now = ctx.now();
        let Some(i) = (from as usize).checked_sub(1) else {
            return;
        };
        let Some(w) = self.watches.get_mut(i) else {
            return;
        };
        let was_suspected = w.phi_suspects.first() == Some(&true);
        w.phi.heartbeat(now);
        w.fixed.heartbeat(now);
        w.heartbeats += 1;
        self.evaluate(i, now, ctx);
        if was_suspected
            && self
                .watches
                .get(i)
                .is_some_and(|w| w.phi_suspects.first() == Some(&false))
        {
            ctx.state_change(format!("φ trusts n{from} again"));
        }
    }

    fn on_timer(&mut self, timer: TimerId, ctx: &mut Ctx<'_, Self>) {
        match timer {
            HEARTBEAT_TIMER => {
                ctx.send(MONITOR, Heartbeat { seq: self.sent });
                self.sent += 1;
                ctx.set_timer(HEARTBEAT_TIMER, self.config.heartbeat_interval);
            }
            CHECK_TIMER => {
                let now = ctx.now();
                for i in 0..self.watches.len() {
                    self.evaluate(i, now, ctx);
                }
                ctx.set_timer(CHECK_TIMER, self.config.check_every);
            }
            _ => {}
        }
    }

    fn on_request(&mut self, request: ClientRequest<()>, ctx: &mut Ctx<'_, Self>) {
        ctx.reply(
            request.client,
            request.id,
            Reply::Fail("the failure detectors take no requests".into()),
        );
    }

    fn message_kind(_msg: &Heartbeat) -> &'static str {
        "heartbeat"
    }

    fn role(&self) -> &'static str {
        if self.id == MONITOR {
            "monitor"
        } else {
            "sender"
        }
    }
}
