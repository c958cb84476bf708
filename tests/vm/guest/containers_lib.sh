# shellcheck shell=bash
# Sourced by the container tests (t_7*.sh): real podman containers in the
# guest, root podman 4.3 with crun from Debian's packages (scripts/vm-deps.sh
# installs them on the host, whose root the guest boots read-only over 9p;
# they are never run on the host, whose hybrid cgroups crun refuses).
#
#   containers_setup        podman usable here (idempotent); cleanup at exit;
#                           exit 77 (skip) without a cgroup v2 to mount
#   tenant_start NAME N     pod NAME with N containers NAME-1..NAME-N, each a
#                           php-fpm (root master, a static pool of
#                           CT_FPM_POOL www-data workers) on a Unix socket
#                           in a per-container directory of the guest;
#                           CT_POD=0 (or a failing pod) makes N containers
#                           without a pod, labelled with the tenant instead
#   tenant_ctrs NAME        the tenant's container ids (with a pod's infra)
#   tenant_pids NAME        host pids of every process in those containers
#                           (from their cgroups; never conmon)
#   tenant_answer NAME      every replica answers FastCGI (fcgi_get)
#   containers_cleanup      stops and removes all containers and pods, their
#                           cgroups, unmounts what setup mounted (also run
#                           at exit); what it could not remove: CT_LEFT
#
# How (the guest is chrooted into a read-only 9p root, PID 1 is busybox):
# - cgroup v2 mounted on /sys/fs/cgroup (crun refuses v1 and hybrid), its
#   controllers enabled for children; podman's cgroupfs manager (no systemd),
#   so containers sit under /libpod_parent;
# - podman's configuration from CONTAINERS_CONF / CONTAINERS_STORAGE_CONF
#   under $CT_ST: no default ulimits (the guest's hard limit on open files is
#   below podman's default), cgroupfs, events to a file, logs to k8s-file,
#   storage driver vfs with its roots on tmpfs;
# - no network: --network=none (no bridge, no iptables), php-fpm on a Unix
#   socket in a directory bind-mounted from the guest's /run;
# - no image: the root filesystem is --rootfs of a read-only bind mount of
#   the guest's / (--rootfs / itself fails: pivot_root EBUSY in the chroot);
#   the bind is not recursive, so /tmp, /run... there are the host's own
#   directories as the 9p share shows them, read-only: the container gets
#   empty tmpfs on /tmp, /run (podman writes /run/.containerenv), /var/tmp,
#   /var/log and /var/lib/php, "notmpcopyup" (podman would copy the host's
#   /tmp into the tmpfs: "crun: write: No space left on device");
# - a pod's infra container runs the podman-pause image that podman builds
#   locally from catatonit; the device program podman 4.3 puts on the pod's
#   cgroup is detached (ct_pod_devices).
set -euo pipefail
# It mounts cgroup2 over /sys/fs/cgroup and removes podman's lock file: in
# the test VM only (runner.sh sets MERGEMEM_VM).
if [[ ${MERGEMEM_VM:-} != 1 ]]; then
	echo "FAIL: containers_lib.sh runs only inside the test VM (tests/vm/run.sh)"
	exit 1
fi
G=${G:-$REPO/tests/vm/guest}
CT_ST=/run/mergemem-containers
CT_ROOTFS=$CT_ST/rootfs
CT_TENANTS=$CT_ST/tenants
CT_LABEL=io.mergemem.tenant
CT_FPM_POOL=${CT_FPM_POOL:-3}
CT_WAIT=${CT_WAIT:-180}
CT_FPM=$(find /usr/sbin -name 'php-fpm*' 2>/dev/null | sort -V | tail -n1)
CT_MOUNTS=()
CT_LEFT=()
CT_READY=0  # setup done
CT_ACTIVE=0 # setup begun: cleanup has work

ct_log() { echo "containers: [${SECONDS}s] $*"; }
ct_fail() {
	echo "FAIL: $*"
	exit 1
}
ct_skip() {
	echo "skip: $*"
	exit 77
}

# ct_mount MOUNTPOINT MOUNT-ARGS...: mounts unless something is mounted
# there already; what it mounts is unmounted by containers_cleanup.
ct_mount() {
	local mp=$1
	shift
	mountpoint -q "$mp" && return 0
	mkdir -p "$mp"
	mount "$@" "$mp" || return 1
	CT_MOUNTS+=("$mp")
}

containers_setup() {
	((CT_READY)) && return 0
	local p c fs
	for p in podman crun conmon; do
		command -v "$p" >/dev/null || ct_fail "no $p on the host's root (scripts/vm-deps.sh)"
	done
	[[ -x $CT_FPM ]] || ct_fail "no php-fpm in /usr/sbin (scripts/vm-deps.sh)"
	for p in fcgi_get cgroup_devices; do
		[[ -x $G/$p ]] || ct_fail "$G/$p not built (make -C tests/vm/guest)"
	done
	grep -qw cgroup2 /proc/filesystems || ct_skip "kernel $(uname -r) has no cgroup2 filesystem"

	# Cleanup at exit, whatever happens: through servers_lib.sh's STOPS
	# when it is there, else chained before the EXIT trap already set.
	if declare -p STOPS >/dev/null 2>&1; then
		STOPS+=(containers_cleanup)
	else
		CT_PREV_TRAP=
		# "trap -- 'COMMAND' EXIT": its third word.
		[[ -z $(trap -p EXIT) ]] || eval "ct_third $(trap -p EXIT)"
		trap ct_exit EXIT
		trap 'exit 143' TERM
		trap 'exit 130' INT
	fi
	CT_ACTIVE=1

	# cgroup v2 on /sys/fs/cgroup: crun supports neither v1 nor hybrid.
	fs=$(stat -f -c %T /sys/fs/cgroup 2>/dev/null || echo none)
	case $fs in
	cgroup2fs) ;;
	sysfs | none)
		ct_mount /sys/fs/cgroup -t cgroup2 none ||
			ct_skip "mount -t cgroup2 on /sys/fs/cgroup failed (controllers bound to cgroup v1?)"
		;;
	*) ct_skip "/sys/fs/cgroup is $fs (cgroup v1 or hybrid): crun needs cgroup v2 alone" ;;
	esac
	# Every available controller for the children (cpu, memory, pids at
	# least: podman sets a pids limit).
	for c in $(</sys/fs/cgroup/cgroup.controllers); do
		echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null ||
			ct_log "warning: controller $c not enabled"
	done
	for c in cpu memory pids; do
		grep -qw "$c" /sys/fs/cgroup/cgroup.subtree_control ||
			ct_skip "cgroup v2 controller $c not available (cgroup.controllers: $(cat /sys/fs/cgroup/cgroup.controllers))"
	done
	# podman's lock file lives in /dev/shm (tmpfs in the guest already).
	ct_mount /dev/shm -t tmpfs -o mode=1777 tmpfs
	ct_mount /dev/mqueue -t mqueue mqueue

	mkdir -p "$CT_ST" "$CT_ROOTFS" "$CT_TENANTS" "$CT_ST/cni"
	cat >"$CT_ST/containers.conf" <<EOF
[containers]
default_ulimits = []
log_driver = "k8s-file"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "crun"
tmp_dir = "$CT_ST/libpod"
[network]
network_config_dir = "$CT_ST/cni"
EOF
	cat >"$CT_ST/storage.conf" <<EOF
[storage]
driver = "vfs"
runroot = "$CT_ST/runroot"
graphroot = "/var/tmp/mergemem-containers/storage"
EOF
	export CONTAINERS_CONF=$CT_ST/containers.conf
	export CONTAINERS_STORAGE_CONF=$CT_ST/storage.conf

	# What an earlier test that could not clean up left (same boot).
	if [[ -n $(podman ps -a -q) ]]; then
		ct_log "removing containers left by an earlier test: $(podman ps -a --format '{{.Names}}' | tr '\n' ' ')"
		podman pod rm -a -f >/dev/null || true
		podman rm -a -f >/dev/null || true
	fi

	# The root filesystem of every container: / again, read-only.
	ct_mount "$CT_ROOTFS" --bind / || ct_fail "mount --bind / $CT_ROOTFS"
	mount -o remount,bind,ro "$CT_ROOTFS" || true
	CT_READY=1
	ct_log "ready: $(podman --version), $(crun --version | head -n1), cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
}

ct_third() { CT_PREV_TRAP=$3; }
ct_exit() {
	local rc=$?
	containers_cleanup || true
	if [[ -n ${CT_PREV_TRAP:-} ]]; then eval "$CT_PREV_TRAP" || true; fi
	return "$rc"
}

containers_cleanup() {
	local i d
	((CT_ACTIVE)) || return 0
	CT_ACTIVE=0
	CT_READY=0
	CT_LEFT=()
	if [[ -n ${CONTAINERS_CONF:-} ]]; then
		podman pod rm -a -f -t 5 >/dev/null || podman pod rm -a -f >/dev/null || true
		podman rm -a -f -t 5 >/dev/null || true
		if [[ -n $(podman ps -a -q 2>/dev/null) ]]; then
			CT_LEFT+=("containers: $(podman ps -a --format '{{.Names}} {{.Status}}' | tr '\n' ';')")
		fi
	fi
	# The cgroups podman made (empty once its containers are gone).
	if [[ -d /sys/fs/cgroup/libpod_parent ]]; then
		find /sys/fs/cgroup/libpod_parent -depth -type d -exec rmdir {} + 2>/dev/null || true
		[[ ! -d /sys/fs/cgroup/libpod_parent ]] ||
			CT_LEFT+=("cgroups: $(find /sys/fs/cgroup/libpod_parent -type d | tr '\n' ' ')")
	fi
	for ((i = ${#CT_MOUNTS[@]} - 1; i >= 0; i--)); do
		umount "${CT_MOUNTS[i]}" 2>/dev/null || umount -l "${CT_MOUNTS[i]}" ||
			CT_LEFT+=("mount: ${CT_MOUNTS[i]}")
	done
	CT_MOUNTS=()
	# Whatever podman left mounted under its directories (per-container
	# /dev/shm) before they go.
	for d in $(findmnt -rn -o TARGET | grep -E "^($CT_ST|/var/tmp/mergemem-containers)/" | sort -r); do
		umount "$d" 2>/dev/null || umount -l "$d" || true
	done
	# (--one-file-system: never into a bind of / that would not unmount.)
	rm -rf --one-file-system "$CT_ST" /var/tmp/mergemem-containers
	rm -f /dev/shm/libpod_lock
	if ((${#CT_LEFT[@]})); then
		ct_log "warning: left after cleanup: ${CT_LEFT[*]}"
	else
		ct_log "cleaned up"
	fi
}

# ct_fpm_conf DIR: php-fpm's configuration for a replica whose directory
# (bind-mounted at the same path) is DIR: foreground, static pool, socket
# and log in DIR.
ct_fpm_conf() {
	cat >"$1/php-fpm.conf" <<EOF
[global]
pid = /run/php-fpm.pid
error_log = $1/php-fpm.log
daemonize = no
[www]
user = www-data
group = www-data
listen = $1/fpm.sock
listen.mode = 0666
pm = static
pm.max_children = $CT_FPM_POOL
pm.max_requests = 0
EOF
}

# ct_pod_devices POD: detaches the device program that podman 4.3 (cgroupfs
# manager, cgroup v2) attaches to a pod's cgroup: made from a pod's
# resources, which have no device rule, it denies every device to every
# container of the pod (crun: "mknod `/dev/null`: Operation not permitted"
# in the infra container). Each container still gets crun's own program,
# the OCI default devices.
ct_pod_devices() {
	local cg progs
	cg=$(podman pod inspect -f '{{.CgroupPath}}' "$1") || return 1
	[[ -n $cg && -d /sys/fs/cgroup$cg ]] || {
		ct_log "pod $1: no cgroup directory (CgroupPath '$cg'); falling back to containers without a pod"
		return 1
	}
	progs=$("$G/cgroup_devices" list "/sys/fs/cgroup$cg" | sed -n 's/^attached: *//p') || return 1
	[[ -n $progs ]] || return 0
	"$G/cgroup_devices" detach "/sys/fs/cgroup$cg" >/dev/null || {
		ct_log "pod $1: cannot detach the device program(s) $progs from $cg; falling back to containers without a pod"
		return 1
	}
	ct_log "pod $1: detached device program(s) $progs from its cgroup $cg (podman 4.3 with cgroupfs: they deny every device)"
}

# ct_run NAME TENANT DIR [OPTION...]: php-fpm in container NAME with DIR
# bind-mounted; the rootfs comes last (it takes the image's place). The
# tenant is also its compose project (the label podman-compose sets).
ct_run() {
	local name=$1 tenant=$2 dir=$3
	shift 3
	podman run -d --name "$name" --label "$CT_LABEL=$tenant" \
		--label "io.podman.compose.project=$tenant" "$@" \
		--network=none --user 0:0 \
		--tmpfs /tmp:rw,mode=1777,notmpcopyup --tmpfs /run:rw,mode=755,notmpcopyup \
		--tmpfs /var/tmp:rw,mode=1777,notmpcopyup --tmpfs /var/log:rw,mode=755,notmpcopyup \
		--tmpfs /var/lib/php:rw,mode=755,notmpcopyup \
		-v "$dir:$dir" \
		--rootfs "$CT_ROOTFS" "$CT_FPM" -F -y "$dir/php-fpm.conf"
}

# tenant_start NAME REPLICAS
tenant_start() {
	local name=$1 n=$2 i dir pod=${CT_POD:-1} err
	containers_setup
	mkdir -p "$CT_TENANTS/$name"
	for i in $(seq "$n"); do
		dir=$CT_TENANTS/$name/$name-$i
		mkdir -p "$dir"
		chmod 755 "$CT_TENANTS" "$CT_TENANTS/$name" "$dir"
		install -m 644 "$G/www/index.php" "$dir/index.php"
		ct_fpm_conf "$dir"
	done
	if ((pod)); then
		if ! err=$(podman pod create --name "$name" --network=none --label "$CT_LABEL=$name" 2>&1); then
			ct_log "podman pod create failed with the cgroupfs manager: $err; falling back to $n containers without a pod"
			pod=0
		elif ! ct_pod_devices "$name"; then
			podman pod rm -f "$name" >/dev/null || true
			pod=0
		fi
	fi
	if ((pod)); then
		for i in $(seq "$n"); do
			dir=$CT_TENANTS/$name/$name-$i
			if ! err=$(ct_run "$name-$i" "$name" "$dir" --pod "$name" 2>&1); then
				ct_log "container $name-$i in pod $name failed: $err; falling back to $n containers without a pod"
				podman pod rm -f "$name" >/dev/null || true
				pod=0
				break
			fi
		done
	fi
	if ((!pod)); then
		for i in $(seq "$n"); do
			dir=$CT_TENANTS/$name/$name-$i
			podman rm -f "$name-$i" >/dev/null 2>&1 || true
			err=$(ct_run "$name-$i" "$name" "$dir" 2>&1) || ct_fail "podman run $name-$i: $err"
		done
	fi
	echo "$pod" >"$CT_TENANTS/$name/pod"
	# Ready: every replica's socket, master + pool in its cgroup.
	for i in $(seq "$n"); do
		dir=$CT_TENANTS/$name/$name-$i
		ct_wait_fpm "$name-$i" "$dir"
	done
	ct_log "tenant $name: $n replica(s)$( ((pod)) && echo " in pod $name" || echo " (no pod)"), $(tenant_pids "$name" | wc -w) processes"
}

# ct_wait_fpm CONTAINER DIR: until its socket exists and its cgroup holds
# the master and CT_FPM_POOL workers.
ct_wait_fpm() {
	local c=$1 dir=$2 end=$((SECONDS + CT_WAIT)) pid cg n=0
	while ((SECONDS < end)); do
		if [[ -S $dir/fpm.sock ]]; then
			pid=$(podman inspect -f '{{.State.Pid}}' "$c")
			if ((pid > 0)); then
				cg=$(ct_cgroup "$pid")
				n=$(ct_cgroup_procs "$cg" | wc -w)
				((n == CT_FPM_POOL + 1)) && return 0
			fi
		fi
		sleep 0.5
	done
	echo "--- podman ps -a:"
	podman ps -a || true
	echo "--- podman logs $c:"
	podman logs "$c" 2>&1 | tail -n 20 || true
	echo "--- $dir/php-fpm.log:"
	tail -n 20 "$dir/php-fpm.log" 2>/dev/null || true
	ct_fail "$c: no php-fpm with 1 + $CT_FPM_POOL processes on $dir/fpm.sock after ${CT_WAIT}s ($n processes)"
}

# ct_cgroup PID: the process's cgroup v2 path (from /proc/PID/cgroup).
ct_cgroup() { sed -n 's/^0:://p' "/proc/$1/cgroup"; }

# ct_cgroup_procs CGROUP: the pids in CGROUP and below it.
ct_cgroup_procs() {
	find "/sys/fs/cgroup$1" -name cgroup.procs -exec cat {} + 2>/dev/null
}

# tenant_ctrs NAME: ids of the tenant's containers (a pod's infra included).
tenant_ctrs() {
	if [[ $(cat "$CT_TENANTS/$1/pod" 2>/dev/null) == 1 ]]; then
		podman ps -a -q --no-trunc --filter "pod=$1"
	else
		podman ps -a -q --no-trunc --filter "label=$CT_LABEL=$1"
	fi
}

# tenant_pids NAME: host pids of every process of the tenant's running
# containers, from each container's cgroup (conmon sits outside them; it is
# filtered out by name as well), one a line, sorted.
tenant_pids() {
	local ids pid
	# (Word splitting, not a process substitution: the guest has no /dev/fd.)
	ids=$(tenant_ctrs "$1")
	[[ -n $ids ]] || ct_fail "tenant $1 has no containers"
	# shellcheck disable=SC2086 # container ids: one word each
	for pid in $(podman inspect -f '{{.State.Pid}}' $ids); do
		((pid > 0)) || continue
		ct_cgroup_procs "$(ct_cgroup "$pid")"
	done | sort -nu | while read -r pid; do
		[[ $(cat "/proc/$pid/comm" 2>/dev/null) == conmon ]] || echo "$pid"
	done
}

# tenant_answer NAME [REQUESTS]: every replica of the tenant answers
# REQUESTS (default 2 x the pool) FastCGI requests for the page, with the
# same body as the others; fails otherwise.
tenant_answer() {
	local name=$1 reqs=${2:-$((2 * CT_FPM_POOL))} dir first='' n=0
	for dir in "$CT_TENANTS/$name"/"$name"-*/; do
		dir=${dir%/}
		[[ -S $dir/fpm.sock ]] || ct_fail "${dir##*/}: no socket $dir/fpm.sock"
		"$G/fcgi_get" "$dir/fpm.sock" - "$dir/index.php" "$reqs" "$CT_FPM_POOL" >"$dir/body" 2>"$dir/fcgi.err" ||
			ct_fail "${dir##*/}: FastCGI requests failed: $(cat "$dir/fcgi.err")"
		[[ -s $dir/body ]] || ct_fail "${dir##*/}: empty body"
		if [[ -z $first ]]; then
			first=$dir/body
		else
			cmp -s "$first" "$dir/body" || ct_fail "${dir##*/}: a different body than ${first%/body}"
		fi
		n=$((n + 1))
	done
	((n)) || ct_fail "tenant $name has no replicas"
	ct_log "tenant $name: $n replica(s) answered $reqs FastCGI requests each ($(wc -c <"$first") bytes, the same body)"
}
