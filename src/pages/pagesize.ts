/**
 * The system page size, learnt once from /proc/self/smaps (KernelPageSize)
 * so that no FFI is needed for it.
 *
 * @module
 */

let cached: number | undefined;

/** The base page size in bytes (4096 on x86-64, 4096-65536 on arm64). */
export function systemPageSize(): number {
  if (cached !== undefined) return cached;
  cached = 4096;
  try {
    const m = /^KernelPageSize:\s+(\d+) kB$/m.exec(
      Deno.readTextFileSync("/proc/self/smaps"),
    );
    if (m) cached = Number(m[1]) * 1024;
  } catch {
    // Keep the common default.
  }
  return cached;
}
