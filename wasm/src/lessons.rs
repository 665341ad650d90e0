//! The npm API that plays lessons (the lessons themselves are data beside each lab in the
//! core, listed by `distlab_core::registry::lessons`): `lessons(id)` lists a lab's
//! lessons, and `lab.advanceLesson(pause, startedMs, ms)` plays a step a slice at a time,
//! stopping exactly where every other reader of the lesson stops.

pub use distlab_core::lab::lesson::{Pause, advance};
