# Sourced by tests/vm/guest/t_2*.sh .. t_4*.sh: loads the module built for
# this kernel (once per boot) and restores KSM's defaults afterwards.
set -euo pipefail
if [[ ${MERGEMEM_VM_NO_DKMS:-0} == 1 || -z ${MERGEMEM_KO:-} ]]; then
	echo "skip: no module for $KVER (--no-dkms)"
	exit 77
fi
if ! grep -q '^mergemem ' /proc/modules; then
	case $MERGEMEM_KO in
	*.xz) xz -dc "$MERGEMEM_KO" >/tmp/mergemem.ko && insmod /tmp/mergemem.ko ;;
	*.zst) zstd -dqc "$MERGEMEM_KO" >/tmp/mergemem.ko && insmod /tmp/mergemem.ko ;;
	*) insmod "$MERGEMEM_KO" ;;
	esac
fi
for _ in $(seq 50); do [[ -c /dev/mergemem ]] && break; sleep 0.1; done
[[ -c /dev/mergemem ]] || { echo "FAIL: /dev/mergemem missing after insmod" >&2; exit 1; }
ksm_defaults() {
	echo 0 >/sys/kernel/mm/ksm/run
	echo 100 >/sys/kernel/mm/ksm/pages_to_scan
	echo 20 >/sys/kernel/mm/ksm/sleep_millisecs
}
trap ksm_defaults EXIT
e2e() { "$DENO" run -A "$REPO/tests/vm/guest/merge_e2e.ts" "$@"; }
