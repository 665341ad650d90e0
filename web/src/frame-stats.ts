// What frames cost, for the benchmark hook (`distlabPage.frameStats`): the work of each
// frame, the time between frames (what the eye sees: that work plus the browser's own
// style, layout and rasterising), and each named part of a frame.

/** Enough frames for ten seconds at 60 fps; older ones are dropped. */
const KEEP = 600;

const costs = {
  frames: [] as number[],
  intervals: [] as number[],
  parts: {} as Record<string, number[]>,
};

function keep(xs: number[], x: number): void {
  xs.push(x);
  if (xs.length > KEEP) xs.shift();
}

/** Runs `f`, recording its cost as `part` of this frame. */
export function timed<T>(part: string, f: () => T): T {
  const t0 = performance.now();
  const v = f();
  keep((costs.parts[part] ??= []), performance.now() - t0);
  return v;
}

/** The work of one frame, ms. */
export function recordFrame(ms: number): void {
  keep(costs.frames, ms);
}

/** Time since the previous frame, ms. */
export function recordInterval(ms: number): void {
  keep(costs.intervals, ms);
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? 0;
}

function summary(xs: number[]): { p50: number; p95: number; max: number } {
  return { p50: percentile(xs, 0.5), p95: percentile(xs, 0.95), max: percentile(xs, 1) };
}

export interface FrameStats {
  frames: number; p50: number; p95: number; max: number;
  interval: { p50: number; p95: number; max: number };
  /** Simulated ms per wall ms while playing, since the last reset. */
  achievedSpeed: number;
  parts: Record<string, { p50: number; p95: number; max: number }>;
}

/** The costs recorded since the last reset; `achievedSpeed` is the playback's. */
export function frameStats(achievedSpeed: number): FrameStats {
  return {
    frames: costs.frames.length,
    ...summary(costs.frames),
    interval: summary(costs.intervals),
    achievedSpeed,
    parts: Object.fromEntries(Object.entries(costs.parts).map(([k, xs]) => [k, summary(xs)])),
  };
}

export function resetFrameStats(): void {
  costs.frames = [];
  costs.intervals = [];
  costs.parts = {};
}
