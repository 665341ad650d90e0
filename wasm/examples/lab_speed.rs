//! The same lab workload as tests/npm/lab-speed.mjs, natively, so wasm and native speed
//! can be compared on one machine. `node tests/npm/lab-speed.mjs` runs both, alternating,
//! and prints the ratio; alone: `cargo run --release -p distlab-wasm --example lab_speed
//! -- NODES SIM_MS` prints one JSON line `{eventsPerSec, viewMs, viewJsonBytes}`.
//!
//! The workload: `sim.network` with NODES nodes pinging every 20 ms under 5 % loss and
//! 5 % duplication, stepped SIM_MS simulated milliseconds, best of seeds 1–3; then the
//! mean cost of `view()` on the last run (here without the conversion to JS).

use std::time::Instant;

use distlab_core::Duration;
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let nodes = args.first().copied().unwrap_or(64);
    let sim_ms = args.get(1).copied().unwrap_or(3_000);
    let config = |seed: u64| {
        json!({"nodes": nodes, "seed": seed, "intervalMs": 20,
               "network": {"loss": 0.05, "duplicate": 0.05}})
    };
    let mut best = 0.0f64;
    let mut last = None;
    for seed in 1..=3 {
        let mut lab = distlab_core::create_lab("sim.network", &config(seed))?;
        let started = Instant::now();
        lab.step(Duration::from_millis(sim_ms))?;
        let secs = started.elapsed().as_secs_f64();
        best = best.max(lab.steps() as f64 / secs);
        last = Some(lab);
    }
    let lab = last.ok_or("no run")?;
    let started = Instant::now();
    for _ in 0..20 {
        std::hint::black_box(lab.view());
    }
    let view_ms = started.elapsed().as_secs_f64() * 1e3 / 20.0;
    let bytes = serde_json::to_string(&lab.view())?.len();
    println!(
        "{}",
        json!({"eventsPerSec": best.round(), "viewMs": view_ms, "viewJsonBytes": bytes})
    );
    Ok(())
}
