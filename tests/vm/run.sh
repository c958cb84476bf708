#!/usr/bin/env bash
# VM test suite: for each kernel of the matrix, build kmod/ with DKMS
# against it, boot it in QEMU (TCG) with the host's / shared read-only and
# the repo read-write over 9p, and run tests/vm/guest/t_*.sh inside.
# See tests/vm/README.md.
#
# Exit status: 0 all passed, 1 some test (or a host-side build) failed,
# 2 harness/setup error, 3 a VM never reported (boot hang, panic, timeout).
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
# The whole script is one compound command: bash parses it completely before
# running it, so editing this file does not disturb runs in progress.
{

usage() {
	cat <<'USAGE'
usage: tests/vm/run.sh [options]
  --kernel KVER      boot this kernel (repeatable; default: the matrix in
                     tests/vm/lib/kernels.sh, 6.1 of linux-image-amd64, 6.12
                     and the newest sid kernel)
  --only REGEX       run only guest tests whose name (t_10_module) matches
  --keep             keep the per-run DKMS tree and sources on success
  --no-dkms          do not build kmod/ (MERGEMEM_KO empty in the guest)
  --timeout SECS     kill a VM after SECS (MERGEMEM_VM_TIMEOUT; default: 120 +
                     the sum of the selected tests' timeouts)
  --boot-timeout S   a boot that has not reached the runner after S seconds
                     is killed and retried once (default 120)
  --stall SECS       kill a VM whose console was silent for SECS once the
                     runner started (it prints a heartbeat; default 180)
  --test-timeout S   default per-test timeout in the guest (default 300)
  --machine M        pc (default) or microvm
  --append ARGS      extra kernel command line (MERGEMEM_VM_APPEND)
  -j, --jobs N       boot up to N kernels at once (MERGEMEM_VM_JOBS; default
                     auto: one per 2 host CPUs, as each guest has 2 vCPUs)
  -v, --verbose      stream the serial console to stderr
  -h, --help
USAGE
}

REPO=$(cd "$(dirname "$0")/../.." && pwd -P)
VMDIR=$REPO/tests/vm
# shellcheck source=lib/kernels.sh
. "$VMDIR/lib/kernels.sh"

kernels=()
ONLY=
KEEP=0
NO_DKMS=0
VM_TIMEOUT=${MERGEMEM_VM_TIMEOUT:-}
BOOT_TIMEOUT=${MERGEMEM_VM_BOOT_TIMEOUT:-120}
STALL=${MERGEMEM_VM_STALL:-180}
TEST_TIMEOUT=${MERGEMEM_VM_TEST_TIMEOUT:-300}
MACHINE=${MERGEMEM_VM_MACHINE:-pc}
VERBOSE=0
APPEND=${MERGEMEM_VM_APPEND:-}
JOBS=${MERGEMEM_VM_JOBS:-auto}
while (($#)); do
	case $1 in
	--kernel) kernels+=("${2:?--kernel needs a version}"); shift 2 ;;
	--kernel=*) kernels+=("${1#*=}"); shift ;;
	--only) ONLY=${2?--only needs a pattern}; shift 2 ;;
	--only=*) ONLY=${1#*=}; shift ;;
	--keep) KEEP=1; shift ;;
	--no-dkms) NO_DKMS=1; shift ;;
	--timeout) VM_TIMEOUT=${2:?}; shift 2 ;;
	--boot-timeout) BOOT_TIMEOUT=${2:?}; shift 2 ;;
	--stall) STALL=${2:?}; shift 2 ;;
	--test-timeout) TEST_TIMEOUT=${2:?}; shift 2 ;;
	--machine) MACHINE=${2:?}; shift 2 ;;
	--append) APPEND=${2?}; shift 2 ;;
	-j | --jobs) JOBS=${2:?}; shift 2 ;;
	-v | --verbose) VERBOSE=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "run.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
	esac
done

log() { echo "[vm $(date +%H:%M:%S)] $*" >&2; }
die() { echo "run.sh: error: $*" >&2; exit 2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# --- preflight ------------------------------------------------------------
missing=()
for c in qemu-system-x86_64 dkms make cpio zstd xz modprobe timeout flock; do
	command -v "$c" >/dev/null 2>&1 || missing+=("$c")
done
BUSYBOX=/bin/busybox
[[ -x $BUSYBOX ]] || missing+=(busybox-static)
((${#missing[@]} == 0)) || die "missing: ${missing[*]} (run scripts/vm-deps.sh)"
case $MACHINE in pc | microvm) ;; *) die "--machine must be pc or microvm" ;; esac
if [[ $JOBS == auto ]]; then
	# Each guest has 2 vCPUs. More vCPU threads than host CPUs make a
	# guest spin on locks whose holder's thread is descheduled: two guests
	# on 2 CPUs ran t_71 in 650 s each, against about 200 s alone.
	JOBS=$(($(nproc) >= 4 ? $(nproc) / 2 : 1))
fi
[[ $JOBS =~ ^[1-9][0-9]*$ ]] || die "--jobs must be a positive number"
[[ $ONLY == "" ]] || [[ "t_00" =~ $ONLY ]] || [[ $? -ne 2 ]] || die "--only: bad regex: $ONLY"

if ((${#kernels[@]} == 0)); then
	mapfile -t kernels < <(vm_kernels) || true
	((${#kernels[@]} > 0)) || die "cannot resolve the kernel matrix (run scripts/vm-deps.sh)"
fi
for k in "${kernels[@]}"; do
	if [[ -n $(vm_kernel_root "$k") ]]; then
		# Unpacked by scripts/sid-buildroot.sh; built in its build root.
		[[ -f $(vm_kernel_image "$k") ]] || die "$(vm_kernel_image "$k") missing (run scripts/vm-deps.sh)"
		((NO_DKMS)) || [[ -d $(vm_kernel_buildroot "$k")/lib/modules/$k/build ]] ||
			die "no build root for $k (run scripts/vm-deps.sh)"
		continue
	fi
	[[ -f /boot/vmlinuz-$k ]] || die "/boot/vmlinuz-$k missing (apt-get install linux-image-$k)"
	[[ -d /lib/modules/$k/kernel ]] || die "/lib/modules/$k missing (apt-get install linux-image-$k)"
	((NO_DKMS)) || [[ -d /lib/modules/$k/build ]] ||
		die "/lib/modules/$k/build missing (apt-get install linux-headers-$k)"
done

if ((!NO_DKMS)); then
	[[ -f $REPO/kmod/dkms.conf ]] ||
		die "kmod/dkms.conf missing: the module cannot be built with DKMS (use --no-dkms to run the guest tests without it)"
	conf_get() { sed -n "s/^[[:space:]]*$1=[\"']\{0,1\}\([^\"']*\)[\"']\{0,1\}[[:space:]]*$/\1/p" "$REPO/kmod/dkms.conf" | head -n1; }
	PKG_NAME=$(conf_get PACKAGE_NAME)
	PKG_VER=$(conf_get PACKAGE_VERSION)
	[[ -n $PKG_NAME && -n $PKG_VER ]] || die "kmod/dkms.conf: cannot read PACKAGE_NAME/PACKAGE_VERSION"
fi

DENO=$REPO/tools/deno/node_modules/deno/deno
if [[ ! -x $DENO ]]; then
	log "Deno missing; scripts/ensure-deno.sh"
	"$REPO/scripts/ensure-deno.sh" >/dev/null || log "WARNING: no Deno; guest tests that need it will fail"
fi

# The whole VM's timeout: boot plus every selected test's own timeout
# (the runner's rule: a '# vm-timeout: N' line, else --test-timeout).
if [[ -z $VM_TIMEOUT ]]; then
	VM_TIMEOUT=120
	for t in "$VMDIR"/guest/t_*.sh; do
		[[ -e $t ]] || continue
		n=$(basename "$t" .sh)
		[[ -z $ONLY || $n =~ $ONLY ]] || continue
		tt=$(sed -n 's/^# *vm-timeout: *\([0-9][0-9]*\).*/\1/p' "$t" | head -n1)
		VM_TIMEOUT=$((VM_TIMEOUT + ${tt:-$TEST_TIMEOUT} + 15))
	done
fi

WORKROOT=$REPO/.vm-work
mkdir -p "$WORKROOT"
T_START=$(now)

# --- host-side guest programs (once, user space) ---------------------------
GUEST_MAKE=none
if [[ -f $VMDIR/guest/Makefile ]]; then
	log "make -C tests/vm/guest"
	t0=$(now)
	if make -C "$VMDIR/guest" >"$WORKROOT/guest-make.log" 2>&1; then
		GUEST_MAKE="PASS $(elapsed "$t0")"
	else
		GUEST_MAKE="FAIL $(elapsed "$t0")"
		log "guest make FAILED:"
		tail -n 30 "$WORKROOT/guest-make.log" >&2
	fi
fi

# --- the node agent's image, for t_71 (in the background) ----------------
# scripts/build-image.sh --local-base (no registry) saves it as an OCI
# archive under $WORKROOT/agent-image/, which the guest loads with podman:
# image.oci and rc (the build's exit code) appear when it is done, log
# holds its output. A tag of this run's own, removed from the host's store
# once saved, so that two checkouts building at once do not mix images.
# The build runs beside the first VMs; t_71 comes late and waits for rc.
AGENT_DIR=$WORKROOT/agent-image
rm -rf "$AGENT_DIR"
if [[ -z $ONLY || t_71_containers_merge =~ $ONLY ]] && command -v podman >/dev/null 2>&1; then
	mkdir -p "$AGENT_DIR"
	(
		tag=localhost/mergemem-vmtest-$$:test
		rc=0
		"$REPO/scripts/build-image.sh" --local-base --tag "$tag" \
			--save "$AGENT_DIR/image.oci" >"$AGENT_DIR/log" 2>&1 || rc=$?
		podman rmi -f "$tag" "${tag%:*}:latest" >/dev/null 2>&1 || true
		echo "$tag" >"$AGENT_DIR/tag"
		echo "$rc" >"$AGENT_DIR/rc"
	) </dev/null &
	log "building the node agent's image in the background (${AGENT_DIR#"$REPO"/}/log)"
fi

# --- helpers ---------------------------------------------------------------

# extract_vmlinux VMLINUZ OUT: the uncompressed ELF kernel out of a bzImage
# (like the kernel's scripts/extract-vmlinux; xz on 6.1, zstd on 6.12).
extract_vmlinux() {
	local in=$1 out=$2 magic tool off
	for pair in '\xfd\x37\x7a\x58\x5a\x00:xz' '\x28\xb5\x2f\xfd:zstd' '\x1f\x8b\x08\x00:gzip'; do
		magic=${pair%%:*} tool=${pair##*:}
		command -v "$tool" >/dev/null 2>&1 || continue
		# Try the first few byte offsets of the magic.
		while read -r off; do
			tail -c "+$((off + 1))" "$in" | "$tool" -dc 2>/dev/null >"$out.tmp" || true
			if [[ $(head -c 4 "$out.tmp" | od -An -tx1 | tr -d ' \n') == 7f454c46 ]]; then
				mv "$out.tmp" "$out"
				return 0
			fi
		done < <(LC_ALL=C grep -obUaP "$magic" "$in" | cut -d: -f1 | head -n 5)
	done
	rm -f "$out.tmp"
	return 1
}

# build_initramfs KVER OUT: busybox + the 9p/virtio modules + /init. The
# modules are stored uncompressed: busybox insmod cannot load .ko.xz of
# every kernel (7.x). Built-in ones (virtio_pci on 7.x) are left out.
build_initramfs() {
	local k=$1 out=$2 d key m b
	local mods root
	root=$(vm_kernel_root "$k")
	mods=$(modprobe -S "$k" ${root:+-d "$root"} -a --show-depends 9p 9pnet_virtio virtio_pci virtio_mmio |
		awk '$1 == "insmod" && !seen[$2]++ { print $2 }')
	key=$( { echo v4; echo "$mods"; sha256sum "$VMDIR/lib/init.sh" "$BUSYBOX"; } | sha256sum | cut -c1-16)
	if [[ -f $out && $(cat "$out.key" 2>/dev/null) == "$key" ]]; then
		return 0
	fi
	d=$(mktemp -d "$WORKROOT/initramfs.XXXXXX")
	mkdir -p "$d"/{bin,dev,proc,sys,newroot,modules}
	cp "$BUSYBOX" "$d/bin/busybox"
	ln -s busybox "$d/bin/sh"
	cp "$VMDIR/lib/init.sh" "$d/init"
	chmod 755 "$d/init"
	: >"$d/modules/order"
	for m in $mods; do
		b=$(basename "$m")
		case $m in
		*.xz) b=${b%.xz}; xz -dc "$m" >"$d/modules/$b" ;;
		*.zst) b=${b%.zst}; zstd -dqc "$m" >"$d/modules/$b" ;;
		*) cp "$m" "$d/modules/" ;;
		esac
		echo "$b" >>"$d/modules/order"
	done
	(cd "$d" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) >"$out.tmp"
	rm -rf "$d"
	mv "$out.tmp" "$out"
	echo "$key" >"$out.key"
}

# serial_excerpt LOG: the first kernel crash report in a serial log (from a
# few lines before it), plus the last lines; else the last 40 lines.
serial_excerpt() {
	local n
	n=$(grep -nE -m1 'Kernel panic|BUG:|Oops|general protection fault|WARNING:|soft lockup|blocked for more than|MERGEMEM-VM-FATAL' "$1" | cut -d: -f1 || true)
	if [[ -n $n ]]; then
		echo "--- serial, from line $((n > 5 ? n - 5 : 1)):"
		tail -n "+$((n > 5 ? n - 5 : 1))" "$1" | head -n 50
		echo "--- serial tail:"
		tail -n 10 "$1"
	else
		echo "--- serial tail:"
		tail -n 40 "$1"
	fi
}

# run_vm KVER WORK ATTEMPT: boots the VM once; returns QEMU's status.
run_vm() {
	local k=$1 w=$2 dev qemu rc tailpid=
	local serial=$w/serial.log
	: >"$serial"
	local append="console=ttyS0 panic=-1 loglevel=5 mergemem.repo=$REPO mergemem.work=$w${APPEND:+ $APPEND}"
	if [[ $MACHINE == microvm ]]; then
		dev=virtio-9p-device
		local khz
		khz=$(awk -F: '/^cpu MHz/ { printf "%d", $2 * 1000; exit }' /proc/cpuinfo)
		append+=" tsc_early_khz=$khz"
		qemu=(-M microvm,mem-merge=off)
	else
		dev=virtio-9p-pci
		qemu=(-M pc,mem-merge=off)
	fi
	# mem-merge=off: QEMU marks guest RAM mergeable by default, which
	# would put the guests' memory into the host's KSM, slowing every host
	# burst (tests and benchmarks) down while a VM runs.
	# shellcheck disable=SC2054 # commas are QEMU's
	qemu+=(-accel tcg,thread=multi -cpu max -smp 2 -m 2G
		-nodefaults -no-user-config -display none -no-reboot -nic none
		-kernel "$w/vmlinux" -initrd "$w/initramfs.cpio" -append "$append"
		-serial "file:$serial"
		-fsdev "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap"
		-device "$dev,fsdev=hostroot,mount_tag=hostroot"
		-fsdev "local,id=repo,path=$REPO,security_model=none,multidevs=remap"
		-device "$dev,fsdev=repo,mount_tag=repo")
	if ((VERBOSE)); then
		tail -n +1 -F "$serial" >&2 2>/dev/null &
		tailpid=$!
	fi
	timeout --kill-after=10 "$VM_TIMEOUT" qemu-system-x86_64 "${qemu[@]}" \
		</dev/null >"$w/qemu.log" 2>&1 &
	local qpid=$! ended='' started='' why='' start=$SECONDS age
	# Watchdog: kill QEMU (i) when the boot has not reached the runner
	# after BOOT_TIMEOUT, (ii) when the console has been silent for STALL
	# seconds after that (the runner prints a heartbeat: a silent guest is
	# hung), (iii) when the guest is finished or dead but QEMU lingers,
	# e.g. a halt instead of a power-off.
	while kill -0 "$qpid" 2>/dev/null; do
		if [[ -z $started ]] && grep -q '^MERGEMEM-VM-RUNNER-START' "$serial"; then
			started=$SECONDS
		fi
		if [[ -z $ended ]] && grep -qE '^MERGEMEM-VM-(INIT RUNNER-EXIT|FATAL)|reboot: System halted|Kernel panic - not syncing' "$serial"; then
			ended=$SECONDS
		fi
		age=$(($(date +%s) - $(stat -c %Y "$serial")))
		if [[ -n $ended ]] && ((SECONDS - ended > 15)); then
			why="the guest finished but QEMU did not exit"
		elif [[ -z $started ]] && ((SECONDS - start > BOOT_TIMEOUT)); then
			why="the guest did not reach the runner in ${BOOT_TIMEOUT}s"
		elif [[ -n $started && -z $ended ]] && ((age > STALL)); then
			why="the guest's console was silent for ${age}s (hung?)"
		fi
		if [[ -n $why ]]; then
			log "$why; killing QEMU"
			echo "MERGEMEM-VM-HOST killed QEMU: $why" >>"$serial"
			kill "$qpid" 2>/dev/null || true
			sleep 2
			kill -9 "$qpid" 2>/dev/null || true
			break
		fi
		sleep 0.5
	done
	rc=0
	wait "$qpid" || rc=$?
	if [[ -n $tailpid ]]; then
		sleep 0.2
		kill "$tailpid" 2>/dev/null || true
		wait "$tailpid" 2>/dev/null || true
	fi
	return "$rc"
}

# --- per kernel ---------------------------------------------------------------
# run_kernel KVER: DKMS build, boot, results. Writes .vm-work/KVER/rows.txt
# (KVER|test|status|secs) and kstate.txt (state|dkms|boot|vm|total|exit).
run_kernel() {
	local k=$1 kt0 w lockfd host_fail KO t0 dk mk st secs state attempt qrc kfail name cur
	local kstate=- kdkms=- kboot=- kvm=- ktotal=- kexit=0
	kt0=$(now)
	w=$WORKROOT/$k
	mkdir -p "$w"
	exec {lockfd}>"$w/lock"
	if ! flock -n "$lockfd"; then
		log "waiting for another run.sh on $k (${w#"$REPO"/}/lock)"
	fi
	if ! flock -w 900 "$lockfd"; then
		die "another run.sh holds $w/lock"
	fi
	log "=== $k"
	rm -rf "$w/dkms" "$w/module" "$w/src" "$w/logs" "$w/result.txt" "$w/guest.conf" "$w/dmesg.txt" "$w"/serial*.log "$w/dkms.log" "$w/rows.txt" "$w/kstate.txt"
	: >"$w/rows.txt"
	row() { echo "$k|$1" >>"$w/rows.txt"; }
	host_fail=0

	# DKMS build with a private tree.
	KO=
	if ((!NO_DKMS)); then
		t0=$(now)
		mkdir -p "$w/src" "$w/dkms"
		# A snapshot of kmod/ without build products or generated files
		# (git's view: tracked + untracked-but-not-ignored files).
		if git -C "$REPO" rev-parse --git-dir >/dev/null 2>&1; then
			(cd "$REPO/kmod" && git ls-files -z -co --exclude-standard . |
				cpio -0pdm --quiet "$w/src/$PKG_NAME-$PKG_VER")
		else
			(cd "$REPO/kmod" && find . -type f ! -name '*.o' ! -name '*.ko' ! -name '*.mod' \
				! -name '*.mod.c' ! -name '.*.cmd' ! -name 'Module.symvers' ! -name 'modules.order' \
				! -name config.h ! -path './probes/*' -print0 | cpio -0pdm --quiet "$w/src/$PKG_NAME-$PKG_VER")
		fi
		dk=(--dkmstree "$w/dkms" --sourcetree "$w/src" -m "$PKG_NAME" -v "$PKG_VER")
		if [[ -n $(vm_kernel_root "$k") ]]; then
			# Its headers need sid's toolchain: DKMS in the sid build root.
			KO=$("$REPO/scripts/sid-buildroot.sh" build "$k" "$w/src/$PKG_NAME-$PKG_VER" "$w/module" 2>"$w/dkms.log") || KO=
		elif mok_signing_key=$WORKROOT/dkms-mok.key mok_certificate=$WORKROOT/dkms-mok.pub \
			dkms add "${dk[@]}" >"$w/dkms.log" 2>&1 &&
			mok_signing_key=$WORKROOT/dkms-mok.key mok_certificate=$WORKROOT/dkms-mok.pub \
				dkms build "${dk[@]}" -k "$k" >>"$w/dkms.log" 2>&1; then
			KO=$(find "$w/dkms/$PKG_NAME/$PKG_VER/$k" -path '*/module/*' -name "$PKG_NAME.ko*" 2>/dev/null | head -n1)
			[[ -n $KO ]] || KO=$(find "$w/dkms/$PKG_NAME/$PKG_VER/$k" -path '*/module/*' -name '*.ko*' 2>/dev/null | head -n1)
		fi
		kdkms=$(elapsed "$t0")
		if [[ -n $KO ]]; then
			row "host:dkms_build|PASS|${kdkms}"
			log "dkms build ok (${kdkms}s): ${KO#"$REPO"/}"
		else
			row "host:dkms_build|FAIL|${kdkms}"
			host_fail=1
			log "dkms build FAILED for $k; log: ${w#"$REPO"/}/dkms.log"
			tail -n 20 "$w/dkms.log" >&2
			mk=$(find "$w/dkms" -name make.log 2>/dev/null | head -n1)
			[[ -z $mk ]] || { echo "--- $mk:" >&2; tail -n 40 "$mk" >&2; }
		fi
	fi
	if [[ $GUEST_MAKE != none ]]; then
		read -r st secs <<<"$GUEST_MAKE"
		row "host:guest_make|$st|$secs"
		[[ $st == PASS ]] || host_fail=1
	fi

	# Kernel and initramfs (cached).
	local image
	image=$(vm_kernel_image "$k")
	if [[ ! -s $w/vmlinux || $image -nt $w/vmlinux ]]; then
		log "extracting vmlinux"
		extract_vmlinux "$image" "$w/vmlinux" || die "cannot extract vmlinux from $image"
	fi
	build_initramfs "$k" "$w/initramfs.cpio" || die "cannot build the initramfs for $k"

	{
		printf 'KVER=%q\n' "$k"
		printf 'ONLY=%q\n' "$ONLY"
		printf 'MERGEMEM_KO=%q\n' "$KO"
		printf 'TEST_TIMEOUT=%q\n' "$TEST_TIMEOUT"
		printf 'MERGEMEM_VM_NO_DKMS=%q\n' "$NO_DKMS"
	} >"$w/guest.conf"

	# Boot; retry once if the runner never started.
	state=
	for attempt in 1 2; do
		log "booting $k ($MACHINE, attempt $attempt, timeout ${VM_TIMEOUT}s)"
		rm -f "$w/result.txt"
		t0=$(now)
		qrc=0
		run_vm "$k" "$w" "$attempt" || qrc=$?
		kvm=$(elapsed "$t0")
		cp "$w/serial.log" "$w/serial.attempt$attempt.log"
		if grep -q '^MERGEMEM-VM-DONE' "$w/serial.log" && grep -q '^DONE' "$w/result.txt" 2>/dev/null; then
			state=finished
		elif grep -q '^MERGEMEM-VM-RUNNER-START' "$w/serial.log"; then
			state=lost
		else
			state=noboot
		fi
		case $qrc in
		0) ;;
		124 | 137) log "QEMU killed after ${VM_TIMEOUT}s" ;;
		*) log "QEMU exited with $qrc: $(tail -n 3 "$w/qemu.log" | tr '\n' ' ')" ;;
		esac
		[[ $state == noboot && $attempt == 1 ]] || break
		log "the VM never reached the runner; retrying once"
		serial_excerpt "$w/serial.log" >&2
	done
	kboot=$(sed -n 's/^MERGEMEM-VM-RUNNER-START \([0-9.]*\).*/\1/p' "$w/serial.log" | head -n1)
	kboot=${kboot:--}

	# Results: the result file, else the serial markers (partial runs).
	kfail=$host_fail
	if [[ -f $w/result.txt ]]; then
		while read -r name st secs _; do
			[[ $name == DONE ]] && continue
			row "$name|$st|$secs"
			[[ $st == PASS || $st == SKIP ]] || kfail=1
		done <"$w/result.txt"
	else
		while read -r _ name st secs _; do
			row "$name|$st|${secs%s}"
			[[ $st == PASS || $st == SKIP ]] || kfail=1
		done < <(grep '^MERGEMEM-VM-RESULT ' "$w/serial.log" || true)
	fi
	if [[ $state != finished ]]; then
		cur=$(grep '^MERGEMEM-VM-TEST-START ' "$w/serial.log" | tail -n1 | cut -d' ' -f2 || true)
		if [[ $state == lost && -n $cur ]] && ! grep -q "^$cur " "$w/result.txt" 2>/dev/null; then
			row "$cur|VM-LOST|-"
		fi
		row "vm|NO-REPORT|${kvm}"
		kstate="VM never reported ($state)"
		kexit=3
		log "VM for $k never reported ($state); serial log: ${w#"$REPO"/}/serial.log"
		serial_excerpt "$w/serial.log" >&2
	elif ((kfail)); then
		kstate=FAIL
		kexit=1
	else
		kstate=PASS
	fi
	# Logs of failed guest tests.
	if [[ -f $w/result.txt ]]; then
		while read -r name st _; do
			[[ $name != DONE && $st != PASS && $st != SKIP ]] || continue
			echo "--- $k $name $st; tail of ${w#"$REPO"/}/logs/$name.log:" >&2
			tail -n 40 "$w/logs/$name.log" >&2 2>/dev/null || true
		done <"$w/result.txt"
	fi
	if ((!KEEP && !NO_DKMS)) && [[ ${kstate} == PASS ]]; then
		rm -rf "$w/src" "$w/dkms/$PKG_NAME/$PKG_VER/build" 2>/dev/null || true
	fi
	ktotal=$(elapsed "$kt0")
	echo "$kstate|$kdkms|$kboot|$kvm|$ktotal|$kexit" >"$w/kstate.txt"
	flock -u "$lockfd"
	exec {lockfd}>&-
}

worst=0
bump() { # bump EXIT: keep the worst exit status (3 > 2 > 1 > 0)
	if (($1 > worst)); then worst=$1; fi
}
if ((JOBS <= 1 || ${#kernels[@]} <= 1)); then
	for k in "${kernels[@]}"; do
		run_kernel "$k"
	done
else
	# Kernels in parallel, at most JOBS at a time; output prefixed.
	pids=()
	for k in "${kernels[@]}"; do
		while (($(jobs -rp | wc -l) >= JOBS)); do wait -n || true; done
		(run_kernel "$k" 2>&1 | sed -u "s/^/[${k%%-*}] /" >&2) &
		pids+=($!)
	done
	for pid in "${pids[@]}"; do wait "$pid" || true; done
fi
declare -A K_STATE K_DKMS K_BOOT K_VM K_TOTAL
declare -a ROWS=()
for k in "${kernels[@]}"; do
	w=$WORKROOT/$k
	if [[ -f $w/kstate.txt ]]; then
		IFS='|' read -r ks kd kb kv kt kx <"$w/kstate.txt"
		K_STATE[$k]=$ks K_DKMS[$k]=$kd K_BOOT[$k]=$kb K_VM[$k]=$kv K_TOTAL[$k]=$kt
		bump "$kx"
		mapfile -t -O "${#ROWS[@]}" ROWS <"$w/rows.txt"
	else
		K_STATE[$k]="harness error"
		bump 2
	fi
done

# The agent image's build, if it is still running (it ends on its own).
wait

# --- summary ------------------------------------------------------------------
{
	echo
	echo "VM test summary (logs: .vm-work/<KVER>/{serial.log,logs/})"
	printf '%-24s %-22s %-10s %s\n' KERNEL TEST STATUS SECS
	for r in "${ROWS[@]}"; do
		IFS='|' read -r k name st secs <<<"$r"
		printf '%-24s %-22s %-10s %s\n' "$k" "$name" "$st" "$secs"
	done
	echo
	printf '%-24s %-8s %-8s %-8s %-8s %s\n' KERNEL DKMS BOOT VM TOTAL RESULT
	for k in "${kernels[@]}"; do
		printf '%-24s %-8s %-8s %-8s %-8s %s\n' "$k" "${K_DKMS[$k]:--}" "${K_BOOT[$k]:--}" \
			"${K_VM[$k]:--}" "${K_TOTAL[$k]:--}" "${K_STATE[$k]:--}"
	done
	echo "total: $(elapsed "$T_START")s, exit $worst"
} | tee "$WORKROOT/summary.txt" >&2
exit "$worst"
}
