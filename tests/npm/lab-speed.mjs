// wasm vs native speed of the same lab workload, measured in one run: `node
// tests/npm/lab-speed.mjs` (after `cargo xtask serve` or `test` built wasm/pkg). It builds
// and runs wasm/examples/lab_speed.rs natively and the same workload through the npm
// package in this Node (V8, the engine of Chromium), alternating five rounds per cluster
// size so that a busy machine slows both alike, and prints one JSON line per size with
// the median ratio. `view()` here includes the conversion to JS objects the page pays.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));
const pkg = `${root}wasm/pkg/`;
const m = await import(`${pkg}distlab.js`);
m.initSync({ module: readFileSync(`${pkg}distlab_bg.wasm`) });
execFileSync("cargo", ["build", "--release", "-q", "-p", "distlab-wasm", "--example", "lab_speed"], { cwd: root, stdio: "inherit" });
const nativeBin = `${root}target/release/examples/lab_speed`;

function wasm(nodes, simMs) {
  const config = (seed) => ({ nodes, seed, intervalMs: 20, network: { loss: 0.05, duplicate: 0.05 } });
  let best = 0;
  let lab = null;
  for (let seed = 1; seed <= 3; seed++) {
    lab?.free();
    lab = m.createLab("sim.network", config(seed));
    const t0 = performance.now();
    lab.step(simMs);
    best = Math.max(best, (lab.steps / (performance.now() - t0)) * 1000);
  }
  const time = (f) => {
    const t0 = performance.now();
    for (let i = 0; i < 20; i++) f();
    return (performance.now() - t0) / 20;
  };
  const viewMs = time(() => lab.view());
  const pageViewMs = time(() => lab.view({ fieldsOf: [] }));
  lab.free();
  return { eventsPerSec: Math.round(best), viewMs, pageViewMs };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
// A warm-up, so that V8 has compiled the module with its optimising tier.
wasm(64, 20_000);
for (const [nodes, simMs] of [[64, 60_000], [1000, 3_000]]) {
  const rounds = [];
  for (let r = 0; r < 5; r++) {
    const native = JSON.parse(execFileSync(nativeBin, [String(nodes), String(simMs)]).toString());
    const w = wasm(nodes, simMs);
    rounds.push({ native, wasm: w, ratio: w.eventsPerSec / native.eventsPerSec });
  }
  const pick = (f) => median(rounds.map(f));
  console.log(JSON.stringify({
    lab: "sim.network", nodes, simMs, node: process.version,
    nativeEventsPerSec: pick((r) => r.native.eventsPerSec),
    wasmEventsPerSec: pick((r) => r.wasm.eventsPerSec),
    wasmOverNative: Number(pick((r) => r.ratio).toFixed(3)),
    ratios: rounds.map((r) => Number(r.ratio.toFixed(3))),
    nativeViewMs: Number(pick((r) => r.native.viewMs).toFixed(3)),
    wasmViewMs: Number(pick((r) => r.wasm.viewMs).toFixed(3)),
    wasmPageViewMs: Number(pick((r) => r.wasm.pageViewMs).toFixed(3)),
    viewJsonBytes: rounds[0].native.viewJsonBytes,
  }));
}
