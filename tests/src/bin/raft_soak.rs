//! The long Raft soak: `raft-soak --seeds N [--shard i/n] [--start S] [--fault-ms MS]
//! [--threads T]` runs seeds on every core with a progress line, and prints a summary
//! (seeds, events, commands, violations, wall time) that merges by addition across
//! shards; it exits non-zero if any seed failed, listing the replay command of each.
//! `raft-soak --seed S` replays one seed and prints its report as JSON.
//!
//! Each seed is `distlab_core::consensus::raft::soak::run_seed`: the same function the
//! test suite runs, so a seed behaves identically here, in `cargo test` and in a browser.

use distlab_core::consensus::raft::soak::{
    SeedReport, SoakOptions, SoakSummary, replay_command, run_seed,
};
use std::io::Write;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

struct Args {
    seeds: u64,
    start: u64,
    shard: (u64, u64),
    one: Option<u64>,
    threads: usize,
    opts: SoakOptions,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        seeds: 100_000,
        start: 0,
        shard: (0, 1),
        one: None,
        threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        opts: SoakOptions::default(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        let num = |s: String, name: &str| {
            s.replace('_', "")
                .parse::<u64>()
                .map_err(|e| format!("{name}: {e}"))
        };
        match flag.as_str() {
            "--seeds" => a.seeds = num(value("--seeds")?, "--seeds")?,
            "--start" => a.start = num(value("--start")?, "--start")?,
            "--seed" => a.one = Some(num(value("--seed")?, "--seed")?),
            "--threads" => a.threads = num(value("--threads")?, "--threads")?.max(1) as usize,
            "--fault-ms" => a.opts.fault_ms = num(value("--fault-ms")?, "--fault-ms")?,
            "--shard" => {
                let v = value("--shard")?;
                let (i, n) = v.split_once('/').ok_or("--shard takes i/n")?;
                let (i, n) = (num(i.into(), "--shard")?, num(n.into(), "--shard")?);
                if n == 0 || i >= n {
                    return Err(format!("--shard {v}: need 0 <= i < n"));
                }
                a.shard = (i, n);
            }
            "-h" | "--help" => {
                return Err("usage: raft-soak [--seeds N] [--start S] [--shard i/n] \
                            [--threads T] [--fault-ms MS] | --seed S"
                    .into());
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(seed) = args.one {
        let r = run_seed(seed, &args.opts);
        println!("{}", r.to_json());
        return if r.failure.is_none() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let (shard, shards) = args.shard;
    let seeds: Vec<u64> = (args.start..args.start + args.seeds)
        .filter(|s| s % shards == shard)
        .collect();
    let total = seeds.len() as u64;
    let next = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let summary = Mutex::new(SoakSummary::default());
    let failures: Mutex<Vec<SeedReport>> = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..args.threads {
            s.spawn(|| {
                let mut local = SoakSummary::default();
                while let Some(&seed) = seeds.get(next.fetch_add(1, Ordering::Relaxed) as usize) {
                    let r = run_seed(seed, &args.opts);
                    local.add(&r);
                    if r.failure.is_some()
                        && let Ok(mut f) = failures.lock()
                    {
                        f.push(r);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                if let Ok(mut s) = summary.lock() {
                    s.merge(&local);
                }
            });
        }
        // Progress on stderr, about twice a second.
        loop {
            let d = done.load(Ordering::Relaxed);
            let secs = started.elapsed().as_secs_f64();
            let width = 30;
            let filled = (d * width / total.max(1)) as usize;
            eprint!(
                "\r[{}{}] {d}/{total} seeds, {:.0}/s, {:.0} s ",
                "#".repeat(filled),
                " ".repeat(width as usize - filled),
                d as f64 / secs.max(1e-9),
                secs
            );
            let _ = std::io::stderr().flush();
            if d >= total {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        eprintln!();
    });
    let summary = summary.into_inner().unwrap_or_default();
    let mut failures = failures.into_inner().unwrap_or_default();
    failures.sort_by_key(|r| r.seed);
    let wall = started.elapsed().as_secs_f64();
    println!(
        "raft soak shard {shard}/{shards}: {summary}, wall time {wall:.1} s ({:.0} seeds/s)",
        summary.seeds as f64 / wall.max(1e-9),
    );
    println!("summary: {}", summary.to_json());
    for r in &failures {
        let why = r
            .failure
            .as_ref()
            .map(|f| f.to_string())
            .unwrap_or_default();
        println!(
            "FAIL seed {}: {why}\n  replay: {}",
            r.seed,
            replay_command(r.seed, &args.opts)
        );
    }
    if summary.failures() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
