// How fast a lab plays when it opens: simulated ms per wall ms, chosen so that its first
// interesting event shows within a few seconds (a Raft election at 150-300 simulated ms,
// a rate limiter's first refusal within its first 1 s window, the disruptive rejoin's
// isolation at 1 s). The speed slider changes it; a lab not listed plays at 0.1x.
// Under `prefers-reduced-motion`, nothing starts moving by itself.

const PACE: Record<string, number> = {
  "consensus.raft": 0.1,
  "scenario.disruptive-rejoin": 0.4,
  "sim.linearizability": 1,
  "ratelimit.token-bucket": 0.5,
  "ratelimit.fixed-window": 0.5,
  "ratelimit.sliding-log": 0.5,
  "ratelimit.sliding-counter": 0.5,
  "ratelimit.leaky-bucket": 0.5,
  "ratelimit.keyed": 0.5,
  "ratelimit.distributed": 0.5,
  "sim.workload": 0.5,
  "sim.disk": 0.5,
  // A process acts every 300 simulated ms on average: at 0.1x nothing would show for
  // seconds.
  "consistency.lamport": 1,
  "consistency.vector-clock": 1,
  "consistency.hlc": 1,
  // Probes run every 500 simulated ms: at 0.1x one would show every five seconds.
  "resilience.health": 1,
  // Requests do move at 0.1x, but the faults come at 1 s (the scenarios) and 2 s (the
  // mesh): 10 to 20 seconds of calm first. At these the fault shows within 2.5 to 4 s
  // and the recovery (3 to 5 simulated s) within 10.
  "resilience.mesh": 0.5,
  "scenario.retry-storm": 0.4,
  "scenario.cascading-failure": 0.4,
};

export const DEFAULT_PACE = 0.1;

/** The speed lab `id` opens at. */
export function paceOf(id: string): number {
  return PACE[id] ?? DEFAULT_PACE;
}

/** Whether the reader asked for less motion: labs then open paused. */
export function reducedMotion(): boolean {
  return window.matchMedia?.("(prefers-reduced-motion: reduce)").matches ?? false;
}
