/**
 * Temporary directories of tests that are removed again: made with
 * Deno.makeTempDirSync, and removed with everything in them when the test
 * process ends, whether its tests passed or failed. For a directory a test
 * wants gone sooner, it removes it itself as well (removing twice is fine).
 *
 * @module
 */

const made: string[] = [];

addEventListener("unload", () => {
  for (const dir of made.splice(0)) {
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) {
        console.error(`cannot remove the test directory ${dir}: ${err}`);
      }
    }
  }
});

/** A new temporary directory, removed when the test process ends. */
export function tempDir(options?: Deno.MakeTempOptions): string {
  const dir = Deno.makeTempDirSync(options);
  made.push(dir);
  return dir;
}
