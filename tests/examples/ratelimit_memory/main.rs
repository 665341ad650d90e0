//! Allocated bytes per key in the keyed limiter, counted by a global allocator rather than
//! computed from sizes: every allocation the limiter makes is in the figure (slab chunks,
//! the list of chunks, the index), and so is the peak while the index and the slab grow.
//!
//! `cargo run --release -p distlab-tests --example ratelimit_memory`
//!
//! Prints the table BENCHMARKS.md shows, and exits with an error if a key costs more than
//! 64 bytes without the key, steady, at any count.

mod counting;

use counting::{Counting, PerKey, fill};
use distlab_core::ratelimit::gcra::{GcraConfig, GcraRule};
use distlab_core::ratelimit::rule::Rule;
use distlab_core::ratelimit::token_bucket::{TokenBucketConfig, TokenBucketRule};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const COUNTS: [u64; 7] = [
    1_000, 10_000, 100_000, 500_000, 1_000_000, 1_048_577, 1_200_000,
];
const GOAL: f64 = 64.0;

fn rows<R: Rule>(name: &str, rule: &R) -> Vec<(String, PerKey)> {
    let mut out = Vec::new();
    for count in COUNTS {
        for max_keys in [count, 10_000_000] {
            out.push((name.to_string(), fill(rule, count, max_keys)));
        }
    }
    out
}

fn main() {
    let bucket = TokenBucketRule::new(TokenBucketConfig::new(10.0, 1.0)).expect("valid");
    let gcra = GcraRule::new(GcraConfig {
        burst: 10.0,
        rate_per_sec: 1.0,
    })
    .expect("valid");
    let mut all = rows("token bucket", &bucket);
    all.extend(rows("GCRA", &gcra));
    println!(
        "| algorithm | keys | maxKeys | bytes per key, keys included | without the keys | \
         peak while growing | peak without the keys | memory() says |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut worst: f64 = 0.0;
    for (name, r) in &all {
        println!(
            "| {name} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            r.count,
            r.max_keys,
            r.steady,
            r.steady_without_keys(),
            r.peak,
            r.peak_without_keys(),
            r.reported
        );
        worst = worst.max(r.steady_without_keys());
    }
    if worst > GOAL {
        eprintln!("goal missed: {worst:.1} bytes per key without the keys > {GOAL}");
        std::process::exit(1);
    }
    eprintln!("goal met: at most {worst:.1} bytes per key without the keys (goal {GOAL})");
}
