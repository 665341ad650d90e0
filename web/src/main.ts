// The distlab page: a sidebar of the catalog, a stage that draws any lab from its view
// alone, controls, faults as actions, an inspector, invariants, time travel, a space-time
// diagram of the trace, share links, and soaks in a worker.
//
// This file only starts the page: each part lives in its own module and wires its own
// elements; the parts that depend on the open lab reset themselves when one opens
// (`onLabOpened` in lab-lifecycle.ts). Wiring comes first, so that the first lab opened
// already reaches every part.
import "./style.css";
import init, { catalog } from "distlab";
import { wireActionForm } from "./action-form";
import { renderCatalog, wireCatalogSidebar } from "./catalog-sidebar";
import { wireConfigForm } from "./config-form";
import { showError } from "./errors";
import { wireFaultControls } from "./fault-controls";
import { startFrameLoop, wireFrameLoop } from "./frame-loop";
import { openLab } from "./lab-lifecycle";
import { lessonKeys, openLessonLink, wireLessons } from "./lesson";
import { wireA11y } from "./a11y";
import { updatePlay, wirePlayback } from "./playback";
import { wireScrubber } from "./scrubber";
import { wireSoak } from "./soak";
import { wireSpacetime } from "./spacetime-panel";
import { wireStage } from "./stage";
import { state } from "./state";
import { installTestHooks } from "./test-hooks";
import { labInUrl, wireUrlState } from "./url-state";

async function main(): Promise<void> {
  await init();
  state.entries = catalog();
  wireStage();
  wirePlayback();
  wireScrubber();
  wireUrlState();
  // These reset themselves when a lab opens, in this order.
  wireFrameLoop();
  wireSpacetime();
  wireConfigForm();
  wireSoak();
  wireFaultControls();
  wireActionForm();
  wireCatalogSidebar();
  wireLessons();
  wireA11y(lessonKeys);
  renderCatalog();
  // The lab the address names (a shared run replays paused, where it was shared), or
  // the first implemented one; a lab opens playing.
  const { lab, run } = labInUrl();
  const first = lab ?? state.entries.find((e) => e.implemented)?.id;
  if (first && !openLessonLink(location.hash)) openLab(first, run);
  updatePlay();
  installTestHooks();
  startFrameLoop();
  // Offline once loaded; only the built page has the service worker.
  if (import.meta.env.PROD && "serviceWorker" in navigator) {
    navigator.serviceWorker.register("./sw.js").catch(() => undefined);
  }
}

main().catch(showError);
