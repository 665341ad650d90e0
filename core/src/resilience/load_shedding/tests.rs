//! Load shedding tests: Netflix's AIMD and Gradient2 update rules one by one, priority
//! shedding, then the AIMD law under a fixed capacity as a property.

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::lab::json::from_value;

fn ms(n: u64) -> Time {
    Time::from_millis(n)
}

fn shedder(v: serde_json::Value) -> LoadShedder {
    LoadShedder::new(&from_value("config", &v).unwrap()).unwrap()
}

fn aimd(initial: u32, min: u32, max: u32, backoff: f64) -> AimdLimit {
    let c = LimitConfig::Aimd {
        initial_limit: Count::of(initial),
        min_limit: Count::of(min),
        max_limit: Count::of(max),
        backoff_ratio: backoff,
        timeout_ms: Millis::of(100),
    };
    match Limit::new(&c).unwrap() {
        Limit::Aimd(l) => l,
        Limit::Gradient2(_) => unreachable!(),
    }
}

#[test]
fn aimd_adds_one_when_used_and_backs_off_on_a_drop_or_a_timeout() {
    let mut l = aimd(20, 1, 200, 0.9);
    l.update(Duration::from_millis(10), 10, false);
    assert_eq!(l.limit(), 21, "inflight × 2 ≥ limit: grow");
    l.update(Duration::from_millis(10), 5, false);
    assert_eq!(l.limit(), 21, "the limit is not being used: stay");
    l.update(Duration::from_millis(10), 21, true);
    assert_eq!(l.limit(), 18, "⌊21 × 0.9⌋");
    l.update(Duration::from_millis(101), 18, false);
    assert_eq!(l.limit(), 16, "an rtt over the timeout is a drop");
    let mut low = aimd(20, 20, 200, 0.5);
    low.update(Duration::ZERO, 1, true);
    assert_eq!(low.limit(), 20, "never below minLimit");
    let mut high = aimd(200, 1, 200, 0.9);
    high.update(Duration::ZERO, 200, false);
    assert_eq!(high.limit(), 200, "never above maxLimit");
}

#[test]
fn gradient2_shrinks_when_latency_rises_and_grows_by_the_queue_when_it_does_not() {
    let c = LimitConfig::Gradient2 {
        initial_limit: Count::of(50),
        min_limit: Count::of(1),
        max_limit: Count::of(1_000),
        smoothing: Probability::of(0.2),
        queue_size: Count::of(4),
        long_window: Count::of(600),
        rtt_tolerance: 1.5,
        window_ms: Millis::of(1_000),
        window_size: Count::of(10),
    };
    let Limit::Gradient2(mut g) = Limit::new(&c).unwrap() else {
        unreachable!()
    };
    // Steady latency: gradient 1, the limit grows by smoothing × queueSize per sample.
    for _ in 0..10 {
        g.update(Duration::from_millis(10), 50);
    }
    assert!(
        (g.estimated - (50.0 + 10.0 * 0.8)).abs() < 1e-9,
        "{}",
        g.estimated
    );
    assert!((g.long_rtt() - 10_000.0).abs() < 1e-9);
    // Latency triples: gradient = max(0.5, 1.5 × 10/30) = 0.5.
    let before = g.estimated;
    g.update(Duration::from_millis(30), 60);
    let long = g.long_rtt();
    let gradient = (1.5 * long / 30_000.0).clamp(0.5, 1.0);
    let expected = before * 0.8 + (before * gradient + 4.0) * 0.2;
    assert!((g.estimated - expected).abs() < 1e-9);
    assert!(g.estimated < before);
    // Application-limited (inflight below half the limit): no change.
    let held = g.estimated;
    g.update(Duration::from_millis(90), 1);
    assert_eq!(g.estimated, held);
}

#[test]
fn gradient2_updates_once_per_sample_window_from_its_mean_rtt_and_highest_inflight() {
    let c = LimitConfig::Gradient2 {
        initial_limit: Count::of(50),
        min_limit: Count::of(1),
        max_limit: Count::of(1_000),
        smoothing: Probability::of(0.2),
        queue_size: Count::of(4),
        long_window: Count::of(600),
        rtt_tolerance: 1.5,
        window_ms: Millis::of(100),
        window_size: Count::of(3),
    };
    let Limit::Gradient2(mut g) = Limit::new(&c).unwrap() else {
        unreachable!()
    };
    // The first request closes the (empty) window open since 0: one request is too few,
    // the window is thrown away and the limit holds.
    assert!(!g.on_sample(ms(10), Duration::from_millis(10), 50));
    assert_eq!(g.estimated, 50.0);
    assert_eq!(g.long_rtt(), 0.0);
    // The next window opens at 10 ms and closes at the first request ending at 110 ms or
    // later; before that nothing changes however many requests finish.
    for (t, rtt, inflight) in [(20, 10, 30), (50, 20, 45), (109, 30, 40)] {
        assert!(!g.on_sample(ms(t), Duration::from_millis(rtt), inflight));
        assert_eq!(g.estimated, 50.0);
    }
    // Closing it: mean rtt (10 + 20 + 30 + 40) / 4 = 25 ms, highest inflight 45 (≥ 25,
    // so not application-limited); the first long rtt is that mean, gradient 1.
    assert!(g.on_sample(ms(110), Duration::from_millis(40), 20));
    assert_eq!(g.short_rtt(), 25_000.0);
    assert_eq!(g.long_rtt(), 25_000.0);
    assert!(
        (g.estimated - (50.0 + 0.2 * 4.0)).abs() < 1e-9,
        "{}",
        g.estimated
    );
    // With a 1 ms window of one request, each of the same requests is an update.
    let LimitConfig::Gradient2 {
        initial_limit,
        min_limit,
        max_limit,
        smoothing,
        queue_size,
        long_window,
        rtt_tolerance,
        ..
    } = c
    else {
        unreachable!()
    };
    let Limit::Gradient2(mut every) = Limit::new(&LimitConfig::Gradient2 {
        initial_limit,
        min_limit,
        max_limit,
        smoothing,
        queue_size,
        long_window,
        rtt_tolerance,
        window_ms: Millis::of(1),
        window_size: Count::of(1),
    })
    .unwrap() else {
        unreachable!()
    };
    for (t, rtt) in [(10, 10), (20, 10), (50, 20), (109, 30), (110, 40)] {
        assert!(every.on_sample(ms(t), Duration::from_millis(rtt), 50));
    }
    assert_eq!(every.short_rtt(), 40_000.0);
}

#[test]
fn the_lowest_priority_is_shed_first_and_the_highest_keeps_the_whole_limit() {
    let mut s = shedder(
        json!({"limit": {"type": "aimd", "initialLimit": 10, "minLimit": 10,
        "maxLimit": 10, "backoffRatio": 0.9, "timeoutMs": 1000},
        "priorities": 3, "headroomPerPriority": 0.2}),
    );
    assert_eq!((s.allowed(0), s.allowed(1), s.allowed(2)), (10, 8, 6));
    for _ in 0..6 {
        assert!(matches!(
            s.try_acquire(ms(0), 2).unwrap(),
            ShedAdmission::Admitted { .. }
        ));
    }
    assert_eq!(
        s.try_acquire(ms(0), 2).unwrap(),
        ShedAdmission::Shed {
            inflight: 6,
            allowed: 6
        }
    );
    for _ in 0..2 {
        assert!(matches!(
            s.try_acquire(ms(0), 1).unwrap(),
            ShedAdmission::Admitted { .. }
        ));
    }
    assert!(matches!(
        s.try_acquire(ms(0), 1).unwrap(),
        ShedAdmission::Shed { .. }
    ));
    for _ in 0..2 {
        assert!(matches!(
            s.try_acquire(ms(0), 0).unwrap(),
            ShedAdmission::Admitted { .. }
        ));
    }
    assert!(matches!(
        s.try_acquire(ms(0), 0).unwrap(),
        ShedAdmission::Shed { .. }
    ));
    let shed: Vec<u64> = s.stats().iter().map(|p| p.shed).collect();
    assert_eq!(shed, [1, 1, 1]);
    assert_eq!(s.inflight(), 10);
}

#[test]
fn samples_carry_the_inflight_of_their_start_and_release_is_no_sample() {
    let mut s = shedder(
        json!({"limit": {"type": "aimd", "initialLimit": 4, "minLimit": 1,
        "maxLimit": 100, "backoffRatio": 0.5, "timeoutMs": 1000}, "priorities": 1}),
    );
    let ids: Vec<u64> = (0..4)
        .map(|_| match s.try_acquire(ms(0), 0).unwrap() {
            ShedAdmission::Admitted { id } => id,
            ShedAdmission::Shed { .. } => unreachable!(),
        })
        .collect();
    // The first started alone: 1 × 2 < 4, no growth; the fourth with 4: growth.
    s.on_success(ms(5), ids[0]).unwrap();
    assert_eq!(s.limit(), 4);
    s.on_success(ms(5), ids[3]).unwrap();
    assert_eq!(s.limit(), 5);
    s.release(ids[1]).unwrap();
    assert_eq!(s.limit(), 5);
    s.on_dropped(ms(6), ids[2]).unwrap();
    assert_eq!(s.limit(), 2);
    assert!(
        s.on_success(ms(7), ids[2])
            .unwrap_err()
            .to_string()
            .contains("id")
    );
    assert_eq!(s.inflight(), 0);
}

#[test]
fn bad_configs_name_their_field() {
    let err = |v: serde_json::Value| match from_value::<LoadShedderConfig>("config", &v) {
        Ok(c) => LoadShedder::new(&c).unwrap_err().to_string(),
        Err(e) => e.to_string(),
    };
    let aimd = |extra: serde_json::Value| {
        let mut l = json!({"type": "aimd", "initialLimit": 20, "minLimit": 20, "maxLimit": 200,
            "backoffRatio": 0.9, "timeoutMs": 1000});
        for (k, v) in extra.as_object().unwrap() {
            l[k] = v.clone();
        }
        json!({ "limit": l })
    };
    assert!(err(aimd(json!({"backoffRatio": 1.0}))).contains("limit.backoffRatio"));
    assert!(err(aimd(json!({"backoffRatio": 0.4}))).contains("limit.backoffRatio"));
    assert!(err(aimd(json!({"minLimit": 300}))).contains("limit.minLimit"));
    assert!(err(aimd(json!({"initialLimit": 10}))).contains("limit.initialLimit"));
    assert!(err(aimd(json!({"timeoutMs": 0}))).contains("timeoutMs"));
    let e = err(json!({"priorities": 8, "headroomPerPriority": 0.2}));
    assert!(e.contains("headroomPerPriority"), "{e}");
    let e = err(
        json!({"limit": {"type": "gradient2", "initialLimit": 20, "minLimit": 20,
        "maxLimit": 200, "smoothing": 0.2, "queueSize": 4, "longWindow": 600, "rttTolerance": 0.5}}),
    );
    assert!(e.contains("limit.rttTolerance"), "{e}");
    let mut s = shedder(json!({}));
    assert!(
        s.try_acquire(ms(0), 3)
            .unwrap_err()
            .to_string()
            .contains("priority")
    );
}

proptest! {
    /// AIMD under a fixed capacity: a saturated service (every sample finds the limit in
    /// use) that drops whatever runs beyond `capacity` at once. Whatever the start, the
    /// limit reaches the capacity and then cycles around it: it never leaves
    /// [⌊(capacity + 1) × backoff⌋, capacity + 1], and keeps crossing the capacity both ways.
    #[test]
    fn aimd_oscillates_around_a_fixed_capacity(
        capacity in 5u32..500,
        initial in 1u32..1_000,
        backoff in 0.5f64..0.95,
    ) {
        let mut l = aimd(initial, 1, 1_000, backoff);
        let low = (f64::from(capacity + 1) * backoff) as u32;
        let sample = |l: &mut AimdLimit| {
            let inflight = l.limit();
            l.update(Duration::from_millis(10), inflight, inflight > capacity);
        };
        // Reaching it: multiplicative from above, one per sample from below.
        let mut steps = 0;
        while !(low..=capacity + 1).contains(&l.limit()) {
            sample(&mut l);
            steps += 1;
            prop_assert!(steps <= 1_000, "never reached {capacity}: at {}", l.limit());
        }
        let (mut above, mut below) = (0, 0);
        for _ in 0..(20 * capacity) {
            sample(&mut l);
            let now = l.limit();
            prop_assert!((low..=capacity + 1).contains(&now), "left the band: {now}");
            if now > capacity { above += 1 } else { below += 1 }
        }
        prop_assert!(above >= 10 && below >= 10, "above {above}, below {below}");
    }

    /// The shedder never admits more than the limit, nor a priority past its share.
    #[test]
    fn admissions_respect_the_limit_and_the_shares(
        ops in proptest::collection::vec((0u32..3, any::<bool>(), any::<bool>()), 1..400),
    ) {
        let mut s = shedder(json!({"limit": {"type": "aimd", "initialLimit": 10, "minLimit": 2,
            "maxLimit": 40, "backoffRatio": 0.7, "timeoutMs": 1000},
            "priorities": 3, "headroomPerPriority": 0.25}));
        let mut open = Vec::new();
        for (i, (priority, finish, dropped)) in ops.into_iter().enumerate() {
            let now = ms(i as u64);
            if finish && !open.is_empty() {
                let id = open.remove(0);
                if dropped { s.on_dropped(now, id)?; } else { s.on_success(now, id)?; }
                continue;
            }
            let before = s.inflight();
            let allowed = s.allowed(priority);
            match s.try_acquire(now, priority)? {
                ShedAdmission::Admitted { id } => {
                    prop_assert!(before < allowed);
                    prop_assert!(allowed <= s.limit());
                    open.push(id);
                }
                ShedAdmission::Shed { .. } => prop_assert!(before >= allowed),
            }
        }
    }
}
