// Playback, in the toolbar: play / pause (space), one event at a time (→), and the speed
// slider, whose readout also says when this machine cannot simulate the lab as fast as
// asked while drawing it.
import { ui } from "./dom";
import { guard } from "./errors";
import { fmtSpeed } from "./format";
import { state } from "./state";

/** Simulated and wall ms played since the speed readout was last updated (`simMs`,
 * `wallMs`), and before that since the frame statistics were reset (`lag…`). */
const played = { simMs: 0, wallMs: 0, lagSimMs: 0, lagWallMs: 0, lagShownAt: -Infinity };

export function updatePlay(): void {
  ui.play.textContent = state.playing ? "❚❚ pause" : "▶ play";
}

/** Sets the speed (simulated ms per wall ms) and the slider showing it. */
export function setSpeed(x: number): void {
  state.speed = x;
  ui.speed.value = String(Math.log10(x));
  ui.speedOut.textContent = fmtSpeed(x);
  played.simMs = 0;
  played.wallMs = 0;
}

export function togglePlay(): void {
  state.playing = !state.playing;
  updatePlay();
}

/** Pauses and processes one event; a lab with none due moves its clock on 10 ms instead,
 * so the button always shows something happen. */
export function stepOnce(): void {
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

/** A frame simulated `simMs` in `wallMs` of wall time. */
export function notePlayed(simMs: number, wallMs: number): void {
  played.simMs += simMs;
  played.wallMs += wallMs;
}

/** The speed readout shows when simulated time runs slower than asked (a frame simulates
 * only what fits in its budget). Updated at most twice a second, so it can be read. */
export function showLag(wall: number): void {
  if (wall - played.lagShownAt < 500) return;
  played.lagShownAt = wall;
  const achieved = played.wallMs > 0 ? played.simMs / played.wallMs : state.speed;
  played.lagSimMs += played.simMs;
  played.lagWallMs += played.wallMs;
  played.simMs = 0;
  played.wallMs = 0;
  const lagging = achieved < 0.9 * state.speed;
  const text = lagging ? `${fmtSpeed(state.speed)} (runs at ${fmtSpeed(achieved)})` : fmtSpeed(state.speed);
  if (ui.speedOut.textContent !== text) {
    ui.speedOut.textContent = text;
    ui.speedOut.title = lagging ? "this machine cannot simulate this lab that fast while drawing it: each frame simulates as much as fits in its budget" : "";
  }
}

/** Simulated ms per wall ms played since the last reset. */
export function achievedSpeed(): number {
  return (played.lagSimMs + played.simMs) / Math.max(1e-9, played.lagWallMs + played.wallMs);
}

export function resetAchievedSpeed(): void {
  played.lagSimMs = 0;
  played.lagWallMs = 0;
  played.simMs = 0;
  played.wallMs = 0;
}

export function wirePlayback(): void {
  ui.play.addEventListener("click", togglePlay);
  ui.step.addEventListener("click", stepOnce);
  ui.speed.addEventListener("input", () => {
    state.speed = 10 ** Number(ui.speed.value);
    ui.speedOut.textContent = fmtSpeed(state.speed);
    // A new speed: the readout measures from here.
    played.simMs = 0;
    played.wallMs = 0;
  });
  document.addEventListener("keydown", (e) => {
    const t = e.target as HTMLElement | null;
    // Keys typed into a field are the field's.
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT")) return;
    // Space on a focused button presses that button.
    if (e.key === " " && t?.tagName !== "BUTTON" && t?.tagName !== "SUMMARY") {
      e.preventDefault();
      togglePlay();
    } else if (e.key === "ArrowRight") {
      e.preventDefault();
      stepOnce();
    }
  });
}
