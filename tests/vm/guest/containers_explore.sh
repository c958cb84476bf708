#!/usr/bin/env bash
# vm-timeout: 600 (when run as a t_*.sh test)
# Not part of the suite (CI time): run it by hand, copied to t_70_containers.sh,
# or `bash containers_explore.sh` in a guest, to see what podman lays out.
# Real containers in the guest (containers_lib.sh), an exploration for now:
# two tenants, tenant-a and tenant-b, each a podman pod of 2 php-fpm
# replicas, and tenant-c, one replica without a pod (CT_POD=0), all with
# the cgroupfs manager. Prints what a tool would see of them: for every
# tenant process its pid, uid, comm, /proc/PID/cgroup and user namespace,
# conmon's, the cgroup tree, podman's JSON for containers and pods; checks
# every replica answers FastCGI, then removes everything and checks nothing
# is left (no container process, no podman cgroup, no mount).
set -euo pipefail
# shellcheck source=containers_lib.sh
. "$(dirname "$0")/containers_lib.sh"

containers_setup
tenant_start tenant-a 2
tenant_start tenant-b 2
CT_POD=0 tenant_start tenant-c 1

echo "=== guest: init userns $(readlink /proc/1/ns/user), this shell $(readlink /proc/$$/ns/user), cgroup $(ct_cgroup $$)"
all=()
for t in tenant-a tenant-b tenant-c; do
	echo "=== $t"
	# (No process substitution: the guest has no /dev/fd.)
	list=$(tenant_pids "$t" | tr '\n' ' ')
	read -ra pids <<<"$list"
	((${#pids[@]})) || ct_fail "$t: no processes"
	for pid in "${pids[@]}"; do
		echo "pid=$pid uid=$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status") comm=$(cat "/proc/$pid/comm") userns=$(readlink "/proc/$pid/ns/user")"
		sed 's/^/  cgroup: /' "/proc/$pid/cgroup"
	done
	all+=("${pids[@]}")
done
echo "=== conmon (excluded from tenant_pids)"
for pid in $(pgrep -x conmon); do
	echo "pid=$pid uid=$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status") comm=$(cat "/proc/$pid/comm") cgroup=$(ct_cgroup "$pid") userns=$(readlink "/proc/$pid/ns/user")"
	for p in "${all[@]}"; do [[ $p != "$pid" ]] || ct_fail "conmon $pid among tenant pids"; done
done
echo "=== cgroup directories under /sys/fs/cgroup/libpod_parent"
(cd /sys/fs/cgroup && find libpod_parent -type d | sort)
echo "=== device programs (cgroup_devices list)"
for cg in $(podman pod inspect -f '{{.CgroupPath}}' tenant-a) $(ct_cgroup "$(tenant_pids tenant-a | head -n1)") \
	$(ct_cgroup "$(tenant_pids tenant-c | head -n1)"); do
	echo "$cg: $("$G/cgroup_devices" list "/sys/fs/cgroup$cg" | tr '\n' ' ')"
done
echo "=== podman ps -a --pod --format json"
podman ps -a --pod --format json
echo "=== podman ps -a --pod (fields)"
podman ps -a --pod --no-trunc --format '{{.ID}} names={{.Names}} pod={{.Pod}} podname={{.PodName}} image={{.Image}} labels={{.Labels}} infra={{.IsInfra}} pid={{.Pid}}'
echo "=== podman ps -a (no --pod: PodName is filled only with --pod)"
podman ps -a --no-trunc --format '{{.Names}} pod={{.Pod}} podname={{.PodName}}'
echo "=== podman pod ps --format json"
podman pod ps --format json
echo "=== podman pod inspect tenant-a (cgroup fields)"
podman pod inspect tenant-a --format 'Id={{.ID}} Name={{.Name}} CgroupParent={{.CgroupParent}} CgroupPath={{.CgroupPath}} InfraContainerID={{.InfraContainerID}}'
echo "=== podman inspect tenant-a-1 (cgroup fields)"
podman inspect tenant-a-1 --format 'Id={{.Id}} Name={{.Name}} Pod={{.Pod}} CgroupPath={{.State.CgroupPath}} Pid={{.State.Pid}} ConmonPid={{.State.ConmonPid}} CgroupParent={{.HostConfig.CgroupParent}} CgroupManager={{.HostConfig.CgroupManager}}'

for t in tenant-a tenant-b tenant-c; do
	tenant_answer "$t"
done
# Each replica: master + pool; a pod adds its infra (catatonit).
n=$(tenant_pids tenant-a | wc -l)
((n == 2 * (CT_FPM_POOL + 1) + 1)) || ct_fail "tenant-a: $n processes, expected $((2 * (CT_FPM_POOL + 1) + 1))"

containers_cleanup
((${#CT_LEFT[@]} == 0)) || ct_fail "left after cleanup: ${CT_LEFT[*]}"
left=$(pgrep -x "${CT_FPM##*/}" || true)
[[ -z $left ]] || ct_fail "php-fpm processes left: $left"
left=$(pgrep -x conmon || true)
[[ -z $left ]] || ct_fail "conmon processes left: $left"
left=$(findmnt -rn -o TARGET | grep -E '^(/run/mergemem-containers|/sys/fs/cgroup$)' || true)
[[ -z $left ]] || ct_fail "mounts left: $left"
echo "ok: [${SECONDS}s] everything stopped and removed"
