// The space-time diagram beside the stage, and the trace worker that feeds it. It is
// shown only for labs that send messages: a lab whose lanes would stay empty (a rate
// limiter) leaves its room to the stage, with a note saying why.
//
// The trace is built by a worker (it is costly on long runs): the current step is asked
// for whenever the worker is idle, at most four times a second while playing, and, once
// a build takes long (a big cluster's trace), the worker is left idle twice as long as
// its last build took, so it does not keep a core busy that the page needs.
import type { View } from "distlab";
import { ui } from "./dom";
import { timed } from "./frame-stats";
import { onActed, onLabOpened } from "./lab-lifecycle";
import { seek } from "./scrubber";
import { SpaceTimeDiagram } from "./spacetime";
import { markStageDirty } from "./stage";
import { state } from "./state";
import type { TraceColumns, TraceRequest } from "./trace.worker";

const diagram = new SpaceTimeDiagram(ui.spacetime, (step) => seek(step));

/** What each lab's trace showed: whether it sends messages. */
const labSendsMessages = new Map<string, boolean>();

const trace = {
  /** The diagram is shown (the lab sends messages). */
  shown: true,
  worker: null as Worker | null,
  /** When the last trace was asked for, and for which step (-1: ask again). */
  lastAskedAt: -Infinity,
  step: -1,
  busy: false,
  /** How long the worker took to build the last trace, ms. */
  cost: 0,
  /** What the last trace from the worker was built from. */
  built: null as TraceColumns["built"] | null,
  /** The id of the last request: a reply to an older one (another lab's) is ignored. */
  id: 0,
};

/** The step and hash of the trace the diagram shows, and the worker's replays. */
export function traceBuilt(): TraceColumns["built"] | null {
  return trace.built;
}

/** Shows the space-time diagram, or (a lab that sends no messages, whose lanes would stay
 * empty) hides it, leaving its room to the stage, with a note saying why. */
function showSpacetime(show: boolean): void {
  if (trace.shown === show) return;
  trace.shown = show;
  ui.spacetimeWrap.hidden = !show;
  ui.noMessages.hidden = show;
  ui.stageRow.classList.toggle("no-messages", !show);
  markStageDirty();
}

function onTrace(e: MessageEvent<TraceColumns | { id: number; error: string }>): void {
  trace.busy = false;
  const m = e.data;
  if (m.id !== trace.id) return;
  trace.cost = performance.now() - trace.lastAskedAt;
  if ("error" in m) {
    ui.traceInfo.textContent = `trace: ${m.error}`;
    return;
  }
  diagram.setTrace(m);
  trace.built = m.built;
  // A trace of events none of which the simulator made: the lab sends no messages.
  if (m.simulated !== null) {
    labSendsMessages.set(state.labId, m.simulated);
    showSpacetime(m.simulated);
  }
  ui.traceInfo.textContent = `${m.events} events${m.complete ? "" : " (oldest dropped)"} · hash ${m.hash}`;
}

/** Asks the worker for the trace at the view's step, unless it is busy, has it already,
 * or (while playing) was asked too recently. */
export function refreshTrace(v: View, wall: number): void {
  const lab = state.lab;
  if (!lab || trace.step === v.step || trace.busy) return;
  // Builds over a second (a big cluster's 100,000-event tail) wait five times as long.
  if (state.playing && wall - trace.lastAskedAt < Math.max(250, (trace.cost > 1000 ? 5 : 3) * trace.cost)) return;
  if (!trace.worker) {
    trace.worker = new Worker(new URL("./trace.worker.ts", import.meta.url), { type: "module" });
    trace.worker.onmessage = onTrace;
  }
  const req: TraceRequest = {
    id: ++trace.id,
    lab: state.labId,
    config: lab.config(),
    actions: lab.actions(),
    step: v.step,
    nodes: v.nodes.length,
  };
  trace.busy = true;
  trace.step = v.step;
  trace.lastAskedAt = wall;
  trace.worker.postMessage(req);
}

/** Draws the diagram up to the view's time, if it is shown. */
export function drawSpacetime(view: View): void {
  if (trace.shown) timed("spacetime", () => diagram.draw(view.timeUs, view.nodes.length));
}

export function wireSpacetime(): void {
  onLabOpened(({ id }) => {
    trace.step = -1;
    trace.lastAskedAt = -Infinity;
    trace.cost = 0;
    diagram.setTrace(null);
    trace.id++; // a reply for the previous lab is ignored
    if (trace.busy) {
      // Building the previous lab's trace can take seconds (a big cluster): stop it.
      trace.worker?.terminate();
      trace.worker = null;
    }
    trace.busy = false;
    // Until its trace tells, a lab on the network simulator (it takes its faults) is
    // taken to send messages.
    showSpacetime(labSendsMessages.get(id) ?? state.types.has("crash"));
  });
  // An action changes the trace even where the step stays the same.
  onActed(() => (trace.step = -1));
}
