// SPDX-License-Identifier: GPL-2.0
/*
 * A worker for the huge-page durability test (merge_e2e.ts "thp"): maps
 * PAGES pages at a 2 MiB aligned address, left to the kernel's THP mode
 * (Debian's default "always" gives it huge pages), where even pages hold
 * content shared with every other thp_worker (page i: f(i)) and odd pages
 * content of its own. So each 2 MiB range KSM merges has 256 shared
 * entries, few enough for khugepaged (max_ptes_shared defaults to 256) to
 * collapse it back into a private huge page unless the VMA is
 * MADV_NOHUGEPAGE.
 *
 *   thp_worker PAGES
 *
 * Prints "READY <addr hex> <pages>", then waits for EOF on stdin; exits 1
 * if any page then differs from what it wrote.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define HUGE (2UL << 20)

static void fill(uint64_t *p, size_t words, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1;
	size_t i;

	for (i = 0; i < words; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = x;
	}
}

static uint64_t seed_of(size_t i)
{
	return i % 2 ? ((uint64_t)getpid() << 32) + i : i + 1;
}

int main(int argc, char **argv)
{
	size_t pages = argc > 1 ? strtoul(argv[1], NULL, 0) : 2048;
	long psz = sysconf(_SC_PAGESIZE);
	size_t words = psz / 8, i, bad = 0;
	uint64_t *want = malloc(psz);
	uint8_t *raw, *p;
	char buf[64];

	raw = mmap(NULL, pages * psz + HUGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED || !want)
		return 2;
	p = (uint8_t *)(((uintptr_t)raw + HUGE - 1) & ~(HUGE - 1));
	for (i = 0; i < pages; i++)
		fill((uint64_t *)(p + i * psz), words, seed_of(i));
	printf("READY %lx %zu\n", (unsigned long)(uintptr_t)p, pages);
	fflush(stdout);
	while (fgets(buf, sizeof(buf), stdin))
		;
	for (i = 0; i < pages; i++) {
		fill(want, words, seed_of(i));
		bad += memcmp(want, p + i * psz, psz) != 0;
	}
	if (bad)
		fprintf(stderr, "thp_worker: %zu pages changed\n", bad);
	return bad ? 1 : 0;
}
