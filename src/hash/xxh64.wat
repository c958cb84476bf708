;; XXH64 with seed 0 (the kernel's xxh64(), lib/xxhash.c), in WebAssembly.
;;
;; Source of src/hash/xxh64_wasm.ts (scripts/build-wasm.sh regenerates it
;; with Debian's wabt). Hand-written because the scan hashes every present
;; page: hash_pages() hashes a whole read batch in one call, in the memory
;; the pages were read into, with no copy, no per-page call from
;; JavaScript and no BigInt per page.
;;
;; The memory is the importer's, so that it can be given a fixed size: its
;; address never changes and process_vm_readv(2) can read into it.
(module
  (import "env" "memory" (memory 1))

  ;; XXH64 of `len` bytes at `p`.
  (func $xxh64 (export "xxh64") (param $p i32) (param $len i32) (result i64)
    (local $end i32) (local $limit i32) (local $h i64)
    (local $v1 i64) (local $v2 i64) (local $v3 i64) (local $v4 i64)
    (local.set $end (i32.add (local.get $p) (local.get $len)))
    (if (i32.ge_u (local.get $len) (i32.const 32))
      (then
        (local.set $limit (i32.sub (local.get $end) (i32.const 32)))
        (local.set $v1 (i64.add (i64.const 0x9E3779B185EBCA87)
                                (i64.const 0xC2B2AE3D27D4EB4F)))
        (local.set $v2 (i64.const 0xC2B2AE3D27D4EB4F))
        (local.set $v3 (i64.const 0))
        (local.set $v4 (i64.sub (i64.const 0) (i64.const 0x9E3779B185EBCA87)))
        ;; One stripe of 32 bytes per iteration, the round inlined:
        ;; v = rotl(v + lane * P2, 31) * P1.
        (loop $stripe
          (local.set $v1 (i64.mul (i64.rotl (i64.add (local.get $v1)
            (i64.mul (i64.load offset=0 (local.get $p))
                     (i64.const 0xC2B2AE3D27D4EB4F))) (i64.const 31))
            (i64.const 0x9E3779B185EBCA87)))
          (local.set $v2 (i64.mul (i64.rotl (i64.add (local.get $v2)
            (i64.mul (i64.load offset=8 (local.get $p))
                     (i64.const 0xC2B2AE3D27D4EB4F))) (i64.const 31))
            (i64.const 0x9E3779B185EBCA87)))
          (local.set $v3 (i64.mul (i64.rotl (i64.add (local.get $v3)
            (i64.mul (i64.load offset=16 (local.get $p))
                     (i64.const 0xC2B2AE3D27D4EB4F))) (i64.const 31))
            (i64.const 0x9E3779B185EBCA87)))
          (local.set $v4 (i64.mul (i64.rotl (i64.add (local.get $v4)
            (i64.mul (i64.load offset=24 (local.get $p))
                     (i64.const 0xC2B2AE3D27D4EB4F))) (i64.const 31))
            (i64.const 0x9E3779B185EBCA87)))
          (local.set $p (i32.add (local.get $p) (i32.const 32)))
          (br_if $stripe (i32.le_u (local.get $p) (local.get $limit))))
        (local.set $h (i64.add (i64.add (i64.rotl (local.get $v1) (i64.const 1))
                                        (i64.rotl (local.get $v2) (i64.const 7)))
                               (i64.add (i64.rotl (local.get $v3) (i64.const 12))
                                        (i64.rotl (local.get $v4) (i64.const 18)))))
        (local.set $h (call $merge (local.get $h) (local.get $v1)))
        (local.set $h (call $merge (local.get $h) (local.get $v2)))
        (local.set $h (call $merge (local.get $h) (local.get $v3)))
        (local.set $h (call $merge (local.get $h) (local.get $v4))))
      (else
        (local.set $h (i64.const 0x27D4EB2F165667C5))))
    (local.set $h (i64.add (local.get $h) (i64.extend_i32_u (local.get $len))))
    ;; The tail: 8, then 4, then 1 byte at a time.
    (block $done8
      (loop $tail8
        (br_if $done8 (i32.gt_u (i32.add (local.get $p) (i32.const 8))
                                (local.get $end)))
        (local.set $h (i64.add (i64.mul (i64.rotl (i64.xor (local.get $h)
          (call $round (i64.const 0) (i64.load (local.get $p))))
          (i64.const 27)) (i64.const 0x9E3779B185EBCA87))
          (i64.const 0x85EBCA77C2B2AE63)))
        (local.set $p (i32.add (local.get $p) (i32.const 8)))
        (br $tail8)))
    (if (i32.le_u (i32.add (local.get $p) (i32.const 4)) (local.get $end))
      (then
        (local.set $h (i64.add (i64.mul (i64.rotl (i64.xor (local.get $h)
          (i64.mul (i64.load32_u (local.get $p))
                   (i64.const 0x9E3779B185EBCA87)))
          (i64.const 23)) (i64.const 0xC2B2AE3D27D4EB4F))
          (i64.const 0x165667B19E3779F9)))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))))
    (block $done1
      (loop $tail1
        (br_if $done1 (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $h (i64.mul (i64.rotl (i64.xor (local.get $h)
          (i64.mul (i64.load8_u (local.get $p))
                   (i64.const 0x27D4EB2F165667C5)))
          (i64.const 11)) (i64.const 0x9E3779B185EBCA87)))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $tail1)))
    ;; Avalanche.
    (local.set $h (i64.mul (i64.xor (local.get $h)
      (i64.shr_u (local.get $h) (i64.const 33))) (i64.const 0xC2B2AE3D27D4EB4F)))
    (local.set $h (i64.mul (i64.xor (local.get $h)
      (i64.shr_u (local.get $h) (i64.const 29))) (i64.const 0x165667B19E3779F9)))
    (i64.xor (local.get $h) (i64.shr_u (local.get $h) (i64.const 32))))

  (func $round (param $acc i64) (param $lane i64) (result i64)
    (i64.mul (i64.rotl (i64.add (local.get $acc)
      (i64.mul (local.get $lane) (i64.const 0xC2B2AE3D27D4EB4F)))
      (i64.const 31)) (i64.const 0x9E3779B185EBCA87)))

  (func $merge (param $h i64) (param $v i64) (result i64)
    (i64.add (i64.mul (i64.xor (local.get $h)
      (call $round (i64.const 0) (local.get $v)))
      (i64.const 0x9E3779B185EBCA87)) (i64.const 0x85EBCA77C2B2AE63)))

  ;; 1 if the `len` bytes at `p` (a multiple of 8) are all zero, else 0;
  ;; stops at the first non-zero word, so ordinary pages cost next to
  ;; nothing.
  (func $is_zero (param $p i32) (param $len i32) (result i32)
    (local $end i32)
    (local.set $end (i32.add (local.get $p) (local.get $len)))
    (block $out
      (loop $word
        (br_if $out (i32.ge_u (local.get $p) (local.get $end)))
        (if (i64.ne (i64.load (local.get $p)) (i64.const 0))
          (then (return (i32.const 0))))
        (local.set $p (i32.add (local.get $p) (i32.const 8)))
        (br $word)))
    (i32.const 1))

  ;; For each of `count` pages of `size` bytes from `src`: its XXH64 as a
  ;; little-endian u64 at out + 8k and 1 (all zero) or 0 at zero + k.
  (func (export "hash_pages") (param $src i32) (param $count i32)
        (param $size i32) (param $out i32) (param $zero i32)
    (block $done
      (loop $page
        (br_if $done (i32.eqz (local.get $count)))
        (i64.store (local.get $out)
                   (call $xxh64 (local.get $src) (local.get $size)))
        (i32.store8 (local.get $zero)
                    (call $is_zero (local.get $src) (local.get $size)))
        (local.set $src (i32.add (local.get $src) (local.get $size)))
        (local.set $out (i32.add (local.get $out) (i32.const 8)))
        (local.set $zero (i32.add (local.get $zero) (i32.const 1)))
        (local.set $count (i32.sub (local.get $count) (i32.const 1)))
        (br $page))))
)
