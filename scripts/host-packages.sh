# shellcheck shell=bash
# Sourced by scripts/test.sh: installs the freshly built packages on this
# host for the VM suite, whose guests boot the host's root, and removes them
# again. DKMS builds the module for each Debian kernel of the matrix whose
# headers are here (the dkms kernel hook would on a real machine; the
# package's own postinst builds only for the running and the newest
# kernel). tests/vm/guest/t_60_package.sh reads .vm-work/package.env.

# host_packages_install DEBDIR
host_packages_install() {
	local dir=$1 ver k kernels=
	if dpkg-query -W -f='${db:Status-Abbrev}' mergemem mergemem-dkms 2>/dev/null | grep -q '^ii'; then
		echo "host-packages: mergemem is installed on this host already: left alone (t_60_package skips)" >&2
		HOST_PACKAGES_OURS=0
		return 0
	fi
	HOST_PACKAGES_OURS=1
	ver=$(dpkg-deb -f "$dir"/mergemem-dkms_*.deb Version)
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		-o DPkg::Lock::Timeout=600 "$dir"/mergemem_*.deb "$dir"/mergemem-dkms_*.deb >&2
	# shellcheck source=tests/vm/lib/kernels.sh
	. ./tests/vm/lib/kernels.sh
	for k in $(vm_kver_default) $(vm_kver_612 2>/dev/null || true); do
		[ -d "/lib/modules/$k/build" ] || continue
		dkms status "mergemem/$ver" -k "$k" 2>/dev/null | grep -q installed ||
			dkms install "mergemem/$ver" -k "$k" >&2
		kernels="$kernels $k"
	done
	mkdir -p .vm-work
	printf 'MERGEMEM_PKG_VERSION=%q\nMERGEMEM_PKG_KERNELS=%q\n' "$ver" "${kernels# }" >.vm-work/package.env
	echo "host-packages: mergemem $ver installed; DKMS built it for:$kernels" >&2
}

host_packages_purge() {
	rm -f .vm-work/package.env
	[ "${HOST_PACKAGES_OURS:-0}" -eq 1 ] || return 0
	DEBIAN_FRONTEND=noninteractive apt-get purge -y -q -o DPkg::Lock::Timeout=600 \
		mergemem mergemem-dkms >&2 || true
}
