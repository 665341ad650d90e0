//! The HyperLogLog agrees with real Redis, byte for byte: seeded random sequences of
//! `PFADD` / `PFCOUNT` (one key and several) / `PFMERGE` run on a `redis-server` and on
//! [`HyperLogLog`] sketches held in a map as Redis holds keys; every reply is compared,
//! and after every command so is each key's whole string (`GET`: the `HYLL` header, the
//! encoding, the cached cardinality and the sparse or dense registers). At the end of
//! each sequence the registers are compared once more through `PFDEBUG GETREG`, which
//! turns a sparse key dense on the server (the model does the same). Elements are random
//! bytes of every length, some repeated, with batches big enough to force the sparse →
//! dense promotion; a long run compares `PFCOUNT` at cardinalities up to 200,000.
//!
//! `cargo xtask test` starts a private `redis-server` on 127.0.0.1 and passes its port in
//! `DISTLAB_REDIS_PORT` (see `tests/tests/redis_scripts.rs`). Without one this test fails,
//! saying how to get one: it never passes without having compared.
#![cfg(not(target_arch = "wasm32"))]

use distlab_core::rng::SimRng;
use distlab_core::sketch::hyperloglog::{Encoding, HyperLogLog, REDIS_PRECISION};
use std::collections::BTreeMap;
mod common;

use common::resp::{Redis, Resp};

const SEQUENCES: u64 = 150;
const COMMANDS_PER_SEQUENCE: u64 = 40;

/// Redis's keys as the model holds them.
#[derive(Default)]
struct Model {
    keys: BTreeMap<Vec<u8>, HyperLogLog>,
}

impl Model {
    fn pfadd(&mut self, key: &[u8], elements: &[Vec<u8>]) -> Resp {
        let (created, hll) = match self.keys.get_mut(key) {
            Some(h) => (false, h),
            None => (
                true,
                self.keys
                    .entry(key.to_vec())
                    .or_insert_with(HyperLogLog::redis),
            ),
        };
        let changed = hll.pfadd(elements);
        if created {
            hll.invalidate_cached_count();
        }
        Resp::Int(i64::from(created || changed))
    }

    fn pfcount(&mut self, keys: &[Vec<u8>]) -> Resp {
        if let [key] = keys {
            return Resp::Int(self.keys.get_mut(key).map_or(0, |h| h.pfcount() as i64));
        }
        let present: Vec<&HyperLogLog> = keys.iter().filter_map(|k| self.keys.get(k)).collect();
        if present.is_empty() {
            return Resp::Int(0);
        }
        Resp::Int(HyperLogLog::count_union(&present).expect("one precision") as i64)
    }

    fn pfmerge(&mut self, dest: &[u8], sources: &[Vec<u8>]) -> Resp {
        let srcs: Vec<HyperLogLog> = sources
            .iter()
            .filter_map(|k| self.keys.get(k).cloned())
            .collect();
        let refs: Vec<&HyperLogLog> = srcs.iter().collect();
        self.keys
            .entry(dest.to_vec())
            .or_insert_with(HyperLogLog::redis)
            .merge_from(&refs)
            .expect("one precision");
        Resp::Simple("OK".into())
    }
}

fn random_element(rng: &mut SimRng, seen: &mut Vec<Vec<u8>>) -> Vec<u8> {
    if !seen.is_empty() && rng.chance(0.2) {
        return seen[rng.below(seen.len() as u64) as usize].clone();
    }
    let len = rng.below(24) as usize;
    let e: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
    seen.push(e.clone());
    e
}

fn compare_strings(redis: &mut Redis, model: &Model, keys: &[Vec<u8>], context: &str) {
    for k in keys {
        let real = redis.call(&[b"GET".as_slice(), k]);
        let ours = Resp::Bulk(model.keys.get(k).map(HyperLogLog::to_redis_bytes));
        if real != ours {
            let show = |r: &Resp| match r {
                Resp::Bulk(Some(b)) => {
                    format!("{} bytes, header {:?}", b.len(), &b[..b.len().min(16)])
                }
                other => format!("{other:?}"),
            };
            let decode = redis.call(&[b"PFDEBUG".as_slice(), b"DECODE", k]);
            panic!(
                "{context}: key {} differs: redis {} ({decode:?}), ours {} ({:?})",
                String::from_utf8_lossy(k),
                show(&real),
                show(&ours),
                model.keys.get(k).and_then(HyperLogLog::decode)
            );
        }
    }
}

#[test]
fn pfadd_pfcount_pfmerge_and_the_stored_bytes_equal_redis() {
    let mut redis = Redis::connect("the HyperLogLog");
    let pid = std::process::id();
    // What the comparisons covered: keys seen sparse with values, and dense.
    let (mut sparse_seen, mut dense_seen) = (0u64, 0u64);
    for seq in 0..SEQUENCES {
        let mut rng = SimRng::new(seq);
        let keys: Vec<Vec<u8>> = (0..3)
            .map(|i| format!("distlab-test:{pid}:hll:{seq}:{i}").into_bytes())
            .collect();
        for k in &keys {
            redis.call(&[b"DEL".as_slice(), k]);
        }
        let mut model = Model::default();
        let mut seen = Vec::new();
        for step in 0..COMMANDS_PER_SEQUENCE {
            let key = keys[rng.below(3) as usize].clone();
            let context = format!("sequence {seq}, command {step}");
            let (real, ours) = match rng.below(10) {
                0..=4 => {
                    // Mostly small batches; now and then one that forces promotion.
                    let n = if rng.chance(0.1) {
                        400 + rng.below(2_000)
                    } else {
                        rng.below(8)
                    };
                    let elements: Vec<Vec<u8>> = (0..n)
                        .map(|_| random_element(&mut rng, &mut seen))
                        .collect();
                    let mut args = vec![b"PFADD".to_vec(), key.clone()];
                    args.extend(elements.iter().cloned());
                    (redis.call(&args), model.pfadd(&key, &elements))
                }
                5..=6 => {
                    let n = 1 + rng.below(3) as usize;
                    let ks: Vec<Vec<u8>> = (0..n)
                        .map(|_| keys[rng.below(3) as usize].clone())
                        .collect();
                    let mut args = vec![b"PFCOUNT".to_vec()];
                    args.extend(ks.iter().cloned());
                    (redis.call(&args), model.pfcount(&ks))
                }
                7..=8 => {
                    let n = 1 + rng.below(3) as usize;
                    let srcs: Vec<Vec<u8>> = (0..n)
                        .map(|_| keys[rng.below(3) as usize].clone())
                        .collect();
                    let mut args = vec![b"PFMERGE".to_vec(), key.clone()];
                    args.extend(srcs.iter().cloned());
                    (redis.call(&args), model.pfmerge(&key, &srcs))
                }
                _ => {
                    let mut args = vec![b"PFCOUNT".to_vec(), key.clone()];
                    let real = redis.call(&args);
                    let ours = model.pfcount(std::slice::from_ref(&key));
                    args.clear();
                    (real, ours)
                }
            };
            assert_eq!(real, ours, "{context}: replies differ");
            compare_strings(&mut redis, &model, &keys, &context);
            for h in model.keys.values() {
                match h.encoding() {
                    Encoding::Dense => dense_seen += 1,
                    Encoding::Sparse if h.count() > 0 => sparse_seen += 1,
                    Encoding::Sparse => {}
                }
            }
        }
        for k in &keys {
            let Some(ours) = model.keys.get_mut(k) else {
                continue;
            };
            let real = redis.call(&[b"PFDEBUG".as_slice(), b"GETREG", k]);
            ours.to_dense();
            let ours_regs = Resp::Array(Some(
                ours.register_values()
                    .into_iter()
                    .map(|v| Resp::Int(i64::from(v)))
                    .collect(),
            ));
            assert!(
                real == ours_regs,
                "sequence {seq}: registers of {k:?} differ"
            );
        }
        compare_strings(
            &mut redis,
            &model,
            &keys,
            &format!("sequence {seq}, after GETREG"),
        );
        for k in &keys {
            redis.call(&[b"DEL".as_slice(), k]);
        }
    }
    assert!(
        sparse_seen > 1_000 && dense_seen > 1_000,
        "sparse {sparse_seen}, dense {dense_seen}"
    );
}

#[test]
fn pfcount_equals_redis_up_to_two_hundred_thousand() {
    let mut redis = Redis::connect("the HyperLogLog");
    let key = format!("distlab-test:{}:hll:large", std::process::id()).into_bytes();
    redis.call(&[b"DEL".as_slice(), &key]);
    let mut ours = HyperLogLog::redis();
    let mut added = 0u64;
    let mut checkpoints = 0;
    let mut next = 1u64;
    while added < 200_000 {
        let batch: Vec<Vec<u8>> = (added..next)
            .map(|i| format!("e{i}").into_bytes())
            .collect();
        let mut args = vec![b"PFADD".to_vec(), key.clone()];
        args.extend(batch.iter().cloned());
        let real = redis.call(&args);
        let changed = ours.pfadd(&batch);
        assert_eq!(
            real,
            Resp::Int(i64::from(changed || added == 0)),
            "PFADD up to {next}"
        );
        added = next;
        let real = redis.call(&[b"PFCOUNT".as_slice(), &key]);
        assert_eq!(real, Resp::Int(ours.pfcount() as i64), "PFCOUNT at {added}");
        checkpoints += 1;
        next = (next * 5 / 4).max(next + 1).min(200_000);
    }
    assert_eq!(ours.precision(), REDIS_PRECISION);
    assert!(checkpoints > 40);
    assert_eq!(
        Resp::Bulk(Some(ours.to_redis_bytes())),
        redis.call(&[b"GET".as_slice(), &key])
    );
    redis.call(&[b"DEL".as_slice(), &key]);
}
