// The invariants the lab checks, in the side panel. A new violation pauses the run and
// rings the nodes it blames, so the moment is not played past; seeking back re-arms it.
import type { View } from "distlab";
import { ui } from "./dom";
import { updatePlay } from "./playback";
import { state } from "./state";

/** What the list shows, as JSON: it is rebuilt only when a status or detail changed. */
let rendered = "";

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

export function showInvariants(v: View): void {
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
  const key = JSON.stringify(v.invariants);
  if (key !== rendered) {
    rendered = key;
    renderInvariants(v);
  }
}
