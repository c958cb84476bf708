#!/usr/bin/env bash
# vm-timeout: 600
# Processes that vanish mid-scan with the kernel back-end (PAGEINFO ioctls
# on a process that exits, execs or is a zombie): 12 back-to-back scans (60
# on the host, user back-end) of a server whose children come and go, each
# scan also meeting children killed after it selected them, and of workers
# whose figures must stay exact (tests/integration/scan_churn_test.ts).
. "$(dirname "$0")/mergemem_vm_lib.sh"
"$DENO" run -A "$REPO/tests/integration/scan_churn_test.ts" 12 kernel
