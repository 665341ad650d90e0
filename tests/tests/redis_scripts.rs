//! The simulated store agrees with real Redis: the limiter's two Lua scripts run on a
//! `redis-server` (loaded with `SCRIPT LOAD`, called with `EVALSHA`) and natively on the
//! simulated store, on the same seeded request sequences, and every reply is compared, as
//! is the state each key is left in.
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
    self, SLIDING_WINDOW_LUA, SlidingWindowArgs, TOKEN_BUCKET_LUA, TokenBucketArgs,
};
use distlab_core::ratelimit::distributed::store::{RedisStore, Value};
use distlab_core::rng::SimRng;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

const PORT_VAR: &str = "DISTLAB_REDIS_PORT";
const SEQUENCES: u64 = 300;

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq)]
enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Resp>>),
}

/// The smallest Redis client that serves: one connection, one command at a time.
struct Redis {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Redis {
    fn connect() -> Redis {
        let how = "start one with `cargo xtask test` (it installs Debian's redis-server \
                   when missing and run as root, starts it on a free port and stops it \
                   afterwards), or run `apt-get install redis-server`, start \
                   `redis-server --port 6390 --save '' --appendonly no` and set \
                   DISTLAB_REDIS_PORT=6390";
        let port = std::env::var(PORT_VAR).unwrap_or_else(|_| {
            panic!("{PORT_VAR} is not set: this test compares the scripts with a real Redis; {how}")
        });
        let addr = format!("127.0.0.1:{port}");
        let stream = TcpStream::connect(&addr)
            .unwrap_or_else(|e| panic!("no Redis answers on {addr} ({e}); {how}"));
        let mut r = Redis {
            reader: BufReader::new(stream.try_clone().expect("clone the socket")),
            writer: stream,
        };
        assert_eq!(r.call(&["PING"]), Resp::Simple("PONG".into()));
        r
    }

    fn call<S: AsRef<[u8]>>(&mut self, args: &[S]) -> Resp {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            let a = a.as_ref();
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&out).expect("send to Redis");
        self.read()
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.reader.read_line(&mut l).expect("read from Redis");
        assert!(l.ends_with("\r\n"), "truncated reply line {l:?}");
        l.truncate(l.len() - 2);
        l
    }

    fn read(&mut self) -> Resp {
        let line = self.line();
        let (kind, rest) = line.split_at(1);
        let n = || rest.parse::<i64>().expect("a length");
        match kind {
            "+" => Resp::Simple(rest.to_string()),
            "-" => Resp::Error(rest.to_string()),
            ":" => Resp::Int(n()),
            "$" if n() < 0 => Resp::Bulk(None),
            "$" => {
                let mut buf = vec![0; n() as usize + 2];
                self.reader
                    .read_exact(&mut buf)
                    .expect("read a bulk string");
                buf.truncate(buf.len() - 2);
                Resp::Bulk(Some(buf))
            }
            "*" if n() < 0 => Resp::Array(None),
            "*" => Resp::Array(Some((0..n()).map(|_| self.read()).collect())),
            _ => panic!("not a RESP reply: {line:?}"),
        }
    }

    fn script_load(&mut self, lua: &str) -> String {
        match self.call(&["SCRIPT", "LOAD", lua]) {
            Resp::Bulk(Some(sha)) => String::from_utf8(sha).expect("a hex sha"),
            other => panic!("SCRIPT LOAD failed: {other:?}"),
        }
    }

    /// `EVALSHA sha 1 key argv...`, expecting three integers.
    fn evalsha(&mut self, sha: &str, key: &str, argv: &[String]) -> [i64; 3] {
        let mut args: Vec<&str> = vec!["EVALSHA", sha, "1", key];
        args.extend(argv.iter().map(String::as_str));
        match self.call(&args) {
            Resp::Array(Some(v)) => {
                let ints: Vec<i64> = v
                    .iter()
                    .map(|x| match x {
                        Resp::Int(i) => *i,
                        other => panic!("EVALSHA {key} {argv:?}: not an integer: {other:?}"),
                    })
                    .collect();
                ints.try_into()
                    .unwrap_or_else(|v| panic!("EVALSHA {key} {argv:?}: {v:?}"))
            }
            other => panic!("EVALSHA {key} {argv:?} failed: {other:?}"),
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

#[test]
fn the_token_bucket_script_agrees_with_redis_on_every_request() {
    let mut redis = Redis::connect();
    let sha = redis.script_load(TOKEN_BUCKET_LUA);
    let mut compared = 0;
    for seq in 0..SEQUENCES {
        let mut rng = SimRng::new(seq);
        let key = key("tb", seq);
        let capacity = match rng.below(3) {
            0 => 1 + rng.below(5),
            1 => 1 + rng.below(100),
            _ => 1 + rng.below(1_000_000_000),
        };
        let rate_per_sec = match rng.below(3) {
            0 => 1 + rng.below(3),
            1 => 1 + rng.below(1_000),
            _ => 1 + rng.below(1_000_000_000),
        };
        let mut store = RedisStore::new();
        let mut now = rng.below(1 << 40);
        for _ in 0..1 + rng.below(60) {
            now = next_now(&mut rng, now);
            let most = small_or(&mut rng, 3, capacity).min(capacity);
            let wanted = 1 + rng.below(most);
            let args = TokenBucketArgs {
                capacity,
                rate_per_sec,
                now_us: now,
                wanted,
                partial: rng.chance(0.3),
            };
            let native = scripts::token_bucket(&mut store, Time::ZERO, &key, &args)
                .unwrap_or_else(|e| panic!("sequence {seq}: {args:?}: {e}"));
            let real = redis.evalsha(&sha, &key, &args.argv());
            let want = [
                native.granted as i64,
                native.micro_tokens_left as i64,
                native.retry_after_us as i64,
            ];
            assert_eq!(real, want, "sequence {seq}: {args:?}");
            compared += 1;
        }
        let real_state = redis.strings(&["HMGET", &key, "tokens", "ts"]);
        let sim_state = store.hmget(Time::ZERO, &key, &["tokens", "ts"]).unwrap();
        assert_eq!(real_state, sim_state, "sequence {seq}: state left behind");
        redis.call(&["DEL", &key]);
    }
    eprintln!("token bucket: {compared} replies agree with Redis");
}

#[test]
fn the_sliding_window_script_agrees_with_redis_on_every_request() {
    let mut redis = Redis::connect();
    let sha = redis.script_load(SLIDING_WINDOW_LUA);
    let mut compared = 0;
    for seq in 0..SEQUENCES {
        let mut rng = SimRng::new(1_000_000 + seq);
        let key = key("sw", seq);
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
            let native = scripts::sliding_window(&mut store, Time::ZERO, &key, &args)
                .unwrap_or_else(|e| panic!("sequence {seq}: {args:?}: {e}"));
            let real = redis.evalsha(&sha, &key, &args.argv());
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
    eprintln!("sliding window: {compared} replies agree with Redis");
}
