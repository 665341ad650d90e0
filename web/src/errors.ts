// The error banner: a lab call that throws (a bad action, a config out of range) shows its
// message and is never fatal. Forms that can name the bad field subscribe to the message.
import { ui } from "./dom";

const listeners: ((message: string) => void)[] = [];

/** `listener` gets every message shown, and "" when the banner clears. */
export function onErrorMessage(listener: (message: string) => void): void {
  listeners.push(listener);
}

export function showError(e: unknown): void {
  const message = e instanceof Error ? e.message : String(e);
  ui.error.textContent = message;
  ui.error.hidden = false;
  for (const l of listeners) l(message);
}

function clearError(): void {
  if (ui.error.hidden) return;
  ui.error.hidden = true;
  for (const l of listeners) l("");
}

/** Runs a lab call; a thrown Error (a bad action, say) is shown, never fatal. A call the
 * user made clears the error shown; the frame loop's (`clears` false) leave it, so an
 * error stays readable while the run plays on. */
export function guard<T>(f: () => T, clears = true): T | undefined {
  try {
    const v = f();
    if (clears) clearError();
    return v;
  } catch (e) {
    showError(e);
    return undefined;
  }
}
