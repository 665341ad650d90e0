// Lessons: a lab's guided runs (data from the npm package, `lessons(id)`). A lesson opens
// its lab with the lesson's config and plays it a step at a time: each step applies its
// actions, then plays to its pause (after some simulated time, or once a condition holds
// on the view) and stops there, at the same event for every reader, however the frames
// slice it. Back reopens where the previous step ended; every paused step's address is a
// share link that reopens it (`…&run=…&lesson=<id>&at=<step>`). Leaving keeps the run as
// it is, for the reader to poke.
import { lessons, type Lesson } from "distlab";
import { ui } from "./dom";
import { guard } from "./errors";
import { onLabOpened, openLab } from "./lab-lifecycle";
import { updatePlay } from "./playback";
import { decodeHash, type SharedRun } from "./share";
import { state } from "./state";
import { shareUrl } from "./url-state";

interface Playing {
  labId: string;
  lesson: Lesson;
  index: number;
  /** The lab's clock when the step started, ms. */
  startedMs: number;
  done: boolean;
  /** Where each step ended, as a run to replay. */
  ends: (SharedRun | null)[];
}

let playing: Playing | null = null;
/** Labs the lesson itself opened that have not opened yet (a replay may take a few
 * frames): their opening does not leave the lesson. */
let ownOpens = 0;

export function lessonActive(): boolean {
  return playing !== null && !playing.done;
}

function open(id: string, run: SharedRun | null, config: unknown): void {
  ownOpens += 1;
  openLab(id, run, config as never);
}

function begin(lesson: Lesson, labId: string): void {
  playing = { labId, lesson, index: 0, startedMs: 0, done: true, ends: [] };
  open(labId, null, lesson.config);
  startStep(0);
}

function startStep(i: number): void {
  const p = playing;
  const lab = state.lab;
  if (!p || !lab) return;
  const step = p.lesson.steps[i];
  if (!step) return leave();
  p.index = i;
  for (const a of step.actions) if (guard(() => (lab.act(a as never), true)) === undefined) return leave();
  p.startedMs = lab.nowMs;
  p.done = false;
  state.playing = false;
  updatePlay();
  state.dirty = true;
  state.urgent = true;
  show();
}

/** Plays the current step for `wallMs` of wall time at the page's speed. */
export function lessonFrame(wallMs: number): void {
  const p = playing;
  const lab = state.lab;
  if (!p || !lab || p.done) return;
  const step = p.lesson.steps[p.index];
  if (!step) return;
  const reached = guard(() => lab.advanceLesson(step.pause, p.startedMs, Math.max(0.001, wallMs * state.speed)));
  state.maxStep = Math.max(state.maxStep, lab.steps);
  state.dirty = true;
  if (reached === undefined) return leave();
  if (reached) finishStep();
}

function finishStep(): void {
  const p = playing;
  const lab = state.lab;
  if (!p || !lab) return;
  p.done = true;
  state.urgent = true;
  p.ends[p.index] = { lab: p.labId, config: lab.config(), actions: lab.actions(), step: lab.steps, timeUs: Math.round(lab.nowMs * 1000) };
  history.replaceState(null, "", stepLink() ?? location.href);
  show();
}

/** The link that reopens the current step where it paused. */
export function stepLink(): string | null {
  const p = playing;
  const url = shareUrl();
  if (!p || !url) return null;
  return `${url}&lesson=${encodeURIComponent(p.lesson.id)}&at=${p.index}`;
}

function next(): void {
  const p = playing;
  const lab = state.lab;
  if (!p || !lab) return;
  // A step not yet at its pause is played to it first: the next one starts from there.
  const step = p.lesson.steps[p.index];
  if (!p.done && step) {
    for (let i = 0; i < 10_000 && guard(() => lab.advanceLesson(step.pause, p.startedMs, 60_000)) === false; i++);
    finishStep();
  }
  if (p.index + 1 >= p.lesson.steps.length) return leave();
  startStep(p.index + 1);
}

function back(): void {
  const p = playing;
  if (!p) return;
  if (p.index === 0) return begin(p.lesson, p.labId);
  const end = p.ends[p.index - 1];
  if (!end) return begin(p.lesson, p.labId);
  open(p.labId, end, null);
  p.index -= 1;
  p.done = true;
  show();
}

function leave(): void {
  playing = null;
  ownOpens = 0;
  ui.lesson.hidden = true;
  show();
}

function show(): void {
  const p = playing;
  ui.lesson.hidden = p === null;
  if (!p) return;
  const step = p.lesson.steps[p.index];
  ui.lessonTitle.textContent = `${p.lesson.title} · step ${p.index + 1} of ${p.lesson.steps.length}`;
  ui.lessonFollows.textContent = `follows ${p.lesson.follows}`;
  ui.lessonCaption.textContent = step?.caption ?? "";
  ui.lessonState.textContent = p.done ? "paused here: read, then Next" : "playing…";
  ui.lessonBack.disabled = false;
  ui.lessonNext.textContent = p.index + 1 >= p.lesson.steps.length ? "finish" : "next ›";
}

/** The lesson pickers for the open lab. */
function offer(labId: string): void {
  const list = guard(() => lessons(labId)) ?? [];
  ui.lessonPick.replaceChildren(
    ...list.map((l) => {
      const o = document.createElement("option");
      o.value = l.id;
      o.textContent = l.title;
      return o;
    }),
  );
  ui.lessonStart.hidden = ui.lessonPick.hidden = list.length === 0;
}

/** Opens the lesson step a link names (`lesson` and `at` beside a shared run), if it
 * does: the run replays to where the step paused. Returns whether it did. */
export function openLessonLink(hash: string): boolean {
  const params = new URLSearchParams(hash.replace(/^#/, ""));
  const id = params.get("lesson");
  const at = Number(params.get("at") ?? "0");
  const { lab, run } = decodeHash(hash);
  if (!id || !lab || !run) return false;
  const lesson = (guard(() => lessons(lab)) ?? []).find((l) => l.id === id);
  if (!lesson || !Number.isInteger(at) || at < 0 || at >= lesson.steps.length) return false;
  playing = { labId: lab, lesson, index: at, startedMs: 0, done: true, ends: [] };
  open(lab, run, null);
  show();
  return true;
}

/** For the keyboard: the lesson's Next and Back. */
export const lessonKeys = { next, back };

export function wireLessons(): void {
  onLabOpened(({ id, changedLab }) => {
    if (changedLab) offer(id);
    // Opening a lab by hand leaves the lesson.
    if (ownOpens > 0) ownOpens -= 1;
    else if (playing) leave();
  });
  ui.lessonStart.addEventListener("click", () => {
    const lesson = (guard(() => lessons(state.labId)) ?? []).find((l) => l.id === ui.lessonPick.value);
    if (lesson) begin(lesson, state.labId);
  });
  ui.lessonNext.addEventListener("click", next);
  ui.lessonBack.addEventListener("click", back);
  ui.lessonLeave.addEventListener("click", leave);
}

/** For the e2e: the lesson playing, its step and whether it paused there. */
export function lessonStatus(): { lesson: string; index: number; done: boolean } | null {
  return playing ? { lesson: playing.lesson.id, index: playing.index, done: playing.done } : null;
}
