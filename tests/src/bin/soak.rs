//! The long fault soak, one driver for every protocol that has a soak:
//! `soak <id> --seeds N [--shard i/n] [--start S] [--fault-ms MS] [--threads T]`
//! runs seeds of protocol `<id>` (any of `distlab_core::soaks::IDS`: `raft`, `2pc`, `paxos`...)
//! on every core with a progress line, and prints a summary (seeds, events, the protocol's own
//! counts, failures, wall time) that merges by addition across shards; it exits non-zero if
//! any seed failed, listing the replay command of each. `soak <id> --seed S` replays one
//! seed and prints its
//! report as JSON. `cargo xtask soak <id> ...` builds and runs it.
//!
//! Past one machine: `--summary-out FILE` writes the shard's summary as JSON (protocol,
//! shard, seeds, totals, failing seeds with their replay commands), and
//! `soak merge FILE...` adds up the summaries of every shard of one run — refusing a set
//! with a shard missing or twice — and prints the totals and every failure, exiting
//! non-zero if any seed failed. .github/workflows/soak.yml runs the shards as a matrix
//! and merges them this way.
//!
//! Each seed is the protocol's `soak::run_seed` in distlab-core: the same function the
//! test suite runs, so a seed behaves identically here, in `cargo test` and in a browser.
//! A protocol joins by implementing `distlab_core::sim::soak::Soak` on its soak options
//! and by a line in the table of `distlab_core::soaks`.

use distlab_core::sim::soak::{SeedOutcome, Soak, SoakTotals};
use distlab_core::soaks::{self, SoakVisitor};
use distlab_tests::soak::{failure_lines, run_seeds_with};
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

fn usage() -> String {
    let ids = soaks::IDS.join("|");
    format!(
        "usage: soak <{ids}> [--seeds N] [--start S] [--shard i/n] [--threads T] \
         [--fault-ms MS] [--summary-out FILE] | <{ids}> --seed S | merge FILE..."
    )
}

fn unknown(id: &str) -> String {
    format!("no soak named `{id}` (known: {})", soaks::IDS.join(", "))
}

/// Runs the seeds `Args` asks for on one soak.
struct Drive<'a>(&'a Args);

impl SoakVisitor for Drive<'_> {
    type Output = ExitCode;
    fn visit<S: Soak>(self) -> ExitCode {
        drive::<S>(self.0)
    }
}

/// Adds up the shard summaries of one soak.
struct MergeAs<'a>(&'a [ShardFile]);

impl SoakVisitor for MergeAs<'_> {
    type Output = Result<ExitCode, String>;
    fn visit<S: Soak>(self) -> Result<ExitCode, String> {
        merge_as::<S>(self.0)
    }
}

struct Args {
    protocol: String,
    seeds: u64,
    start: u64,
    shard: (u64, u64),
    one: Option<u64>,
    threads: usize,
    fault_ms: Option<u64>,
    summary_out: Option<String>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        protocol: String::new(),
        seeds: 100_000,
        start: 0,
        shard: (0, 1),
        one: None,
        threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        fault_ms: None,
        summary_out: None,
    };
    let mut it = std::env::args().skip(1);
    // The protocol id comes first.
    match it.next() {
        Some(id) if !id.starts_with('-') => a.protocol = id,
        _ => return Err(usage()),
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
            "--summary-out" => a.summary_out = Some(value("--summary-out")?),
            "--shard" => {
                let v = value("--shard")?;
                let (i, n) = v.split_once('/').ok_or("--shard takes i/n")?;
                let (i, n) = (num(i.into(), "--shard")?, num(n.into(), "--shard")?);
                if n == 0 || i >= n {
                    return Err(format!("--shard {v}: need 0 <= i < n"));
                }
                a.shard = (i, n);
            }
            "-h" | "--help" => return Err(usage()),
            other => return Err(format!("unknown argument {other}\n{}", usage())),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("merge") {
        return match merge(argv.get(1..).unwrap_or_default()) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("soak merge: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    soaks::visit(&args.protocol, Drive(&args)).unwrap_or_else(|| {
        eprintln!("{}", unknown(&args.protocol));
        ExitCode::FAILURE
    })
}

fn drive<S: Soak>(args: &Args) -> ExitCode {
    let mut soak = S::default();
    if let Some(ms) = args.fault_ms {
        soak.set_fault_ms(ms);
    }
    let soak = &soak;
    if let Some(seed) = args.one {
        let r = soak.run_seed(seed);
        println!("{}", r.to_json());
        return if r.failure().is_none() {
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
    let done = AtomicU64::new(0);
    let started = Instant::now();
    let (summary, failures) = std::thread::scope(|s| {
        // Progress on stderr, about twice a second.
        s.spawn(|| {
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
        run_seeds_with(soak, &seeds, args.threads, &done)
    });
    let wall = started.elapsed().as_secs_f64();
    println!(
        "{} soak shard {shard}/{shards}: {summary}, wall time {wall:.1} s ({:.0} seeds/s)",
        S::ID,
        summary.seeds() as f64 / wall.max(1e-9),
    );
    println!("summary: {}", summary.to_json());
    let lines = failure_lines(soak, &failures);
    for line in &lines {
        println!("FAIL {line}");
    }
    if let Some(path) = &args.summary_out {
        let doc = serde_json::json!({
            "protocol": S::ID,
            "shard": [shard, shards],
            "seeds": {"start": args.start, "count": args.seeds},
            "summary": serde_json::to_value(&summary).unwrap_or_default(),
            "failures": lines,
        });
        if let Err(e) = std::fs::write(path, format!("{doc:#}\n")) {
            eprintln!("cannot write {path}: {e}");
            return ExitCode::FAILURE;
        }
    }
    if summary.failures() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One shard's summary file, as `--summary-out` wrote it.
struct ShardFile {
    path: String,
    protocol: String,
    shard: (u64, u64),
    seeds: serde_json::Value,
    summary: String,
    failures: Vec<String>,
}

fn read_shard(path: &str) -> Result<ShardFile, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    let field = |name: &str| {
        doc.get(name)
            .ok_or_else(|| format!("{path}: no `{name}` (not a soak summary?)"))
    };
    let shard = field("shard")?;
    let index = |i: usize| shard.get(i).and_then(serde_json::Value::as_u64);
    let (Some(i), Some(n)) = (index(0), index(1)) else {
        return Err(format!("{path}: `shard` must be [i, n]"));
    };
    Ok(ShardFile {
        path: path.into(),
        protocol: field("protocol")?.as_str().unwrap_or_default().into(),
        shard: (i, n),
        seeds: field("seeds")?.clone(),
        summary: field("summary")?.to_string(),
        failures: field("failures")?
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|l| l.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// Adds up the summaries of every shard of one run.
fn merge(paths: &[String]) -> Result<ExitCode, String> {
    if paths.is_empty() {
        return Err("name the shards' summary files".into());
    }
    let shards = paths
        .iter()
        .map(|p| read_shard(p))
        .collect::<Result<Vec<_>, _>>()?;
    let Some(first) = shards.first() else {
        return Err("no shards".into());
    };
    let n = first.shard.1;
    let mut seen = vec![false; n as usize];
    for s in &shards {
        if (&s.protocol, s.shard.1, &s.seeds) != (&first.protocol, n, &first.seeds) {
            return Err(format!(
                "{} is from another run than {} (protocol, shard count or seeds differ)",
                s.path, first.path
            ));
        }
        match seen.get_mut(s.shard.0 as usize) {
            Some(slot) if !*slot => *slot = true,
            Some(_) => return Err(format!("shard {}/{n} given twice", s.shard.0)),
            None => {
                return Err(format!(
                    "{}: shard {}/{n} is out of range",
                    s.path, s.shard.0
                ));
            }
        }
    }
    if let Some(missing) = seen.iter().position(|s| !s) {
        return Err(format!("shard {missing}/{n} is missing"));
    }
    soaks::visit(&first.protocol, MergeAs(&shards)).unwrap_or_else(|| Err(unknown(&first.protocol)))
}

fn merge_as<S: Soak>(shards: &[ShardFile]) -> Result<ExitCode, String> {
    let mut total = S::Summary::default();
    for s in shards {
        let summary = S::Summary::from_json(&s.summary).map_err(|e| format!("{}: {e}", s.path))?;
        total.merge(&summary);
    }
    println!("{} soak, {} shards merged: {total}", S::ID, shards.len());
    println!("summary: {}", total.to_json());
    for line in shards.iter().flat_map(|s| &s.failures) {
        println!("FAIL {line}");
    }
    Ok(if total.failures() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
