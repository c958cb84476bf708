// SPDX-License-Identifier: GPL-2.0
/*
 * A small target for the ptrace marker's tests: three private anonymous
 * regions of known content (separate VMAs) and one shared anonymous
 * region (KSM cannot merge it), a second thread asleep in nanosleep, and
 * main reading commands on stdin:
 *   "sum"     -> "sum HEX" (checksum of the private regions)
 *   "exit N"  -> exit(N) at once (from main, while the other thread runs)
 * With the argument "seccomp" it first installs a seccomp filter that
 * makes madvise fail with EPERM (and allows everything else).
 *
 * Output: "ready PID P0 P1 P2 SHARED BYTES sleeper=TID".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define PAGES 32
static int sleeper_tid;

static void *sleeper(void *arg)
{
	sleeper_tid = (int)syscall(SYS_gettid);
	for (;;) {
		struct timespec t = {0, 2000000};

		nanosleep(&t, NULL);
	}
	return arg;
}

static int forbid_madvise(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_madvise, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = 4, .filter = f};

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

int main(int argc, char **argv)
{
	size_t bytes = PAGES * 4096;
	uint8_t *r[3], *shared;
	pthread_t th;
	char line[64];

	for (int i = 0; i < 3; i++) {
		r[i] = mmap(NULL, bytes + 4096, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		mprotect(r[i] + bytes, 4096, PROT_READ);
		for (size_t j = 0; j < bytes; j++)
			r[i][j] = (uint8_t)(j * 13 + i);
	}
	shared = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	memset(shared, 1, bytes);
	if (argc > 1 && strcmp(argv[1], "seccomp") == 0 && forbid_madvise())
		return 2;
	pthread_create(&th, NULL, sleeper, NULL);
	while (!__atomic_load_n(&sleeper_tid, __ATOMIC_SEQ_CST))
		usleep(1000);
	printf("ready %d %p %p %p %p %zu sleeper=%d\n", getpid(), r[0], r[1],
	       r[2], shared, bytes, sleeper_tid);
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin)) {
		if (strncmp(line, "exit ", 5) == 0)
			exit(atoi(line + 5));
		if (strncmp(line, "sum", 3) == 0) {
			uint64_t h = 1469598103934665603ULL;

			for (int i = 0; i < 3; i++)
				for (size_t j = 0; j < bytes; j++)
					h = (h ^ r[i][j]) * 1099511628211ULL;
			printf("sum %llx\n", (unsigned long long)h);
			fflush(stdout);
		}
	}
	return 0;
}
