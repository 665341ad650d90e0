// `window.distlabPage`: what the browser e2e (tests/e2e) and the frame benchmark read and
// drive, so they need not reach into the page's modules or scrape its DOM.
import { lessons, type Lab, type LabAction, type LabConfig, type Lesson, type Panel, type View } from "distlab";
import { frameStats, resetFrameStats, type FrameStats } from "./frame-stats";
import { act, openLab } from "./lab-lifecycle";
import { lessonStatus, stepLink } from "./lesson";
import { PanelsRenderer, ringGeometry } from "./panels";
import { achievedSpeed, resetAchievedSpeed, updatePlay } from "./playback";
import { traceBuilt } from "./spacetime-panel";
import { nodePosition } from "./stage";
import { state } from "./state";
import { shareUrl } from "./url-state";

declare global {
  interface Window {
    distlabPage: {
      ready: boolean;
      lab: () => Lab | null;
      view: () => View | null;
      act: (a: LabAction) => void;
      play: () => void;
      pause: () => void;
      open: (id: string, config?: LabConfig) => void;
      nodePosition: (id: number) => { x: number; y: number; r: number } | null;
      playing: () => boolean;
      blamed: () => number[];
      firstFrameMs: number | null;
      shareUrl: () => string | null;
      /** The step and hash of the trace the diagram shows, and the worker's replays. */
      traceBuilt: () => { step: number; hash: string; replays: number } | null;
      frameStats: () => FrameStats;
      /** The lesson playing, its step, and whether the step reached its pause. */
      lesson: () => { lesson: string; index: number; done: boolean } | null;
      /** The link that reopens the lesson step where it paused. */
      lessonLink: () => string | null;
      /** The lessons a lab carries (the npm package's `lessons`). */
      lessons: (id: string) => Lesson[];
      resetFrames: () => void;
      /** Draws `panel` through the generic panel renderers, in a box of its own over the
       * page (a renderer no registered lab uses yet, the ring, is tested this way);
       * returns the ring's circle in CSS pixels of the box's canvas. */
      renderPanelFixture: (panel: Panel) => { cx: number; cy: number; r: number } | null;
    };
  }
}

let fixture: { root: HTMLElement; renderer: PanelsRenderer } | null = null;

function renderPanelFixture(panel: Panel): { cx: number; cy: number; r: number } | null {
  if (!fixture) {
    const root = document.createElement("div");
    root.id = "panel-fixture";
    root.style.cssText = "position: fixed; left: 8px; top: 8px; width: 420px; z-index: 10";
    document.body.append(root);
    fixture = { root, renderer: new PanelsRenderer(root) };
  }
  fixture.renderer.render([panel], []);
  const canvas = fixture.root.querySelector("canvas");
  return canvas ? ringGeometry(canvas.clientWidth, canvas.clientHeight) : null;
}

export function installTestHooks(): void {
  window.distlabPage = {
    ready: true,
    lab: () => state.lab,
    view: () => state.view,
    act,
    play: () => { state.playing = true; updatePlay(); },
    pause: () => { state.playing = false; updatePlay(); },
    open: (id, config) => openLab(id, null, config ?? null),
    nodePosition,
    playing: () => state.playing,
    blamed: () => [...state.blamed].sort((a, b) => a - b),
    firstFrameMs: null,
    shareUrl,
    traceBuilt,
    frameStats: () => frameStats(achievedSpeed()),
    lesson: lessonStatus,
    lessonLink: stepLink,
    lessons: (id) => lessons(id),
    renderPanelFixture,
    resetFrames: () => {
      resetAchievedSpeed();
      resetFrameStats();
    },
  };
}
