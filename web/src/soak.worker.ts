// Many-seed soaks off the main thread: each seed's lab runs for the given simulated time
// with invariants checked every 100 ms; progress and violations are posted back.
import init, { createLab, type LabConfig, type LabId } from "distlab";

export interface SoakRequest { lab: string; config: Record<string, unknown>; seeds: number; firstSeed: number; durationMs: number }
export type SoakMessage =
  | { type: "progress"; done: number; total: number }
  | { type: "violation"; seed: number; step: number; invariant: string; detail: string }
  | { type: "done"; seeds: number; events: number; ms: number }
  | { type: "error"; message: string };

const post = (m: SoakMessage): void => (self as unknown as Worker).postMessage(m);

self.onmessage = async (e: MessageEvent<SoakRequest>) => {
  const req = e.data;
  try {
    await init();
    const started = performance.now();
    let events = 0;
    for (let i = 0; i < req.seeds; i++) {
      const seed = req.firstSeed + i;
      const lab = createLab(req.lab as LabId, { ...req.config, seed } as LabConfig);
      try {
        for (let t = 0; t < req.durationMs; t += 100) {
          events += lab.step(100);
          const bad = lab.view({ fieldsOf: [] }).invariants.find((x) => !x.ok);
          if (bad) {
            post({ type: "violation", seed, step: lab.steps, invariant: bad.name, detail: bad.detail });
            break;
          }
        }
      } finally {
        lab.free();
      }
      post({ type: "progress", done: i + 1, total: req.seeds });
    }
    post({ type: "done", seeds: req.seeds, events, ms: performance.now() - started });
  } catch (err) {
    post({ type: "error", message: err instanceof Error ? err.message : String(err) });
  }
};
