// The trace for the space-time diagram, built off the main thread: serialising a trace
// costs about 17 µs per event in wasm, so a 100,000-event trace would freeze the page for
// seconds. The worker replays the same run (config and action script: the same seed gives
// the same trace), keeps the events it has read, asks the replica only for those that came
// after them (`traceJsonFrom`), and sends the diagram transferable columns it can
// binary-search and draw without allocating. Actions taken on the page since are handed
// to the replica (`extendActions`) rather than replayed from the start.
import init, { maxEventsPerCall, replayLab, traceKinds, type Lab, type LabAction, type LabConfig, type LabId, type RecordedAction } from "distlab";

export interface TraceRequest {
  id: number;
  lab: string;
  config: LabConfig;
  actions: RecordedAction<LabAction>[];
  step: number;
  nodes: number;
}

/** Seeks to `step`: at once within the part of the run the replica has reached, and
 * beyond it one call's worth of events (`maxEventsPerCall()`) at a time. */
function seekFar(lab: Lab, step: number): void {
  try {
    lab.seek(step);
    return;
  } catch {
    // Beyond one call's reach: go in slices.
  }
  const slice = maxEventsPerCall();
  while (lab.steps < step) {
    const before = lab.steps;
    lab.seek(Math.min(step, before + slice));
    if (lab.steps - before < slice && lab.steps < step) return; // the run ended
  }
}

/** A lab's own events (a rate limiter's decisions): not the simulator's. */
const EXTERNAL = "external";
/** Event kind → code, the core's order (`traceKinds()`), read once the module is loaded. */
let kindCode: Map<string, number> | null = null;
function kindCodes(): Map<string, number> {
  kindCode ??= new Map(traceKinds().map((k, i) => [k, i]));
  return kindCode;
}

export interface TraceColumns {
  id: number;
  events: number;
  complete: boolean;
  hash: string;
  /** Names of event kinds, indexed by `kind` (the core's `traceKinds()`). */
  kinds: string[];
  lanes: number;
  nodes: number;
  /** Whether any event is the simulator's (a send, a timer, a crash...); null for an empty
   * trace. A lab whose trace has none sends no messages (a rate limiter's decisions). */
  simulated: boolean | null;
  /** The trace the columns hold, as the worker got it: step, hash and how many times it
   * has replayed a run from its start. */
  built: { step: number; hash: string; replays: number };
  /** Names of message kinds, indexed by `msgKind`. */
  msgKinds: string[];
  time: Float64Array;
  step: Float64Array;
  kind: Uint8Array;
  /** Lane of `from` (or of the event's node or client); -1 if none. */
  from: Int32Array;
  /** Lane of `to`; -1 if none. */
  to: Int32Array;
  msgKind: Uint16Array;
  /** For a delivery or drop: the index of its send, or -1. */
  sendIndex: Int32Array;
  /** For a send: when it was delivered or dropped, or -1 if not (yet). */
  doneAt: Float64Array;
}

interface Ep { type: string; id: number }
interface RawEvent { step: number; time: number; type: string; node?: number; client?: number; from?: Ep; to?: Ep; msg?: number; kind?: string }

interface RawTrace { hash: string; events: number; first?: number; complete: boolean; trace: RawEvent[] }

/** The most events the worker holds (and the diagram can scroll back through). */
const MAX_HELD = 100_000;
/** The most events read at once after a replay: the newest, so the diagram is back soon. */
const FIRST_READ = 20_000;

/** A replica of the page's run and the trace read from it so far. */
interface Replica {
  key: string;
  lab: Lab;
  /** The actions the replica has, each as JSON. */
  actions: string[];
  held: RawEvent[];
  /** Number of the event after the last one held. */
  have: number;
  /** Number of the first event held. */
  first: number;
  /** Whether the lab numbers its trace's events (else each read is the whole trace). */
  numbered: boolean;
  last: RawTrace | null;
}

let ready: Promise<unknown> | null = null;
let cached: Replica | null = null;
let replays = 0;

/** Brings the replica's held events up to its current step. */
function read(r: Replica): RawTrace {
  const raw = JSON.parse(r.lab.traceJsonFrom(r.have, r.last ? MAX_HELD : FIRST_READ)) as RawTrace;
  r.last = raw;
  if (raw.first === undefined) {
    r.numbered = false;
    r.held = raw.trace;
    return raw;
  }
  r.numbered = true;
  if (raw.events < r.have) {
    // The replica went back in time: what came after its present goes.
    const keep = raw.events - r.first;
    if (keep > 0) r.held.length = keep;
    else {
      r.held = [];
      r.first = raw.events;
    }
    r.have = raw.events;
  }
  if (raw.first !== r.have) {
    // A gap (the lab let events go that were never read): start again from these.
    r.held = [];
    r.first = raw.first;
  }
  for (const e of raw.trace) r.held.push(e);
  r.have = raw.events;
  if (r.held.length > MAX_HELD) {
    const drop = r.held.length - MAX_HELD;
    r.held.splice(0, drop);
    r.first += drop;
  }
  return raw;
}

function columns(id: number, r: Replica, raw: RawTrace, nodes: number): { data: TraceColumns; transfer: ArrayBuffer[] } {
  const ev = r.held;
  const complete = r.numbered ? r.first === 0 : raw.complete;
  const n = ev.length;
  let clients = 0;
  for (const e of ev) {
    if (e.client !== undefined) clients = Math.max(clients, e.client + 1);
    if (e.from?.type === "client") clients = Math.max(clients, e.from.id + 1);
    if (e.to?.type === "client") clients = Math.max(clients, e.to.id + 1);
  }
  const lane = (ep: Ep | undefined): number => (ep ? (ep.type === "node" ? ep.id : nodes + ep.id) : -1);
  const code = kindCodes();
  const external = code.get(EXTERNAL) ?? 0;
  const msgKinds: string[] = [];
  const msgKindCode = new Map<string, number>();
  const d: TraceColumns = {
    id, events: raw.events, complete, hash: raw.hash, kinds: [...code.keys()], lanes: nodes + clients, nodes, msgKinds,
    simulated: n === 0 ? null : ev.some((e) => e.type !== EXTERNAL && code.has(e.type)),
    built: { step: r.lab.steps, hash: raw.hash, replays },
    time: new Float64Array(n), step: new Float64Array(n), kind: new Uint8Array(n),
    from: new Int32Array(n), to: new Int32Array(n), msgKind: new Uint16Array(n),
    sendIndex: new Int32Array(n).fill(-1), doneAt: new Float64Array(n).fill(-1),
  };
  const sendOf = new Map<number, number>();
  ev.forEach((e, i) => {
    d.time[i] = e.time;
    d.step[i] = e.step;
    d.kind[i] = code.get(e.type) ?? external;
    d.from[i] = e.from ? lane(e.from) : e.node !== undefined ? e.node : e.client !== undefined ? nodes + e.client : -1;
    d.to[i] = lane(e.to);
    if (e.kind !== undefined) {
      let k = msgKindCode.get(e.kind);
      if (k === undefined) {
        k = msgKinds.length;
        msgKinds.push(e.kind);
        msgKindCode.set(e.kind, k);
      }
      d.msgKind[i] = k;
    }
    if (e.msg === undefined) return;
    if (e.type === "send") sendOf.set(e.msg, i);
    else if (e.type === "deliver" || e.type === "drop") {
      const s = sendOf.get(e.msg);
      if (s !== undefined) {
        d.sendIndex[i] = s;
        if (d.doneAt[s] === -1) d.doneAt[s] = e.time;
      }
    }
  });
  const transfer = [d.time, d.step, d.kind, d.from, d.to, d.msgKind, d.sendIndex, d.doneAt].map((a) => a.buffer as ArrayBuffer);
  return { data: d, transfer };
}

/** Whether the replica can show the page's run at `step`: going back in time, its own
 *  later actions are the page's future too; going on, it takes the actions the page took
 *  since. False if the page rewrote the past (an action at or before the replica's
 *  present that the replica does not have). */
function follow(r: Replica, actions: string[], recorded: RecordedAction<LabAction>[], step: number): boolean {
  const shared = Math.min(actions.length, r.actions.length);
  for (let i = 0; i < shared; i++) if (actions[i] !== r.actions[i]) return false;
  if (actions.length <= r.actions.length) {
    // The page has applied fewer: the rest must still lie ahead of `step` (the page
    // applies every action due at its step).
    const next = r.actions[actions.length];
    return next === undefined || (JSON.parse(next) as RecordedAction<LabAction>).step > step;
  }
  try {
    r.lab.extendActions(recorded.slice(r.actions.length));
  } catch {
    return false;
  }
  r.actions = actions;
  return true;
}

self.onmessage = async (e: MessageEvent<TraceRequest>) => {
  const req = e.data;
  try {
    ready ??= init();
    await ready;
    // The same run going on: keep the replica, hand it the newer actions, move it forward.
    const key = JSON.stringify([req.lab, req.config]);
    const actions = req.actions.map((a) => JSON.stringify(a));
    if (!(cached && cached.key === key && follow(cached, actions, req.actions, req.step))) {
      cached?.lab.free();
      cached = null;
      const lab = replayLab(req.lab as LabId, req.config, req.actions);
      replays += 1;
      cached = { key, lab, actions, held: [], have: 0, first: 0, numbered: false, last: null };
    }
    seekFar(cached.lab, req.step);
    const raw = read(cached);
    const { data, transfer } = columns(req.id, cached, raw, req.nodes);
    (self as unknown as Worker).postMessage(data, transfer);
  } catch (err) {
    // The next request starts from a fresh replay rather than from a replica in doubt.
    cached?.lab.free();
    cached = null;
    (self as unknown as Worker).postMessage({ id: req.id, error: err instanceof Error ? err.message : String(err) });
  }
};
