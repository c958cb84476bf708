/**
 * A sleep that an AbortSignal ends early (resolving, not rejecting): the
 * burst's poll and the lock's wait both stop at once on SIGINT/SIGTERM and
 * then check the signal themselves.
 *
 * @module
 */

/** Resolves after `ms`, or as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const onAbort = () => {
      clearTimeout(t);
      resolve();
    };
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
