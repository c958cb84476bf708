/**
 * "const", the 1999 mergemem's "world's worst checksum": every page hashes
 * to 0, so every page collides with every other. It exists to prove that
 * results never depend on the checksum: byte comparison alone decides what
 * is a duplicate. Quadratic in the number of distinct pages; tests only.
 *
 * @module
 */
import { type Checksum, perPage } from "./types.ts";

/** The constant checksum. */
export const constChecksum: Checksum = {
  name: "const",
  description: "every page hashes to 0 (tests that results never depend on it)",
  digest: () => 0n,
  hashPages: perPage(() => 0),
};
