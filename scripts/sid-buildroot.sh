#!/usr/bin/env bash
# The newest Debian sid kernel for the VM suite, and a sid build root to
# build kmod/ for it.
#
# sid's kernel headers need sid's toolchain: linux-headers-7.x depends on
# gcc-16-for-host and on a linux-kbuild whose modpost, objtool, genksyms and
# kconfig need GLIBC 2.38, newer than bookworm's. So the module is built in a
# small sid chroot made with debootstrap (cached), while the guest boots the
# sid kernel with the host's own userland over 9p, like the other kernels.
#
# sid is never added to the host's apt sources: a private sources file,
# package lists and cache under the cache dir serve only these downloads.
#
#   scripts/sid-buildroot.sh prepare        resolve the newest sid kernel,
#                                           download and unpack it, create or
#                                           update the build root (idempotent)
#   scripts/sid-buildroot.sh kver           print the prepared kernel version
#   scripts/sid-buildroot.sh build KVER SRC OUT
#                                           build the DKMS package whose
#                                           sources are in SRC (kmod/, with
#                                           dkms.conf) in the build root with
#                                           DKMS; copies the .ko to OUT/
#
#   MERGEMEM_VM_CACHE     cache dir (default /var/cache/mergemem-vm; its
#                         layout is read by tests/vm/lib/kernels.sh)
#   MERGEMEM_VM_KVER_SID  pin the kernel (e.g. 7.2.13+deb14-amd64)
#   MERGEMEM_VM_SID_MIRROR  default http://deb.debian.org/debian
# Needs root (debootstrap, chroot).
set -euo pipefail

CACHE=${MERGEMEM_VM_CACHE:-/var/cache/mergemem-vm}
MIRROR=${MERGEMEM_VM_SID_MIRROR:-http://deb.debian.org/debian}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
APTDIR=$CACHE/apt-sid
ROOT=$CACHE/sid-root
# The build root's packages besides minbase: DKMS builds the module there
# as it would on a sid machine (the kernel's headers come per version).
ROOT_PKGS=(make dkms kmod xz-utils)

log() { echo "sid-buildroot: $*" >&2; }
die() { echo "sid-buildroot: error: $*" >&2; exit 2; }
now() { date +%s; }

# The private apt configuration: sid only, own lists, own cache, empty
# dpkg status (nothing here is ever installed on the host).
sid_apt_opts() {
	APT=(-o "Dir::Etc::sourcelist=$APTDIR/sources.list"
		-o Dir::Etc::sourceparts=/nonexistent
		-o "Dir::State::Lists=$APTDIR/lists"
		-o "Dir::State::status=$APTDIR/status"
		-o "Dir::Cache=$APTDIR/cache"
		-o Debug::NoLocking=1 -o APT::Sandbox::User=root
		-o Acquire::Check-Valid-Until=false -q)
}

sid_apt_init() {
	mkdir -p "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial" "$APTDIR/debs"
	echo "deb [signed-by=$KEYRING] $MIRROR sid main" >"$APTDIR/sources.list"
	[[ -f $APTDIR/status ]] || : >"$APTDIR/status"
	sid_apt_opts
}

sid_apt_update() {
	log "apt-get update (sid, private lists in $APTDIR)"
	apt-get "${APT[@]}" update >&2
}

# The version linux-image-amd64 depends on in sid (e.g. 7.2.13+deb14-amd64).
sid_kver_resolve() {
	if [[ -n ${MERGEMEM_VM_KVER_SID:-} ]]; then
		echo "$MERGEMEM_VM_KVER_SID"
		return
	fi
	apt-cache "${APT[@]}" depends linux-image-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { sub(/^linux-image-/, "", $2); print $2; exit }'
}

# kernel_fetch KVER: the kernel image, its modules and their lists
# (linux-base-KVER: modules.builtin, config), unpacked into
# $CACHE/kernels/KVER (usr/lib/modules/KVER/vmlinuz, modules.dep made by
# the host's depmod, and lib -> usr/lib so that modprobe -d finds them).
kernel_fetch() {
	local k=$1 d=$CACHE/kernels/$1 p
	[[ -f $d/.ready ]] && return 0
	rm -rf "$d" && mkdir -p "$d"
	for p in "linux-binary-$k" "linux-modules-$k" "linux-base-$k"; do
		log "apt-get download $p"
		(cd "$APTDIR/debs" && apt-get "${APT[@]}" download "$p" >&2) || return 1
		dpkg-deb -x "$APTDIR/debs/${p}_"*.deb "$d"
	done
	ln -sfn usr/lib "$d/lib"
	[[ -f $d/usr/lib/modules/$k/vmlinuz ]] || die "no usr/lib/modules/$k/vmlinuz in linux-binary-$k"
	depmod -b "$d" "$k"
	rm -f "$APTDIR/debs/"*.deb
	touch "$d/.ready"
}

# in_root CMD...: CMD in the build root, with /proc (objtool reads it) in a
# private mount namespace, so that no mount outlives the command.
in_root() {
	unshare --mount --propagation private /bin/sh -c \
		'mount -t proc proc "$0/proc" && exec chroot "$0" "$@"' "$ROOT" \
		/usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
		LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}

# root_prepare KVER: the sid build root with KVER's headers and compiler.
root_prepare() {
	local k=$1
	if [[ ! -f $ROOT/.mergemem-base ]]; then
		command -v debootstrap >/dev/null || die "debootstrap missing (run scripts/vm-deps.sh)"
		rm -rf "$ROOT"
		log "debootstrap sid into $ROOT"
		debootstrap --variant=minbase --keyring="$KEYRING" \
			--include="$(IFS=,; echo "${ROOT_PKGS[*]}")" sid "$ROOT" "$MIRROR" >&2 ||
			die "debootstrap failed (log: $ROOT/debootstrap/debootstrap.log)"
		# No service may start in the build root.
		printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
		chmod 755 "$ROOT/usr/sbin/policy-rc.d"
		touch "$ROOT/.mergemem-base"
	fi
	[[ -d $ROOT/lib/modules/$k/build ]] && return 0
	log "installing linux-headers-$k in the build root"
	# Debian's mirror here may be a frozen snapshot whose Release files
	# are past their Valid-Until date.
	echo 'Acquire::Check-Valid-Until "false";' >"$ROOT/etc/apt/apt.conf.d/99mergemem"
	cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
	in_root apt-get -q update >&2
	in_root apt-get -y -q --no-install-recommends install "linux-headers-$k" >&2
	# Headers of older kernels are no longer needed.
	in_root dpkg-query -W -f='${Package}\n' 'linux-headers-*-amd64' 2>/dev/null |
		grep -vxF "linux-headers-$k" | xargs -r chroot "$ROOT" apt-get -y -q purge >&2 || true
	in_root apt-get -y -q autoremove --purge >&2 || true
	in_root apt-get -q clean
	[[ -d $ROOT/lib/modules/$k/build ]] || die "linux-headers-$k installed no /lib/modules/$k/build"
}

cmd_prepare() {
	local t0 k
	t0=$(now)
	[[ $(id -u) -eq 0 ]] || die "must run as root"
	mkdir -p "$CACHE"
	exec {lk}>"$CACHE/lock"
	flock -w 1800 "$lk" || die "another sid-buildroot.sh holds $CACHE/lock"
	sid_apt_init
	# Lists older than a day are refreshed: sid replaces its kernel often.
	if [[ -z $(find "$APTDIR/lists" -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null) ]]; then
		sid_apt_update
	fi
	k=$(sid_kver_resolve)
	[[ -n $k ]] || die "cannot resolve sid's linux-image-amd64"
	if ! kernel_fetch "$k"; then
		# Stale lists: the version was superseded in the archive.
		sid_apt_update
		k=$(sid_kver_resolve)
		kernel_fetch "$k" || die "cannot download the sid kernel $k"
	fi
	root_prepare "$k"
	echo "$k" >"$CACHE/sid-kver"
	# Kernels that sid has replaced are no longer needed.
	find "$CACHE/kernels" -mindepth 1 -maxdepth 1 ! -name "$k" -exec rm -rf {} +
	log "ready: $k ($(($(now) - t0)) s)"
	echo "$k"
}

cmd_build() {
	local k=${1:?KVER} src=${2:?SRC} out=${3:?OUT} name ver b ko
	[[ -d $ROOT/lib/modules/$k/build ]] || die "no build root for $k (run scripts/sid-buildroot.sh prepare)"
	name=$(sed -n 's/^PACKAGE_NAME="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$src/dkms.conf")
	ver=$(sed -n 's/^PACKAGE_VERSION="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$src/dkms.conf")
	[[ -n $name && -n $ver ]] || die "$src/dkms.conf: no PACKAGE_NAME/PACKAGE_VERSION"
	# A private DKMS tree per build, in the root's /tmp.
	b=$(mktemp -d "$ROOT/tmp/mergemem-build.XXXXXX")
	trap 'rm -rf "$b"' RETURN
	mkdir -p "$b/src/$name-$ver" "$b/dkms"
	cp -a "$src/." "$b/src/$name-$ver/"
	local dk=(--dkmstree "${b#"$ROOT"}/dkms" --sourcetree "${b#"$ROOT"}/src" -m "$name" -v "$ver")
	if ! { in_root dkms add "${dk[@]}" && in_root dkms build "${dk[@]}" -k "$k"; } >&2; then
		find "$b/dkms" -name make.log -exec tail -n 60 {} \; >&2
		return 1
	fi
	ko=$(find "$b/dkms/$name/$ver/$k" -path '*/module/*' -name "$name.ko*" | head -n1)
	[[ -n $ko ]] || { log "dkms built no $name.ko"; return 1; }
	mkdir -p "$out"
	cp "$ko" "$out/"
	echo "$out/$(basename "$ko")"
}

case ${1:-} in
prepare) cmd_prepare ;;
kver)
	[[ -s $CACHE/sid-kver ]] || exit 1
	cat "$CACHE/sid-kver" ;;
build) shift; cmd_build "$@" ;;
*) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
