#!/usr/bin/env bash
# Runs inside the test VM, as root, chrooted into the host's root filesystem
# (read-only 9p) with the repo mounted read-write at its host path.
# Started by the initramfs /init (tests/vm/lib/init.sh) as:
#   runner.sh REPO WORK
# WORK is .vm-work/KVER on the share; the host wrote WORK/guest.conf.
# Runs tests/vm/guest/t_*.sh in order, each with its own timeout, prints
# MERGEMEM-VM-* marker lines on the console and writes WORK/result.txt.
# The /init powers the VM off when this returns.
set -uo pipefail
# One compound command: parsed completely before it runs, so editing this
# file on the host does not disturb a VM that is running it.
{

REPO=${1:?repo}
WORK=${2:?work dir}
marker() { echo "MERGEMEM-VM-$*"; }

marker "RUNNER-START $(cut -d' ' -f1 /proc/uptime)"

# Defaults, overridden by the host's guest.conf (shell assignments).
KVER=$(uname -r)
ONLY=
MERGEMEM_KO=
TEST_TIMEOUT=300
if [[ -f $WORK/guest.conf ]]; then
	# shellcheck source=/dev/null
	. "$WORK/guest.conf"
else
	marker "WARN no $WORK/guest.conf"
fi

MERGEMEM_VM_NO_DKMS=${MERGEMEM_VM_NO_DKMS:-0}
export KVER REPO MERGEMEM_KO MERGEMEM_VM_NO_DKMS
export MERGEMEM_VM=1 MERGEMEM_VM_WORK=$WORK
export DENO=$REPO/tools/deno/node_modules/deno/deno
export HOME=/tmp/home DENO_DIR=/tmp/deno-dir TMPDIR=/tmp
export DENO_NO_UPDATE_CHECK=1 NO_COLOR=1 LANG=C.UTF-8
mkdir -p "$HOME" "$DENO_DIR"

logs=$WORK/logs
mkdir -p "$logs"
result=$WORK/result.txt
: >"$result"
# Console: kernel warnings and worse; everything goes to the per-test logs.
dmesg -n 5 2>/dev/null || true

taint() { cat /proc/sys/kernel/tainted 2>/dev/null || echo 0; }
# Bits of /proc/sys/kernel/tainted that mean a kernel bug was hit:
# D (oops, 1<<7), W (warning, 1<<9), L (soft lockup, 1<<14).
BAD_TAINT=$(((1 << 7) | (1 << 9) | (1 << 14)))

# Heartbeat: the host kills a VM whose console stays silent (a hung kernel).
(while sleep 30; do marker "HEARTBEAT $(cut -d' ' -f1 /proc/uptime)"; done) &
heartbeat=$!

pass=0 fail=0 skip=0
shopt -s nullglob
for t in "$REPO"/tests/vm/guest/t_*.sh; do
	name=$(basename "$t" .sh)
	if [[ -n $ONLY ]] && ! [[ $name =~ $ONLY ]]; then
		continue
	fi
	# "# vm-skip-kernel: REGEX REASON": a known, documented failure on the
	# kernels whose version matches; reported as SKIP with the reason.
	skipre=$(sed -n 's/^# *vm-skip-kernel: *\([^ ]*\) .*/\1/p' "$t" | head -n1)
	if [[ -n $skipre && $KVER =~ $skipre ]]; then
		why=$(sed -n 's/^# *vm-skip-kernel: *[^ ]* *\(.*\)/\1/p' "$t" | head -n1)
		echo "SKIP on $KVER: $why" >"$logs/$name.log"
		echo "$name SKIP 0.0 known-failure" >>"$result"
		marker "RESULT $name SKIP 0.0s known-failure"
		skip=$((skip + 1))
		continue
	fi
	tmo=$(sed -n 's/^# *vm-timeout: *\([0-9][0-9]*\).*/\1/p' "$t" | head -n1)
	tmo=${tmo:-$TEST_TIMEOUT}
	log=$logs/$name.log
	marker "TEST-START $name timeout=${tmo}s"
	t0=$EPOCHREALTIME
	taint0=$(taint)
	dmesg0=$(dmesg 2>/dev/null | wc -l)
	(cd "$REPO" && exec timeout --kill-after=10 "$tmo" bash "$t") </dev/null >"$log" 2>&1
	rc=$?
	t1=$EPOCHREALTIME
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
	case $rc in
	0) status=PASS ;;
	77) status=SKIP ;;
	124 | 137) status=TIMEOUT ;;
	*) status=FAIL ;;
	esac
	taint1=$(taint)
	note=""
	if (((taint1 & ~taint0) & BAD_TAINT)); then
		note="kernel-taint:$taint0->$taint1"
		[[ $status == FAIL || $status == TIMEOUT ]] || status=FAIL
	fi
	{
		echo "--- exit status $rc, ${secs}s${note:+, $note}"
		echo "--- kernel log during the test:"
		dmesg 2>/dev/null | tail -n +"$((dmesg0 + 1))"
	} >>"$log"
	case $status in
	PASS) pass=$((pass + 1)) ;;
	SKIP) skip=$((skip + 1)) ;;
	*) fail=$((fail + 1)) ;;
	esac
	echo "$name $status $secs $note" >>"$result"
	sync
	marker "RESULT $name $status ${secs}s $note"
done
kill "$heartbeat" 2>/dev/null || true
dmesg >"$WORK/dmesg.txt" 2>&1 || true
echo "DONE pass=$pass fail=$fail skip=$skip" >>"$result"
sync
marker "DONE pass=$pass fail=$fail skip=$skip"
exit 0
}
