#!/usr/bin/env bash
# vm-timeout: 400
# One burst at a time, and recovery after a crash, through the CLI: two
# merges whose bursts overlap leave ksmd's settings as they were; a merge
# that cannot get the KSM lock within --lock-timeout exits 11; kill -9 in
# the middle of a burst, then `mergemem status`, restores the settings.
. "$(dirname "$0")/mergemem_vm_lib.sh"
"$DENO" run -A "$REPO/tests/vm/guest/merge_overlap.ts"
