// Soak: the open lab's config run under 32 seeds from its own, 5 simulated seconds each,
// in a worker (the page stays responsive), reporting every invariant violated and the
// seed to replay it with. Only labs with a seed can be soaked.
import { ui } from "./dom";
import { onLabOpened } from "./lab-lifecycle";
import type { SoakMessage, SoakRequest } from "./soak.worker";
import { state } from "./state";

let soakWorker: Worker | null = null;

function startSoak(): void {
  const lab = state.lab;
  if (!lab) return;
  // A new soak replaces one still running.
  soakWorker?.terminate();
  soakWorker = new Worker(new URL("./soak.worker.ts", import.meta.url), { type: "module" });
  const config = lab.config() as Record<string, unknown>;
  const firstSeed = Number(config["seed"] ?? 1);
  const req: SoakRequest = { lab: state.labId, config, seeds: 32, firstSeed, durationMs: 5000 };
  ui.soakBox.hidden = false;
  ui.soakProgress.hidden = false;
  ui.soakProgress.value = 0;
  ui.soakResult.textContent = `running seeds ${firstSeed}–${firstSeed + 31}, 5 s each…`;
  const found: string[] = [];
  soakWorker.onmessage = (e: MessageEvent<SoakMessage>) => {
    const m = e.data;
    if (m.type === "progress") ui.soakProgress.value = m.done / m.total;
    else if (m.type === "violation") found.push(`seed ${m.seed}: ${m.invariant} at step ${m.step}`);
    else if (m.type === "done") {
      ui.soakProgress.hidden = true;
      ui.soakResult.textContent = `${m.seeds} seeds, ${m.events} events in ${(m.ms / 1000).toFixed(1)} s\n` + (found.length ? found.join("\n") : "no invariant violated");
    } else if (m.type === "error") {
      ui.soakProgress.hidden = true;
      ui.soakResult.textContent = m.message;
    }
  };
  soakWorker.postMessage(req);
}

export function wireSoak(): void {
  onLabOpened(({ config }) => (ui.soak.disabled = typeof config["seed"] !== "number"));
  ui.soak.addEventListener("click", startSoak);
}
