// The README's Observable snippet: import the ESM build from a URL and initialise it with
// the .wasm URL beside it. `cargo xtask test` serves the installed package on a local
// port and passes its URL (the CDN stand-in) as the first argument.
const CDN = Deno.args[0];

const distlab = await import(`${CDN}/distlab.js`);
await distlab.default({ module_or_path: `${CDN}/distlab_bg.wasm` });
const lab = distlab.createLab("sim.network", { nodes: 7 });
lab.step(3000);
lab.act({ type: "crash", node: 3 });
lab.step(500);
const statuses = lab.view().nodes.map((n) => n.status);

// Checks for `cargo xtask test`.
if (statuses[3] !== "crashed" || statuses.filter((s) => s === "up").length !== 6) {
  throw new Error(`observable snippet: ${statuses}`);
}
console.log("observable snippet: 1 passed, 0 failed");
