//! The linearizability checker on Porcupine's histories and on generated key-value
//! histories of 1k, 10k and 100k operations. Histories are parsed or generated once,
//! outside the measurement (check only, what Porcupine's own `BenchmarkEtcdJepsen*`
//! time), except in the `parse_and_check` cases. The key-value histories are checked both
//! split by key (`KvModel`) and whole (`KvStoreModel`, one part: the search must find the
//! independence of keys itself); the 50-client ones whole take seconds, so they are timed
//! once each, with their step counts, rather than sampled.
//!
//! Run: `cargo bench -p distlab-tests --bench checker`

use std::path::{Path, PathBuf};

use criterion::{Criterion, criterion_group, criterion_main};
use distlab_core::sim::linearizability::generate::random_kv_history;
use distlab_core::sim::linearizability::jepsen::{parse_etcd_log, parse_kv_log};
use distlab_core::sim::linearizability::{CasRegister, KvModel, KvStoreModel, check};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/porcupine")
}

/// The histories of a data folder that have a verdict, with it, as (text, linearizable).
fn histories_with_verdicts(folder: &str) -> Vec<(String, bool)> {
    let verdicts = std::fs::read_to_string(data_dir().join("VERDICTS.txt")).unwrap();
    verdicts
        .lines()
        .filter(|line| line.starts_with(&format!("{folder}/")))
        .map(|line| {
            let (path, verdict) = line.split_once(' ').unwrap();
            let text = std::fs::read_to_string(data_dir().join(path)).unwrap();
            (text, verdict.trim().parse().unwrap())
        })
        .collect()
}

fn porcupine_histories(c: &mut Criterion) {
    let etcd = histories_with_verdicts("jepsen");
    assert_eq!(etcd.len(), 102);
    let etcd_ops: Vec<_> = etcd
        .iter()
        .map(|(text, _)| parse_etcd_log(text).unwrap())
        .collect();
    let kv = histories_with_verdicts("kv");
    assert_eq!(kv.len(), 6);
    let kv_ops: Vec<_> = kv
        .iter()
        .map(|(text, _)| parse_kv_log(text).unwrap())
        .collect();

    let mut group = c.benchmark_group("porcupine");
    group.bench_function("etcd_102_check", |b| {
        b.iter(|| {
            for (ops, (_, expected)) in etcd_ops.iter().zip(&etcd) {
                assert_eq!(
                    check(&CasRegister::default(), ops).unwrap().linearizable,
                    *expected
                );
            }
        })
    });
    group.bench_function("etcd_102_parse_and_check", |b| {
        b.iter(|| {
            for (text, expected) in &etcd {
                let ops = parse_etcd_log(text).unwrap();
                assert_eq!(
                    check(&CasRegister::default(), &ops).unwrap().linearizable,
                    *expected
                );
            }
        })
    });
    group.bench_function("kv_6_check", |b| {
        b.iter(|| {
            for (ops, (_, expected)) in kv_ops.iter().zip(&kv) {
                assert_eq!(check(&KvModel, ops).unwrap().linearizable, *expected);
            }
        })
    });
    group.bench_function("kv_6_parse_and_check", |b| {
        b.iter(|| {
            for (text, expected) in &kv {
                let ops = parse_kv_log(text).unwrap();
                assert_eq!(check(&KvModel, &ops).unwrap().linearizable, *expected);
            }
        })
    });
    group.bench_function("kv_c01_c10_whole_store_check", |b| {
        b.iter(|| {
            for (ops, (_, expected)) in kv_ops.iter().zip(&kv).take(4) {
                assert_eq!(check(&KvStoreModel, ops).unwrap().linearizable, *expected);
            }
        })
    });
    group.finish();
}

/// The 50-client kv histories checked whole: one timed run each, with the steps.
fn whole_store_50_clients(_c: &mut Criterion) {
    for name in ["kv/c50-ok.txt", "kv/c50-bad.txt"] {
        let text = std::fs::read_to_string(data_dir().join(name)).unwrap();
        let ops = parse_kv_log(&text).unwrap();
        let started = std::time::Instant::now();
        let result = check(&KvStoreModel, &ops).unwrap();
        println!(
            "porcupine/{name} whole store, check only: {:?}, {} steps, {:.2?} (one run)",
            result.verdict,
            result.steps,
            started.elapsed()
        );
        let split = check(&KvModel, &ops).unwrap();
        println!(
            "porcupine/{name} split by key: {:?}, {} steps",
            split.verdict, split.steps
        );
    }
}

fn generated_histories(c: &mut Criterion) {
    let mut group = c.benchmark_group("generated_kv");
    group.sample_size(10);
    // (name, operations, keys, concurrent clients): the 1k history is one key, so one
    // part with eight clients overlapping; the others spread over 100 keys.
    for (name, ops, keys, clients) in [
        ("1k_ops_1_key_8_clients", 1_000, 1, 8),
        ("10k_ops_100_keys_10_clients", 10_000, 100, 10),
        ("100k_ops_100_keys_10_clients", 100_000, 100, 10),
    ] {
        let history = random_kv_history(1, ops, keys, clients).unwrap();
        group.bench_function(name, |b| {
            b.iter(|| assert!(check(&KvModel, &history).unwrap().linearizable))
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    porcupine_histories,
    whole_store_50_clients,
    generated_histories
);
criterion_main!(benches);
