#!/bin/sh
# build-image.sh: builds the mergemem node-agent container image
# (deploy/Containerfile: mergemem and deploy/mergemem-agent on a Debian base).
#
#   scripts/build-image.sh [options]
#
# 1. the mergemem binary: --binary PATH, or `deno compile` here (with the
#    pinned Deno; it needs a Deno runtime, denort: DENORT_BIN, else Deno's
#    cache, else a download). When compile cannot get one (offline), the
#    image gets what the .deb gets instead: the launcher
#    debian/mergemem.launcher at /usr/bin/mergemem running the bundled
#    program with the pinned Deno from /usr/lib/mergemem/;
# 2. stages a build context in a temporary directory: Containerfile,
#    mergemem, mergemem-agent, lib/ (nothing else of the tree);
# 3. `podman build` (or `buildah bud`) with --build-arg BASE=... The
#    Containerfile has no RUN step, so nothing is executed in a container:
#    the build works on hosts that cannot run containers.
#
# Options:
#   --base IMAGE    the base image (default docker.io/library/debian:bookworm-slim,
#                   pulled if missing: needs that registry)
#   --local-base    make the base here instead, with no registry: Debian 12
#                   minbase (debootstrap from the host's Debian mirror, or
#                   the tarball scripts/test-deb.sh caches in
#                   /var/cache/mergemem-deb-test), without docs, man pages,
#                   locales and apt lists, imported as
#                   localhost/mergemem-base:bookworm; reused when that
#                   image exists (--refresh-base makes it again)
#   --tag TAG       the image's name (default localhost/mergemem:VERSION,
#                   VERSION from deno.json; also tagged :latest)
#   --binary PATH   a `deno compile`d mergemem to put in (an ELF file)
#   --committed     build mergemem from the tracked files as committed
#                   (HEAD), ignoring uncommitted edits to them (new
#                   untracked files still come from the working tree)
#   --save FILE     also write the image to FILE as an OCI archive
#                   (`podman load -i FILE` on another machine)
#   --builder B     podman or buildah (default: podman if installed, else
#                   buildah, else podman is installed from Debian)
#   --isolation I   passed to the builder (oci, chroot, rootless); not
#                   needed without RUN steps
#   -h, --help      this help
#
# Environment:
#   DENORT_BIN      a Deno runtime (denort) for `deno compile`
#   SOURCE_DATE_EPOCH  the image's created label (default: the last commit's)
#
# Needs root (podman's system store; installing podman or debootstrap).
# Prints the image's name, id and size.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
base=docker.io/library/debian:bookworm-slim
base_set=0
local_base=0
refresh_base=0
tag=
binary=
committed=0
save=
builder=
isolation=
local_base_image=localhost/mergemem-base:bookworm
deb_test_tarball=/var/cache/mergemem-deb-test/bookworm-minbase.tar.gz

say() { printf 'build-image: %s\n' "$*"; }
die() { printf 'build-image: error: %s\n' "$*" >&2; exit 1; }
need_arg() { [ "$1" -ge 2 ] || die "$2 needs a value (see --help)"; }

while [ $# -gt 0 ]; do
	case "$1" in
	--base) need_arg $# "$1"; base=$2; base_set=1; shift 2 ;;
	--base=*) base=${1#*=}; base_set=1; shift ;;
	--local-base) local_base=1; shift ;;
	--refresh-base) local_base=1; refresh_base=1; shift ;;
	--tag) need_arg $# "$1"; tag=$2; shift 2 ;;
	--tag=*) tag=${1#*=}; shift ;;
	--binary) need_arg $# "$1"; binary=$2; shift 2 ;;
	--binary=*) binary=${1#*=}; shift ;;
	--committed) committed=1; shift ;;
	--save) need_arg $# "$1"; save=$2; shift 2 ;;
	--save=*) save=${1#*=}; shift ;;
	--builder) need_arg $# "$1"; builder=$2; shift 2 ;;
	--builder=*) builder=${1#*=}; shift ;;
	--isolation) need_arg $# "$1"; isolation=$2; shift 2 ;;
	--isolation=*) isolation=${1#*=}; shift ;;
	-h | --help) sed -n '2,48p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done
[ "$local_base" -eq 0 ] || [ "$base_set" -eq 0 ] || die "--base and --local-base exclude each other"
case $builder in '' | podman | buildah) ;; *) die "--builder is podman or buildah, not '$builder'" ;; esac
if [ -n "$binary" ]; then
	{ [ -f "$binary" ] && [ -x "$binary" ]; } || die "--binary $binary is not an executable file"
	[ "$(od -An -c -N4 "$binary" | tr -d ' ')" = '177ELF' ] ||
		die "--binary $binary is not an ELF executable (a \`deno compile\`d mergemem)"
	binary=$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")
fi
if [ -n "$save" ]; then
	case $save in /*) ;; *) save=$(pwd)/$save ;; esac
	[ -d "$(dirname "$save")" ] || die "--save: no directory $(dirname "$save")"
fi

version=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$root/deno.json" | head -n 1)
[ -n "$version" ] || die "cannot read \"version\" from deno.json"
[ -n "$tag" ] || tag=localhost/mergemem:$version
revision=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)
if [ "$committed" -eq 0 ] && [ "$revision" != unknown ] &&
	[ -n "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
	revision=$revision-dirty
fi
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)}
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)

# ------------------------------------------------------------- the builder
if [ -z "$builder" ]; then
	if command -v podman >/dev/null 2>&1; then builder=podman
	elif command -v buildah >/dev/null 2>&1; then builder=buildah
	else builder=podman
	fi
fi
if ! command -v "$builder" >/dev/null 2>&1; then
	"$root/scripts/host-deps.sh" "$builder=$builder" ||
		die "$builder is missing and could not be installed (apt-get install $builder)"
fi
# image_exists IMAGE
image_exists() {
	if [ "$builder" = podman ]; then podman image exists "$1"
	else buildah inspect --type image "$1" >/dev/null 2>&1
	fi
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mergemem-image.XXXXXX")
trap 'rm -rf --one-file-system "$tmp"' EXIT
ctx=$tmp/context
mkdir -p "$ctx/lib"

# ------------------------------------------------------------ the base image
# shellcheck source=apt-sources.sh
. "$(dirname "$0")/apt-sources.sh"

make_local_base() {
	rootfs=${tmp:?}/rootfs
	mkdir -p "$rootfs"
	if [ -f "$deb_test_tarball" ]; then
		say "base: the Debian 12 minbase tree cached by scripts/test-deb.sh ($deb_test_tarball)"
		tar -C "$rootfs" -xzf "$deb_test_tarball"
	else
		command -v debootstrap >/dev/null 2>&1 ||
			"$root/scripts/host-deps.sh" debootstrap=debootstrap ||
			die "debootstrap is missing and could not be installed"
		mirror=$(host_mirror bookworm)
		[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
		updates=$(host_mirror bookworm-updates)
		security=$(host_mirror bookworm-security)
		say "base: debootstrap --variant=minbase bookworm from $mirror"
		debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$tmp/debootstrap.log" 2>&1 || {
			tail -20 "$tmp/debootstrap.log" >&2
			die "debootstrap failed (the end of its log is above)"
		}
		sources_list "$mirror" "$updates" "$security" >"$rootfs/etc/apt/sources.list"
		chroot "$rootfs" apt-get clean
	fi
	# What Debian's -slim images leave out, and keep out on later installs.
	mkdir -p "$rootfs/etc/dpkg/dpkg.cfg.d"
	cat >"$rootfs/etc/dpkg/dpkg.cfg.d/mergemem-slim" <<'EOF'
# localhost/mergemem-base (scripts/build-image.sh --local-base): as in
# Debian's -slim images, no documentation, man pages or translations.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/lintian/*
EOF
	find "$rootfs/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete 2>/dev/null || true
	find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
	rm -rf "${rootfs:?}/usr/share/man/"* "$rootfs/usr/share/info/"* "$rootfs/usr/share/locale/"* \
		"$rootfs/usr/share/groff/"* "$rootfs/usr/share/lintian/"* "$rootfs/var/lib/apt/lists/"* \
		"$rootfs/var/cache/apt/"*.bin "$rootfs/var/log/"*.log "${rootfs:?}/dev/"* \
		"${rootfs:?}/proc/"* "${rootfs:?}/sys/"* "${rootfs:?}/tmp/"* "${rootfs:?}/run/"*
	say "importing it as $local_base_image"
	path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
	if [ "$builder" = podman ]; then
		tar --numeric-owner -C "$rootfs" -c . |
			podman import --quiet --change "ENV PATH=$path" --change 'CMD ["/bin/bash"]' \
				--message "Debian 12 minbase (scripts/build-image.sh --local-base)" \
				- "$local_base_image" >/dev/null
	else
		# buildah has no import: the tree unpacked into a scratch container
		# (owners and modes kept, which COPY/ADD would not keep).
		c=$(buildah from scratch)
		m=$(buildah mount "$c")
		tar --numeric-owner -C "$rootfs" -c . | tar --numeric-owner -C "$m" -xpf -
		buildah umount "$c" >/dev/null
		buildah config --env "PATH=$path" --cmd /bin/bash "$c"
		buildah commit --quiet --rm "$c" "$local_base_image" >/dev/null
	fi
	rm -rf --one-file-system "$rootfs"
}

if [ "$local_base" -eq 1 ]; then
	if [ "$refresh_base" -eq 0 ] && image_exists "$local_base_image"; then
		say "base: $local_base_image (exists; --refresh-base makes it again)"
	else
		make_local_base
	fi
	base=$local_base_image
fi

# ------------------------------------------------------------ the program
if [ "$committed" -eq 1 ]; then
	src=$tmp/src
	mkdir -p "$src"
	git -C "$root" archive --format=tar HEAD | tar -xf - -C "$src"
	(cd "$root" && git ls-files -z -o --exclude-standard) |
		(cd "$root" && tar --null -T - --ignore-failed-read -cf - 2>/dev/null) |
		tar -xf - -C "$src"
	mkdir -p "$src/tools/deno"
	"$root/scripts/ensure-deno.sh" >/dev/null
	cp -al "$root/tools/deno/node_modules" "$src/tools/deno/" 2>/dev/null ||
		cp -a "$root/tools/deno/node_modules" "$src/tools/deno/"
	say "building HEAD ($(git -C "$root" rev-parse --short HEAD)) with the new files of the working tree"
else
	src=$root
fi
export DENO_NO_UPDATE_CHECK=1 NO_COLOR=1
kind=compiled
if [ -n "$binary" ]; then
	install -m 0755 "$binary" "$ctx/mergemem"
	say "mergemem: $binary"
else
	deno=$("$src/scripts/ensure-deno.sh")
	if [ -n "${DENORT_BIN:-}" ] && [ ! -x "$DENORT_BIN" ]; then
		die "DENORT_BIN=$DENORT_BIN is not an executable file"
	fi
	if (cd "$src" && "$deno" compile --quiet --allow-all -o "$ctx/mergemem" main.ts) \
		>"$tmp/compile.log" 2>&1 && "$ctx/mergemem" --version >/dev/null 2>&1; then
		say "mergemem: the single binary (deno compile)"
	else
		rm -f "$ctx/mergemem"
		sed 's/\x1b\[[0-9;]*m//g' "$tmp/compile.log" >"$tmp/compile.txt"
		why=$(grep -m1 -E 'error sending|dns error|No such file|DENORT' "$tmp/compile.txt" ||
			grep -m1 -i 'error' "$tmp/compile.txt" || true)
		why=$(printf '%s' "$why" | sed 's/^ *[0-9]*: *//' | cut -c1-160)
		say "deno compile gave no working binary${why:+ ($why)}"
		say "mergemem: the launcher and the pinned Deno, as in the .deb (set DENORT_BIN=/path/to/denort for a single binary)"
		(cd "$src" && "$deno" bundle --quiet -o "$ctx/lib/mergemem.js" main.ts) >"$tmp/bundle.log" 2>&1 || {
			cat "$tmp/bundle.log" >&2
			die "deno bundle failed (above)"
		}
		# main.ts's "#!/usr/bin/env -S deno" line (debian/rules does the same).
		sed -i '1{/^#!/d}' "$ctx/lib/mergemem.js"
		chmod 0644 "$ctx/lib/mergemem.js"
		install -m 0755 "$deno" "$ctx/lib/deno"
		install -m 0755 "$src/debian/mergemem.launcher" "$ctx/mergemem"
		"$ctx/lib/deno" run --quiet --no-prompt --no-config --no-lock --allow-all \
			"$ctx/lib/mergemem.js" --version >/dev/null || die "the bundled mergemem does not run"
		kind=launcher
	fi
fi
install -m 0755 "$src/deploy/mergemem-agent" "$ctx/mergemem-agent"
install -m 0644 "$src/deploy/Containerfile" "$ctx/Containerfile"
[ "$committed" -eq 0 ] || rm -rf --one-file-system "$src"

# --------------------------------------------------------------- the build
say "building $tag on $base with $builder"
set -- --build-arg "BASE=$base" --build-arg "VERSION=$version" \
	--build-arg "REVISION=$revision" --build-arg "CREATED=$created" \
	--build-arg "BINARY=$kind" -f "$ctx/Containerfile" -t "$tag"
case $tag in *:*) latest=${tag%:*}:latest ;; *) latest= ;; esac
[ -z "$latest" ] || [ "$latest" = "$tag" ] || set -- "$@" -t "$latest"
[ -z "$isolation" ] || set -- "$@" --isolation "$isolation"
if [ "$builder" = podman ]; then
	podman build --quiet "$@" "$ctx" >"$tmp/id" 2>"$tmp/build.log" || build_failed=1
else
	buildah bud --quiet "$@" "$ctx" >"$tmp/id" 2>"$tmp/build.log" || build_failed=1
fi
if [ "${build_failed:-0}" -eq 1 ]; then
	cat "$tmp/build.log" >&2
	if ! image_exists "$base"; then
		die "the build failed: the base $base is not here and could not be pulled (no registry? try --local-base)"
	fi
	die "$builder could not build the image (above)"
fi
id=$(tail -n 1 "$tmp/id" | cut -c1-12)
size=$("$builder" images --format '{{.Size}}' "$tag" 2>/dev/null | head -n 1)
if [ "$builder" = podman ]; then
	size="$size, $(podman image inspect --format '{{.Size}}' "$tag") bytes"
fi
say "built $tag ($id, $kind mergemem $version, $size)"

if [ -n "$save" ]; then
	rm -f "$save"
	if [ "$builder" = podman ]; then
		podman save --quiet --format oci-archive -o "$save" "$tag"
	else
		buildah push --quiet "$tag" "oci-archive:$save:$tag"
	fi
	say "saved to $save ($(du -m "$save" | cut -f1) MiB; load it with: podman load -i $(basename "$save"))"
fi
