#!/usr/bin/env bash
# vm-timeout: 600
# The kernel module itself: load, device node, ioctl_test (handshake,
# PAGEINFO, fd checks, MERGE/UNMERGE with a ksmd burst), the ioctl fuzzer,
# a clean kernel log, and unload/reload.
#   env: MERGEMEM_KO (the DKMS-built .ko[.xz] for this kernel), REPO
#   optional: MERGEMEM_FUZZ_SEED, MERGEMEM_FUZZ_CALLS (default 100000)
set -uo pipefail
GUEST=${REPO:?}/tests/vm/guest
fails=0
ok() { echo "ok - $*"; }
notok() { echo "not ok - $*"; fails=$((fails + 1)); }
die() { echo "Bail out! $*"; exit 1; }

if [[ ${MERGEMEM_VM_NO_DKMS:-0} == 1 || -z ${MERGEMEM_KO:-} ]]; then
	echo "skip: no module for ${KVER:-?}"
	exit 77
fi
[[ -x $GUEST/ioctl_test && -x $GUEST/fuzz ]] ||
	die "ioctl_test/fuzz not built (make -C tests/vm/guest on the host)"

ko=$MERGEMEM_KO
case $ko in
*.xz) xz -dc "$ko" >/tmp/mergemem-t10.ko && ko=/tmp/mergemem-t10.ko ;;
*.zst) zstd -dqc "$ko" >/tmp/mergemem-t10.ko && ko=/tmp/mergemem-t10.ko ;;
esac

is_loaded() { grep -q '^mergemem ' /proc/modules; }
wait_dev() {
	for _ in $(seq 50); do [[ -c /dev/mergemem ]] && return 0; sleep 0.1; done
	return 1
}

# Start from an unloaded module (an earlier test may have loaded it).
if is_loaded; then
	rmmod mergemem || die "cannot unload a previously loaded mergemem"
fi
dmesg_start=$(dmesg | wc -l)

if insmod "$ko"; then ok "insmod $MERGEMEM_KO"; else die "insmod $ko failed"; fi
if wait_dev; then ok "/dev/mergemem exists"; else die "/dev/mergemem missing"; fi
mode=$(stat -c %a /dev/mergemem)
[[ $mode == 666 ]] && ok "/dev/mergemem mode 0666" || notok "/dev/mergemem mode $mode, want 666"
ver=$(cat /sys/module/mergemem/version 2>/dev/null)
[[ $ver == 0.1.0 ]] && ok "module version $ver" || notok "module version '$ver', want 0.1.0"

echo "# ioctl_test"
if "$GUEST/ioctl_test"; then ok "ioctl_test"; else notok "ioctl_test (exit $?)"; fi

seed=${MERGEMEM_FUZZ_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
calls=${MERGEMEM_FUZZ_CALLS:-100000}
echo "# fuzz seed $seed calls $calls"
start=$(date +%s)
if "$GUEST/fuzz" "$seed" "$calls"; then
	ok "fuzz $calls calls, seed $seed ($(($(date +%s) - start)) s)"
else
	notok "fuzz (exit $?), seed $seed"
fi
# The fuzzer's MERGE calls may have left ksmd state; nothing to restore, it
# never changes the knobs.

if dmesg | tail -n +$((dmesg_start + 1)) |
	grep -E 'Oops|BUG|WARNING|general protection|Call Trace|refcount_t|bad page|RIP:'; then
	notok "kernel log clean"
else
	ok "kernel log clean"
fi

if rmmod mergemem; then ok "rmmod"; else notok "rmmod"; fi
[[ ! -e /dev/mergemem ]] && ok "/dev/mergemem gone" || notok "/dev/mergemem still there"
if insmod "$ko" && wait_dev && rmmod mergemem; then
	ok "insmod + rmmod again"
else
	notok "insmod + rmmod again"
fi
is_loaded && rmmod mergemem 2>/dev/null
rm -f /tmp/mergemem-t10.ko

echo "# $fails failure(s)"
[[ $fails == 0 ]]
