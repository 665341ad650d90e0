//! Which lessons each lab carries (the lessons themselves are data beside each lab in
//! the core), and the npm API that plays them: `lessons(id)` lists a lab's lessons, and
//! `lab.advanceLesson(pause, startedMs, ms)` plays a step a slice at a time, stopping
//! exactly where every other reader of the lesson stops.

use distlab_core::lab::lesson::{self, Lesson};
use distlab_core::{consensus, ratelimit, scenario, sim_labs};

/// The lessons lab `id` carries, in the order to take them (none for most labs).
pub fn lessons_of(id: &str) -> Vec<Lesson> {
    match id {
        "consensus.raft" => consensus::raft::lessons::lessons(),
        "scenario.disruptive-rejoin" => scenario::disruptive_rejoin::lessons(),
        "ratelimit.fixed-window" => ratelimit::compare_lab::boundary_burst_lessons(),
        "sim.linearizability" => sim_labs::linearizability::lessons(),
        _ => Vec::new(),
    }
}

/// Every lab with lessons, for tests.
#[cfg(test)]
pub const WITH_LESSONS: [&str; 4] = [
    "consensus.raft",
    "scenario.disruptive-rejoin",
    "ratelimit.fixed-window",
    "sim.linearizability",
];

pub use lesson::{Pause, advance};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_lesson_plays_to_its_end_with_each_condition_met() {
        let mut count = 0;
        for id in WITH_LESSONS {
            let lessons = lessons_of(id);
            assert!(!lessons.is_empty(), "{id}");
            for l in lessons {
                let (_, held) =
                    lesson::play_through(&l, |c| distlab_core::create_lab(id, c)).unwrap();
                assert!(held.iter().all(|h| *h), "{id}/{}: {held:?}", l.id);
                count += 1;
            }
        }
        assert_eq!(count, 8);
    }
}
