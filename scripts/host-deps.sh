#!/bin/sh
# Installs the tools the host part of the tests needs, each from its own
# Debian package, and only the tools that are missing: a machine may come
# with a tool from elsewhere (Node.js from NodeSource bundles npm and
# conflicts with Debian's npm), and installing a package whose tool is
# already there can break apt. Idempotent; needs root only to install.
#
#   scripts/host-deps.sh            install what is missing
#   scripts/host-deps.sh --list     print the missing tools' packages
#   scripts/host-deps.sh TOOL=PACKAGE...
#                                   the same for these tools instead of
#                                   the tests' list (scripts/build-deb.sh)
set -eu

list=0
if [ "${1:-}" = --list ]; then
	list=1
	shift
fi

# tool package: one line per tool; the package is Debian's provider.
tools='gcc gcc
make make
cc libc6-dev
npm npm
setpriv util-linux
wat2wasm wabt
dpkg-buildpackage dpkg-dev
debootstrap debootstrap'
if [ $# -gt 0 ]; then
	tools=$(for p; do echo "${p%%=*} ${p#*=}"; done)
fi

missing=
while read -r tool pkg; do
	case $tool in
	cc) [ -e /usr/include/stdio.h ] && continue ;;
	npm)
		# Deno is pinned under tools/deno and fetched with npm; a
		# checkout that already has it needs no npm.
		[ -x "$(dirname "$0")/../tools/deno/node_modules/deno/deno" ] && continue
		command -v npm >/dev/null 2>&1 && continue ;;
	*) command -v "$tool" >/dev/null 2>&1 && continue ;;
	esac
	case " $missing " in *" $pkg "*) ;; *) missing="$missing $pkg" ;; esac
done <<EOT
$tools
EOT
missing=${missing# }

if [ "$list" -eq 1 ]; then
	[ -z "$missing" ] || echo "$missing"
	exit 0
fi
[ -n "$missing" ] || exit 0
[ "$(id -u)" -eq 0 ] || { echo "host-deps: run as root to install: $missing" >&2; exit 2; }
echo "host-deps: installing $missing" >&2
apt_install() {
	# shellcheck disable=SC2086 # one word per package
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		-o DPkg::Lock::Timeout=600 $missing >&2
}
# Stale or missing package lists: refresh once and try again.
apt_install || { apt-get -q -o DPkg::Lock::Timeout=600 update >&2 && apt_install; }
