/**
 * cross_tenant.ts TENANT=PID[,PID...] TENANT=PID[,PID...] ...
 *
 * An independent check of the container tests (t_70_containers.sh),
 * written from the kernel's interfaces, not from src/: the physical frames
 * of private anonymous pages (pagemap: present, not file-backed or shared
 * anonymous) that processes of two or more tenants map. Two containers'
 * private pages share a frame only through KSM (no fork links them), so
 * any such frame that is not all zeros is a page merged across tenants.
 * All-zero frames (the shared zero page, KSM's zero pages) carry no data
 * and are counted apart. Prints one JSON object; needs root (PFNs).
 */
const PAGE = 4096;
const PRESENT = 1n << 63n;
const FILE_OR_SHARED = 1n << 61n;
const PFN_MASK = (1n << 55n) - 1n;

interface Where {
  tenants: Set<string>;
  pid: number;
  addr: bigint;
}

function privateRanges(pid: number): [bigint, bigint][] {
  const out: [bigint, bigint][] = [];
  for (const line of Deno.readTextFileSync(`/proc/${pid}/maps`).split("\n")) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S{4})/.exec(line);
    if (!m || m[3][3] !== "p" || line.endsWith("[vsyscall]")) continue;
    out.push([BigInt("0x" + m[1]), BigInt("0x" + m[2])]);
  }
  return out;
}

function scanPid(pid: number, tenant: string, frames: Map<bigint, Where>) {
  let pagemap: Deno.FsFile;
  try {
    pagemap = Deno.openSync(`/proc/${pid}/pagemap`);
  } catch {
    return; // gone
  }
  try {
    for (const [start, end] of privateRanges(pid)) {
      const pages = Number((end - start) / BigInt(PAGE));
      const buf = new Uint8Array(pages * 8);
      pagemap.seekSync(Number(start / BigInt(PAGE)) * 8, Deno.SeekMode.Start);
      let got = 0;
      while (got < buf.length) {
        const n = pagemap.readSync(buf.subarray(got));
        if (!n) break;
        got += n;
      }
      const view = new DataView(buf.buffer);
      for (let i = 0; i < got / 8; i++) {
        const e = view.getBigUint64(i * 8, true);
        if (!(e & PRESENT) || (e & FILE_OR_SHARED)) continue;
        const pfn = e & PFN_MASK;
        if (pfn === 0n) continue;
        const w = frames.get(pfn);
        if (w) w.tenants.add(tenant);
        else {
          frames.set(pfn, {
            tenants: new Set([tenant]),
            pid,
            addr: start + BigInt(i * PAGE),
          });
        }
      }
    }
  } finally {
    pagemap.close();
  }
}

function allZero(pid: number, addr: bigint): boolean | undefined {
  try {
    const f = Deno.openSync(`/proc/${pid}/mem`);
    try {
      const b = new Uint8Array(PAGE);
      f.seekSync(addr, Deno.SeekMode.Start);
      if (f.readSync(b) !== PAGE) return undefined;
      return b.every((x) => x === 0);
    } finally {
      f.close();
    }
  } catch {
    return undefined;
  }
}

const frames = new Map<bigint, Where>();
const tenants: Record<string, number[]> = {};
for (const arg of Deno.args) {
  const [name, list] = arg.split("=");
  tenants[name] = list.split(",").filter((x) => x).map(Number);
  for (const pid of tenants[name]) scanPid(pid, name, frames);
}
let cross = 0, zero = 0, unreadable = 0;
const examples: string[] = [];
for (const [pfn, w] of frames) {
  if (w.tenants.size < 2) continue;
  const z = allZero(w.pid, w.addr);
  if (z === true) zero++;
  else if (z === undefined) unreadable++;
  else {
    cross++;
    if (examples.length < 5) {
      examples.push(
        `pfn 0x${pfn.toString(16)} (${
          [...w.tenants].join(", ")
        }; pid ${w.pid} 0x${w.addr.toString(16)})`,
      );
    }
  }
}
console.log(JSON.stringify({
  tenants: Object.fromEntries(
    Object.entries(tenants).map(([k, v]) => [k, v.length]),
  ),
  frames: frames.size,
  cross_tenant_frames: cross,
  cross_tenant_zero_frames: zero,
  cross_tenant_unreadable: unreadable,
  examples,
}));
