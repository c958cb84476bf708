/*
 * A test worker with exactly known memory, for the scan, KSM and merge
 * tests and the benchmarks (driven by tests/helpers/workers.ts).
 *
 *   worker [--addr HEX] [--dup N] [--unique N] [--common N] [--zero N]
 *          [--zero-read N] [--untouched N] [--seed S] [--unique-apart N]
 *          [--optin] [--fork]
 *
 * Maps one private anonymous region at ADDR (default 0x100000000,
 * MAP_FIXED_NOREPLACE so it is the process's first mapping and comes first
 * in scan order), with THP off so each touched page is exactly one present
 * 4 KiB page (and KSM need not split huge pages first), laid out as:
 *
 *   DUP       pages that all hold the same content (same in every worker)
 *   UNIQUE    pages unique within and across workers (seeded by the pid)
 *   COMMON    page i holds f(SEED, i): unique here, same as page i of
 *             other workers with the same SEED (default 0)
 *   ZERO      pages written, then zeroed: real frames holding zeros
 *   ZEROREAD  pages only read: mapped to the kernel's shared zero page
 *   UNTOUCHED pages never touched: not present
 *
 * --unique-apart N maps N more unique pages in a second mapping of their
 * own, so that a merge, which marks whole VMAs, leaves them out. --optin
 * makes the worker mark both mappings MADV_MERGEABLE itself (on a host
 * without the module). With --fork it forks after filling; the child
 * shares every page COW, never writes, and dies with its parent.
 *
 * It prints "READY <addr> <pages> <childpid|0> <checksum>" (pages of the
 * region; checksum over the COMMON pages) and then reads commands on
 * stdin, until "quit" or EOF:
 *   sum       -> "sum CHECKSUM" over the COMMON pages
 *   write I   -> changes a byte of COMMON page I, then "wrote CHECKSUM"
 *   peek I    -> "peek I FIRST_8_BYTES_HEX" of COMMON page I
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	return x ^ (x >> 33);
}

static void fill(uint64_t *p, size_t words, uint64_t seed)
{
	for (size_t i = 0; i < words; i++)
		p[i] = mix(seed * 1000003ULL + i + 1);
}

static uint64_t checksum(const uint64_t *p, size_t words)
{
	uint64_t h = 1469598103934665603ULL;

	for (size_t w = 0; w < words; w++)
		h = (h ^ p[w]) * 1099511628211ULL;
	return h;
}

/* Unique page i of this process: distinct from every other page. */
static void fill_unique(char *p, size_t words, long i)
{
	fill((uint64_t *)p, words, mix(((uint64_t)getpid() << 32) ^ (1ULL << 48) ^ (uint64_t)i));
}

enum { DUP, UNIQUE, COMMON, ZERO, ZEROREAD, UNTOUCHED, APART, SEED, ADDR };

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dup", required_argument, 0, DUP },
		{ "unique", required_argument, 0, UNIQUE },
		{ "common", required_argument, 0, COMMON },
		{ "zero", required_argument, 0, ZERO },
		{ "zero-read", required_argument, 0, ZEROREAD },
		{ "untouched", required_argument, 0, UNTOUCHED },
		{ "unique-apart", required_argument, 0, APART },
		{ "seed", required_argument, 0, SEED },
		{ "addr", required_argument, 0, ADDR },
		{ "optin", no_argument, 0, 'o' },
		{ "fork", no_argument, 0, 'f' },
		{ 0, 0, 0, 0 },
	};
	long n[APART + 1] = { 0 };
	uint64_t seed = 0;
	uintptr_t addr = 0x100000000UL;
	int optin = 0, do_fork = 0, c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c >= DUP && c <= APART)
			n[c] = atol(optarg);
		else if (c == SEED)
			seed = strtoull(optarg, NULL, 0);
		else if (c == ADDR)
			addr = strtoull(optarg, NULL, 16);
		else if (c == 'o')
			optin = 1;
		else if (c == 'f')
			do_fork = 1;
		else
			return 2;
	}
	long ps = sysconf(_SC_PAGESIZE);
	size_t w = ps / 8;
	long pages = 0;

	for (int k = DUP; k <= UNTOUCHED; k++)
		pages += n[k];
	size_t len = (size_t)(pages ? pages : 1) * ps;
	char *m = mmap((void *)addr, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (m == MAP_FAILED) { perror("mmap"); return 1; }
	madvise(m, len, MADV_NOHUGEPAGE);
	char *p = m, *common;
	for (long i = 0; i < n[DUP]; i++, p += ps)
		fill((uint64_t *)p, w, 0xD0D0);
	for (long i = 0; i < n[UNIQUE]; i++, p += ps)
		fill_unique(p, w, i);
	common = p;
	for (long i = 0; i < n[COMMON]; i++, p += ps)
		fill((uint64_t *)p, w, 0xC0FFEE00ULL + (seed << 32) + i);
	for (long i = 0; i < n[ZERO]; i++, p += ps) {
		memset(p, 0x5a, ps);
		memset(p, 0, ps);
	}
	volatile char sink = 0;
	for (long i = 0; i < n[ZEROREAD]; i++, p += ps)
		sink += *(volatile char *)p;
	(void)sink;
	if (n[APART]) {
		size_t alen = (size_t)n[APART] * ps;
		char *a = mmap(NULL, alen, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (a == MAP_FAILED) { perror("mmap"); return 1; }
		madvise(a, alen, MADV_NOHUGEPAGE);
		for (long i = 0; i < n[APART]; i++)
			fill_unique(a + i * ps, w, n[UNIQUE] + i);
		if (optin && madvise(a, alen, MADV_MERGEABLE)) {
			perror("madvise"); return 1;
		}
	}
	if (optin && madvise(m, len, MADV_MERGEABLE)) {
		perror("madvise"); return 1;
	}
	pid_t parent = getpid(), child = 0;
	if (do_fork) {
		child = fork();
		if (child < 0) { perror("fork"); return 1; }
		if (child == 0) {
			/* stdin is the parent's command channel: wait without it. */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				return 0;
			for (;;)
				pause();
		}
	}
	uint64_t *cw = (uint64_t *)common;
	size_t cwords = (size_t)n[COMMON] * w;
	printf("READY %lx %ld %d %016llx\n", (unsigned long)m, pages, (int)child,
	       (unsigned long long)checksum(cw, cwords));
	fflush(stdout);

	char line[128];
	while (fgets(line, sizeof(line), stdin)) {
		long i;

		if (strncmp(line, "sum", 3) == 0) {
			printf("sum %016llx\n",
			       (unsigned long long)checksum(cw, cwords));
		} else if (sscanf(line, "write %ld", &i) == 1 && i >= 0 && i < n[COMMON]) {
			common[i * ps] ^= 0x5a;
			printf("wrote %016llx\n",
			       (unsigned long long)checksum(cw, cwords));
		} else if (sscanf(line, "peek %ld", &i) == 1 && i >= 0 && i < n[COMMON]) {
			printf("peek %ld %016llx\n", i,
			       (unsigned long long)*(uint64_t *)(common + i * ps));
		} else if (strncmp(line, "quit", 4) == 0) {
			break;
		} else {
			printf("error\n");
		}
		fflush(stdout);
	}
	return 0;
}
