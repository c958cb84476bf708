/*
 * A test worker with exactly known memory, for the scan tests and bench.
 *
 *   worker ADDR DUP UNIQUE COMMON ZERO ZEROREAD UNTOUCHED FORK [SEED]
 *
 * Maps one private anonymous region at ADDR (hex, MAP_FIXED_NOREPLACE so it
 * is the process's first mapping and comes first in scan order), with THP
 * off so each touched page is exactly one present 4 KiB page, laid out as:
 *
 *   DUP       pages that all hold the same content (same in every worker)
 *   UNIQUE    pages unique within and across workers (seeded by pid, SEED)
 *   COMMON    page i holds f(i): unique here, same as other workers' page i
 *   ZERO      pages written, then zeroed: real frames holding zeros
 *   ZEROREAD  pages only read: mapped to the kernel's shared zero page
 *   UNTOUCHED pages never touched: not present
 *
 * With FORK=1 it forks after filling; the child shares every page COW and
 * never writes. Prints "READY <addr> <pages> <childpid|0>" and waits until
 * stdin closes.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static uint64_t mix(uint64_t x) {
	x ^= x >> 33; x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL;
	return x ^ (x >> 33);
}

static void fill(uint64_t *p, size_t words, uint64_t seed) {
	for (size_t i = 0; i < words; i++) p[i] = mix(seed * 1000003ULL + i + 1);
}

int main(int argc, char **argv) {
	if (argc < 9) {
		fprintf(stderr, "usage: worker ADDR DUP UNIQUE COMMON ZERO ZEROREAD UNTOUCHED FORK [SEED]\n");
		return 2;
	}
	uintptr_t addr = strtoull(argv[1], 0, 16);
	long n[6];
	for (int i = 0; i < 6; i++) n[i] = atol(argv[2 + i]);
	int do_fork = atoi(argv[8]);
	uint64_t seed = argc > 9 ? strtoull(argv[9], 0, 10) : 1;
	long ps = sysconf(_SC_PAGESIZE);
	long pages = n[0] + n[1] + n[2] + n[3] + n[4] + n[5];
	size_t len = (size_t)(pages ? pages : 1) * ps;
	char *m = mmap((void *)addr, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (m == MAP_FAILED) { perror("mmap"); return 1; }
	madvise(m, len, MADV_NOHUGEPAGE);
	size_t w = ps / 8;
	char *p = m;
	for (long i = 0; i < n[0]; i++, p += ps) fill((uint64_t *)p, w, 0xD0D0);
	for (long i = 0; i < n[1]; i++, p += ps)
		fill((uint64_t *)p, w, mix(((uint64_t)getpid() << 32) ^ (seed << 48) ^ (uint64_t)i));
	for (long i = 0; i < n[2]; i++, p += ps) fill((uint64_t *)p, w, 0xC0FFEE00ULL + i);
	for (long i = 0; i < n[3]; i++, p += ps) { memset(p, 0x5a, ps); memset(p, 0, ps); }
	volatile char sink = 0;
	for (long i = 0; i < n[4]; i++, p += ps) sink += *(volatile char *)p;
	(void)sink;
	pid_t child = 0;
	if (do_fork) {
		child = fork();
		if (child < 0) { perror("fork"); return 1; }
	}
	if (child == 0 && do_fork) {
		char b[64];
		while (read(0, b, sizeof b) > 0) {}
		return 0;
	}
	printf("READY %lx %ld %d\n", (unsigned long)m, pages, (int)child);
	fflush(stdout);
	char b[64];
	while (read(0, b, sizeof b) > 0) {}
	return 0;
}
