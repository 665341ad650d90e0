//! Bulkhead tests.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::lab::json::from_value;

fn ms(n: u64) -> Time {
    Time::from_millis(n)
}

fn bulkhead(v: serde_json::Value) -> Bulkhead {
    Bulkhead::new(from_value("config", &v).unwrap())
}

fn enter(b: &mut Bulkhead, at: Time, id: u64) -> BulkheadEntry {
    b.try_enter(at, id).unwrap().0
}

#[test]
fn the_defaults_are_resilience4js_fail_fast_semaphore() {
    let mut b = Bulkhead::new(BulkheadConfig::default());
    for id in 0..25 {
        assert_eq!(enter(&mut b, ms(0), id), BulkheadEntry::Admitted);
    }
    assert_eq!(enter(&mut b, ms(0), 25), BulkheadEntry::Rejected);
}

#[test]
fn slots_then_a_fifo_queue_then_fail_fast() {
    let mut b = bulkhead(json!({"maxConcurrentCalls": 2, "maxQueue": 2, "maxWaitMs": 100}));
    assert_eq!(enter(&mut b, ms(0), 1), BulkheadEntry::Admitted);
    assert_eq!(enter(&mut b, ms(0), 2), BulkheadEntry::Admitted);
    assert_eq!(
        enter(&mut b, ms(10), 3),
        BulkheadEntry::Queued {
            position: 0,
            expires_at: ms(110)
        }
    );
    assert!(matches!(
        enter(&mut b, ms(20), 4),
        BulkheadEntry::Queued { position: 1, .. }
    ));
    assert_eq!(enter(&mut b, ms(20), 5), BulkheadEntry::Rejected);
    let events = b.release(ms(50), 2).unwrap();
    assert_eq!(
        events,
        [WaiterEvent::Admitted {
            id: 3,
            waited: Duration::from_millis(40)
        }]
    );
    assert_eq!(b.holders().collect::<Vec<_>>(), [1, 3]);
    assert_eq!(b.waiters().map(|w| w.id).collect::<Vec<_>>(), [4]);
}

#[test]
fn a_wait_of_zero_means_no_queue() {
    let mut b = bulkhead(json!({"maxConcurrentCalls": 1, "maxQueue": 10, "maxWaitMs": 0}));
    enter(&mut b, ms(0), 1);
    assert_eq!(enter(&mut b, ms(0), 2), BulkheadEntry::Rejected);
}

/// A dangerous schedule: a slot frees at the exact instant the oldest waiter's wait runs
/// out, while a younger waiter is still within its wait. The old one must not be admitted
/// late, and the slot must not be lost: it goes to the younger one.
#[test]
fn a_slot_freed_as_the_oldest_waiter_expires_goes_to_the_next() {
    let mut b = bulkhead(json!({"maxConcurrentCalls": 1, "maxQueue": 5, "maxWaitMs": 100}));
    enter(&mut b, ms(0), 1);
    enter(&mut b, ms(0), 2);
    enter(&mut b, ms(30), 3);
    let events = b.release(ms(100), 1).unwrap();
    assert_eq!(
        events,
        [
            WaiterEvent::TimedOut { id: 2 },
            WaiterEvent::Admitted {
                id: 3,
                waited: Duration::from_millis(70)
            }
        ]
    );
    assert_eq!(b.in_use(), 1);
    assert_eq!(b.stats().timed_out, 1);
}

#[test]
fn waiters_time_out_by_the_timer_or_the_next_arrival() {
    let mut b = bulkhead(json!({"maxConcurrentCalls": 1, "maxQueue": 5, "maxWaitMs": 100}));
    enter(&mut b, ms(0), 1);
    enter(&mut b, ms(0), 2);
    enter(&mut b, ms(50), 3);
    assert_eq!(b.poll_timeout(), Some(ms(100)));
    assert_eq!(b.handle_timeout(ms(99)), []);
    assert_eq!(b.handle_timeout(ms(100)), [WaiterEvent::TimedOut { id: 2 }]);
    let (entry, events) = b.try_enter(ms(150), 4).unwrap();
    assert_eq!(events, [WaiterEvent::TimedOut { id: 3 }]);
    assert!(matches!(entry, BulkheadEntry::Queued { position: 0, .. }));
}

#[test]
fn a_waiter_may_leave_and_mistakes_are_errors() {
    let mut b = bulkhead(json!({"maxConcurrentCalls": 1, "maxQueue": 5, "maxWaitMs": 100}));
    enter(&mut b, ms(0), 1);
    enter(&mut b, ms(0), 2);
    enter(&mut b, ms(0), 3);
    b.cancel(2).unwrap();
    assert_eq!(
        b.release(ms(10), 1).unwrap(),
        [WaiterEvent::Admitted {
            id: 3,
            waited: Duration::from_millis(10)
        }]
    );
    for e in [
        b.try_enter(ms(10), 3).unwrap_err(),
        b.release(ms(10), 1).unwrap_err(),
        b.cancel(2).unwrap_err(),
    ] {
        assert!(e.to_string().contains("`id`"), "{e}");
    }
}

#[test]
fn bad_configs_name_their_field() {
    for (v, field) in [
        (
            json!({"maxConcurrentCalls": 0}),
            "config.maxConcurrentCalls",
        ),
        (json!({"maxQueue": 100001}), "config.maxQueue"),
        (json!({"maxWaitMs": -5}), "config.maxWaitMs"),
    ] {
        let e = from_value::<BulkheadConfig>("config", &v)
            .unwrap_err()
            .to_string();
        assert!(e.contains(field), "{e}");
    }
}

#[derive(Debug, Clone)]
enum Op {
    Enter,
    Release(usize),
    Cancel(usize),
    Advance(u64),
    Timer,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Enter),
        3 => any::<usize>().prop_map(Op::Release),
        1 => any::<usize>().prop_map(Op::Cancel),
        2 => prop_oneof![Just(0u64), 1..150u64].prop_map(Op::Advance),
        1 => Just(Op::Timer),
    ]
}

/// Where each caller is, by the bulkhead's own reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Holding,
    Waiting,
    Done,
    TimedOut,
    Cancelled,
    Rejected,
}

proptest! {
    /// Over random schedules: never more slots taken than the limit, never a longer queue
    /// than its bound, and every caller is accounted for — the bulkhead's slots and queue
    /// are exactly the callers its reports say hold and wait.
    #[test]
    fn never_over_the_limit_and_never_loses_a_waiter(
        ops in prop::collection::vec(op(), 1..400),
        limit in 1u32..5, queue in 0u32..5, wait in 0u64..200,
    ) {
        let mut b = bulkhead(json!({"maxConcurrentCalls": limit, "maxQueue": queue, "maxWaitMs": wait}));
        let mut now = Time::ZERO;
        let mut fate: BTreeMap<u64, Fate> = BTreeMap::new();
        let mut next = 0u64;
        let apply = |fate: &mut BTreeMap<u64, Fate>, events: Vec<WaiterEvent>| {
            for e in events {
                match e {
                    WaiterEvent::Admitted { id, .. } => {
                        assert_eq!(fate.insert(id, Fate::Holding), Some(Fate::Waiting));
                    }
                    WaiterEvent::TimedOut { id } => {
                        assert_eq!(fate.insert(id, Fate::TimedOut), Some(Fate::Waiting));
                    }
                }
            }
        };
        for op in ops {
            match op {
                Op::Enter => {
                    let (entry, events) = b.try_enter(now, next).unwrap();
                    apply(&mut fate, events);
                    fate.insert(next, match entry {
                        BulkheadEntry::Admitted => Fate::Holding,
                        BulkheadEntry::Queued { .. } => Fate::Waiting,
                        BulkheadEntry::Rejected => Fate::Rejected,
                    });
                    next += 1;
                }
                Op::Release(i) => {
                    let holders: Vec<u64> = b.holders().collect();
                    if !holders.is_empty() {
                        let id = holders[i % holders.len()];
                        let events = b.release(now, id).unwrap();
                        fate.insert(id, Fate::Done);
                        apply(&mut fate, events);
                    }
                }
                Op::Cancel(i) => {
                    let waiting: Vec<u64> = b.waiters().map(|w| w.id).collect();
                    if !waiting.is_empty() {
                        let id = waiting[i % waiting.len()];
                        b.cancel(id).unwrap();
                        fate.insert(id, Fate::Cancelled);
                    }
                }
                Op::Advance(d) => now = now.saturating_add(Duration::from_millis(d)),
                Op::Timer => apply(&mut fate, b.handle_timeout(now)),
            }
            prop_assert!(b.in_use() <= limit);
            prop_assert!(b.queue_len() <= queue);
            let holding: Vec<u64> = fate.iter().filter(|(_, f)| **f == Fate::Holding).map(|(id, _)| *id).collect();
            let waiting: Vec<u64> = fate.iter().filter(|(_, f)| **f == Fate::Waiting).map(|(id, _)| *id).collect();
            prop_assert_eq!(b.holders().collect::<Vec<_>>(), holding);
            let mut queued: Vec<u64> = b.waiters().map(|w| w.id).collect();
            // FIFO: ids are handed out increasing, so the queue is in id order.
            prop_assert!(queued.windows(2).all(|w| w[0] < w[1]));
            queued.sort_unstable();
            prop_assert_eq!(queued, waiting);
            // A slot is never idle while someone waits.
            prop_assert!(b.queue_len() == 0 || b.in_use() == limit);
        }
        let s = b.stats();
        prop_assert_eq!(
            s.queued,
            s.admitted_from_queue + s.timed_out + s.cancelled + u64::from(b.queue_len())
        );
    }
}
