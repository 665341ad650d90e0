//! Lamport clocks (Lamport 1978, "Time, clocks, and the ordering of events in a
//! distributed system", CACM 21(7)): one counter per process, ticked before each event
//! and raised past every timestamp received, so that if a happened before b then
//! C(a) < C(b) — the converse does not hold (that is what vector clocks add). Ties between
//! processes break by process id to give a total order.

use serde::{Deserialize, Serialize};

use crate::error::{DistlabError, Result};

/// A Lamport clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LamportClock {
    time: u64,
}

impl LamportClock {
    pub fn new() -> Self {
        LamportClock::default()
    }

    /// The last timestamp given out.
    pub fn time(&self) -> u64 {
        self.time
    }

    /// A local event or a send: ticks and returns the event's timestamp.
    pub fn tick(&mut self) -> Result<u64> {
        self.time = self.time.checked_add(1).ok_or_else(overflow)?;
        Ok(self.time)
    }

    /// Receiving a message stamped `remote`: the clock passes both, and the receive
    /// event's timestamp is returned.
    pub fn receive(&mut self, remote: u64) -> Result<u64> {
        self.time = self.time.max(remote).checked_add(1).ok_or_else(overflow)?;
        Ok(self.time)
    }
}

fn overflow() -> DistlabError {
    DistlabError::InvalidState("the Lamport clock would overflow".into())
}
