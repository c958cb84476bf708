#!/usr/bin/env bash
# vm-timeout: 300
# Exact scan counts under transparent huge pages with Debian's default
# THP=always: a worker's 2 huge pages, fork-shared and partly rewritten by
# the child, give the figures of docs/accounting.md frame by frame, with
# the user and the kernel back-end alike (tests/integration/scan_thp_test.ts).
. "$(dirname "$0")/mergemem_vm_lib.sh"
echo "THP: $(cat /sys/kernel/mm/transparent_hugepage/enabled)"
"$DENO" run -A "$REPO/tests/integration/scan_thp_test.ts" user kernel
