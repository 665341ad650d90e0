// The frame loop: each animation frame simulates the time that passed (at the speed
// asked, within a budget), takes a view when one is due, and hands it to every part of
// the page; the stage, the panels, the trace and the space-time diagram are drawn when
// there is something new. Its bookkeeping (what steps and views cost) decides how a
// frame's 16 ms are spent, so that a 1,000-node cluster still plays evenly.
import type { Lab, View } from "distlab";
import { ui } from "./dom";
import { guard } from "./errors";
import { fmtTime } from "./format";
import { recordFrame, recordInterval, timed } from "./frame-stats";
import { showInspector } from "./inspector";
import { showNodeTable } from "./a11y";
import { showInvariants } from "./invariants";
import { onLabOpened } from "./lab-lifecycle";
import { lessonActive, lessonFrame } from "./lesson";
import { PanelsRenderer } from "./panels";
import { notePlayed, showLag } from "./playback";
import { showScrubber } from "./scrubber";
import { drawSpacetime, refreshTrace } from "./spacetime-panel";
import { belowStage, drawStage, markStageDirty, showStageHint, showStageLayout, showStagePanel } from "./stage";
import { state } from "./state";

/** Time a frame may spend simulating, ms: all of it in a frame that only steps; less
 * what showing costs in one that does both. */
const STEP_BUDGET_MS = 9;
/** Above this cost of stepping plus showing (ms, moving averages), frames alternate. */
const SPLIT_ABOVE_MS = 8;

const panels = new PanelsRenderer(ui.panels);

const loop = {
  lastWall: performance.now(),
  lastFrameAt: null as number | null,
  /** When the last view was taken, and what views cost (moving average, ms). */
  lastViewAt: -Infinity,
  viewCost: 0,
  lastPanels: 0,
  /** A view arrived while playing: its panels are drawn on a later frame. */
  panelsDue: false,
  /** Wall ms one simulated ms costs to step (moving average). */
  stepCostPerMs: 0,
  /** What a frame's step, and a frame's view and drawing, cost (moving averages, ms). */
  stepCost: 0,
  showCost: 0,
  /** The last frame stepped (so the next may show); wall ms not simulated yet. */
  stepped: false,
  owedMs: 0,
};

/**
 * While playing, how long to wait between two views. A view crosses from wasm into JS
 * objects, and on a big cluster that is the costliest part of a frame (about 5 ms for
 * 1,000 nodes): it is then taken every other frame or so, so that views cost at most
 * about a third of the time, and frames stay even. Cheap views are taken every frame.
 */
function viewInterval(): number {
  return loop.viewCost < 2 ? 0 : Math.min(100, 3 * loop.viewCost);
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
  const predicted = loop.stepCostPerMs * simMs;
  // Events come in bursts (a thousand timers due together), so a step may cost a few
  // times its prediction: above a third of the budget it is sliced.
  if (predicted <= budgetMs / 3) {
    lab.step(simMs);
    noteStepCost(performance.now() - t0, simMs);
    return simMs;
  }
  // Slices of about a quarter of the budget each.
  const slice = Math.max(simMs / 64, budgetMs / 4 / Math.max(loop.stepCostPerMs, 1e-6));
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
  loop.stepCostPerMs = 0.8 * loop.stepCostPerMs + 0.2 * (ms / simMs);
}

function frame(wall: number): void {
  const t0 = performance.now();
  if (loop.lastFrameAt !== null) recordInterval(wall - loop.lastFrameAt);
  loop.lastFrameAt = wall;
  const dt = Math.min(100, Math.max(0, wall - loop.lastWall));
  loop.lastWall = wall;
  const lab = state.lab;
  // A big cluster's frame either simulates or shows what it simulated: doing both in one
  // frame is what made the slow frames. While stepping and showing together cost more
  // than SPLIT_ABOVE_MS, frames alternate, and a showing frame's time is simulated by the
  // next one (so simulated time still runs at the speed asked).
  const viewDue = state.urgent || !state.playing || wall - loop.lastViewAt >= viewInterval();
  const split = state.playing && loop.stepCost + loop.showCost > SPLIT_ABOVE_MS;
  const showNow = lab !== null && state.dirty && viewDue && (!split || loop.stepped || state.urgent);
  // A lesson step plays itself to its pause.
  if (lab && lessonActive() && dt > 0) timed("step", () => lessonFrame(dt));
  if (lab && state.playing && dt > 0) {
    if (split && showNow && !state.urgent) {
      loop.owedMs = Math.min(100, loop.owedMs + dt);
    } else {
      const wallMs = dt + loop.owedMs;
      loop.owedMs = 0;
      const s0 = performance.now();
      // A frame that only steps may spend more on it than one that also shows.
      const budget = split ? STEP_BUDGET_MS : Math.max(4, Math.min(STEP_BUDGET_MS, 10 - loop.showCost));
      const ok = timed("step", () => guard(() => stepWithin(lab, wallMs * state.speed, budget), false));
      loop.stepCost = 0.8 * loop.stepCost + 0.2 * (performance.now() - s0);
      loop.stepped = true;
      if (ok === undefined) state.playing = false;
      else notePlayed(ok, wallMs);
      state.maxStep = Math.max(state.maxStep, lab.steps);
      state.dirty = true;
      showLag(wall);
    }
  }
  const show0 = performance.now();
  let showed = false;
  if (lab && showNow) {
    showed = true;
    loop.stepped = false;
    state.dirty = false;
    state.urgent = false;
    loop.lastViewAt = wall;
    const v0 = performance.now();
    // Only the inspected node's fields: on a big cluster they are most of the view.
    const fieldsOf = state.selected === null ? [] : [state.selected];
    const v = timed("view", () => guard(() => lab.view({ fieldsOf }), false));
    loop.viewCost = 0.8 * loop.viewCost + 0.2 * (performance.now() - v0);
    if (v) {
      state.view = v;
      markStageDirty();
      timed("dom", () => showView(v));
    }
  }
  if (state.view) {
    const view = state.view;
    drawStage(view, wall);
    if (window.distlabPage && window.distlabPage.firstFrameMs === null && state.playing) {
      window.distlabPage.firstFrameMs = performance.now();
    }
    // While playing, one panel per frame (each refreshes every few frames), and not in
    // a frame that took a costly view: the work is spread over frames.
    const tookView = loop.lastViewAt === wall;
    if (loop.panelsDue && state.playing && wall - loop.lastPanels > 30 && (!tookView || viewInterval() === 0)) {
      loop.panelsDue = false;
      loop.lastPanels = wall;
      timed("panels", () => panels.render(belowStage(view), view.metrics, 1));
    }
    timed("trace", () => refreshTrace(view, wall));
    drawSpacetime(view);
    if (showed) loop.showCost = 0.8 * loop.showCost + 0.2 * (performance.now() - show0);
  }
  recordFrame(performance.now() - t0);
  requestAnimationFrame(frame);
}

/** Hands a new view to every part of the page that shows it. */
function showView(v: View): void {
  ui.clock.textContent = `t = ${fmtTime(v.timeUs)} · step ${v.step}`;
  showStageLayout(v);
  showScrubber(v);
  // Before the panels: a new violation pauses the run.
  showInvariants(v);
  showInspector(v);
  showNodeTable(v);
  showStagePanel(v);
  if (!state.playing) timed("panels", () => panels.render(belowStage(v), v.metrics));
  else loop.panelsDue = true;
  showStageHint();
}

export function wireFrameLoop(): void {
  onLabOpened(({ changedLab }) => {
    // What another lab's (or config's) steps and views cost says nothing of this one's.
    loop.stepCostPerMs = 0;
    loop.viewCost = 0;
    loop.stepCost = 0;
    loop.showCost = 0;
    loop.owedMs = 0;
    // The same lab restarted keeps its panels and their charts, which still fit it.
    if (changedLab) panels.clear();
  });
}

export function startFrameLoop(): void {
  requestAnimationFrame(frame);
}
