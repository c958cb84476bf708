import { strictEqual as assertEquals } from "node:assert/strict";
import { kpageflagsKsmReliable } from "../../src/pages/pagemap.ts";

// On a kernel with a correct KPF_KSM (the host's), our own fresh buffer is
// never KSM; without root the probe cannot tell.
Deno.test("kpageflagsKsmReliable: a fresh private page is not KSM", () => {
  let kpf: Deno.FsFile;
  try {
    kpf = Deno.openSync("/proc/kpageflags");
  } catch {
    return; // not root: kpageflags is unreadable, nothing to probe
  }
  try {
    const r = kpageflagsKsmReliable(kpf);
    const release = Deno.osRelease();
    // Debian 6.12 is the known-buggy kernel; the VM suite covers it.
    if (!release.startsWith("6.12.")) assertEquals(r, true);
  } finally {
    kpf.close();
  }
});
