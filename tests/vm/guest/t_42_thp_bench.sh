#!/usr/bin/env bash
# vm-timeout: 1800
# What merge's MADV_NOHUGEPAGE costs a real server (README "Huge pages"):
# apache2 + mod_php, merged with the default (the chosen mappings lose huge
# pages) and with --keep-thp, alternately, ROUNDS times each; after each
# merge, ab -n REQUESTS -c 8 on a PHP page. Prints the request rate and the
# mean and 99th-percentile latency per round and the medians' ratios, for
# bench/README.md. Slow, so it runs only when asked:
#   touch .vm-work/run-thp-bench && tests/vm/run.sh --only t_42
# (the file may set THP_BENCH_ROUNDS and THP_BENCH_REQUESTS).
. "$(dirname "$0")/servers_lib.sh"
if [[ ! -e $REPO/.vm-work/run-thp-bench ]]; then
	echo "skip: benchmark not requested (touch .vm-work/run-thp-bench)"
	exit 77
fi
# shellcheck source=/dev/null
. "$REPO/.vm-work/run-thp-bench"
ROUNDS=${THP_BENCH_ROUNDS:-3}
REQUESTS=${THP_BENCH_REQUESTS:-2000}
echo "THP: $(cat /sys/kernel/mm/transparent_hugepage/enabled)"
apache_start
ab_run 500 "$ST/ab.warm"
mm() { "$DENO" run -A "$REPO/main.ts" "$@"; }
declare -A rps mean p99
for ((r = 1; r <= ROUNDS; r++)); do
	for mode in nohugepage keep; do
		mm unmerge --comm apache2 --force >/dev/null 2>&1 || true
		flag=()
		[[ $mode == keep ]] && flag=(--keep-thp)
		mm merge --comm apache2 "${flag[@]}" --json >"$ST/merge.$mode.$r.json" 2>/dev/null ||
			fail "merge ($mode) failed"
		ab -n "$REQUESTS" -c "$APACHE_POOL" http://127.0.0.1/index.php >"$ST/ab.$mode.$r" 2>&1 ||
			fail "ab: $(tail -n 3 "$ST/ab.$mode.$r")"
		grep -qE '^Failed requests: +0$' "$ST/ab.$mode.$r" || fail "ab: failed requests"
		rps[$mode.$r]=$(awk '/^Requests per second/ {print $4}' "$ST/ab.$mode.$r")
		mean[$mode.$r]=$(awk '/^Time per request:.*\(mean\)$/ {print $4}' "$ST/ab.$mode.$r")
		p99[$mode.$r]=$(awk '$1 == "99%" {print $2}' "$ST/ab.$mode.$r")
		echo "round $r $mode: ${rps[$mode.$r]} req/s, mean ${mean[$mode.$r]} ms, p99 ${p99[$mode.$r]} ms," \
			"thp_nohugepage mappings: $(grep -o '"start"' "$ST/merge.$mode.$r.json" | wc -l)"
	done
done
thp_price_summary "$ROUNDS"
mm unmerge --comm apache2 --force >/dev/null 2>&1 || true
