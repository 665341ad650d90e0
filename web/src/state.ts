// What the parts of the page share: the open lab and its latest view, whether it plays,
// the selection and the nodes an invariant blames. Each part keeps its own bookkeeping
// (frame costs, the trace worker, caches of what it drew) to itself; only what more than
// one part reads or writes lives here.
import type { CatalogEntry, Lab, View } from "distlab";

export const state = {
  entries: [] as CatalogEntry[],
  lab: null as Lab | null,
  labId: "",
  view: null as View | null,
  playing: false,
  /** Simulated ms per wall ms asked for. */
  speed: 0.1,
  /** The furthest step the lab has reached: the scrubber's end, which seeking back keeps. */
  maxStep: 0,
  selected: null as number | null,
  /** The message in flight clicked on, by id: the inspector shows its fields. */
  selectedMessage: null as number | null,
  blamed: new Set<number>(),
  violated: new Set<string>(),
  /** The `type`s of the open lab's actions. */
  types: new Set<string>(),
  /** The lab changed since the last view: a new view is due. */
  dirty: true,
  /** Something the user did (or a seek, a new lab) must show on the next frame. */
  urgent: true,
};
