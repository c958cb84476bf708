#!/usr/bin/env bash
# vm-timeout: 600
# The kernel module itself: load, device node, ioctl_test (handshake,
# PAGEINFO, fd checks, MERGE/UNMERGE with a ksmd burst, UNMERGE of a 1 TiB
# VMA), the ioctl fuzzer, a clean kernel log, unload, the load-time checks
# of /proc/self/mem, and reload.
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
# At load the module learns the f_op of /proc/self/mem, resolved in the
# loader's mount namespace: it must refuse a file that is not on procfs,
# and a procfs mem file that is not the loader's own.
dmesg_mark=$(dmesg | wc -l)
if unshare -m --propagation private sh -c \
	'mount -t tmpfs none /proc && mkdir /proc/self && : >/proc/self/mem && exec insmod "$1"' \
	sh "$ko" 2>/dev/null || is_loaded; then
	notok "insmod refuses a /proc/self/mem on tmpfs"
	is_loaded && rmmod mergemem
else
	ok "insmod refuses a /proc/self/mem on tmpfs"
fi
mkdir -p /run/mergemem-t10-proc
if unshare -m --propagation private sh -c \
	'mount -t proc proc /run/mergemem-t10-proc && mount -t tmpfs none /proc &&
	 ln -s /run/mergemem-t10-proc/1 /proc/self && exec insmod "$1"' \
	sh "$ko" 2>/dev/null || is_loaded; then
	notok "insmod refuses another process's mem as /proc/self/mem"
	is_loaded && rmmod mergemem
else
	ok "insmod refuses another process's mem as /proc/self/mem"
fi
rmdir /run/mergemem-t10-proc
n=$(dmesg | tail -n +$((dmesg_mark + 1)) | grep -c "mergemem: /proc/self/mem is not procfs's mem file of the loading process")
[[ $n == 2 ]] && ok "both refusals logged" || notok "both refusals logged ($n of 2)"

if insmod "$ko" && wait_dev && rmmod mergemem; then
	ok "insmod + rmmod again"
else
	notok "insmod + rmmod again"
fi
is_loaded && rmmod mergemem 2>/dev/null
rm -f /tmp/mergemem-t10.ko

echo "# $fails failure(s)"
[[ $fails == 0 ]]
