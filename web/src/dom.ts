// The page's elements, looked up once by id: a missing one is a mismatch between
// index.html and the code, and it fails when the page loads rather than at first use.

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el as T;
};

export const ui = {
  catalog: $<HTMLElement>("catalog"),
  filter: $<HTMLInputElement>("filter"),
  play: $<HTMLButtonElement>("play"),
  step: $<HTMLButtonElement>("step"),
  speed: $<HTMLInputElement>("speed"),
  speedOut: $<HTMLOutputElement>("speed-out"),
  seed: $<HTMLInputElement>("seed"),
  clock: $<HTMLElement>("clock"),
  share: $<HTMLButtonElement>("share"),
  soak: $<HTMLButtonElement>("soak"),
  soakProgress: $<HTMLProgressElement>("soak-progress"),
  soakBox: $<HTMLElement>("soak-box"),
  soakResult: $<HTMLElement>("soak-result"),
  error: $<HTMLElement>("error"),
  stageRow: $<HTMLElement>("stage-row"),
  stage: $<HTMLCanvasElement>("stage"),
  stageHint: $<HTMLElement>("stage-hint"),
  noMessages: $<HTMLElement>("no-messages"),
  spacetimeWrap: $<HTMLElement>("spacetime-wrap"),
  spacetime: $<HTMLCanvasElement>("spacetime"),
  traceInfo: $<HTMLElement>("trace-info"),
  scrubber: $<HTMLInputElement>("scrubber"),
  scrubOut: $<HTMLOutputElement>("scrub-out"),
  faults: $<HTMLElement>("faults"),
  heal: $<HTMLButtonElement>("heal"),
  clientRequest: $<HTMLButtonElement>("client-request"),
  loss: $<HTMLInputElement>("loss"),
  duplicate: $<HTMLInputElement>("duplicate"),
  latency: $<HTMLInputElement>("latency"),
  skew: $<HTMLInputElement>("skew"),
  actionPresets: $<HTMLElement>("action-presets"),
  actionForm: $<HTMLFormElement>("action-form"),
  panels: $<HTMLElement>("panels"),
  configForm: $<HTMLFormElement>("config-form"),
  invariants: $<HTMLElement>("invariants"),
  inspector: $<HTMLElement>("inspector"),
};
