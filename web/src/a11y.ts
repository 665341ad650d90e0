// What makes the page usable without the canvas or the mouse: the keyboard shortcuts
// (listed on `?`), and a text alternative of the stage — the nodes as a table (role,
// status, badge, rings) with a button to inspect each, and a one-line summary as the
// canvas's accessible name.
import type { View } from "distlab";
import { ui } from "./dom";
import { state } from "./state";

/** The shortcuts, as the `?` dialog lists them. */
const SHORTCUTS: [string, string][] = [
  ["space", "play / pause"],
  ["→", "one event"],
  ["n", "next lesson step"],
  ["b", "previous lesson step"],
  ["s", "share: copy a link to this moment"],
  ["/", "filter the catalog"],
  ["?", "this list"],
  ["Esc", "close this list"],
];

function showShortcuts(): void {
  const d = ui.shortcuts;
  if (!d.firstElementChild) {
    const h = document.createElement("h2");
    h.textContent = "Keyboard shortcuts";
    const dl = document.createElement("dl");
    for (const [key, what] of SHORTCUTS) {
      const dt = document.createElement("dt");
      const kbd = document.createElement("kbd");
      kbd.textContent = key;
      dt.append(kbd);
      const dd = document.createElement("dd");
      dd.textContent = what;
      dl.append(dt, dd);
    }
    const close = document.createElement("button");
    close.textContent = "close";
    close.addEventListener("click", () => d.close());
    d.append(h, dl, close);
  }
  if (!d.open) d.showModal();
}

/** What the table shows, as text: rebuilt only when it changed. */
let rendered = "";

/** The nodes as a table: the stage's text alternative. */
export function showNodeTable(v: View): void {
  const glance = new Map((v.glances ?? []).map((g) => [g.node, g]));
  const rows = v.nodes.slice(0, 200).map((n) => {
    const g = glance.get(n.id);
    return [n.label, n.role, n.status, g?.badge ?? "", (g?.rings ?? []).map((r) => `${r.name} ${Math.round(r.value * 100)} %`).join(", "), String(n.id)];
  });
  const key = JSON.stringify(rows);
  const roles = new Map<string, number>();
  for (const n of v.nodes) roles.set(n.role, (roles.get(n.role) ?? 0) + 1);
  const summary = v.nodes.length === 0 ? "no cluster" : `${v.nodes.length} nodes: ${[...roles].map(([r, c]) => `${c} ${r}`).join(", ")}; ${v.messages.length} messages in flight`;
  if (ui.stage.getAttribute("aria-label") !== summary) ui.stage.setAttribute("aria-label", summary);
  if (key === rendered) return;
  rendered = key;
  ui.nodeTableBox.hidden = v.nodes.length === 0;
  // Cells change in place (the rings move every frame): a button being pressed stays.
  const body = ui.nodeTable.tBodies[0] ?? ui.nodeTable.createTBody();
  while (body.rows.length > rows.length) body.deleteRow(-1);
  rows.forEach((r, i) => {
    let tr = body.rows[i];
    if (!tr) {
      tr = body.insertRow();
      for (let c = 0; c < 5; c++) tr.insertCell();
      const b = document.createElement("button");
      b.textContent = "inspect";
      b.addEventListener("click", () => {
        state.selected = Number(b.dataset["node"]);
        state.selectedMessage = null;
        state.dirty = true;
        state.urgent = true;
      });
      tr.insertCell().append(b);
    }
    for (let c = 0; c < 5; c++) {
      const cell = tr.cells[c];
      if (cell && cell.textContent !== r[c]) cell.textContent = r[c] ?? "";
    }
    const b = tr.cells[5]?.firstElementChild as HTMLButtonElement | null;
    if (b && b.dataset["node"] !== r[5]) {
      b.dataset["node"] = r[5];
      b.setAttribute("aria-label", `inspect ${r[0]}`);
    }
  });
}

export function wireA11y(lesson: { next: () => void; back: () => void }): void {
  ui.help.addEventListener("click", showShortcuts);
  document.addEventListener("keydown", (e) => {
    const t = e.target as HTMLElement | null;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT")) return;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "?") showShortcuts();
    else if (e.key === "n" && !ui.lesson.hidden) lesson.next();
    else if (e.key === "b" && !ui.lesson.hidden) lesson.back();
    else if (e.key === "s") ui.share.click();
    else if (e.key === "/") {
      e.preventDefault();
      ui.filter.focus();
    } else return;
  });
}
