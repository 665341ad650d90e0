// The distlab page: a sidebar of the catalog, a stage that draws any lab from its view
// alone, controls, faults as actions, an inspector, invariants, time travel, a space-time
// diagram of the trace, share links, and soaks in a worker.
import "./style.css";
import init, { catalog, createLab, replayLab, type CatalogEntry, type Lab, type LabAction, type LabConfig, type LabId, type Panel, type View } from "distlab";
import { ClusterRenderer } from "./cluster";
import { actionTypes, SchemaForm } from "./schema-form";
import { fmtTime, fmtValue } from "./format";
import { PanelsRenderer, ringGeometry } from "./panels";
import { decodeHash, encodeRun, type SharedRun } from "./share";
import type { SoakMessage, SoakRequest } from "./soak.worker";
import { SpaceTimeDiagram } from "./spacetime";
import type { TraceColumns, TraceRequest } from "./trace.worker";

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el as T;
};

const ui = {
  catalog: $<HTMLElement>("catalog"),
  filter: $<HTMLInputElement>("filter"),
  play: $<HTMLButtonElement>("play"),
  step: $<HTMLButtonElement>("step"),
  speed: $<HTMLInputElement>("speed"),
  speedOut: $<HTMLOutputElement>("speed-out"),
  seed: $<HTMLInputElement>("seed"),
  clock: $<HTMLElement>("clock"),
  share: $<HTMLButtonElement>("share"),
  soak: $<HTMLButtonElement>("soak"),
  soakProgress: $<HTMLProgressElement>("soak-progress"),
  soakBox: $<HTMLElement>("soak-box"),
  soakResult: $<HTMLElement>("soak-result"),
  error: $<HTMLElement>("error"),
  stageRow: $<HTMLElement>("stage-row"),
  stage: $<HTMLCanvasElement>("stage"),
  stageHint: $<HTMLElement>("stage-hint"),
  noMessages: $<HTMLElement>("no-messages"),
  spacetimeWrap: $<HTMLElement>("spacetime-wrap"),
  spacetime: $<HTMLCanvasElement>("spacetime"),
  traceInfo: $<HTMLElement>("trace-info"),
  scrubber: $<HTMLInputElement>("scrubber"),
  scrubOut: $<HTMLOutputElement>("scrub-out"),
  faults: $<HTMLElement>("faults"),
  heal: $<HTMLButtonElement>("heal"),
  clientRequest: $<HTMLButtonElement>("client-request"),
  loss: $<HTMLInputElement>("loss"),
  duplicate: $<HTMLInputElement>("duplicate"),
  latency: $<HTMLInputElement>("latency"),
  skew: $<HTMLInputElement>("skew"),
  actionPresets: $<HTMLElement>("action-presets"),
  actionForm: $<HTMLFormElement>("action-form"),
  panels: $<HTMLElement>("panels"),
  configForm: $<HTMLFormElement>("config-form"),
  invariants: $<HTMLElement>("invariants"),
  inspector: $<HTMLElement>("inspector"),
};

const state = {
  entries: [] as CatalogEntry[],
  lab: null as Lab | null,
  labId: "",
  view: null as View | null,
  playing: false,
  speed: 0.1,
  maxStep: 0,
  selected: null as number | null,
  blamed: new Set<number>(),
  violated: new Set<string>(),
  types: new Set<string>(),
  /** The space-time diagram is shown (the lab sends messages). */
  spacetime: true,
  dirty: true,
  /** Something the user did (or a seek, a new lab) must show on the next frame. */
  urgent: true,
  /** When the last view was taken, and what views cost (moving average, ms). */
  lastViewAt: -Infinity,
  viewCost: 0,
  /** The stage must be redrawn (a new view, a resize, a selection). */
  stageDirty: true,
  lastFrameAt: null as number | null,
  lastPanels: 0,
  /** A view arrived while playing: its panels are drawn on a later frame. */
  panelsDue: false,
  lastTrace: -Infinity,
  traceStep: -1,
  traceBusy: false,
  /** How long the worker took to build the last trace, ms. */
  traceCost: 0,
  /** What the last trace from the worker was built from. */
  traceBuilt: null as TraceColumns["built"] | null,
  traceId: 0,
  frames: [] as number[],
  /** Time between two animation frames: what the eye sees (the work above plus the
   * browser's own: style, layout, rasterising the canvases). */
  intervals: [] as number[],
  /** Wall ms one simulated ms costs to step (moving average). */
  stepCostPerMs: 0,
  /** What a frame's step, and a frame's view and drawing, cost (moving averages, ms). */
  stepCost: 0,
  showCost: 0,
  /** The last frame stepped (so the next may show); wall ms not simulated yet. */
  stepped: false,
  owedMs: 0,
  /** Simulated and wall ms played since the speed readout was last updated, and in
   * total since the frame statistics were reset. */
  simMs: 0,
  wallMs: 0,
  lagSimMs: 0,
  lagWallMs: 0,
  lagShownAt: -Infinity,
  /** Per-frame cost of each part, for the benchmark hook. */
  parts: {} as Record<string, number[]>,
};

function timed<T>(part: string, f: () => T): T {
  const t0 = performance.now();
  const v = f();
  const xs = (state.parts[part] ??= []);
  xs.push(performance.now() - t0);
  if (xs.length > 600) xs.shift();
  return v;
}

const cluster = new ClusterRenderer(ui.stage);
const panels = new PanelsRenderer(ui.panels);
const form = new SchemaForm(ui.configForm);
/** The action builder: any action of the lab, with its parameters. */
const actionForm = new SchemaForm(ui.actionForm, "action");
const spacetime = new SpaceTimeDiagram(ui.spacetime, (step) => seek(step));

function showError(e: unknown): void {
  const message = e instanceof Error ? e.message : String(e);
  ui.error.textContent = message;
  ui.error.hidden = false;
  form.markError(message);
  actionForm.markError(message);
}

function clearError(): void {
  if (ui.error.hidden) return;
  ui.error.hidden = true;
  form.markError("");
  actionForm.markError("");
}

/** Runs a lab call; a thrown Error (a bad action, say) is shown, never fatal. A call the
 * user made clears the error shown; the frame loop's (`clears` false) leave it, so an
 * error stays readable while the run plays on. */
function guard<T>(f: () => T, clears = true): T | undefined {
  try {
    const v = f();
    if (clears) clearError();
    return v;
  } catch (e) {
    showError(e);
    return undefined;
  }
}

// ---------------------------------------------------------------- catalog and labs

function renderCatalog(): void {
  const q = ui.filter.value.trim().toLowerCase();
  const bySection = new Map<string, CatalogEntry[]>();
  for (const e of state.entries) {
    if (q && !`${e.id} ${e.title}`.toLowerCase().includes(q)) continue;
    bySection.set(e.section, [...(bySection.get(e.section) ?? []), e]);
  }
  const frag = document.createDocumentFragment();
  for (const [section, entries] of bySection) {
    const h = document.createElement("h3");
    h.textContent = section;
    frag.append(h);
    for (const e of entries) {
      const a = document.createElement("a");
      a.textContent = e.id;
      a.title = `${e.title}${e.checks ? ` — checks: ${e.checks}` : ""}`;
      a.dataset["id"] = e.id;
      if (e.implemented) {
        a.href = `#lab=${encodeURIComponent(e.id)}`;
        a.className = e.id === state.labId ? "implemented current" : "implemented";
      } else {
        a.className = "planned";
      }
      frag.append(a);
    }
  }
  ui.catalog.replaceChildren(frag);
}

function openLab(id: string, run: SharedRun | null = null, config: LabConfig | null = null): void {
  const lab = guard(() => {
    if (run) {
      const l = replayLab(id as LabId, run.config, run.actions);
      l.seek(run.step);
      const now = l.view({ fieldsOf: [] }).timeUs;
      if (run.timeUs > now) l.step((run.timeUs - now) / 1000);
      return l;
    }
    return createLab(id as LabId, config);
  });
  if (!lab) return;
  state.lab?.free();
  state.lab = lab;
  const changedLab = state.labId !== id;
  state.labId = id;
  state.playing = false;
  state.selected = null;
  state.blamed.clear();
  state.violated.clear();
  state.maxStep = lab.steps;
  state.dirty = true;
  state.urgent = true;
  state.stepCostPerMs = 0;
  state.viewCost = 0;
  state.stepCost = 0;
  state.showCost = 0;
  state.owedMs = 0;
  state.traceStep = -1;
  state.lastTrace = -Infinity;
  state.traceCost = 0;
  if (changedLab) panels.clear();
  spacetime.setTrace(null);
  state.traceId++; // a reply for the previous lab is ignored
  if (state.traceBusy) {
    // Building the previous lab's trace can take seconds (a big cluster): stop it.
    traceWorker?.terminate();
    traceWorker = null;
  }
  state.traceBusy = false;
  const effective = lab.config() as Record<string, unknown>;
  form.build(lab.configSchema(), effective);
  const apply = document.createElement("button");
  apply.type = "submit";
  apply.textContent = "apply config (restart)";
  ui.configForm.append(apply);
  const hasSeed = typeof effective["seed"] === "number";
  ui.seed.disabled = !hasSeed;
  ui.soak.disabled = !hasSeed;
  if (hasSeed) ui.seed.value = String(effective["seed"]);
  state.types = actionTypes(lab.actionSchema());
  // Until its trace tells, a lab on the network simulator (it takes its faults) is taken
  // to send messages.
  showSpacetime(messageLabs.get(id) ?? state.types.has("crash"));
  ui.faults.hidden = !state.types.has("crash");
  ui.clientRequest.hidden = !state.types.has("clientRequest");
  const network = effective["network"] as { loss?: number; duplicate?: number; latency?: { type: string; [k: string]: unknown } } | undefined;
  setSlider(ui.loss, network?.loss ?? 0);
  setSlider(ui.duplicate, network?.duplicate ?? 0);
  setSlider(ui.latency, meanLatency(network?.latency) ?? 3);
  setSlider(ui.skew, 0);
  renderLabActions(lab);
  renderCatalog();
  updatePlay();
  if (!run) history.replaceState(null, "", `#lab=${encodeURIComponent(id)}`);
  document.title = `${id} · distlab`;
}

function meanLatency(l: { type: string; [k: string]: unknown } | undefined): number | undefined {
  if (!l) return undefined;
  const n = (k: string): number => (typeof l[k] === "number" ? (l[k] as number) : 0);
  switch (l.type) {
    case "constant": return n("ms");
    case "uniform": return (n("minMs") + n("maxMs")) / 2;
    case "exponential": return n("minMs") + n("meanMs");
    case "logNormal": return n("medianMs");
    case "pareto": return n("scaleMs");
    default: return undefined;
  }
}

/** The lab's own example actions as one-click presets (faults have their own controls),
 * and the action builder: any action the lab's schema allows, with its parameters,
 * prefilled from the first example of its type. */
function renderLabActions(lab: Lab): void {
  ui.actionPresets.replaceChildren();
  const examples = lab.exampleActions();
  const faults = state.types.has("crash");
  const own = examples.filter((a) => !faults || !isFault(a.type));
  const schema = lab.actionSchema();
  const load = (a: LabAction | null): void => {
    actionForm.build(schema, a, examples);
    const go = document.createElement("button");
    go.type = "submit";
    go.id = "do-action";
    go.textContent = "do it";
    ui.actionForm.append(go);
  };
  if (own.length > 0) {
    ui.actionPresets.append("examples: ");
    for (const a of own) {
      const b = document.createElement("button");
      const { type, ...rest } = a as { type: string } & Record<string, unknown>;
      const full = Object.keys(rest).length ? `${type} ${JSON.stringify(rest)}` : type;
      // A long one (a pasted history) is cut short; its tooltip has it whole.
      b.textContent = full.length > 64 ? `${full.slice(0, 63)}…` : full;
      b.title = `${full}\n\ndo it now (and load it into the action form)`;
      b.addEventListener("click", () => {
        load(a);
        act(a);
      });
      ui.actionPresets.append(b);
    }
  }
  load(own[0] ?? examples[0] ?? null);
}

/** What each lab's trace showed: whether it sends messages. */
const messageLabs = new Map<string, boolean>();

/** Shows the space-time diagram, or (a lab that sends no messages, whose lanes would stay
 * empty) hides it, leaving its room to the stage, with a note saying why. */
function showSpacetime(show: boolean): void {
  if (state.spacetime === show) return;
  state.spacetime = show;
  ui.spacetimeWrap.hidden = !show;
  ui.noMessages.hidden = show;
  ui.stageRow.classList.toggle("no-messages", !show);
  state.stageDirty = true;
}

const FAULT_TYPES = new Set(["crash", "crashMidEvent", "restart", "pause", "resume", "partition", "partitionOneWay", "heal", "setLoss", "setDuplicate", "setReorder", "setLatency", "setLinkLatency", "clockSkew", "clockDrift"]);
function isFault(type: string): boolean {
  return FAULT_TYPES.has(type);
}

function setSlider(input: HTMLInputElement, v: number): void {
  input.value = String(v);
  const out = input.parentElement?.querySelector("output");
  if (out) out.textContent = input.value;
}

// ---------------------------------------------------------------- actions and time

function act(action: LabAction): void {
  const lab = state.lab;
  if (!lab) return;
  if (guard(() => lab.act(action)) === undefined && !ui.error.hidden) return;
  state.maxStep = lab.steps;
  state.dirty = true;
  state.urgent = true;
  state.traceStep = -1;
}

function seek(step: number): void {
  const lab = state.lab;
  if (!lab) return;
  state.playing = false;
  updatePlay();
  guard(() => lab.seek(Math.max(0, Math.min(step, state.maxStep))));
  state.dirty = true;
  state.urgent = true;
  // Going back in time can un-violate invariants; they re-arm.
  state.violated.clear();
  state.blamed.clear();
}

function stepOnce(): void {
  const lab = state.lab;
  if (!lab) return;
  state.playing = false;
  updatePlay();
  const n = guard(() => lab.stepEvents(1));
  if (n === 0) guard(() => lab.step(10));
  state.maxStep = Math.max(state.maxStep, lab.steps);
  state.dirty = true;
  state.urgent = true;
}

function updatePlay(): void {
  ui.play.textContent = state.playing ? "❚❚ pause" : "▶ play";
}

function togglePlay(): void {
  state.playing = !state.playing;
  updatePlay();
}

// ---------------------------------------------------------------- the frame loop

let lastWall = performance.now();

/**
 * While playing, how long to wait between two views. A view crosses from wasm into JS
 * objects, and on a big cluster that is the costliest part of a frame (about 5 ms for
 * 1,000 nodes): it is then taken every other frame or so, so that views cost at most
 * about a third of the time, and frames stay even. Cheap views are taken every frame.
 */
function viewInterval(): number {
  return state.viewCost < 2 ? 0 : Math.min(100, 3 * state.viewCost);
}

/**
 * Simulating is the one part of a frame whose cost grows with the speed asked for: a
 * 1,000-node cluster under load is about 150,000 events per simulated second. A frame
 * spends at most about `budgetMs` on it: once stepping one simulated millisecond costs
 * enough that `simMs` would not fit, the step is cut into slices and stops when the
 * budget is spent. The rest is dropped, not owed (owing it would make every later frame
 * spend the whole budget catching up): simulated time then runs slower than asked, and
 * the speed readout says so. Returns the simulated ms advanced.
 */
function stepWithin(lab: Lab, simMs: number, budgetMs: number): number {
  const t0 = performance.now();
  const predicted = state.stepCostPerMs * simMs;
  // Events come in bursts (a thousand timers due together), so a step may cost a few
  // times its prediction: above a third of the budget it is sliced.
  if (predicted <= budgetMs / 3) {
    lab.step(simMs);
    noteStepCost(performance.now() - t0, simMs);
    return simMs;
  }
  // Slices of about a quarter of the budget each.
  const slice = Math.max(simMs / 64, budgetMs / 4 / Math.max(state.stepCostPerMs, 1e-6));
  let done = 0;
  while (done < simMs && performance.now() - t0 < budgetMs) {
    const ms = Math.min(slice, simMs - done);
    lab.step(ms);
    done += ms;
  }
  noteStepCost(performance.now() - t0, done);
  return done;
}

function noteStepCost(ms: number, simMs: number): void {
  if (simMs <= 0) return;
  state.stepCostPerMs = 0.8 * state.stepCostPerMs + 0.2 * (ms / simMs);
}

/** The speed readout shows when simulated time runs slower than asked (see stepWithin). */
function showLag(wall: number): void {
  if (wall - state.lagShownAt < 500) return;
  state.lagShownAt = wall;
  const achieved = state.wallMs > 0 ? state.simMs / state.wallMs : state.speed;
  state.lagSimMs += state.simMs;
  state.lagWallMs += state.wallMs;
  state.simMs = 0;
  state.wallMs = 0;
  const lagging = achieved < 0.9 * state.speed;
  const text = lagging ? `${fmtSpeed(state.speed)} (runs at ${fmtSpeed(achieved)})` : fmtSpeed(state.speed);
  if (ui.speedOut.textContent !== text) {
    ui.speedOut.textContent = text;
    ui.speedOut.title = lagging ? "this machine cannot simulate this lab that fast while drawing it: each frame simulates as much as fits in its budget" : "";
  }
}

function fmtSpeed(x: number): string {
  return `${x < 1 ? x.toPrecision(2) : x.toFixed(x < 10 ? 1 : 0)}×`;
}

/** Time a frame may spend simulating, ms: all of it in a frame that only steps; less
 * what showing costs in one that does both. */
const STEP_BUDGET_MS = 9;
/** Above this cost of stepping plus showing (ms, moving averages), frames alternate. */
const SPLIT_ABOVE_MS = 8;

function frame(wall: number): void {
  const t0 = performance.now();
  if (state.lastFrameAt !== null) {
    state.intervals.push(wall - state.lastFrameAt);
    if (state.intervals.length > 600) state.intervals.shift();
  }
  state.lastFrameAt = wall;
  const dt = Math.min(100, Math.max(0, wall - lastWall));
  lastWall = wall;
  const lab = state.lab;
  // A big cluster's frame either simulates or shows what it simulated: doing both in one
  // frame is what made the slow frames. While stepping and showing together cost more
  // than SPLIT_ABOVE_MS, frames alternate, and a showing frame's time is simulated by the
  // next one (so simulated time still runs at the speed asked).
  const viewDue = state.urgent || !state.playing || wall - state.lastViewAt >= viewInterval();
  const split = state.playing && state.stepCost + state.showCost > SPLIT_ABOVE_MS;
  const showNow = lab !== null && state.dirty && viewDue && (!split || state.stepped || state.urgent);
  if (lab && state.playing && dt > 0) {
    if (split && showNow && !state.urgent) {
      state.owedMs = Math.min(100, state.owedMs + dt);
    } else {
      const wallMs = dt + state.owedMs;
      state.owedMs = 0;
      const s0 = performance.now();
      // A frame that only steps may spend more on it than one that also shows.
      const budget = split ? STEP_BUDGET_MS : Math.max(4, Math.min(STEP_BUDGET_MS, 10 - state.showCost));
      const ok = timed("step", () => guard(() => stepWithin(lab, wallMs * state.speed, budget), false));
      state.stepCost = 0.8 * state.stepCost + 0.2 * (performance.now() - s0);
      state.stepped = true;
      if (ok === undefined) state.playing = false;
      else {
        state.simMs += ok;
        state.wallMs += wallMs;
      }
      state.maxStep = Math.max(state.maxStep, lab.steps);
      state.dirty = true;
      showLag(wall);
    }
  }
  const show0 = performance.now();
  let showed = false;
  if (lab && showNow) {
    showed = true;
    state.stepped = false;
    state.dirty = false;
    state.urgent = false;
    state.lastViewAt = wall;
    const v0 = performance.now();
    // Only the inspected node's fields: on a big cluster they are most of the view.
    const fieldsOf = state.selected === null ? [] : [state.selected];
    const v = timed("view", () => guard(() => lab.view({ fieldsOf }), false));
    state.viewCost = 0.8 * state.viewCost + 0.2 * (performance.now() - v0);
    if (v) {
      state.view = v;
      state.stageDirty = true;
      timed("dom", () => onView(v, wall));
    }
  }
  if (state.view) {
    const view = state.view;
    // The stage is redrawn when there is something new to show, not every frame.
    if (state.stageDirty || cluster.animating()) {
      state.stageDirty = false;
      timed("stage", () => cluster.draw(view, state.selected, state.blamed, wall));
    }
    if (window.distlabPage && window.distlabPage.firstFrameMs === null && state.playing) {
      window.distlabPage.firstFrameMs = performance.now();
    }
    // While playing, one panel per frame (each refreshes every few frames), and not in
    // a frame that took a costly view: the work is spread over frames.
    const tookView = state.lastViewAt === wall;
    if (state.panelsDue && state.playing && wall - state.lastPanels > 30 && (!tookView || viewInterval() === 0)) {
      state.panelsDue = false;
      state.lastPanels = wall;
      timed("panels", () => panels.render(view.panels, view.metrics, 1));
    }
    timed("trace", () => refreshTrace(view, wall));
    if (state.spacetime) timed("spacetime", () => spacetime.draw(view.timeUs, view.nodes.length));
    if (showed) state.showCost = 0.8 * state.showCost + 0.2 * (performance.now() - show0);
  }
  state.frames.push(performance.now() - t0);
  if (state.frames.length > 600) state.frames.shift();
  requestAnimationFrame(frame);
}

function onView(v: View, wall: number): void {
  ui.clock.textContent = `t = ${fmtTime(v.timeUs)} · step ${v.step}`;
  // A lab without a cluster (an arrival process, a history) shows only a strip of stage.
  const clusterless = v.nodes.length === 0;
  if (ui.stageRow.classList.contains("no-cluster") !== clusterless) {
    ui.stageRow.classList.toggle("no-cluster", clusterless);
    state.stageDirty = true;
  }
  ui.scrubber.max = String(state.maxStep);
  ui.scrubber.value = String(v.step);
  ui.scrubOut.textContent = `${v.step} / ${state.maxStep}`;
  // Invariants: a new violation pauses the run and highlights the nodes it names.
  let fresh = false;
  for (const inv of v.invariants) {
    if (!inv.ok && !state.violated.has(inv.name)) {
      state.violated.add(inv.name);
      inv.nodes.forEach((n) => state.blamed.add(n));
      fresh = true;
    }
  }
  if (fresh && state.playing) {
    state.playing = false;
    updatePlay();
  }
  // The list is rebuilt only when an invariant's status or detail changed.
  const invariantsKey = JSON.stringify(v.invariants);
  if (invariantsKey !== renderedInvariants) {
    renderedInvariants = invariantsKey;
    renderInvariants(v);
  }
  renderInspector(v);
  if (!state.playing) timed("panels", () => panels.render(v.panels, v.metrics));
  else state.panelsDue = true;
  const hint = state.types.has("crash") ? "click a node; space plays, → steps" : "space plays, → steps";
  if (ui.stageHint.textContent !== hint) ui.stageHint.textContent = hint;
}

let renderedInvariants = "";

function renderInvariants(v: View): void {
  ui.invariants.replaceChildren(
    ...v.invariants.map((inv) => {
      const li = document.createElement("li");
      li.className = inv.ok ? "ok" : "violated";
      li.textContent = inv.name;
      const small = document.createElement("small");
      small.textContent = inv.ok ? inv.detail : `${inv.detail}${inv.nodes.length ? ` — nodes ${inv.nodes.join(", ")}` : ""}`;
      li.append(small);
      return li;
    }),
  );
  if (v.invariants.length === 0) ui.invariants.textContent = "this lab checks none yet";
}

let renderedInspector = "";

function renderInspector(v: View): void {
  const node = v.nodes.find((n) => n.id === state.selected);
  // Rebuilt only when the selected node's state changed.
  const key = node ? JSON.stringify(node) : String(v.nodes.length > 0);
  if (key === renderedInspector) return;
  renderedInspector = key;
  if (!node) {
    ui.inspector.textContent = v.nodes.length ? "click a node" : "";
    return;
  }
  const buttons = document.createElement("div");
  buttons.className = "buttons";
  if (state.types.has("crash")) {
    const add = (label: string, a: LabAction): void => {
      const b = document.createElement("button");
      b.textContent = label;
      b.addEventListener("click", () => act(a));
      buttons.append(b);
    };
    if (node.status === "crashed") add("restart", { type: "restart", node: node.id });
    else add("crash", { type: "crash", node: node.id });
    if (node.status === "paused") add("resume", { type: "resume", node: node.id });
    else if (node.status === "up") add("pause", { type: "pause", node: node.id });
    if (state.types.has("clientRequest")) add("client request", { type: "clientRequest", node: node.id });
  }
  const text = document.createElement("div");
  text.textContent =
    `${node.label} · ${node.role} · ${node.status}\n` +
    Object.entries(node.fields).map(([k, val]) => `${k}: ${fmtValue(val)}`).join("\n");
  ui.inspector.replaceChildren(buttons, text);
}

/** The trace is built by a worker (it is costly on long runs): ask for the current step
 * whenever the worker is idle, at most four times a second while playing, and, once a
 * build takes long (a big cluster's trace), leave the worker idle twice as long as its
 * last build took, so it does not keep a core busy that the page needs. */
let traceWorker: Worker | null = null;

function refreshTrace(v: View, wall: number): void {
  const lab = state.lab;
  if (!lab || state.traceStep === v.step || state.traceBusy) return;
  // Builds over a second (a big cluster's 100,000-event tail) wait five times as long.
  if (state.playing && wall - state.lastTrace < Math.max(250, (state.traceCost > 1000 ? 5 : 3) * state.traceCost)) return;
  if (!traceWorker) {
    traceWorker = new Worker(new URL("./trace.worker.ts", import.meta.url), { type: "module" });
    traceWorker.onmessage = (e: MessageEvent<TraceColumns | { id: number; error: string }>) => {
      state.traceBusy = false;
      const m = e.data;
      if (m.id !== state.traceId) return;
      state.traceCost = performance.now() - state.lastTrace;
      if ("error" in m) {
        ui.traceInfo.textContent = `trace: ${m.error}`;
        return;
      }
      spacetime.setTrace(m);
      state.traceBuilt = m.built;
      // A trace of events none of which the simulator made: the lab sends no messages.
      if (m.simulated !== null) {
        messageLabs.set(state.labId, m.simulated);
        showSpacetime(m.simulated);
      }
      ui.traceInfo.textContent = `${m.events} events${m.complete ? "" : " (oldest dropped)"} · hash ${m.hash}`;
    };
  }
  const req: TraceRequest = {
    id: ++state.traceId,
    lab: state.labId,
    config: lab.config(),
    actions: lab.actions(),
    step: v.step,
    nodes: v.nodes.length,
  };
  state.traceBusy = true;
  state.traceStep = v.step;
  state.lastTrace = wall;
  traceWorker.postMessage(req);
}

// ---------------------------------------------------------------- wiring

function wire(): void {
  new ResizeObserver(() => (state.stageDirty = true)).observe(ui.stage);
  ui.filter.addEventListener("input", renderCatalog);
  window.addEventListener("hashchange", () => {
    const { lab, run } = guard(() => decodeHash(location.hash)) ?? { lab: null, run: null };
    if (lab && (run || lab !== state.labId)) openLab(lab, run);
  });
  ui.play.addEventListener("click", togglePlay);
  ui.step.addEventListener("click", stepOnce);
  ui.speed.addEventListener("input", () => {
    state.speed = 10 ** Number(ui.speed.value);
    ui.speedOut.textContent = fmtSpeed(state.speed);
    state.simMs = 0;
    state.wallMs = 0;
  });
  ui.seed.addEventListener("change", () => {
    const config = { ...(state.lab?.config() as Record<string, unknown>), seed: Number(ui.seed.value) };
    openLab(state.labId, null, config as LabConfig);
  });
  ui.configForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const config = guard(() => form.value());
    if (config !== undefined) openLab(state.labId, null, config as LabConfig);
  });
  ui.actionForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const action = guard(() => actionForm.value());
    if (action !== undefined) act(action as LabAction);
  });
  ui.scrubber.addEventListener("input", () => seek(Number(ui.scrubber.value)));
  document.addEventListener("keydown", (e) => {
    const t = e.target as HTMLElement | null;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT")) return;
    if (e.key === " ") {
      e.preventDefault();
      togglePlay();
    } else if (e.key === "ArrowRight") {
      e.preventDefault();
      stepOnce();
    }
  });
  // Faults.
  ui.heal.addEventListener("click", () => act({ type: "heal" }));
  ui.clientRequest.addEventListener("click", () => {
    const up = state.view?.nodes.find((n) => n.status === "up");
    act({ type: "clientRequest", node: state.selected ?? up?.id ?? 0 });
  });
  const slider = (input: HTMLInputElement, make: (v: number) => LabAction): void => {
    input.addEventListener("input", () => setSlider(input, Number(input.value)));
    input.addEventListener("change", () => {
      setSlider(input, Number(input.value));
      act(make(Number(input.value)));
    });
  };
  slider(ui.loss, (p) => ({ type: "setLoss", probability: p }));
  slider(ui.duplicate, (p) => ({ type: "setDuplicate", probability: p }));
  slider(ui.latency, (ms) => ({ type: "setLatency", latency: { type: "uniform", minMs: ms * 0.5, maxMs: ms * 1.5 } }));
  slider(ui.skew, (ms) => ({ type: "clockSkew", node: state.selected ?? 0, skewMs: ms }));
  // The stage: click a node (what it does depends on the mode); drag to partition.
  const mode = (): string => (document.querySelector<HTMLInputElement>('input[name="mode"]:checked')?.value ?? "inspect");
  ui.stage.addEventListener("mousedown", (e) => {
    if (mode() === "partition") cluster.drag = { x0: e.offsetX, y0: e.offsetY, x1: e.offsetX, y1: e.offsetY };
  });
  ui.stage.addEventListener("mousemove", (e) => {
    if (cluster.drag) {
      cluster.drag.x1 = e.offsetX;
      cluster.drag.y1 = e.offsetY;
    }
  });
  ui.stage.addEventListener("mouseup", (e) => {
    if (cluster.drag) {
      const group = cluster.nodesInDrag();
      cluster.drag = null;
      const n = state.view?.nodes.length ?? 0;
      if (group.length > 0 && group.length < n) act({ type: "partition", groups: [group] });
      return;
    }
    const id = cluster.nodeAt(e.offsetX, e.offsetY);
    if (id === null) return;
    const node = state.view?.nodes.find((x) => x.id === id);
    state.selected = id;
    state.dirty = true;
    state.urgent = true;
    if (!node || !state.types.has("crash")) return;
    if (mode() === "crash") act({ type: node.status === "crashed" ? "restart" : "crash", node: id });
    if (mode() === "pause") act({ type: node.status === "paused" ? "resume" : "pause", node: id });
  });
  ui.share.addEventListener("click", () => {
    const url = shareUrl();
    if (!url) return;
    history.replaceState(null, "", url);
    navigator.clipboard?.writeText(url).then(
      () => (ui.share.textContent = "link copied"),
      () => (ui.share.textContent = "link in the address bar"),
    );
    setTimeout(() => (ui.share.textContent = "share"), 2000);
  });
  ui.soak.addEventListener("click", startSoak);
}

function shareUrl(): string | null {
  const lab = state.lab;
  const v = state.view;
  if (!lab || !v) return null;
  const run: SharedRun = { lab: state.labId, config: lab.config(), actions: lab.actions(), step: v.step, timeUs: v.timeUs };
  return `${location.origin}${location.pathname}${encodeRun(run)}`;
}

let soakWorker: Worker | null = null;

function startSoak(): void {
  const lab = state.lab;
  if (!lab) return;
  soakWorker?.terminate();
  soakWorker = new Worker(new URL("./soak.worker.ts", import.meta.url), { type: "module" });
  const config = lab.config() as Record<string, unknown>;
  const firstSeed = Number(config["seed"] ?? 1);
  const req: SoakRequest = { lab: state.labId, config, seeds: 32, firstSeed, durationMs: 5000 };
  ui.soakBox.hidden = false;
  ui.soakProgress.hidden = false;
  ui.soakProgress.value = 0;
  ui.soakResult.textContent = `running seeds ${firstSeed}–${firstSeed + 31}, 5 s each…`;
  const found: string[] = [];
  soakWorker.onmessage = (e: MessageEvent<SoakMessage>) => {
    const m = e.data;
    if (m.type === "progress") ui.soakProgress.value = m.done / m.total;
    else if (m.type === "violation") found.push(`seed ${m.seed}: ${m.invariant} at step ${m.step}`);
    else if (m.type === "done") {
      ui.soakProgress.hidden = true;
      ui.soakResult.textContent = `${m.seeds} seeds, ${m.events} events in ${(m.ms / 1000).toFixed(1)} s\n` + (found.length ? found.join("\n") : "no invariant violated");
    } else if (m.type === "error") {
      ui.soakProgress.hidden = true;
      ui.soakResult.textContent = m.message;
    }
  };
  soakWorker.postMessage(req);
}

/** Hooks for the browser e2e and for benchmarks. */
declare global {
  interface Window {
    distlabPage: {
      ready: boolean;
      lab: () => Lab | null;
      view: () => View | null;
      act: (a: LabAction) => void;
      play: () => void;
      pause: () => void;
      open: (id: string, config?: LabConfig) => void;
      nodePosition: (id: number) => { x: number; y: number; r: number } | null;
      playing: () => boolean;
      blamed: () => number[];
      firstFrameMs: number | null;
      shareUrl: () => string | null;
      /** The step and hash of the trace the diagram shows, and the worker's replays. */
      traceBuilt: () => { step: number; hash: string; replays: number } | null;
      frameStats: () => {
        frames: number; p50: number; p95: number; max: number;
        interval: { p50: number; p95: number; max: number };
        /** Simulated ms per wall ms while playing, since the last reset. */
        achievedSpeed: number;
        parts: Record<string, { p50: number; p95: number; max: number }>;
      };
      resetFrames: () => void;
      /** Draws `panel` through the generic panel renderers, in a box of its own over the
       * page (a renderer no registered lab uses yet, the ring, is tested this way);
       * returns the ring's circle in CSS pixels of the box's canvas. */
      renderPanelFixture: (panel: Panel) => { cx: number; cy: number; r: number } | null;
    };
  }
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? 0;
}

let fixture: { root: HTMLElement; renderer: PanelsRenderer } | null = null;

function renderPanelFixture(panel: Panel): { cx: number; cy: number; r: number } | null {
  if (!fixture) {
    const root = document.createElement("div");
    root.id = "panel-fixture";
    root.style.cssText = "position: fixed; left: 8px; top: 8px; width: 420px; z-index: 10";
    document.body.append(root);
    fixture = { root, renderer: new PanelsRenderer(root) };
  }
  fixture.renderer.render([panel], []);
  const canvas = fixture.root.querySelector("canvas");
  return canvas ? ringGeometry(canvas.clientWidth, canvas.clientHeight) : null;
}

async function main(): Promise<void> {
  await init();
  state.entries = catalog();
  wire();
  renderCatalog();
  const { lab, run } = guard(() => decodeHash(location.hash)) ?? { lab: null, run: null };
  const first = lab ?? state.entries.find((e) => e.implemented)?.id;
  if (first) openLab(first, run);
  if (!run && first) state.playing = true;
  updatePlay();
  window.distlabPage = {
    ready: true,
    lab: () => state.lab,
    view: () => state.view,
    act,
    play: () => { state.playing = true; updatePlay(); },
    pause: () => { state.playing = false; updatePlay(); },
    open: (id, config) => openLab(id, null, config ?? null),
    nodePosition: (id) => cluster.position(id),
    playing: () => state.playing,
    blamed: () => [...state.blamed].sort((a, b) => a - b),
    firstFrameMs: null,
    shareUrl,
    traceBuilt: () => state.traceBuilt,
    frameStats: () => ({
      frames: state.frames.length,
      p50: percentile(state.frames, 0.5),
      p95: percentile(state.frames, 0.95),
      max: percentile(state.frames, 1),
      interval: { p50: percentile(state.intervals, 0.5), p95: percentile(state.intervals, 0.95), max: percentile(state.intervals, 1) },
      achievedSpeed: (state.lagSimMs + state.simMs) / Math.max(1e-9, state.lagWallMs + state.wallMs),
      parts: Object.fromEntries(
        Object.entries(state.parts).map(([k, xs]) => [k, { p50: percentile(xs, 0.5), p95: percentile(xs, 0.95), max: percentile(xs, 1) }]),
      ),
    }),
    renderPanelFixture,
    resetFrames: () => {
      state.lagSimMs = 0;
      state.lagWallMs = 0;
      state.simMs = 0;
      state.wallMs = 0;
      state.frames = [];
      state.intervals = [];
      state.parts = {};
    },
  };
  requestAnimationFrame(frame);
  if (import.meta.env.PROD && "serviceWorker" in navigator) {
    navigator.serviceWorker.register("./sw.js").catch(() => undefined);
  }
}

main().catch(showError);
