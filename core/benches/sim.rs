//! Raw simulator throughput: a ping-pong protocol where every node keeps one ping in
//! flight, so every event is a delivery that causes one send. Trace recording off (the
//! trace hash is still computed), as in a soak.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use distlab_core::Duration;
use distlab_core::sim::pingpong::{PingConfig, PingNode};
use distlab_core::sim::{LatencyModel, NetworkConfig, Sim, SimConfig};

const EVENTS: u64 = 200_000;

fn sim(nodes: u32, latency: LatencyModel) -> Sim<PingNode> {
    let config = SimConfig {
        seed: 1,
        nodes,
        clients: 0,
        network: NetworkConfig {
            latency,
            ..NetworkConfig::default()
        },
        record_trace: false,
        ..SimConfig::default()
    };
    Sim::new(
        config,
        PingConfig {
            interval: Duration::ZERO,
            fanout: 1,
        },
    )
    .expect("valid config")
}

fn ping_pong(c: &mut Criterion) {
    let mut g = c.benchmark_group("sim_ping_pong");
    g.throughput(Throughput::Elements(EVENTS));
    g.sample_size(20);
    let models = [
        ("constant", LatencyModel::Constant { ms: 1.0 }),
        (
            "uniform",
            LatencyModel::Uniform {
                min_ms: 1.0,
                max_ms: 5.0,
            },
        ),
    ];
    for nodes in [1u32, 1_000] {
        for (name, latency) in models {
            let base = sim(nodes, latency);
            g.bench_with_input(BenchmarkId::new(name, nodes), &base, |b, base| {
                b.iter_batched(
                    || base.clone(),
                    |mut s| {
                        for _ in 0..EVENTS {
                            s.step();
                        }
                        s
                    },
                    criterion::BatchSize::LargeInput,
                )
            });
        }
    }
    g.finish();
}

criterion_group!(benches, ping_pong);
criterion_main!(benches);
