/**
 * Assertions the tests share.
 *
 * @module
 */
import { deepStrictEqual, ok } from "node:assert/strict";
import { type ErrorKindValue, MergememError } from "../../src/errors.ts";
import type { Worker } from "./workers.ts";

/**
 * A user-facing failure of a mergemem process: the exit code, and an
 * error on stderr that matches `pattern`, with no stack trace and not an
 * internal error.
 */
export function assertCleanError(
  r: { code: number; stderr: string },
  code: number,
  pattern: RegExp,
): void {
  deepStrictEqual(r.code, code, `exit code; stderr: ${r.stderr}`);
  ok(pattern.test(r.stderr), `stderr matches ${pattern}: ${r.stderr}`);
  ok(!/\n\s+at /.test(r.stderr), `no stack trace: ${r.stderr}`);
  ok(!/internal error/.test(r.stderr), `not internal: ${r.stderr}`);
}

/**
 * Whether `e` is a MergememError of kind `kind` (and a message
 * matching `message`): for assert's throws() and rejects().
 */
export function isMergememError(
  e: unknown,
  kind: ErrorKindValue,
  message?: RegExp,
): e is MergememError {
  return e instanceof MergememError && e.kind === kind &&
    (message === undefined || message.test(e.message));
}

/** Each worker's COMMON pages still hold what they held at its start. */
export async function assertIntact(workers: Worker[]): Promise<void> {
  for (const w of workers) {
    deepStrictEqual(await w.command("sum"), `sum ${w.checksum}`, `${w.pid}`);
  }
}
