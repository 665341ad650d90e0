// Small formatting helpers shared by the renderers.

export function fmtNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 1000) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  return v.toPrecision(3);
}

export function fmtValue(v: unknown): string {
  if (v === null || v === undefined) return "–";
  if (typeof v === "number") return fmtNumber(v);
  if (typeof v === "string") return v;
  if (typeof v === "boolean") return v ? "yes" : "no";
  return JSON.stringify(v);
}

export function fmtTime(us: number): string {
  const ms = us / 1000;
  if (ms < 10_000) return `${ms.toFixed(1)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

/** A speed factor: `0.10×`, `2.5×`, `40×`. */
export function fmtSpeed(x: number): string {
  return `${x < 1 ? x.toPrecision(2) : x.toFixed(x < 10 ? 1 : 0)}×`;
}

/** A stable colour per name (role, message kind, state). */
const NAMED: Record<string, string> = {
  leader: "#f0b429", follower: "#5aa9ff", candidate: "#c084fc", node: "#5aa9ff",
  client: "#9aa5b1", learner: "#2dd4bf", primary: "#f0b429", replica: "#5aa9ff",
  ok: "#3fb950", allowed: "#3fb950", rejected: "#f85149", denied: "#f85149", fail: "#f85149",
  failed: "#f85149", pending: "#d29922", timeout: "#d29922", open: "#d29922", info: "#9aa5b1",
};
const PALETTE = ["#5aa9ff", "#f0b429", "#3fb950", "#c084fc", "#f78166", "#2dd4bf", "#e879f9", "#a3e635"];

export function colorFor(name: string): string {
  const known = NAMED[name.toLowerCase()];
  if (known) return known;
  let h = 0;
  for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
  return PALETTE[h % PALETTE.length] ?? "#5aa9ff";
}

/** Canvas sized to its CSS box at the device pixel ratio; returns the 2D context. */
export function fitCanvas(canvas: HTMLCanvasElement): CanvasRenderingContext2D {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(canvas.clientWidth * dpr));
  const h = Math.max(1, Math.round(canvas.clientHeight * dpr));
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  const ctx = canvas.getContext("2d");
  if (!ctx) throw new Error("no 2D canvas context");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return ctx;
}
