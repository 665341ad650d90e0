// Browser e2e of the linearizability checker on the page (run by `cargo xtask test` after
// page.test.mjs, with the same DISTLAB_URL, DISTLAB_SCREENSHOTS and DISTLAB_CHROMIUM):
// Knossos / Jepsen EDN histories from tests/data/edn are pasted into sim.linearizability
// through the config form, and the verdict the page shows is the one reasoned out in each
// file's comments.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const URL_BASE = process.env.DISTLAB_URL ?? "http://127.0.0.1:8080/";
const SHOTS = process.env.DISTLAB_SCREENSHOTS ?? "screenshots";
const CHROMIUM = process.env.DISTLAB_CHROMIUM ?? "/usr/bin/chromium";
mkdirSync(SHOTS, { recursive: true });

let browser;
let context;
const errors = [];

before(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
  context = await browser.newContext();
});

after(async () => {
  await browser?.close();
});

const edn = (name) => readFileSync(new URL(`../data/edn/${name}`, import.meta.url), "utf8");

async function openChecker() {
  const page = await context.newPage();
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => errors.push(`page: ${e.message}`));
  await page.setViewportSize({ width: 1400, height: 900 });
  await page.goto(URL_BASE + "#lab=sim.linearizability");
  await page.waitForFunction(() => window.distlabPage?.ready === true && window.distlabPage.view()?.lab === "sim.linearizability");
  await page.evaluate(() => window.distlabPage.pause());
  return page;
}

/** Pastes `text` as `format` through the config form, with the given `nilRead` and
 * `initialValue` (null: nil), and applies it. */
async function paste(page, format, text, { nilRead = "absent", initialValue = null } = {}) {
  const set = '#config-form label:has(> span:text-is("history (set)")) input';
  if (!(await page.isChecked(set))) await page.check(set);
  await page.selectOption('[data-path="config.history.format"]', format);
  await page.fill('[data-path="config.history.text"]', text);
  await page.selectOption('[data-path="config.nilRead"]', nilRead);
  // A number that may be null: left empty, it is nil.
  await page.fill('[data-path="config.initialValue"]', initialValue === null ? "" : String(initialValue));
  await page.click('#config-form button[type="submit"]');
  await page.waitForFunction((text) => window.distlabPage.lab()?.config().history?.text === text, text);
  assert.equal(await page.isVisible("#error"), false, `no error shown: ${await page.textContent("#error").catch(() => "")}`);
  const config = await page.evaluate(() => window.distlabPage.lab().config());
  assert.equal(config.history.format, format);
  assert.equal(config.nilRead, nilRead);
  assert.equal(config.initialValue ?? null, initialValue);
}

/** The verdict text each page showed last. */
const lastVerdict = new WeakMap();

/** Reveals the whole pasted history, lets the page draw it, and returns the verdict
 * panel's text and the "history is linearizable" invariant. */
async function verdict(page) {
  // The previous verdict on this page stays drawn until the page redraws from the newly
  // configured lab: wait for a different text, not merely a finished one.
  const previous = lastVerdict.get(page) ?? null;
  await page.evaluate(() => {
    const lab = window.distlabPage.lab();
    while (lab.stepEvents(1000) > 0);
    window.distlabPage.play();
  });
  // The page redraws from the lab; wait for the text panel that carries the verdict on
  // the pasted history, every event of it revealed (not an earlier history's text).
  const finished = (t) => /LINEARIZABLE/.test(t) && /pasted as/.test(t) && /Revealed (\d+) of \1 events/.test(t);
  const done = `((t) => (${finished})(t) && t !== ${JSON.stringify(previous)})`;
  const verdictText = `[...document.querySelectorAll("#panels .panel-text pre")].map((p) => p.textContent)`;
  await page.waitForFunction(`${verdictText}.some(${done})`);
  const text = await page.evaluate(`${verdictText}.find(${done})`);
  lastVerdict.set(page, text);
  return {
    text,
    invariant: await page.evaluate(() => window.distlabPage.lab().view().invariants.find((i) => i.name === "history is linearizable")),
  };
}

test("a stale read pasted as Knossos EDN is shown NOT LINEARIZABLE", async () => {
  const page = await openChecker();
  await paste(page, "edn", edn("stale-read-bad.edn"));
  const { text, invariant } = await verdict(page);
  assert.match(text, /NOT LINEARIZABLE/, text);
  assert.match(text, /EDN register history/, text);
  assert.equal(invariant.ok, false, JSON.stringify(invariant));
  await page.screenshot({ path: join(SHOTS, "checker-edn-stale-read.png") });
  await page.close();
  assert.deepEqual(errors, [], "console or page errors");
});

test("a nil read is a violation or not as nilRead says", async () => {
  const page = await openChecker();
  await paste(page, "edn", edn("nil-read.edn"), { nilRead: "absent" });
  const absent = await verdict(page);
  assert.match(absent.text, /NOT LINEARIZABLE/, absent.text);
  await page.evaluate(() => window.distlabPage.pause());
  await paste(page, "edn", edn("nil-read.edn"), { nilRead: "unknown" });
  const unknown = await verdict(page);
  assert.doesNotMatch(unknown.text, /NOT LINEARIZABLE/, unknown.text);
  assert.match(unknown.text, /^LINEARIZABLE/m, unknown.text);
  assert.equal(unknown.invariant.ok, true, JSON.stringify(unknown.invariant));
  await page.screenshot({ path: join(SHOTS, "checker-edn-nil-read-unknown.png") });
  await page.close();
  assert.deepEqual(errors, [], "console or page errors");
});

test("multi-register histories: a torn read is NOT LINEARIZABLE, the good one is not", async () => {
  const page = await openChecker();
  await paste(page, "multiRegisterEdn", edn("multi-register-torn-read-bad.edn"), { initialValue: 0 });
  const torn = await verdict(page);
  assert.match(torn.text, /NOT LINEARIZABLE/, torn.text);
  assert.match(torn.text, /multi-register/, torn.text);
  assert.match(torn.text, /its read of y returns 0, but y holds 1/, torn.text);
  await page.screenshot({ path: join(SHOTS, "checker-multi-register-torn-read.png") });
  await page.evaluate(() => window.distlabPage.pause());
  await paste(page, "multiRegisterEdn", edn("multi-register-ok.edn"));
  const ok = await verdict(page);
  assert.match(ok.text, /^LINEARIZABLE/m, ok.text);
  assert.equal(ok.invariant.ok, true, JSON.stringify(ok.invariant));
  // A malformed paste names the line and column and leaves the lab as it was.
  const before = await page.evaluate(() => window.distlabPage.lab().config().history.text);
  const set = '#config-form label:has(> span:text-is("history (set)")) input';
  if (!(await page.isChecked(set))) await page.check(set);
  await page.selectOption('[data-path="config.history.format"]', "multiRegisterEdn");
  await page.fill('[data-path="config.history.text"]', "{:process 0, :type :invoke, :f :txn, :value [[:append :x 1]]}\n");
  await page.click('#config-form button[type="submit"]');
  await page.waitForFunction(() => document.getElementById("error")?.textContent.includes("line 1, column 47"));
  assert.equal(await page.evaluate(() => window.distlabPage.lab().config().history.text), before);
  await page.close();
  assert.deepEqual(errors, [], "console or page errors");
});
