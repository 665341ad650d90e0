//! Hybrid logical clocks (Kulkarni, Demirbas, Madappa, Avva & Leone 2014, "Logical
//! physical clocks and consistent snapshots in globally distributed databases", OPODIS;
//! Figure 5, the HLC algorithm). A timestamp is `(l, c)`: `l` the largest physical time
//! the process has heard of, `c` a counter that orders events sharing an `l`. It keeps
//! Lamport's guarantee (a happened before b ⇒ hlc(a) < hlc(b)) while `l` stays within the
//! clock skew ε of physical time, and `c` stays bounded (Theorem 2: `c` never exceeds the
//! number of events in the causal past with the same `l`).
//!
//! Exactly the paper's rules. A receive is *one* event: `l` becomes the maximum of the old
//! `l`, the message's and the physical clock, and `c` is set once by which of them won —
//! it does not first tick as for a local event and then tick again for the receipt, a
//! variant that inflates `c` and breaks Theorem 2's bound.
//!
//! Divergence is checked, as production HLCs (CockroachDB) do: a message whose `l` is more
//! than `max_offset_ms` ahead of the receiver's physical clock is refused, so one process
//! with a clock far in the future cannot drag every `l` there.

use serde::{Deserialize, Serialize};

use crate::error::{DistlabError, Result};

/// An HLC timestamp: compare `l`, then `c`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HlcTimestamp {
    /// Physical part, ms.
    pub l: u64,
    /// Logical part.
    pub c: u64,
}

/// One process's hybrid logical clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Hlc {
    last: HlcTimestamp,
    /// The most a received `l` may lead the physical clock by.
    max_offset_ms: u64,
}

impl Hlc {
    /// A clock that refuses messages more than `max_offset_ms` ahead of its physical clock.
    pub fn new(max_offset_ms: u64) -> Self {
        Hlc {
            last: HlcTimestamp::default(),
            max_offset_ms,
        }
    }

    /// The last timestamp given out.
    pub fn last(&self) -> HlcTimestamp {
        self.last
    }

    pub fn max_offset_ms(&self) -> u64 {
        self.max_offset_ms
    }

    /// A local or send event at physical time `pt_ms` (Figure 5, "send or local event").
    pub fn tick(&mut self, pt_ms: u64) -> Result<HlcTimestamp> {
        let old = self.last.l;
        let l = old.max(pt_ms);
        let c = if l == old {
            self.last.c.checked_add(1).ok_or_else(overflow)?
        } else {
            0
        };
        self.last = HlcTimestamp { l, c };
        Ok(self.last)
    }

    /// Receipt of a message stamped `m` at physical time `pt_ms` (Figure 5, "receive event
    /// of message m"). Refused, the clock unchanged, when `m.l` leads `pt_ms` by more than
    /// the maximum offset.
    pub fn receive(&mut self, m: HlcTimestamp, pt_ms: u64) -> Result<HlcTimestamp> {
        if m.l > pt_ms.saturating_add(self.max_offset_ms) {
            return Err(DistlabError::InvalidState(format!(
                "a message stamped l = {} ms is {} ms ahead of the physical clock, more than \
                 the maximum offset of {} ms",
                m.l,
                m.l - pt_ms,
                self.max_offset_ms
            )));
        }
        let old = self.last;
        let l = old.l.max(m.l).max(pt_ms);
        let c = if l == old.l && l == m.l {
            old.c.max(m.c).checked_add(1)
        } else if l == old.l {
            old.c.checked_add(1)
        } else if l == m.l {
            m.c.checked_add(1)
        } else {
            Some(0)
        }
        .ok_or_else(overflow)?;
        self.last = HlcTimestamp { l, c };
        Ok(self.last)
    }
}

fn overflow() -> DistlabError {
    DistlabError::InvalidState("the HLC's logical counter would overflow".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receive_ticks_once() {
        // The paper's example shape: the receiver's l and the message's l are equal and
        // ahead of the physical clock: c = max(c, c_m) + 1, not + 2.
        let mut a = Hlc::new(1_000);
        a.tick(10).unwrap();
        a.tick(10).unwrap();
        assert_eq!(a.last(), HlcTimestamp { l: 10, c: 1 });
        let t = a.receive(HlcTimestamp { l: 10, c: 4 }, 9).unwrap();
        assert_eq!(t, HlcTimestamp { l: 10, c: 5 });
        // The message's l wins: its c + 1.
        let t = a.receive(HlcTimestamp { l: 12, c: 7 }, 11).unwrap();
        assert_eq!(t, HlcTimestamp { l: 12, c: 8 });
        // Physical time wins: c restarts.
        let t = a.receive(HlcTimestamp { l: 12, c: 9 }, 20).unwrap();
        assert_eq!(t, HlcTimestamp { l: 20, c: 0 });
    }

    #[test]
    fn a_message_from_too_far_ahead_is_refused() {
        let mut a = Hlc::new(100);
        a.tick(1_000).unwrap();
        let before = a;
        assert!(a.receive(HlcTimestamp { l: 1_101, c: 0 }, 1_000).is_err());
        assert_eq!(a, before);
        assert!(a.receive(HlcTimestamp { l: 1_100, c: 0 }, 1_000).is_ok());
    }
}
