//! The same lab workload as tests/npm/lab-speed.mjs, natively, so wasm and native speed
//! can be compared on one machine: `cargo run --release -p distlab-wasm --example lab_speed`
//! then `node tests/npm/lab-speed.mjs` (after `cargo xtask serve` or `test` built wasm/pkg).

use std::time::Instant;

use distlab_core::Duration;
use serde_json::json;

fn main() -> Result<(), distlab_core::DistlabError> {
    let mut best = 0.0f64;
    for seed in 1..=5 {
        let mut lab = distlab_core::create_lab("sim.network", &json!({"nodes": 64, "seed": seed}))?;
        let started = Instant::now();
        lab.step(Duration::from_millis(3_000))?;
        let secs = started.elapsed().as_secs_f64();
        best = best.max(lab.steps() as f64 / secs);
    }
    let mut lab = distlab_core::create_lab("sim.network", &json!({"nodes": 64}))?;
    lab.step(Duration::from_millis(3_000))?;
    let started = Instant::now();
    for _ in 0..50 {
        std::hint::black_box(lab.view());
    }
    let view_ms = started.elapsed().as_secs_f64() * 1e3 / 50.0;
    println!(
        "native: sim.network 64 nodes, best of 5 seeds: {best:.0} events/s; view() {view_ms:.2} ms"
    );
    Ok(())
}
