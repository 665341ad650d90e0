//! Fallback chain tests: the rules one by one, then a property over random level outcomes.

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::lab::json::from_value;

fn ms(n: u64) -> Time {
    Time::from_millis(n)
}

fn chain(v: serde_json::Value) -> FallbackChain {
    FallbackChain::new(&from_value("config", &v).unwrap()).unwrap()
}

fn three_levels() -> FallbackChain {
    chain(json!({"levels": [
        {"name": "personalised", "timeoutMs": 200},
        {"name": "popular", "timeoutMs": 50},
        {"name": "cached", "timeoutMs": 0}
    ]}))
}

fn done(actions: &[FallbackAction]) -> Option<(Served, Duration)> {
    actions.iter().find_map(|a| match a {
        FallbackAction::Done { served, latency } => Some((*served, *latency)),
        _ => None,
    })
}

#[test]
fn the_best_level_answers_when_it_can() {
    let mut c = three_levels();
    let (mut call, ask) = c.start(ms(0));
    assert_eq!(
        ask,
        FallbackAction::Ask {
            level: 0,
            deadline: Some(ms(200))
        }
    );
    let a = call.on_result(ms(30), 0, None, &mut c);
    assert_eq!(
        done(&a),
        Some((Served::Level { level: 0 }, Duration::from_millis(30)))
    );
    assert!(call.is_done());
    assert_eq!(call.outcomes(), [LevelOutcome::Answered]);
    assert_eq!(c.stats().levels[0].served, 1);
}

#[test]
fn a_failure_passes_the_call_down_and_the_chain_says_who_answered() {
    let mut c = three_levels();
    let (mut call, _) = c.start(ms(0));
    let a = call.on_result(ms(10), 0, Some(ErrorKind::Unavailable), &mut c);
    assert_eq!(
        a,
        [FallbackAction::Ask {
            level: 1,
            deadline: Some(ms(60))
        }],
        "the next level's timeout runs from when it is asked"
    );
    let a = call.on_result(ms(20), 1, Some(ErrorKind::Overloaded), &mut c);
    assert_eq!(
        a,
        [FallbackAction::Ask {
            level: 2,
            deadline: None
        }],
        "a zero timeout is none"
    );
    assert_eq!(call.poll_timeout(), None);
    let a = call.on_result(ms(500), 2, None, &mut c);
    assert_eq!(done(&a).unwrap().0, Served::Level { level: 2 });
    assert_eq!(
        call.outcomes(),
        [
            LevelOutcome::Failed {
                error: ErrorKind::Unavailable
            },
            LevelOutcome::Failed {
                error: ErrorKind::Overloaded
            },
            LevelOutcome::Answered
        ]
    );
}

#[test]
fn a_slow_level_is_cancelled_at_its_timeout_and_its_late_answer_ignored() {
    let mut c = three_levels();
    let (mut call, _) = c.start(ms(0));
    assert!(call.handle_timeout(ms(199), &mut c).is_empty());
    let a = call.handle_timeout(ms(200), &mut c);
    assert_eq!(
        a,
        [
            FallbackAction::Cancel { level: 0 },
            FallbackAction::Ask {
                level: 1,
                deadline: Some(ms(250))
            }
        ]
    );
    // Level 0's answer, arriving late, changes nothing.
    assert!(call.on_result(ms(210), 0, None, &mut c).is_empty());
    assert_eq!(call.current(), Some(1));
    // An answer reported after the deadline passed (the timer not yet handled) is a timeout.
    let a = call.on_result(ms(250), 1, None, &mut c);
    assert_eq!(a[0], FallbackAction::Cancel { level: 1 });
    assert_eq!(c.stats().levels[1].timed_out, 1);
    assert_eq!(c.stats().levels[1].served, 0);
}

#[test]
fn when_every_level_fails_the_static_default_answers() {
    let mut c = chain(json!({"levels": [{"name": "a", "timeoutMs": 10}, {"name": "b"}]}));
    let (mut call, _) = c.start(ms(0));
    call.handle_timeout(ms(10), &mut c);
    let a = call.on_result(ms(15), 1, Some(ErrorKind::Internal), &mut c);
    assert_eq!(
        done(&a),
        Some((Served::StaticDefault, Duration::from_millis(15)))
    );
    assert_eq!(c.stats().static_default, 1);
}

#[test]
fn without_a_static_default_the_call_fails_with_the_last_error() {
    let mut c = chain(
        json!({"levels": [{"name": "a"}, {"name": "b", "timeoutMs": 5}],
        "staticDefault": false}),
    );
    let (mut call, _) = c.start(ms(0));
    call.on_result(ms(1), 0, Some(ErrorKind::Internal), &mut c);
    let a = call.handle_timeout(ms(6), &mut c);
    assert_eq!(
        done(&a).unwrap().0,
        Served::Failed {
            error: ErrorKind::Timeout
        }
    );
    assert_eq!(c.stats().failed, 1);
}

#[test]
fn an_error_the_chain_does_not_handle_ends_the_call_at_once() {
    let mut c = three_levels();
    let (mut call, _) = c.start(ms(0));
    let a = call.on_result(ms(3), 0, Some(ErrorKind::InvalidArgument), &mut c);
    assert_eq!(
        done(&a).unwrap().0,
        Served::Failed {
            error: ErrorKind::InvalidArgument
        },
        "not the static default: a lower level would repeat the bad request"
    );
    assert_eq!(c.stats().levels[1].asked, 0);
    // A chain that does not handle timeouts ends at the first one.
    let mut c = chain(
        json!({"levels": [{"name": "a", "timeoutMs": 10}, {"name": "b"}],
        "handle": ["unavailable"]}),
    );
    let (mut call, _) = c.start(ms(0));
    let a = call.handle_timeout(ms(10), &mut c);
    assert_eq!(
        done(&a).unwrap().0,
        Served::Failed {
            error: ErrorKind::Timeout
        }
    );
}

#[test]
fn bad_configs_name_their_field() {
    let err = |v: serde_json::Value| {
        let c: FallbackConfig = from_value("config", &v).unwrap();
        FallbackChain::new(&c).unwrap_err().to_string()
    };
    assert!(err(json!({"levels": []})).contains("levels"));
    let e = err(json!({"levels": [{"name": "a"}, {"name": "a"}]}));
    assert!(e.contains("levels[1].name"), "{e}");
    let e = err(json!({"levels": [{"name": ""}]}));
    assert!(e.contains("levels[0].name"), "{e}");
    let nine: Vec<_> = (0..9).map(|i| json!({"name": format!("l{i}")})).collect();
    assert!(err(json!({ "levels": nine })).contains("1 to 8"));
    let e = from_value::<FallbackConfig>(
        "config",
        &json!({"levels": [{"name": "a", "timeoutMs": -1}]}),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("timeoutMs"), "{e}");
}

/// How one level goes in a property run: answers after `ms`, failing or not.
#[derive(Debug, Clone, Copy)]
struct Script {
    ms: u64,
    error: Option<ErrorKind>,
}

fn script() -> impl Strategy<Value = Script> {
    (
        0u64..400,
        prop_oneof![
            3 => Just(None),
            1 => Just(Some(ErrorKind::Unavailable)),
            1 => Just(Some(ErrorKind::Internal)),
            1 => Just(Some(ErrorKind::InvalidArgument)),
        ],
    )
        .prop_map(|(ms, error)| Script { ms, error })
}

proptest! {
    /// Whatever the levels do, a call ends exactly once, asks levels in order, and is
    /// served by the first level that answered in time — after every level before it
    /// failed with a handled error or timed out — within the sum of the timeouts asked.
    #[test]
    fn the_first_level_to_answer_in_time_serves_the_call(
        scripts in proptest::collection::vec(script(), 1..=MAX_LEVELS),
        timeouts in proptest::collection::vec(prop_oneof![Just(0u32), 1u32..300], MAX_LEVELS),
        static_default in any::<bool>(),
    ) {
        let levels: Vec<FallbackLevel> = scripts
            .iter()
            .enumerate()
            .map(|(i, _)| FallbackLevel::new(&format!("l{i}"), Millis::of(timeouts[i])))
            .collect();
        let mut c = FallbackChain::new(&FallbackConfig {
            levels,
            static_default,
            ..FallbackConfig::default()
        })
        .unwrap();
        // Drive the call as a caller would: the level's answer or its timeout, whichever first.
        let (mut call, mut next) = c.start(Time::ZERO);
        let mut now = Time::ZERO;
        let mut asked = Vec::new();
        let mut ends = Vec::new();
        for _ in 0..=MAX_LEVELS {
            let FallbackAction::Ask { level, deadline } = next else { break };
            asked.push(level);
            let s = scripts[level as usize];
            let answer_at = now.saturating_add(Duration::from_millis(s.ms));
            let actions = match deadline {
                Some(d) if d <= answer_at => {
                    now = d;
                    call.handle_timeout(now, &mut c)
                }
                _ => {
                    now = answer_at;
                    call.on_result(now, level, s.error, &mut c)
                }
            };
            ends.extend(actions.iter().filter(|a| matches!(a, FallbackAction::Done { .. })).copied());
            match actions.last() {
                Some(a) => next = *a,
                None => break,
            }
        }
        prop_assert_eq!(ends.len(), 1);
        prop_assert!(call.is_done());
        prop_assert_eq!(&asked, &(0..asked.len() as u32).collect::<Vec<_>>());
        // The model: walk the levels.
        let mut expected = None;
        let mut budget = 0u64;
        for (i, s) in scripts.iter().enumerate() {
            let t = u64::from(timeouts[i]);
            let timed_out = t > 0 && s.ms >= t;
            budget += if timed_out { t } else { s.ms };
            let kind = if timed_out { Some(ErrorKind::Timeout) } else { s.error };
            match kind {
                None => { expected = Some(Served::Level { level: i as u32 }); break; }
                Some(k) if !c.handles(k) => { expected = Some(Served::Failed { error: k }); break; }
                Some(k) if i + 1 == scripts.len() => {
                    expected = Some(if static_default { Served::StaticDefault } else { Served::Failed { error: k } });
                }
                Some(_) => {}
            }
        }
        let FallbackAction::Done { served, latency } = ends[0] else { unreachable!() };
        prop_assert_eq!(Some(served), expected);
        prop_assert_eq!(latency, Duration::from_millis(budget));
        let s = c.stats();
        let served_total: u64 = s.levels.iter().map(|l| l.served).sum::<u64>() + s.static_default + s.failed;
        prop_assert_eq!(served_total, 1);
        prop_assert_eq!(s.levels.iter().map(|l| l.asked).sum::<u64>(), asked.len() as u64);
    }
}
