// The inspector, in the side panel: the selected node's role, status and fields, with
// buttons for the faults that apply to it (crash or restart, pause or resume) and a
// client request, for labs that take them; or the clicked message's kind, route and
// fields.
import type { LabAction, View } from "distlab";
import { ui } from "./dom";
import { fmtValue } from "./format";
import { act } from "./lab-lifecycle";
import { state } from "./state";

/** What the inspector shows, as JSON: it is rebuilt only when the selected node's state
 * changed (rebuilding would also drop a button under the pointer). */
let rendered = "";

/** The last fields of the selected message: it stays shown after it arrives. */
let lastMessage = "";

function showMessage(v: View, id: number): void {
  const m = v.messages.find((x) => x.id === id);
  const detail = v.messageDetails?.find((d) => d.id === id);
  if (m) {
    const end = (e: { type: string; id: number }): string => (e.type === "node" ? `n${e.id}` : `client ${e.id}`);
    lastMessage =
      `message ${m.id} · ${m.kind}${detail ? ` · ${detail.label}` : ""}\n` +
      `${end(m.from)} → ${end(m.to)} · ${Math.round(m.progress * 100)} % of the way\n` +
      Object.entries(detail?.fields ?? {}).map(([k, val]) => `${k}: ${fmtValue(val)}`).join("\n");
  }
  const text = m ? lastMessage : `${lastMessage}\n(delivered or dropped since)`;
  if (text === rendered) return;
  rendered = text;
  ui.inspector.textContent = text;
}

export function showInspector(v: View): void {
  if (state.selectedMessage !== null && state.selected === null) return showMessage(v, state.selectedMessage);
  const node = v.nodes.find((n) => n.id === state.selected);
  const key = node ? JSON.stringify(node) : String(v.nodes.length > 0);
  if (key === rendered) return;
  rendered = key;
  if (!node) {
    ui.inspector.textContent = v.nodes.length ? "click a node" : "";
    return;
  }
  const buttons = document.createElement("div");
  buttons.className = "buttons";
  if (state.types.has("crash")) {
    const add = (label: string, a: LabAction): void => {
      const b = document.createElement("button");
      b.textContent = label;
      b.addEventListener("click", () => act(a));
      buttons.append(b);
    };
    if (node.status === "crashed") add("restart", { type: "restart", node: node.id });
    else add("crash", { type: "crash", node: node.id });
    if (node.status === "paused") add("resume", { type: "resume", node: node.id });
    else if (node.status === "up") add("pause", { type: "pause", node: node.id });
    if (state.types.has("clientRequest")) add("client request", { type: "clientRequest", node: node.id });
  }
  const text = document.createElement("div");
  text.textContent =
    `${node.label} · ${node.role} · ${node.status}\n` +
    Object.entries(node.fields).map(([k, val]) => `${k}: ${fmtValue(val)}`).join("\n");
  ui.inspector.replaceChildren(buttons, text);
}
