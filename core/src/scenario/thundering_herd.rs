//! `scenario.thundering-herd`: a hot cache key expires and every request that misses it
//! goes to the database at once — each load slowing the others, so the herd lasts longer
//! than one load would. The stampede lab ([`crate::cache::stampede_lab`]) with the
//! unprotected cache in front, beside its two fixes under the same seed and workload:
//! request coalescing (singleflight) and probabilistic early expiration (XFetch, Vattani,
//! Chierichetti & Lowenstein, VLDB 2015).

use crate::cache::stampede_lab::{Protection, StampedeFront, StampedeLab};

/// `scenario.thundering-herd`: the herd first, then the fixes.
#[derive(Debug, Clone)]
pub struct HerdFront;

impl StampedeFront for HerdFront {
    const ID: &'static str = "scenario.thundering-herd";
    const ORDER: [Protection; 3] = [
        Protection::None,
        Protection::Singleflight,
        Protection::Xfetch,
    ];
}

/// The scenario's lab.
pub type ThunderingHerdLab = StampedeLab<HerdFront>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::stampede_lab::StampedeLabConfig;
    use crate::lab::{Driven, LabModel};
    use crate::time::Time;

    /// The largest value of series `name` sampled after `after_ms`.
    fn peak(view: &crate::lab::View, name: &str, after_ms: f64) -> f64 {
        view.metrics
            .iter()
            .find(|s| s.name == name)
            .map(|s| {
                s.x.iter()
                    .zip(&s.y)
                    .filter(|(x, y)| **x > after_ms && y.is_finite())
                    .map(|(_, y)| *y)
                    .fold(0.0, f64::max)
            })
            .unwrap_or(f64::NAN)
    }

    /// The herd shows in the lab's own metrics: without protection the backing store's
    /// loads per second spike each time the key expires; singleflight stays at one load
    /// per expiry and XFetch at a few. (The cold start at time zero is a herd for XFetch
    /// too — it has no value to expire early — so it is left out.)
    #[test]
    fn the_unprotected_herd_is_a_load_spike_in_the_metrics() {
        for seed in 0..20 {
            let mut lab = Driven::<ThunderingHerdLab>::new(&StampedeLabConfig {
                seed,
                ..Default::default()
            })
            .unwrap();
            while lab.step_until(Time::from_millis(9_000)) {}
            let view = lab.view();
            let after = 1_000.0;
            let none = peak(&view, "backing loads: no protection", after);
            let sf = peak(&view, "backing loads: singleflight", after);
            let xf = peak(&view, "backing loads: XFetch", after);
            // One load in a 100 ms sample is 10 loads/s; the herd is 200 requests/s, each
            // a load, for the 100 ms or more the first load takes.
            assert!(
                none >= 100.0,
                "seed {seed}: no protection peaks at {none} loads/s"
            );
            assert!(
                sf <= 10.0,
                "seed {seed}: singleflight peaks at {sf} loads/s"
            );
            // XFetch's readers decide on their own, so a few may recompute before the
            // first recompute lands (at 200 requests/s and β = 1 about one in three
            // requests does so in the last δ before expiry): several loads, not a herd.
            assert!(
                xf * 2.0 <= none,
                "seed {seed}: XFetch peaks at {xf} loads/s, the herd at {none}"
            );
            // XFetch refreshed the key early, about once per TTL.
            let xt = lab.totals_of(Protection::Xfetch);
            assert!(xt.early_loads >= 3, "seed {seed}: {xt:?}");
        }
    }
}
