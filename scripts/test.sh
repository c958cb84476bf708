#!/bin/bash
# The test command (README.md, "Tests"): installs what the tests need, then
# runs formatting and lint checks, type checks, unit and host integration
# tests, an install.sh round trip and the VM suite on Debian's kernels.
#
#   sudo ./scripts/test.sh            everything (what CI runs)
#   sudo ./scripts/test.sh --no-vm    skip the VM suite
#   sudo ./scripts/test.sh --vm-only  only the VM suite
set -euo pipefail
cd "$(dirname "$0")/.."

run_host=1
run_vm=1
for arg in "$@"; do
	case "$arg" in
	--no-vm) run_vm=0 ;;
	--vm-only) run_host=0 ;;
	-h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "test.sh: unknown option $arg" >&2; exit 2 ;;
	esac
done

[ "$(id -u)" -eq 0 ] || { echo "test.sh: run as root (the tests read other processes' memory and boot VMs)" >&2; exit 2; }

step() { printf '\n=== %s (%s)\n' "$*" "$(date +%T)"; }

# Each part's log, for the closing count.
counts=$(mktemp -d /tmp/mergemem-test-counts.XXXXXX)

step "dependencies"
if [ "$run_vm" -eq 1 ]; then
	./scripts/vm-deps.sh
fi
./scripts/host-deps.sh
deno=$(./scripts/ensure-deno.sh)
export DENO_NO_UPDATE_CHECK=1
"$deno" --version | head -1

if [ "$run_host" -eq 1 ]; then
	step "format, lint and type checks; checkpatch --strict on the module; the wasm matches its source"
	"$deno" fmt --check
	"$deno" lint
	"$deno" task check
	./scripts/checkpatch.sh
	./scripts/build-wasm.sh --check

	step "unit and host integration tests"
	"$deno" task test 2>&1 | tee "$counts/host.log"

	step "install.sh round trip into a temporary prefix"
	prefix=$(mktemp -d)
	# The host's own kernel may have no headers (CI machines run custom
	# kernels); build the DKMS module for Debian's 6.1 kernel instead, which
	# vm-deps.sh installed, so the DKMS path is exercised for real.
	# shellcheck source=tests/vm/lib/kernels.sh
	. ./tests/vm/lib/kernels.sh
	kver61=$(vm_kver_default 2>/dev/null || true)
	ver=$(sed -n 's/^PACKAGE_VERSION="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' kmod/dkms.conf)
	if [ -n "$kver61" ] && [ -d "/lib/modules/$kver61/build" ]; then
		./install.sh --prefix "$prefix" --kernel "$kver61"
		dkms status "mergemem/$ver" -k "$kver61" | grep -q installed
		[ -d "/usr/src/mergemem-$ver" ] && [ -f /etc/modules-load.d/mergemem.conf ]
		if [ -d /etc/systemd ]; then
			[ -f /etc/systemd/system/mergemem.timer ] && [ -f /etc/mergemem.conf ]
		fi
	else
		./install.sh --prefix "$prefix" --no-module --no-systemd
	fi
	"$prefix/bin/mergemem" --version
	"$prefix/bin/mergemem" scan --pid $$ --json >"$prefix/scan.json"
	grep -q '"schema": *"mergemem.scan/1"' "$prefix/scan.json"
	./install.sh --prefix "$prefix" --uninstall
	[ ! -e "$prefix/bin/mergemem" ] && [ ! -e "$prefix/lib/mergemem" ]
	[ ! -e "/usr/src/mergemem-$ver" ] && [ ! -e /etc/modules-load.d/mergemem.conf ]
	[ ! -e /etc/systemd/system/mergemem.timer ]
	! dkms status mergemem 2>/dev/null | grep -q mergemem
	rm -rf "$prefix"
	echo "install.sh: ok"
fi

pkg_pid=
if [ "$run_host" -eq 1 ]; then
	step "Debian packages: build (with lintian), and the previous version for the upgrade test"
	debdir=$(mktemp -d /tmp/mergemem-deb.XXXXXX)
	./scripts/build-deb.sh -o "$debdir/new"
	MERGEMEM_DEB_VERSION="$ver~prev1" ./scripts/build-deb.sh --no-lintian -o "$debdir/prev"
	# The fresh-chroot test (install, upgrade from the previous version,
	# purge) spends its time on downloads and two DKMS builds: it runs
	# beside the VM suite and is waited for at the end.
	./scripts/test-deb.sh "$debdir/prev" "$debdir/new" >"$debdir/test-deb.log" 2>&1 &
	pkg_pid=$!
fi

if [ "$run_vm" -eq 1 ]; then
	if [ "$run_host" -eq 1 ]; then
		step "the packages on this host for the VM suite (t_60_package: modules-load.d, the packaged mergemem)"
		# shellcheck source=scripts/host-packages.sh
		. ./scripts/host-packages.sh
		host_packages_install "$debdir/new"
		trap host_packages_purge EXIT
	fi
	step "VM suite (QEMU TCG, Debian kernels)"
	./tests/vm/run.sh
	if [ "$run_host" -eq 1 ]; then
		host_packages_purge
		trap - EXIT
	fi
fi

if [ -n "$pkg_pid" ]; then
	step "Debian packages in a fresh Debian 12 chroot (scripts/test-deb.sh)"
	rc=0
	wait "$pkg_pid" || rc=$?
	cat "$debdir/test-deb.log"
	cp "$debdir/test-deb.log" "$counts/test-deb.log"
	[ "$rc" -eq 0 ] || { echo "test.sh: scripts/test-deb.sh failed (exit $rc)" >&2; exit 1; }
	rm -rf "$debdir"
fi

# The closing line counts every test and check that ran: the host's Deno
# tests, the VM suite's guest tests (on every kernel), the package checks.
passed=0 skipped=0
n=$(sed 's/\x1b\[[0-9;]*m//g' "$counts/host.log" 2>/dev/null | sed -n 's/^ok | \([0-9]*\) passed.*/\1/p' | tail -n1 || true)
passed=$((passed + ${n:-0}))
if [ "$run_vm" -eq 1 ] && [ -f .vm-work/summary.txt ]; then
	passed=$((passed + $(awk '$3 == "PASS" && $2 ~ /^t_/' .vm-work/summary.txt | wc -l)))
	skipped=$((skipped + $(awk '$3 == "SKIP" && $2 ~ /^t_/' .vm-work/summary.txt | wc -l)))
fi
n=$(sed -n 's/^\([0-9]*\) passed, 0 failed$/\1/p' "$counts/test-deb.log" 2>/dev/null | tail -n1 || true)
passed=$((passed + ${n:-0}))
rm -rf "$counts"
step "all tests passed"
echo "test.sh: $passed passed, 0 failed, $skipped skipped"
