//! Deadline and call-timeout tests.

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::lab::json::from_value;

fn ms(n: u64) -> Time {
    Time::from_millis(n)
}

fn d(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn config(v: serde_json::Value) -> TimeoutConfig {
    from_value("config", &v).unwrap()
}

#[test]
fn a_downstream_call_gets_the_remaining_time_less_the_margin() {
    let parent = Deadline::after(ms(0), d(100));
    assert_eq!(
        parent.for_downstream(ms(30), d(5), None),
        Some(Deadline(ms(95)))
    );
    assert_eq!(
        parent.for_downstream(ms(30), d(5), Some(d(10))),
        Some(Deadline(ms(40)))
    );
    // 5 ms left, 5 ms margin: nothing to give, fail fast.
    assert_eq!(parent.for_downstream(ms(95), d(5), None), None);
    assert_eq!(parent.for_downstream(ms(200), d(0), None), None);
    assert_eq!(parent.remaining(ms(200)), Duration::ZERO);
    assert!(parent.is_expired(ms(100)) && !parent.is_expired(Time(99_999)));
}

#[test]
fn a_hop_never_extends_the_deadline_it_inherits() {
    let c = config(json!({"overallTimeoutMs": 1000}));
    let inherited = Deadline::after(ms(0), d(300));
    let call = CallTimeout::start(ms(10), &c, Some(inherited));
    assert_eq!(call.overall(), inherited);
    let call = CallTimeout::start(ms(10), &c, Some(Deadline(ms(5_000))));
    assert_eq!(call.overall(), Deadline(ms(1_010)), "its own is earlier");
}

#[test]
fn attempts_are_cut_to_their_own_timeout_then_to_the_overall_deadline() {
    let c = config(json!({"attemptTimeoutMs": 400, "overallTimeoutMs": 1000}));
    let mut call = CallTimeout::start(ms(0), &c, None);
    assert_eq!(call.begin_attempt(ms(0), 1).unwrap(), Deadline(ms(400)));
    assert_eq!(call.poll_timeout(), Some(ms(400)));
    let cut = call.handle_timeout(ms(400));
    assert_eq!(
        cut,
        [Cancellation {
            attempt: 1,
            started: ms(0),
            at: ms(400),
            reason: CancelReason::AttemptTimedOut,
            ran_for: d(400)
        }]
    );
    assert_eq!(call.begin_attempt(ms(700), 2).unwrap(), Deadline(ms(1_000)));
    assert_eq!(call.finish_attempt(ms(900), 2).unwrap(), Completion::InTime);
    // The first attempt's answer arrives at last: late, thrown away.
    assert_eq!(call.finish_attempt(ms(950), 1).unwrap(), Completion::Late);
    assert!(call.finish_attempt(ms(950), 1).is_err(), "reported twice");
    let e = call.begin_attempt(ms(1_000), 3).unwrap_err().to_string();
    assert!(e.contains("deadline exceeded"), "{e}");
    assert_eq!(
        call.stats(),
        TimeoutStats {
            started: 2,
            in_time: 1,
            cancelled: 1,
            late: 1,
            refused: 1,
            wasted_us: 400_000
        }
    );
}

/// A dangerous schedule: the timer never fires (the driver is busy) and the result comes
/// in after the deadline. It must still count as late, with the work reported cancelled.
#[test]
fn a_result_after_the_deadline_is_late_even_without_a_timer() {
    let c = config(json!({"attemptTimeoutMs": 100, "overallTimeoutMs": 100}));
    let mut call = CallTimeout::start(ms(0), &c, None);
    call.begin_attempt(ms(0), 7).unwrap();
    assert_eq!(call.finish_attempt(ms(100), 7).unwrap(), Completion::Late);
    assert_eq!(call.stats().cancelled, 1);
}

#[test]
fn cancellations_come_oldest_deadline_first() {
    let c = config(json!({"attemptTimeoutMs": 500, "overallTimeoutMs": 10000}));
    let mut call = CallTimeout::start(ms(0), &c, None);
    call.begin_attempt(ms(20), 1).unwrap();
    call.begin_attempt(ms(10), 2).unwrap();
    call.begin_attempt(ms(30), 3).unwrap();
    let ids: Vec<u64> = call
        .handle_timeout(ms(525))
        .iter()
        .map(|c| c.attempt)
        .collect();
    assert_eq!(ids, [2, 1]);
    assert_eq!(call.in_flight().count(), 1);
}

#[test]
fn bad_configs_name_their_field() {
    for (v, field) in [
        (json!({"attemptTimeoutMs": 0}), "config.attemptTimeoutMs"),
        (
            json!({"overallTimeoutMs": 86400001}),
            "config.overallTimeoutMs",
        ),
        (json!({"hopMarginMs": -1}), "config.hopMarginMs"),
        (json!({"hopMargin": 1}), "config.hopMargin"),
    ] {
        let e = from_value::<TimeoutConfig>("config", &v)
            .unwrap_err()
            .to_string();
        assert!(e.contains(field), "{e}");
    }
}

proptest! {
    /// Down a chain of hops, each calling the next after some work and with some time in
    /// flight, no hop's deadline is ever later than its caller's, whatever the margins
    /// and caps.
    #[test]
    fn deadlines_never_grow_across_hops(
        budget in 0u64..10_000_000,
        hops in prop::collection::vec((0u64..2_000_000, 0u64..50_000, prop::option::of(0u64..5_000_000)), 1..20),
        start in 0u64..1_000_000,
    ) {
        let mut now = Time(start);
        let mut deadline = Deadline::after(now, Duration(budget));
        for (work, margin, cap) in hops {
            now = now.saturating_add(Duration(work));
            match deadline.for_downstream(now, Duration(margin), cap.map(Duration)) {
                Some(child) => {
                    prop_assert!(child <= deadline);
                    prop_assert!(child.remaining(now) + Duration(margin) <= deadline.remaining(now));
                    prop_assert!(!child.is_expired(now));
                    deadline = child;
                }
                None => {
                    prop_assert!(deadline.remaining(now) <= Duration(margin));
                    break;
                }
            }
        }
    }
}
