#!/usr/bin/env bash
# vm-timeout: 120
# Smoke test of the VM itself: the right kernel booted, KSM is there, the
# host's Deno runs, and the DKMS-built module exists for this kernel.
set -euo pipefail
ok() { echo "ok: $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

running=$(uname -r)
[[ $running == "$KVER" ]] || fail "uname -r is $running, expected $KVER"
ok "kernel $running"

[[ -d /sys/kernel/mm/ksm ]] || fail "/sys/kernel/mm/ksm missing"
[[ -w /sys/kernel/mm/ksm/run ]] || fail "/sys/kernel/mm/ksm/run not writable"
ok "ksm: run=$(cat /sys/kernel/mm/ksm/run) pages_to_scan=$(cat /sys/kernel/mm/ksm/pages_to_scan)"

[[ -x $DENO ]] || fail "no Deno at $DENO (scripts/ensure-deno.sh on the host)"
v=$("$DENO" --version | head -n1) || fail "$DENO --version failed"
ok "$v"

if ! { touch "$MERGEMEM_VM_WORK/.rw-probe" && rm -f "$MERGEMEM_VM_WORK/.rw-probe"; }; then
	fail "work dir $MERGEMEM_VM_WORK not writable"
fi
ok "work dir writable"

if [[ ${MERGEMEM_VM_NO_DKMS:-0} == 1 ]]; then
	echo "skip: module check (host ran with --no-dkms)"
	exit 0
fi
[[ -n $MERGEMEM_KO ]] || fail "MERGEMEM_KO is empty (DKMS build failed on the host?)"
[[ -f $MERGEMEM_KO ]] || fail "MERGEMEM_KO=$MERGEMEM_KO does not exist"
vermagic=$(modinfo -F vermagic "$MERGEMEM_KO") || fail "modinfo $MERGEMEM_KO failed"
[[ $vermagic == "$KVER "* ]] || fail "vermagic '$vermagic' does not match $KVER"
ok "module $MERGEMEM_KO (vermagic $vermagic)"
