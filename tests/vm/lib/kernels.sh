# shellcheck shell=bash
# The kernel matrix of the VM suite, in one place. Sourced by
# scripts/vm-deps.sh (what to install) and tests/vm/run.sh (what to boot).
#
#   MERGEMEM_VM_KVER_DEFAULT  6.1 kernel; default: the version Debian's
#                             linux-image-amd64 metapackage depends on
#   MERGEMEM_VM_KVER_612      6.12 kernel; default: the newest installed
#                             linux-image-6.12.*+deb12-amd64 (vm-deps.sh
#                             installs the newest one apt offers)
#   MERGEMEM_VM_KVER_SID      newest sid kernel (7.x); default: the one
#                             scripts/sid-buildroot.sh prepared (vm-deps.sh
#                             runs it): unpacked under MERGEMEM_VM_CACHE,
#                             never installed on the host, its module built
#                             in a sid build root
#   MERGEMEM_VM_CACHE         default /var/cache/mergemem-vm
#   MERGEMEM_VM_KERNELS       space-separated list overriding the whole matrix

VM_CACHE=${MERGEMEM_VM_CACHE:-/var/cache/mergemem-vm}

# Glob of the 6.12 kernel package names in bookworm-security.
VM_612_PKG_RE='^linux-image-6\.12\.[0-9]+\+deb12-amd64$'

# Version that linux-image-amd64 depends on, from the installed package or,
# failing that, from apt's candidate.
vm_kver_default() {
	if [[ -n ${MERGEMEM_VM_KVER_DEFAULT:-} ]]; then
		echo "$MERGEMEM_VM_KVER_DEFAULT"
		return
	fi
	local dep
	dep=$(dpkg-query -W -f='${Depends}' linux-image-amd64 2>/dev/null |
		grep -oE 'linux-image-[^ ,|]+' | head -n1 || true)
	if [[ -z $dep ]]; then
		dep=$(apt-cache depends linux-image-amd64 2>/dev/null |
			awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }' || true)
	fi
	[[ -n $dep ]] || return 1
	echo "${dep#linux-image-}"
}

# Newest installed 6.12 kernel (image and headers both installed).
vm_kver_612() {
	if [[ -n ${MERGEMEM_VM_KVER_612:-} ]]; then
		echo "$MERGEMEM_VM_KVER_612"
		return
	fi
	local k
	k=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' 'linux-image-6.12.*+deb12-amd64' 2>/dev/null |
		awk '$1 == "ii" { print $2 }' | grep -E "$VM_612_PKG_RE" |
		sed 's/^linux-image-//' | sort -V | while read -r v; do
			[[ -d /lib/modules/$v/build ]] && echo "$v"
		done | tail -n1 || true)
	[[ -n $k ]] || return 1
	echo "$k"
}

# Newest 6.12 kernel that apt can install (for vm-deps.sh).
vm_kver_612_candidate() {
	if [[ -n ${MERGEMEM_VM_KVER_612:-} ]]; then
		echo "$MERGEMEM_VM_KVER_612"
		return
	fi
	apt-cache pkgnames linux-image-6.12. 2>/dev/null | grep -E "$VM_612_PKG_RE" |
		sed 's/^linux-image-//' | sort -V | tail -n1
}

# The sid kernel that scripts/sid-buildroot.sh prepared.
vm_kver_sid() {
	if [[ -n ${MERGEMEM_VM_KVER_SID:-} ]]; then
		echo "$MERGEMEM_VM_KVER_SID"
		return
	fi
	[[ -s $VM_CACHE/sid-kver ]] || return 1
	cat "$VM_CACHE/sid-kver"
}

# vm_kernel_root KVER: where a kernel that is not installed on the host was
# unpacked (its files under usr/lib/modules/KVER/), or nothing for a kernel
# installed on the host (/boot/vmlinuz-KVER, /lib/modules/KVER).
vm_kernel_root() {
	[[ ! -f $VM_CACHE/kernels/$1/.ready ]] || echo "$VM_CACHE/kernels/$1"
}

# vm_kernel_image KVER: its compressed kernel image.
vm_kernel_image() {
	local r
	r=$(vm_kernel_root "$1")
	if [[ -n $r ]]; then
		echo "$r/usr/lib/modules/$1/vmlinuz"
	else
		echo "/boot/vmlinuz-$1"
	fi
}

# vm_kernel_buildroot KVER: the root (a chroot) in which its module is
# built; / for a kernel installed on the host.
vm_kernel_buildroot() {
	if [[ -n $(vm_kernel_root "$1") ]]; then
		echo "$VM_CACHE/sid-root"
	else
		echo /
	fi
}

# The default matrix, one version per line.
vm_kernels() {
	if [[ -n ${MERGEMEM_VM_KERNELS:-} ]]; then
		tr ' ' '\n' <<<"$MERGEMEM_VM_KERNELS" | sed '/^$/d'
		return
	fi
	local a b c
	a=$(vm_kver_default) || { echo "kernels: cannot resolve the linux-image-amd64 kernel (run scripts/vm-deps.sh)" >&2; return 1; }
	b=$(vm_kver_612) || { echo "kernels: no linux-image-6.12.*+deb12-amd64 with headers installed (run scripts/vm-deps.sh)" >&2; return 1; }
	c=$(vm_kver_sid) || { echo "kernels: no sid kernel prepared (run scripts/vm-deps.sh)" >&2; return 1; }
	printf '%s\n%s\n%s\n' "$a" "$b" "$c"
}
