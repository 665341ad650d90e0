// Imports the installed `distlab` tarball from Deno, type-checked against the package's
// generated .d.ts (`deno check`), and runs a lab. Run by `cargo xtask test`.
import { catalog, createLab, initSync, type View } from "distlab";

const wasmUrl = new URL(import.meta.resolve("distlab/distlab_bg.wasm"));
initSync({ module: Deno.readFileSync(wasmUrl) });

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`deno smoke test failed: ${what}`);
}

check(catalog().some((e) => e.id === "sim.network" && e.implemented), "catalog");
const lab = createLab("sim.network", { nodes: 4, seed: 3, network: { loss: 0.1 } });
lab.step(2000);
lab.act({ type: "pause", node: 1 });
lab.act({ type: "setLoss", probability: 0.3 });
lab.step(500);
const view: View = lab.view();
check(view.nodes.length === 4, "four nodes");
check(view.nodes[1].status === "paused", "node 1 paused");
check(view.metrics.every((s) => s.x.length === s.y.length), "columnar metrics");
let threw = false;
try {
  lab.act({ type: "crash", node: 9 });
} catch (e) {
  threw = e instanceof Error && e.message.includes("node");
}
check(threw, "a bad action throws an Error naming the field");
console.log(`deno: 4 passed, 0 failed (step ${view.step}, ${view.messages.length} messages in flight)`);
