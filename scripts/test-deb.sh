#!/bin/bash
# test-deb.sh: tests the Debian packages in a fresh Debian 12 chroot.
#
#   sudo scripts/test-deb.sh DEBDIR [UPGRADE_DEBDIR]
#
# DEBDIR holds mergemem_*.deb and mergemem-dkms_*.deb (scripts/build-deb.sh
# -o DEBDIR). UPGRADE_DEBDIR, if given, holds a higher version of both, e.g.
#   MERGEMEM_DEB_VERSION=0.1.0+test1 scripts/build-deb.sh -o /tmp/deb-up
# and the upgrade is tested too.
#
# The chroot is made with `debootstrap --variant=minbase bookworm` from the
# host's Debian mirror, once: the pristine tree is cached in
# /var/cache/mergemem-deb-test/. Each run unpacks it into a temporary
# directory, mounts /proc and /sys there in a private mount namespace, and
# forbids service starts (policy-rc.d). It checks:
#   - apt-get installs both packages, resolving their dependencies from
#     Debian alone, with no kernel headers (the host's kernel is not
#     Debian's), and says so;
#   - mergemem --version, mergemem scan --pid PID --json, man mergemem, the
#     conffile, the bash completion, the disabled units;
#   - with linux-headers-amd64 installed, DKMS builds and installs the
#     module for that Debian kernel;
#   - an upgrade rebuilds the module at the new version (UPGRADE_DEBDIR);
#   - apt-get purge leaves no mergemem file behind and dkms status empty,
#     and an install + purge cycle leaves the file list exactly as before.
# Prints PASS/FAIL per check and exits 1 if any failed. Needs root.
set -euo pipefail

cache=/var/cache/mergemem-deb-test
say() { printf 'test-deb: %s\n' "$*"; }
die() { printf 'test-deb: error: %s\n' "$*" >&2; exit 2; }

if [ $# -lt 1 ] || [ $# -gt 2 ]; then sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 2; fi
[ "$(id -u)" -eq 0 ] || die "run as root (it makes a chroot)"
debdir=$(cd "$1" && pwd)
updir=
[ $# -lt 2 ] || updir=$(cd "$2" && pwd)

# The one mergemem and mergemem-dkms package of a directory.
pick() {
	local dir=$1 name=$2 f
	f=$(find "$dir" -maxdepth 1 -name "${name}_*.deb" | sort)
	[ -n "$f" ] || die "no ${name}_*.deb in $dir"
	[ "$(printf '%s\n' "$f" | wc -l)" -eq 1 ] || die "more than one ${name}_*.deb in $dir"
	echo "$f"
}
main_deb=$(pick "$debdir" mergemem)
dkms_deb=$(pick "$debdir" mergemem-dkms)
version=$(dpkg-deb -f "$main_deb" Version)
[ "$(dpkg-deb -f "$dkms_deb" Version)" = "$version" ] || die "the two packages' versions differ"
if [ -n "$updir" ]; then
	up_main=$(pick "$updir" mergemem)
	up_dkms=$(pick "$updir" mergemem-dkms)
	up_version=$(dpkg-deb -f "$up_main" Version)
	dpkg --compare-versions "$up_version" gt "$version" ||
		die "$updir holds $up_version, not higher than $version"
fi

for tool in debootstrap unshare chroot; do
	command -v "$tool" >/dev/null || die "$tool is missing (apt-get install debootstrap util-linux)"
done

# ---------------------------------------------------- the host's mirrors
# shellcheck source=apt-sources.sh
. "$(dirname "$0")/apt-sources.sh"
sources=$(host_sources | sort -u)
mirror=$(awk '$2 == "bookworm" { print $1; exit }' <<<"$sources")
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
security=$(awk '$2 == "bookworm-security" { print $1; exit }' <<<"$sources")
updates=$(awk '$2 == "bookworm-updates" { print $1; exit }' <<<"$sources")

start=$SECONDS
mkdir -p "$cache"
tarball=$cache/bookworm-minbase.tar.gz
stamp=$cache/bookworm-minbase.mirror
# ------------------------------------------------ the pristine chroot
make_pristine() {
	local tmp
	tmp=$(mktemp -d /var/tmp/mergemem-debootstrap.XXXXXX)
	say "debootstrap --variant=minbase bookworm from $mirror (cached for later runs)"
	if ! debootstrap --variant=minbase bookworm "$tmp/root" "$mirror" >"$tmp/log" 2>&1; then
		tail -20 "$tmp/log" >&2
		rm -rf --one-file-system "$tmp"
		die "debootstrap failed"
	fi
	sources_list "$mirror" "$updates" "$security" >"$tmp/root/etc/apt/sources.list"
	chroot "$tmp/root" apt-get clean
	tar --numeric-owner -C "$tmp/root" -czf "$tarball.new" .
	mv "$tarball.new" "$tarball"
	echo "$mirror $updates $security" >"$stamp"
	rm -rf --one-file-system "$tmp"
}
exec 9>"$cache/lock"
flock 9
if [ ! -f "$tarball" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$mirror $updates $security" ]; then
	make_pristine
fi
flock -u 9

work=$(mktemp -d /var/tmp/mergemem-deb-test.XXXXXX)
root=$work/root
cleanup() {
	# The mounts live in the private namespace only (gone with it); make
	# sure nothing is mounted below $work before removing it.
	if grep -q " $work/" /proc/self/mountinfo 2>/dev/null; then
		echo "test-deb: warning: mounts left under $work; not removing it" >&2
	else
		rm -rf --one-file-system "$work"
	fi
}
trap cleanup EXIT
mkdir -p "$root"
tar -C "$root" -xzf "$tarball"
mkdir -p "$root/tmp/debs/up"
cp "$main_deb" "$dkms_deb" "$root/tmp/debs/"
[ -z "$updir" ] || cp "$up_main" "$up_dkms" "$root/tmp/debs/up/"
printf '#!/bin/sh\n# test-deb.sh: no service starts in this chroot\nexit 101\n' \
	>"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
for d in null zero full random urandom tty; do
	[ -e "$root/dev/$d" ] || die "the chroot has no /dev/$d"
done

# ----------------------------------------- the checks, in the namespace
cat >"$work/inner.sh" <<'INNER'
#!/bin/bash
set -uo pipefail
root=$1 work=$2 version=$3 up_version=$4
mount -t proc proc "$root/proc"
mount -t sysfs -o ro sysfs "$root/sys"
trap 'umount "$root/sys" "$root/proc" 2>/dev/null' EXIT

fails=0 passes=0
log=$work/log
mkdir -p "$log"
pass() { passes=$((passes + 1)); printf 'PASS  %s\n' "$1"; }
fail() {
	fails=$((fails + 1)); printf 'FAIL  %s\n' "$1"
	[ -z "${2:-}" ] || [ ! -s "$2" ] || tail -15 "$2" | sed 's/^/      | /'
}
# inch CMD...: runs a shell command in the chroot.
inch() {
	chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
		LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive /bin/sh -c "$*"
}
# check NAME CMD: a check that passes when CMD (in the chroot) exits 0.
n=0
check() {
	n=$((n + 1))
	local name=$1 out=$log/$n.log
	shift
	if inch "$@" >"$out" 2>&1; then pass "$name"; else fail "$name" "$out"; fi
}
# The file list: everything but churn (package manager state, logs,
# caches of apt and man-db, mounts).
snapshot() {
	(cd "$root" && find . -xdev \( -path ./proc -o -path ./sys -o -path ./dev \
		-o -path ./tmp -o -path ./run -o -path ./var/log -o -path ./var/cache/apt \
		-o -path ./var/lib/apt -o -path ./var/lib/dpkg -o -path ./var/cache/debconf \
		-o -path ./var/cache/man -o -path ./var/cache/ldconfig \) -prune \
		-o -printf '%y %m %p\n' | sort) >"$1"
}
apt_get="apt-get -y -q -o Dpkg::Use-Pty=0 -o APT::Color=0"

check "apt-get update in the chroot" "$apt_get update"
check "install man-db (for the man page check)" "$apt_get install --no-install-recommends man-db"
snapshot "$work/files.before"

# 1. Both packages, dependencies from Debian, no kernel headers at all.
check "apt-get install ./mergemem_*.deb ./mergemem-dkms_*.deb (deps from Debian, no headers)" \
	"cd /tmp/debs && $apt_get install --no-install-recommends ./mergemem_*.deb ./mergemem-dkms_*.deb"
install_log=$log/$n.log
if grep -q "mergemem-dkms: no kernel headers for the running kernel" "$install_log"; then
	pass "the -dkms postinst says the running kernel has no headers"
	grep "mergemem-dkms: no kernel headers" "$install_log" | sed 's/^/      | /'
else
	fail "the -dkms postinst says the running kernel has no headers" "$install_log"
fi
check "dpkg says both are installed at $version" \
	"test \"\$(dpkg-query -W -f='\${Status} \${Version}' mergemem)\" = 'install ok installed $version' &&
	 test \"\$(dpkg-query -W -f='\${Status} \${Version}' mergemem-dkms)\" = 'install ok installed $version'"
check "mergemem --version prints mergemem ${version%%[+~]*}" \
	"mergemem --version | tee /dev/stderr | grep -qx 'mergemem ${version%%[+~]*}'"
check "mergemem scan --pid \$\$ --json (a process of the chroot)" \
	"mergemem scan --pid \$\$ --json >/tmp/scan.json && grep -q '\"schema\": \"mergemem.scan/' /tmp/scan.json && grep -q '\"processes\": 1' /tmp/scan.json"
# PID 1 is the host's init (the chroot shares the PID namespace): some
# hosts (containers, sandboxes) deny even root access to it; that is noted,
# not failed.
if inch "mergemem scan --pid 1 --json" >"$log/pid1.log" 2>&1; then
	pass "mergemem scan --pid 1 --json"
elif grep -q "permission denied for all" "$log/pid1.log"; then
	printf 'NOTE  mergemem scan --pid 1: the host denies access to its PID 1 (%s)\n' \
		"$(head -1 "$log/pid1.log")"
else
	fail "mergemem scan --pid 1 --json" "$log/pid1.log"
fi
check "man mergemem shows the page, without warnings" \
	"MANWIDTH=80 man mergemem 2>/tmp/man.err | grep -q 'PROCESS SELECTION' && ! test -s /tmp/man.err &&
	 man --warnings mergemem 2>&1 >/dev/null | tee /dev/stderr | wc -c | grep -qx 0"
check "/etc/mergemem.conf is a conffile" \
	"dpkg-query -W -f='\${Conffiles}' mergemem | grep -q '^ /etc/mergemem.conf '"
check "the units have /usr/bin and the doc dir filled in, and are not enabled" \
	"grep -q 'exec /usr/bin/mergemem merge' /lib/systemd/system/mergemem.service &&
	 grep -q 'file:///usr/share/doc/mergemem/README.md' /lib/systemd/system/mergemem.timer &&
	 test -f /usr/share/doc/mergemem/README.md &&
	 ! grep -rq '@[A-Z]*@' /lib/systemd/system/mergemem.service /lib/systemd/system/mergemem.timer &&
	 ! ls /etc/systemd/system/*.wants/mergemem.* 2>/dev/null"
check "bash completion completes commands and options" \
	"bash -c '. /usr/share/bash-completion/completions/mergemem
	  COMP_WORDS=(mergemem sc); COMP_CWORD=1; _mergemem; test \"\${COMPREPLY[*]}\" = scan || exit 1
	  COMP_WORDS=(mergemem merge --eng); COMP_CWORD=2; _mergemem; test \"\${COMPREPLY[*]}\" = --engine || exit 1
	  COMP_WORDS=(mergemem merge --engine \"\"); COMP_CWORD=3; _mergemem; test \"\${COMPREPLY[*]}\" = \"auto module ptrace\"'"
check "the module's sources are in /usr/src/mergemem-$version and added to DKMS" \
	"test -f /usr/src/mergemem-$version/dkms.conf && grep -qx 'PACKAGE_VERSION=\"$version\"' /usr/src/mergemem-$version/dkms.conf &&
	 dkms status mergemem | grep -q '^mergemem/$version: added'"
check "/usr/lib/modules-load.d/mergemem.conf loads mergemem" \
	"grep -qx mergemem /usr/lib/modules-load.d/mergemem.conf"

# 2. Debian's kernel headers: DKMS builds the module for that kernel.
check "apt-get install linux-headers-amd64" "$apt_get install --no-install-recommends linux-headers-amd64"
kver=$(cd "$root/usr/src" && ls -d linux-headers-*-amd64 2>/dev/null | sed 's/^linux-headers-//' | sort -V | tail -1)
printf '      | Debian kernel headers: %s\n' "${kver:-none}"
if ! inch "dkms status mergemem/$version -k $kver" | grep -q ': installed'; then
	printf '      | not built by the headers hook; running dkms autoinstall -k %s\n' "$kver"
	inch "dkms autoinstall -k $kver" >"$log/autoinstall.log" 2>&1 || true
fi
check "dkms status: mergemem/$version installed for $kver" \
	"dkms status mergemem | tee /dev/stderr | grep -q '^mergemem/$version, $kver, x86_64: installed'"
inch "dkms status" | sed 's/^/      | /'
# The module carries the DKMS package's version whole (kmod/Kbuild).
check "mergemem.ko for $kver is version $version" \
	"modinfo -F version /lib/modules/$kver/updates/dkms/mergemem.ko* | grep -qxF '$version'"

# 3. The upgrade: the module is rebuilt at the new version.
if [ -n "$up_version" ]; then
	check "upgrade to $up_version with apt-get install" \
		"cd /tmp/debs/up && $apt_get install --no-install-recommends ./mergemem_*.deb ./mergemem-dkms_*.deb"
	check "dkms status: mergemem/$up_version installed for $kver, $version gone" \
		"dkms status mergemem | tee /dev/stderr | grep -q '^mergemem/$up_version, $kver, x86_64: installed' &&
		 ! dkms status mergemem | grep -q '^mergemem/$version[,:]' && ! test -e /usr/src/mergemem-$version"
	check "mergemem --version after the upgrade" "mergemem --version"
else
	printf 'SKIP  upgrade (no UPGRADE_DEBDIR given)\n'
fi

# 4. Purge: nothing of mergemem is left.
check "apt-get purge mergemem mergemem-dkms" "$apt_get purge mergemem mergemem-dkms"
check "dkms status is empty" "test -z \"\$(dkms status)\""
snapshot "$work/files.after"
grep -i mergemem "$work/files.before" >"$work/mm.before" || true
grep -i mergemem "$work/files.after" >"$work/mm.after" || true
if diff "$work/mm.before" "$work/mm.after" >"$log/mm.diff"; then
	pass "no file named mergemem left after the purge (against the list before the install)"
else
	fail "no file named mergemem left after the purge (against the list before the install)" "$log/mm.diff"
fi
# Every other difference comes from the dependencies (dkms, gcc, headers):
# shown, not judged; the cycle below judges exactly.
printf '      | files added by the dependencies since the first install: %s\n' \
	"$(diff "$work/files.before" "$work/files.after" | grep -c '^>' || true)"

# 5. Install + purge with the dependencies in place: the file list is
# exactly what it was (a module built by DKMS, then removed, included).
snapshot "$work/files.cycle0"
check "install again (dependencies in place; DKMS builds for $kver)" \
	"cd /tmp/debs && $apt_get install --no-install-recommends ./mergemem_*.deb ./mergemem-dkms_*.deb &&
	 dkms status mergemem | grep -q '^mergemem/$version, $kver, x86_64: installed' && mergemem --version"
check "purge again" "$apt_get purge mergemem mergemem-dkms && test -z \"\$(dkms status)\""
snapshot "$work/files.cycle1"
if diff "$work/files.cycle0" "$work/files.cycle1" >"$log/cycle.diff"; then
	pass "install + purge leaves every file as before ($(wc -l <"$work/files.cycle0") paths compared)"
else
	fail "install + purge leaves every file as before" "$log/cycle.diff"
fi

printf '%d passed, %d failed\n' "$passes" "$fails"
[ "$fails" -eq 0 ]
INNER
chmod 0755 "$work/inner.sh"

say "testing $(basename "$main_deb") and $(basename "$dkms_deb")${updir:+, upgrade to $up_version}"
status=0
unshare --mount --propagation private "$work/inner.sh" "$root" "$work" "$version" "${up_version:-}" ||
	status=$?
elapsed=$((SECONDS - start))
if [ "$status" -eq 0 ]; then
	say "PASS (${elapsed}s)"
else
	say "FAIL (${elapsed}s)"
	exit 1
fi
