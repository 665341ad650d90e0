// Generic panel renderers, chosen by each panel's `type`: tables (DOM), charts (uPlot),
// bars, grids, strips, timelines, rings and log grids (Canvas 2D), text. The lab's metrics series become
// uPlot charts, one per unit. Panels keep their DOM and chart instances between frames.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { Panel, Series, StripItem, TimelineBar, Cell, RingArc, RingPoint, LogRow } from "distlab";
import { colorFor, fitCanvas, fmtNumber, fmtValue, valueColor } from "./format";

interface Slot {
  el: HTMLElement;
  kind: string;
  chart?: uPlot;
  chartKey?: string;
  canvas?: HTMLCanvasElement;
  body?: HTMLElement;
}

type Drawable =
  | Panel
  | { type: "metrics"; title: string; series: Series[] };

export class PanelsRenderer {
  private slots = new Map<string, Slot>();

  constructor(private root: HTMLElement) {}

  clear(): void {
    for (const s of this.slots.values()) s.chart?.destroy();
    this.slots.clear();
    this.root.replaceChildren();
  }

  private cursor = 0;

  /**
   * Draws the panels. With `budget`, only that many panels are redrawn (round robin), so
   * a frame never pays for all of them at once; new panels are always drawn.
   */
  render(panels: Panel[], metrics: Series[], budget = Infinity): void {
    // Log grids first, under the stage: they are the picture of a replicated log.
    const items: Drawable[] = panels.filter((p) => p.type === "logGrid");
    // Metrics: one chart per unit, so each has a meaningful axis.
    const byUnit = new Map<string, Series[]>();
    for (const s of metrics) byUnit.set(s.unit, [...(byUnit.get(s.unit) ?? []), s]);
    for (const [unit, series] of byUnit) items.push({ type: "metrics", title: `${series.map((s) => s.name).join(", ")} (${unit})`, series });
    items.push(...panels.filter((p) => p.type !== "logGrid"));
    const live = new Set<string>();
    const n = items.length;
    const start = n === 0 ? 0 : this.cursor % n;
    items.forEach((p, i) => {
      // A panel keeps its slot while its title changes (a history's title carries the
      // tick): its canvas and chart stay, and only the heading is rewritten.
      const key = `${i}:${p.type}`;
      live.add(key);
      let slot = this.slots.get(key);
      let fresh = false;
      if (!slot) {
        slot = this.makeSlot(p);
        this.slots.set(key, slot);
        fresh = true;
      }
      const heading = slot.el.firstElementChild;
      if (heading && heading.textContent !== p.title) heading.textContent = p.title;
      if (this.root.children[i] !== slot.el) this.root.insertBefore(slot.el, this.root.children[i] ?? null);
      const turn = (i - start + n) % n < budget;
      if (fresh || turn) this.update(slot, p);
    });
    this.cursor = start + Math.min(budget, n);
    for (const [key, slot] of this.slots) {
      if (!live.has(key)) {
        slot.chart?.destroy();
        slot.el.remove();
        this.slots.delete(key);
      }
    }
  }

  private makeSlot(p: Drawable): Slot {
    const el = document.createElement("div");
    el.className = `panel panel-${p.type}`;
    const h = document.createElement("h4");
    h.textContent = p.title;
    el.append(h);
    const slot: Slot = { el, kind: p.type };
    if (p.type === "table" || p.type === "text") {
      slot.body = document.createElement("div");
      slot.body.className = "scroll";
      // A region that scrolls is reachable by keyboard, named by its panel.
      slot.body.tabIndex = 0;
      slot.body.setAttribute("role", "region");
      slot.body.setAttribute("aria-label", p.title);
      el.append(slot.body);
    } else if (p.type === "bars" || p.type === "grid" || p.type === "strip" || p.type === "timeline" || p.type === "ring" || p.type === "logGrid") {
      slot.canvas = document.createElement("canvas");
      el.append(slot.canvas);
    } else {
      slot.body = document.createElement("div");
      el.append(slot.body);
    }
    return slot;
  }

  private update(slot: Slot, p: Drawable): void {
    switch (p.type) {
      case "table":
        renderTable(slot, p.columns, p.rows);
        break;
      case "text": {
        const pre = slot.body?.firstElementChild ?? document.createElement("pre");
        if (!pre.parentElement) slot.body?.append(pre);
        if (pre.textContent !== p.body) pre.textContent = p.body;
        break;
      }
      case "chart":
        renderChart(slot, p.series, p.xLabel);
        break;
      case "metrics":
        renderChart(slot, p.series, "simulated ms");
        break;
      case "bars":
        if (slot.canvas) drawBars(slot.canvas, p.labels, p.series);
        break;
      case "grid":
        if (slot.canvas) drawGrid(slot.canvas, p.columns, p.cells);
        break;
      case "strip":
        if (slot.canvas) drawStrip(slot.canvas, p.items);
        break;
      case "timeline":
        if (slot.canvas) drawTimeline(slot.canvas, p.lanes, p.bars);
        break;
      case "ring":
        if (slot.canvas) drawRing(slot.canvas, p.points, p.arcs);
        break;
      case "logGrid":
        if (slot.canvas) drawLogGrid(slot.canvas, p.firstIndex, p.columns, p.rows);
        break;
    }
  }
}

function renderTable(slot: Slot, columns: string[], rows: unknown[][]): void {
  const body = slot.body;
  if (!body) return;
  const shown = rows.slice(0, 200);
  let table = body.querySelector("table");
  if (!table) {
    table = document.createElement("table");
    body.append(table);
  }
  const head = `<tr>${columns.map((c) => `<th>${esc(c)}</th>`).join("")}</tr>`;
  const html =
    `<thead>${head}</thead><tbody>` +
    shown.map((r) => `<tr>${r.map((v) => `<td>${esc(fmtValue(v))}</td>`).join("")}</tr>`).join("") +
    `</tbody>` +
    (rows.length > shown.length ? `<caption>${rows.length - shown.length} more rows</caption>` : "");
  if (table.dataset["html"] !== html) {
    table.innerHTML = html;
    table.dataset["html"] = html;
  }
}

function esc(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c] ?? c);
}

function renderChart(slot: Slot, series: Series[], xLabel: string): void {
  const body = slot.body;
  if (!body) return;
  const key = series.map((s) => s.name).join("|");
  const data = uPlot.join(series.map((s) => [s.x, s.y] as uPlot.AlignedData)) as uPlot.AlignedData;
  const width = Math.max(200, body.clientWidth || 340);
  if (!slot.chart || slot.chartKey !== key) {
    slot.chart?.destroy();
    body.replaceChildren();
    slot.chartKey = key;
    slot.chart = new uPlot(
      {
        width,
        height: 150,
        legend: { show: true },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: false } },
        axes: [
          { label: xLabel, stroke: "#8a96a3", grid: { stroke: "#222a33" }, ticks: { stroke: "#222a33" }, labelSize: 14, size: 36 },
          { stroke: "#8a96a3", grid: { stroke: "#222a33" }, ticks: { stroke: "#222a33" }, size: 44 },
        ],
        series: [
          { label: "x" },
          ...series.map((s) => ({ label: s.name, stroke: colorFor(s.name), width: 1.5, points: { show: false } })),
        ],
      },
      data,
      body,
    );
  } else {
    if (Math.abs(slot.chart.width - width) > 4) slot.chart.setSize({ width, height: 150 });
    slot.chart.setData(data);
  }
}

function drawBars(canvas: HTMLCanvasElement, labels: string[], series: Series[]): void {
  const ctx = fitCanvas(canvas);
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  ctx.clearRect(0, 0, w, h);
  const max = Math.max(1e-9, ...series.flatMap((s) => s.y));
  const n = labels.length || Math.max(0, ...series.map((s) => s.y.length));
  const gw = (w - 10) / Math.max(n, 1);
  const bw = Math.max(1, (gw - 4) / Math.max(series.length, 1));
  series.forEach((s, j) => {
    ctx.fillStyle = colorFor(s.name);
    s.y.forEach((v, i) => {
      const bh = ((h - 30) * v) / max;
      ctx.fillRect(5 + i * gw + j * bw, h - 16 - bh, bw - 1, bh);
    });
  });
  ctx.fillStyle = "#8a96a3";
  ctx.font = "10px system-ui";
  if (gw > 18) labels.forEach((l, i) => ctx.fillText(l.slice(0, Math.floor(gw / 6)), 5 + i * gw, h - 4));
  ctx.fillText(fmtNumber(max), 5, 10);
  let lx = w - 8;
  ctx.textAlign = "right";
  for (const s of series) {
    ctx.fillStyle = colorFor(s.name);
    ctx.fillText(s.name, lx, 10);
    lx -= ctx.measureText(s.name).width + 10;
  }
  ctx.textAlign = "start";
}

function drawGrid(canvas: HTMLCanvasElement, columns: number, cells: Cell[]): void {
  const ctx = fitCanvas(canvas);
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  ctx.clearRect(0, 0, w, h);
  const cols = Math.max(1, columns);
  const rows = Math.max(1, Math.ceil(cells.length / cols));
  const size = Math.min((w - 4) / cols, (h - 4) / rows);
  const max = Math.max(1e-9, ...cells.map((c) => Math.abs(c.value)));
  ctx.font = `${Math.max(8, Math.min(12, size / 3))}px system-ui`;
  cells.forEach((c, i) => {
    const x = 2 + (i % cols) * size;
    const y = 2 + Math.floor(i / cols) * size;
    const t = Math.abs(c.value) / max;
    ctx.fillStyle = `rgba(90,169,255,${0.08 + 0.85 * t})`;
    ctx.fillRect(x, y, size - 1, size - 1);
    if (size > 22 && c.label) {
      ctx.fillStyle = "#d7dde4";
      ctx.fillText(c.label.slice(0, Math.floor(size / 6)), x + 3, y + size / 2 + 3);
    }
  });
}

function drawStrip(canvas: HTMLCanvasElement, items: StripItem[]): void {
  const ctx = fitCanvas(canvas);
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  ctx.clearRect(0, 0, w, h);
  const per = Math.max(1, Math.floor((w - 4) / 26));
  const rows = Math.max(1, Math.ceil(items.length / per));
  const size = Math.min(24, (h - 4) / rows, (w - 4) / Math.min(per, Math.max(items.length, 1)));
  ctx.font = "10px system-ui";
  items.forEach((it, i) => {
    const x = 2 + (i % per) * (size + 2);
    const y = 2 + Math.floor(i / per) * (size + 2);
    ctx.fillStyle = colorFor(it.state);
    ctx.fillRect(x, y, size, size);
    if (size >= 18) {
      ctx.fillStyle = "#0f1419";
      ctx.fillText(it.label.slice(0, 3), x + 2, y + size / 2 + 3);
    }
  });
}

/**
 * Where each ordered bar's operation takes effect: an instant inside its bar, later than
 * the one before it in the order (the witness a checker found). Only for one order (the
 * bars' `order`s distinct): each part of a split history has its own.
 */
export function linearizationPoints(bars: TimelineBar[]): Map<TimelineBar, number> {
  const ordered = bars.filter((b) => b.order !== null).sort((a, b) => (a.order ?? 0) - (b.order ?? 0));
  const points = new Map<TimelineBar, number>();
  if (new Set(ordered.map((b) => b.order)).size !== ordered.length) return points;
  let last = -Infinity;
  for (const b of ordered) {
    const end = b.end ?? Infinity;
    // Just after the previous point, or the bar's start: a little inside, for the eye.
    const at = Math.max(b.start, last);
    if (at > end) return new Map();
    points.set(b, at);
    last = at;
  }
  return points;
}

function drawTimeline(canvas: HTMLCanvasElement, lanes: string[], bars: TimelineBar[]): void {
  const ctx = fitCanvas(canvas);
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  ctx.clearRect(0, 0, w, h);
  if (bars.length === 0) return;
  const t0 = Math.min(...bars.map((b) => b.start));
  const t1 = Math.max(...bars.map((b) => b.end ?? b.start), t0 + 1e-9);
  const left = 60;
  const laneH = Math.max(6, Math.min(34, (h - 30) / Math.max(lanes.length, 1)));
  const x = (t: number): number => left + ((w - left - 6) * (t - t0)) / (t1 - t0);
  ctx.font = "10px system-ui";
  lanes.forEach((l, i) => {
    ctx.fillStyle = "#8a96a3";
    ctx.fillText(l.slice(0, 9), 2, 4 + i * laneH + laneH / 2 + 3);
  });
  for (const b of bars) {
    const y = 4 + b.lane * laneH;
    const xe = b.end === null ? w - 6 : x(b.end);
    ctx.fillStyle = colorFor(b.state);
    ctx.globalAlpha = b.end === null ? 0.45 : 0.9;
    ctx.fillRect(x(b.start), y, Math.max(2, xe - x(b.start)), laneH - 4);
    ctx.globalAlpha = 1;
    if (b.state === "unplaceable") {
      // The operations none of which can go next: outlined, and said so.
      ctx.strokeStyle = "#ffffff";
      ctx.lineWidth = 2;
      ctx.strokeRect(x(b.start) - 1, y - 1, Math.max(2, xe - x(b.start)) + 2, laneH - 2);
      ctx.lineWidth = 1;
    }
    if (xe - x(b.start) > 30) {
      ctx.fillStyle = "#0f1419";
      const text = b.order === null ? b.label : `${b.label} #${b.order}`;
      ctx.fillText(b.state === "unplaceable" ? `${text} ✗ cannot be placed` : text, x(b.start) + 2, y + laneH / 2 + 1);
    }
  }
  // Linearization points: a tick where each operation of the witness takes effect,
  // joined in order.
  const points = linearizationPoints(bars);
  if (points.size > 0) {
    ctx.strokeStyle = "#ffffffaa";
    ctx.beginPath();
    let first = true;
    for (const [b, t] of points) {
      const px = x(t) + 1;
      const py = 4 + b.lane * laneH + (laneH - 4) / 2;
      if (first) ctx.moveTo(px, py);
      else ctx.lineTo(px, py);
      first = false;
    }
    ctx.stroke();
    ctx.fillStyle = "#ffffff";
    for (const [b, t] of points) {
      const py = 4 + b.lane * laneH;
      ctx.fillRect(x(t), py - 2, 2, laneH);
    }
  }
  ctx.fillStyle = "#8a96a3";
  ctx.fillText("bar: call → return · white tick: where it takes effect (witness order) · outlined: cannot be placed", 4, h - 4);
}

/** Where position `p` in [0, 1) lies on a circle: 0 at the top, clockwise. */
export function ringPoint(cx: number, cy: number, r: number, p: number): { x: number; y: number } {
  const a = -Math.PI / 2 + 2 * Math.PI * p;
  return { x: cx + r * Math.cos(a), y: cy + r * Math.sin(a) };
}

/** The circle a ring panel is drawn on, in CSS pixels of its canvas. */
export function ringGeometry(w: number, h: number): { cx: number; cy: number; r: number } {
  return { cx: w / 2, cy: h / 2, r: Math.max(10, Math.min(w, h) / 2 - 24) };
}

/**
 * A ring: owned ranges as thick arcs just outside the circle, nodes as dots on it, keys as
 * ticks inside it, each coloured by its owner; labels when there is room. Points and arcs
 * of one owner are batched into one path each.
 */
export function drawRing(canvas: HTMLCanvasElement, points: RingPoint[], arcs: RingArc[]): void {
  const ctx = fitCanvas(canvas);
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  ctx.clearRect(0, 0, w, h);
  const { cx, cy, r } = ringGeometry(w, h);
  ctx.strokeStyle = "#2a323c";
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.arc(cx, cy, r, 0, 2 * Math.PI);
  ctx.stroke();
  const frac = (p: number): number => (Number.isFinite(p) ? p - Math.floor(p) : 0);
  const owners: string[] = [];
  const note = (o: string): void => {
    if (!owners.includes(o)) owners.push(o);
  };
  arcs.forEach((a) => note(a.owner));
  points.forEach((p) => note(p.owner));
  ctx.lineWidth = 6;
  for (const owner of owners) {
    ctx.strokeStyle = colorFor(owner);
    ctx.globalAlpha = 0.55;
    ctx.beginPath();
    for (const a of arcs) {
      if (a.owner !== owner) continue;
      const s = frac(a.start);
      let e = frac(a.end);
      if (e <= s) e += 1; // wraps past 0; equal ends: the whole ring
      const a0 = -Math.PI / 2 + 2 * Math.PI * s;
      ctx.moveTo(cx + (r + 7) * Math.cos(a0), cy + (r + 7) * Math.sin(a0));
      ctx.arc(cx, cy, r + 7, a0, -Math.PI / 2 + 2 * Math.PI * e);
    }
    ctx.stroke();
  }
  ctx.globalAlpha = 1;
  ctx.lineWidth = 2;
  const dot = Math.max(2.5, Math.min(6, (Math.PI * r) / Math.max(points.length, 1) - 1));
  for (const owner of owners) {
    ctx.fillStyle = colorFor(owner);
    ctx.strokeStyle = colorFor(owner);
    const dots = new Path2D();
    const ticks = new Path2D();
    for (const p of points) {
      if (p.owner !== owner) continue;
      const at = frac(p.position);
      if (p.kind === "node") {
        const q = ringPoint(cx, cy, r, at);
        dots.moveTo(q.x + dot, q.y);
        dots.arc(q.x, q.y, dot, 0, 2 * Math.PI);
      } else {
        const q0 = ringPoint(cx, cy, r - 4, at);
        const q1 = ringPoint(cx, cy, r - 12, at);
        ticks.moveTo(q0.x, q0.y);
        ticks.lineTo(q1.x, q1.y);
      }
    }
    ctx.fill(dots);
    ctx.stroke(ticks);
  }
  ctx.lineWidth = 1;
  if (points.length <= 48) {
    ctx.font = "10px system-ui";
    ctx.fillStyle = "#d7dde4";
    for (const p of points) {
      if (p.kind !== "node") continue;
      const at = frac(p.position);
      const q = ringPoint(cx, cy, r + 18, at);
      ctx.textAlign = q.x < cx - 4 ? "right" : q.x > cx + 4 ? "left" : "center";
      ctx.fillText(p.label, q.x, q.y + 3);
    }
    ctx.textAlign = "start";
  }
}

/** Where the log grid's parts are, in CSS pixels: a label column, then a column per
 * index from `first`; a header row of indices, then a row per node. */
export function logGridGeometry(w: number, columns: number): { left: number; top: number; cell: number } {
  const left = 52;
  return { left, top: 16, cell: Math.max(10, Math.min(30, (w - left - 6) / Math.max(1, columns))) };
}

const MARKER_NOTE = "▏commit  ┆ snapshot  ▲ match  △ next (the leader's, per follower)  faded: not committed yet";

/**
 * Replicated logs side by side (RaftScope's picture): a row per node, a column per index,
 * each entry coloured and labelled by its term (faded until this node knows it
 * committed); a bar after the commit index, a dashed one at the snapshot boundary, a
 * thin line under the applied entries, and the leader's match (▲) and next (△) index
 * for each follower.
 */
export function drawLogGrid(canvas: HTMLCanvasElement, first: number, columns: number, rows: LogRow[]): void {
  const w = canvas.clientWidth;
  const { left, top, cell } = logGridGeometry(w, columns);
  const rowH = cell + 8;
  const needed = top + rows.length * rowH + 18;
  if (canvas.style.height !== `${needed}px`) canvas.style.height = `${needed}px`;
  const ctx = fitCanvas(canvas);
  const h = canvas.clientHeight;
  ctx.clearRect(0, 0, w, h);
  const x = (index: number): number => left + (index - first) * cell;
  ctx.font = "10px system-ui";
  ctx.fillStyle = "#8a96a3";
  ctx.textAlign = "center";
  for (let c = 0; c < columns; c++) if (cell >= 18 || c % 2 === 0) ctx.fillText(String(first + c), x(first + c) + cell / 2, 11);
  rows.forEach((row, i) => {
    const y = top + i * rowH;
    ctx.textAlign = "start";
    ctx.fillStyle = colorFor(row.role);
    ctx.beginPath();
    ctx.arc(6, y + cell / 2, 4, 0, 2 * Math.PI);
    ctx.fill();
    ctx.fillStyle = "#d7dde4";
    ctx.fillText(row.label, 14, y + cell / 2 + 4);
    ctx.strokeStyle = "#2a323c";
    ctx.strokeRect(left, y, columns * cell, cell);
    ctx.textAlign = "center";
    for (const c of row.cells) {
      if (c.index < first || c.index >= first + columns) continue;
      ctx.globalAlpha = c.committed ? 1 : 0.45;
      ctx.fillStyle = valueColor(c.value);
      ctx.fillRect(x(c.index) + 1, y + 1, cell - 2, cell - 2);
      ctx.globalAlpha = 1;
      if (cell >= 14) {
        ctx.fillStyle = "#0f1419";
        ctx.font = `600 ${Math.min(12, cell * 0.45)}px system-ui`;
        ctx.fillText(c.label, x(c.index) + cell / 2, y + cell / 2 + 4);
        ctx.font = "10px system-ui";
      }
    }
    const inView = (index: number): boolean => index >= first - 1 && index < first + columns;
    for (const m of row.markers) {
      if (!inView(m.index)) continue;
      const after = x(m.index) + cell;
      if (m.kind === "commit") {
        ctx.fillStyle = "#ffffff";
        ctx.fillRect(after - 1.5, y - 3, 3, cell + 6);
      } else if (m.kind === "snapshot") {
        ctx.strokeStyle = "#9aa5b1";
        ctx.setLineDash([3, 3]);
        ctx.beginPath();
        ctx.moveTo(after, y - 3);
        ctx.lineTo(after, y + cell + 3);
        ctx.stroke();
        ctx.setLineDash([]);
      } else if (m.kind === "applied" && m.index >= first) {
        ctx.fillStyle = "#d7dde4";
        ctx.fillRect(left, y + cell + 1, after - left, 1.5);
      } else if ((m.kind === "match" || m.kind === "next") && m.index >= first) {
        const cx = x(m.index) + cell / 2;
        const ty = y + cell + 7;
        ctx.beginPath();
        ctx.moveTo(cx, ty - 5);
        ctx.lineTo(cx - 4, ty);
        ctx.lineTo(cx + 4, ty);
        ctx.closePath();
        ctx.strokeStyle = ctx.fillStyle = colorFor("leader");
        if (m.kind === "match") ctx.fill();
        else ctx.stroke();
      }
    }
  });
  ctx.textAlign = "start";
  ctx.fillStyle = "#8a96a3";
  ctx.font = "10px system-ui";
  ctx.fillText(MARKER_NOTE, 4, h - 4);
}
