// The space-time (Lamport) diagram of the trace: a lane per node (and per client), time
// flowing down, messages as arrows from send to delivery, faults marked. Only the visible
// time window is drawn (binary search into the time-ordered events), so a trace of
// 100,000 events stays responsive. Click an event to seek to it; wheel to zoom; drag to
// scroll; double-click to follow the present again.
import { colorFor, fitCanvas, fmtTime } from "./format";

interface Ep { type: "node" | "client"; id: number }
export interface TraceEvent {
  step: number;
  time: number;
  type: string;
  node?: number;
  client?: number;
  from?: Ep;
  to?: Ep;
  msg?: number;
  kind?: string;
}
export interface Trace { hash: string; events: number; complete: boolean; trace: TraceEvent[] }

const FAULT_COLORS: Record<string, string> = {
  crash: "#f85149", restart: "#3fb950", pause: "#d29922", resume: "#3fb950", fault: "#f78166",
  drop: "#f85149", duplicate: "#c084fc", invoke: "#9aa5b1", clientOk: "#3fb950",
  clientFail: "#f85149", clientTimeout: "#d29922", stateChange: "#f0b429",
};

export class SpaceTimeDiagram {
  private events: TraceEvent[] = [];
  private sendOf = new Map<number, number>();
  private doneAt = new Map<number, number>();
  private lanes = 1;
  private nodes = 1;
  private spanUs = 200_000;
  private endUs = 0;
  follow = true;
  private markers: { x: number; y: number; step: number }[] = [];
  private dragFrom: { y: number; end: number } | null = null;

  constructor(private canvas: HTMLCanvasElement, private onSeek: (step: number) => void) {
    canvas.addEventListener("wheel", (e) => {
      e.preventDefault();
      const f = Math.exp(e.deltaY * 0.002);
      this.spanUs = Math.min(1e10, Math.max(200, this.spanUs * f));
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

  private nowUs = 0;
  private lastNodes = 1;

  setTrace(trace: Trace, nodes: number): void {
    this.events = trace.trace;
    this.sendOf.clear();
    this.doneAt.clear();
    let clients = 0;
    this.events.forEach((e, i) => {
      if (e.type === "send" && e.msg !== undefined) this.sendOf.set(e.msg, i);
      if ((e.type === "deliver" || e.type === "drop") && e.msg !== undefined && !this.doneAt.has(e.msg)) {
        this.doneAt.set(e.msg, e.time);
      }
      for (const ep of [e.from, e.to]) if (ep?.type === "client") clients = Math.max(clients, ep.id + 1);
      if (e.client !== undefined) clients = Math.max(clients, e.client + 1);
    });
    this.nodes = Math.max(1, nodes);
    this.lanes = this.nodes + clients;
  }

  /** Redraws at the present time `nowUs` (the view's). */
  draw(nowUs: number, nodes: number): void {
    this.nowUs = nowUs;
    this.lastNodes = nodes;
    if (this.follow) this.endUs = Math.max(nowUs, this.spanUs * 0.9);
    this.redraw();
  }

  private laneOf(ep: Ep | undefined, node?: number): number | null {
    if (ep) return ep.type === "node" ? ep.id : this.nodes + ep.id;
    return node ?? null;
  }

  private redraw(): void {
    const ctx = fitCanvas(this.canvas);
    const w = this.canvas.clientWidth;
    const h = this.canvas.clientHeight;
    ctx.clearRect(0, 0, w, h);
    this.markers = [];
    const lanes = Math.max(this.lanes, this.lastNodes);
    const top = 18;
    const laneW = (w - 20) / Math.max(lanes, 1);
    const x = (lane: number): number => 10 + laneW * (lane + 0.5);
    const t1 = this.endUs;
    const t0 = t1 - this.spanUs;
    const y = (t: number): number => top + ((h - top - 12) * (t - t0)) / this.spanUs;
    // Lanes.
    ctx.font = "10px system-ui";
    ctx.textAlign = "center";
    for (let l = 0; l < lanes; l++) {
      ctx.strokeStyle = "#2a323c";
      ctx.beginPath();
      ctx.moveTo(x(l), top);
      ctx.lineTo(x(l), h - 10);
      ctx.stroke();
      if (laneW > 14 || l % Math.ceil(14 / laneW) === 0) {
        ctx.fillStyle = "#8a96a3";
        ctx.fillText(l < this.nodes ? `n${l}` : `c${l - this.nodes}`, x(l), 11);
      }
    }
    ctx.textAlign = "start";
    // The present.
    if (this.nowUs >= t0 && this.nowUs <= t1) {
      ctx.strokeStyle = "#5aa9ff88";
      ctx.beginPath();
      ctx.moveTo(0, y(this.nowUs));
      ctx.lineTo(w, y(this.nowUs));
      ctx.stroke();
    }
    ctx.fillStyle = "#8a96a3";
    ctx.fillText(`${fmtTime(Math.max(0, t0))} – ${fmtTime(t1)}${this.follow ? "" : " (dbl-click: follow)"}`, 4, h - 1);
    const ev = this.events;
    if (ev.length === 0) return;
    const i0 = lowerBound(ev, t0);
    const i1 = lowerBound(ev, t1 + 1);
    // Too many events in view: draw every k-th so a frame stays cheap.
    const stride = Math.max(1, Math.ceil((i1 - i0) / 20_000));
    ctx.lineWidth = 1;
    for (let i = i0; i < i1; i += stride) {
      const e = ev[i];
      if (!e) continue;
      const ey = y(e.time);
      if (e.type === "deliver" || e.type === "drop") {
        const to = this.laneOf(e.to);
        const sendIdx = e.msg === undefined ? undefined : this.sendOf.get(e.msg);
        const send = sendIdx === undefined ? undefined : ev[sendIdx];
        const from = this.laneOf(e.from);
        if (to === null || from === null) continue;
        const sy = send ? Math.max(top - 4, y(send.time)) : top;
        ctx.strokeStyle = e.type === "drop" ? "#f8514999" : colorFor(e.kind ?? "msg") + "aa";
        ctx.beginPath();
        ctx.moveTo(x(from), sy);
        const ex = e.type === "drop" ? x(from) + (x(to) - x(from)) * 0.6 : x(to);
        ctx.lineTo(ex, ey);
        ctx.stroke();
        if (e.type === "drop") {
          ctx.strokeStyle = "#f85149";
          ctx.beginPath();
          ctx.moveTo(ex - 3, ey - 3); ctx.lineTo(ex + 3, ey + 3);
          ctx.moveTo(ex + 3, ey - 3); ctx.lineTo(ex - 3, ey + 3);
          ctx.stroke();
        } else {
          ctx.fillStyle = colorFor(e.kind ?? "msg");
          ctx.fillRect(ex - 1.5, ey - 1.5, 3, 3);
        }
        this.markers.push({ x: ex, y: ey, step: e.step });
      } else if (e.type === "send") {
        // A send whose delivery is past the window: a stub towards its target.
        const from = this.laneOf(e.from);
        const to = this.laneOf(e.to);
        if (from === null) continue;
        ctx.fillStyle = colorFor(e.kind ?? "msg");
        ctx.fillRect(x(from) - 1.5, ey - 1.5, 3, 3);
        if (to !== null && !this.deliveredBy(e.msg, t1)) {
          ctx.strokeStyle = colorFor(e.kind ?? "msg") + "55";
          ctx.beginPath();
          ctx.moveTo(x(from), ey);
          ctx.lineTo(x(to), h - 10);
          ctx.stroke();
        }
        this.markers.push({ x: x(from), y: ey, step: e.step });
      } else {
        const lane = this.laneOf(undefined, e.node ?? (e.client !== undefined ? this.nodes + e.client : undefined));
        if (lane === null) continue;
        const c = FAULT_COLORS[e.type];
        if (!c) {
          // Timers, persists, logs: a faint tick.
          ctx.strokeStyle = "#3b4450";
          ctx.beginPath();
          ctx.moveTo(x(lane) - 3, ey);
          ctx.lineTo(x(lane) + 3, ey);
          ctx.stroke();
          continue;
        }
        ctx.fillStyle = c;
        ctx.beginPath();
        ctx.arc(x(lane), ey, e.type === "crash" || e.type === "restart" ? 5 : 3.5, 0, 2 * Math.PI);
        ctx.fill();
        if (e.type === "crash" || e.type === "restart" || e.type === "pause" || e.type === "resume") {
          ctx.fillText(e.type, x(lane) + 7, ey + 3);
        }
        this.markers.push({ x: x(lane), y: ey, step: e.step });
      }
    }
  }

  /** Whether message `msg` was delivered or dropped by time `t`. */
  private deliveredBy(msg: number | undefined, t: number): boolean {
    if (msg === undefined) return true;
    const done = this.doneAt.get(msg);
    return done !== undefined && done <= t;
  }
}

/** First index whose time is ≥ t. */
function lowerBound(ev: TraceEvent[], t: number): number {
  let lo = 0;
  let hi = ev.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((ev[mid]?.time ?? Infinity) < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
