//! The long fault soak, one driver for every protocol that has a soak:
//! `raft-soak [<id>] --seeds N [--shard i/n] [--start S] [--fault-ms MS] [--threads T]`
//! runs seeds of protocol `<id>` (`raft`, the default, `2pc` or `paxos`) on every core with a
//! progress line, and prints a summary (seeds, events, the protocol's own counts, failures,
//! wall time) that merges by addition across shards; it exits non-zero if any seed
//! failed, listing the replay command of each. `raft-soak [<id>] --seed S` replays one
//! seed and prints its report as JSON. `cargo xtask soak <id> ...` builds and runs it.
//!
//! Each seed is the protocol's `soak::run_seed` in distlab-core: the same function the
//! test suite runs, so a seed behaves identically here, in `cargo test` and in a browser.
//! A protocol joins by implementing [`Protocol`] below: a report per seed, a summary that
//! merges, a replay command.

use distlab_core::consensus::{paxos, raft, twopc};
use std::fmt::Display;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// What the driver needs of one protocol's soak.
trait Protocol: Sync {
    type Report: Send;
    type Summary: Default + Send + Display;
    /// Its id on the command line.
    const ID: &'static str;
    fn run(&self, seed: u64) -> Self::Report;
    fn seed(r: &Self::Report) -> u64;
    /// Why the seed failed, if it did.
    fn failure(r: &Self::Report) -> Option<String>;
    fn report_json(r: &Self::Report) -> String;
    fn add(s: &mut Self::Summary, r: &Self::Report);
    fn merge(s: &mut Self::Summary, other: &Self::Summary);
    fn failures(s: &Self::Summary) -> u64;
    fn seeds(s: &Self::Summary) -> u64;
    fn summary_json(s: &Self::Summary) -> String;
    fn replay(&self, seed: u64) -> String;
}

struct Raft(raft::soak::SoakOptions);

impl Protocol for Raft {
    type Report = raft::soak::SeedReport;
    type Summary = raft::soak::SoakSummary;
    const ID: &'static str = "raft";
    fn run(&self, seed: u64) -> Self::Report {
        raft::soak::run_seed(seed, &self.0)
    }
    fn seed(r: &Self::Report) -> u64 {
        r.seed
    }
    fn failure(r: &Self::Report) -> Option<String> {
        r.failure.as_ref().map(|f| f.to_string())
    }
    fn report_json(r: &Self::Report) -> String {
        r.to_json()
    }
    fn add(s: &mut Self::Summary, r: &Self::Report) {
        s.add(r);
    }
    fn merge(s: &mut Self::Summary, other: &Self::Summary) {
        s.merge(other);
    }
    fn failures(s: &Self::Summary) -> u64 {
        s.failures()
    }
    fn seeds(s: &Self::Summary) -> u64 {
        s.seeds
    }
    fn summary_json(s: &Self::Summary) -> String {
        s.to_json()
    }
    fn replay(&self, seed: u64) -> String {
        raft::soak::replay_command(seed, &self.0)
    }
}

struct TwoPc(twopc::soak::SoakOptions);

impl Protocol for TwoPc {
    type Report = twopc::soak::SeedReport;
    type Summary = twopc::soak::SoakSummary;
    const ID: &'static str = "2pc";
    fn run(&self, seed: u64) -> Self::Report {
        twopc::soak::run_seed(seed, &self.0)
    }
    fn seed(r: &Self::Report) -> u64 {
        r.seed
    }
    fn failure(r: &Self::Report) -> Option<String> {
        r.failure.as_ref().map(|f| f.to_string())
    }
    fn report_json(r: &Self::Report) -> String {
        r.to_json()
    }
    fn add(s: &mut Self::Summary, r: &Self::Report) {
        s.add(r);
    }
    fn merge(s: &mut Self::Summary, other: &Self::Summary) {
        s.merge(other);
    }
    fn failures(s: &Self::Summary) -> u64 {
        s.failures()
    }
    fn seeds(s: &Self::Summary) -> u64 {
        s.seeds
    }
    fn summary_json(s: &Self::Summary) -> String {
        s.to_json()
    }
    fn replay(&self, seed: u64) -> String {
        twopc::soak::replay_command(seed, &self.0)
    }
}

struct Paxos(paxos::soak::SoakOptions);

impl Protocol for Paxos {
    type Report = paxos::soak::SeedReport;
    type Summary = paxos::soak::SoakSummary;
    const ID: &'static str = "paxos";
    fn run(&self, seed: u64) -> Self::Report {
        paxos::soak::run_seed(seed, &self.0)
    }
    fn seed(r: &Self::Report) -> u64 {
        r.seed
    }
    fn failure(r: &Self::Report) -> Option<String> {
        r.failure.as_ref().map(|f| f.to_string())
    }
    fn report_json(r: &Self::Report) -> String {
        r.to_json()
    }
    fn add(s: &mut Self::Summary, r: &Self::Report) {
        s.add(r);
    }
    fn merge(s: &mut Self::Summary, other: &Self::Summary) {
        s.merge(other);
    }
    fn failures(s: &Self::Summary) -> u64 {
        s.failures()
    }
    fn seeds(s: &Self::Summary) -> u64 {
        s.seeds
    }
    fn summary_json(s: &Self::Summary) -> String {
        s.to_json()
    }
    fn replay(&self, seed: u64) -> String {
        paxos::soak::replay_command(seed, &self.0)
    }
}

/// The protocols the driver knows, for messages.
const KNOWN: &str = "raft, 2pc, paxos";
const USAGE: &str = "usage: raft-soak [raft|2pc|paxos] [--seeds N] [--start S] [--shard i/n] \
                     [--threads T] [--fault-ms MS] | [raft|2pc|paxos] --seed S";

struct Args {
    protocol: String,
    seeds: u64,
    start: u64,
    shard: (u64, u64),
    one: Option<u64>,
    threads: usize,
    fault_ms: Option<u64>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        protocol: Raft::ID.into(),
        seeds: 100_000,
        start: 0,
        shard: (0, 1),
        one: None,
        threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        fault_ms: None,
    };
    let mut it = std::env::args().skip(1).peekable();
    // The protocol id comes first; without one, Raft (as before there were others).
    if let Some(first) = it.peek()
        && !first.starts_with('-')
    {
        a.protocol = it.next().unwrap_or_default();
    }
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
            "--fault-ms" => a.fault_ms = Some(num(value("--fault-ms")?, "--fault-ms")?),
            "--shard" => {
                let v = value("--shard")?;
                let (i, n) = v.split_once('/').ok_or("--shard takes i/n")?;
                let (i, n) = (num(i.into(), "--shard")?, num(n.into(), "--shard")?);
                if n == 0 || i >= n {
                    return Err(format!("--shard {v}: need 0 <= i < n"));
                }
                a.shard = (i, n);
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
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
    match args.protocol.as_str() {
        "raft" => {
            let mut opts = raft::soak::SoakOptions::default();
            if let Some(ms) = args.fault_ms {
                opts.fault_ms = ms;
            }
            drive(&Raft(opts), &args)
        }
        "2pc" => {
            let mut opts = twopc::soak::SoakOptions::default();
            if let Some(ms) = args.fault_ms {
                opts.fault_ms = ms;
            }
            drive(&TwoPc(opts), &args)
        }
        "paxos" => {
            let mut opts = paxos::soak::SoakOptions::default();
            if let Some(ms) = args.fault_ms {
                opts.fault_ms = ms;
            }
            drive(&Paxos(opts), &args)
        }
        other => {
            eprintln!("no soak named `{other}` (known: {KNOWN})");
            ExitCode::FAILURE
        }
    }
}

fn drive<P: Protocol>(p: &P, args: &Args) -> ExitCode {
    if let Some(seed) = args.one {
        let r = p.run(seed);
        println!("{}", P::report_json(&r));
        return if P::failure(&r).is_none() {
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
    let summary = Mutex::new(P::Summary::default());
    let failures: Mutex<Vec<(u64, String)>> = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..args.threads {
            s.spawn(|| {
                let mut local = P::Summary::default();
                while let Some(&seed) = seeds.get(next.fetch_add(1, Ordering::Relaxed) as usize) {
                    let r = p.run(seed);
                    P::add(&mut local, &r);
                    if let Some(why) = P::failure(&r)
                        && let Ok(mut f) = failures.lock()
                    {
                        f.push((P::seed(&r), why));
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                if let Ok(mut s) = summary.lock() {
                    P::merge(&mut s, &local);
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
    failures.sort_by_key(|(seed, _)| *seed);
    let wall = started.elapsed().as_secs_f64();
    println!(
        "{} soak shard {shard}/{shards}: {summary}, wall time {wall:.1} s ({:.0} seeds/s)",
        P::ID,
        P::seeds(&summary) as f64 / wall.max(1e-9),
    );
    println!("summary: {}", P::summary_json(&summary));
    for (seed, why) in &failures {
        println!("FAIL seed {seed}: {why}\n  replay: {}", p.replay(*seed));
    }
    if P::failures(&summary) == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
