#!/usr/bin/env bash
# vm-timeout: 900
# The ptrace engine on this kernel with the module unloaded: the injection
# torture (1001 holds of every kind of blocked thread), the marker's counts
# and skips (seccomp, traced, exiting targets), and merge/unmerge
# --engine ptrace end to end on the guest's KSM (achieved >= 95% of the
# prediction, contents intact, copy-on-write, settings restored).
set -euo pipefail
if grep -q '^mergemem ' /proc/modules; then rmmod mergemem; fi
[[ ! -e /dev/mergemem ]] || { echo "FAIL: /dev/mergemem still there" >&2; exit 1; }
ksm_defaults() {
	echo 0 >/sys/kernel/mm/ksm/run
	echo 100 >/sys/kernel/mm/ksm/pages_to_scan
	echo 20 >/sys/kernel/mm/ksm/sleep_millisecs
}
trap ksm_defaults EXIT
cd "$REPO"
"$DENO" test -A --no-check \
	tests/integration/ptrace_torture_test.ts \
	tests/integration/ptrace_marker_test.ts \
	tests/integration/ptrace_merge_test.ts
