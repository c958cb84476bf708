#!/usr/bin/env bash
# vm-timeout: 900
# The merge benchmark (bench/merge_bench.ts). Slow, so it runs only when
# asked: touch .vm-work/run-merge-bench, then
#   tests/vm/run.sh --only t_40
# Results: .vm-work/KVER/merge_bench.json and this test's log.
. "$(dirname "$0")/mergemem_vm_lib.sh"
if [[ ! -e $REPO/.vm-work/run-merge-bench ]]; then
	echo "skip: benchmark not requested (touch .vm-work/run-merge-bench)"
	exit 77
fi
# It may set MERGE_BENCH_WORKERS, _MIB and _AFTER (shell assignments).
# shellcheck source=/dev/null
. "$REPO/.vm-work/run-merge-bench"
"$DENO" run -A "$REPO/bench/merge_bench.ts" --workers "${MERGE_BENCH_WORKERS:-4}" \
	--mib "${MERGE_BENCH_MIB:-32}" --after "${MERGE_BENCH_AFTER:-60}" \
	--json "$MERGEMEM_VM_WORK/merge_bench.json"
