/*
 * A test worker whose memory is transparent huge pages, fork-shared and
 * partly written, with exactly known content (issue 7, "exact counts under
 * THP"; expected figures in scan_thp_test.ts and t_26_scan_thp.sh).
 *
 *   scan_thp_worker [WRITTEN]
 *
 * Maps 2 huge pages (4 MiB, 2 MiB aligned, MADV_HUGEPAGE) and fills them:
 *
 *   huge page A: pages 0-127 one content (D), pages 128-511 unique contents
 *   huge page B: pages 0-255 zero-filled (written, then zeroed),
 *                pages 256-511 unique contents
 *
 * then forks. The child rewrites WRITTEN pages (default 76) from page 200
 * of A with contents of its own: its copy-on-write splits its mapping of A
 * into small pages, and the rest of both huge pages stays shared with the
 * parent. Prints "READY <addr> <childpid> <AnonHugePages kB of the parent>"
 * once the child has written, and waits until stdin closes.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define HUGE (2UL << 20)

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33; x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL;
	return x ^ (x >> 33);
}

static void fill(char *p, long ps, uint64_t seed)
{
	uint64_t *w = (uint64_t *)p;
	for (long k = 0; k < ps / 8; k++) w[k] = mix(seed * 1000003ULL + k) | 1;
}

static long anon_huge_kb(void)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "r");
	char line[256];
	long kb = -1;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "AnonHugePages: %ld kB", &kb) == 1) break;
	if (f) fclose(f);
	return kb;
}

int main(int argc, char **argv)
{
	long written = argc > 1 ? atol(argv[1]) : 76;
	long ps = sysconf(_SC_PAGESIZE);
	long per = HUGE / ps;
	char *raw = mmap(0, 3 * HUGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED) { perror("mmap"); return 1; }
	char *m = (char *)(((uintptr_t)raw + HUGE - 1) & ~(HUGE - 1));
	/* Only the aligned 4 MiB stay: the region is one VMA of 2 THPs. */
	if (m > raw) munmap(raw, m - raw);
	munmap(m + 2 * HUGE, raw + 3 * HUGE - (m + 2 * HUGE));
	if (madvise(m, 2 * HUGE, MADV_HUGEPAGE)) { perror("madvise"); return 1; }
	char *a = m, *b = m + HUGE;
	for (long i = 0; i < per; i++)
		fill(a + i * ps, ps, i < per / 4 ? 0xD0D0 : 0xA000 + i + ((uint64_t)getpid() << 24));
	for (long i = 0; i < per; i++) {
		if (i < per / 2) { memset(b + i * ps, 0x5a, ps); memset(b + i * ps, 0, ps); }
		else fill(b + i * ps, ps, 0xB000 + i + ((uint64_t)getpid() << 24));
	}
	long kb = anon_huge_kb();
	int pipefd[2];
	if (pipe(pipefd)) return 1;
	pid_t child = fork();
	if (child < 0) { perror("fork"); return 1; }
	if (child == 0) {
		for (long i = 200; i < 200 + written && i < per; i++)
			fill(a + i * ps, ps, 0xC000 + i + ((uint64_t)getpid() << 24));
		if (write(pipefd[1], "x", 1) != 1) return 1;
		char c[64];
		while (read(0, c, sizeof c) > 0) {}
		return 0;
	}
	char x;
	if (read(pipefd[0], &x, 1) != 1) return 1;
	printf("READY %lx %d %ld\n", (unsigned long)m, (int)child, kb);
	fflush(stdout);
	char c[64];
	while (read(0, c, sizeof c) > 0) {}
	kill(child, SIGKILL);
	waitpid(child, 0, 0);
	return 0;
}
