// The cluster renderer: nodes on a circle (a grid for big clusters) coloured by role,
// clients beside them, messages moving along their links by progress, partitions as
// tinted groups with cut one-way links, and the nodes an invariant blames ringed in red.
// What a lab shows at a glance is drawn on the nodes of a small cluster: a badge inside
// (Raft: the term) and progress rings around (Raft: the election timer, the lease), and
// messages carry their short labels.
import type { Endpoint, MessageDetail, MessageView, NodeGlance, NodeView, View } from "distlab";
import { colorFor, fitCanvas } from "./format";

export interface Point { x: number; y: number }

/** A message that vanished before arriving while its link was cut or its target down. */
interface Vanished { from: Point; to: Point; at: Point; born: number }

/** Room kept for the legend and clock above a grid of nodes, the hint below it, and a
 * column of clients on its right (CSS pixels). */
const TOP_BAND = 40;
const BOTTOM_BAND = 22;
const CLIENT_COLUMN = 36;

const GROUP_TINTS = ["#5aa9ff22", "#f0b42922", "#3fb95022", "#c084fc22", "#f7816622"];

export class ClusterRenderer {
  private positions = new Map<number, Point>();
  private clientPositions = new Map<number, Point>();
  private radius = 14;
  private vanished: Vanished[] = [];
  /** Screen rectangle being dragged to choose a partition group. */
  drag: { x0: number; y0: number; x1: number; y1: number } | null = null;

  constructor(private canvas: HTMLCanvasElement) {}

  /** What the node layout was computed for: it is kept while that stays the same. */
  private layoutKey = "";

  private layout(view: View, w: number, h: number): void {
    const n = view.nodes.length;
    const cx = w / 2;
    const cy = h / 2;
    const key = `${n}:${w}:${h}:${view.nodes[0]?.id}:${view.nodes[n - 1]?.id}:${view.nodes[0]?.group ?? ""}`;
    if (key !== this.layoutKey) {
      this.layoutKey = key;
      this.clientSlots = 0;
      this.layoutNodes(view, w, h);
    }
    this.clientPositions.clear();
    this.clients.clear();
    for (const m of view.messages) {
      if (m.from.type === "client") this.clients.add(m.from.id);
      if (m.to.type === "client") this.clients.add(m.to.id);
    }
    // Clients keep their place as others come and go: by id, spaced for the most seen.
    for (const c of this.clients) this.clientSlots = Math.max(this.clientSlots, c + 1);
    const gap = (this.clientGap = Math.min(n <= 48 ? 26 : 20, (h - (n <= 48 ? cy - 20 : TOP_BAND) - BOTTOM_BAND) / Math.max(1, this.clientSlots)));
    for (const c of this.clients) {
      this.clientPositions.set(c, n <= 48 ? { x: cx, y: cy - 20 + gap * c } : { x: w - CLIENT_COLUMN / 2, y: TOP_BAND + gap * (c + 0.5) });
    }
  }

  /** Titles of the node groups laid out side by side, where they are drawn. */
  private groupTitles: { x: number; y: number; text: string }[] = [];
  private clients = new Set<number>();
  /** Client ids seen so far (1 + the highest), for their spacing, and that spacing. */
  private clientSlots = 0;
  private clientGap = 26;

  private layoutNodes(view: View, w: number, h: number): void {
    this.positions.clear();
    const n = view.nodes.length;
    const cx = w / 2;
    const cy = h / 2;
    this.groupTitles = [];
    // Clusters shown together (a scenario's two runs of one seed): a circle each, side by
    // side, titled, with the clients in the middle.
    const groups = new Map<string, NodeView[]>();
    for (const node of view.nodes) {
      const g = node.group ?? "";
      const members = groups.get(g);
      if (members) members.push(node);
      else groups.set(g, [node]);
    }
    if (n <= 48 && groups.size > 1) {
      const k = groups.size;
      const colW = w / k;
      const r = Math.max(30, Math.min(colW - 70, h - 120) / 2 - 10);
      const most = Math.max(...[...groups.values()].map((g) => g.length));
      this.radius = Math.max(7, Math.min(22, (Math.PI * r) / most - 4));
      [...groups].forEach(([title, members], gi) => {
        const gx = colW * (gi + 0.5);
        this.groupTitles.push({ x: gx, y: cy - r - this.radius - 22, text: title });
        members.forEach((node, i) => {
          const a = -Math.PI / 2 + (2 * Math.PI * i) / members.length;
          this.positions.set(node.id, { x: gx + r * Math.cos(a), y: cy + r * Math.sin(a) });
        });
      });
    } else if (n <= 48) {
      const r = Math.max(40, Math.min(w, h) / 2 - 46);
      this.radius = Math.max(7, Math.min(22, (Math.PI * r) / Math.max(n, 1) - 4));
      view.nodes.forEach((node, i) => {
        const a = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(n, 1);
        this.positions.set(node.id, { x: cx + r * Math.cos(a), y: cy + r * Math.sin(a) });
      });
    } else {
      // A grid between the legend band at the top and the hint at the bottom, leaving a
      // column on the right for clients; labels (when nodes are big enough for them) get
      // room under each node.
      const gw = w - 20 - CLIENT_COLUMN;
      const gh = h - TOP_BAND - BOTTOM_BAND;
      const cols = Math.ceil(Math.sqrt((n * gw) / Math.max(gh, 1)));
      const rows = Math.ceil(n / cols);
      const gx = gw / cols;
      const gy = gh / rows;
      const r = Math.min(gx, gy) / 2 - 2;
      this.radius = Math.max(2, r >= 9 ? Math.min(gx / 2 - 2, (gy - 14) / 2 - 1) : r);
      const labelled = this.radius >= 9 ? 7 : 0;
      view.nodes.forEach((node, i) => {
        this.positions.set(node.id, {
          x: 10 + gx * ((i % cols) + 0.5),
          y: TOP_BAND + gy * (Math.floor(i / cols) + 0.5) - labelled,
        });
      });
    }
  }

  private at(e: Endpoint): Point | undefined {
    return e.type === "node" ? this.positions.get(e.id) : this.clientPositions.get(e.id);
  }

  /** Where node `id` was last drawn, in CSS pixels of the canvas, and its radius. */
  position(id: number): { x: number; y: number; r: number } | null {
    const p = this.positions.get(id);
    return p ? { x: p.x, y: p.y, r: this.radius } : null;
  }

  /** The node under a point in CSS pixels. */
  nodeAt(x: number, y: number): number | null {
    let best: number | null = null;
    let bestD = Infinity;
    for (const [id, p] of this.positions) {
      const d = Math.hypot(p.x - x, p.y - y);
      if (d <= this.radius + 4 && d < bestD) {
        best = id;
        bestD = d;
      }
    }
    return best;
  }

  /** Where each message was last drawn (small views only), for clicks. */
  private messageSpots: { id: number; x: number; y: number }[] = [];

  /** The message drawn under a point in CSS pixels, if any. */
  messageAt(x: number, y: number): number | null {
    let best: number | null = null;
    let bestD = 8;
    for (const m of this.messageSpots) {
      const d = Math.hypot(m.x - x, m.y - y);
      if (d < bestD) {
        best = m.id;
        bestD = d;
      }
    }
    return best;
  }

  /** Nodes inside the dragged rectangle. */
  nodesInDrag(): number[] {
    const d = this.drag;
    if (!d) return [];
    const [x0, x1] = [Math.min(d.x0, d.x1), Math.max(d.x0, d.x1)];
    const [y0, y1] = [Math.min(d.y0, d.y1), Math.max(d.y0, d.y1)];
    return [...this.positions]
      .filter(([, p]) => p.x >= x0 && p.x <= x1 && p.y >= y0 && p.y <= y1)
      .map(([id]) => id);
  }

  /** Something on the stage moves by itself (a fading drop, a drag): redraw even
   * without a new view. */
  animating(): boolean {
    return this.drag !== null || this.vanished.length > 0;
  }

  draw(view: View, selected: number | null, blamed: Set<number>, wallMs: number, selectedMessage: number | null = null): void {
    const ctx = fitCanvas(this.canvas);
    const w = this.canvas.clientWidth;
    const h = this.canvas.clientHeight;
    ctx.clearRect(0, 0, w, h);
    // The simulated clock, top right.
    ctx.fillStyle = "#8a96a3";
    ctx.font = "12px ui-monospace, monospace";
    ctx.textAlign = "right";
    const clock = `${(view.timeUs / 1000).toFixed(1)} ms · step ${view.step}`;
    ctx.fillText(clock, w - 8, 16);
    ctx.textAlign = "start";
    if (view.nodes.length === 0) {
      ctx.fillStyle = "#8a96a3";
      ctx.font = "13px system-ui";
      ctx.fillText("this lab has no cluster: see its panels below", 12, 22);
      return;
    }
    this.layout(view, w, h);
    const group = this.group;
    group.clear();
    view.partitions.groups.forEach((g, i) => g.forEach((n) => group.set(n, i)));

    // Partition groups: a tint behind each group's nodes.
    for (const [id, p] of this.positions) {
      const g = group.get(id);
      if (g === undefined) continue;
      ctx.fillStyle = GROUP_TINTS[g % GROUP_TINTS.length] ?? "#ffffff11";
      ctx.beginPath();
      ctx.arc(p.x, p.y, this.radius + 12, 0, 2 * Math.PI);
      ctx.fill();
    }
    // One-way cuts: a dashed red arrow.
    ctx.setLineDash([4, 4]);
    ctx.strokeStyle = "#f8514988";
    for (const [from, to] of view.partitions.oneWay) {
      const a = this.positions.get(from);
      const b = this.positions.get(to);
      if (a && b) arrow(ctx, a, b, this.radius);
    }
    ctx.setLineDash([]);

    this.drawMessages(ctx, view, selectedMessage);
    this.noteVanished(view, wallMs);
    this.vanished = this.vanished.filter((v) => wallMs - v.born < 600).slice(-200);
    for (const v of this.vanished) {
      const alpha = 1 - (wallMs - v.born) / 600;
      ctx.strokeStyle = `rgba(248,81,73,${alpha})`;
      ctx.lineWidth = 2;
      cross(ctx, v.at, 4);
      ctx.lineWidth = 1;
    }

    if (view.nodes.length > 48) this.drawNodeLayer(ctx, view, selected, blamed, w, h);
    else {
      this.drawNodes(ctx, view, selected, blamed);
      this.drawGlances(ctx, view.glances ?? []);
    }
    ctx.fillStyle = "#d7dde4";
    ctx.font = "600 13px system-ui";
    ctx.textAlign = "center";
    for (const t of this.groupTitles) ctx.fillText(t.text, t.x, Math.max(30, t.y));
    ctx.textAlign = "start";
    // Clients: squares as big as their spacing allows, labelled when there is room.
    const cs = Math.max(3, Math.min(12, this.clientGap - 2));
    for (const [id, p] of this.clientPositions) {
      ctx.fillStyle = colorFor("client");
      ctx.fillRect(p.x - cs / 2, p.y - cs / 2, cs, cs);
      if (this.clientGap < 12) continue;
      ctx.fillStyle = "#d7dde4";
      ctx.font = "10px system-ui";
      ctx.fillText(`c${id}`, p.x + cs / 2 + 3, p.y + 4);
    }
    // Legend of roles and message kinds.
    const roles = new Set<string>();
    for (const n of view.nodes) roles.add(n.role);
    const kinds = new Set<string>();
    for (const m of view.messages) if (kinds.size < 8) kinds.add(m.kind);
    const rings = new Set<string>();
    if (view.nodes.length <= 48) for (const g of view.glances ?? []) for (const r of g.rings) rings.add(r.name);
    // The legend stops short of the clock at the top right.
    ctx.font = "12px ui-monospace, monospace";
    const room = w - 24 - ctx.measureText(clock).width;
    let lx = 8;
    ctx.font = "11px system-ui";
    for (const [name, round] of [...[...roles].map((r) => [r, true] as const), ...[...rings].map((r) => [r, true] as const), ...[...kinds].map((k) => [k, false] as const)]) {
      if (lx + 18 + ctx.measureText(name).width > room) break;
      lx = legend(ctx, lx, 14, colorFor(name), name, round);
    }
    if (view.partitions.groups.length > 0) {
      ctx.fillStyle = "#f85149";
      ctx.fillText(`partition ${view.partitions.groups.map((g) => `{${g.join(",")}}`).join(" | ")}`, 8, 30);
    }
    // The partition being dragged.
    if (this.drag) {
      const d = this.drag;
      ctx.strokeStyle = "#f0b429";
      ctx.setLineDash([5, 3]);
      ctx.strokeRect(d.x0, d.y0, d.x1 - d.x0, d.y1 - d.y0);
      ctx.setLineDash([]);
    }
  }

  /**
   * A big cluster's nodes change far less often than its messages move: they are drawn
   * into a layer of their own, redrawn only when a node's role, status or label, the
   * selection, the blamed nodes or the layout changed, and copied onto the stage.
   */
  private nodeLayer: HTMLCanvasElement | null = null;
  private nodeLayerKey = "";
  private layerRoles: string[] = [];
  private layerStatuses: string[] = [];
  private layerLabels: string[] = [];

  private drawNodeLayer(ctx: CanvasRenderingContext2D, view: View, selected: number | null, blamed: Set<number>, w: number, h: number): void {
    const dpr = this.canvas.width / Math.max(1, w);
    const key = `${this.layoutKey}|${selected}|${[...blamed].join(",")}|${this.canvas.width}x${this.canvas.height}`;
    let changed = key !== this.nodeLayerKey || this.nodeLayer === null;
    this.nodeLayerKey = key;
    const nodes = view.nodes;
    if (this.layerRoles.length !== nodes.length) {
      changed = true;
      this.layerRoles.length = this.layerStatuses.length = this.layerLabels.length = nodes.length;
    }
    for (let i = 0; i < nodes.length; i++) {
      const n = nodes[i];
      if (!n) continue;
      if (this.layerRoles[i] !== n.role || this.layerStatuses[i] !== n.status || this.layerLabels[i] !== n.label) {
        changed = true;
        this.layerRoles[i] = n.role;
        this.layerStatuses[i] = n.status;
        this.layerLabels[i] = n.label;
      }
    }
    if (changed) {
      const layer = (this.nodeLayer ??= document.createElement("canvas"));
      if (layer.width !== this.canvas.width || layer.height !== this.canvas.height) {
        layer.width = this.canvas.width;
        layer.height = this.canvas.height;
      }
      const lctx = layer.getContext("2d");
      if (!lctx) return this.drawNodes(ctx, view, selected, blamed);
      lctx.setTransform(1, 0, 0, 1, 0, 0);
      lctx.clearRect(0, 0, layer.width, layer.height);
      lctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      this.drawNodes(lctx, view, selected, blamed);
    }
    if (this.nodeLayer) ctx.drawImage(this.nodeLayer, 0, 0, w, h);
  }

  /** Node → partition group, reused between frames. */
  private group = new Map<number, number>();

  /**
   * Messages: a dot along from → to, coloured by kind. Few messages get their link drawn
   * and a round dot each; many are batched into one path per kind (a canvas fill per
   * message is what costs on a big cluster).
   */
  private drawMessages(ctx: CanvasRenderingContext2D, view: View, selectedMessage: number | null): void {
    const small = view.messages.length < 400;
    this.messageSpots = [];
    if (small) {
      // Labels when there are few enough to read.
      const details = new Map<number, MessageDetail>();
      if (view.messages.length <= 40 && this.radius >= 10) for (const d of view.messageDetails ?? []) details.set(d.id, d);
      for (const m of view.messages) {
        const a = this.at(m.from);
        const b = this.at(m.to);
        if (!a || !b) continue;
        const t = Math.min(1, Math.max(0, m.progress));
        ctx.strokeStyle = "#ffffff14";
        ctx.beginPath();
        ctx.moveTo(a.x, a.y);
        ctx.lineTo(b.x, b.y);
        ctx.stroke();
        const x = a.x + (b.x - a.x) * t;
        const y = a.y + (b.y - a.y) * t;
        this.messageSpots.push({ id: m.id, x, y });
        ctx.fillStyle = colorFor(m.kind);
        ctx.beginPath();
        ctx.arc(x, y, 3.5, 0, 2 * Math.PI);
        ctx.fill();
        if (m.id === selectedMessage) {
          ctx.strokeStyle = "#ffffff";
          ctx.lineWidth = 2;
          ctx.beginPath();
          ctx.arc(x, y, 7, 0, 2 * Math.PI);
          ctx.stroke();
          ctx.lineWidth = 1;
        }
        const label = details.get(m.id)?.label;
        if (label) {
          ctx.fillStyle = "#c9d1d9";
          ctx.font = "10px system-ui";
          ctx.fillText(label, x + 6, y - 5);
        }
      }
      return;
    }
    const kinds: string[] = [];
    for (const m of view.messages) if (!kinds.includes(m.kind)) kinds.push(m.kind);
    for (const kind of kinds) {
      ctx.fillStyle = colorFor(kind);
      ctx.beginPath();
      for (const m of view.messages) {
        if (m.kind !== kind) continue;
        const a = this.at(m.from);
        const b = this.at(m.to);
        if (!a || !b) continue;
        const t = Math.min(1, Math.max(0, m.progress));
        ctx.rect(a.x + (b.x - a.x) * t - 1.5, a.y + (b.y - a.y) * t - 1.5, 3, 3);
      }
      ctx.fill();
    }
  }

  /** The messages of the previous view, by id, and the ids of the current one. */
  private lastMessages: MessageView[] = [];
  private currentIds = new Set<number>();

  /** Messages that vanished mid-flight across a cut link or into a down node: drops. */
  private noteVanished(view: View, wallMs: number): void {
    const last = this.lastMessages;
    this.lastMessages = view.messages;
    // Nothing can vanish that way while every node is up and nothing is partitioned.
    const cutSomewhere = this.group.size > 0 || view.nodes.some((n) => n.status !== "up");
    if (!cutSomewhere || last.length === 0) return;
    const ids = this.currentIds;
    ids.clear();
    for (const m of view.messages) ids.add(m.id);
    const status = new Map(view.nodes.map((n) => [n.id, n.status]));
    for (const m of last) {
      if (ids.has(m.id) || m.progress > 0.95 || m.to.type !== "node" || m.from.type !== "node") continue;
      const cut =
        (this.group.size > 0 && this.group.get(m.from.id) !== this.group.get(m.to.id)) ||
        status.get(m.to.id) !== "up";
      const a = this.at(m.from);
      const b = this.at(m.to);
      if (!cut || !a || !b) continue;
      const t = m.progress;
      this.vanished.push({ from: a, to: b, at: { x: a.x + (b.x - a.x) * t, y: a.y + (b.y - a.y) * t }, born: wallMs });
    }
  }

  /** Badges inside the nodes and progress rings around them, innermost first. */
  private drawGlances(ctx: CanvasRenderingContext2D, glances: NodeGlance[]): void {
    const r = this.radius;
    for (const g of glances) {
      const p = this.positions.get(g.node);
      if (!p) continue;
      g.rings.forEach((ring, i) => {
        const rr = r + 4 + i * 5;
        ctx.lineWidth = 3;
        ctx.strokeStyle = "#ffffff1a";
        ctx.beginPath();
        ctx.arc(p.x, p.y, rr, 0, 2 * Math.PI);
        ctx.stroke();
        if (ring.value > 0) {
          ctx.strokeStyle = colorFor(ring.name);
          ctx.beginPath();
          ctx.arc(p.x, p.y, rr, -Math.PI / 2, -Math.PI / 2 + 2 * Math.PI * ring.value);
          ctx.stroke();
        }
        ctx.lineWidth = 1;
      });
      if (g.badge && r >= 9) {
        ctx.fillStyle = "#0f1419";
        ctx.font = `600 ${Math.max(9, Math.min(15, r * 0.8))}px system-ui`;
        ctx.textAlign = "center";
        ctx.textBaseline = "middle";
        ctx.fillText(g.badge, p.x, p.y + 1);
        ctx.textAlign = "start";
        ctx.textBaseline = "alphabetic";
      }
    }
  }

  /**
   * Nodes. Plain running nodes of one role are batched into one path (a thousand separate
   * fills dominate a big cluster's frame); crashed, paused, selected and blamed nodes and
   * labels are drawn one by one.
   */
  private drawNodes(ctx: CanvasRenderingContext2D, view: View, selected: number | null, blamed: Set<number>): void {
    const labels = this.radius >= 9;
    const r = this.radius;
    // Below the rings, when there are some.
    const below = (view.glances?.length ?? 0) > 0 ? 19 : 13;
    const plain = (n: NodeView): boolean => n.status === "up" && n.id !== selected && !blamed.has(n.id);
    const roles: string[] = [];
    for (const n of view.nodes) if (plain(n) && !roles.includes(n.role)) roles.push(n.role);
    for (const role of roles) {
      ctx.fillStyle = colorFor(role);
      ctx.beginPath();
      for (const n of view.nodes) {
        if (n.role !== role || !plain(n)) continue;
        const p = this.positions.get(n.id);
        if (!p) continue;
        ctx.moveTo(p.x + r, p.y);
        ctx.arc(p.x, p.y, r, 0, 2 * Math.PI);
      }
      ctx.fill();
    }
    for (const node of view.nodes) {
      const p = this.positions.get(node.id);
      if (!p) continue;
      if (!plain(node)) drawNode(ctx, node, p, r, node.id === selected, blamed.has(node.id));
      if (labels) {
        ctx.fillStyle = "#d7dde4";
        ctx.font = "11px system-ui";
        ctx.textAlign = "center";
        ctx.fillText(node.label, p.x, p.y + r + below);
        ctx.textAlign = "start";
      }
    }
  }
}

function drawNode(
  ctx: CanvasRenderingContext2D, node: NodeView, p: Point, r: number,
  selected: boolean, blamed: boolean,
): void {
  const color = colorFor(node.role);
  if (blamed) {
    ctx.fillStyle = "#f8514955";
    ctx.beginPath();
    ctx.arc(p.x, p.y, r + 8, 0, 2 * Math.PI);
    ctx.fill();
  }
  ctx.beginPath();
  ctx.arc(p.x, p.y, r, 0, 2 * Math.PI);
  if (node.status === "crashed") {
    ctx.fillStyle = "#30363d";
    ctx.fill();
    ctx.strokeStyle = "#6e7681";
    ctx.stroke();
    ctx.strokeStyle = "#f85149";
    ctx.lineWidth = 2;
    cross(ctx, p, r * 0.5);
    ctx.lineWidth = 1;
  } else if (node.status === "paused") {
    ctx.fillStyle = "#161c23";
    ctx.fill();
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.stroke();
    ctx.lineWidth = 1;
    ctx.fillStyle = color;
    ctx.fillRect(p.x - r * 0.35, p.y - r * 0.4, r * 0.22, r * 0.8);
    ctx.fillRect(p.x + r * 0.13, p.y - r * 0.4, r * 0.22, r * 0.8);
  } else {
    ctx.fillStyle = color;
    ctx.fill();
  }
  if (selected) {
    ctx.strokeStyle = "#ffffff";
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.arc(p.x, p.y, r + 4, 0, 2 * Math.PI);
    ctx.stroke();
    ctx.lineWidth = 1;
  }
  if (blamed) {
    ctx.strokeStyle = "#f85149";
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.arc(p.x, p.y, r + 6, 0, 2 * Math.PI);
    ctx.stroke();
    ctx.lineWidth = 1;
  }
}

function cross(ctx: CanvasRenderingContext2D, p: Point, s: number): void {
  ctx.beginPath();
  ctx.moveTo(p.x - s, p.y - s);
  ctx.lineTo(p.x + s, p.y + s);
  ctx.moveTo(p.x + s, p.y - s);
  ctx.lineTo(p.x - s, p.y + s);
  ctx.stroke();
}

function arrow(ctx: CanvasRenderingContext2D, a: Point, b: Point, r: number): void {
  const ang = Math.atan2(b.y - a.y, b.x - a.x);
  const ex = b.x - Math.cos(ang) * (r + 3);
  const ey = b.y - Math.sin(ang) * (r + 3);
  ctx.beginPath();
  ctx.moveTo(a.x, a.y);
  ctx.lineTo(ex, ey);
  ctx.lineTo(ex - 7 * Math.cos(ang - 0.4), ey - 7 * Math.sin(ang - 0.4));
  ctx.moveTo(ex, ey);
  ctx.lineTo(ex - 7 * Math.cos(ang + 0.4), ey - 7 * Math.sin(ang + 0.4));
  ctx.stroke();
}

function legend(ctx: CanvasRenderingContext2D, x: number, y: number, color: string, text: string, round: boolean): number {
  ctx.fillStyle = color;
  if (round) {
    ctx.beginPath();
    ctx.arc(x + 4, y - 4, 4, 0, 2 * Math.PI);
    ctx.fill();
  } else {
    ctx.fillRect(x + 1, y - 7, 6, 6);
  }
  ctx.fillStyle = "#8a96a3";
  ctx.fillText(text, x + 11, y);
  return x + 18 + ctx.measureText(text).width;
}
