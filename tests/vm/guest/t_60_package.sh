#!/usr/bin/env bash
# vm-timeout: 300
# The Debian packages as an admin installs them. scripts/test.sh installs
# mergemem and mergemem-dkms on the host before the VM suite (the guest
# boots the host's root), and DKMS builds the module for each kernel of
# the matrix there, as the dkms kernel hook does on a real machine. Here:
# systemd-modules-load, as at boot, loads the module named in
# /usr/lib/modules-load.d/mergemem.conf from DKMS's directory, its version
# is the package's, and the packaged `mergemem merge` marks with it.
set -euo pipefail
ok() { echo "ok: $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "skip: $*"; exit 77; }

env=$REPO/.vm-work/package.env
[[ -f $env ]] || skip "the packages are not installed on the host (scripts/test.sh installs them; tests/vm/run.sh alone does not)"
# shellcheck source=/dev/null
. "$env" # MERGEMEM_PKG_VERSION, MERGEMEM_PKG_KERNELS
[[ -f /usr/lib/modules-load.d/mergemem.conf ]] || fail "no /usr/lib/modules-load.d/mergemem.conf: is mergemem-dkms installed?"
# (No /lib/modules/$KVER at all for sid's kernel, which is never
# installed on the host: find fails, and that is an answer too.)
ko=$(find "/lib/modules/$KVER/updates" -name 'mergemem.ko*' 2>/dev/null | head -n1 || true)
if [[ -z $ko ]]; then
	[[ " $MERGEMEM_PKG_KERNELS " == *" $KVER "* ]] &&
		fail "DKMS built no module for $KVER"
	skip "DKMS on this Debian 12 host builds no module for $KVER (sid's kbuild tools need a newer glibc); the suite builds it in a sid root instead"
fi
ok "DKMS module for $KVER: $ko"

# Whatever an earlier test loaded goes first: the module must come from
# modules-load.d.
if grep -q '^mergemem ' /proc/modules; then rmmod mergemem; fi
/lib/systemd/systemd-modules-load || fail "systemd-modules-load failed"
grep -q '^mergemem ' /proc/modules || fail "systemd-modules-load did not load mergemem"
for _ in $(seq 50); do [[ -c /dev/mergemem ]] && break; sleep 0.1; done
[[ -c /dev/mergemem ]] || fail "/dev/mergemem missing after loading"
have=$(cat /sys/module/mergemem/version)
want=${MERGEMEM_PKG_VERSION%%[+~-]*}
[[ $have == "$want" ]] || fail "loaded module version $have, package $want"
src_loaded=$(cat /sys/module/mergemem/srcversion)
src_dkms=$(modinfo -F srcversion "$ko")
[[ $src_loaded == "$src_dkms" ]] || fail "loaded srcversion $src_loaded is not DKMS's $src_dkms"
ok "systemd-modules-load loaded mergemem $have from DKMS ($src_loaded)"

# Two workers with the same content; the packaged command merges them.
w=$REPO/tests/vm/guest/worker
[[ -x $w ]] || fail "$w not built (make -C tests/vm/guest)"
d=$(mktemp -d)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	echo 0 >/sys/kernel/mm/ksm/run
	rm -rf "$d"
}
trap cleanup EXIT
for i in 1 2; do
	mkfifo "$d/in$i"
	"$w" --dup 64 --common 512 --unique 64 --seed 7 <"$d/in$i" >"$d/out$i" &
	pids+=($!)
	exec {fd}>"$d/in$i" # keeps the worker's stdin open
done
for i in 1 2; do
	for _ in $(seq 300); do grep -q READY "$d/out$i" && break; sleep 0.1; done
	grep -q READY "$d/out$i" || fail "worker $i did not start"
done
/usr/bin/mergemem --version
/usr/bin/mergemem merge --pid "${pids[0]}" --pid "${pids[1]}" --json >"$d/merge.json" ||
	fail "mergemem merge exited $?: $(cat "$d/merge.json")"
grep -q '"engine": *"module"' "$d/merge.json" || fail "merge did not use the module: $(grep '"engine' "$d/merge.json")"
achieved=$(sed -n 's/^  "achieved_pages": *\([0-9]*\).*/\1/p' "$d/merge.json" | head -n1)
[[ ${achieved:-0} -gt 0 ]] || fail "nothing merged: $(head -c 2000 "$d/merge.json")"
ok "the packaged mergemem merged $achieved pages with the module"

# Removing mergemem-dkms unloads nothing and says so while the module is
# in use: its prerm's own part (before the section dh_dkms added, whose
# `dkms remove` needs a writable root) runs with /dev/mergemem held open,
# as by a merge.
prerm=/var/lib/dpkg/info/mergemem-dkms.prerm
[[ -f $prerm ]] || fail "no $prerm"
sed '/^# Automatically added by/,$d' "$prerm" >"$d/prerm-own.sh"
! grep -q 'dkms remove' "$d/prerm-own.sh" || fail "could not cut dh_dkms's section out of $prerm"
exec {dev}</dev/mergemem
msg=$(sh "$d/prerm-own.sh" remove 2>&1) || fail "prerm's own part failed: $msg"
grep -q '^mergemem ' /proc/modules || fail "prerm unloaded the module"
[[ $msg == *"stays loaded (in use by 1)"* ]] || fail "prerm did not say the module stays loaded: $msg"
exec {dev}<&-
ok "removal leaves the module in use loaded and says so: ${msg%%$'\n'*}"
rmmod mergemem || fail "rmmod mergemem failed"
ok "rmmod"
