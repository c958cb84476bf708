#!/bin/sh
# install.sh: installs mergemem (the command, the kernel module through
# DKMS, and a disabled systemd timer), or removes all of it.
#
#   sudo ./install.sh                   install under /usr/local
#   sudo ./install.sh --prefix /opt/mm  install under another prefix
#   sudo ./install.sh --uninstall       remove everything installed
#
# Options:
#   --prefix DIR   where bin/ and lib/ go (default /usr/local)
#   --no-module    do not build or load the kernel module
#   --kernel KVER  build the module for this kernel (default: the running
#                  one); it is loaded only when KVER is the running kernel
#   --no-systemd   do not install the systemd service and timer
#   --uninstall    remove what an install put in place (same --prefix)
#   -h, --help     this help
#
# Environment:
#   DENORT_BIN     a Deno runtime (denort) for `deno compile`; without it the
#                  cached runtime or a download is tried, and if neither works
#                  a launcher script running the bundled code is installed.
#
# Running it again is safe: every step checks what is already there.
set -eu

prefix=/usr/local
with_module=1
kver=$(uname -r)
with_systemd=1
uninstall=0
src=$(cd "$(dirname "$0")" && pwd)
# The DKMS package version, from the one place it is written.
VERSION=$(sed -n 's/^PACKAGE_VERSION="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$src/kmod/dkms.conf")
[ -n "$VERSION" ] || { echo "install.sh: cannot read PACKAGE_VERSION from kmod/dkms.conf" >&2; exit 1; }

say() { printf 'install.sh: %s\n' "$*"; }
warn() { printf 'install.sh: warning: %s\n' "$*" >&2; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

while [ $# -gt 0 ]; do
	case "$1" in
	--prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; prefix=$2; shift 2 ;;
	--prefix=*) prefix=${1#--prefix=}; shift ;;
	--no-module) with_module=0; shift ;;
	--kernel) [ $# -ge 2 ] || die "--kernel needs a version"; kver=$2; shift 2 ;;
	--no-systemd) with_systemd=0; shift ;;
	--uninstall) uninstall=1; shift ;;
	-h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown option '$1' (see --help)" ;;
	esac
done

bindir=$prefix/bin
libdir=$prefix/lib/mergemem
docdir=$prefix/share/doc/mergemem
unitdir=/etc/systemd/system
dkms_src=/usr/src/mergemem-$VERSION
conf=/etc/mergemem.conf

is_root() { [ "$(id -u)" -eq 0 ]; }
have() { command -v "$1" >/dev/null 2>&1; }
# apt-get install, refreshing the package lists once if they are stale.
apt_install() {
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" \
		>/dev/null 2>&1 && return 0
	apt-get update -q >/dev/null 2>&1 || true
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

# ---------------------------------------------------------------- uninstall
if [ "$uninstall" -eq 1 ]; then
	if [ -f "$unitdir/mergemem.timer" ] && have systemctl; then
		systemctl disable --now mergemem.timer >/dev/null 2>&1 || true
	fi
	rm -f "$unitdir/mergemem.service" "$unitdir/mergemem.timer"
	have systemctl && systemctl daemon-reload >/dev/null 2>&1 || true
	if [ -f "$conf" ] && cmp -s "$conf" "$src/packaging/mergemem.conf"; then
		rm -f "$conf"
	elif [ -f "$conf" ]; then
		say "kept $conf: it was edited"
	fi
	rm -f "$bindir/mergemem"
	rm -rf "$libdir" "$docdir"
	rm -f /etc/modules-load.d/mergemem.conf
	if [ -e /sys/module/mergemem ]; then
		rmmod mergemem 2>/dev/null || warn "could not unload the module (in use?)"
	fi
	if have dkms && dkms status mergemem 2>/dev/null | grep -q mergemem; then
		dkms remove "mergemem/$VERSION" --all >/dev/null 2>&1 || \
			warn "dkms remove mergemem/$VERSION failed"
	fi
	rm -rf "$dkms_src"
	say "removed mergemem from $prefix"
	exit 0
fi

# ------------------------------------------------------------------ command
is_root || [ -w "$(dirname "$prefix")" ] || [ -w "$prefix" ] || \
	die "cannot write to $prefix: run as root (sudo ./install.sh) or use --prefix"

if ! have npm && ! [ -x "$src/tools/deno/node_modules/deno/deno" ]; then
	is_root || die "npm is needed to install Deno: apt-get install npm"
	say "installing npm (to fetch the pinned Deno)"
	apt_install npm || die "could not install npm"
fi
deno=$("$src/scripts/ensure-deno.sh")
say "using $($deno --version | head -1)"

mkdir -p "$bindir" "$libdir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Deno demands full access for /proc/PID/* files, and --allow-ffi (needed
# for ioctl and process_vm_readv) grants everything anyway: say so plainly.
perms="--allow-all"
built=0
if [ -n "${DENORT_BIN:-}" ] && [ ! -x "${DENORT_BIN}" ]; then
	die "DENORT_BIN=$DENORT_BIN is not an executable file"
fi
# deno compile uses DENORT_BIN when set, else its cache, else a download.
# shellcheck disable=SC2086
if (cd "$src" && $deno compile --quiet $perms -o "$tmp/mergemem" main.ts) \
	>"$tmp/compile.log" 2>&1; then
	built=1
fi

if [ "$built" -eq 1 ]; then
	install -m 0755 "$tmp/mergemem" "$bindir/mergemem"
	rm -rf "$libdir"
	say "installed the single binary $bindir/mergemem (deno compile)"
else
	# No Deno runtime for compile (no DENORT_BIN, nothing cached, no
	# network): install the same code as one bundled file plus the pinned
	# Deno, and a launcher granting exactly the permissions compile would.
	say "deno compile could not get its runtime: $(sed 's/\x1b\[[0-9;]*m//g' "$tmp/compile.log" | grep -m1 -E 'error sending|dns error|No such file|DENORT' | sed 's/^ *[0-9]*: *//' | cut -c1-140)"
	say "falling back to a launcher (set DENORT_BIN=/path/to/denort for a single binary)"
	rm -rf "$libdir/src" "$libdir/main.ts" "$libdir/mergemem.js" "$libdir/deno.json"
	install -m 0755 "$deno" "$libdir/deno"
	if (cd "$src" && $deno bundle --quiet -o "$tmp/mergemem.js" main.ts) \
		>"$tmp/bundle.log" 2>&1; then
		install -m 0644 "$tmp/mergemem.js" "$libdir/mergemem.js"
		entry=$libdir/mergemem.js
	else
		# deno bundle fetches esbuild from the npm registry; without it,
		# install the sources themselves.
		cp -R "$src/src" "$libdir/src"
		install -m 0644 "$src/main.ts" "$libdir/main.ts"
		# src/version.ts imports the version from deno.json (data here:
		# the launcher runs with --no-config).
		install -m 0644 "$src/deno.json" "$libdir/deno.json"
		entry=$libdir/main.ts
	fi
	cat >"$tmp/launcher" <<LAUNCHER
#!/bin/sh
# mergemem launcher written by install.sh: runs the bundled code with the
# pinned Deno and the same permissions as the compiled binary (all: Deno
# requires that for /proc/PID files, and FFI implies it anyway).
export DENO_NO_UPDATE_CHECK=1
exec "$libdir/deno" run --quiet --no-prompt --no-config --no-lock $perms "$entry" "\$@"
LAUNCHER
	install -m 0755 "$tmp/launcher" "$bindir/mergemem"
	say "installed the launcher $bindir/mergemem (runs $entry)"
fi
"$bindir/mergemem" --version >/dev/null || die "the installed mergemem does not run"
mkdir -p "$docdir"
cp -R "$src/README.md" "$src/docs/." "$docdir/"

# --------------------------------------------------------------- the module
install_module() {
	if ! is_root; then
		warn "not root: skipping the kernel module"
		return 0
	fi
	if ! have dkms || ! [ -d "/lib/modules/$kver/build" ]; then
		# Only what is missing: each from its own package.
		need=
		have dkms || need=" dkms"
		[ -d "/lib/modules/$kver/build" ] || need="$need linux-headers-$kver"
		say "installing$need (for $kver)"
		# shellcheck disable=SC2086 # one word per package
		apt_install $need 2>/dev/null || true
	fi
	if ! have dkms || ! [ -d "/lib/modules/$kver/build" ]; then
		warn "no dkms or no headers for the running kernel $kver (apt-get install dkms linux-headers-$kver):"
		warn "the module is not installed; 'mergemem scan' works without it, and 'merge' marks memory with its ptrace engine instead"
		return 0
	fi
	rm -rf "$dkms_src"
	mkdir -p "$dkms_src"
	cp -R "$src/kmod/." "$dkms_src/"
	(cd "$dkms_src" && rm -f ./*.o ./*.ko ./*.mod ./*.mod.c config.h Module.symvers modules.order)
	dkms status "mergemem/$VERSION" 2>/dev/null | grep -q mergemem || \
		dkms add "mergemem/$VERSION" >/dev/null
	if ! dkms install "mergemem/$VERSION" -k "$kver" --force >"$tmp/dkms.log" 2>&1; then
		tail -20 "$tmp/dkms.log" >&2
		warn "dkms could not build the module for $kver (log above)"
		return 0
	fi
	echo mergemem >/etc/modules-load.d/mergemem.conf
	if [ "$kver" != "$(uname -r)" ]; then
		say "module built and installed for $kver; it loads when that kernel runs"
	elif modprobe mergemem 2>"$tmp/modprobe.log"; then
		say "module loaded: /dev/mergemem (DKMS rebuilds it for new kernels)"
	else
		warn "modprobe mergemem failed: $(cat "$tmp/modprobe.log")"
		warn "with Secure Boot, enrol the DKMS key: mokutil --import /var/lib/dkms/mok.pub"
	fi
}
if [ "$with_module" -eq 1 ]; then install_module; fi

# ------------------------------------------------------------------ systemd
if [ "$with_systemd" -eq 1 ] && is_root && [ -d /etc/systemd ]; then
	mkdir -p "$unitdir"
	for unit in mergemem.service mergemem.timer; do
		sed -e "s|@BINDIR@|$bindir|g" -e "s|@DOCDIR@|$docdir|g" \
			"$src/packaging/systemd/$unit" >"$unitdir/$unit"
	done
	[ -f "$conf" ] || install -m 0644 "$src/packaging/mergemem.conf" "$conf"
	have systemctl && systemctl daemon-reload >/dev/null 2>&1 || true
	say "installed mergemem.timer (disabled; edit $conf, then: systemctl enable --now mergemem.timer)"
fi

say "done: try 'sudo $bindir/mergemem scan'"
