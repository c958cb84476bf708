/*
 * A test worker with known memory content, for the KSM and merge tests.
 *
 *   ksm_worker PAGES SEED [UNIQUE] [optin]
 *
 * Maps PAGES anonymous pages in one VMA, fills page i with a pattern
 * derived from (SEED, i) only, so workers with the same SEED hold PAGES
 * pages that are identical across processes but distinct within one
 * (exactly PAGES pages saveable per extra worker). UNIQUE more pages in a
 * second VMA get content derived from the pid, so they never merge.
 * "optin" makes the worker call madvise(MADV_MERGEABLE) itself (the host
 * has no module to do it).
 *
 * It prints "ready PID ADDR CHECKSUM" and then reads commands on stdin:
 *   sum       -> "sum CHECKSUM" over the shared region
 *   write I   -> changes a byte of page I, then "wrote CHECKSUM"
 *   peek I    -> "peek I FIRST_8_BYTES_HEX" of page I
 *   quit      -> exits
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

static void fill(uint64_t *p, size_t words, uint64_t seed)
{
	for (size_t w = 0; w < words; w++)
		p[w] = mix(seed ^ (w * 0x9e3779b97f4a7c15ULL));
}

static uint64_t checksum(const uint64_t *p, size_t words)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t w = 0; w < words; w++)
		h = (h ^ p[w]) * 1099511628211ULL;
	return h;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s PAGES SEED [UNIQUE] [optin]\n", argv[0]);
		return 2;
	}
	size_t pages = strtoul(argv[1], NULL, 0);
	uint64_t seed = strtoull(argv[2], NULL, 0);
	size_t unique = argc > 3 ? strtoul(argv[3], NULL, 0) : 0;
	int optin = argc > 4 && strcmp(argv[4], "optin") == 0;
	size_t ps = sysconf(_SC_PAGESIZE), words = ps / 8;

	uint8_t *shared = mmap(NULL, pages * ps, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (shared == MAP_FAILED) { perror("mmap"); return 1; }
	/* No THP: KSM would have to split huge pages first, which makes the
	 * timing depend on khugepaged rather than on what we test. */
	madvise(shared, pages * ps, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < pages; i++)
		fill((uint64_t *)(shared + i * ps), words, mix(seed) + i);
	if (unique) {
		uint8_t *u = mmap(NULL, unique * ps, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (u == MAP_FAILED) { perror("mmap"); return 1; }
		madvise(u, unique * ps, MADV_NOHUGEPAGE);
		for (size_t i = 0; i < unique; i++)
			fill((uint64_t *)(u + i * ps), words,
			     mix(getpid() * 1000003ULL + i) ^ 0xabcdef);
		if (optin && madvise(u, unique * ps, MADV_MERGEABLE)) {
			perror("madvise"); return 1;
		}
	}
	if (optin && madvise(shared, pages * ps, MADV_MERGEABLE)) {
		perror("madvise"); return 1;
	}
	printf("ready %d %p %016llx\n", getpid(), (void *)shared,
	       (unsigned long long)checksum((uint64_t *)shared, pages * words));
	fflush(stdout);

	char line[128];
	while (fgets(line, sizeof(line), stdin)) {
		size_t i;
		if (strncmp(line, "sum", 3) == 0) {
			printf("sum %016llx\n", (unsigned long long)
			       checksum((uint64_t *)shared, pages * words));
		} else if (sscanf(line, "write %zu", &i) == 1 && i < pages) {
			shared[i * ps] ^= 0x5a;
			printf("wrote %016llx\n", (unsigned long long)
			       checksum((uint64_t *)shared, pages * words));
		} else if (sscanf(line, "peek %zu", &i) == 1 && i < pages) {
			printf("peek %zu %016llx\n", i,
			       (unsigned long long)*(uint64_t *)(shared + i * ps));
		} else if (strncmp(line, "quit", 4) == 0) {
			break;
		} else {
			printf("error\n");
		}
		fflush(stdout);
	}
	return 0;
}
