/**
 * SIGINT and SIGTERM while a process is being marked: caught and taken
 * only at a hold boundary, so that no hold is ever cut short by them.
 * Used by the marker that injects (marker.ts) and by the one that asks
 * the tracer process to (tracer_client.ts).
 *
 * @module
 */
import { ErrorKind, MergememError } from "../errors.ts";

/** The signals that end marking early (Ctrl-C, a service stop). */
const SIGNALS: Deno.Signal[] = ["SIGINT", "SIGTERM"];

/** What {@link deferSignals} returns. */
export interface DeferredSignals {
  /** The first signal caught so far, if any. */
  readonly caught: Deno.Signal | undefined;
  /**
   * Removes the listeners; throws MergememError(Interrupted) if a signal
   * came meanwhile.
   */
  release(): Promise<void>;
}

/**
 * Catches SIGINT/SIGTERM for the duration of marking one process.
 * `onSignal` runs once, at the first one (the tracer client forwards it
 * as a stop request).
 */
export function deferSignals(onSignal?: () => void): DeferredSignals {
  let caught: Deno.Signal | undefined;
  const handlers = SIGNALS.map((s) => {
    const h = () => {
      if (caught) return;
      caught = s;
      onSignal?.();
    };
    Deno.addSignalListener(s, h);
    return [s, h] as const;
  });
  return {
    get caught() {
      return caught;
    },
    async release() {
      // Let a signal that arrived during the last hold reach its listener.
      await new Promise((r) => setTimeout(r, 1));
      for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
      if (caught) {
        throw new MergememError(
          `interrupted by ${caught}; the target was detached unharmed`,
          ErrorKind.Interrupted,
        );
      }
    },
  };
}
