/**
 * `--lock-timeout SECONDS`, shared by the commands that change ksmd's
 * settings or mark memory (merge, unmerge): how long to wait for another
 * mergemem run's KSM lock (src/ksm/lock.ts) before exiting 11.
 *
 * @module
 */
import { usageError } from "../errors.ts";
import type { DocumentedOptions } from "./options.ts";
import {
  DEFAULT_LOCK_TIMEOUT_SECONDS,
  type KsmLockOptions,
} from "../ksm/lock.ts";

/** The option, with its help (src/cli/options.ts). */
export const LOCK_TIMEOUT_OPTION = {
  "lock-timeout": {
    type: "string",
    arg: "S",
    help:
      `wait at most S seconds (default ${DEFAULT_LOCK_TIMEOUT_SECONDS}; 0: do not wait)\n` +
      "for another mergemem run that holds /run/mergemem/lock,\nthen exit 11",
  },
} as const satisfies DocumentedOptions;

/**
 * The lock options of merge() and unmerge(): the timeout from `value`
 * (seconds >= 0), and a one-line notice on stderr while waiting.
 */
export function lockOptions(
  value: string | undefined,
): Pick<KsmLockOptions, "lockTimeoutSeconds" | "onLockWait"> {
  let seconds = DEFAULT_LOCK_TIMEOUT_SECONDS;
  if (value !== undefined) {
    if (!/^\d+(\.\d+)?$/.test(value)) {
      throw usageError(`--lock-timeout: expected seconds >= 0, got '${value}'`);
    }
    seconds = Number(value);
  }
  return {
    lockTimeoutSeconds: seconds,
    onLockWait: (notice) => console.error(`mergemem: ${notice}`),
  };
}
