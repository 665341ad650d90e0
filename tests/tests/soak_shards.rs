//! The soak driver past one machine (issue 15): four shards run as separate processes,
//! each writing its summary with `--summary-out`, and `soak merge` adds them up to the
//! totals of one unsharded run of the same seeds. A set with a shard missing or twice is
//! refused. Native only: it starts processes.
#![cfg(not(target_arch = "wasm32"))]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SEEDS: &str = "160";

fn soak(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_soak"))
        .args(args)
        .output()
        .expect("the soak binary runs")
}

/// The JSON after `summary: ` in a run's output.
fn summary(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("summary: "))
        .unwrap_or_else(|| panic!("no summary line in:\n{text}"));
    serde_json::from_str(line).unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("distlab-soak-shards-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn four_shards_merge_to_the_totals_of_one_run() {
    let whole = soak(&["2pc", "--seeds", SEEDS, "--threads", "2"]);
    assert!(whole.status.success(), "{whole:?}");
    let files: Vec<PathBuf> = (0..4)
        .map(|i| scratch(&format!("shard-{i}.json")))
        .collect();
    let shards: Vec<std::thread::JoinHandle<Output>> = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let (shard, out) = (format!("{i}/4"), path(f).to_string());
            std::thread::spawn(move || {
                soak(&[
                    "2pc",
                    "--seeds",
                    SEEDS,
                    "--threads",
                    "1",
                    "--shard",
                    &shard,
                    "--summary-out",
                    &out,
                ])
            })
        })
        .collect();
    for s in shards {
        let out = s.join().unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    let mut args = vec!["merge"];
    args.extend(files.iter().rev().map(|f| path(f)));
    let merged = soak(&args);
    assert!(merged.status.success(), "{merged:?}");
    let (merged, whole) = (summary(&merged), summary(&whole));
    assert_eq!(merged["seeds"], 160);
    assert!(merged["transactions"].as_u64().unwrap() > 0);
    assert_eq!(merged, whole);

    // A shard missing, or given twice, is refused rather than summed.
    let missing = soak(&["merge", path(&files[0]), path(&files[1]), path(&files[2])]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("shard 3/4 is missing"));
    let twice = soak(&["merge", path(&files[0]), path(&files[0]), path(&files[1])]);
    assert!(!twice.status.success());
    assert!(String::from_utf8_lossy(&twice.stderr).contains("given twice"));
    let _ = std::fs::remove_dir_all(files[0].parent().unwrap());
}
