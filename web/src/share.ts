// The share link: the URL hash carries lab id, config (with its seed), the action script
// and the step and time reached, so opening it replays exactly what the sender saw.
import type { LabAction, LabConfig, RecordedAction } from "distlab";

export interface SharedRun {
  lab: string;
  config: LabConfig;
  actions: RecordedAction<LabAction>[];
  step: number;
  timeUs: number;
}

function toBase64Url(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function fromBase64Url(text: string): string {
  const bin = atob(text.replaceAll("-", "+").replaceAll("_", "/"));
  const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

export function encodeRun(run: SharedRun): string {
  const { lab, ...rest } = run;
  return `#lab=${encodeURIComponent(lab)}&run=${toBase64Url(JSON.stringify(rest))}`;
}

/** The lab named by a hash, and the run to replay if the hash carries one. */
export function decodeHash(hash: string): { lab: string | null; run: SharedRun | null } {
  const params = new URLSearchParams(hash.replace(/^#/, ""));
  const lab = params.get("lab");
  const packed = params.get("run");
  if (lab === null || packed === null) return { lab, run: null };
  const rest = JSON.parse(fromBase64Url(packed)) as Omit<SharedRun, "lab">;
  return { lab, run: { lab, ...rest } };
}
