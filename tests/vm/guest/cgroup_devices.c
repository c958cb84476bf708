// SPDX-License-Identifier: GPL-2.0
/*
 * cgroup_devices: the cgroup v2 device programs (BPF_CGROUP_DEVICE) of a
 * cgroup, for containers_lib.sh.
 *
 *   cgroup_devices list CGROUP_DIR     ids attached to CGROUP_DIR itself,
 *                                      then the effective ones (inherited)
 *   cgroup_devices detach CGROUP_DIR   detaches those attached to it
 *
 * Why: podman 4.3 with the cgroupfs manager on cgroup v2 gives a pod's
 * cgroup (/libpod_parent/POD-ID) the resources of a pod with no device
 * rule, which runc's cgroup library turns into a device program that
 * denies every device; every container of the pod inherits it, so crun's
 * mknod of /dev/null in the infra container fails with EPERM. The
 * containers get their own device programs from crun (the OCI defaults),
 * so detaching the pod's is all that is needed. (C, not bpftool: one
 * package less on the host.)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_PROGS 64

static long bpf(int cmd, union bpf_attr *attr)
{
	return syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

/* The ids of the device programs of cgroup fd CG; returns their count. */
static int query(int cg, __u32 flags, __u32 *ids)
{
	union bpf_attr a;

	memset(&a, 0, sizeof(a));
	a.query.target_fd = cg;
	a.query.attach_type = BPF_CGROUP_DEVICE;
	a.query.query_flags = flags;
	a.query.prog_ids = (__u64)(unsigned long)ids;
	a.query.prog_cnt = MAX_PROGS;
	if (bpf(BPF_PROG_QUERY, &a)) {
		perror("cgroup_devices: BPF_PROG_QUERY");
		exit(1);
	}
	return a.query.prog_cnt;
}

int main(int argc, char **argv)
{
	__u32 ids[MAX_PROGS];
	int cg, n, i, failed = 0, done = 0;
	union bpf_attr a;

	if (argc != 3 || (strcmp(argv[1], "list") && strcmp(argv[1], "detach"))) {
		fprintf(stderr, "usage: cgroup_devices list|detach CGROUP_DIR\n");
		return 2;
	}
	cg = open(argv[2], O_RDONLY | O_DIRECTORY);
	if (cg < 0) {
		perror(argv[2]);
		return 1;
	}
	n = query(cg, 0, ids);
	if (!strcmp(argv[1], "list")) {
		printf("attached:");
		for (i = 0; i < n; i++)
			printf(" %u", ids[i]);
		n = query(cg, BPF_F_QUERY_EFFECTIVE, ids);
		printf("\neffective:");
		for (i = 0; i < n; i++)
			printf(" %u", ids[i]);
		printf("\n");
		return 0;
	}
	for (i = 0; i < n; i++) {
		memset(&a, 0, sizeof(a));
		a.prog_id = ids[i];
		int prog = bpf(BPF_PROG_GET_FD_BY_ID, &a);

		memset(&a, 0, sizeof(a));
		a.target_fd = cg;
		a.attach_bpf_fd = prog;
		a.attach_type = BPF_CGROUP_DEVICE;
		if (prog < 0 || bpf(BPF_PROG_DETACH, &a)) {
			fprintf(stderr, "cgroup_devices: detaching program %u from %s: %m\n", ids[i],
				argv[2]);
			failed = 1;
		} else {
			done++;
		}
		if (prog >= 0)
			close(prog);
	}
	printf("detached %d of %d device program(s) from %s\n", done, n, argv[2]);
	return failed;
}
