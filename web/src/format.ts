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

/**
 * A stable colour per name (role, message kind, state). Roles and states that must be
 * told apart are picked from Okabe and Ito's palette ("Color Universal Design", 2002),
 * which people with any of the common colour-vision deficiencies can tell apart; the
 * shapes and labels drawn with them (badges, ring order, ▲/△) carry the same meaning.
 */
const NAMED: Record<string, string> = {
  leader: "#f0b429", follower: "#56b4e9", candidate: "#cc79a7", node: "#56b4e9",
  client: "#9aa5b1", learner: "#009e73", primary: "#f0b429", replica: "#56b4e9",
  "non-member": "#9aa5b1", down: "#6e7681",
  ok: "#3fb950", allowed: "#3fb950", rejected: "#f85149", denied: "#f85149", fail: "#f85149",
  failed: "#f85149", pending: "#d29922", timeout: "#d29922", open: "#d29922", info: "#9aa5b1",
  "election timer": "#e5e5e5", "leader lease": "#e69f00",
  linearized: "#009e73", prefix: "#56b4e9", unplaceable: "#d55e00", omitted: "#6e7681",
  unreached: "#6e7681", undecided: "#cc79a7",
  // Epidemics (gossip) and membership (SWIM): what a node is, as the others see it.
  susceptible: "#56b4e9", infective: "#d55e00", removed: "#009e73",
  alive: "#3fb950", suspect: "#d29922", dead: "#6e7681",
};
const PALETTE = ["#56b4e9", "#e69f00", "#009e73", "#cc79a7", "#d55e00", "#f0e442", "#0072b2", "#a3e635"];

/** Okabe and Ito's eight colours (black swapped for a light grey on the dark page),
 * in an order where neighbours differ in lightness too: values such as terms take them
 * in turn, so consecutive terms never share a colour. */
const VALUE_COLOURS = ["#56b4e9", "#e69f00", "#009e73", "#f0e442", "#cc79a7", "#d55e00", "#c8c8c8", "#0072b2"];

/** The colour of a value (a term) in a log grid: consecutive values differ. */
export function valueColor(v: number): string {
  return VALUE_COLOURS[((v % VALUE_COLOURS.length) + VALUE_COLOURS.length) % VALUE_COLOURS.length] ?? "#56b4e9";
}

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
