// The same lab workload as wasm/examples/lab_speed.rs, through the built npm package in
// Node: `node tests/npm/lab-speed.mjs` (wasm/pkg must be built). View cost here includes
// the conversion to JS objects that the page pays.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const pkg = fileURLToPath(new URL("../../wasm/pkg/", import.meta.url));
const m = await import(`${pkg}distlab.js`);
m.initSync({ module: readFileSync(`${pkg}distlab_bg.wasm`) });
let best = 0;
for (let seed = 1; seed <= 5; seed++) {
  const lab = m.createLab("sim.network", { nodes: 64, seed });
  const t0 = performance.now();
  lab.step(3000);
  best = Math.max(best, (lab.steps / (performance.now() - t0)) * 1000);
  lab.free();
}
const lab = m.createLab("sim.network", { nodes: 64 });
lab.step(3000);
const t0 = performance.now();
for (let i = 0; i < 50; i++) lab.view();
const viewMs = (performance.now() - t0) / 50;
console.log(`wasm (Node ${process.version}): sim.network 64 nodes, best of 5 seeds: ${best.toFixed(0)} events/s; view() ${viewMs.toFixed(2)} ms`);
