/**
 * Tests that cannot run everywhere say why they were skipped: the reasons
 * that hold go into the test's name, so that the run's "ignored" line
 * names them ("... [skipped: not root, no gcc] ... ignored").
 *
 * @module
 */

/**
 * Deno.test's `name` and `ignore` for a test with requirements. `reasons`
 * maps each reason to skip ("the module is loaded") to whether it holds
 * here; the test is ignored when any holds, and its name then lists them.
 */
export function skipIf(
  name: string,
  reasons: Record<string, boolean>,
): { name: string; ignore: boolean } {
  const why = Object.entries(reasons).filter(([, holds]) => holds).map((
    [reason],
  ) => reason);
  return why.length === 0
    ? { name, ignore: false }
    : { name: `${name} [skipped: ${why.join(", ")}]`, ignore: true };
}
