// Opening a lab (new, with a config, or replaying a shared run) and acting on it. Each
// part of the page that depends on the open lab (its forms, the fault controls, the
// space-time diagram...) resets itself through `onLabOpened` rather than being called
// from here, so this file depends on none of them.
import { createLab, replayLab, type Lab, type LabAction, type LabConfig, type LabId } from "distlab";
import { guard } from "./errors";
import { actionTypes } from "./schema-form";
import { updatePlay } from "./playback";
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
  state.types = actionTypes(lab.actionSchema());
  const opened: OpenedLab = { id, lab, config: lab.config() as Record<string, unknown>, changedLab };
  for (const l of openedListeners) l(opened);
  updatePlay();
  // The address names the open lab (a shared run keeps its link until the user moves on).
  if (!run) history.replaceState(null, "", `#lab=${encodeURIComponent(id)}`);
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
