// The space-time (Lamport) diagram of the trace: a lane per node (and per client), time
// flowing down, messages as arrows from send to delivery, faults marked. The trace comes
// as columns from a worker; only the visible time window is drawn (binary search into the
// time-ordered events, and at most 20,000 events per frame), so a trace of 100,000 events
// stays responsive. Click an event to seek to it; wheel to zoom; drag to scroll;
// double-click to follow the present again.
import { colorFor, fitCanvas, fmtTime } from "./format";
import type { TraceColumns } from "./trace.worker";

const MARK_COLORS: Partial<Record<string, string>> = {
  crash: "#f85149", restart: "#3fb950", pause: "#d29922", resume: "#3fb950", fault: "#f78166",
  duplicate: "#c084fc", invoke: "#9aa5b1", clientOk: "#3fb950", clientFail: "#f85149",
  clientTimeout: "#d29922", stateChange: "#f0b429",
};
const LABELLED_NAMES = ["crash", "restart", "pause", "resume"];

export class SpaceTimeDiagram {
  private t: TraceColumns | null = null;
  private spanUs = 200_000;
  private endUs = 0;
  private nowUs = 0;
  private nodes = 1;
  follow = true;
  private markers: { x: number; y: number; step: number }[] = [];
  private dragFrom: { y: number; end: number } | null = null;

  constructor(private canvas: HTMLCanvasElement, private onSeek: (step: number) => void) {
    canvas.addEventListener("wheel", (e) => {
      e.preventDefault();
      this.spanUs = Math.min(1e10, Math.max(200, this.spanUs * Math.exp(e.deltaY * 0.002)));
      this.redraw();
    }, { passive: false });
    canvas.addEventListener("mousedown", (e) => {
      this.dragFrom = { y: e.offsetY, end: this.endUs };
    });
    canvas.addEventListener("mousemove", (e) => {
      if (!this.dragFrom || Math.abs(e.offsetY - this.dragFrom.y) < 4) return;
      const perPx = this.spanUs / Math.max(1, this.canvas.clientHeight - 30);
      this.follow = false;
      this.endUs = Math.max(0, this.dragFrom.end - (e.offsetY - this.dragFrom.y) * perPx);
      this.redraw();
    });
    canvas.addEventListener("mouseup", (e) => {
      const moved = this.dragFrom && Math.abs(e.offsetY - this.dragFrom.y) >= 4;
      this.dragFrom = null;
      if (moved) return;
      let best: { d: number; step: number } | null = null;
      for (const m of this.markers) {
        const d = Math.hypot(m.x - e.offsetX, m.y - e.offsetY);
        if (d < 8 && (!best || d < best.d)) best = { d, step: m.step };
      }
      if (best) {
        this.follow = false;
        this.onSeek(best.step);
      }
    });
    canvas.addEventListener("dblclick", () => {
      this.follow = true;
      this.redraw();
    });
  }

  setTrace(t: TraceColumns | null): void {
    this.t = t;
    this.stale = true;
  }

  /** The picture is out of date (a new trace); otherwise `draw` redraws only when the
   * present time, the number of lanes or the canvas size changed. */
  private stale = true;
  private drawnSize = "";

  /** Redraws at the present time `nowUs` (the view's). */
  draw(nowUs: number, nodes: number): void {
    const size = `${this.canvas.clientWidth}x${this.canvas.clientHeight}`;
    if (!this.stale && nowUs === this.nowUs && nodes === this.nodes && size === this.drawnSize) return;
    // A costly picture (a big cluster's dense trace) follows the present at most every
    // twenty times its cost: 15 redraws a second when a redraw costs 3 ms.
    const t0 = performance.now();
    if (!this.stale && size === this.drawnSize && nodes === this.nodes && t0 - this.drawnAt < 20 * this.cost) return;
    this.stale = false;
    this.drawnSize = size;
    this.nowUs = nowUs;
    this.nodes = nodes;
    if (this.follow) this.endUs = this.tail() ? (this.tail()?.last ?? nowUs) : Math.max(nowUs, this.span() * 0.9);
    this.redraw();
    this.drawnAt = performance.now();
    this.cost = 0.7 * this.cost + 0.3 * (this.drawnAt - t0);
  }

  /** When the picture was last drawn by `draw`, and what a redraw costs (ms). */
  private drawnAt = -Infinity;
  private cost = 0;

  /**
   * A trace that holds only a lab's newest events (Raft hands out 400: a few milliseconds
   * of 51 busy nodes), while following the present: its first and last event times. The
   * picture then spans that stretch and ends at its last event (the worker that builds
   * the trace may lag the present on a big cluster), instead of showing a sliver of it
   * or nothing.
   */
  private tail(): { first: number; last: number } | null {
    const t = this.t;
    const first = t?.time[0];
    const last = t?.time[t.time.length - 1];
    if (!this.follow || !t || t.complete || first === undefined || last === undefined) return null;
    return { first, last };
  }

  /** The time the picture spans. */
  private span(): number {
    const tail = this.tail();
    return tail ? Math.min(this.spanUs, Math.max(200, (tail.last - tail.first) * 1.05)) : this.spanUs;
  }

  private redraw(): void {
    const ctx = fitCanvas(this.canvas);
    const w = this.canvas.clientWidth;
    const h = this.canvas.clientHeight;
    ctx.clearRect(0, 0, w, h);
    this.markers = [];
    const t = this.t;
    const nodes = t?.nodes ?? this.nodes;
    const lanes = Math.max(t?.lanes ?? 0, this.nodes, 1);
    const top = 18;
    const laneW = (w - 20) / lanes;
    const x = (lane: number): number => 10 + laneW * (lane + 0.5);
    const t1 = this.endUs;
    const span = this.span();
    const t0 = t1 - span;
    const y = (time: number): number => top + ((h - top - 12) * (time - t0)) / span;
    ctx.font = "10px system-ui";
    ctx.textAlign = "center";
    const every = Math.ceil(14 / laneW);
    // Lanes: one path for all of them (a thousand strokes cost on a big cluster), and at
    // most one every 3 px (a thousand lanes in 300 px are a grey wash otherwise, and
    // rasterising them cost more than the events).
    const laneStep = Math.max(1, Math.ceil(3 / laneW));
    ctx.strokeStyle = "#2a323c";
    ctx.beginPath();
    for (let l = 0; l < lanes; l += laneStep) {
      ctx.moveTo(x(l), top);
      ctx.lineTo(x(l), h - 10);
    }
    ctx.stroke();
    for (let l = 0; l < lanes; l++) {
      if (l % every === 0) {
        ctx.fillStyle = "#8a96a3";
        ctx.fillText(l < nodes ? `n${l}` : `c${l - nodes}`, x(l), 11);
      }
    }
    ctx.textAlign = "start";
    if (this.nowUs >= t0 && this.nowUs <= t1) {
      ctx.strokeStyle = "#5aa9ff88";
      ctx.beginPath();
      ctx.moveTo(0, y(this.nowUs));
      ctx.lineTo(w, y(this.nowUs));
      ctx.stroke();
    }
    ctx.fillStyle = "#8a96a3";
    ctx.fillText(`${fmtTime(Math.max(0, t0))} – ${fmtTime(t1)}${this.follow ? "" : " (dbl-click: follow)"}`, 4, h - 1);
    if (!t || t.time.length === 0) return;
    const K = { send: t.kinds.indexOf("send"), deliver: t.kinds.indexOf("deliver"), drop: t.kinds.indexOf("drop") };
    const LABELLED = new Set(LABELLED_NAMES.map((k) => t.kinds.indexOf(k)));
    const i0 = lowerBound(t.time, t0);
    const i1 = lowerBound(t.time, t1 + 1);
    // At most about 5,000 events per picture: a denser window (a big cluster's) is
    // sampled evenly, which looks the same at this size and costs a quarter.
    const stride = Math.max(1, Math.ceil((i1 - i0) / 5_000));
    const color = (i: number): string => colorFor(t.msgKinds[t.msgKind[i] ?? 0] ?? "msg");
    // Lines and dots are batched into one path per style (a stroke per event is what a
    // dense window cost); marks of faults and client outcomes are drawn last, on top.
    const strokes = new Map<string, Path2D>();
    const fills = new Map<string, Path2D>();
    const path = (m: Map<string, Path2D>, style: string): Path2D => {
      let p = m.get(style);
      if (!p) m.set(style, (p = new Path2D()));
      return p;
    };
    const marks: { x: number; y: number; c: string; kind: number }[] = [];
    for (let i = i0; i < i1; i += stride) {
      const kind = t.kind[i] ?? 0;
      const ey = y(t.time[i] ?? 0);
      const step = t.step[i] ?? 0;
      const from = t.from[i] ?? -1;
      const to = t.to[i] ?? -1;
      if (kind === K.deliver || kind === K.drop) {
        if (from < 0 || to < 0) continue;
        const s = t.sendIndex[i] ?? -1;
        const sy = s >= 0 ? Math.max(top - 4, y(t.time[s] ?? 0)) : top;
        const drop = kind === K.drop;
        const ex = drop ? x(from) + (x(to) - x(from)) * 0.6 : x(to);
        const line = path(strokes, drop ? "#f8514999" : `${color(i)}aa`);
        line.moveTo(x(from), sy);
        line.lineTo(ex, ey);
        if (drop) {
          const cross = path(strokes, "#f85149");
          cross.moveTo(ex - 3, ey - 3); cross.lineTo(ex + 3, ey + 3);
          cross.moveTo(ex + 3, ey - 3); cross.lineTo(ex - 3, ey + 3);
        } else {
          path(fills, color(i)).rect(ex - 1.5, ey - 1.5, 3, 3);
        }
        this.markers.push({ x: ex, y: ey, step });
      } else if (kind === K.send) {
        if (from < 0) continue;
        path(fills, color(i)).rect(x(from) - 1.5, ey - 1.5, 3, 3);
        const done = t.doneAt[i] ?? -1;
        if (to >= 0 && (done < 0 || done > t1)) {
          // Still in flight at the bottom of the window: a stub towards its target.
          const stub = path(strokes, `${color(i)}55`);
          stub.moveTo(x(from), ey);
          stub.lineTo(x(to), h - 10);
        }
        this.markers.push({ x: x(from), y: ey, step });
      } else {
        if (from < 0) continue;
        const c = MARK_COLORS[t.kinds[kind] ?? ""];
        if (!c) {
          // Timers, persists, logs: a faint tick.
          const tick = path(strokes, "#3b4450");
          tick.moveTo(x(from) - 3, ey);
          tick.lineTo(x(from) + 3, ey);
          continue;
        }
        marks.push({ x: x(from), y: ey, c, kind });
        this.markers.push({ x: x(from), y: ey, step });
      }
    }
    for (const [style, p] of strokes) {
      ctx.strokeStyle = style;
      ctx.stroke(p);
    }
    for (const [style, p] of fills) {
      ctx.fillStyle = style;
      ctx.fill(p);
    }
    for (const m of marks) {
      ctx.fillStyle = m.c;
      ctx.beginPath();
      ctx.arc(m.x, m.y, LABELLED.has(m.kind) ? 5 : 3.5, 0, 2 * Math.PI);
      ctx.fill();
      if (LABELLED.has(m.kind)) ctx.fillText(t.kinds[m.kind] ?? "", m.x + 7, m.y + 3);
    }
  }
}

/** First index whose time is ≥ t. */
function lowerBound(time: Float64Array, t: number): number {
  let lo = 0;
  let hi = time.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((time[mid] ?? Infinity) < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
