// The sidebar: every catalog id by section, filtered by what is typed above it. An
// implemented one links to its lab (`#lab=<id>`: opening it is the URL's business);
// the rest are listed as planned.
import type { CatalogEntry } from "distlab";
import { ui } from "./dom";
import { onLabOpened } from "./lab-lifecycle";
import { state } from "./state";

export function renderCatalog(): void {
  const q = ui.filter.value.trim().toLowerCase();
  const bySection = new Map<string, CatalogEntry[]>();
  for (const e of state.entries) {
    if (q && !`${e.id} ${e.title}`.toLowerCase().includes(q)) continue;
    bySection.set(e.section, [...(bySection.get(e.section) ?? []), e]);
  }
  const frag = document.createDocumentFragment();
  for (const [section, entries] of bySection) {
    const h = document.createElement("h3");
    h.textContent = section;
    frag.append(h);
    for (const e of entries) {
      const a = document.createElement("a");
      a.textContent = e.id;
      a.title = `${e.title}${e.checks ? ` — checks: ${e.checks}` : ""}`;
      a.dataset["id"] = e.id;
      if (e.implemented) {
        a.href = `#lab=${encodeURIComponent(e.id)}`;
        a.className = e.id === state.labId ? "implemented current" : "implemented";
      } else {
        a.className = "planned";
      }
      frag.append(a);
    }
  }
  ui.catalog.replaceChildren(frag);
}

export function wireCatalogSidebar(): void {
  ui.filter.addEventListener("input", renderCatalog);
  // The open lab is marked current.
  onLabOpened(() => renderCatalog());
}
