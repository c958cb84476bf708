#!/usr/bin/env bash
# vm-timeout: 600
# scan --backend kernel (PAGEINFO, xxh64 in the kernel) reports exactly what
# --backend user --checksum xxh64 reports on the same workers; auto picks
# the kernel back-end when the module is loaded. Then what each back-end's
# scan does to page aging (smaps' Referenced after clear_refs).
. "$(dirname "$0")/mergemem_vm_lib.sh"
e2e backends
e2e aging
