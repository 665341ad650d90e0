// The open lab's own actions: its example actions as one-click presets, and the action
// builder, a form for any action the lab's schema allows, with its parameters. The
// simulator's faults are left out of the presets: they have controls of their own.
import { faultTypes, type Lab, type LabAction } from "distlab";
import { ui } from "./dom";
import { guard, onErrorMessage } from "./errors";
import { act, onLabOpened } from "./lab-lifecycle";
import { SchemaForm } from "./schema-form";
import { state } from "./state";

const actionForm = new SchemaForm(ui.actionForm, "action");

/** The simulator's fault types, read from the package once it is initialised. */
let faults: Set<string> | null = null;

function isFault(type: string): boolean {
  faults ??= new Set(faultTypes());
  return faults.has(type);
}

/** The presets, and the builder prefilled from the first of them (or the first example). */
function renderLabActions(lab: Lab): void {
  ui.actionPresets.replaceChildren();
  const examples = lab.exampleActions();
  const takesFaults = state.types.has("crash");
  const own = examples.filter((a) => !takesFaults || !isFault(a.type));
  const schema = lab.actionSchema();
  const load = (a: LabAction | null): void => {
    actionForm.build(schema, a, examples);
    const go = document.createElement("button");
    go.type = "submit";
    go.id = "do-action";
    go.textContent = "do it";
    ui.actionForm.append(go);
  };
  if (own.length > 0) {
    ui.actionPresets.append("examples: ");
    for (const a of own) {
      const b = document.createElement("button");
      const { type, ...rest } = a as { type: string } & Record<string, unknown>;
      const full = Object.keys(rest).length ? `${type} ${JSON.stringify(rest)}` : type;
      // A long one (a pasted history) is cut short; its tooltip has it whole.
      b.textContent = full.length > 64 ? `${full.slice(0, 63)}…` : full;
      b.title = `${full}\n\ndo it now (and load it into the action form)`;
      b.addEventListener("click", () => {
        load(a);
        act(a);
      });
      ui.actionPresets.append(b);
    }
  }
  load(own[0] ?? examples[0] ?? null);
}

export function wireActionForm(): void {
  onErrorMessage((message) => actionForm.markError(message));
  onLabOpened(({ lab }) => renderLabActions(lab));
  ui.actionForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const action = guard(() => actionForm.value());
    if (action !== undefined) act(action as LabAction);
  });
}
