// The README's Jupyter (Deno kernel) snippet, run as is except that the package comes
// from the installed tarball ("distlab") rather than the registry ("npm:distlab").
import init, { createLab } from "distlab";
await init(); // Deno fetches distlab_bg.wasm beside the module (a file: URL)

const lab = createLab("sim.network", { nodes: 5, seed: 42 });
lab.step(2_000);
lab.act({ type: "partition", groups: [[0, 1]] });
lab.step(1_000);
const view = lab.view();
console.table(view.nodes.map((n) => ({ node: n.label, status: n.status, pongs: n.fields.pongsReceived })));

// Checks for `cargo xtask test`.
const dropped = view.metrics.find((s) => s.name === "dropped")?.y.at(-1) ?? 0;
if (view.partitions.groups.length !== 2 || !(dropped > 0)) throw new Error("jupyter snippet: no partition");
console.log("jupyter snippet: 1 passed, 0 failed");
