/**
 * The mergemem version: deno.json's "version", the one place it is
 * written for the tool. The module's DKMS package (kmod/dkms.conf) carries
 * the same; tests/unit/version_test.ts keeps the two equal.
 *
 * @module
 */
import denoJson from "../deno.json" with { type: "json" };

/** The mergemem version, "major.minor.patch". */
export const VERSION: string = denoJson.version;
