// Time travel: the scrubber under the stage seeks the lab to any step it has reached
// (the space-time diagram seeks through here too, when an event is clicked).
import type { View } from "distlab";
import { ui } from "./dom";
import { guard } from "./errors";
import { updatePlay } from "./playback";
import { state } from "./state";

/** Pauses and goes to the state after `step` events (within what the lab has reached). */
export function seek(step: number): void {
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

/** The scrubber at the view's step, out of the furthest reached. */
export function showScrubber(v: View): void {
  ui.scrubber.max = String(state.maxStep);
  ui.scrubber.value = String(v.step);
  ui.scrubOut.textContent = `${v.step} / ${state.maxStep}`;
}

export function wireScrubber(): void {
  ui.scrubber.addEventListener("input", () => seek(Number(ui.scrubber.value)));
}
