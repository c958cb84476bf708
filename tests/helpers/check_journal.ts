/**
 * Prints status()'s journal check of the run directory given as first
 * argument (checkJournal(), src/status/status.ts) as one JSON line: run as
 * another user by tests/unit/ksm_journal_test.ts.
 *
 * @module
 */
import { checkJournal } from "../../src/status/status.ts";

console.log(JSON.stringify(checkJournal(Deno.args[0])));
