// The fault controls, shown for labs on the network simulator (those that take its
// faults): heal partitions, send a client request, and sliders for loss, duplication,
// latency and the selected node's clock skew. (The click modes beside them are read by
// the stage.) A slider acts when released; while it moves, only its readout follows.
import type { LabAction } from "distlab";
import { ui } from "./dom";
import { act, onLabOpened } from "./lab-lifecycle";
import { state } from "./state";

function setSlider(input: HTMLInputElement, v: number): void {
  input.value = String(v);
  const out = input.parentElement?.querySelector("output");
  if (out) out.textContent = input.value;
}

function showNetwork(config: Record<string, unknown>): void {
  const network = config["network"] as { loss?: number; duplicate?: number; latency?: { type: string; [k: string]: unknown } } | undefined;
  setSlider(ui.loss, network?.loss ?? 0);
  setSlider(ui.duplicate, network?.duplicate ?? 0);
  setSlider(ui.latency, meanLatency(network?.latency) ?? 3);
  setSlider(ui.skew, 0);
}

function meanLatency(l: { type: string; [k: string]: unknown } | undefined): number | undefined {
  if (!l) return undefined;
  const n = (k: string): number => (typeof l[k] === "number" ? (l[k] as number) : 0);
  switch (l.type) {
    case "constant": return n("ms");
    case "uniform": return (n("minMs") + n("maxMs")) / 2;
    case "exponential": return n("minMs") + n("meanMs");
    case "logNormal": return n("medianMs");
    case "pareto": return n("scaleMs");
    default: return undefined;
  }
}

export function wireFaultControls(): void {
  onLabOpened(({ config }) => {
    ui.faults.hidden = !state.types.has("crash");
    ui.clientRequest.hidden = !state.types.has("clientRequest");
    showNetwork(config);
  });
  ui.heal.addEventListener("click", () => act({ type: "heal" }));
  ui.clientRequest.addEventListener("click", () => {
    // To the selected node, or else to one that is up.
    const up = state.view?.nodes.find((n) => n.status === "up");
    act({ type: "clientRequest", node: state.selected ?? up?.id ?? 0 });
  });
  const slider = (input: HTMLInputElement, make: (v: number) => LabAction): void => {
    input.addEventListener("input", () => setSlider(input, Number(input.value)));
    input.addEventListener("change", () => {
      setSlider(input, Number(input.value));
      act(make(Number(input.value)));
    });
  };
  slider(ui.loss, (p) => ({ type: "setLoss", probability: p }));
  slider(ui.duplicate, (p) => ({ type: "setDuplicate", probability: p }));
  // The latency slider sets a mean: uniform within ±50 % of it.
  slider(ui.latency, (ms) => ({ type: "setLatency", latency: { type: "uniform", minMs: ms * 0.5, maxMs: ms * 1.5 } }));
  slider(ui.skew, (ms) => ({ type: "clockSkew", node: state.selected ?? 0, skewMs: ms }));
}
