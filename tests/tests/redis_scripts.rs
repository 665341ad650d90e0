//! The simulated store agrees with real Redis: the limiter's two Lua scripts run on a
//! `redis-server` (loaded with `SCRIPT LOAD`, called with `EVALSHA`) and natively on the
//! simulated store, on the same seeded request sequences, and every reply is compared, as
//! is the state each key is left in. The sequences change the bucket's capacity and rate
//! between calls (a caller whose configuration changed) and mix in bad arguments (wanted
//! 0, negative or 10^18, a rate of 0, a negative `now` or one above 2^53, a window of 0,
//! numbers written `1e3`, ` 5` or `0x10`...): both sides must refuse them with the same
//! error reply and write nothing.
//!
//! `cargo xtask test` starts a private `redis-server` on 127.0.0.1 (installing Debian's
//! package when missing and root) and passes its port in `DISTLAB_REDIS_PORT`. Without
//! one this test fails, saying how to get one: it never passes without having compared.
//!
//! The server's own clock barely moves during a sequence (milliseconds of wall time, far
//! less than the scripts' one-second TTL grace), so no key expires there; the simulated
//! store is run with its clock standing still to match. That expiry never changes a reply
//! when the store's clock moves with the callers' is checked natively by
//! `expiry_never_changes_a_reply` in core.
#![cfg(not(target_arch = "wasm32"))]

use distlab_core::Time;
use distlab_core::ratelimit::distributed::scripts::{
    self, MAX_NOW_US, SLIDING_WINDOW_LUA, SlidingWindowArgs, TOKEN_BUCKET_LUA, TokenBucketArgs,
    redis_error_reply,
};
use distlab_core::ratelimit::distributed::store::{RedisStore, Value};
use distlab_core::rng::SimRng;
mod common;

use common::resp::{Redis, Resp};

const SEQUENCES: u64 = 300;

impl Redis {
    fn script_load(&mut self, lua: &str) -> String {
        match self.call(&["SCRIPT", "LOAD", lua]) {
            Resp::Bulk(Some(sha)) => String::from_utf8(sha).expect("a hex sha"),
            other => panic!("SCRIPT LOAD failed: {other:?}"),
        }
    }

    /// `EVALSHA sha 1 key argv...`, expecting three integers.
    fn evalsha(&mut self, sha: &str, key: &str, argv: &[String]) -> [i64; 3] {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        self.evalsha_result(sha, key, &argv)
            .unwrap_or_else(|e| panic!("EVALSHA {key} {argv:?} failed: {e}"))
    }

    /// `EVALSHA sha 1 key argv...`: three integers, or the text of Redis's error reply.
    fn evalsha_result(&mut self, sha: &str, key: &str, argv: &[&str]) -> Result<[i64; 3], String> {
        let mut args: Vec<&str> = vec!["EVALSHA", sha, "1", key];
        args.extend(argv.iter().copied());
        match self.call(&args) {
            Resp::Error(e) => Err(e),
            Resp::Array(Some(v)) => {
                let ints: Vec<i64> = v
                    .iter()
                    .map(|x| match x {
                        Resp::Int(i) => *i,
                        other => panic!("EVALSHA {key} {argv:?}: not an integer: {other:?}"),
                    })
                    .collect();
                Ok(ints
                    .try_into()
                    .unwrap_or_else(|v| panic!("EVALSHA {key} {argv:?}: {v:?}")))
            }
            other => panic!("EVALSHA {key} {argv:?}: not a reply of three integers: {other:?}"),
        }
    }

    fn int(&mut self, args: &[&str]) -> i64 {
        match self.call(args) {
            Resp::Int(i) => i,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn strings(&mut self, args: &[&str]) -> Vec<Option<String>> {
        match self.call(args) {
            Resp::Array(Some(v)) => v
                .into_iter()
                .map(|x| match x {
                    Resp::Bulk(b) => b.map(|b| String::from_utf8(b).expect("utf-8")),
                    other => panic!("{args:?}: {other:?}"),
                })
                .collect(),
            other => panic!("{args:?}: {other:?}"),
        }
    }
}

/// A time sequence that mostly moves forward in steps of every size, sometimes stands still
/// and now and then goes back (a caller whose clock is behind).
fn next_now(rng: &mut SimRng, now: u64) -> u64 {
    match rng.below(10) {
        0 => now,
        1 => now.saturating_sub(rng.below(2_000_000)),
        2..=5 => now + rng.below(1_000),
        6..=8 => now + rng.below(500_000),
        _ => now + rng.below(20_000_000),
    }
}

/// Mostly `small`, sometimes `large`.
fn small_or(rng: &mut SimRng, small: u64, large: u64) -> u64 {
    if rng.chance(0.75) { small } else { large }
}

fn key(kind: &str, seq: u64) -> String {
    format!("distlab-test:{}:{kind}:{seq}", std::process::id())
}

/// A TTL no script sets (11.4 days): put on a key before a call that must write nothing,
/// it shows the call did not touch the key's expiry either.
const UNTOUCHED_TTL_MS: i64 = 987_654_321;

/// Runs a call both sides must refuse: the same error reply, and nothing written on either
/// side (the key's fields, members and TTL as they were; a missing key still missing).
fn both_refuse(
    redis: &mut Redis,
    sha: &str,
    store: &mut RedisStore,
    key: &str,
    argv: &[&str],
    native: impl FnOnce(&mut RedisStore) -> distlab_core::Result<()>,
    context: &str,
) {
    let existed = redis.int(&["EXISTS", key]) == 1;
    let real_before = redis.call(&["DUMP", key]);
    if existed {
        assert_eq!(
            redis.int(&["PEXPIRE", key, &UNTOUCHED_TTL_MS.to_string()]),
            1
        );
        store.pexpire(Time::ZERO, key, UNTOUCHED_TTL_MS);
    }
    let sim_before = store.clone();
    let real = redis.evalsha_result(sha, key, argv);
    let sim = native(store).map_err(|e| redis_error_reply(&e));
    let Err(real) = real else {
        panic!("{context}: Redis accepted {argv:?}: {real:?}");
    };
    assert_eq!(Err(real), sim, "{context}: {argv:?}");
    assert_eq!(
        *store, sim_before,
        "{context}: {argv:?} wrote to the simulated store"
    );
    if existed {
        let ttl = redis.int(&["PTTL", key]);
        assert!(
            ttl > UNTOUCHED_TTL_MS - 60_000 && ttl <= UNTOUCHED_TTL_MS,
            "{context}: {argv:?} changed the key's TTL to {ttl} ms"
        );
        let real_after = redis.call(&["DUMP", key]);
        assert_eq!(
            real_after, real_before,
            "{context}: {argv:?} wrote to Redis"
        );
    } else {
        assert_eq!(
            redis.int(&["EXISTS", key]),
            0,
            "{context}: {argv:?} created the key"
        );
    }
}

/// The token-bucket arguments `good` with one of them made bad, in every way the issue
/// found and a few more; the name of the field the error must name.
fn bad_token_bucket_argv(rng: &mut SimRng, good: &[String]) -> (Vec<String>, &'static str) {
    let too_late = (MAX_NOW_US + 1).to_string();
    let families: [(usize, &str, &str); 16] = [
        (3, "0", "wanted"),
        (3, "-5", "wanted"),
        (3, "1000000000000000000", "wanted"),
        (3, "1e18", "wanted"),
        (1, "0", "ratePerSec"),
        (1, "1000000001", "ratePerSec"),
        (2, "-1", "nowUs"),
        (2, "9007199254740993", "nowUs"),
        (2, &too_late, "nowUs"),
        (0, "0", "capacity"),
        (0, "1.5", "capacity"),
        (0, " 5", "capacity"),
        (0, "0x10", "capacity"),
        (0, "", "capacity"),
        (4, "2", "partial"),
        (4, "true", "partial"),
    ];
    let (i, bad, field) = families[rng.below(families.len() as u64) as usize];
    let mut argv = good.to_vec();
    argv[i] = bad.to_string();
    (argv, field)
}

/// A capacity or a rate as the sequences draw them: small, medium or anywhere in range.
fn tokens(rng: &mut SimRng, small: u64) -> u64 {
    match rng.below(3) {
        0 => 1 + rng.below(small),
        1 => 1 + rng.below(1_000),
        _ => 1 + rng.below(1_000_000_000),
    }
}

/// Issue 13's sequence, against Redis itself: capacity 10^9, then twice capacity 1, at the
/// same instant. Redis replied `{1,0,0}` to the third call: the script had set a negative
/// TTL from `capacity − tokens`, Redis deleted the key and the bucket came back full.
#[test]
fn a_lowered_capacity_caps_the_tokens_in_redis_as_natively() {
    let mut redis = Redis::connect("the scripts");
    let sha = redis.script_load(TOKEN_BUCKET_LUA);
    let key = key("tb-lowered", 0);
    redis.call(&["DEL", &key]);
    let mut store = RedisStore::new();
    let mut replies = Vec::new();
    for capacity in ["1000000000", "1", "1"] {
        let argv = [capacity, "1", "1000", "1", "0"];
        let real = redis.evalsha_result(&sha, &key, &argv).unwrap();
        let sim = scripts::token_bucket_argv(&mut store, Time::ZERO, &[&key], &argv).unwrap();
        assert_eq!(
            real,
            [
                sim.granted as i64,
                sim.micro_tokens_left as i64,
                sim.retry_after_us as i64
            ]
        );
        assert!(redis.int(&["PTTL", &key]) > 0, "the key must live on");
        replies.push(real);
    }
    assert_eq!(
        replies,
        [[1, 999_999_999_000_000, 0], [1, 0, 0], [0, 0, 1_000_000]]
    );
    redis.call(&["DEL", &key]);
}

#[test]
fn the_token_bucket_script_agrees_with_redis_on_every_request() {
    let mut redis = Redis::connect("the scripts");
    let sha = redis.script_load(TOKEN_BUCKET_LUA);
    let (mut compared, mut refused, mut changes) = (0, 0, 0);
    for seq in 0..SEQUENCES {
        let mut rng = SimRng::new(seq);
        let key = key("tb", seq);
        redis.call(&["DEL", &key]);
        let mut capacity = tokens(&mut rng, 5);
        let mut rate_per_sec = tokens(&mut rng, 3);
        let mut store = RedisStore::new();
        let mut now = rng.below(1 << 40);
        for _ in 0..1 + rng.below(60) {
            now = next_now(&mut rng, now);
            // Now and then the caller's configuration changes: a capacity lowered below
            // what the bucket holds, raised, or a new rate.
            if rng.chance(0.1) {
                changes += 1;
                match rng.below(3) {
                    0 => capacity = 1 + rng.below(capacity),
                    1 => capacity = tokens(&mut rng, 5),
                    _ => rate_per_sec = tokens(&mut rng, 3),
                }
            }
            let most = small_or(&mut rng, 3, capacity).min(capacity);
            let wanted = 1 + rng.below(most);
            let args = TokenBucketArgs {
                capacity,
                rate_per_sec,
                now_us: now,
                wanted,
                partial: rng.chance(0.3),
            };
            let good = args.argv();
            if rng.chance(0.08) {
                let (argv, field) = bad_token_bucket_argv(&mut rng, &good);
                let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
                let context = format!("sequence {seq}, bad `{field}`");
                both_refuse(
                    &mut redis,
                    &sha,
                    &mut store,
                    &key,
                    &argv,
                    |s| scripts::token_bucket_argv(s, Time::ZERO, &[&key], &argv).map(|_| ()),
                    &context,
                );
                refused += 1;
                continue;
            }
            let argv: Vec<&str> = good.iter().map(String::as_str).collect();
            let native = scripts::token_bucket_argv(&mut store, Time::ZERO, &[&key], &argv)
                .unwrap_or_else(|e| panic!("sequence {seq}: {args:?}: {e}"));
            let real = redis.evalsha(&sha, &key, &good);
            let want = [
                native.granted as i64,
                native.micro_tokens_left as i64,
                native.retry_after_us as i64,
            ];
            assert_eq!(real, want, "sequence {seq}: {args:?}");
            // The key lives on after every successful call (a negative TTL would delete it).
            assert!(redis.int(&["PTTL", &key]) > 0, "sequence {seq}: {args:?}");
            compared += 1;
        }
        let real_state = redis.strings(&["HMGET", &key, "tokens", "ts"]);
        let sim_state = store.hmget(Time::ZERO, &key, &["tokens", "ts"]).unwrap();
        assert_eq!(real_state, sim_state, "sequence {seq}: state left behind");
        redis.call(&["DEL", &key]);
    }
    assert!(
        changes > 100 && refused > 100,
        "{changes} changes, {refused} refusals"
    );
    eprintln!(
        "token bucket: {compared} replies and {refused} refusals agree with Redis, \
         {changes} capacity or rate changes"
    );
}

#[test]
fn the_sliding_window_script_agrees_with_redis_on_every_request() {
    let mut redis = Redis::connect("the scripts");
    let sha = redis.script_load(SLIDING_WINDOW_LUA);
    let (mut compared, mut refused) = (0, 0);
    for seq in 0..SEQUENCES {
        let mut rng = SimRng::new(1_000_000 + seq);
        let key = key("sw", seq);
        redis.call(&["DEL", &key]);
        let most = small_or(&mut rng, 5, 50);
        let limit = 1 + rng.below(most);
        let window_us = match rng.below(3) {
            0 => 1 + rng.below(1_000),
            1 => 1 + rng.below(2_000_000),
            _ => 1 + rng.below(1_000_000_000_000),
        };
        let mut store = RedisStore::new();
        let mut now = rng.below(1 << 40);
        for i in 0..1 + rng.below(60) {
            now = next_now(&mut rng, now);
            // Now and then an id seen before: Redis moves the entry, and so must the model.
            let id = if i > 0 && rng.chance(0.05) {
                rng.below(i)
            } else {
                i
            };
            let args = SlidingWindowArgs {
                limit,
                window_us,
                now_us: now,
                request: format!("r{id}"),
            };
            let good = args.argv();
            if rng.chance(0.08) {
                let too_late = (MAX_NOW_US + 1).to_string();
                let families: [(usize, &str, &str); 9] = [
                    (1, "0", "windowUs"),
                    (1, "1000000000001", "windowUs"),
                    (0, "0", "limit"),
                    (0, "-3", "limit"),
                    (0, "1e3", "limit"),
                    (2, "-1", "nowUs"),
                    (2, "9007199254740993", "nowUs"),
                    (2, &too_late, "nowUs"),
                    (2, "12.5", "nowUs"),
                ];
                let (i, bad, field) = families[rng.below(families.len() as u64) as usize];
                let mut argv: Vec<&str> = good.iter().map(String::as_str).collect();
                argv[i] = bad;
                let context = format!("sequence {seq}, bad `{field}`");
                both_refuse(
                    &mut redis,
                    &sha,
                    &mut store,
                    &key,
                    &argv,
                    |s| scripts::sliding_window_argv(s, Time::ZERO, &[&key], &argv).map(|_| ()),
                    &context,
                );
                refused += 1;
                continue;
            }
            let argv: Vec<&str> = good.iter().map(String::as_str).collect();
            let native = scripts::sliding_window_argv(&mut store, Time::ZERO, &[&key], &argv)
                .unwrap_or_else(|e| panic!("sequence {seq}: {args:?}: {e}"));
            let real = redis.evalsha(&sha, &key, &good);
            let want = [
                i64::from(native.admitted),
                native.left as i64,
                native.retry_after_us as i64,
            ];
            assert_eq!(real, want, "sequence {seq}: {args:?}");
            compared += 1;
        }
        let real_members = redis.strings(&["ZRANGE", &key, "0", "-1", "WITHSCORES"]);
        let sim_members: Vec<Option<String>> = store
            .live_keys(Time::ZERO)
            .filter(|(k, _, _)| *k == key)
            .flat_map(|(_, v, _)| match v {
                Value::SortedSet(z) => z
                    .iter()
                    .flat_map(|(m, s)| [Some(m.to_string()), Some(s.to_string())])
                    .collect::<Vec<_>>(),
                Value::Hash(_) => panic!("a hash where the log should be"),
            })
            .collect();
        assert_eq!(real_members, sim_members, "sequence {seq}: log left behind");
        redis.call(&["DEL", &key]);
    }
    assert!(refused > 100, "{refused} refusals");
    eprintln!("sliding window: {compared} replies and {refused} refusals agree with Redis");
}

/// A wrong number of keys or arguments is refused by both, before anything is read.
#[test]
fn a_wrong_number_of_keys_or_arguments_is_refused_alike() {
    let mut redis = Redis::connect("the scripts");
    for (lua, argc) in [(TOKEN_BUCKET_LUA, 5), (SLIDING_WINDOW_LUA, 4)] {
        let sha = redis.script_load(lua);
        let key = key("arity", argc);
        for (keys, args) in [(0usize, argc), (2, argc), (1, argc - 1), (1, argc + 1)] {
            let names: Vec<String> = (0..keys).map(|i| format!("{key}:{i}")).collect();
            let argv: Vec<String> = (0..args).map(|_| "1".to_string()).collect();
            let mut call: Vec<&str> = vec!["EVALSHA", &sha];
            let n = keys.to_string();
            call.push(&n);
            call.extend(names.iter().map(String::as_str));
            call.extend(argv.iter().map(String::as_str));
            let Resp::Error(real) = redis.call(&call) else {
                panic!("{lua:.30}: {keys} keys, {args} arguments accepted");
            };
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            let mut store = RedisStore::new();
            let sim = if argc == 5 {
                scripts::token_bucket_argv(&mut store, Time::ZERO, &names, &argv).map(|_| ())
            } else {
                scripts::sliding_window_argv(&mut store, Time::ZERO, &names, &argv).map(|_| ())
            };
            assert_eq!(Err(real), sim.map_err(|e| redis_error_reply(&e)));
            assert_eq!(store, RedisStore::new());
        }
    }
}
