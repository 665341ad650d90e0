// Opening a lab (new, with a config, or replaying a shared run) and acting on it. Each
// part of the page that depends on the open lab (its forms, the fault controls, the
// space-time diagram...) resets itself through `onLabOpened` rather than being called
// from here, so this file depends on none of them.
import { createLab, maxEventsPerCall, replayLab, type Lab, type LabAction, type LabConfig, type LabId } from "distlab";
import { ui } from "./dom";
import { guard, showError } from "./errors";
import { actionTypes } from "./schema-form";
import { paceOf, reducedMotion } from "./pace";
import { setSpeed, updatePlay } from "./playback";
import type { SharedRun } from "./share";
import { state } from "./state";

export interface OpenedLab {
  id: string;
  lab: Lab;
  /** The effective config: what was asked for, with the defaults filled in. */
  config: Record<string, unknown>;
  /** Another lab than the one open before (not the same one restarted). */
  changedLab: boolean;
}

const openedListeners: ((opened: OpenedLab) => void)[] = [];
const actedListeners: (() => void)[] = [];

/** `listener` runs each time a lab opens, after `state` describes it. */
export function onLabOpened(listener: (opened: OpenedLab) => void): void {
  openedListeners.push(listener);
}

/** `listener` runs after each action the lab took. */
export function onActed(listener: () => void): void {
  actedListeners.push(listener);
}

/** Opens lab `id`: a fresh one with `config` (null: the defaults), or `run` replayed to
 * the step and time it carries. A config the lab refuses leaves the open lab as it was,
 * with the error shown. */
export function openLab(id: string, run: SharedRun | null = null, config: LabConfig | null = null): void {
  replaying?.stop();
  if (run) {
    replayRun(id, run);
    return;
  }
  const lab = guard(() => createLab(id as LabId, config));
  if (lab) opened(id, lab, null);
}

/** The shared run being replayed in slices, if one is. */
let replaying: { stop: () => void } | null = null;

/** Moves `lab` one call's worth (`maxEventsPerCall()` events at most for the steps, as
 * many again for the time) towards the step and then the time `run` carries. Returns
 * whether it got there (or the run ended). A short run gets there in one call, so its
 * link opens at once, with no replay in the background. */
function replaySlice(lab: Lab, run: SharedRun): boolean {
  const slice = maxEventsPerCall();
  if (lab.steps < run.step) {
    const before = lab.steps;
    lab.seek(Math.min(run.step, before + slice));
    // Short of the asked step: the run ended there if the seek stopped early.
    if (lab.steps < run.step) return lab.steps - before < slice;
  }
  const now = lab.nowMs * 1000;
  if (run.timeUs <= now) return true;
  return lab.step((run.timeUs - now) / 1000) < slice;
}

/** Replays a shared run: a slice at a time, each a few frames apart, with progress and
 * a Stop button shown once it takes more than one slice — so a link asking for step 2^32
 * leaves the tab responsive. Stopping keeps the lab that was open. */
function replayRun(id: string, run: SharedRun): void {
  const lab = guard(() => replayLab(id as LabId, run.config, run.actions));
  if (!lab) return;
  const first = guard(() => replaySlice(lab, run));
  if (first === undefined) return lab.free();
  if (first) return opened(id, lab, run);
  const box = document.createElement("div");
  box.id = "replay-progress";
  box.setAttribute("role", "status");
  const text = document.createElement("span");
  const bar = document.createElement("progress");
  const stop = document.createElement("button");
  stop.textContent = "Stop";
  box.append(text, " ", bar, " ", stop);
  ui.error.after(box);
  let stopped = false;
  const end = (): void => {
    box.remove();
    replaying = null;
  };
  const show = (): void => {
    text.textContent = `Replaying the shared run: step ${lab.steps.toLocaleString()} of ${run.step.toLocaleString()}`;
    bar.max = Math.max(1, run.step);
    bar.value = Math.min(lab.steps, run.step);
  };
  replaying = { stop: () => (stopped = true) };
  stop.onclick = () => (stopped = true);
  show();
  // Given up: the lab open before stays; on a first visit, the lab opens fresh.
  const abandon = (): void => {
    end();
    lab.free();
    if (!state.lab) openLab(id);
  };
  const tick = (): void => {
    if (stopped) {
      const reached = lab.steps;
      abandon();
      // After the fresh lab opened (opening clears the banner).
      showError(`replay stopped at step ${reached} of ${run.step}`);
      return;
    }
    const done = guard(() => replaySlice(lab, run));
    if (done === undefined) {
      abandon();
    } else if (done) {
      end();
      opened(id, lab, run);
    } else {
      show();
      setTimeout(tick, 0);
    }
  };
  setTimeout(tick, 0);
}

/** Makes `lab` the open lab and tells every part of the page. */
function opened(id: string, lab: Lab, run: SharedRun | null): void {
  state.lab?.free();
  state.lab = lab;
  const changedLab = state.labId !== id;
  state.labId = id;
  // A lab opens playing, at a pace where its first interesting event shows within a few
  // seconds; a shared run opens paused where it was shared, and nothing moves by itself
  // for a reader who asked for reduced motion.
  if (changedLab) setSpeed(paceOf(id));
  state.playing = !run && !reducedMotion();
  state.selected = null;
  state.selectedMessage = null;
  state.blamed.clear();
  state.violated.clear();
  state.maxStep = lab.steps;
  state.dirty = true;
  state.urgent = true;
  state.types = actionTypes(lab.actionSchema());
  const info: OpenedLab = { id, lab, config: lab.config() as Record<string, unknown>, changedLab };
  for (const l of openedListeners) l(info);
  updatePlay();
  // The address names the open lab (a shared run keeps its link until the user moves
  // on): opening another lab from the page adds a history entry, so back and forward
  // go between labs; a sidebar link already added one, by changing the hash.
  const hash = `#lab=${encodeURIComponent(id)}`;
  if (!run && location.hash !== hash) {
    if (changedLab && location.hash.startsWith("#lab=")) history.pushState(null, "", hash);
    else history.replaceState(null, "", hash);
  }
  document.title = `${id} · distlab`;
}

/** Applies `action` to the open lab; a refused one is shown and changes nothing. */
export function act(action: LabAction): void {
  const lab = state.lab;
  if (!lab) return;
  const done = guard(() => {
    lab.act(action);
    return true;
  });
  if (!done) return;
  state.maxStep = lab.steps;
  state.dirty = true;
  state.urgent = true;
  for (const l of actedListeners) l();
}
