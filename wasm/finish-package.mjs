// Turns wasm-pack's output (wasm/pkg) into the npm package `distlab`: the name, the
// `exports` map (the module, its types, and the .wasm for Node/Deno `initSync`), the
// Node version it supports, and a README. Run by `cargo xtask` after `wasm-pack build`.
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const pkgDir = join(dirname(fileURLToPath(import.meta.url)), "pkg");
const file = join(pkgDir, "package.json");
const pkg = JSON.parse(readFileSync(file, "utf8"));

pkg.name = "distlab";
pkg.description =
  "Deterministic distributed-systems primitives and labs (Raft, rate limiters, CRDTs...) over WebAssembly";
pkg.keywords = ["distributed-systems", "simulation", "raft", "wasm", "education"];
pkg.exports = {
  ".": { types: "./distlab.d.ts", default: "./distlab.js" },
  "./distlab_bg.wasm": "./distlab_bg.wasm",
  "./package.json": "./package.json",
};
pkg.engines = { node: ">=20" };
// Both licences the crates are under ("MIT OR Apache-2.0"), from the repository root.
const licences = ["LICENSE-MIT", "LICENSE-APACHE"];
for (const l of licences) {
  copyFileSync(join(dirname(fileURLToPath(import.meta.url)), "..", l), join(pkgDir, l));
}
pkg.files = [
  ...new Set([...(pkg.files ?? []), "distlab_bg.wasm.d.ts", "README.md", ...licences]),
];
delete pkg.sideEffects;
writeFileSync(file, JSON.stringify(pkg, null, 2) + "\n");

writeFileSync(
  join(pkgDir, "README.md"),
  `# distlab

Deterministic distributed-systems primitives, a discrete-event simulator with faults,
and labs that animate them — compiled from Rust to WebAssembly.

\`\`\`js
// Browser or bundler (Vite): fetches distlab_bg.wasm next to the module.
import init, { catalog, createLab } from "distlab";
await init();

// Node >= 20 or Deno: hand the bytes over.
import { initSync, createLab } from "distlab";
import { readFileSync } from "node:fs";
initSync({ module: readFileSync(new URL(import.meta.resolve("distlab/distlab_bg.wasm"))) });

const lab = createLab("sim.network", { nodes: 5, seed: 7 });
lab.step(1000);                       // one simulated second
lab.act({ type: "crash", node: 2 });
console.log(lab.view().nodes.map((n) => n.status));
// On a big cluster, ask only for the fields of the nodes you show in detail:
lab.view({ fieldsOf: [2] });
\`\`\`

Every config, action and view has a TypeScript type in \`distlab.d.ts\`; bad input throws
an \`Error\` that names the field.
`,
);
console.log(`finished ${pkg.name}@${pkg.version} in ${pkgDir}`);
