/**
 * The /dev/mergemem ABI in TypeScript: constants, ioctl numbers and struct
 * layouts, mirroring kmod/include/uapi/linux/mergemem.h. Every struct is
 * described here, once, as a table of field offsets; {@link pack} and
 * {@link unpack} are the only code that turns them into bytes, so that
 * tests/unit/abi_test.ts can check all of it against the C compiler's view
 * of the header.
 *
 * @module
 */

/** The API version this file describes (MERGEMEM_API). */
export const MERGEMEM_API = 1;
/** The ioctl type byte (MERGEMEM_IOC_MAGIC). */
export const MERGEMEM_IOC_MAGIC = 0xe7;

/** Feature bits negotiated by the handshake. */
export const MERGEMEM_FEATURE_PAGEINFO = 1n << 0n;
/** MERGE is implemented. */
export const MERGEMEM_FEATURE_MERGE = 1n << 1n;
/** UNMERGE is implemented. */
export const MERGEMEM_FEATURE_UNMERGE = 1n << 2n;
/** PAGEINFO marks no page accessed (the scan leaves page aging alone). */
export const MERGEMEM_FEATURE_PAGEINFO_UNTOUCHED = 1n << 3n;
/** THP is implemented (a kernel with transparent huge pages). */
export const MERGEMEM_FEATURE_THP = 1n << 4n;

/** struct mergemem_thp_args flags: set VM_NOHUGEPAGE. */
export const MERGEMEM_THP_NOHUGEPAGE = 1 << 0;
/** Clear VM_NOHUGEPAGE. */
export const MERGEMEM_THP_RESTORE = 1 << 1;
/** With RESTORE: set VM_HUGEPAGE again. */
export const MERGEMEM_THP_HUGEPAGE = 1 << 2;

/** Feature names, for messages and the status report. */
export const FEATURE_NAMES: Record<string, bigint> = {
  pageinfo: MERGEMEM_FEATURE_PAGEINFO,
  merge: MERGEMEM_FEATURE_MERGE,
  unmerge: MERGEMEM_FEATURE_UNMERGE,
  "pageinfo-untouched": MERGEMEM_FEATURE_PAGEINFO_UNTOUCHED,
  thp: MERGEMEM_FEATURE_THP,
};

/** Flags of struct mergemem_pageinfo. */
export const MERGEMEM_PI_PRESENT = 1 << 0;
/** Mapped to the shared zero page. */
export const MERGEMEM_PI_ZERO_PAGE = 1 << 1;
/** Already a KSM page. */
export const MERGEMEM_PI_KSM = 1 << 2;
/** An anonymous page. */
export const MERGEMEM_PI_ANON = 1 << 3;
/** Part of a transparent huge page. */
export const MERGEMEM_PI_THP = 1 << 4;
/** Present and all zero. */
export const MERGEMEM_PI_ZEROFILLED = 1 << 5;
/** The hash field is valid. */
export const MERGEMEM_PI_HASHED = 1 << 6;

/** The most pages one PAGEINFO call may describe. */
export const MERGEMEM_PAGEINFO_MAX = 65536;

/** The C types the ABI uses. */
export type FieldType = "u32" | "s32" | "u64";

/** One struct field: its C type and byte offset. */
export interface FieldLayout {
  readonly type: FieldType;
  readonly offset: number;
}

/** A struct: its size and its fields by name. */
export interface StructLayout<F extends string = string> {
  readonly name: string;
  readonly size: number;
  readonly fields: { readonly [K in F]: FieldLayout };
}

function layout<F extends string>(
  name: string,
  size: number,
  fields: { [K in F]: [FieldType, number] },
): StructLayout<F> {
  const out = {} as { [K in F]: FieldLayout };
  for (const k of Object.keys(fields) as F[]) {
    const [type, offset] = fields[k];
    out[k] = { type, offset };
  }
  return { name, size, fields: out };
}

/** struct mergemem_api. */
export const API_LAYOUT = layout("mergemem_api", 32, {
  api: ["u64", 0],
  features: ["u64", 8],
  ioctls: ["u64", 16],
  module_version: ["u32", 24],
  reserved: ["u32", 28],
});

/** struct mergemem_pageinfo. */
export const PAGEINFO_LAYOUT = layout("mergemem_pageinfo", 16, {
  hash: ["u64", 0],
  flags: ["u32", 8],
  reserved: ["u32", 12],
});

/**
 * A PAGEINFO entry read as u32 words, so that no BigInt is made per page:
 * entry i starts at word i × stride; the hash's low and high halves and
 * the flags are at these word offsets (little-endian, as on x86-64 and
 * arm64, the architectures the module is built for).
 */
export const PAGEINFO_WORDS = {
  stride: PAGEINFO_LAYOUT.size >>> 2,
  hashLo: PAGEINFO_LAYOUT.fields.hash.offset >>> 2,
  hashHi: (PAGEINFO_LAYOUT.fields.hash.offset >>> 2) + 1,
  flags: PAGEINFO_LAYOUT.fields.flags.offset >>> 2,
} as const;

/** struct mergemem_pageinfo_args. */
export const PAGEINFO_ARGS_LAYOUT = layout("mergemem_pageinfo_args", 40, {
  mem_fd: ["s32", 0],
  flags: ["u32", 4],
  start: ["u64", 8],
  npages: ["u64", 16],
  out: ["u64", 24],
  done: ["u64", 32],
});

/** struct mergemem_range_args. */
export const RANGE_ARGS_LAYOUT = layout("mergemem_range_args", 56, {
  mem_fd: ["s32", 0],
  flags: ["u32", 4],
  start: ["u64", 8],
  end: ["u64", 16],
  vmas_changed: ["u64", 24],
  bytes_changed: ["u64", 32],
  vmas_unchanged: ["u64", 40],
  vmas_skipped: ["u64", 48],
});

/** struct mergemem_thp_args. */
export const THP_ARGS_LAYOUT = layout("mergemem_thp_args", 56, {
  mem_fd: ["s32", 0],
  flags: ["u32", 4],
  start: ["u64", 8],
  end: ["u64", 16],
  vmas_changed: ["u64", 24],
  vmas_hugepage: ["u64", 32],
  vmas_unchanged: ["u64", 40],
  vmas_skipped: ["u64", 48],
});

/** Every struct of the ABI, for the ABI test. */
export const LAYOUTS: readonly StructLayout[] = [
  API_LAYOUT,
  PAGEINFO_LAYOUT,
  PAGEINFO_ARGS_LAYOUT,
  RANGE_ARGS_LAYOUT,
  THP_ARGS_LAYOUT,
];

/** The values of a struct: numbers for 32-bit fields, bigints for 64-bit. */
export type StructValues<F extends string> = { [K in F]: bigint };

/**
 * Packs values into a new buffer of the struct's size (little endian, the
 * byte order of every architecture the module is built for). Fields not
 * given are zero, which is what reserved fields must be.
 */
export function pack<F extends string>(
  l: StructLayout<F>,
  values: Partial<StructValues<F>>,
): Uint8Array<ArrayBuffer> {
  const buf = new Uint8Array(l.size);
  const view = new DataView(buf.buffer);
  for (const k of Object.keys(values) as F[]) {
    const v = values[k];
    if (v === undefined) continue;
    const f = l.fields[k];
    if (f.type === "u64") {
      view.setBigUint64(f.offset, BigInt.asUintN(64, v), true);
    } else if (f.type === "u32") {
      view.setUint32(f.offset, Number(BigInt.asUintN(32, v)), true);
    } else view.setInt32(f.offset, Number(BigInt.asIntN(32, v)), true);
  }
  return buf;
}

/** Reads every field of a struct out of a buffer (at a byte offset). */
export function unpack<F extends string>(
  l: StructLayout<F>,
  buf: Uint8Array,
  at = 0,
): StructValues<F> {
  const view = new DataView(buf.buffer, buf.byteOffset + at, l.size);
  const out = {} as StructValues<F>;
  for (const k of Object.keys(l.fields) as F[]) {
    const f = l.fields[k];
    if (f.type === "u64") out[k] = view.getBigUint64(f.offset, true);
    else if (f.type === "u32") out[k] = BigInt(view.getUint32(f.offset, true));
    else out[k] = BigInt(view.getInt32(f.offset, true));
  }
  return out;
}

/** _IOC direction bits (asm-generic: x86-64, arm64, riscv). */
const IOC_WRITE = 1n;
const IOC_READ = 2n;

/** _IOC(dir, type, nr, size) as in include/uapi/asm-generic/ioctl.h. */
export function ioc(
  dir: bigint,
  type: number,
  nr: number,
  size: number,
): bigint {
  return (dir << 30n) | (BigInt(size) << 16n) | (BigInt(type) << 8n) |
    BigInt(nr);
}

/** _IOWR(type, nr, size). */
export function iowr(type: number, nr: number, size: number): bigint {
  return ioc(IOC_READ | IOC_WRITE, type, nr, size);
}

/** MERGEMEM_IOC_API. */
export const MERGEMEM_IOC_API = iowr(MERGEMEM_IOC_MAGIC, 0x00, API_LAYOUT.size);
/** MERGEMEM_IOC_PAGEINFO. */
export const MERGEMEM_IOC_PAGEINFO = iowr(
  MERGEMEM_IOC_MAGIC,
  0x01,
  PAGEINFO_ARGS_LAYOUT.size,
);
/** MERGEMEM_IOC_MERGE. */
export const MERGEMEM_IOC_MERGE = iowr(
  MERGEMEM_IOC_MAGIC,
  0x02,
  RANGE_ARGS_LAYOUT.size,
);
/** MERGEMEM_IOC_UNMERGE. */
export const MERGEMEM_IOC_UNMERGE = iowr(
  MERGEMEM_IOC_MAGIC,
  0x03,
  RANGE_ARGS_LAYOUT.size,
);

/** MERGEMEM_IOC_THP. */
export const MERGEMEM_IOC_THP = iowr(
  MERGEMEM_IOC_MAGIC,
  0x04,
  THP_ARGS_LAYOUT.size,
);

/** Every constant by its C name, for the ABI test. */
export const CONSTANTS: Record<string, bigint> = {
  MERGEMEM_API: BigInt(MERGEMEM_API),
  MERGEMEM_IOC_MAGIC: BigInt(MERGEMEM_IOC_MAGIC),
  MERGEMEM_FEATURE_PAGEINFO,
  MERGEMEM_FEATURE_MERGE,
  MERGEMEM_FEATURE_UNMERGE,
  MERGEMEM_FEATURE_PAGEINFO_UNTOUCHED,
  MERGEMEM_FEATURE_THP,
  MERGEMEM_THP_NOHUGEPAGE: BigInt(MERGEMEM_THP_NOHUGEPAGE),
  MERGEMEM_THP_RESTORE: BigInt(MERGEMEM_THP_RESTORE),
  MERGEMEM_THP_HUGEPAGE: BigInt(MERGEMEM_THP_HUGEPAGE),
  MERGEMEM_PI_PRESENT: BigInt(MERGEMEM_PI_PRESENT),
  MERGEMEM_PI_ZERO_PAGE: BigInt(MERGEMEM_PI_ZERO_PAGE),
  MERGEMEM_PI_KSM: BigInt(MERGEMEM_PI_KSM),
  MERGEMEM_PI_ANON: BigInt(MERGEMEM_PI_ANON),
  MERGEMEM_PI_THP: BigInt(MERGEMEM_PI_THP),
  MERGEMEM_PI_ZEROFILLED: BigInt(MERGEMEM_PI_ZEROFILLED),
  MERGEMEM_PI_HASHED: BigInt(MERGEMEM_PI_HASHED),
  MERGEMEM_PAGEINFO_MAX: BigInt(MERGEMEM_PAGEINFO_MAX),
  MERGEMEM_IOC_API,
  MERGEMEM_IOC_PAGEINFO,
  MERGEMEM_IOC_MERGE,
  MERGEMEM_IOC_UNMERGE,
  MERGEMEM_IOC_THP,
};
