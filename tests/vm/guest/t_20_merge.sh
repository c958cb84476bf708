#!/usr/bin/env bash
# vm-timeout: 400
# End to end: mergemem merge on three workers with known content (achieved
# within 5% of prediction, checksums unchanged, copy-on-write per worker,
# run=0 before and after with merges kept), status, unmerge.
. "$(dirname "$0")/mergemem_vm_lib.sh"
e2e merge
