//! The count-min sketch (Cormode & Muthukrishnan, "An Improved Data Stream Summary: The
//! Count-Min Sketch and its Applications", J. Algorithms 2005): `d` rows of `w` counters;
//! adding `c` to a key adds to one counter per row, and a point query answers the
//! smallest of the key's counters. It never underestimates, and with
//! `w = ⌈e/ε⌉`, `d = ⌈ln(1/δ)⌉` it overestimates by more than `ε·N` (`N` the total added)
//! with probability at most `δ`.
//!
//! Conservative update (Estan & Varghese, "New Directions in Traffic Measurement and
//! Accounting", SIGCOMM 2002) raises each of the key's counters only as far as the new
//! estimate needs — to `max(counter, min + c)` — which keeps both guarantees and cuts the
//! overestimate on skewed streams. It is on by default; off gives the original sketch.
//!
//! Add and query are O(d).

use crate::alloc;
use crate::error::{DistlabError, Result};
use crate::sketch::hash::DoubleHash;

/// The most counters a sketch may hold (2^28: 2 GiB of u64).
pub const MAX_CELLS: u64 = 1 << 28;

/// A count-min sketch over byte-string keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountMin {
    width: u64,
    depth: u32,
    /// Row `r`'s counters are `cells[r·w .. (r+1)·w]`.
    cells: Vec<u64>,
    total: u64,
    conservative: bool,
}

impl CountMin {
    /// `depth` rows of `width` counters (errors name `width` or `depth`).
    pub fn new(width: u64, depth: u32, conservative: bool) -> Result<Self> {
        if width == 0 || width > MAX_CELLS {
            return Err(DistlabError::field(
                "width",
                format!("must be between 1 and {MAX_CELLS}, got {width}"),
            ));
        }
        if depth == 0 || u64::from(depth) * width > MAX_CELLS {
            return Err(DistlabError::field(
                "depth",
                format!(
                    "must be at least 1 with width × depth at most {MAX_CELLS}, got {depth} \
                     rows of {width}"
                ),
            ));
        }
        Ok(CountMin {
            width,
            depth,
            cells: alloc::filled((width * u64::from(depth)) as usize, 0, "width")?,
            total: 0,
            conservative,
        })
    }

    /// The sketch whose point queries are within `epsilon·N` with probability at least
    /// `1 − delta`: `w = ⌈e/ε⌉`, `d = ⌈ln(1/δ)⌉` (errors name `epsilon` or `delta`).
    pub fn with_error(epsilon: f64, delta: f64, conservative: bool) -> Result<Self> {
        for (field, v) in [("epsilon", epsilon), ("delta", delta)] {
            if !(v > 0.0 && v < 1.0) {
                return Err(DistlabError::field(
                    field,
                    format!("must be greater than 0 and less than 1, got {v}"),
                ));
            }
        }
        let width = libm::ceil(core::f64::consts::E / epsilon);
        let depth = libm::ceil(libm::log(1.0 / delta)).max(1.0);
        if width * depth > MAX_CELLS as f64 {
            return Err(DistlabError::field(
                "epsilon",
                format!(
                    "ε = {epsilon} and δ = {delta} need {width} × {depth} counters, more than \
                     {MAX_CELLS}"
                ),
            ));
        }
        CountMin::new(width as u64, depth as u32, conservative)
    }

    pub fn width(&self) -> u64 {
        self.width
    }

    pub fn depth(&self) -> u32 {
        self.depth
    }

    pub fn conservative(&self) -> bool {
        self.conservative
    }

    /// `N`: everything added so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The `ε` of the bound this width gives: `e / w`.
    pub fn epsilon(&self) -> f64 {
        core::f64::consts::E / self.width as f64
    }

    /// The `δ` of the bound this depth gives: `e^−d`.
    pub fn delta(&self) -> f64 {
        libm::exp(-f64::from(self.depth))
    }

    /// Counter `col` of row `row` (0 out of range).
    pub fn cell(&self, row: u32, col: u64) -> u64 {
        if row >= self.depth || col >= self.width {
            return 0;
        }
        self.cells[(u64::from(row) * self.width + col) as usize]
    }

    /// The column `key` maps to in each row.
    pub fn columns(&self, key: &[u8]) -> impl Iterator<Item = u64> + use<> {
        let h = DoubleHash::of(key);
        let w = self.width;
        (0..u64::from(self.depth)).map(move |r| h.probe(r, w))
    }

    /// Adds `count` occurrences of `key` (counters saturate at `u64::MAX`).
    pub fn add(&mut self, key: &[u8], count: u64) {
        let h = DoubleHash::of(key);
        let w = self.width;
        let at = |r: u64| (r * w + h.probe(r, w)) as usize;
        self.total = self.total.saturating_add(count);
        if self.conservative {
            let min = (0..u64::from(self.depth))
                .map(|r| self.cells[at(r)])
                .min()
                .unwrap_or(0);
            let target = min.saturating_add(count);
            for r in 0..u64::from(self.depth) {
                let c = &mut self.cells[at(r)];
                *c = (*c).max(target);
            }
        } else {
            for r in 0..u64::from(self.depth) {
                let c = &mut self.cells[at(r)];
                *c = c.saturating_add(count);
            }
        }
    }

    /// The estimate of `key`'s count: never below the truth.
    pub fn estimate(&self, key: &[u8]) -> u64 {
        let h = DoubleHash::of(key);
        (0..u64::from(self.depth))
            .map(|r| self.cells[(r * self.width + h.probe(r, self.width)) as usize])
            .min()
            .unwrap_or(0)
    }

    /// Adds `other`'s counts (same width and depth). For conservative-update sketches the
    /// sum still never underestimates, though it loses some of the update's advantage.
    pub fn merge(&mut self, other: &CountMin) -> Result<()> {
        if (other.width, other.depth) != (self.width, self.depth) {
            return Err(DistlabError::field(
                "other",
                format!(
                    "a merge needs sketches of one shape: {} × {} here, {} × {} there",
                    self.depth, self.width, other.depth, other.width
                ),
            ));
        }
        for (a, b) in self.cells.iter_mut().zip(&other.cells) {
            *a = a.saturating_add(*b);
        }
        self.total = self.total.saturating_add(other.total);
        Ok(())
    }

    pub fn memory_bytes(&self) -> usize {
        self.cells.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn shape_from_epsilon_and_delta() {
        let s = CountMin::with_error(0.01, 0.01, true).unwrap();
        assert_eq!((s.width(), s.depth()), (272, 5));
        assert!(s.epsilon() <= 0.01 && s.delta() <= 0.01);
    }

    #[test]
    fn bad_parameters_name_the_field() {
        for (r, field) in [
            (CountMin::with_error(0.0, 0.1, true), "`epsilon`"),
            (CountMin::with_error(0.1, 1.0, true), "`delta`"),
            (CountMin::with_error(1e-9, 1e-9, true), "`epsilon`"),
            (CountMin::new(0, 3, true), "`width`"),
            (CountMin::new(10, 0, true), "`depth`"),
        ] {
            let e = r.unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
    }

    #[test]
    fn conservative_update_is_never_worse_on_a_skewed_stream() {
        let mut plain = CountMin::new(64, 3, false).unwrap();
        let mut cu = CountMin::new(64, 3, true).unwrap();
        let mut truth = BTreeMap::new();
        let mut rng = crate::rng::SimRng::new(7);
        for _ in 0..20_000 {
            // Roughly Zipf: key k with weight 1/(k+1).
            let k = (1.0 / rng.next_f64_open0()) as u64 % 500;
            plain.add(&k.to_le_bytes(), 1);
            cu.add(&k.to_le_bytes(), 1);
            *truth.entry(k).or_insert(0u64) += 1;
        }
        let (mut err_plain, mut err_cu) = (0, 0);
        for (k, t) in &truth {
            let (p, c) = (
                plain.estimate(&k.to_le_bytes()),
                cu.estimate(&k.to_le_bytes()),
            );
            assert!(c >= *t && p >= c, "key {k}: truth {t}, cu {c}, plain {p}");
            err_plain += p - t;
            err_cu += c - t;
        }
        assert!(err_cu * 3 < err_plain * 2, "{err_cu} vs {err_plain}");
    }

    proptest! {
        #[test]
        fn never_underestimates(adds in proptest::collection::vec((0u16..200, 1u64..5), 1..400),
                                width in 1u64..40, depth in 1u32..5, conservative: bool) {
            let mut s = CountMin::new(width, depth, conservative).unwrap();
            let mut truth = BTreeMap::new();
            for (k, c) in &adds {
                s.add(&k.to_le_bytes(), *c);
                *truth.entry(*k).or_insert(0) += c;
            }
            for (k, t) in &truth {
                prop_assert!(s.estimate(&k.to_le_bytes()) >= *t);
            }
            prop_assert_eq!(s.total(), truth.values().sum::<u64>());
        }
    }
}
