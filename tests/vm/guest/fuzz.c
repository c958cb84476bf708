// SPDX-License-Identifier: GPL-2.0
/*
 * fuzz: randomized ioctl calls on /dev/mergemem.
 *
 *   fuzz [SEED [CALLS]]     defaults: SEED from the clock, CALLS 100000
 *
 * Seeded and reproducible (modulo timing of the short-lived target process):
 * prints the seed first. Every call must return 0 or -1 with an errno from
 * the ABI's list; anything else is a failure. Batches run in forked children
 * so that the parent can report a batch that dies. Run as root in the VM.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/mergemem.h>

#define BATCH 5000
#define OUT_ENTRIES MERGEMEM_PAGEINFO_MAX

static uint64_t rng;
static long psz;

static uint64_t rnd(void)
{
	/* xorshift64* */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545F4914F6CDD1DULL;
}

static uint64_t pick(uint64_t n)
{
	return n ? rnd() % n : 0;
}

/* Memory the fuzzer may let the kernel write to or read from. */
static uint8_t *argbuf;		/* 2 pages: ioctl argument structs */
static struct mergemem_pageinfo *outbuf;	/* OUT_ENTRIES entries */
static uint8_t *ro_page;	/* PROT_READ */
static uint8_t *none_page;	/* PROT_NONE */
static uint8_t *unmapped;	/* was mapped, now unmapped */
static uint8_t *edge;		/* 1 page RW, then the unmapped page */
static uint8_t *dense;		/* 64 pages of our own data to look at */

/* Target processes. */
static int self_mem = -1;
static pid_t victim = -1;	/* churns its memory, killed and respawned */
static int victim_mem = -1;
static int stale_mem = -1;	/* a mem fd of a dead victim */
static uintptr_t victim_base;
static pid_t victim_owner;	/* the process that forked the victim */
static int closed_fd;
static int dev_fd;

static const uint64_t kernel_addrs[] = {
	0xffff888000000000ULL, 0xffffffff81000000ULL, 0xffffffffff600000ULL,
	0xfffffffffffff000ULL, 0x8000000000000000ULL, 0x00007ffffffff000ULL,
};

static uint64_t any_addr(void)
{
	switch (pick(12)) {
	case 0:
		return 0;
	case 1:
		return kernel_addrs[pick(6)];
	case 2:
		return (uintptr_t)unmapped;
	case 3:
		return (uintptr_t)ro_page;
	case 4:
		return (uintptr_t)none_page;
	case 5:
		return (uintptr_t)edge + psz - pick(64);
	case 6:
		return rnd();
	case 7:
		return rnd() & 0x00007ffffffff000ULL;
	case 8:
		return (uintptr_t)dense + pick(64) * psz + (pick(4) ? 0 : 1);
	case 9:
		return victim_base + pick(256) * psz;
	case 10:
		return -(uint64_t)(pick(16) * psz);
	default:
		return (uintptr_t)dense;
	}
}

/* Where the kernel may write PAGEINFO results: never our live memory. */
static uint64_t out_addr(void)
{
	switch (pick(8)) {
	case 0:
		return 0;
	case 1:
		return kernel_addrs[pick(6)];
	case 2:
		return (uintptr_t)unmapped;
	case 3:
		return (uintptr_t)ro_page;
	case 4:
		return (uintptr_t)edge + pick(psz);
	case 5:
		return (uintptr_t)outbuf + pick(64);
	default:
		return (uintptr_t)outbuf;
	}
}

static int any_fd(void)
{
	switch (pick(11)) {
	case 0:
		return -1;
	case 10:
		return stale_mem;
	case 1:
		return (int)rnd();
	case 2:
		return closed_fd;
	case 3:
		return dev_fd;
	case 4:
		return 0;
	case 5:
	case 6:
		return victim_mem;
	default:
		return self_mem;
	}
}

static uint64_t any_npages(void)
{
	switch (pick(8)) {
	case 0:
		return 0;
	case 1:
		return MERGEMEM_PAGEINFO_MAX;
	case 2:
		return MERGEMEM_PAGEINFO_MAX + 1;
	case 3:
		return rnd();
	case 4:
		return 1ULL << 63;
	case 5:
		return pick(MERGEMEM_PAGEINFO_MAX) + 1;
	default:
		return pick(300) + 1;
	}
}

static void fill_random(void *p, size_t len)
{
	uint8_t *b = p;
	size_t i;

	for (i = 0; i < len; i++)
		b[i] = rnd();
}

/* An argument struct in argbuf, sometimes misaligned. */
static void *make_arg(unsigned int cmd)
{
	uint8_t *p = argbuf + (pick(4) ? 0 : pick(64));
	size_t size = _IOC_SIZE(cmd);

	if (size > (size_t)psz)
		size = (size_t)psz;
	fill_random(p, size);
	if (pick(4) == 0)
		return p;	/* pure noise */
	if (pick(3) == 0 && _IOC_NR(cmd) > 0 && _IOC_NR(cmd) < 5 &&
	    _IOC_SIZE(cmd) >= sizeof(struct mergemem_range_args) - 16) {
		/* A well-formed request on a live target. */
		struct mergemem_range_args *a = (void *)p;
		int v = pick(2);

		memset(p, 0, size);
		a->mem_fd = v ? victim_mem : self_mem;
		a->start = v ? victim_base + pick(256) * psz :
			       (uintptr_t)dense + pick(64) * psz;
		if (cmd == MERGEMEM_IOC_PAGEINFO) {
			struct mergemem_pageinfo_args *pa = (void *)p;

			pa->npages = pick(2) ? pick(300) + 1 :
					       MERGEMEM_PAGEINFO_MAX;
			pa->out = (uintptr_t)outbuf;
		} else {
			a->end = a->start + (pick(300) + 1) * psz;
		}
		return p;
	}

	switch (cmd) {
	case MERGEMEM_IOC_API: {
		struct mergemem_api *a = (void *)p;

		a->api = pick(3) ? MERGEMEM_API : rnd();
		a->features = pick(2) ? pick(8) : rnd();
		a->reserved = pick(3) ? 0 : rnd();
		break;
	}
	case MERGEMEM_IOC_PAGEINFO: {
		struct mergemem_pageinfo_args *a = (void *)p;

		a->mem_fd = any_fd();
		a->flags = pick(8) ? 0 : rnd();
		a->start = any_addr();
		a->npages = any_npages();
		a->out = out_addr();
		break;
	}
	case MERGEMEM_IOC_MERGE:
	case MERGEMEM_IOC_UNMERGE:
	case MERGEMEM_IOC_THP: {
		/* struct mergemem_thp_args begins as this one does. */
		struct mergemem_range_args *a = (void *)p;

		a->mem_fd = any_fd();
		a->flags = pick(8) ? 0 : rnd();
		a->start = any_addr();
		a->end = pick(2) ? a->start + (pick(300) + pick(2)) * psz :
				   any_addr();
		break;
	}
	}
	return p;
}

static unsigned int any_cmd(void)
{
	static const unsigned int valid[] = {
		MERGEMEM_IOC_API, MERGEMEM_IOC_PAGEINFO, MERGEMEM_IOC_MERGE,
		MERGEMEM_IOC_UNMERGE, MERGEMEM_IOC_THP,
	};
	unsigned int c = valid[pick(5)];

	switch (pick(10)) {
	case 0: /* wrong size */
		return _IOC(_IOC_DIR(c), _IOC_TYPE(c), _IOC_NR(c), pick(64));
	case 1: /* wrong direction */
		return _IOC(pick(4), _IOC_TYPE(c), _IOC_NR(c), _IOC_SIZE(c));
	case 2: /* our magic, any number */
		return _IOC(pick(4), MERGEMEM_IOC_MAGIC, pick(256), pick(128));
	case 3:
		return (unsigned int)rnd();
	default:
		return c;
	}
}

static void *any_argp(unsigned int cmd)
{
	switch (pick(10)) {
	case 0:
		return NULL;
	case 1:
		return (void *)(uintptr_t)kernel_addrs[pick(6)];
	case 2:
		return unmapped;
	case 3:
		return ro_page;	/* readable: fails only on write-back */
	case 4:
		return edge + psz - pick(_IOC_SIZE(cmd) + 1);
	default:
		return make_arg(cmd);
	}
}

static int errno_ok(int e)
{
	switch (e) {
	case EINVAL: case EFAULT: case ENOTTY: case EBADF: case EBADFD:
	case ESRCH: case E2BIG: case EINTR: case ENOMEM:
		return 1;
	}
	return 0;
}

static void victim_main(void)
{
	uint8_t *r = mmap(NULL, 256 * psz, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t x = getpid();

	if (r == MAP_FAILED)
		_exit(1);
	for (;;) {
		size_t i = (x = x * 6364136223846793005ULL + 1) >> 56;

		r[i * psz] = x;
		if ((x >> 40 & 15) == 0)
			madvise(r + i * psz, psz, MADV_DONTNEED);
		if ((x >> 40 & 255) == 1) {
			munmap(r + i * psz, psz);
			mmap(r + i * psz, psz, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		}
		if ((x >> 44 & 1023) == 2)
			usleep(1000);
		/* Die on its own now and then, possibly mid-ioctl. */
		if ((x >> 20 & 0x3ffff) == 3)
			_exit(0);
	}
}

/* (Re)spawn the victim; its old mem fd keeps pointing at a dead mm. */
static void victim_spawn(void)
{
	int p[2];
	char path[64];
	uintptr_t base = 0;

	if (victim > 0 && victim_owner == getpid()) {
		kill(victim, SIGKILL);
		waitpid(victim, NULL, 0);
	}
	/* The old victim's fd now names a dead mm: ESRCH territory. */
	if (stale_mem >= 0)
		close(stale_mem);
	stale_mem = victim_mem;
	victim_mem = -1;
	if (pipe(p))
		return;
	victim = fork();
	if (victim == 0) {
		uint8_t *r;

		close(p[0]);
		r = mmap(NULL, 256 * psz, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		base = (uintptr_t)r;
		if (write(p[1], &base, sizeof(base)) != sizeof(base))
			_exit(1);
		munmap(r, 256 * psz);
		victim_main();
	}
	victim_owner = getpid();
	close(p[1]);
	if (read(p[0], &base, sizeof(base)) == sizeof(base))
		victim_base = base;
	close(p[0]);
	snprintf(path, sizeof(path), "/proc/%d/mem", victim);
	victim_mem = open(path, O_RDWR);
}

/* Result counters of a batch: success, then per errno (< 256). */
static unsigned int stat_ok, stat_err[256];

static void print_stats(int batch)
{
	char line[512];
	int e, n;

	n = snprintf(line, sizeof(line), "# batch %d: ok %u", batch, stat_ok);
	for (e = 1; e < 256; e++)
		if (stat_err[e] && n < (int)sizeof(line) - 32)
			n += snprintf(line + n, sizeof(line) - n, ", %s %u",
				      strerrorname_np(e) ? strerrorname_np(e) :
							   "?",
				      stat_err[e]);
	printf("%s\n", line);
	fflush(stdout);
}

static int run_batch(int batch, int calls)
{
	struct mergemem_api api = { .api = MERGEMEM_API };
	int i, bad = 0;

	dev_fd = open("/dev/mergemem", O_RDWR);
	if (dev_fd < 0) {
		perror("open /dev/mergemem");
		return 2;
	}
	/* Now and then a batch without a handshake. */
	if (pick(8) && ioctl(dev_fd, MERGEMEM_IOC_API, &api)) {
		perror("handshake");
		return 2;
	}
	for (i = 0; i < calls; i++) {
		unsigned int cmd = any_cmd();
		void *argp = any_argp(cmd);
		int rc, e;

		if (pick(2000) == 0)
			victim_spawn();
		errno = 0;
		rc = ioctl(dev_fd, cmd, argp);
		e = errno;
		if (rc == 0)
			stat_ok++;
		else if (e > 0 && e < 256)
			stat_err[e]++;
		if (rc == 0 || (rc == -1 && errno_ok(e)))
			continue;
		/* Foreign numbers may reach the VFS's generic ioctls. */
		if (rc == -1 && _IOC_TYPE(cmd) != MERGEMEM_IOC_MAGIC)
			continue;
		if (bad++ < 10)
			printf("# unexpected: cmd %#x argp %p -> rc %d errno %d (%s)\n",
			       cmd, argp, rc, e, strerror(e));
	}
	close(dev_fd);
	if (victim > 0 && victim_owner == getpid()) {
		kill(victim, SIGKILL);
		waitpid(victim, NULL, 0);
	}
	print_stats(batch);
	return bad ? 1 : 0;
}

/*
 * Targets dying mid-call: a process with 32 MiB of touched memory is killed
 * after a random delay while we describe, merge and unmerge it.
 */
static int race_phase(int rounds)
{
	struct mergemem_api api = { .api = MERGEMEM_API };
	size_t len = 8192 * psz;
	int r, bad = 0, dev, okc = 0, srch = 0;

	dev = open("/dev/mergemem", O_RDWR);
	if (dev < 0 || ioctl(dev, MERGEMEM_IOC_API, &api))
		return 1;
	for (r = 0; r < rounds; r++) {
		int p[2], mem, i;
		uintptr_t base = 0;
		char path[64];
		pid_t t, killer;

		if (pipe(p))
			return 1;
		t = fork();
		if (t == 0) {
			uint8_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
					  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

			memset(m, 0x11, len);
			base = (uintptr_t)m;
			if (write(p[1], &base, sizeof(base)) != sizeof(base))
				_exit(1);
			for (;;)
				pause();
		}
		if (read(p[0], &base, sizeof(base)) != sizeof(base))
			return 1;
		close(p[0]);
		close(p[1]);
		snprintf(path, sizeof(path), "/proc/%d/mem", t);
		mem = open(path, O_RDWR);
		killer = fork();
		if (killer == 0) {
			usleep(pick(200000));
			kill(t, SIGKILL);
			_exit(0);
		}
		for (i = 0; i < 40; i++) {
			struct mergemem_pageinfo_args pa = {
				.mem_fd = mem, .start = base,
				.npages = MERGEMEM_PAGEINFO_MAX,
				.out = (uintptr_t)outbuf,
			};
			struct mergemem_range_args ra = {
				.mem_fd = mem, .start = base, .end = base + len,
			};
			int rc;

			struct mergemem_thp_args ta = {
				.mem_fd = mem, .start = base, .end = base + len,
				.flags = i & 4 ? MERGEMEM_THP_RESTORE :
						 MERGEMEM_THP_NOHUGEPAGE,
			};

			switch (i % 4) {
			case 0:
				rc = ioctl(dev, MERGEMEM_IOC_PAGEINFO, &pa);
				break;
			case 1:
				rc = ioctl(dev, MERGEMEM_IOC_MERGE, &ra);
				break;
			case 2:
				rc = ioctl(dev, MERGEMEM_IOC_THP, &ta);
				break;
			default:
				rc = ioctl(dev, MERGEMEM_IOC_UNMERGE, &ra);
				break;
			}
			if (rc == 0)
				okc++;
			else if (errno == ESRCH)
				srch++;
			else if (errno != EINTR && bad++ < 10)
				printf("# race: op %d -> errno %d (%s)\n",
				       i % 3, errno, strerror(errno));
		}
		waitpid(killer, NULL, 0);
		waitpid(t, NULL, 0);
		close(mem);
	}
	close(dev);
	printf("# race: %d rounds, %d calls ok, %d ESRCH\n", rounds, okc, srch);
	return bad != 0;
}

static void *map(int prot)
{
	void *p = mmap(NULL, psz, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(2);
	}
	return p;
}

int main(int argc, char **argv)
{
	uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) :
				   (uint64_t)time(NULL) ^ getpid();
	long calls = argc > 2 ? strtol(argv[2], NULL, 0) : 100000;
	int batch, nbatches, failed = 0;
	long done = 0;

	psz = sysconf(_SC_PAGESIZE);
	printf("# fuzz seed %llu calls %ld\n", (unsigned long long)seed, calls);
	fflush(stdout);

	argbuf = mmap(NULL, 2 * psz, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	outbuf = mmap(NULL, (OUT_ENTRIES + 8) * sizeof(*outbuf),
		      PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		      -1, 0);
	if (argbuf == MAP_FAILED || outbuf == MAP_FAILED)
		return 2;
	ro_page = map(PROT_READ);
	none_page = map(PROT_NONE);
	unmapped = map(PROT_READ);
	munmap(unmapped, psz);
	edge = mmap(NULL, 2 * psz, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap(edge + psz, psz);
	dense = mmap(NULL, 64 * psz, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(dense, 0x5a, 32 * psz);
	self_mem = open("/proc/self/mem", O_RDWR);
	closed_fd = open("/dev/null", O_RDONLY);
	close(closed_fd);

	nbatches = (calls + BATCH - 1) / BATCH;
	for (batch = 0; batch < nbatches; batch++) {
		int n = calls - done < BATCH ? calls - done : BATCH;
		int st;
		pid_t pid;

		rng = seed * 0x9E3779B97F4A7C15ULL + batch + 1;
		victim_spawn();
		pid = fork();
		if (pid == 0)
			_exit(run_batch(batch, n));
		waitpid(pid, &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st)) {
			printf("# batch %d (seed %llu) failed: status %#x\n",
			       batch, (unsigned long long)seed, st);
			failed++;
		}
		done += n;
	}
	if (victim > 0) {
		kill(victim, SIGKILL);
		waitpid(victim, NULL, 0);
	}
	rng = seed;
	if (race_phase(20)) {
		printf("# race phase failed\n");
		failed++;
	}
	printf("%s - fuzz: %ld calls in %d batches, seed %llu%s\n",
	       failed ? "not ok" : "ok", done, nbatches,
	       (unsigned long long)seed, failed ? ", batches failed" : "");
	return failed ? 1 : 0;
}
