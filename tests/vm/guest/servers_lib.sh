# shellcheck shell=bash
# Sourced by the real-server tests (t_50_apache.sh, t_51_phpfpm.sh,
# t_52_postgres.sh). They run Debian's own servers from the host's packages
# (scripts/vm-deps.sh installs them, never running them on the host) over
# the guest's read-only 9p root: tests/vm/lib/init.sh puts tmpfs over
# /var/log, /var/www/html, /var/lib/postgresql, /var/lib/php and
# /var/cache/apache2 and brings the loopback interface up.
#
# Each server runs from a configuration written here, under $ST, not from
# the host's /etc: what the host's admin enabled there is not the test's
# business, and the pools must be fixed (a pool that forks or reaps workers
# between two counts changes the figures being compared).
#
# The checks themselves are in servers_check.ts (check_scan_merge): mergemem
# scan against count_pages.c, then merge with no extra flag, >= 95% of the
# prediction, KSM settings restored.
set -euo pipefail
G=$REPO/tests/vm/guest
ST=/run/mergemem-servers/$(basename "$0" .sh)
mkdir -p "$ST"
# A copy of the test's output that outlives the next run on this kernel
# (run.sh clears .vm-work/KVER/logs when it starts).
mkdir -p "$REPO/.vm-work/servers/$KVER"
# (The guest has no /dev/fd for a process substitution: a fifo.)
mkfifo "$ST/log.fifo"
tee "$REPO/.vm-work/servers/$KVER/$(basename "$0" .sh).log" <"$ST/log.fifo" &
exec >"$ST/log.fifo" 2>&1
rm -f "$ST/log.fifo"
ok() { echo "ok: [${SECONDS}s] $*"; }
fail() {
	echo "FAIL: $*"
	exit 1
}

# The module, when one was built for this kernel (mergemem_vm_lib.sh loads
# it). Without one, the scans are still checked; merge then needs another
# marking engine, else the test ends as SKIP (servers_check.ts).
if [[ ${MERGEMEM_VM_NO_DKMS:-0} != 1 && -n ${MERGEMEM_KO:-} ]]; then
	# shellcheck source=mergemem_vm_lib.sh
	. "$G/mergemem_vm_lib.sh"
fi
for prog in count_pages fcgi_get; do
	[[ -x $G/$prog ]] || fail "$G/$prog not built (make -C tests/vm/guest)"
done

# Stop functions of the servers started, run at exit whatever happens.
STOPS=()
servers_exit() {
	local rc=$? s
	for s in "${STOPS[@]}"; do "$s" || true; done
	if declare -F ksm_defaults >/dev/null; then ksm_defaults; fi
	return "$rc"
}
trap servers_exit EXIT

# KSM settings that are not the defaults, so that "restored" means restored
# (ksmd is off, as on a host where only mergemem runs it).
echo 0 >/sys/kernel/mm/ksm/run
echo 123 >/sys/kernel/mm/ksm/pages_to_scan
echo 37 >/sys/kernel/mm/ksm/sleep_millisecs

# check_scan_merge LABEL SELECTION...: the scan, then the merge checks.
# On the newest kernel (sid's 7.x, the third VM of the suite and so on its
# critical path) only the merge checks run: the scan's figures against
# count_pages.c are checked on 6.1 and 6.12 and, for workers of known
# content, on every kernel (t_23, t_26); the merge and khugepaged checks,
# what 7.x needed, run everywhere. A CI-time budget choice, not a gap in
# what 7.x is known to do.
check_scan_merge() {
	local mode=both
	[[ $KVER == 7.* ]] && mode=merge
	"$DENO" run -A "$G/servers_check.ts" "$mode" "$@"
}

# count_procs COMM: how many processes run COMM.
count_procs() { pgrep -x "$1" | wc -l; }

# Bounds of the waits below, in seconds: against a hang, generous for a TCG
# guest on a slow, loaded machine (each ends as soon as its condition holds).
WAIT_LIMIT=120
PG_LIMIT=360

# wait_procs COMM N: until exactly N processes run COMM (WAIT_LIMIT).
wait_procs() {
	local end=$((SECONDS + WAIT_LIMIT))
	while ((SECONDS < end)); do
		[[ $(count_procs "$1") -eq $2 ]] && return 0
		sleep 0.1
	done
	fail "$2 $1 processes expected, $(count_procs "$1") running after ${WAIT_LIMIT} s"
}

# wait_gone PID...: until these processes have exited (WAIT_LIMIT).
wait_gone() {
	local p alive end=$((SECONDS + WAIT_LIMIT))
	while ((SECONDS < end)); do
		alive=0
		for p; do kill -0 "$p" 2>/dev/null && alive=1; done
		((alive)) || return 0
		sleep 0.1
	done
	echo "warning: still running: $*"
}

install_page() {
	install -m 644 "$G/www/index.php" /var/www/html/index.php
}

# --- apache2, prefork + mod_php -------------------------------------------
# shellcheck source=tests/vm/guest/apache_conf.sh
. "$G/apache_conf.sh"
APACHE_CONF=$ST/apache2.conf
APACHE_POOL=8
# The pid file, mutex and error log.
APACHE_RUN=/run/apache2
apache_start() {
	local php
	php=$(apache_mod_php)
	[[ -n $php ]] || fail "no mod_php in $APACHE_MODULES (scripts/vm-deps.sh)"
	install_page
	mkdir -p "$APACHE_RUN"
	apache_conf 127.0.0.1:80 /var/www/html "$APACHE_RUN" "$APACHE_POOL" >"$APACHE_CONF"
	apache2 -f "$APACHE_CONF" -t >/dev/null 2>&1 || apache2 -f "$APACHE_CONF" -t
	apache2 -f "$APACHE_CONF" -k start
	STOPS+=(apache_stop)
	wait_procs apache2 $((APACHE_POOL + 1))
	ok "apache2 $(apache2 -v | sed -n 's/^Server version: //p'), prefork, $php: 1 + $APACHE_POOL processes"
}
apache_stop() {
	local pid
	pid=$(cat "$APACHE_RUN/apache2.pid" 2>/dev/null) || return 0
	apache2 -f "$APACHE_CONF" -k stop 2>/dev/null || kill "$pid" 2>/dev/null || true
	wait_gone "$pid"
}

# http_get PATH OUT: GET http://127.0.0.1PATH with bash's /dev/tcp; the body
# goes to OUT; fails unless the status is 200.
http_get() {
	local fd
	exec {fd}<>/dev/tcp/127.0.0.1/80
	printf 'GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n' "$1" >&"$fd"
	cat <&"$fd" >"$2.raw"
	exec {fd}>&-
	head -n1 "$2.raw" | grep -q '^HTTP/1\.[01] 200 ' || fail "GET $1: $(head -n1 "$2.raw")"
	sed '1,/^\r$/d' "$2.raw" >"$2"
}

# ab_run N OUT: N requests for the page, as many at once as the pool has
# workers; fails unless all N completed with no failure and status 200.
ab_run() {
	ab -n "$1" -c "$APACHE_POOL" http://127.0.0.1/index.php >"$2" 2>&1 || fail "ab: $(tail -n 3 "$2")"
	grep -E '^(Complete|Failed) requests|^Document Length|^Non-2xx' "$2" | sed 's/^/  ab: /'
	grep -qE "^Complete requests: +$1\$" "$2" || fail "ab: not all $1 requests complete"
	grep -qE '^Failed requests: +0$' "$2" || fail "ab: failed requests"
	! grep -q '^Non-2xx' "$2" || fail "ab: non-2xx responses"
	ok "ab -n $1 -c $APACHE_POOL: $1 complete, 0 failed"
}

# --- php-fpm, static pool ---------------------------------------------------
FPM_CONF=$ST/php-fpm.conf
FPM_POOL=8
FPM_ADDR=127.0.0.1:9000
FPM=$(find /usr/sbin -name 'php-fpm*' | sort -V | tail -n1)
FPM_COMM=${FPM##*/}
fpm_start() {
	[[ -x $FPM ]] || fail "no php-fpm in /usr/sbin (scripts/vm-deps.sh)"
	install_page
	cat >"$FPM_CONF" <<EOF
[global]
pid = $ST/php-fpm.pid
error_log = /var/log/php-fpm.log
daemonize = yes
[www]
user = www-data
group = www-data
listen = $FPM_ADDR
pm = static
pm.max_children = $FPM_POOL
pm.max_requests = 0
EOF
	"$FPM" -y "$FPM_CONF"
	STOPS+=(fpm_stop)
	wait_procs "$FPM_COMM" $((FPM_POOL + 1))
	ok "$("$FPM" -v | head -n1 | cut -d' ' -f1-2), pm = static, 1 + $FPM_POOL processes"
}
fpm_stop() {
	local pid
	pid=$(cat "$ST/php-fpm.pid" 2>/dev/null) || return 0
	kill -QUIT "$pid" 2>/dev/null || true
	wait_gone "$pid"
}

# fcgi_run N OUT: N FastCGI requests for the page, as many at once as the
# pool has workers; the body goes to OUT; fails on any failed request.
fcgi_run() {
	"$G/fcgi_get" "${FPM_ADDR%:*}" "${FPM_ADDR#*:}" /var/www/html/index.php "$1" "$FPM_POOL" >"$2" ||
		fail "FastCGI requests failed"
	ok "$1 FastCGI requests, $FPM_POOL at a time: 0 failed, one body"
}

# --- PostgreSQL -------------------------------------------------------------
PG_BIN=$(find /usr/lib/postgresql -maxdepth 2 -name bin 2>/dev/null | sort -V | tail -n1)
PG_DATA=/var/lib/postgresql/mergemem-vm
PG_SOCK=/run/postgresql
PG_SESSIONS=8
PG_FDS=()
pg_start() {
	[[ -x $PG_BIN/initdb ]] || fail "no PostgreSQL under /usr/lib/postgresql (scripts/vm-deps.sh)"
	install -d -o postgres -g postgres -m 700 "$PG_DATA"
	install -d -o postgres -g postgres -m 2775 "$PG_SOCK" /var/log/postgresql
	runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust \
		--no-sync -E UTF8 --locale=C >"$ST/initdb.log" 2>&1 || { cat "$ST/initdb.log"; fail initdb; }
	# Unix socket only; no autovacuum: its workers come and go every
	# naptime, changing the process set between two counts.
	runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -l /var/log/postgresql/vm.log -w \
		-o "-c listen_addresses='' -k $PG_SOCK -c autovacuum=off -c fsync=off" start >/dev/null ||
		{ cat /var/log/postgresql/vm.log; fail "pg_ctl start"; }
	STOPS+=(pg_stop)
	ok "$("$PG_BIN/postgres" --version) in $PG_DATA"
}
pg_stop() {
	local fd
	for fd in "${PG_FDS[@]}"; do exec {fd}>&-; done
	PG_FDS=()
	[[ -f $PG_DATA/postmaster.pid ]] || return 0
	runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null || true
}
pg_psql() { psql -X -q -A -t -h "$PG_SOCK" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }

# pg_sessions: PG_SESSIONS psql sessions held open, each reading SQL from a
# fifo that this shell keeps open for writing (PG_FDS), so that each holds
# one backend until pg_stop closes it.
pg_sessions() {
	local i fd
	for i in $(seq "$PG_SESSIONS"); do
		mkfifo "$ST/pg$i.in"
		pg_psql <"$ST/pg$i.in" >"$ST/pg$i.out" 2>&1 &
		exec {fd}>"$ST/pg$i.in"
		PG_FDS+=("$fd")
	done
}

# pg_all FILE TAG: runs the SQL of FILE in every session, waits until each
# has printed its results (all of them within PG_LIMIT: the sessions run at
# once); session i's results go to $ST/TAG.i.
pg_all() {
	local i fd t0=$SECONDS end=$((SECONDS + PG_LIMIT))
	for i in $(seq "$PG_SESSIONS"); do
		fd=${PG_FDS[i - 1]}
		printf '\\echo ==begin %s==\n' "$2" >&"$fd"
		cat "$1" >&"$fd"
		printf '\\echo ==end %s==\n' "$2" >&"$fd"
	done
	for i in $(seq "$PG_SESSIONS"); do
		until grep -q "^==end $2==\$" "$ST/pg$i.out" || ((SECONDS >= end)); do
			sleep 0.1
		done
		grep -q "^==end $2==\$" "$ST/pg$i.out" ||
			fail "session $i: no results for $2 after ${PG_LIMIT} s: $(tail -n 5 "$ST/pg$i.out")"
		sed -n "/^==begin $2==\$/,/^==end $2==\$/{/^==/d;p}" "$ST/pg$i.out" >"$ST/$2.$i"
	done
	echo "  $PG_SESSIONS sessions ran $1 in $((SECONDS - t0)) s"
}
