// The open lab's config: the form in the side panel, built from the lab's config schema
// and filled with its effective config, and the seed in the toolbar. Either restarts the
// lab with what was set.
import type { LabConfig } from "distlab";
import { ui } from "./dom";
import { guard, onErrorMessage } from "./errors";
import { onLabOpened, openLab } from "./lab-lifecycle";
import { SchemaForm } from "./schema-form";
import { state } from "./state";

const form = new SchemaForm(ui.configForm);

export function wireConfigForm(): void {
  onErrorMessage((message) => form.markError(message));
  onLabOpened(({ lab, config }) => {
    form.build(lab.configSchema(), config);
    const apply = document.createElement("button");
    apply.type = "submit";
    apply.textContent = "apply config (restart)";
    ui.configForm.append(apply);
    // Only a lab with a seed has one to change.
    const hasSeed = typeof config["seed"] === "number";
    ui.seed.disabled = !hasSeed;
    if (hasSeed) ui.seed.value = String(config["seed"]);
  });
  ui.seed.addEventListener("change", () => {
    const config = { ...(state.lab?.config() as Record<string, unknown>), seed: Number(ui.seed.value) };
    openLab(state.labId, null, config as LabConfig);
  });
  ui.configForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const config = guard(() => form.value());
    if (config !== undefined) openLab(state.labId, null, config as LabConfig);
  });
}
