// Frame times of the built page in headless Chromium, scene by scene, with the page's
// per-part timers: `node frame-bench.mjs [scene...]` against DISTLAB_URL. The browser e2e
// measures the same scenes (test "frame time ..."); this script is for profiling.
import { loadavg } from "node:os";
import { chromium } from "playwright-core";

const URL_BASE = process.env.DISTLAB_URL ?? "http://127.0.0.1:8080/";
const CHROMIUM = process.env.DISTLAB_CHROMIUM ?? "/usr/bin/chromium";

export const SCENES = {
  net5: { lab: "sim.network", config: {}, speed: 0.1 },
  net64: { lab: "sim.network", config: { nodes: 64, intervalMs: 20, network: { loss: 0.05, duplicate: 0.05 } }, speed: 1 },
  net1000: { lab: "sim.network", config: { nodes: 1000, intervalMs: 20, network: { loss: 0.05, duplicate: 0.05 } }, speed: 1 },
  raft51: {
    lab: "consensus.raft",
    config: { nodes: 51, workload: { clients: 32, thinkMs: 5, keys: 16 }, network: { loss: 0.05, duplicate: 0.05 } },
    speed: 1,
  },
};

/** Plays `scene` for `warmMs`, then measures `measureMs`; returns the page's frame stats. */
export async function measureScene(page, scene, warmMs = 1000, measureMs = 4000) {
  await page.evaluate(([lab, config, speed]) => {
    window.distlabPage.open(lab, config);
    const s = document.getElementById("speed");
    s.value = String(Math.log10(speed));
    s.dispatchEvent(new Event("input"));
    window.distlabPage.play();
  }, [scene.lab, scene.config, scene.speed]);
  await page.waitForTimeout(warmMs);
  await page.evaluate(() => window.distlabPage.resetFrames());
  const loadBefore = loadavg()[0];
  await page.waitForTimeout(measureMs);
  // The machine's 1-minute load average around the measurement: on a shared machine the
  // frame times move with it.
  const load = [loadBefore, loadavg()[0]].map((x) => Math.round(x * 100) / 100);
  const stats = await page.evaluate(() => window.distlabPage.frameStats());
  const view = await page.evaluate(() => {
    const lab = window.distlabPage.lab();
    const time = (f) => {
      const t0 = performance.now();
      for (let i = 0; i < 20; i++) f();
      return (performance.now() - t0) / 20;
    };
    return { wholeMs: time(() => lab.view()), pageMs: time(() => lab.view({ fieldsOf: [] })) };
  });
  return { ...stats, view, load, playing: await page.evaluate(() => window.distlabPage.playing()) };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const names = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(SCENES);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu"] });
  const page = await browser.newPage();
  page.on("console", (m) => m.type() === "error" && console.log("console error:", m.text()));
  page.on("pageerror", (e) => console.log("page error:", e.message));
  await page.setViewportSize({ width: 1400, height: 900 });
  await page.goto(URL_BASE + "#lab=sim.network");
  await page.waitForFunction(() => window.distlabPage?.ready === true && window.distlabPage.view() !== null);
  for (const name of names) {
    const r = await measureScene(page, SCENES[name]);
    const f = (x) => x.toFixed(1);
    console.log(`${name}: ${r.frames} frames, work p50 ${f(r.p50)} p95 ${f(r.p95)} max ${f(r.max)}, interval p50 ${f(r.interval.p50)} p95 ${f(r.interval.p95)}, sim speed ${r.achievedSpeed === undefined ? "?" : r.achievedSpeed.toFixed(2)}×, view() whole ${f(r.view.wholeMs)} asked ${f(r.view.pageMs)}${r.playing ? "" : " (PAUSED)"}, load ${r.load.join("→")}`);
    for (const [k, v] of Object.entries(r.parts)) console.log(`   ${k.padEnd(10)} p50 ${f(v.p50)} p95 ${f(v.p95)} max ${f(v.max)}`);
  }
  await browser.close();
}
