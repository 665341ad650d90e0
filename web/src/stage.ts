// The stage: the cluster canvas. It is redrawn only when there is something new to show
// (a view, a resize, a selection, an animation under way), and it takes the pointer:
// clicking a node inspects it, or crashes/restarts or pauses/resumes it, depending on the
// mode picked among the fault controls; dragging a rectangle partitions its nodes off;
// clicking a message in flight shows what it carries.
import type { Panel, View } from "distlab";
import { ClusterRenderer } from "./cluster";
import { PanelsRenderer } from "./panels";
import { ui } from "./dom";
import { timed } from "./frame-stats";
import { act } from "./lab-lifecycle";
import { state } from "./state";

const cluster = new ClusterRenderer(ui.stage);
/** The stage must be redrawn (a new view, a resize, a selection). */
let stageDirty = true;

export function markStageDirty(): void {
  stageDirty = true;
}

/** Where node `id` is drawn, in CSS pixels of the stage. */
export function nodePosition(id: number): { x: number; y: number; r: number } | null {
  return cluster.position(id);
}

/** Draws the view if it changed or something on the stage is still moving. */
export function drawStage(view: View, wall: number): void {
  if (stageDirty || cluster.animating()) {
    stageDirty = false;
    timed("stage", () => cluster.draw(view, state.selected, state.blamed, wall, state.selectedMessage));
  }
}

/** The panel a lab names as its main picture, drawn over the stage. */
const stagePanel = new PanelsRenderer(ui.stagePanel);
let stagePanelKey = "";

/** The panels shown below the stage: all but the one on it. */
export function belowStage(v: View): Panel[] {
  const on = v.stagePanel;
  return on === undefined || on === null ? v.panels : v.panels.filter((_, i) => i !== on);
}

/** Puts the panel the lab names (`view.stagePanel`) on the stage, over its cluster:
 * sim.linearizability's history, not its client circles, is the picture. */
export function showStagePanel(v: View): void {
  const panel = v.stagePanel === undefined || v.stagePanel === null ? undefined : v.panels[v.stagePanel];
  ui.stagePanel.hidden = panel === undefined;
  ui.stageRow.classList.toggle("panel-on-stage", panel !== undefined);
  if (!panel) {
    if (stagePanelKey) {
      stagePanel.clear();
      stagePanelKey = "";
    }
    return;
  }
  stagePanelKey = panel.type;
  stagePanel.render([panel], []);
}

/** Fits the stage to the view: a lab without a cluster (an arrival process, a history)
 * gets only a strip of stage. */
export function showStageLayout(v: View): void {
  const clusterless = v.nodes.length === 0 && (v.stagePanel === undefined || v.stagePanel === null);
  if (ui.stageRow.classList.contains("no-cluster") !== clusterless) {
    ui.stageRow.classList.toggle("no-cluster", clusterless);
    stageDirty = true;
  }
}

/** Says what the keys do, and the pointer where there are nodes to click. */
export function showStageHint(): void {
  const hint = state.types.has("crash") ? "click a node; space plays, → steps" : "space plays, → steps";
  if (ui.stageHint.textContent !== hint) ui.stageHint.textContent = hint;
}

/** What a click on the stage does: the mode picked among the fault controls. */
function clickMode(): string {
  return document.querySelector<HTMLInputElement>('input[name="mode"]:checked')?.value ?? "inspect";
}

export function wireStage(): void {
  new ResizeObserver(() => (stageDirty = true)).observe(ui.stage);
  ui.stage.addEventListener("mousedown", (e) => {
    if (clickMode() === "partition") cluster.drag = { x0: e.offsetX, y0: e.offsetY, x1: e.offsetX, y1: e.offsetY };
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
      // A group of none or of every node would cut nothing.
      if (group.length > 0 && group.length < n) act({ type: "partition", groups: [group] });
      return;
    }
    const id = cluster.nodeAt(e.offsetX, e.offsetY);
    if (id === null) {
      // A message in flight: the inspector shows what it carries.
      const message = cluster.messageAt(e.offsetX, e.offsetY);
      if (message === null) return;
      state.selectedMessage = message;
      state.selected = null;
      state.dirty = true;
      state.urgent = true;
      markStageDirty();
      return;
    }
    state.selectedMessage = null;
    const node = state.view?.nodes.find((x) => x.id === id);
    state.selected = id;
    state.dirty = true;
    state.urgent = true;
    if (!node || !state.types.has("crash")) return;
    if (clickMode() === "crash") act({ type: node.status === "crashed" ? "restart" : "crash", node: id });
    if (clickMode() === "pause") act({ type: node.status === "paused" ? "resume" : "pause", node: id });
  });
}
