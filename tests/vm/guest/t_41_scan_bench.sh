#!/usr/bin/env bash
# vm-timeout: 900
# The scan benchmark (bench/scan_bench.ts) with the user and the kernel
# back-end next to the raw process_vm_readv rate. Slow, so it runs only when
# asked: touch .vm-work/run-scan-bench, then
#   tests/vm/run.sh --only t_41
# The file may set SCAN_BENCH_WORKERS, _MIB, _RUNS and _ONLY (shell
# assignments, e.g. SCAN_BENCH_MIB=128).
# Results: .vm-work/KVER/scan_bench.json and this test's log.
. "$(dirname "$0")/mergemem_vm_lib.sh"
if [[ ! -e $REPO/.vm-work/run-scan-bench ]]; then
	echo "skip: benchmark not requested (touch .vm-work/run-scan-bench)"
	exit 77
fi
# shellcheck source=/dev/null
. "$REPO/.vm-work/run-scan-bench"
"$DENO" run -A "$REPO/bench/scan_bench.ts" --workers "${SCAN_BENCH_WORKERS:-4}" \
	--mib "${SCAN_BENCH_MIB:-32}" --runs "${SCAN_BENCH_RUNS:-1}" \
	--backend user,kernel --only "${SCAN_BENCH_ONLY:-hash/fast,hash/xxh64}" \
	--json "$MERGEMEM_VM_WORK/scan_bench.json"
