// The URL as the page's state: the hash names the open lab (`#lab=<id>`), or carries a
// whole run to replay (`share.ts` encodes it). Following a link or going back opens what
// the hash names; the share button puts the current run in the address bar and the
// clipboard.
import { ui } from "./dom";
import { guard } from "./errors";
import { openLab } from "./lab-lifecycle";
import { openLessonLink } from "./lesson";
import { decodeHash, encodeRun, type SharedRun } from "./share";
import { state } from "./state";

/** The lab the address names, and the run to replay if it carries one; nothing if the
 * hash cannot be read (the error is shown). */
export function labInUrl(): { lab: string | null; run: SharedRun | null } {
  return guard(() => decodeHash(location.hash)) ?? { lab: null, run: null };
}

/** A link that replays the open lab to where it is now: config, actions, step, time. */
export function shareUrl(): string | null {
  // Where the lab is, not the last view drawn: a lesson step pauses between frames, and
  // its link must name the step it paused at.
  const lab = state.lab;
  if (!lab) return null;
  const run: SharedRun = { lab: state.labId, config: lab.config(), actions: lab.actions(), step: lab.steps, timeUs: Math.round(lab.nowMs * 1000) };
  return `${location.origin}${location.pathname}${encodeRun(run)}`;
}

export function wireUrlState(): void {
  window.addEventListener("hashchange", () => {
    if (openLessonLink(location.hash)) return;
    const { lab, run } = labInUrl();
    // A link to the open lab (its sidebar entry) leaves it running; a shared run replays.
    if (lab && (run || lab !== state.labId)) openLab(lab, run);
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
}
