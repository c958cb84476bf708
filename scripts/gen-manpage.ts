/**
 * Writes the manual page mergemem(8) and the bash completion, generated
 * from the CLI's option declarations and help texts (src/cli/manpage.ts).
 *
 *   deno run --allow-all scripts/gen-manpage.ts OUTDIR
 *
 * writes OUTDIR/mergemem.8 and OUTDIR/mergemem.bash-completion. The page's
 * date is SOURCE_DATE_EPOCH's (dpkg-buildpackage sets it from
 * debian/changelog), else today's.
 *
 * @module
 */
import { bashCompletion, collectDocs, manPage } from "../src/cli/manpage.ts";

const out = Deno.args[0];
if (!out || Deno.args.length !== 1) {
  console.error("usage: gen-manpage.ts OUTDIR");
  Deno.exit(2);
}
const epoch = Deno.env.get("SOURCE_DATE_EPOCH");
const date = epoch && /^\d+$/.test(epoch)
  ? new Date(Number(epoch) * 1000)
  : new Date();
const docs = collectDocs();
Deno.mkdirSync(out, { recursive: true });
Deno.writeTextFileSync(`${out}/mergemem.8`, manPage(docs, date));
Deno.writeTextFileSync(
  `${out}/mergemem.bash-completion`,
  bashCompletion(docs),
);
console.error(
  `gen-manpage: wrote ${out}/mergemem.8 and ${out}/mergemem.bash-completion`,
);
