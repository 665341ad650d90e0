//! Lab steps per second through the public lab API: a Raft cluster (consensus.raft,
//! defaults) and a 100-node sim.network, each stepped through simulated time in 100 ms
//! slices as the page does. Prints events processed and wall time; same source builds
//! against any version of the core, so two builds can be timed against each other.
//!
//! `cargo run --release -p distlab-tests --example lab_steps -- <id> <simulated seconds>`

use distlab_core::{Duration, create_lab};
use serde_json::json;

fn main() {
    let mut args = std::env::args().skip(1);
    let id = args.next().unwrap_or_else(|| "consensus.raft".into());
    let secs: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(20);
    let config = match id.as_str() {
        "sim.network" => json!({ "nodes": 100 }),
        _ => json!({}),
    };
    let mut lab = create_lab(&id, &config).expect("a valid lab");
    let started = std::time::Instant::now();
    for _ in 0..secs * 10 {
        lab.step(Duration::from_millis(100)).expect("a step");
        // The page reads a view every frame.
        std::hint::black_box(lab.view());
    }
    let wall = started.elapsed().as_secs_f64();
    let steps = lab.steps();
    println!(
        "{id}: {steps} events in {wall:.3} s: {:.0} events/s",
        steps as f64 / wall
    );
}
