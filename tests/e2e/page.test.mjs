// Browser e2e of the built page (run by `cargo xtask test`, which serves web/dist and
// sets DISTLAB_URL, DISTLAB_SCREENSHOTS and DISTLAB_CHROMIUM): every implemented lab
// opens, runs and animates its canvas; faults act through the UI; a share link replays
// the same view; the page works offline once loaded; no console or page error anywhere.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { measureScene, SCENES } from "./frame-bench.mjs";

const URL_BASE = process.env.DISTLAB_URL ?? "http://127.0.0.1:8080/";
const SHOTS = process.env.DISTLAB_SCREENSHOTS ?? "screenshots";
const CHROMIUM = process.env.DISTLAB_CHROMIUM ?? "/usr/bin/chromium";
mkdirSync(SHOTS, { recursive: true });

let browser;
let context;
const errors = [];

function watch(page) {
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => errors.push(`page: ${e.message}`));
  return page;
}

async function openPage(hash = "") {
  const page = watch(await context.newPage());
  await page.setViewportSize({ width: 1400, height: 900 });
  await page.goto(URL_BASE + hash);
  await page.waitForFunction(() => window.distlabPage?.ready === true && window.distlabPage.view() !== null);
  return page;
}

function noErrors() {
  assert.deepEqual(errors, [], "console or page errors");
}

const stagePixels = (page) => page.evaluate(() => document.getElementById("stage").toDataURL());

before(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
  context = await browser.newContext();
});

after(async () => {
  await browser?.close();
});

test("every implemented lab opens, runs and animates its canvas", async () => {
  const page = await openPage();
  const ids = await page.$$eval("#catalog a.implemented", (as) => as.map((a) => a.dataset.id));
  const planned = await page.$$eval("#catalog a.planned", (as) => as.length);
  assert.ok(ids.length >= 1, "at least one implemented lab");
  // Fewer each session as ids get their labs; while any is planned, it is listed.
  assert.ok(planned >= 1, "planned ids are listed too");
  for (const id of ids) {
    await page.click(`#catalog a[data-id="${id}"]`);
    await page.waitForFunction((id) => window.distlabPage.view()?.lab === id, id);
    await page.evaluate(() => window.distlabPage.play());
    await page.waitForTimeout(300);
    const before = await stagePixels(page);
    const step0 = await page.evaluate(() => window.distlabPage.view().step);
    await page.waitForTimeout(2500);
    const after = await stagePixels(page);
    const step1 = await page.evaluate(() => window.distlabPage.view().step);
    assert.ok(step1 > step0, `${id}: the run advanced (${step0} → ${step1})`);
    assert.notEqual(after, before, `${id}: the canvas changed`);
    await page.screenshot({ path: join(SHOTS, `${id}.png`) });
  }
  await page.close();
  noErrors();
});

test("faults through the UI: crash a node by clicking it, drag a partition, sliders", async () => {
  const page = await openPage("#lab=sim.network");
  await page.evaluate(() => window.distlabPage.play());
  await page.waitForTimeout(500);
  const at = async (id) => {
    const box = await page.locator("#stage").boundingBox();
    const p = await page.evaluate((id) => window.distlabPage.nodePosition(id), id);
    return { x: box.x + p.x, y: box.y + p.y };
  };
  // Crash node 2 by clicking it in crash mode.
  await page.check('input[name="mode"][value="crash"]');
  const n2 = await at(2);
  await page.mouse.click(n2.x, n2.y);
  await page.waitForFunction(() => window.distlabPage.view().nodes[2].status === "crashed");
  // Partition {0, 1} from the rest by dragging a rectangle around them.
  await page.check('input[name="mode"][value="partition"]');
  const [a, b] = [await at(0), await at(1)];
  await page.mouse.move(Math.min(a.x, b.x) - 25, Math.min(a.y, b.y) - 25);
  await page.mouse.down();
  await page.mouse.move(Math.max(a.x, b.x) + 25, Math.max(a.y, b.y) + 25, { steps: 5 });
  await page.mouse.up();
  await page.waitForFunction(() => window.distlabPage.view().partitions.groups.length >= 2);
  const groups = await page.evaluate(() => window.distlabPage.view().partitions.groups);
  assert.ok(groups.some((g) => g.includes(0) && g.includes(1) && !g.includes(3)), JSON.stringify(groups));
  // A loss slider and a client request.
  await page.evaluate(() => {
    const s = document.getElementById("loss");
    s.value = "0.3";
    s.dispatchEvent(new Event("change"));
  });
  await page.click("#client-request");
  const types = await page.evaluate(() => window.distlabPage.lab().actions().map((a) => a.action.type));
  assert.deepEqual(types.slice(-4), ["crash", "partition", "setLoss", "clientRequest"]);
  // Inspector: click node 0 in inspect mode.
  await page.check('input[name="mode"][value="inspect"]');
  const n0 = await at(0);
  await page.mouse.click(n0.x, n0.y);
  await page.waitForFunction(() => document.getElementById("inspector").textContent.includes("n0"));
  await page.waitForTimeout(1500);
  assert.equal(await page.isVisible("#error"), false, "no error shown");
  await page.screenshot({ path: join(SHOTS, "faults.png") });
  // Keyboard: space pauses, → steps one event.
  await page.click("#stage-hint", { force: true }).catch(() => {});
  await page.keyboard.press("Space");
  await page.waitForFunction(() => document.getElementById("play").textContent.includes("play"));
  await page.waitForTimeout(100);
  const s0 = await page.evaluate(() => window.distlabPage.lab().steps);
  await page.keyboard.press("ArrowRight");
  await page.waitForFunction((s0) => window.distlabPage.view().step === s0 + 1, s0);
  // Time travel: the scrubber goes back and the state follows.
  await page.evaluate(() => {
    const s = document.getElementById("scrubber");
    s.value = String(Math.floor(Number(s.max) / 2));
    s.dispatchEvent(new Event("input"));
  });
  await page.waitForFunction(() => {
    const s = document.getElementById("scrubber");
    return window.distlabPage.view().step === Math.floor(Number(s.max) / 2);
  });
  await page.close();
  noErrors();
});

test("an invariant violation pauses the run and rings the nodes it blames", async () => {
  // A real violation: sim.linearizability's default store is a lagging replica that
  // serves some reads stale, so the history its clients record cannot be linearized;
  // the checker finds that as the history unrolls, and the clients whose operations
  // cannot go next are blamed. (A restarted sim.network node no longer trips the
  // duplicate check: its pings carry its boot epoch.)
  const page = await openPage("#lab=sim.linearizability");
  await page.evaluate(() => {
    const s = document.getElementById("speed");
    s.value = "0"; // 1×
    s.dispatchEvent(new Event("input"));
    window.distlabPage.play();
  });
  const name = "history is linearizable";
  await page.waitForFunction(() => !window.distlabPage.playing(), null, { timeout: 30_000 });
  const { violated, blamed, ids, store } = await page.evaluate((name) => ({
    violated: window.distlabPage.view().invariants.find((i) => i.name === name),
    blamed: window.distlabPage.blamed(),
    ids: window.distlabPage.view().nodes.map((n) => n.id),
    store: window.distlabPage.lab().config().store.type,
  }), name);
  assert.equal(store, "laggingReplica");
  assert.equal(violated.ok, false, JSON.stringify(violated));
  assert.ok(blamed.length > 0 && blamed.length < ids.length, `some clients are blamed: ${blamed}`);
  assert.deepEqual(blamed, [...violated.nodes].sort((a, b) => a - b));
  assert.match(await page.textContent("#play"), /play/);
  assert.match(await page.textContent("#invariants li.violated"), new RegExp(name));
  // It stays paused, and the stage shows the red rings.
  const step = await page.evaluate(() => window.distlabPage.view().step);
  await page.waitForTimeout(900);
  assert.equal(await page.evaluate(() => window.distlabPage.view().step), step);
  const ringColour = (id) => page.evaluate((id) => {
    const p = window.distlabPage.nodePosition(id);
    const canvas = document.getElementById("stage");
    const dpr = canvas.width / canvas.clientWidth;
    const [r, g, b] = canvas.getContext("2d").getImageData(Math.round((p.x + p.r + 6) * dpr), Math.round(p.y * dpr), 1, 1).data;
    return { r, g, b };
  }, id);
  const red = ({ r, g, b }) => r > 180 && g < 140 && b < 140;
  for (const id of blamed) assert.ok(red(await ringColour(id)), `node ${id} is ringed in red: ${JSON.stringify(await ringColour(id))}`);
  for (const id of ids) {
    if (!blamed.includes(id)) assert.ok(!red(await ringColour(id)), `node ${id} is not ringed`);
  }
  await page.screenshot({ path: join(SHOTS, "invariant-violated.png") });
  await page.close();
  noErrors();
});

test("a share link reproduces the same view", async () => {
  const page = await openPage("#lab=sim.network");
  await page.evaluate(() => window.distlabPage.play());
  await page.waitForTimeout(700);
  await page.waitForFunction(() => window.distlabPage.traceBuilt() !== null);
  const replaysBefore = await page.evaluate(() => window.distlabPage.traceBuilt().replays);
  await page.evaluate(() => {
    window.distlabPage.act({ type: "crash", node: 1 });
    window.distlabPage.act({ type: "partition", groups: [[0, 2]] });
    window.distlabPage.act({ type: "setDuplicate", probability: 0.2 });
  });
  await page.waitForTimeout(700);
  await page.evaluate(() => window.distlabPage.pause());
  await page.waitForTimeout(100);
  // The trace worker's replica follows the page — taking its actions, back in time to
  // before them, forward again through them — without replaying the run, and its trace at
  // the page's step has the page's hash.
  const workerAgrees = async (applied, what) => {
    await page.waitForFunction((applied) => {
      const built = window.distlabPage.traceBuilt();
      const lab = window.distlabPage.lab();
      const hash = JSON.parse(lab.traceJsonFrom(Number.MAX_SAFE_INTEGER, 0)).hash;
      return lab.actions().length === applied && built.step === lab.steps && built.hash === hash;
    }, applied, { timeout: 15_000 });
    assert.equal(await page.evaluate(() => window.distlabPage.traceBuilt().replays), replaysBefore, `no replay ${what}`);
  };
  const scrubTo = (step) =>
    page.evaluate((step) => {
      const s = document.getElementById("scrubber");
      s.value = String(step ?? s.max);
      s.dispatchEvent(new Event("input"));
    }, step);
  await workerAgrees(3, "taking the actions");
  await scrubTo(await page.evaluate(() => Math.max(1, window.distlabPage.lab().actions()[0].step - 3)));
  await workerAgrees(0, "going back");
  await scrubTo(null);
  await workerAgrees(3, "going forward again");
  // Whole views, every node's fields included (the page asks only for the inspected
  // node's). The lab moves on in the same task, before any frame shows it: the link
  // names where the lab is, not the last view drawn.
  const { url, view } = await page.evaluate(() => {
    window.distlabPage.pause();
    window.distlabPage.lab().stepEvents(7);
    return { url: window.distlabPage.shareUrl(), view: JSON.stringify(window.distlabPage.lab().view()) };
  });
  assert.match(url, /#lab=sim\.network&run=/);
  const other = await openPage(url.slice(url.indexOf("#")));
  const replayed = await other.evaluate(() => JSON.stringify(window.distlabPage.lab().view()));
  assert.equal(replayed, view, "the shared link gives the same view JSON");
  await other.screenshot({ path: join(SHOTS, "shared.png") });
  await page.close();
  await other.close();
  noErrors();
});

test("a link to step 2^32 replays in slices, shows progress and can be stopped", async () => {
  const run = { config: null, actions: [], step: 2 ** 32, timeUs: 0 };
  const packed = Buffer.from(JSON.stringify(run)).toString("base64url");
  const page = watch(await context.newPage());
  await page.goto(`${URL_BASE}#lab=sim.network&run=${packed}`);
  await page.waitForSelector("#replay-progress");
  // Progress past two slices: the page redrew between slices, so the tab never froze.
  await page.waitForFunction(() => {
    const bar = document.querySelector("#replay-progress progress");
    return bar && bar.value > 2 * 200_000;
  }, null, { timeout: 60_000 });
  assert.match(await page.textContent("#replay-progress"), /of 4,294,967,296/);
  await page.click("#replay-progress button");
  await page.waitForFunction(() => document.getElementById("replay-progress") === null);
  assert.match(await page.textContent("#error"), /replay stopped at step \d+ of 4294967296/);
  // Nothing was open before: the lab opens fresh.
  await page.waitForFunction(() => window.distlabPage.view() !== null && window.distlabPage.lab().steps < 1000);
  await page.close();
  noErrors();
});

test("a soak runs in a worker with a progress bar", async () => {
  const page = await openPage("#lab=sim.network");
  await page.click("#soak");
  await page.waitForFunction(() => /seeds, \d+ events/.test(document.getElementById("soak-result").textContent), null, { timeout: 60_000 });
  await page.close();
  noErrors();
});

test("frame time on the largest cluster under load, and time to first animated frame", async () => {
  const page = await openPage("#lab=sim.network");
  await page.waitForFunction(() => window.distlabPage.firstFrameMs !== null);
  const first = await page.evaluate(() => window.distlabPage.firstFrameMs);
  // The scenes of frame-bench.mjs: sim.network with 5 nodes at 0.1x, 64 and 1,000 nodes
  // under load (ping every 20 ms, 5 % loss, 5 % duplication) at 1x, and the largest
  // consensus.raft (51 nodes, 32 clients with 5 ms think time, 5 % loss and duplication).
  const small = await measureScene(page, SCENES.net5);
  const huge = await measureScene(page, SCENES.net1000);
  await page.screenshot({ path: join(SHOTS, "sim.network-1000.png") });
  const raft = await measureScene(page, SCENES.raft51);
  await page.screenshot({ path: join(SHOTS, "consensus.raft-51.png") });
  const large = await measureScene(page, SCENES.net64);
  await page.screenshot({ path: join(SHOTS, "sim.network-64.png") });
  // A 100,000-event trace: the worker builds it, the main thread keeps drawing.
  await page.evaluate(() => {
    window.distlabPage.pause();
    window.distlabPage.lab().stepEvents(100_000);
    window.distlabPage.act({ type: "heal" });
    window.distlabPage.resetFrames();
  });
  await page.waitForFunction(() => {
    const m = /^(\d+) events/.exec(document.getElementById("trace-info").textContent);
    return m !== null && Number(m[1]) >= 100_000;
  }, null, { timeout: 60_000 });
  const bigTrace = await page.evaluate(() => ({ events: document.getElementById("trace-info").textContent, ...window.distlabPage.frameStats() }));
  await page.screenshot({ path: join(SHOTS, "trace-100k.png") });
  const result = { firstAnimatedFrameMs: first, default5Nodes: small, nodes64UnderLoad: large, nodes1000UnderLoad: huge, raft51UnderLoad: raft, trace100k: { events: bigTrace.events, frames: bigTrace.frames, p50: bigTrace.p50, p95: bigTrace.p95, maxFrameMs: bigTrace.max } };
  writeFileSync(join(SHOTS, "frame-times.json"), JSON.stringify(result, null, 2));
  console.log(`frame times: ${JSON.stringify(result)}`);
  assert.ok([small, large, huge, raft].every((r) => r.frames > 30), "frames were drawn");
  assert.ok([small, large, huge, raft].every((r) => r.playing), "no scene stopped (an error or an invariant pauses the run)");
  await page.close();
  noErrors();
});

test("works offline once loaded", async () => {
  const page = await openPage("#lab=sim.network");
  await page.evaluate(() => navigator.serviceWorker.ready);
  // A second load goes through the service worker, which caches every file it serves.
  await page.reload();
  await page.waitForFunction(() => window.distlabPage?.ready === true && navigator.serviceWorker.controller !== null);
  await context.setOffline(true);
  try {
    await page.reload();
    await page.waitForFunction(() => window.distlabPage?.ready === true && window.distlabPage.view() !== null);
  } finally {
    await context.setOffline(false);
  }
  await page.close();
  noErrors();
});

test("the ring renderer draws points by position and owned ranges as arcs", async () => {
  // No registered lab has a ring yet (the consistent-hash lab will): a fixture panel in
  // the view vocabulary goes through the page's generic panel renderers.
  const page = await openPage("#lab=sim.network");
  await page.evaluate(() => window.distlabPage.pause());
  const ring = {
    type: "ring",
    title: "fixture ring",
    points: [
      { position: 0.25, label: "n0", owner: "leader", kind: "node" },
      { position: 0.5, label: "k7", owner: "ok", kind: "key" },
      { position: 1.0, label: "n1", owner: "rejected", kind: "node" }, // 1.0 wraps to the top
    ],
    arcs: [
      { start: 0.6, end: 0.9, owner: "ok", label: "ok's range" },
      { start: 0.95, end: 0.05, owner: "rejected", label: "wraps past 0" },
    ],
  };
  const g = await page.evaluate((ring) => window.distlabPage.renderPanelFixture(ring), ring);
  assert.ok(g && g.r > 40, JSON.stringify(g));
  const pixel = (p, radius) => page.evaluate(([p, radius, g]) => {
    const canvas = document.querySelector("#panel-fixture canvas");
    const dpr = canvas.width / canvas.clientWidth;
    const a = -Math.PI / 2 + 2 * Math.PI * p;
    const x = Math.round((g.cx + radius * Math.cos(a)) * dpr);
    const y = Math.round((g.cy + radius * Math.sin(a)) * dpr);
    return [...canvas.getContext("2d").getImageData(x, y, 1, 1).data];
  }, [p, radius, g]);
  const near = ([r, g, b, a], hex, tol = 40) => {
    const [R, G, B] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
    return a > 200 && Math.abs(r - R) < tol && Math.abs(g - G) < tol && Math.abs(b - B) < tol;
  };
  // Nodes: dots on the circle in their owner's colour (leader #f0b429, rejected #f85149).
  assert.ok(near(await pixel(0.25, g.r), "#f0b429"), `n0 at 3 o'clock: ${await pixel(0.25, g.r)}`);
  assert.ok(near(await pixel(0, g.r), "#f85149"), `n1 at the top: ${await pixel(0, g.r)}`);
  // A key: a tick inside the circle (ok #3fb950), nothing on the circle's outside there.
  assert.ok(near(await pixel(0.5, g.r - 8), "#3fb950"), `k7 tick: ${await pixel(0.5, g.r - 8)}`);
  // Arcs just outside the circle, translucent in the owner's colour; none elsewhere.
  const [r1, g1, b1, a1] = await pixel(0.75, g.r + 7);
  assert.ok(a1 > 60 && g1 > r1 && g1 > b1, `ok's range at 9 o'clock: ${[r1, g1, b1, a1]}`);
  const [r2, g2, b2, a2] = await pixel(0.99, g.r + 7);
  assert.ok(a2 > 60 && r2 > g2 && r2 > b2, `the wrapping range just left of the top: ${[r2, g2, b2, a2]}`);
  assert.equal((await pixel(0.4, g.r + 7))[3], 0, "no arc at 0.4");
  assert.equal((await pixel(0.25, g.r - 8))[3], 0, "no key tick at 0.25");
  await page.screenshot({ path: join(SHOTS, "ring-fixture.png") });
  await page.close();
  noErrors();
});

test("the action builder sends any action with its parameters; a bad one names its field and changes nothing", async () => {
  const page = await openPage("#lab=consensus.raft");
  await page.evaluate(() => {
    const s = document.getElementById("speed");
    s.value = "0"; // 1×
    s.dispatchEvent(new Event("input"));
    window.distlabPage.play();
  });
  const leaderOf = () => page.evaluate(() => window.distlabPage.view().nodes.find((n) => n.role === "leader")?.id ?? null);
  await page.waitForFunction(() => window.distlabPage.view().nodes.some((n) => n.role === "leader"), null, { timeout: 20_000 });
  const leader = await leaderOf();
  // Not the example's node 2, and not the leader: a parameter the user typed.
  const target = [4, 3, 1, 0].find((n) => n !== leader);
  const root = "#action-form > fieldset > legend > select";
  const actions = () => page.evaluate(() => window.distlabPage.lab().actions().map((a) => a.action));
  // Picking a type fills its fields from the first example of that type.
  await page.selectOption(root, "transferLeadership");
  assert.equal(await page.inputValue('#action-form [data-path="action.to"]'), "2", "prefilled from the example");
  await page.fill('#action-form [data-path="action.to"]', String(target));
  await page.click("#do-action");
  assert.deepEqual((await actions()).at(-1), { type: "transferLeadership", to: target });
  await page.waitForFunction((t) => window.distlabPage.view().nodes.find((n) => n.role === "leader")?.id === t, target, { timeout: 20_000 });
  // A nested union tagged on `op`: a compare-and-set to node 0, `expected` left out (null).
  await page.selectOption(root, "clientRequest");
  await page.selectOption('#action-form [data-path="action.request"] select', "cas");
  await page.fill('#action-form [data-path="action.request.key"]', "k");
  await page.fill('#action-form [data-path="action.request.new"]', "v2");
  await page.fill('#action-form [data-path="action.node"]', "0");
  await page.click("#do-action");
  const cas = (await actions()).at(-1);
  assert.deepEqual({ ...cas.request, expected: cas.request.expected ?? null }, { op: "cas", key: "k", new: "v2", expected: null });
  assert.equal(cas.node, 0);
  assert.equal(await page.isVisible("#error"), false, "no error shown");
  // A node that does not exist: the error names `action.to`, the field is marked, and
  // nothing was recorded. It stays shown while the run plays on.
  await page.selectOption(root, "transferLeadership");
  await page.fill('#action-form [data-path="action.to"]', "99");
  const before = await actions();
  await page.click("#do-action");
  await page.waitForSelector("#error", { state: "visible" });
  assert.match(await page.textContent("#error"), /`action\.to`.*99/);
  assert.ok(await page.$eval('#action-form [data-path="action.to"]', (e) => e.classList.contains("field-error")), "the field is marked");
  assert.deepEqual(await actions(), before, "nothing recorded");
  assert.equal(await leaderOf(), target, "the leader stayed");
  await page.waitForTimeout(500);
  assert.equal(await page.isVisible("#error"), true, "the error stays while playing");
  await page.screenshot({ path: join(SHOTS, "action-builder-error.png") });
  // A good action clears the error and the mark.
  await page.fill('#action-form [data-path="action.to"]', String(target));
  await page.click("#do-action");
  await page.waitForSelector("#error", { state: "hidden" });
  assert.equal(await page.$$eval("#action-form .field-error", (es) => es.length), 0);
  // An example button does its action and loads it into the builder.
  await page.locator("#action-presets button").filter({ hasText: /^snapshot \{"node":0\}$/ }).click();
  assert.deepEqual((await actions()).at(-1), { type: "snapshot", node: 0 });
  assert.equal(await page.inputValue(root), "snapshot");
  assert.equal(await page.inputValue('#action-form [data-path="action.node"]'), "0");
  await page.screenshot({ path: join(SHOTS, "action-builder.png") });
  await page.close();
  noErrors();
});

test("a pasted multi-line history keeps its newlines through the config form", async () => {
  // The first ten lines of a Jepsen etcd log from the repository's fixtures: five
  // processes, each invoking one operation and getting its answer.
  const log = readFileSync(new URL("../data/porcupine/jepsen/etcd_000.log", import.meta.url), "utf8");
  const text = log.split("\n").slice(0, 10).join("\n") + "\n";
  const processes = new Set(text.trim().split("\n").map((l) => /- (\d+)\t/.exec(l)?.[1]));
  assert.equal(processes.size, 5, "the fixture's first lines are five processes' operations");
  const page = await openPage("#lab=sim.linearizability");
  await page.evaluate(() => window.distlabPage.pause());
  await page.check('#config-form label:has(> span:text-is("history (set)")) input');
  assert.equal(await page.$eval('[data-path="config.history.text"]', (e) => e.tagName), "TEXTAREA");
  await page.selectOption('[data-path="config.history.format"]', "etcdLog");
  await page.fill('[data-path="config.history.text"]', text);
  await page.click('#config-form button[type="submit"]');
  await page.waitForFunction(() => window.distlabPage.lab().config().history !== null);
  assert.equal(await page.isVisible("#error"), false, "no error shown");
  assert.equal(await page.evaluate(() => window.distlabPage.lab().config().history.text), text, "the text arrived verbatim");
  // Revealed to its end, the history is those five operations.
  const { rows, lanes } = await page.evaluate(() => {
    const lab = window.distlabPage.lab();
    lab.stepEvents(10_000);
    const v = lab.view();
    return {
      rows: v.panels.find((p) => p.type === "table" && p.title.startsWith("revealed operations")).rows,
      lanes: v.panels.find((p) => p.type === "timeline").lanes,
    };
  });
  assert.equal(rows.length, 5, JSON.stringify(rows));
  assert.equal(lanes.length, 5, JSON.stringify(lanes));
  await page.evaluate(() => window.distlabPage.play());
  await page.waitForTimeout(300);
  await page.screenshot({ path: join(SHOTS, "pasted-history.png") });
  // The builder's `paste` action takes many lines too.
  await page.selectOption("#action-form > fieldset > legend > select", "paste");
  assert.equal(await page.$eval('[data-path="action.text"]', (e) => e.tagName), "TEXTAREA");
  assert.match(await page.inputValue('[data-path="action.text"]'), /\n.*\n/, "prefilled from the example, lines kept");
  // A read's edited answer is an integer or a string (nil): one input, not a JSON box.
  await page.selectOption("#action-form > fieldset > legend > select", "editOutput");
  const value = '#action-form [data-path="action.output.value"]';
  assert.equal(await page.$eval(value, (e) => e.tagName), "INPUT");
  assert.equal(await page.inputValue(value), "1", "prefilled from the example");
  await page.fill('#action-form [data-path="action.op"]', "0");
  await page.fill(value, "7");
  await page.click("#do-action");
  const edit = await page.evaluate(() => window.distlabPage.lab().actions().at(-1)?.action);
  assert.equal(await page.isVisible("#error"), false, "no error shown");
  assert.deepEqual(edit?.output, { result: "value", value: 7 }, "an integer, not the text \"7\"");
  await page.fill(value, "nil");
  await page.click("#do-action");
  const nil = await page.evaluate(() => window.distlabPage.lab().actions().at(-1)?.action);
  assert.deepEqual(nil?.output, { result: "value", value: "nil" });
  await page.close();
  noErrors();
});

test("labs that send no messages show no space-time lanes; labs that do keep the diagram", async () => {
  const decided = (page) => page.waitForFunction(() => /^[1-9]\d* events/.test(document.getElementById("trace-info").textContent), null, { timeout: 20_000 });
  for (const id of ["ratelimit.fixed-window", "ratelimit.keyed", "ratelimit.token-bucket"]) {
    const page = await openPage(`#lab=${id}`);
    await page.evaluate(() => window.distlabPage.play());
    await decided(page);
    assert.equal(await page.isVisible("#spacetime-wrap"), false, `${id}: no space-time diagram`);
    assert.equal(await page.isVisible("#no-messages"), true, `${id}: a note says why`);
    const stage = await page.locator("#stage-wrap").boundingBox();
    const row = await page.locator("#stage-row").boundingBox();
    assert.ok(stage.width > row.width - 2, `${id}: the stage takes the row (${stage.width} of ${row.width})`);
    if (id === "ratelimit.fixed-window") await page.screenshot({ path: join(SHOTS, "no-messages.png") });
    await page.close();
  }
  // Nor a cluster (an arrival process): a strip of stage, the panels move up.
  const workload = await openPage("#lab=sim.workload");
  await workload.evaluate(() => window.distlabPage.play());
  await decided(workload);
  const strip = await workload.locator("#stage-row").boundingBox();
  assert.ok(strip.height < 100, `sim.workload: a strip of stage (${strip.height} px)`);
  await workload.screenshot({ path: join(SHOTS, "no-cluster.png") });
  await workload.close();
  const page = await openPage("#lab=consensus.raft");
  await page.evaluate(() => window.distlabPage.play());
  await decided(page);
  assert.equal(await page.isVisible("#spacetime-wrap"), true, "consensus.raft keeps its diagram");
  assert.ok((await page.locator("#stage-row").boundingBox()).height > 300, "consensus.raft keeps its stage");
  assert.equal(await page.isVisible("#no-messages"), false);
  await page.close();
  noErrors();
});

test("Raft nodes show their term and timers at a glance; the log grid follows replication", async () => {
  const page = await openPage("#lab=consensus.raft");
  // Opening plays, without ▶.
  assert.equal(await page.evaluate(() => window.distlabPage.playing()), true, "the lab plays when it opens");
  const glances = () => page.evaluate(() => window.distlabPage.view().glances ?? []);
  const g0 = await glances();
  assert.equal(g0.length, 5, "every node has a glance");
  await page.waitForFunction(() => window.distlabPage.view().nodes.some((n) => n.role === "leader"), null, { timeout: 20_000 });
  const g1 = await glances();
  assert.ok(g1.some((g) => Number(g.badge) > 0), `terms moved past 0: ${g1.map((g) => g.badge)}`);
  assert.notDeepEqual(g1.map((g) => g.rings[0].value), g0.map((g) => g.rings[0].value), "the rings moved");
  assert.ok(g1.some((g) => g.rings[0].name === "leader lease"), "the leader shows its lease");
  // The rings and badges are drawn: the top of each follower's ring has its colour
  // once its timer ran past a tenth (checked paused, on the frame drawn for this view).
  await page.evaluate(() => window.distlabPage.pause());
  await page.waitForTimeout(200);
  const drawn = await page.evaluate(() => {
    const v = window.distlabPage.view();
    const canvas = document.getElementById("stage");
    const dpr = canvas.width / canvas.clientWidth;
    const ctx = canvas.getContext("2d");
    return v.glances.map((g) => {
      const p = window.distlabPage.nodePosition(g.node);
      const a = -Math.PI / 2 + 0.05 * 2 * Math.PI;
      const x = p.x + (p.r + 4) * Math.cos(a);
      const y = p.y + (p.r + 4) * Math.sin(a);
      const [r, gg, b] = ctx.getImageData(Math.round(x * dpr), Math.round(y * dpr), 1, 1).data;
      return { value: g.rings[0].value, name: g.rings[0].name, rgb: [r, gg, b] };
    });
  });
  for (const d of drawn) {
    if (d.value < 0.1) continue;
    const bright = d.rgb.reduce((s, c) => s + c, 0);
    assert.ok(bright > 300, `a ${d.name} ring at ${d.value.toFixed(2)} is drawn: ${d.rgb}`);
  }
  // The log grid: the leader's entries reach the followers, the commit marker advances.
  const grid = () => page.evaluate(() => {
    const v = window.distlabPage.view();
    const leader = v.nodes.find((n) => n.role === "leader")?.id;
    return { leader, panel: v.panels.find((p) => p.type === "logGrid") };
  });
  const commitOf = (row) => row.markers.find((m) => m.kind === "commit").index;
  const before = await grid();
  assert.ok(before.panel, "consensus.raft has a log grid");
  assert.equal(before.panel.rows.length, 5);
  await page.evaluate(() => window.distlabPage.play());
  await page.waitForTimeout(2000);
  await page.evaluate(() => window.distlabPage.pause());
  await page.waitForTimeout(100);
  const after = await grid();
  const lRow = after.panel.rows[after.leader];
  assert.ok(commitOf(lRow) > commitOf(before.panel.rows[after.leader] ?? lRow) || commitOf(lRow) > commitOf(before.panel.rows[before.leader]), "the leader's commit marker advanced");
  const term = (row, i) => row.cells.find((c) => c.index === i)?.value;
  for (const [n, row] of after.panel.rows.entries()) {
    if (n === after.leader) continue;
    const committed = row.cells.filter((c) => c.committed);
    assert.ok(committed.length > 0, `n${n} holds committed entries`);
    for (const c of committed) assert.equal(c.value, term(lRow, c.index) ?? c.value, `n${n}[${c.index}] matches the leader's term`);
    assert.ok(row.markers.some((m) => m.kind === "match"), `the leader's match index for n${n} is marked`);
  }
  // The README's picture: Raft with its grid under the stage.
  await page.evaluate(() => document.getElementById("config-box").removeAttribute("open"));
  await page.setViewportSize({ width: 1400, height: 1000 });
  await page.evaluate(() => document.querySelector(".panel-logGrid").scrollIntoView({ block: "end" }));
  await page.waitForTimeout(200);
  await page.screenshot({ path: join(SHOTS, "page.png") });
  const box = await page.locator(".panel-logGrid canvas").first().boundingBox();
  assert.ok(box && box.height > 5 * 20, `the grid is drawn with a row per node (${box?.height} px)`);
  // Clicking a message in flight shows what it carries.
  const spot = await page.evaluate(() => {
    const v = window.distlabPage.view();
    for (const m of v.messages) {
      if (m.from.type !== "node" || m.to.type !== "node" || m.progress < 0.2 || m.progress > 0.8) continue;
      const a = window.distlabPage.nodePosition(m.from.id);
      const b = window.distlabPage.nodePosition(m.to.id);
      return { id: m.id, x: a.x + (b.x - a.x) * m.progress, y: a.y + (b.y - a.y) * m.progress };
    }
    return null;
  });
  if (spot) {
    const stage = await page.locator("#stage").boundingBox();
    await page.mouse.click(stage.x + spot.x, stage.y + spot.y);
    await page.waitForFunction(() => /^message \d+ · /.test(document.getElementById("inspector").textContent));
    assert.match(await page.textContent("#inspector"), /sentMs: /);
  }
  await page.screenshot({ path: join(SHOTS, "raft-glance-and-grid.png") });
  await page.close();
  noErrors();
});

test("switching labs plays them; the address follows, with back, forward and reload", async () => {
  const page = await openPage("#lab=sim.network");
  const opened = async (id) => {
    await page.waitForFunction((id) => window.distlabPage.view()?.lab === id, id);
    const s0 = await page.evaluate(() => window.distlabPage.view().step);
    await page.waitForFunction((s0) => window.distlabPage.view().step > s0, s0, { timeout: 10_000 });
    assert.equal(await page.evaluate(() => window.distlabPage.playing()), true, `${id} plays`);
    assert.equal(await page.evaluate(() => location.hash), `#lab=${id}`);
  };
  await page.click('#catalog a[data-id="consensus.raft"]');
  await opened("consensus.raft");
  // Raft's first election shows within a few seconds of opening it.
  await page.waitForFunction(() => window.distlabPage.view().nodes.some((n) => n.role === "leader"), null, { timeout: 6_000 });
  await page.click('#catalog a[data-id="ratelimit.fixed-window"]');
  await opened("ratelimit.fixed-window");
  await page.goBack();
  await opened("consensus.raft");
  await page.goForward();
  await opened("ratelimit.fixed-window");
  await page.reload();
  await page.waitForFunction(() => window.distlabPage?.ready === true && window.distlabPage.view() !== null);
  await opened("ratelimit.fixed-window");
  await page.close();
  noErrors();
});

test("a lesson plays to its end; each step's link reopens that step with the same trace", async () => {
  for (const [lab, lessonId] of [["consensus.raft", "election"], ["consensus.raft", "replication"], ["consensus.raft", "partition"], ["consensus.raft", "figure-8"], ["consensus.raft", "membership"], ["ratelimit.fixed-window", "boundary-burst"], ["scenario.disruptive-rejoin", "rejoin"], ["sim.linearizability", "stale-read"]]) {
    const page = await openPage(`#lab=${lab}`);
    await page.selectOption("#lesson-pick", lessonId);
    await page.click("#lesson-start");
    // Fast, so the test is short: the pauses do not depend on the speed.
    await page.evaluate(() => {
      const s = document.getElementById("speed");
      s.value = "1"; // 10×
      s.dispatchEvent(new Event("input"));
    });
    const steps = await page.evaluate(([lab, id]) => window.distlabPage.lessons(lab).find((l) => l.id === id).steps.length, [lab, lessonId]);
    for (let i = 0; i < steps; i++) {
      await page.waitForFunction((i) => { const l = window.distlabPage.lesson(); return l && l.index === i && l.done; }, i, { timeout: 30_000 });
      assert.match(await page.textContent("#lesson-title"), new RegExp(`step ${i + 1} of ${steps}`));
      const { link, hash, step } = await page.evaluate(() => ({
        link: window.distlabPage.lessonLink(),
        hash: JSON.parse(window.distlabPage.lab().traceJsonFrom(Number.MAX_SAFE_INTEGER, 0)).hash,
        step: window.distlabPage.lab().steps,
      }));
      assert.match(link, new RegExp(`&lesson=${lessonId}&at=${i}$`));
      await page.screenshot({ path: join(SHOTS, `lesson-${lab}-${lessonId}-${i + 1}.png`) });
      const other = await openPage(link.slice(link.indexOf("#")));
      // Reopened where it paused: the replay, if it took more than one slice, is over.
      await other.waitForFunction((i) => window.distlabPage.lesson()?.index === i && document.getElementById("replay-progress") === null, i);
      const again = await other.evaluate(() => ({
        hash: JSON.parse(window.distlabPage.lab().traceJsonFrom(Number.MAX_SAFE_INTEGER, 0)).hash,
        step: window.distlabPage.lab().steps,
        caption: document.getElementById("lesson-caption").textContent,
      }));
      assert.deepEqual({ hash: again.hash, step: again.step }, { hash, step }, `${lab}/${lessonId} step ${i + 1}: the link reopens the same run`);
      assert.equal(again.caption, await page.textContent("#lesson-caption"));
      await other.close();
      await page.click("#lesson-next");
    }
    // Past the last step the lesson is left, and the run stays to poke.
    await page.waitForFunction(() => window.distlabPage.lesson() === null);
    assert.equal(await page.isVisible("#lesson"), false);
    await page.close();
  }
  noErrors();
});

test("back in a lesson reopens where the previous step paused; leaving keeps the run", async () => {
  const page = await openPage("#lab=consensus.raft");
  await page.selectOption("#lesson-pick", "replication");
  await page.click("#lesson-start");
  await page.evaluate(() => {
    const s = document.getElementById("speed");
    s.value = "1";
    s.dispatchEvent(new Event("input"));
  });
  await page.waitForFunction(() => window.distlabPage.lesson()?.done === true);
  const first = await page.evaluate(() => window.distlabPage.lab().steps);
  await page.click("#lesson-next");
  await page.waitForFunction(() => { const l = window.distlabPage.lesson(); return l.index === 1 && l.done; });
  await page.click("#lesson-back");
  await page.waitForFunction(() => window.distlabPage.lesson()?.index === 0);
  assert.equal(await page.evaluate(() => window.distlabPage.lab().steps), first, "back to where step 1 paused");
  await page.click("#lesson-leave");
  assert.equal(await page.evaluate(() => window.distlabPage.lesson()), null);
  await page.evaluate(() => window.distlabPage.act({ type: "crash", node: 0 }));
  await page.waitForFunction(() => window.distlabPage.view().nodes[0].status === "crashed");
  await page.close();
  noErrors();
});

test("sim.linearizability puts its history on the stage", async () => {
  const page = await openPage("#lab=sim.linearizability");
  await page.waitForSelector("#stage-panel .panel-timeline canvas");
  const box = await page.locator("#stage-panel canvas").boundingBox();
  assert.ok(box.height > 250, `the history fills the stage (${box.height} px)`);
  assert.equal(await page.locator("#panels .panel-timeline").count(), 0, "not repeated below");
  // The first operations that cannot be placed are marked once the checker finds them.
  await page.waitForFunction(() => !window.distlabPage.playing(), null, { timeout: 60_000 });
  const unplaceable = await page.evaluate(() => window.distlabPage.view().panels[window.distlabPage.view().stagePanel].bars.filter((b) => b.state === "unplaceable").length);
  assert.ok(unplaceable > 0, "the operations that cannot go next are marked");
  await page.screenshot({ path: join(SHOTS, "linearizability-stage.png") });
  await page.close();
  noErrors();
});

test("accessibility: no serious axe-core violations; keyboard shortcuts on ?; the stage as a table; 900 px wide", async () => {
  const axePath = new URL("./node_modules/axe-core/axe.min.js", import.meta.url).pathname;
  for (const hash of ["#lab=consensus.raft", "#lab=sim.linearizability", "#lab=ratelimit.fixed-window"]) {
    const page = await openPage(hash);
    await page.waitForTimeout(500);
    await page.addScriptTag({ path: axePath });
    const found = await page.evaluate(async () => {
      const r = await window.axe.run(document, { resultTypes: ["violations"] });
      return r.violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => `${v.id}: ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(" | ")}`);
    });
    assert.deepEqual(found, [], `${hash}: serious accessibility violations`);
    await page.close();
  }
  const page = await openPage("#lab=consensus.raft");
  // `?` lists the shortcuts; Esc closes the list.
  await page.locator("body").press("?");
  await page.waitForSelector("#shortcuts[open]");
  assert.match(await page.textContent("#shortcuts"), /play \/ pause[\s\S]*next lesson step/);
  await page.keyboard.press("Escape");
  await page.waitForSelector("#shortcuts:not([open])", { state: "attached" });
  // Every control is reachable by Tab: the toolbar's buttons and the stage table's. The
  // sidebar's lab links come first, so the bound grows with the catalog.
  const wanted = ["play", "step", "speed", "share", "lesson-start"];
  const reached = new Set();
  for (let i = 0; i < 400 && !wanted.every((id) => reached.has(id)); i++) {
    await page.keyboard.press("Tab");
    reached.add(await page.evaluate(() => document.activeElement?.id || document.activeElement?.tagName));
  }
  for (const id of wanted) assert.ok(reached.has(id), `#${id} reachable by Tab: ${[...reached]}`);
  // The stage's text alternative: a row per node with its role and term, and a button
  // that inspects it.
  await page.click("#node-table-box summary");
  const rows = await page.$$eval("#node-table tbody tr", (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
  assert.equal(rows.length, 5);
  await page.click('#node-table button[aria-label="inspect n3"]');
  await page.waitForFunction(() => document.getElementById("inspector").textContent.includes("n3 · "));
  // A laptop's split screen: at 900 px the stage keeps a usable size and nothing
  // overflows sideways.
  await page.setViewportSize({ width: 900, height: 800 });
  await page.waitForTimeout(300);
  const stage = await page.locator("#stage").boundingBox();
  assert.ok(stage.width > 500 && stage.height > 300, `stage at 900 px: ${JSON.stringify(stage)}`);
  const overflow = await page.evaluate(() => document.querySelector("main").scrollWidth - document.querySelector("main").clientWidth);
  assert.ok(overflow <= 1, `no sideways scroll at 900 px (${overflow} px)`);
  await page.screenshot({ path: join(SHOTS, "narrow-900.png") });
  await page.close();
  noErrors();
});
