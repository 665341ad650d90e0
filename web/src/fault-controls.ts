// The fault controls, shown for labs on the network simulator (those that take its
// faults): heal partitions, send a client request, and sliders for loss, duplication,
// latency and the selected node's clock skew. (The click modes beside them are read by
// the stage.) A slider acts when released; while it moves, only its readout follows.
import { latencyMeanMs, networkDefaults, type LabAction, type NetworkConfig } from "distlab";
import { ui } from "./dom";
import { act, onLabOpened } from "./lab-lifecycle";
import { state } from "./state";

function setSlider(input: HTMLInputElement, v: number): void {
  input.value = String(v);
  const out = input.parentElement?.querySelector("output");
  if (out) out.textContent = input.value;
}

/** The sliders start where the lab's network is: its config's, with the simulator's
 * default network for what its config does not set. */
function showNetwork(config: Record<string, unknown>): void {
  const network = { ...networkDefaults(), ...(config["network"] as NetworkConfig | undefined) };
  setSlider(ui.loss, network.loss);
  setSlider(ui.duplicate, network.duplicate);
  const mean = latencyMeanMs(network.latency);
  // A Pareto tail with shape ≤ 1 has no mean: the slider goes to its top.
  setSlider(ui.latency, Number.isFinite(mean) ? mean : Number(ui.latency.max));
  setSlider(ui.skew, 0);
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
