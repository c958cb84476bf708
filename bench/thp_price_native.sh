#!/usr/bin/env bash
# What merge's MADV_NOHUGEPAGE costs a real server on real hardware (the VM
# suite's t_42 measures the same under TCG, whose software TLB makes huge
# pages nearly free or nearly useless): apache2 + mod_php of Debian's
# packages on this host, merged with the default (the chosen mappings get
# MADV_NOHUGEPAGE) and with --keep-thp, alternately, ROUNDS times each;
# after each merge, ab -n REQUESTS -c 8 on tests/vm/guest/www/index.php;
# each merge on a freshly started and warmed-up server.
# Prints the request rate, the mean and 99th-percentile latency per round,
# the medians and their ratios (bench/README.md, "Huge pages").
#
#   sudo bench/thp_price_native.sh [ROUNDS] [REQUESTS]   # default 5 20000
#
# As root, with apache2, libapache2-mod-php and apache2-utils installed
# (scripts/vm-deps.sh installs them). It sets THP to `always` for the run
# and restores the host's setting; its apache2 listens on 127.0.0.1:8089
# from a temporary ServerRoot and is stopped at the end. The merge uses
# whatever engine `mergemem merge` picks on this host (the module if it is
# loaded, else ptrace). It refuses to run while another apache2 runs, since
# it selects the workers by command name.
set -euo pipefail
ROUNDS=${1:-5}
REQUESTS=${2:-20000}
POOL=8
PORT=8089
REPO=$(cd "$(dirname "$0")/.." && pwd)
THP=/sys/kernel/mm/transparent_hugepage
die() {
	echo "thp_price_native: $*" >&2
	exit 1
}
(($(id -u) == 0)) || die "run as root"
for c in apache2 ab; do command -v "$c" >/dev/null || die "$c missing (scripts/vm-deps.sh)"; done
# shellcheck source=tests/vm/guest/apache_conf.sh
. "$REPO/tests/vm/guest/apache_conf.sh"
PHP=$(apache_mod_php)
[[ -n $PHP ]] || die "no mod_php in $APACHE_MODULES (scripts/vm-deps.sh)"
! pgrep -x apache2 >/dev/null || die "another apache2 runs here; stop it first"
DENO=$("$REPO/scripts/ensure-deno.sh")
D=$(mktemp -d /tmp/thp-price.XXXXXX)
chmod 755 "$D"
old_enabled=$(sed 's/.*\[\(.*\)\].*/\1/' "$THP/enabled")
cleanup() {
	if [[ -e $D/apache2.pid ]]; then
		apache2 -f "$D/apache2.conf" -k stop 2>/dev/null || true
		for _ in $(seq 50); do pgrep -x apache2 >/dev/null || break; sleep 0.1; done
	fi
	echo "$old_enabled" >"$THP/enabled"
	rm -rf "$D"
}
trap cleanup EXIT
mkdir -p "$D/www"
install -m 644 "$REPO/tests/vm/guest/www/index.php" "$D/www/index.php"
# The suite's configuration (tests/vm/guest/apache_conf.sh).
apache_conf "127.0.0.1:$PORT" "$D/www" "$D" "$POOL" >"$D/apache2.conf"
echo always >"$THP/enabled"
# Fresh servers for every merge: the ptrace engine (the engine here unless
# the module is loaded) cannot clear a MADV_NOHUGEPAGE on unmerge, so an
# unmerge between two merges would leave the flag for the next one.
apache_up() {
	apache2 -f "$D/apache2.conf" -k start
	for _ in $(seq 100); do (($(pgrep -cx apache2) == POOL + 1)) && break; sleep 0.1; done
	(($(pgrep -cx apache2) == POOL + 1)) || die "apache2 did not start $POOL workers ($D/error.log)"
}
apache_down() {
	apache2 -f "$D/apache2.conf" -k stop
	for _ in $(seq 100); do pgrep -x apache2 >/dev/null || return 0; sleep 0.1; done
	die "apache2 did not stop"
}
URL=http://127.0.0.1:$PORT/index.php
mm() { "$DENO" run -A "$REPO/main.ts" "$@"; }
# anon_huge_kb: AnonHugePages of all apache2 processes, in kB.
anon_huge_kb() {
	local p t=0 v
	for p in $(pgrep -x apache2); do
		v=$(awk '/^AnonHugePages:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
		t=$((t + ${v:-0}))
	done
	echo "$t"
}
echo "kernel $(uname -r), $(nproc) CPUs, THP always, apache2 prefork $POOL workers, $PHP"
declare -A rps mean p99
for ((r = 1; r <= ROUNDS; r++)); do
	for mode in nohugepage keep; do
		apache_up
		ab -n 2000 -c "$POOL" "$URL" >"$D/ab.warm" 2>&1 || die "ab warm-up: $(tail -n 3 "$D/ab.warm")"
		flag=()
		[[ $mode == keep ]] && flag=(--keep-thp)
		mm merge --comm apache2 "${flag[@]}" --json >"$D/merge.json" 2>"$D/merge.err" ||
			die "merge ($mode): $(tail -n 2 "$D/merge.err")"
		achieved=$(grep -o '"achieved_pages": *[0-9-]*' "$D/merge.json" | head -n1 | grep -o '[0-9-]*$')
		huge=$(anon_huge_kb)
		# Mappings this merge set MADV_NOHUGEPAGE on: the objects of the
		# report's "thp_nohugepage" arrays.
		nohuge=$("$DENO" eval "const r = JSON.parse(Deno.readTextFileSync('$D/merge.json'));
			console.log(r.processes.reduce((n, p) => n + (p.thp_nohugepage?.length ?? 0), 0))")
		ab -n "$REQUESTS" -c "$POOL" "$URL" >"$D/ab" 2>&1 || die "ab: $(tail -n 3 "$D/ab")"
		grep -qE '^Failed requests: +0$' "$D/ab" || die "ab: failed requests"
		rps[$mode.$r]=$(awk '/^Requests per second/ {print $4}' "$D/ab")
		mean[$mode.$r]=$(awk '/^Time per request:.*\(mean\)$/ {print $4}' "$D/ab")
		p99[$mode.$r]=$(awk '$1 == "99%" {print $2}' "$D/ab")
		echo "round $r $mode: ${rps[$mode.$r]} req/s, mean ${mean[$mode.$r]} ms," \
			"p99 ${p99[$mode.$r]} ms; achieved $achieved pages," \
			"$nohuge mapping(s) set MADV_NOHUGEPAGE, AnonHugePages ${huge} kB before ab"
		apache_down
	done
done
thp_price_summary "$ROUNDS"
