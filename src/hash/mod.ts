/**
 * Page checksums: the registry by name.
 *
 * @module
 */
import { addrotChecksum } from "./addrot.ts";
import { constChecksum } from "./const.ts";
import { crc32Checksum } from "./crc32.ts";
import { fastChecksum } from "./fast.ts";
import { sclChecksum } from "./scl.ts";
import type { Checksum, ChecksumName } from "./types.ts";
import { xxh64Checksum } from "./xxh64.ts";

export type { Checksum, ChecksumName } from "./types.ts";
export { crc32 } from "./crc32.ts";
export { xxh64 } from "./xxh64.ts";

/** Every checksum, by name. "xxh64" is the default. */
export const CHECKSUMS: Readonly<Record<ChecksumName, Checksum>> = {
  fast: fastChecksum,
  xxh64: xxh64Checksum,
  crc32: crc32Checksum,
  addrot: addrotChecksum,
  scl: sclChecksum,
  const: constChecksum,
};

/** The checksum names, default first. */
export const CHECKSUM_NAMES: readonly ChecksumName[] = [
  "xxh64",
  "fast",
  "crc32",
  "addrot",
  "scl",
  "const",
];

/** True if `name` is a known checksum name. */
export function isChecksumName(name: string): name is ChecksumName {
  return (CHECKSUM_NAMES as readonly string[]).includes(name);
}

/** The checksum called `name`; throws a TypeError for an unknown name. */
export function getChecksum(name: string): Checksum {
  if (!isChecksumName(name)) {
    throw new TypeError(
      `unknown checksum '${name}' (one of: ${CHECKSUM_NAMES.join(", ")})`,
    );
  }
  return CHECKSUMS[name];
}
