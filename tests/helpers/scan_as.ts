/**
 * Runs a scan and prints its result as JSON: the tests run this as an
 * unprivileged user (setpriv) to see what a non-root scan reports.
 *
 *   deno run --allow-all tests/helpers/scan_as.ts '<ScanOptions JSON>'
 *
 * @module
 */
import { scan } from "../../src/scan/mod.ts";

const opts = JSON.parse(Deno.args[0] ?? "{}");
console.log(JSON.stringify(await scan(opts)));
