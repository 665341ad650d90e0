// Imports the installed `distlab` tarball from plain Node (run by `cargo xtask test` in a
// temporary folder where only the packed package is installed) and runs a lab.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { initSync, catalog, createLab, faultTypes, latencyMeanMs, networkDefaults, rateLimitHeaders, replayLab, TokenBucket, traceKinds, version } from "distlab";

initSync({ module: readFileSync(new URL(import.meta.resolve("distlab/distlab_bg.wasm"))) });

test("the package loads and lists the catalog", () => {
  assert.match(version(), /^\d+\.\d+\.\d+/);
  const entries = catalog();
  assert.ok(entries.length > 100);
  assert.ok(entries.some((e) => e.id === "sim.network" && e.implemented));
});

test("the tarball carries the README and both licences", () => {
  const dir = new URL(".", import.meta.resolve("distlab/package.json"));
  const pkg = JSON.parse(readFileSync(new URL("package.json", dir), "utf8"));
  assert.equal(pkg.license, "MIT OR Apache-2.0");
  assert.match(readFileSync(new URL("LICENSE-MIT", dir), "utf8"), /^MIT License/);
  assert.match(readFileSync(new URL("LICENSE-APACHE", dir), "utf8"), /Apache License\s+Version 2\.0/);
  assert.match(readFileSync(new URL("README.md", dir), "utf8"), /^# distlab/);
});

test("a lab runs, takes faults and replays", () => {
  const lab = createLab("sim.network", { nodes: 5, seed: 7 });
  // A whole step: its deadline lands exactly on an event's time (the pings run every
  // 50 ms), and the recorded actions say the clock was moved there, so a replay matches.
  assert.ok(lab.step(1000) > 0);
  lab.act({ type: "crash", node: 2 });
  lab.act({ type: "partition", groups: [[0, 1], [3, 4]] });
  lab.step(500);
  const view = lab.view();
  assert.equal(view.nodes.length, 5);
  assert.equal(view.nodes[2].status, "crashed");
  assert.deepEqual(view.partitions.groups.length >= 2, true);
  // A shared link carries config, actions, step and time: replay, seek to the step,
  // then let the clock run on to the time (no event is due in between).
  const again = replayLab("sim.network", lab.config(), lab.actions());
  again.seek(view.step);
  again.step((view.timeUs - again.view().timeUs) / 1000);
  assert.deepEqual(again.view(), view);
});

test("bad input throws an Error naming the field", () => {
  assert.throws(() => createLab("sim.network", { nodes: "five" }), /config\.nodes/);
  assert.throws(() => createLab("sim.network", { lossPercent: 3 }), /lossPercent/);
  const lab = createLab("sim.network");
  assert.throws(() => lab.act({ type: "crash", node: 99 }), /node/);
  assert.throws(() => lab.step(Number.NaN), /`ms`/);
  // Not a string where an id goes: an Error naming it, and the module lives on.
  for (const id of [42, {}, null, true]) assert.throws(() => createLab(id), /`id`/);
  assert.throws(() => replayLab(7, null, []), /`id`/);
  // 2^32 events: refused at once, or one call's worth.
  assert.throws(() => lab.stepEvents(2 ** 32), /`n`.*200000/);
  assert.throws(() => lab.seek(2 ** 32), /`k`.*200000/);
  assert.equal(lab.step(2 ** 32), 200_000);
  // Unknown keys and malformed partitions.
  assert.throws(() => lab.act({ type: "crash", node: 1, nodes: 2 }), /action\.nodes/);
  assert.throws(() => lab.act({ type: "partition", groups: [[0], []] }), /groups\[1\]/);
  assert.throws(() => lab.act({ type: "partition", groups: [[0, 0]] }), /groups\[0\]/);
  assert.throws(() => lab.act({ type: "partitionOneWay", from: [1], to: [1] }), /`to`/);
  assert.ok(lab.view().nodes.length > 0);
});

test("the typed TokenBucket class", () => {
  const bucket = new TokenBucket({ capacity: 2, refillPerSec: 1 });
  assert.equal(bucket.tryAcquire(0).allowed, true);
  assert.equal(bucket.tryAcquire(0).allowed, true);
  assert.equal(bucket.tryAcquire(0).allowed, false);
  assert.equal(bucket.tryAcquire(1000).allowed, true);
  // As HTTP headers: the bucket grants its capacity of 2 again in 2 s, which the policy
  // names when the window is given.
  const denied = bucket.tryAcquire(1000);
  assert.equal(rateLimitHeaders(denied).status, 429);
  const policy = (h) => h.headers.find(([name]) => name === "RateLimit-Policy")[1];
  assert.equal(policy(rateLimitHeaders(denied)), '"default";q=2');
  assert.equal(policy(rateLimitHeaders(denied, undefined, 2000)), '"default";q=2;w=2');
  for (const bad of [-1, 0, Number.NaN, Infinity, 1e30, "soon", {}]) {
    assert.throws(() => rateLimitHeaders(denied, undefined, bad), /windowMs/, String(bad));
  }
});

test("the simulator's vocabulary", () => {
  assert.ok(faultTypes().includes("crash"));
  const kinds = traceKinds();
  assert.ok(kinds.includes("deliver") && kinds.at(-1) === "external", kinds.join());
  const network = networkDefaults();
  assert.deepEqual(createLab("sim.network").config().network, network);
  assert.equal(latencyMeanMs(network.latency), 3);
  assert.throws(() => latencyMeanMs({ type: "uniform", minMs: 5, maxMs: 1 }), /latency\.maxMs/);
});
