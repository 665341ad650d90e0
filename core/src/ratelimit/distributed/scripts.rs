//! The limiter's two Redis Lua scripts, as text (shipped in `scripts/`, embedded for the
//! lab to show) and as native Rust that runs the same commands, in the same order, against
//! [`RedisStore`]: the simulated store's `EVALSHA`. A script runs whole within one event,
//! which is the atomicity a Redis script gives (no other command runs in between).
//!
//! - [`TOKEN_BUCKET_LUA`]: an exact token bucket in integer micro-tokens, optionally granting
//!   part of what is wanted (a gateway's lease).
//! - [`SLIDING_WINDOW_LUA`]: a sliding-window log in a sorted set.
//!
//! The arithmetic follows the Lua line by line on integers (`u128` where Lua's doubles would
//! round, which the script shows cannot change a result), and `tests/tests/redis_scripts.rs`
//! runs both against a real `redis-server` to check every reply agrees, error replies
//! included. Both check every argument before the first command, because Redis does not
//! roll a script back: a script that failed half way (a rate of 0 dividing after the
//! `HSET`) would leave its writes behind. [`token_bucket_argv`] and [`sliding_window_argv`]
//! take the raw `KEYS` and `ARGV` strings and refuse exactly what the Lua refuses, with the
//! same message ([`redis_error_reply`]); the typed [`TokenBucketArgs`] and
//! [`SlidingWindowArgs`] check the same ranges. Each run is O(log n) store commands.

use serde::{Deserialize, Serialize};

use crate::error::{DistlabError, Result};
use crate::ratelimit::distributed::store::{RedisStore, StoreError};
use crate::time::Time;

/// The token-bucket script, as Redis runs it.
pub const TOKEN_BUCKET_LUA: &str = include_str!("scripts/token_bucket.lua");
/// The sliding-window script, as Redis runs it.
pub const SLIDING_WINDOW_LUA: &str = include_str!("scripts/sliding_window.lua");

/// Micro-tokens per token: the bucket counts in these so that a refill of `rate` tokens per
/// second is exactly `rate` micro-tokens per µs, with no fractions.
pub const MICRO: u64 = 1_000_000;
/// Largest capacity, limit or rate the scripts take: keeps every quantity below 2^53.
pub const MAX_TOKENS: u64 = 1_000_000_000;
/// Largest sliding-window limit.
pub const MAX_WINDOW_LIMIT: u64 = 1_000_000;
/// Longest sliding window, µs (11.6 days).
pub const MAX_WINDOW_US: u64 = 1_000_000_000_000;
/// Latest time the scripts accept, µs: 2^52 (Unix time in µs until the year 2112), so that
/// a time plus a window or a wait stays below 2^53, what Lua's doubles hold exactly. A
/// larger time is refused, never rounded.
pub const MAX_NOW_US: u64 = 1 << 52;
/// Grace added to every key's TTL, ms (see the scripts: the TTL runs on the server's clock).
pub const TTL_GRACE_MS: i64 = 1_000;

/// Arguments of the token-bucket script (its `ARGV`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenBucketArgs {
    /// Whole tokens.
    pub capacity: u64,
    /// Whole tokens per second.
    pub rate_per_sec: u64,
    pub now_us: u64,
    /// Tokens wanted, 1 to `capacity`.
    pub wanted: u64,
    /// Grant as many as there are, up to `wanted` (a lease), instead of all or nothing.
    pub partial: bool,
}

impl TokenBucketArgs {
    /// Checks the ranges the script checks, in its order, with its messages.
    pub fn validate(&self) -> Result<()> {
        in_range("capacity", self.capacity, 1, MAX_TOKENS)?;
        in_range("ratePerSec", self.rate_per_sec, 1, MAX_TOKENS)?;
        in_range("nowUs", self.now_us, 0, MAX_NOW_US)?;
        in_range("wanted", self.wanted, 1, self.capacity)
    }

    /// The arguments from the script's `ARGV` strings, refused as the Lua refuses them.
    pub fn parse(argv: &[&str]) -> Result<Self> {
        let [capacity, rate, now, wanted, partial] = argv else {
            return Err(arity("token_bucket.lua", 5, 1, argv.len()));
        };
        let capacity = int_arg("capacity", capacity, 1, MAX_TOKENS)?;
        Ok(TokenBucketArgs {
            capacity,
            rate_per_sec: int_arg("ratePerSec", rate, 1, MAX_TOKENS)?,
            now_us: int_arg("nowUs", now, 0, MAX_NOW_US)?,
            wanted: int_arg("wanted", wanted, 1, capacity)?,
            partial: match *partial {
                "0" => false,
                "1" => true,
                other => return Err(refuse("partial", "must be 0 or 1", other)),
            },
        })
    }

    /// The `ARGV` strings Redis is given.
    pub fn argv(&self) -> Vec<String> {
        vec![
            self.capacity.to_string(),
            self.rate_per_sec.to_string(),
            self.now_us.to_string(),
            self.wanted.to_string(),
            if self.partial { "1" } else { "0" }.to_string(),
        ]
    }
}

/// What the token-bucket script answers: `{granted, micro-tokens left, retry after µs}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenBucketReply {
    pub granted: u64,
    pub micro_tokens_left: u64,
    /// µs until a refused request would be granted; 0 when something was granted.
    pub retry_after_us: u64,
}

/// Arguments of the sliding-window script (its `ARGV`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlidingWindowArgs {
    /// Requests admitted in any window.
    pub limit: u64,
    pub window_us: u64,
    pub now_us: u64,
    /// The request's id, unique: it becomes the sorted set's member.
    pub request: String,
}

impl SlidingWindowArgs {
    /// Checks the ranges the script checks, in its order, with its messages.
    pub fn validate(&self) -> Result<()> {
        in_range("limit", self.limit, 1, MAX_WINDOW_LIMIT)?;
        in_range("windowUs", self.window_us, 1, MAX_WINDOW_US)?;
        in_range("nowUs", self.now_us, 0, MAX_NOW_US)
    }

    /// The arguments from the script's `ARGV` strings, refused as the Lua refuses them.
    pub fn parse(argv: &[&str]) -> Result<Self> {
        let [limit, window, now, request] = argv else {
            return Err(arity("sliding_window.lua", 4, 1, argv.len()));
        };
        Ok(SlidingWindowArgs {
            limit: int_arg("limit", limit, 1, MAX_WINDOW_LIMIT)?,
            window_us: int_arg("windowUs", window, 1, MAX_WINDOW_US)?,
            now_us: int_arg("nowUs", now, 0, MAX_NOW_US)?,
            request: request.to_string(),
        })
    }

    /// The `ARGV` strings Redis is given.
    pub fn argv(&self) -> Vec<String> {
        vec![
            self.limit.to_string(),
            self.window_us.to_string(),
            self.now_us.to_string(),
            self.request.clone(),
        ]
    }
}

/// What the sliding-window script answers: `{admitted, left in the window, retry after µs}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlidingWindowReply {
    pub admitted: bool,
    pub left: u64,
    pub retry_after_us: u64,
}

/// An argument refused, worded as the scripts' `refuse`: the error reply is `ERR ` and this
/// error's text (see [`redis_error_reply`]).
fn refuse(field: &str, problem: &str, got: &str) -> DistlabError {
    DistlabError::field(field, format!("{problem}, got '{got}'"))
}

fn range_problem(min: u64, max: u64) -> String {
    format!("must be an integer from {min} to {max}")
}

fn in_range(field: &str, v: u64, min: u64, max: u64) -> Result<()> {
    if (min..=max).contains(&v) {
        Ok(())
    } else {
        Err(refuse(field, &range_problem(min, max), &v.to_string()))
    }
}

/// A plain decimal integer in `[min, max]`, as the scripts' `int_arg` reads one: digits
/// only, so `-5`, `1e3`, `1.5`, ` 5` and `0x10` are refused rather than read as numbers
/// (Lua's `tonumber` would take every one of them).
fn int_arg(field: &str, s: &str, min: u64, max: u64) -> Result<u64> {
    let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    // A digit string too long for a u64 is above every bound, as its double is in Lua.
    match digits.then(|| s.parse::<u64>().ok()).flatten() {
        Some(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(refuse(field, &range_problem(min, max), s)),
    }
}

fn arity(script: &str, args: usize, keys: usize, got_args: usize) -> DistlabError {
    DistlabError::InvalidState(format!(
        "ERR {script} takes 1 key and {args} arguments, got {keys} and {got_args}"
    ))
}

/// The text of the error reply Redis sends for `e` (after the `-`): a refused argument is
/// `ERR invalid `name`: ...`, as the scripts word it; a store error is its own
/// (`WRONGTYPE ...`).
pub fn redis_error_reply(e: &DistlabError) -> String {
    match e {
        DistlabError::InvalidField { .. } => format!("ERR {e}"),
        other => other.to_string(),
    }
}

fn store_error(e: StoreError) -> DistlabError {
    DistlabError::InvalidState(e.to_string())
}

/// The integer a stored field holds, as Lua's `tonumber` reads it (`None` if it is not one).
fn stored_int(s: Option<&String>) -> Option<u64> {
    s.and_then(|s| s.parse::<u64>().ok())
}

/// Runs `token_bucket.lua` on `key` at the store's clock `store_now` (for expiry; the bucket
/// itself uses `args.now_us`). Like the Lua, a bucket whose fields are missing is full.
pub fn token_bucket(
    store: &mut RedisStore,
    store_now: Time,
    key: &str,
    args: &TokenBucketArgs,
) -> Result<TokenBucketReply> {
    args.validate()?;
    let capacity = args.capacity * MICRO;
    let rate = args.rate_per_sec;
    let now = args.now_us;
    let state = store
        .hmget(store_now, key, &["tokens", "ts"])
        .map_err(store_error)?;
    let (mut tokens, mut ts) = match (
        stored_int(state.first().and_then(Option::as_ref)),
        stored_int(state.get(1).and_then(Option::as_ref)),
    ) {
        (Some(tokens), Some(ts)) => (tokens, ts),
        _ => (capacity, now),
    };
    // A lowered capacity caps what the bucket holds at once.
    tokens = tokens.min(capacity);
    if now > ts {
        let refill = u128::from(now - ts) * u128::from(rate);
        tokens = (u128::from(tokens) + refill).min(u128::from(capacity)) as u64;
        ts = now;
    }
    let available = tokens / MICRO;
    let granted = match (args.partial, available >= args.wanted) {
        (true, _) => args.wanted.min(available),
        (false, true) => args.wanted,
        (false, false) => 0,
    };
    tokens -= granted * MICRO;
    let retry_after_us = if granted == 0 {
        let need = if args.partial { 1 } else { args.wanted };
        (need * MICRO).saturating_sub(tokens).div_ceil(rate)
    } else {
        0
    };
    store
        .hset(
            store_now,
            key,
            &[("tokens", tokens.to_string()), ("ts", ts.to_string())],
        )
        .map_err(store_error)?;
    // tokens <= capacity: the time to full is never negative, so the key is never expired
    // at once (which would bring the bucket back full).
    let to_full_ms = (capacity - tokens).div_ceil(rate).div_ceil(1_000);
    store.pexpire(store_now, key, to_full_ms as i64 + TTL_GRACE_MS);
    Ok(TokenBucketReply {
        granted,
        micro_tokens_left: tokens,
        retry_after_us,
    })
}

/// Runs `token_bucket.lua` with its raw `KEYS` and `ARGV`, refusing what the Lua refuses.
pub fn token_bucket_argv(
    store: &mut RedisStore,
    store_now: Time,
    keys: &[&str],
    argv: &[&str],
) -> Result<TokenBucketReply> {
    let [key] = keys else {
        return Err(arity("token_bucket.lua", 5, keys.len(), argv.len()));
    };
    token_bucket(store, store_now, key, &TokenBucketArgs::parse(argv)?)
}

/// Runs `sliding_window.lua` with its raw `KEYS` and `ARGV`, refusing what the Lua refuses.
pub fn sliding_window_argv(
    store: &mut RedisStore,
    store_now: Time,
    keys: &[&str],
    argv: &[&str],
) -> Result<SlidingWindowReply> {
    let [key] = keys else {
        return Err(arity("sliding_window.lua", 4, keys.len(), argv.len()));
    };
    sliding_window(store, store_now, key, &SlidingWindowArgs::parse(argv)?)
}

/// Runs `sliding_window.lua` on `key` at the store's clock `store_now` (for expiry; the
/// window itself uses `args.now_us`).
pub fn sliding_window(
    store: &mut RedisStore,
    store_now: Time,
    key: &str,
    args: &SlidingWindowArgs,
) -> Result<SlidingWindowReply> {
    args.validate()?;
    let now = args.now_us as i64;
    let window = args.window_us as i64;
    store
        .zremrangebyscore_upto(store_now, key, &(now - window).to_string())
        .map_err(store_error)?;
    let count = store.zcard(store_now, key).map_err(store_error)?;
    if count < args.limit {
        store
            .zadd(store_now, key, &now.to_string(), &args.request)
            .map_err(store_error)?;
        let ttl_ms = args.window_us.div_ceil(1_000) as i64 + TTL_GRACE_MS;
        store.pexpire(store_now, key, ttl_ms);
        return Ok(SlidingWindowReply {
            admitted: true,
            left: args.limit - count - 1,
            retry_after_us: 0,
        });
    }
    let oldest = store
        .zrange_first(store_now, key)
        .map_err(store_error)?
        .map_or(now, |(_, score)| score);
    Ok(SlidingWindowReply {
        admitted: false,
        left: 0,
        retry_after_us: (oldest + window - now).max(0) as u64,
    })
}

/// Which script a gateway asks the store to run, with its key and arguments: one message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "script", rename_all = "camelCase")]
pub enum ScriptCall {
    TokenBucket {
        key: String,
        args: TokenBucketArgs,
    },
    SlidingWindow {
        key: String,
        args: SlidingWindowArgs,
    },
}

/// A script's reply, or Redis's error reply.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ScriptReply {
    TokenBucket(TokenBucketReply),
    SlidingWindow(SlidingWindowReply),
    Error { message: String },
}

impl ScriptReply {
    /// How many requests (tokens) the reply grants.
    pub fn granted(&self) -> u64 {
        match self {
            ScriptReply::TokenBucket(r) => r.granted,
            ScriptReply::SlidingWindow(r) => u64::from(r.admitted),
            ScriptReply::Error { .. } => 0,
        }
    }
}

impl ScriptCall {
    /// Runs the script whole against `store` at `store_now` (the `EVALSHA` of the store).
    pub fn run(&self, store: &mut RedisStore, store_now: Time) -> ScriptReply {
        let reply = match self {
            ScriptCall::TokenBucket { key, args } => {
                token_bucket(store, store_now, key, args).map(ScriptReply::TokenBucket)
            }
            ScriptCall::SlidingWindow { key, args } => {
                sliding_window(store, store_now, key, args).map(ScriptReply::SlidingWindow)
            }
        };
        reply.unwrap_or_else(|e| ScriptReply::Error {
            message: redis_error_reply(&e),
        })
    }

    /// The Lua text of the script.
    pub fn lua(&self) -> &'static str {
        match self {
            ScriptCall::TokenBucket { .. } => TOKEN_BUCKET_LUA,
            ScriptCall::SlidingWindow { .. } => SLIDING_WINDOW_LUA,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tb(capacity: u64, rate: u64, now_us: u64, wanted: u64, partial: bool) -> TokenBucketArgs {
        TokenBucketArgs {
            capacity,
            rate_per_sec: rate,
            now_us,
            wanted,
            partial,
        }
    }

    #[test]
    fn the_lua_files_are_the_scripts_described_here() {
        for (lua, calls) in [
            (TOKEN_BUCKET_LUA, ["HMGET", "HSET", "PEXPIRE"].as_slice()),
            (
                SLIDING_WINDOW_LUA,
                ["ZREMRANGEBYSCORE", "ZCARD", "ZADD", "PEXPIRE", "ZRANGE"].as_slice(),
            ),
        ] {
            for c in calls {
                assert!(lua.contains(&format!("redis.call('{c}'")), "{c}");
            }
            assert!(!lua.contains("'TIME'"), "scripts take the time as ARGV");
        }
    }

    #[test]
    fn a_bucket_starts_full_refills_exactly_and_says_when_to_retry() {
        let mut s = RedisStore::new();
        let at = Time::ZERO;
        let r = token_bucket(&mut s, at, "b", &tb(3, 2, 0, 3, false)).unwrap();
        assert_eq!(r.granted, 3);
        assert_eq!(r.micro_tokens_left, 0);
        let r = token_bucket(&mut s, at, "b", &tb(3, 2, 100_000, 1, false)).unwrap();
        // 0.1 s at 2/s is 0.2 tokens: refused, 0.8 tokens = 400 ms to go.
        assert_eq!(
            r,
            TokenBucketReply {
                granted: 0,
                micro_tokens_left: 200_000,
                retry_after_us: 400_000
            }
        );
        let r = token_bucket(&mut s, at, "b", &tb(3, 2, 500_000, 1, false)).unwrap();
        assert_eq!(r.granted, 1);
        // A lease takes what there is.
        let r = token_bucket(&mut s, at, "b", &tb(3, 2, 1_500_000, 3, true)).unwrap();
        assert_eq!((r.granted, r.micro_tokens_left), (2, 0));
        // TTL: until full (1.5 s) plus the grace.
        assert_eq!(s.pttl(at, "b"), 1_500 + TTL_GRACE_MS);
    }

    #[test]
    fn a_clock_that_goes_back_refills_nothing() {
        let mut s = RedisStore::new();
        token_bucket(&mut s, Time::ZERO, "b", &tb(2, 1, 10_000_000, 2, false)).unwrap();
        let r = token_bucket(&mut s, Time::ZERO, "b", &tb(2, 1, 5_000_000, 1, false)).unwrap();
        assert_eq!(r.granted, 0);
        assert_eq!(r.retry_after_us, 1_000_000);
    }

    #[test]
    fn bad_arguments_are_named() {
        let mut s = RedisStore::new();
        let e = token_bucket(&mut s, Time::ZERO, "b", &tb(3, 2, 0, 4, false)).unwrap_err();
        assert!(e.to_string().contains("wanted"), "{e}");
        let e = sliding_window(
            &mut s,
            Time::ZERO,
            "w",
            &SlidingWindowArgs {
                limit: 0,
                window_us: 1,
                now_us: 0,
                request: "r".into(),
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("limit"), "{e}");
        let call = ScriptCall::TokenBucket {
            key: "b".into(),
            args: tb(0, 1, 0, 1, false),
        };
        assert!(matches!(
            call.run(&mut s, Time::ZERO),
            ScriptReply::Error { .. }
        ));
    }

    /// Issue 13's sequence: capacity 10^9, then 1, at the same instant. Before the fix the
    /// Lua set the key's TTL from `capacity − tokens` (negative: Redis deleted the key and
    /// the bucket came back full) while this copy kept granting the old tokens.
    #[test]
    fn a_lowered_capacity_caps_the_tokens_at_once_and_keeps_the_key() {
        let mut s = RedisStore::new();
        let run = |s: &mut RedisStore, capacity| {
            token_bucket(s, Time::ZERO, "k", &tb(capacity, 1, 1_000, 1, false)).unwrap()
        };
        let r = run(&mut s, 1_000_000_000);
        assert_eq!((r.granted, r.micro_tokens_left), (1, 999_999_999 * MICRO));
        let r = run(&mut s, 1);
        assert_eq!(
            (r.granted, r.micro_tokens_left, r.retry_after_us),
            (1, 0, 0)
        );
        let r = run(&mut s, 1);
        // Empty: a token at 1 micro-token per µs is a second away.
        assert_eq!(
            (r.granted, r.micro_tokens_left, r.retry_after_us),
            (0, 0, 1_000_000)
        );
        assert_eq!(s.pttl(Time::ZERO, "k"), 1_000 + TTL_GRACE_MS);
        // A raised capacity fills by refill, not at once.
        let r = token_bucket(&mut s, Time::ZERO, "k", &tb(5, 1, 1_000, 1, true)).unwrap();
        assert_eq!(r.granted, 0);
    }

    /// Every family of bad argument the Lua refuses, refused here with the same words and
    /// before anything is written (the differential test compares the words with Redis).
    #[test]
    fn bad_arguments_are_refused_before_any_write() {
        let mut s = RedisStore::new();
        token_bucket(&mut s, Time::ZERO, "b", &tb(5, 1, 1_000, 2, false)).unwrap();
        let before = s.clone();
        let good = ["5", "1", "2000", "1", "0"];
        let cases: [(usize, &str, &str); 14] = [
            (3, "0", "wanted"),
            (3, "-5", "wanted"),
            (3, "1000000000000000000", "wanted"),
            (3, "6", "wanted"),
            (1, "0", "ratePerSec"),
            (2, "-1", "nowUs"),
            (2, "9007199254740993", "nowUs"),
            (2, "4503599627370497", "nowUs"),
            (0, "1e3", "capacity"),
            (0, "1.5", "capacity"),
            (0, " 5", "capacity"),
            (0, "0x10", "capacity"),
            (0, "", "capacity"),
            (4, "2", "partial"),
        ];
        for (i, bad, field) in cases {
            let mut argv = good;
            argv[i] = bad;
            let e = token_bucket_argv(&mut s, Time::ZERO, &["b"], &argv).unwrap_err();
            let text = redis_error_reply(&e);
            assert!(
                text.starts_with(&format!("ERR invalid `{field}`: "))
                    && text.ends_with(&format!("got '{bad}'")),
                "{argv:?}: {text}"
            );
            assert_eq!(s, before, "{argv:?} wrote");
        }
        assert_eq!(
            redis_error_reply(
                &token_bucket_argv(&mut s, Time::ZERO, &["b"], &good[..4]).unwrap_err()
            ),
            "ERR token_bucket.lua takes 1 key and 5 arguments, got 1 and 4"
        );
        assert_eq!(
            redis_error_reply(&token_bucket_argv(&mut s, Time::ZERO, &[], &good).unwrap_err()),
            "ERR token_bucket.lua takes 1 key and 5 arguments, got 0 and 5"
        );
        assert_eq!(
            redis_error_reply(
                &token_bucket_argv(&mut s, Time::ZERO, &["b"], &["3", "2", "0", "4", "0"])
                    .unwrap_err()
            ),
            "ERR invalid `wanted`: must be an integer from 1 to 3, got '4'"
        );
        // The typed arguments give the same words.
        let e = tb(3, 2, 0, 4, false).validate().unwrap_err();
        assert_eq!(
            redis_error_reply(&e),
            "ERR invalid `wanted`: must be an integer from 1 to 3, got '4'"
        );
        for (i, bad, field) in [
            (1, "0", "windowUs"),
            (0, "0", "limit"),
            (2, "-1", "nowUs"),
            (2, "9007199254740993", "nowUs"),
            (1, "1000000000001", "windowUs"),
        ] {
            let mut argv = ["2", "1000", "5", "r1"];
            argv[i] = bad;
            let e = sliding_window_argv(&mut s, Time::ZERO, &["w"], &argv).unwrap_err();
            let text = redis_error_reply(&e);
            assert!(
                text.starts_with(&format!("ERR invalid `{field}`: ")),
                "{argv:?}: {text}"
            );
            assert_eq!(s, before, "{argv:?} wrote");
        }
        let ok = token_bucket_argv(&mut s, Time::ZERO, &["b"], &good).unwrap();
        assert_eq!(ok.granted, 1);
    }

    #[test]
    fn a_key_of_the_wrong_type_is_redis_s_error_reply() {
        let mut s = RedisStore::new();
        s.zadd(Time::ZERO, "k", "1", "m").unwrap();
        let call = ScriptCall::TokenBucket {
            key: "k".into(),
            args: tb(1, 1, 0, 1, false),
        };
        match call.run(&mut s, Time::ZERO) {
            ScriptReply::Error { message } => assert!(message.contains("WRONGTYPE")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_sliding_window_admits_limit_per_window_and_names_the_oldest() {
        let mut s = RedisStore::new();
        let call = |s: &mut RedisStore, now_us: u64, id: &str| {
            sliding_window(
                s,
                Time::ZERO,
                "w",
                &SlidingWindowArgs {
                    limit: 2,
                    window_us: 1_000,
                    now_us,
                    request: id.into(),
                },
            )
            .unwrap()
        };
        assert_eq!(call(&mut s, 0, "a").left, 1);
        assert_eq!(call(&mut s, 300, "b").left, 0);
        let r = call(&mut s, 600, "c");
        assert_eq!((r.admitted, r.retry_after_us), (false, 400));
        // At 1000 the entry scored 0 has left the window (0, 1000].
        assert!(call(&mut s, 1_000, "d").admitted);
        assert!(!call(&mut s, 1_001, "e").admitted);
    }

    proptest! {
        /// Keys expire only once nothing they hold can change a reply (a full bucket, a log
        /// whose entries have all left the window): a store whose clock moves with the
        /// callers' answers exactly as one whose clock stands still and never expires a key.
        #[test]
        fn expiry_never_changes_a_reply(
            capacity in 1u64..10,
            rate in 1u64..2_000,
            limit in 1u64..6,
            window_us in 1u64..3_000_000,
            steps in proptest::collection::vec((0u64..4_000_000, 1u64..4, any::<bool>()), 1..60),
        ) {
            let (mut moving, mut frozen) = (RedisStore::new(), RedisStore::new());
            let mut now = 0;
            for (i, (gap, wanted, partial)) in steps.into_iter().enumerate() {
                now += gap;
                let calls = [
                    ScriptCall::TokenBucket { key: "b".into(), args: tb(capacity, rate, now, wanted.min(capacity), partial) },
                    ScriptCall::SlidingWindow {
                        key: "w".into(),
                        args: SlidingWindowArgs { limit, window_us, now_us: now, request: format!("r{i}") },
                    },
                ];
                for call in calls {
                    let a = call.run(&mut moving, Time(now));
                    moving.expire_due(Time(now));
                    prop_assert_eq!(a, call.run(&mut frozen, Time::ZERO));
                }
            }
        }
    }

    proptest! {
        /// The bucket never grants more than capacity + rate · elapsed over a whole run,
        /// and what it holds stays within [0, capacity].
        #[test]
        fn a_bucket_never_grants_more_than_its_envelope(
            capacity in 1u64..20,
            rate in 1u64..50,
            steps in proptest::collection::vec((0u64..300_000, 1u64..5, any::<bool>()), 1..100),
        ) {
            let mut s = RedisStore::new();
            let mut now = 0;
            let mut granted = 0u64;
            for (gap, wanted, partial) in steps {
                now += gap;
                let wanted = wanted.min(capacity);
                let r = token_bucket(&mut s, Time(now), "b", &tb(capacity, rate, now, wanted, partial)).unwrap();
                prop_assert!(r.micro_tokens_left <= capacity * MICRO);
                prop_assert!(r.granted <= wanted);
                granted += r.granted;
                prop_assert!(
                    u128::from(granted * MICRO) <= u128::from(capacity * MICRO) + u128::from(now) * u128::from(rate)
                );
                if r.granted == 0 {
                    // Retrying when told to succeeds (for a whole request) or grants one.
                    let mut copy = s.clone();
                    let later = now + r.retry_after_us;
                    let again = token_bucket(&mut copy, Time(later), "b", &tb(capacity, rate, later, wanted, partial)).unwrap();
                    prop_assert!(again.granted > 0);
                    if r.retry_after_us > 0 {
                        let mut copy = s.clone();
                        let early = later - 1;
                        let e = token_bucket(&mut copy, Time(early), "b", &tb(capacity, rate, early, wanted, partial)).unwrap();
                        prop_assert_eq!(e.granted, 0);
                    }
                }
            }
        }
    }
}
