//! Every history of Porcupine's test data (tests/data/porcupine, see its README.md) is
//! parsed and checked, and every verdict in VERDICTS.txt must be reproduced. For each
//! violation, the reported longest prefix must itself be linearizable and the operations
//! that cannot follow it must be named.

use std::collections::BTreeMap;

use distlab_core::sim::linearizability::jepsen::{parse_etcd_log, parse_kv_log};
use distlab_core::sim::linearizability::{
    CasRegister, CheckOptions, CheckResult, KvModel, KvStoreModel, Model, Operation,
    PartitionOutcome, Verdict, check, check_with, replay,
};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test_configure;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

// The data folder embedded by build.rs: a browser has no file system.
include!(concat!(env!("OUT_DIR"), "/porcupine_data.rs"));

fn data_file(name: &str) -> Option<&'static str> {
    PORCUPINE_FILES
        .iter()
        .find(|(path, _)| *path == name)
        .map(|(_, text)| *text)
}

/// `relative path → expected linearizable`, from VERDICTS.txt.
fn verdicts() -> BTreeMap<String, bool> {
    data_file("VERDICTS.txt")
        .expect("VERDICTS.txt")
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (path, verdict) = line.split_once(' ').unwrap();
            (path.to_string(), verdict.trim().parse().unwrap())
        })
        .collect()
}

/// Every file of a data sub-folder, as (path relative to the data folder, contents),
/// sorted by path.
fn histories(folder: &str) -> Vec<(String, &'static str)> {
    let prefix = format!("{folder}/");
    PORCUPINE_FILES
        .iter()
        .filter(|(path, _)| path.starts_with(&prefix))
        .map(|(path, text)| (path.to_string(), *text))
        .collect()
}

/// Checks that each violation's prefix is linearizable on its own (it replays, and the
/// checker accepts the sub-history it forms) and that it names operations that cannot
/// follow.
fn assert_violations_are_explained<M: Model>(
    name: &str,
    model: &M,
    ops: &[Operation<M::Input, M::Output>],
    result: &CheckResult,
) {
    let mut violations = 0;
    for part in &result.partitions {
        if let PartitionOutcome::Violation {
            prefix,
            unplaceable,
            ..
        } = &part.outcome
        {
            violations += 1;
            replay(model, ops, prefix).unwrap_or_else(|e| panic!("{name}: {e}"));
            let sub_history: Vec<_> = prefix.iter().map(|&i| ops[i].clone()).collect();
            assert!(
                check(model, &sub_history).unwrap().linearizable,
                "{name}: the reported prefix is not linearizable"
            );
            assert!(!unplaceable.is_empty(), "{name}: no unplaceable operations");
            assert!(
                unplaceable
                    .iter()
                    .all(|i| part.ops.contains(i) && !prefix.contains(i)),
                "{name}: unplaceable operations must be pending operations of the part"
            );
        }
    }
    assert_eq!(violations > 0, !result.linearizable, "{name}");
}

#[distlab_tests::test]
fn etcd_histories_reproduce_porcupine_verdicts() {
    let verdicts = verdicts();
    let mut checked = 0;
    for (name, text) in histories("jepsen") {
        let ops = parse_etcd_log(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let result = check(&CasRegister::default(), &ops).unwrap_or_else(|e| panic!("{name}: {e}"));
        match verdicts.get(&name) {
            Some(&expected) => {
                assert_eq!(result.linearizable, expected, "{name}");
                checked += 1;
            }
            // etcd_095 is empty and has no verdict in Porcupine: it only must not crash.
            None => assert!(
                result.linearizable,
                "{name}: an empty history is linearizable"
            ),
        }
        assert_violations_are_explained(&name, &CasRegister::default(), &ops, &result);
    }
    assert_eq!(checked, 102);
}

#[distlab_tests::test]
fn kv_histories_reproduce_porcupine_verdicts() {
    let verdicts = verdicts();
    let mut checked = 0;
    for (name, text) in histories("kv") {
        let ops = parse_kv_log(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let result = check(&KvModel, &ops).unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = *verdicts
            .get(&name)
            .unwrap_or_else(|| panic!("{name} has no verdict"));
        assert_eq!(result.linearizable, expected, "{name}");
        assert_violations_are_explained(&name, &KvModel, &ops, &result);
        checked += 1;
    }
    assert_eq!(checked, 6);
}

/// The same key-value histories checked as one part, the whole store at once, without
/// splitting them by key: the search has to find the independence of keys itself (its
/// partial-order reduction over `Model::footprint`). Without it the 10-client histories
/// took 1.4 M steps each; the budget here is a seventh of that.
#[distlab_tests::test]
fn kv_histories_reproduce_porcupine_verdicts_without_splitting_by_key() {
    let verdicts = verdicts();
    let options = CheckOptions {
        max_steps: Some(200_000),
        check_every_part: false,
    };
    for name in [
        "kv/c01-ok.txt",
        "kv/c01-bad.txt",
        "kv/c10-ok.txt",
        "kv/c10-bad.txt",
    ] {
        let text = data_file(name).unwrap_or_else(|| panic!("{name}"));
        let ops = parse_kv_log(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let result = check_with(&KvStoreModel, &ops, &options).unwrap();
        assert_eq!(result.partitions.len(), 1, "{name}");
        let expected = if verdicts[name] {
            Verdict::Linearizable
        } else {
            Verdict::NotLinearizable
        };
        assert_eq!(result.verdict, expected, "{name}: {} steps", result.steps);
        assert_violations_are_explained(name, &KvStoreModel, &ops, &result);
    }
}

#[distlab_tests::test]
fn every_verdict_names_an_existing_file() {
    for name in verdicts().keys() {
        assert!(data_file(name).is_some(), "{name}");
    }
    assert_eq!(verdicts().len(), 108);
}

/// The 50-client key-value histories checked whole: they decide (3.2 M and 13.9 M steps,
/// seconds to half a minute natively), too slow for every run; `cargo test -p
/// distlab-tests --release --test porcupine -- --ignored`.
#[cfg(not(target_arch = "wasm32"))]
#[test]
#[ignore = "seconds to half a minute in release"]
fn kv_50_client_histories_decide_without_splitting_by_key() {
    let verdicts = verdicts();
    for name in ["kv/c50-ok.txt", "kv/c50-bad.txt"] {
        let ops = parse_kv_log(data_file(name).unwrap()).unwrap();
        let result = check(&KvStoreModel, &ops).unwrap();
        assert_eq!(result.linearizable, verdicts[name], "{name}");
        assert_violations_are_explained(name, &KvStoreModel, &ops, &result);
    }
}
