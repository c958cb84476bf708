#!/usr/bin/env bash
# vm-timeout: 600
# Processes that vanish mid-scan with the kernel back-end (PAGEINFO ioctls
# on a process that exits, execs or is a zombie): 200 back-to-back scans of
# a server whose children come and go, and of workers whose figures must
# stay exact (tests/integration/scan_churn_test.ts).
. "$(dirname "$0")/mergemem_vm_lib.sh"
"$DENO" run -A "$REPO/tests/integration/scan_churn_test.ts" 200 kernel
