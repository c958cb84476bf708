#!/usr/bin/env bash
# Installs what the VM test suite (tests/vm/run.sh) needs on Debian 12:
# QEMU, the kernel matrix (images + headers), DKMS, busybox, build tools,
# the real servers and podman that guest tests run, and the newest sid
# kernel with its build root (scripts/sid-buildroot.sh: downloaded and
# unpacked into a cache, never installed on the host).
# Idempotent: does nothing when everything is installed; runs
# `apt-get update` only when a package is unknown to apt. Needs root.
#
#   MERGEMEM_VM_KVER_612=6.12.N+deb12-amd64  pin the 6.12 kernel
#                                           (default: newest apt offers)
#   MERGEMEM_VM_KVER_SID=7.N.M+deb14-amd64   pin the sid kernel
#                                           (default: sid's linux-image-amd64)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd -P)
# shellcheck source=../tests/vm/lib/kernels.sh source-path=SCRIPTDIR
. "$root/tests/vm/lib/kernels.sh"

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-y -q --no-install-recommends -o DPkg::Lock::Timeout=600)

base=(qemu-system-x86 linux-image-amd64 linux-headers-amd64 dkms
	busybox-static cpio build-essential zstd xz-utils kmod debootstrap)
# Real servers for tests/vm/guest/t_5*.sh: they run only inside the guest
# (over the read-only 9p root), never on the host; see no_host_services.
servers=(apache2 libapache2-mod-php php-fpm apache2-utils postgresql)
base+=("${servers[@]}")
# Containers for tests/vm/guest/t_7*.sh (containers_lib.sh): root podman with
# crun as the runtime (the first of podman's "crun | runc"), conmon, and
# catatonit, which podman builds a pod's infra (pause) image from; like the
# servers, they run only inside the guest.
containers=(podman crun conmon catatonit)
base+=("${containers[@]}")

installed() { # all named packages installed?
	local p s
	for p; do
		s=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
		[[ $s == ii* ]] || return 1
	done
}
known() { # all named packages have an install candidate?
	local p
	for p; do
		apt-cache policy "$p" 2>/dev/null | grep -q 'Candidate: [^(]' || return 1
	done
}

if [[ $(id -u) -ne 0 ]] && ! installed "${base[@]}"; then
	echo "vm-deps: must run as root to install packages" >&2
	exit 2
fi

updated=0
update() {
	[[ $updated -eq 1 ]] && return
	echo "vm-deps: apt-get update" >&2
	apt-get -q -o DPkg::Lock::Timeout=600 update >&2
	updated=1
}

# The 6.12 kernel: pinned, else the newest that apt knows about.
resolve() {
	k612=$(vm_kver_612_candidate || true)
	if [[ -z $k612 && $updated -eq 0 ]]; then
		update
		k612=$(vm_kver_612_candidate || true)
	fi
	if [[ -z $k612 ]]; then
		echo "vm-deps: no linux-image-6.12.*+deb12-amd64 available; is bookworm-security in the apt sources?" >&2
		exit 2
	fi
	pkgs=("${base[@]}" "linux-image-$k612" "linux-headers-$k612")
}
# The sid kernel and its build root (cached; refreshed when sid moves on).
sid_prepare() {
	"$root/scripts/sid-buildroot.sh" prepare >/dev/null
}
resolve
if installed "${pkgs[@]}"; then
	sid_prepare
	echo "vm-deps: all installed (6.1: $(vm_kver_default), 6.12: $k612, sid: $(vm_kver_sid))" >&2
	exit 0
fi
if ! known "${pkgs[@]}"; then
	update
	resolve
fi

# Installing the servers must not leave them running or enabled on the host.
# While apt runs, a policy-rc.d forbids every service action (exit 101),
# unless the host already has one of its own. Afterwards, every service
# (init script, systemd service or timer) of a package that this run
# installed is stopped if it started anyway and disabled; services of
# packages that were already installed are the admin's and left alone.
POLICY=/usr/sbin/policy-rc.d
own_policy=0
ii_packages() { dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' | awk '$1 == "ii" { print $2 }' | sort; }
pre_install=$(ii_packages)
if [[ ! -e $POLICY ]]; then
	printf '#!/bin/sh\n# scripts/vm-deps.sh: no service starts while it installs packages\nexit 101\n' >"$POLICY"
	chmod 755 "$POLICY"
	own_policy=1
	trap 'rm -f "$POLICY"' EXIT
fi
no_host_services() {
	local p s
	((own_policy)) && rm -f "$POLICY"
	trap - EXIT
	for p in $(comm -13 <(echo "$pre_install") <(ii_packages)); do
		dpkg -L "$p" 2>/dev/null | sed -n \
			-e 's#^/etc/init\.d/\([^/]*\)$#\1#p' \
			-e 's#^/\(usr/\)\{0,1\}lib/systemd/system/\([^@/]*\.\(service\|timer\)\)$#\2#p'
	done | sort -u | while read -r s; do
		if [[ -d /run/systemd/system ]]; then
			systemctl disable --now "$s" >&2 2>/dev/null || true
		elif [[ $s != *.service && $s != *.timer ]]; then
			if service "$s" status >/dev/null 2>&1; then
				echo "vm-deps: stopping $s (started by its install)" >&2
				service "$s" stop >&2 || true
			fi
			update-rc.d "$s" disable >/dev/null 2>&1 || true
		fi
	done
}

# Only the packages that are not installed: a package that is there (or
# whose tool came from elsewhere) is left alone.
missing() {
	local p
	for p in "${pkgs[@]}"; do installed "$p" || echo "$p"; done
}
mapfile -t todo < <(missing)
echo "vm-deps: installing ${todo[*]}" >&2
if ! apt-get install "${APT_OPTS[@]}" "${todo[@]}" >&2; then
	# Stale package lists (e.g. a superseded security update): refresh once.
	((updated == 0)) || exit 1
	update
	resolve
	mapfile -t todo < <(missing)
	apt-get install "${APT_OPTS[@]}" "${todo[@]}" >&2
fi
no_host_services
sid_prepare
echo "vm-deps: done (6.1: $(vm_kver_default), 6.12: $k612, sid: $(vm_kver_sid))" >&2
