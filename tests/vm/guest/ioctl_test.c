// SPDX-License-Identifier: GPL-2.0
/*
 * ioctl_test: functional test of /dev/mergemem against worker processes.
 *
 * Run as root in the test VM with the module loaded. Prints one line per
 * check ("ok - name" / "not ok - name: detail") and exits 1 on any failure.
 * It changes the KSM knobs in /sys/kernel/mm/ksm for a burst and restores
 * them afterwards.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/mergemem.h>

#define ALL_FEATURES (MERGEMEM_FEATURE_PAGEINFO | MERGEMEM_FEATURE_MERGE | \
		      MERGEMEM_FEATURE_UNMERGE | \
		      MERGEMEM_FEATURE_PAGEINFO_UNTOUCHED | MERGEMEM_FEATURE_THP)

/* Worker layout, in pages. */
#define N_SAME	64	/* identical content, in every worker */
#define M_UNIQ	32	/* content unique per worker and page */
#define Z_ZERO	16	/* written with zeroes */
#define R_READ	8	/* only read: mapped to the shared zero page */
#define U_NONE	8	/* never touched */
#define D_DROP	8	/* written, then MADV_DONTNEED */
#define HOLE	4	/* unmapped pages after the region */
#define TOTAL	(N_SAME + M_UNIQ + Z_ZERO + R_READ + U_NONE + D_DROP)
#define OFF_M	N_SAME
#define OFF_Z	(OFF_M + M_UNIQ)
#define OFF_R	(OFF_Z + Z_ZERO)
#define OFF_U	(OFF_R + R_READ)
#define OFF_D	(OFF_U + U_NONE)
#define SHARED_PAGES 4
#define NWORKERS 2
#define KSM_EXPECT (N_SAME + Z_ZERO)

static long psz;
static int failures;

static void ok(const char *name)
{
	printf("ok - %s\n", name);
	fflush(stdout);
}

static void notok(const char *name, const char *fmt, ...)
{
	va_list ap;

	printf("not ok - %s: ", name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	failures++;
}

/* Expect ioctl-style result: rc == 0 if want_errno == 0, else -1/errno. */
static int expect(const char *name, int rc, int err, int want_errno)
{
	if (want_errno == 0 && rc == 0) {
		ok(name);
		return 1;
	}
	if (want_errno && rc == -1 && err == want_errno) {
		ok(name);
		return 1;
	}
	notok(name, "rc=%d errno=%s, expected %s", rc, strerror(err),
	      want_errno ? strerror(want_errno) : "success");
	return 0;
}

/* Evaluates @call before reading errno. */
#define EXPECT(name, call, want) \
	({ \
		int _rc = (call); \
		int _e = errno; \
		expect(name, _rc, _e, want); \
	})

/* ---- xxh64, to check the module's hashes ------------------------------- */

#define P1 11400714785074694791ULL
#define P2 14029467366897019727ULL
#define P3 1609587929392839161ULL
#define P4 9650029242287828579ULL
#define P5 2870177450012600261ULL

static uint64_t rotl(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint64_t xround(uint64_t acc, uint64_t in)
{
	acc += in * P2;
	acc = rotl(acc, 31);
	return acc * P1;
}

static uint64_t xmerge(uint64_t acc, uint64_t val)
{
	acc ^= xround(0, val);
	return acc * P1 + P4;
}

static uint64_t xxh64(const void *in, size_t len, uint64_t seed)
{
	const uint8_t *p = in, *end = p + len;
	uint64_t h;

	if (len >= 32) {
		const uint8_t *limit = end - 32;
		uint64_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed,
			 v4 = seed - P1;

		do {
			v1 = xround(v1, rd64(p));
			v2 = xround(v2, rd64(p + 8));
			v3 = xround(v3, rd64(p + 16));
			v4 = xround(v4, rd64(p + 24));
			p += 32;
		} while (p <= limit);
		h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
		h = xmerge(h, v1);
		h = xmerge(h, v2);
		h = xmerge(h, v3);
		h = xmerge(h, v4);
	} else {
		h = seed + P5;
	}
	h += len;
	while (p + 8 <= end) {
		h ^= xround(0, rd64(p));
		h = rotl(h, 27) * P1 + P4;
		p += 8;
	}
	if (p + 4 <= end) {
		h ^= (uint64_t)rd32(p) * P1;
		h = rotl(h, 23) * P2 + P3;
		p += 4;
	}
	while (p < end) {
		h ^= *p * P5;
		h = rotl(h, 11) * P1;
		p++;
	}
	h ^= h >> 33;
	h *= P2;
	h ^= h >> 29;
	h *= P3;
	h ^= h >> 32;
	return h;
}

/* ---- page contents ------------------------------------------------------ */

static void fill(uint8_t *p, uint64_t seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;
	long i;

	for (i = 0; i < psz; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(p + i, &x, 8);
	}
}

#define SEED_SAME 0xABCDEFULL
static uint64_t seed_uniq(int w, int i)
{
	return 1000003ULL * (w + 1) + i + 7;
}

/* Worker content check; 1 if intact. */
static int content_ok(uint8_t *base, int w)
{
	uint8_t *want = malloc(psz);
	int i, good = 1;

	fill(want, SEED_SAME);
	for (i = 0; i < N_SAME; i++)
		good &= !memcmp(base + i * psz, want, psz);
	for (i = 0; i < M_UNIQ; i++) {
		fill(want, seed_uniq(w, i));
		good &= !memcmp(base + (OFF_M + i) * psz, want, psz);
	}
	memset(want, 0, psz);
	for (i = 0; i < Z_ZERO + R_READ; i++)
		good &= !memcmp(base + (OFF_Z + i) * psz, want, psz);
	free(want);
	return good;
}

/* ---- workers ------------------------------------------------------------ */

struct worker {
	pid_t pid;
	int cmd;	/* write end: commands */
	int rsp;	/* read end: answers */
	uintptr_t base;
	uintptr_t shared;
	int memfd;
};

static void worker_main(int w, int cmd, int rsp)
{
	size_t len = (TOTAL + HOLE) * psz;
	uint8_t *base, *shared;
	volatile uint8_t sink = 0;
	uintptr_t addr[2];
	char c;
	int i;

	base = mmap(NULL, len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	shared = mmap(NULL, SHARED_PAGES * psz, PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED || shared == MAP_FAILED)
		_exit(2);
	munmap(base + TOTAL * psz, HOLE * psz);
	/* Exact page counts: no THP; also sets the VMA apart from others. */
	if (madvise(base, TOTAL * psz, MADV_NOHUGEPAGE))
		_exit(3);
	for (i = 0; i < N_SAME; i++)
		fill(base + i * psz, SEED_SAME);
	for (i = 0; i < M_UNIQ; i++)
		fill(base + (OFF_M + i) * psz, seed_uniq(w, i));
	for (i = 0; i < Z_ZERO; i++)
		memset(base + (OFF_Z + i) * psz, 0, psz);
	for (i = 0; i < R_READ; i++)
		sink += base[(OFF_R + i) * psz];
	for (i = 0; i < D_DROP; i++)
		fill(base + (OFF_D + i) * psz, 99);
	madvise(base + OFF_D * psz, D_DROP * psz, MADV_DONTNEED);
	memset(shared, 1, SHARED_PAGES * psz);
	(void)sink;

	addr[0] = (uintptr_t)base;
	addr[1] = (uintptr_t)shared;
	if (write(rsp, addr, sizeof(addr)) != sizeof(addr))
		_exit(4);
	while (read(cmd, &c, 1) == 1) {
		if (c == 'q')
			break;
		if (c == 'c') {
			c = content_ok(base, w) ? '1' : '0';
			if (write(rsp, &c, 1) != 1)
				_exit(5);
		}
	}
	_exit(0);
}

static int worker_start(struct worker *wk, int w)
{
	int cmd[2], rsp[2];
	uintptr_t addr[2];
	char path[64];

	if (pipe(cmd) || pipe(rsp))
		return -1;
	wk->pid = fork();
	if (wk->pid < 0)
		return -1;
	if (wk->pid == 0) {
		close(cmd[1]);
		close(rsp[0]);
		worker_main(w, cmd[0], rsp[1]);
	}
	close(cmd[0]);
	close(rsp[1]);
	wk->cmd = cmd[1];
	wk->rsp = rsp[0];
	if (read(wk->rsp, addr, sizeof(addr)) != sizeof(addr))
		return -1;
	wk->base = addr[0];
	wk->shared = addr[1];
	snprintf(path, sizeof(path), "/proc/%d/mem", wk->pid);
	/* Open for writing: MERGE and UNMERGE require it. */
	wk->memfd = open(path, O_RDWR | O_CLOEXEC);
	return wk->memfd < 0 ? -1 : 0;
}

static int worker_check(struct worker *wk)
{
	char c = 'c';

	if (write(wk->cmd, &c, 1) != 1 || read(wk->rsp, &c, 1) != 1)
		return 0;
	return c == '1';
}

static void worker_stop(struct worker *wk)
{
	char c = 'q';

	if (write(wk->cmd, &c, 1) != 1)
		kill(wk->pid, SIGKILL);
	waitpid(wk->pid, NULL, 0);
	close(wk->cmd);
	close(wk->rsp);
	close(wk->memfd);
}

/* ---- ioctl wrappers ------------------------------------------------------ */

static int open_dev(void)
{
	int fd = open("/dev/mergemem", O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		printf("Bail out! open /dev/mergemem: %s\n", strerror(errno));
		exit(2);
	}
	return fd;
}

static int handshake(int dev)
{
	struct mergemem_api api = { .api = MERGEMEM_API,
				    .features = ALL_FEATURES };

	return ioctl(dev, MERGEMEM_IOC_API, &api);
}

static int pageinfo(int dev, int memfd, uintptr_t start, uint64_t npages,
		    struct mergemem_pageinfo *out, uint64_t *done)
{
	struct mergemem_pageinfo_args a = {
		.mem_fd = memfd, .start = start, .npages = npages,
		.out = (uintptr_t)out, .done = 0xdeadbeef,
	};
	int rc = ioctl(dev, MERGEMEM_IOC_PAGEINFO, &a);

	if (done)
		*done = a.done;
	return rc;
}

static int range(int dev, unsigned long cmd, int memfd, uintptr_t start,
		 uintptr_t end, struct mergemem_range_args *out)
{
	struct mergemem_range_args a = {
		.mem_fd = memfd, .start = start, .end = end,
		.vmas_changed = 77, .bytes_changed = 77,
		.vmas_unchanged = 77, .vmas_skipped = 77,
	};
	int rc = ioctl(dev, cmd, &a);

	if (out)
		*out = a;
	return rc;
}

static int thp(int dev, int memfd, uintptr_t start, uintptr_t end,
	       uint32_t flags, struct mergemem_thp_args *out)
{
	struct mergemem_thp_args a = {
		.mem_fd = memfd, .flags = flags, .start = start, .end = end,
		.vmas_changed = 77, .vmas_hugepage = 77,
		.vmas_unchanged = 77, .vmas_skipped = 77,
	};
	int rc = ioctl(dev, MERGEMEM_IOC_THP, &a);

	if (out)
		*out = a;
	return rc;
}

/*
 * The line of @pid's smaps entry for the mapping at @base that starts with
 * @key ("VmFlags:", "Referenced:"), into @line; 0 when found.
 */
static int smaps_line(pid_t pid, uintptr_t base, const char *key,
		      char *line, size_t len)
{
	char path[64];
	int in = 0, rc = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, len, f)) {
		unsigned long lo, hi;
		char perms[5];

		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) == 3) {
			in = lo == base;
		} else if (in && !strncmp(line, key, strlen(key))) {
			rc = 0;
			break;
		}
	}
	fclose(f);
	return rc;
}

/* 1 when @flag ("nh", "hg", "mg") is in the VmFlags of @pid's VMA at @base. */
static int vma_has_flag(pid_t pid, uintptr_t base, const char *flag)
{
	char line[512], want[8];

	if (smaps_line(pid, base, "VmFlags:", line, sizeof(line)))
		return -1;
	snprintf(want, sizeof(want), " %s", flag);
	return strstr(line, want) != NULL;
}

/* ---- KSM knobs ------------------------------------------------------------ */

static const char *const knobs[] = {
	"run", "pages_to_scan", "sleep_millisecs", "use_zero_pages",
	"max_page_sharing",
};
#define NKNOBS (sizeof(knobs) / sizeof(knobs[0]))
static char saved[NKNOBS][32];

static int knob_rw(const char *name, char *buf, size_t len, int wr)
{
	char path[128];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/sys/kernel/mm/ksm/%s", name);
	fd = open(path, wr ? O_WRONLY : O_RDONLY);
	if (fd < 0)
		return -1;
	if (wr) {
		n = write(fd, buf, strlen(buf));
	} else {
		n = read(fd, buf, len - 1);
		if (n >= 0)
			buf[n] = 0;
	}
	close(fd);
	return n < 0 ? -1 : 0;
}

static void knob_set(const char *name, const char *val)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%s", val);
	if (knob_rw(name, buf, sizeof(buf), 1))
		printf("# cannot set ksm/%s=%s: %s\n", name, val,
		       strerror(errno));
}

static void knobs_save(void)
{
	size_t i;

	for (i = 0; i < NKNOBS; i++)
		if (knob_rw(knobs[i], saved[i], sizeof(saved[i]), 0))
			saved[i][0] = 0;
}

static void knobs_restore(void)
{
	size_t i;

	/* run last, and only stop ksmd after the others are back. */
	for (i = NKNOBS; i-- > 0;)
		if (saved[i][0] && strcmp(knobs[i], "max_page_sharing"))
			knob_set(knobs[i], saved[i]);
}

static long merging_pages(pid_t pid)
{
	char path[64], buf[32];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/ksm_merging_pages", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fgets(buf, sizeof(buf), f))
		v = strtol(buf, NULL, 10);
	fclose(f);
	return v;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * Run ksmd flat out until every worker has @want merging pages (up to
 * 240 s: a bound against a hang, generous for TCG on a slow machine).
 */
static int ksm_burst(struct worker *wk, int n, long want, double *secs)
{
	double t0 = now();
	int i, all;

	knob_set("pages_to_scan", "10000");
	knob_set("sleep_millisecs", "0");
	knob_set("run", "1");
	do {
		all = 1;
		for (i = 0; i < n; i++)
			all &= merging_pages(wk[i].pid) == want;
		if (all)
			break;
		usleep(50000);
	} while (now() - t0 < 240);
	*secs = now() - t0;
	knobs_restore();
	return all;
}

/* ---- checks --------------------------------------------------------------- */

static void test_handshake(void)
{
	struct mergemem_api api;
	struct mergemem_range_args ra;
	int dev = open_dev();
	struct stat st;

	if (stat("/dev/mergemem", &st) == 0 && (st.st_mode & 0777) == 0666)
		ok("device mode 0666");
	else
		notok("device mode 0666", "mode %o", st.st_mode & 0777);

	EXPECT("pageinfo before handshake -> EINVAL",
	       pageinfo(dev, -1, 0, 1, NULL, NULL), EINVAL);
	EXPECT("merge before handshake -> EINVAL",
	       range(dev, MERGEMEM_IOC_MERGE, -1, 0, 4096, NULL),
	       EINVAL);
	EXPECT("unmerge before handshake -> EINVAL",
	       range(dev, MERGEMEM_IOC_UNMERGE, -1, 0, 4096, NULL),
	       EINVAL);
	EXPECT("unknown cmd -> ENOTTY", ioctl(dev, _IO(MERGEMEM_IOC_MAGIC, 9)), ENOTTY);
	EXPECT("wrong size -> ENOTTY",
	       ioctl(dev, _IOWR(MERGEMEM_IOC_MAGIC, 0, struct mergemem_pageinfo),
		     &api), ENOTTY);
	EXPECT("api NULL -> EFAULT", ioctl(dev, MERGEMEM_IOC_API, NULL),
	       EFAULT);

	memset(&api, 0, sizeof(api));
	api.api = MERGEMEM_API + 1;
	EXPECT("bad api -> EINVAL", ioctl(dev, MERGEMEM_IOC_API, &api),
	       EINVAL);
	if (api.api == MERGEMEM_API && api.features == ALL_FEATURES)
		ok("bad api writes back module api and features");
	else
		notok("bad api writes back module api and features",
		      "api=%llu features=%#llx", (unsigned long long)api.api,
		      (unsigned long long)api.features);

	memset(&api, 0, sizeof(api));
	api.api = MERGEMEM_API;
	api.features = 1ULL << 40;
	EXPECT("unknown feature -> EINVAL", ioctl(dev, MERGEMEM_IOC_API, &api), EINVAL);
	if (api.features == ALL_FEATURES)
		ok("unknown feature writes back supported set");
	else
		notok("unknown feature writes back supported set",
		      "features=%#llx", (unsigned long long)api.features);

	memset(&api, 0, sizeof(api));
	api.api = MERGEMEM_API;
	api.reserved = 1;
	EXPECT("reserved != 0 -> EINVAL", ioctl(dev, MERGEMEM_IOC_API, &api), EINVAL);
	EXPECT("still no handshake after failures",
	       pageinfo(dev, -1, 0, 1, NULL, NULL), EINVAL);

	memset(&api, 0, sizeof(api));
	api.api = MERGEMEM_API;
	api.features = ALL_FEATURES;
	EXPECT("handshake", ioctl(dev, MERGEMEM_IOC_API, &api), 0);
	if (api.api == MERGEMEM_API && api.features == ALL_FEATURES &&
	    api.ioctls == 0x1f && api.module_version == 0x000100 &&
	    api.reserved == 0)
		ok("handshake answer");
	else
		notok("handshake answer",
		      "api=%llu features=%#llx ioctls=%#llx version=%#x",
		      (unsigned long long)api.api,
		      (unsigned long long)api.features,
		      (unsigned long long)api.ioctls, api.module_version);
	memset(&api, 0, sizeof(api));
	api.api = MERGEMEM_API;
	EXPECT("handshake with no features required",
	       ioctl(dev, MERGEMEM_IOC_API, &api), 0);
	EXPECT("after handshake: bad fd -> EBADF",
	       range(dev, MERGEMEM_IOC_MERGE, -1, 0, 4096, &ra), EBADF);
	close(dev);

	dev = open_dev();
	EXPECT("handshake is per open file",
	       pageinfo(dev, -1, 0, 1, NULL, NULL), EINVAL);
	close(dev);
}

static void test_fds(int dev, struct worker *wk)
{
	struct mergemem_pageinfo pi[1];
	int fd, p[2];
	char path[64];
	pid_t pid;

	fd = open("/dev/null", O_RDONLY);
	EXPECT("/dev/null -> EBADFD", pageinfo(dev, fd, 0, 1, pi, NULL), EBADFD);
	EXPECT("merge /dev/null -> EBADFD",
	       range(dev, MERGEMEM_IOC_MERGE, fd, 0, 4096, NULL),
	       EBADFD);
	close(fd);
	EXPECT("closed fd -> EBADF", pageinfo(dev, fd, 0, 1, pi, NULL),
	       EBADF);
	EXPECT("fd -1 -> EBADF", pageinfo(dev, -1, 0, 1, pi, NULL),
	       EBADF);
	EXPECT("fd 1000000 -> EBADF", pageinfo(dev, 1000000, 0, 1, pi, NULL), EBADF);
	if (pipe(p) == 0) {
		EXPECT("pipe -> EBADFD", pageinfo(dev, p[0], 0, 1, pi, NULL), EBADFD);
		close(p[0]);
		close(p[1]);
	}
	snprintf(path, sizeof(path), "/proc/%d/maps", wk->pid);
	fd = open(path, O_RDONLY);
	EXPECT("/proc/PID/maps -> EBADFD", pageinfo(dev, fd, 0, 1, pi, NULL), EBADFD);
	close(fd);
	fd = open("/proc/self/mem", O_PATH);
	EXPECT("O_PATH /proc/self/mem -> EBADF",
	       pageinfo(dev, fd, 0, 1, pi, NULL), EBADF);
	close(fd);

	/* A reaped process's mem fd. */
	pid = fork();
	if (pid == 0) {
		pause();
		_exit(0);
	}
	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	fd = open(path, O_RDWR);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	EXPECT("reaped process -> ESRCH", pageinfo(dev, fd, 0, 1, pi, NULL), ESRCH);
	EXPECT("merge reaped process -> ESRCH",
	       range(dev, MERGEMEM_IOC_MERGE, fd, 0, 4096, NULL), ESRCH);
	close(fd);

	/*
	 * An exec'd process: its old mm is gone. Driven by two pipes, not
	 * sleeps, whatever the machine's speed: the child execs only once the
	 * parent has opened its mem ("go" on @go), and the parent reads EOF
	 * on @execd, whose write end the child holds close-on-exec, only once
	 * the exec has replaced (and released) the old mm.
	 */
	{
		int go[2], execd[2];
		char c;

		if (pipe(go) || pipe2(execd, O_CLOEXEC)) {
			notok("exec'd process -> ESRCH", "pipe: %s", strerror(errno));
			return;
		}
		pid = fork();
		if (pid == 0) {
			close(go[1]);
			close(execd[0]);
			if (read(go[0], &c, 1) != 1)
				_exit(1);
			execl("/bin/sleep", "sleep", "3600", (char *)NULL);
			_exit(1);
		}
		close(go[0]);
		close(execd[1]);
		snprintf(path, sizeof(path), "/proc/%d/mem", pid);
		fd = open(path, O_RDONLY);
		if (write(go[1], "g", 1) != 1)
			fd = -1;
		close(go[1]);
		while (read(execd[0], &c, 1) < 0 && errno == EINTR)
			;
		close(execd[0]);
		EXPECT("exec'd process -> ESRCH",
		       pageinfo(dev, fd, 0, 1, pi, NULL), ESRCH);
		if (fd >= 0)
			close(fd);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}

	/* The fd's open mode: read for PAGEINFO, write for MERGE/UNMERGE. */
	snprintf(path, sizeof(path), "/proc/%d/mem", wk->pid);
	fd = open(path, O_RDONLY);
	EXPECT("O_RDONLY mem fd: merge -> EBADF",
	       range(dev, MERGEMEM_IOC_MERGE, fd, wk->base,
		     wk->base + psz, NULL), EBADF);
	EXPECT("O_RDONLY mem fd: unmerge -> EBADF",
	       range(dev, MERGEMEM_IOC_UNMERGE, fd, wk->base,
		     wk->base + psz, NULL), EBADF);
	EXPECT("O_RDONLY mem fd: pageinfo ok",
	       pageinfo(dev, fd, wk->base, 1, pi, NULL), 0);
	close(fd);
	fd = open(path, O_WRONLY);
	EXPECT("O_WRONLY mem fd: pageinfo -> EBADF",
	       pageinfo(dev, fd, wk->base, 1, pi, NULL), EBADF);
	close(fd);
	fd = open(path, O_RDWR);
	EXPECT("O_RDWR mem fd: pageinfo ok",
	       pageinfo(dev, fd, wk->base, 1, pi, NULL), 0);
	close(fd);

	/* Kernel thread (kthreadd, PID 2): no mm. */
	fd = open("/proc/2/mem", O_RDONLY);
	if (fd >= 0) {
		EXPECT("kernel thread mem -> ESRCH",
		       pageinfo(dev, fd, 0, 1, pi, NULL), ESRCH);
		close(fd);
	}
}

static void test_unprivileged(struct worker *wk)
{
	char path[64];
	int st, fd, dev;
	pid_t pid;

	pid = fork();
	if (pid == 0) {
		struct mergemem_pageinfo pi[4];
		static char buf[4096 * 4] __attribute__((aligned(4096)));

		if (setgid(65534) || setuid(65534))
			_exit(10);
		/* Changing uid made us non-dumpable: /proc/self would be root's. */
		prctl(PR_SET_DUMPABLE, 1);
		snprintf(path, sizeof(path), "/proc/%d/mem", wk->pid);
		fd = open(path, O_RDONLY);
		if (fd >= 0)
			_exit(11);
		if (errno != EACCES)
			_exit(12);
		dev = open("/dev/mergemem", O_RDWR);
		if (dev < 0)
			_exit(13);
		if (handshake(dev))
			_exit(14);
		fd = open("/proc/self/mem", O_RDONLY);
		if (fd < 0)
			_exit(15);
		memset(buf, 1, sizeof(buf));
		if (pageinfo(dev, fd, (uintptr_t)buf, 4, pi, NULL))
			_exit(16);
		if (!(pi[0].flags & MERGEMEM_PI_PRESENT))
			_exit(17);
		_exit(0);
	}
	waitpid(pid, &st, 0);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		ok("nobody cannot open root's /proc/PID/mem (EACCES), can use its own");
	else
		notok("nobody cannot open root's /proc/PID/mem (EACCES), can use its own",
		      "child status %#x (11: open succeeded, 12: not EACCES, 13+: own use failed)",
		      st);
}

static void test_pageinfo_args(int dev)
{
	static struct mergemem_pageinfo big[MERGEMEM_PAGEINFO_MAX];
	struct mergemem_pageinfo_args a;
	int self = open("/proc/self/mem", O_RDONLY);
	uint8_t *buf, *outp;
	uint64_t done;
	int i, bad;

	buf = mmap(NULL, 8 * psz, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(buf, 3, 8 * psz);

	EXPECT("npages 0 -> EINVAL", pageinfo(dev, self, 0, 0, big, NULL), EINVAL);
	EXPECT("npages MAX+1 -> E2BIG",
	       pageinfo(dev, self, 0, MERGEMEM_PAGEINFO_MAX + 1, big, NULL), E2BIG);
	EXPECT("npages 2^63 -> E2BIG",
	       pageinfo(dev, self, 0, 1ULL << 63, big, NULL), E2BIG);
	EXPECT("unaligned start -> EINVAL",
	       pageinfo(dev, self, (uintptr_t)buf + 1, 1, big, NULL),
	       EINVAL);
	EXPECT("wrapping range -> EINVAL",
	       pageinfo(dev, self, -2 * psz, 4, big, NULL), EINVAL);
	EXPECT("range ending at 2^64 -> EINVAL",
	       pageinfo(dev, self, -2 * psz, 2, big, NULL), EINVAL);
	memset(&a, 0, sizeof(a));
	a.mem_fd = self;
	a.flags = 1;
	a.npages = 1;
	a.out = (uintptr_t)big;
	EXPECT("flags != 0 -> EINVAL", ioctl(dev, MERGEMEM_IOC_PAGEINFO, &a), EINVAL);
	EXPECT("args NULL -> EFAULT", ioctl(dev, MERGEMEM_IOC_PAGEINFO, NULL), EFAULT);
	EXPECT("out NULL -> EFAULT",
	       pageinfo(dev, self, (uintptr_t)buf, 1, NULL, &done),
	       EFAULT);
	if (done == 0)
		ok("out NULL: done 0");
	else
		notok("out NULL: done 0", "done=%llu", (unsigned long long)done);

	/* out: 1 writable page, then a PROT_NONE page. */
	outp = mmap(NULL, 2 * psz, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	mprotect(outp + psz, psz, PROT_NONE);
	EXPECT("partly writable out -> EFAULT",
	       pageinfo(dev, self, 0x10000, 1000,
			(struct mergemem_pageinfo *)outp, &done), EFAULT);
	if (done == (uint64_t)psz / sizeof(struct mergemem_pageinfo))
		ok("partly writable out: done counts written entries");
	else
		notok("partly writable out: done counts written entries",
		      "done=%llu", (unsigned long long)done);
	munmap(outp, 2 * psz);

	/* Beyond TASK_SIZE_MAX (2^47 - 4 KiB, or 2^56 - 4 KiB with LA57). */
	EXPECT("kernel address range -> EINVAL",
	       pageinfo(dev, self, 0xffff888000000000ULL, 16, big, &done),
	       EINVAL);
	EXPECT("range ending at 2^56 -> EINVAL",
	       pageinfo(dev, self, (1ULL << 56) - psz, 1, big, &done),
	       EINVAL);
	EXPECT("range ending at 2^47 - 4 KiB: ok",
	       pageinfo(dev, self, (1ULL << 47) - 2 * psz, 1, big, &done), 0);
	if (done == 1 && big[0].flags == 0)
		ok("the top user page is absent");
	else
		notok("the top user page is absent", "done=%llu flags=%#x",
		      (unsigned long long)done, big[0].flags);

	/* Own buffer, 8 pages, as the range around it. */
	EXPECT("own memory", pageinfo(dev, self, (uintptr_t)buf, 8, big, &done), 0);
	for (i = 0, bad = 0; i < 8; i++)
		bad |= (big[i].flags & ~MERGEMEM_PI_THP) !=
		       (MERGEMEM_PI_PRESENT | MERGEMEM_PI_ANON |
			MERGEMEM_PI_HASHED) ||
		       big[i].hash != xxh64(buf, psz, 0) || big[i].reserved;
	if (!bad && done == 8)
		ok("own memory: flags and xxh64 match user-space xxh64");
	else
		notok("own memory: flags and xxh64 match user-space xxh64",
		      "flags=%#x hash=%#llx want %#llx", big[0].flags,
		      (unsigned long long)big[0].hash,
		      (unsigned long long)xxh64(buf, psz, 0));

	{
		double t0 = now();

		EXPECT("MAX pages over mostly unmapped space",
		       pageinfo(dev, self, 0, MERGEMEM_PAGEINFO_MAX, big,
				&done), 0);
		printf("# %d pages from 0 in %.3f s\n", MERGEMEM_PAGEINFO_MAX,
		       now() - t0);
		if (done != MERGEMEM_PAGEINFO_MAX)
			notok("MAX pages: done", "done=%llu",
			      (unsigned long long)done);
	}
	munmap(buf, 8 * psz);

	/*
	 * Three VMAs, every page written: readable, PROT_NONE (GUP refuses
	 * the whole VMA, which is skipped), readable again.
	 */
	buf = mmap(NULL, 12 * psz, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(buf, 7, 12 * psz);
	mprotect(buf + 4 * psz, 4 * psz, PROT_NONE);
	EXPECT("readable, PROT_NONE, readable VMAs",
	       pageinfo(dev, self, (uintptr_t)buf, 12, big, &done), 0);
	for (i = 0, bad = 0; i < 12; i++) {
		int none = i >= 4 && i < 8;

		bad |= none ? big[i].flags != 0 :
		       !(big[i].flags & MERGEMEM_PI_PRESENT) ||
		       big[i].hash != xxh64(buf, psz, 0);
	}
	if (!bad && done == 12)
		ok("a PROT_NONE VMA reports flags 0, its neighbours are hashed");
	else
		notok("a PROT_NONE VMA reports flags 0, its neighbours are hashed",
		      "flags %#x %#x %#x", big[0].flags, big[4].flags,
		      big[8].flags);
	munmap(buf, 12 * psz);
	close(self);
}

/* A THP in our own memory: every subpage flagged THP, hashed per 4 KiB. */
static void test_thp(int dev)
{
	static struct mergemem_pageinfo pi[512];
	size_t huge = 2UL << 20;
	int self = open("/proc/self/mem", O_RDONLY);
	uint8_t *raw, *p;
	int i, thp = 0, bad = 0;
	uint64_t done;

	raw = mmap(NULL, 2 * huge, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	p = (uint8_t *)(((uintptr_t)raw + huge - 1) & ~(huge - 1));
	madvise(p, huge, MADV_HUGEPAGE);
	for (i = 0; i < 512; i++)
		fill(p + i * psz, 5000 + i);
	EXPECT("thp pageinfo", pageinfo(dev, self, (uintptr_t)p, 512, pi,
					&done), 0);
	for (i = 0; i < 512; i++) {
		thp += !!(pi[i].flags & MERGEMEM_PI_THP);
		bad += (pi[i].flags & ~MERGEMEM_PI_THP) !=
		       (MERGEMEM_PI_PRESENT | MERGEMEM_PI_ANON |
			MERGEMEM_PI_HASHED) ||
		       pi[i].hash != xxh64(p + i * psz, psz, 0);
	}
	if (thp == 0)
		printf("ok - thp flags # SKIP no THP was allocated\n");
	else if (thp == 512 && !bad)
		ok("thp flags and per-page hashes");
	else
		notok("thp flags and per-page hashes", "%d THP, %d bad", thp,
		      bad);
	munmap(raw, 2 * huge);
	close(self);
}

/*
 * MERGEMEM_IOC_THP on a VMA of this process: NOHUGEPAGE sets nh and clears
 * hg (reporting that hg was there), a repeat changes nothing, RESTORE with
 * HUGEPAGE gives hg back, RESTORE alone leaves neither flag, which madvise()
 * cannot do; bad flags and a read-only fd are refused.
 */
static void test_thp_flags(int dev)
{
	size_t len = 4 << 20;
	int rw = open("/proc/self/mem", O_RDWR);
	int ro = open("/proc/self/mem", O_RDONLY);
	struct mergemem_thp_args ta;
	pid_t me = getpid();
	uintptr_t b;
	uint8_t *p;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	b = (uintptr_t)p;
	madvise(p, len, MADV_HUGEPAGE);
	memset(p, 1, len);
	EXPECT("thp: no operation -> EINVAL", thp(dev, rw, b, b + len, 0, NULL),
	       EINVAL);
	EXPECT("thp: both operations -> EINVAL",
	       thp(dev, rw, b, b + len, MERGEMEM_THP_NOHUGEPAGE |
		   MERGEMEM_THP_RESTORE, NULL), EINVAL);
	EXPECT("thp: HUGEPAGE without RESTORE -> EINVAL",
	       thp(dev, rw, b, b + len, MERGEMEM_THP_NOHUGEPAGE |
		   MERGEMEM_THP_HUGEPAGE, NULL), EINVAL);
	EXPECT("thp: unaligned -> EINVAL",
	       thp(dev, rw, b + 1, b + len, MERGEMEM_THP_NOHUGEPAGE, NULL),
	       EINVAL);
	EXPECT("thp: read-only fd -> EBADF",
	       thp(dev, ro, b, b + len, MERGEMEM_THP_NOHUGEPAGE, NULL), EBADF);

	EXPECT("thp: nohugepage", thp(dev, rw, b, b + len,
				      MERGEMEM_THP_NOHUGEPAGE, &ta), 0);
	if (ta.vmas_changed == 1 && ta.vmas_hugepage == 1 &&
	    ta.vmas_unchanged == 0 && ta.vmas_skipped == 0 &&
	    vma_has_flag(me, b, "nh") == 1 && vma_has_flag(me, b, "hg") == 0)
		ok("thp: nohugepage sets nh, clears hg, reports hg");
	else
		notok("thp: nohugepage sets nh, clears hg, reports hg",
		      "changed %llu hugepage %llu nh %d hg %d",
		      (unsigned long long)ta.vmas_changed,
		      (unsigned long long)ta.vmas_hugepage,
		      vma_has_flag(me, b, "nh"), vma_has_flag(me, b, "hg"));
	EXPECT("thp: again", thp(dev, rw, b, b + len,
				 MERGEMEM_THP_NOHUGEPAGE, &ta), 0);
	if (ta.vmas_changed == 0 && ta.vmas_unchanged == 1)
		ok("thp: a repeat changes nothing");
	else
		notok("thp: a repeat changes nothing", "changed %llu",
		      (unsigned long long)ta.vmas_changed);
	EXPECT("thp: restore hugepage",
	       thp(dev, rw, b, b + len, MERGEMEM_THP_RESTORE |
		   MERGEMEM_THP_HUGEPAGE, &ta), 0);
	if (ta.vmas_changed == 1 && vma_has_flag(me, b, "nh") == 0 &&
	    vma_has_flag(me, b, "hg") == 1)
		ok("thp: restore gives hg back");
	else
		notok("thp: restore gives hg back", "nh %d hg %d",
		      vma_has_flag(me, b, "nh"), vma_has_flag(me, b, "hg"));
	madvise(p, len, MADV_NOHUGEPAGE);
	EXPECT("thp: restore", thp(dev, rw, b, b + len, MERGEMEM_THP_RESTORE,
				   &ta), 0);
	if (ta.vmas_changed == 1 && vma_has_flag(me, b, "nh") == 0 &&
	    vma_has_flag(me, b, "hg") == 0)
		ok("thp: restore alone leaves neither flag");
	else
		notok("thp: restore alone leaves neither flag", "nh %d hg %d",
		      vma_has_flag(me, b, "nh"), vma_has_flag(me, b, "hg"));
	if (memchr(p, 0, len) == NULL)
		ok("thp: contents intact");
	else
		notok("thp: contents intact", "a zero byte appeared");
	munmap(p, len);
	close(ro);
	close(rw);
}

/*
 * PAGEINFO marks nothing accessed: after clear_refs, describing every page
 * of a mapping leaves its smaps Referenced at 0 kB.
 */
static void test_pageinfo_untouched(int dev)
{
	static struct mergemem_pageinfo pi[256];
	size_t len = 256 * psz;
	int self = open("/proc/self/mem", O_RDONLY);
	int cr = open("/proc/self/clear_refs", O_WRONLY);
	char line[256];
	uint8_t *p;
	uint64_t done;
	long kb = -1;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	madvise(p, len, MADV_NOHUGEPAGE);
	memset(p, 3, len);
	if (cr < 0 || write(cr, "1", 1) != 1)
		notok("untouched: clear_refs", "%s", strerror(errno));
	EXPECT("untouched: pageinfo", pageinfo(dev, self, (uintptr_t)p, 256,
					       pi, &done), 0);
	if (!smaps_line(getpid(), (uintptr_t)p, "Referenced:", line,
			sizeof(line)))
		sscanf(line, "Referenced: %ld", &kb);
	if (done == 256 && (pi[0].flags & MERGEMEM_PI_HASHED) && kb == 0)
		ok("pageinfo leaves Referenced at 0 kB after clear_refs");
	else
		notok("pageinfo leaves Referenced at 0 kB after clear_refs",
		      "done %llu flags %#x Referenced %ld kB",
		      (unsigned long long)done, pi[0].flags, kb);
	munmap(p, len);
	close(cr);
	close(self);
}

/* Check a worker's PAGEINFO; @ksm: after merging. Returns the pattern hash. */
static uint64_t check_worker_pages(int dev, struct worker *wk, int w, int ksm,
				   const char *when)
{
	static struct mergemem_pageinfo pi[TOTAL + HOLE];
	uint8_t *page = malloc(psz);
	uint32_t base = MERGEMEM_PI_PRESENT | MERGEMEM_PI_ANON |
			MERGEMEM_PI_HASHED | (ksm ? MERGEMEM_PI_KSM : 0);
	uint32_t zp = MERGEMEM_PI_PRESENT | MERGEMEM_PI_ZERO_PAGE |
		      MERGEMEM_PI_ZEROFILLED | MERGEMEM_PI_HASHED;
	uint64_t zh, sh, done;
	char name[160];
	int i, j, bad = 0, badh = 0;

	memset(page, 0, psz);
	zh = xxh64(page, psz, 0);
	fill(page, SEED_SAME);
	sh = xxh64(page, psz, 0);

	snprintf(name, sizeof(name), "worker %d pageinfo %s", w, when);
	if (!EXPECT(name, pageinfo(dev, wk->memfd, wk->base, TOTAL + HOLE, pi,
				   &done), 0))
		goto out;
	if (done != TOTAL + HOLE)
		notok(name, "done=%llu", (unsigned long long)done);

	for (i = 0; i < TOTAL + HOLE; i++) {
		uint32_t want;
		uint64_t wh;

		if (i < OFF_M) {
			want = base;
			wh = sh;
		} else if (i < OFF_Z) {
			want = base & ~MERGEMEM_PI_KSM;
			fill(page, seed_uniq(w, i - OFF_M));
			wh = xxh64(page, psz, 0);
		} else if (i < OFF_R) {
			want = base | MERGEMEM_PI_ZEROFILLED;
			wh = zh;
		} else if (i < OFF_U) {
			want = zp;
			wh = zh;
		} else {
			want = 0;
			wh = 0;
		}
		if (pi[i].flags != want || pi[i].reserved) {
			if (bad++ < 5)
				printf("# page %d flags %#x want %#x\n", i,
				       pi[i].flags, want);
		}
		if (pi[i].hash != wh)
			badh++;
	}
	/* Unique pages differ from each other. */
	for (i = OFF_M; i < OFF_Z; i++)
		for (j = i + 1; j < OFF_Z; j++)
			badh += pi[i].hash == pi[j].hash;

	snprintf(name, sizeof(name),
		 "worker %d flags %s: %d same, %d unique, %d zero-filled, %d zero page, %d untouched, %d dropped, %d hole",
		 w, when, N_SAME, M_UNIQ, Z_ZERO, R_READ, U_NONE, D_DROP, HOLE);
	if (bad)
		notok(name, "%d pages with wrong flags", bad);
	else
		ok(name);
	snprintf(name, sizeof(name), "worker %d hashes %s", w, when);
	if (badh)
		notok(name, "%d wrong hashes", badh);
	else
		ok(name);
out:
	free(page);
	return pi[0].hash;
}

static void test_merge(int dev, struct worker *wk)
{
	struct mergemem_range_args ra;
	char name[128];
	double secs;
	int w, rc;

	EXPECT("merge flags -> EINVAL",
	       ioctl(dev, MERGEMEM_IOC_MERGE,
		     &(struct mergemem_range_args){ .mem_fd = wk[0].memfd,
						    .flags = 1,
						    .start = 0,
						    .end = 4096 }), EINVAL);
	EXPECT("merge unaligned -> EINVAL",
	       range(dev, MERGEMEM_IOC_MERGE, wk[0].memfd, wk[0].base + 1,
		     wk[0].base + psz, NULL), EINVAL);
	EXPECT("merge end <= start -> EINVAL",
	       range(dev, MERGEMEM_IOC_MERGE, wk[0].memfd, wk[0].base,
		     wk[0].base, NULL), EINVAL);
	EXPECT("merge NULL args -> EFAULT",
	       ioctl(dev, MERGEMEM_IOC_MERGE, NULL), EFAULT);
	EXPECT("merge of kernel addresses -> EINVAL",
	       range(dev, MERGEMEM_IOC_MERGE, wk[0].memfd,
		     0xffff888000000000ULL, 0xffff888000001000ULL, NULL),
	       EINVAL);
	EXPECT("unmerge ending at 2^56 -> EINVAL",
	       range(dev, MERGEMEM_IOC_UNMERGE, wk[0].memfd, 0, 1ULL << 56,
		     NULL), EINVAL);
	rc = range(dev, MERGEMEM_IOC_MERGE, wk[0].memfd, 0x1000, 0x2000, &ra);
	if (rc == 0 && !ra.vmas_changed && !ra.vmas_unchanged &&
	    !ra.vmas_skipped && !ra.bytes_changed)
		ok("merge on unmapped range: all counts 0");
	else
		notok("merge on unmapped range: all counts 0", "rc=%d", rc);
	rc = range(dev, MERGEMEM_IOC_MERGE, wk[0].memfd, wk[0].shared,
		   wk[0].shared + SHARED_PAGES * psz, &ra);
	if (rc == 0 && ra.vmas_skipped == 1 && !ra.vmas_changed &&
	    !ra.vmas_unchanged)
		ok("merge on MAP_SHARED: skipped");
	else
		notok("merge on MAP_SHARED: skipped",
		      "rc=%d changed=%llu unchanged=%llu skipped=%llu", rc,
		      (unsigned long long)ra.vmas_changed,
		      (unsigned long long)ra.vmas_unchanged,
		      (unsigned long long)ra.vmas_skipped);

	for (w = 0; w < NWORKERS; w++) {
		snprintf(name, sizeof(name), "worker %d merge: 1 VMA changed", w);
		rc = range(dev, MERGEMEM_IOC_MERGE, wk[w].memfd, wk[w].base,
			   wk[w].base + (TOTAL + HOLE) * psz, &ra);
		if (rc == 0 && ra.vmas_changed == 1 &&
		    ra.bytes_changed >= (uint64_t)TOTAL * psz &&
		    !ra.vmas_unchanged && !ra.vmas_skipped)
			ok(name);
		else
			notok(name,
			      "rc=%d errno=%d changed=%llu bytes=%llu unchanged=%llu skipped=%llu",
			      rc, errno, (unsigned long long)ra.vmas_changed,
			      (unsigned long long)ra.bytes_changed,
			      (unsigned long long)ra.vmas_unchanged,
			      (unsigned long long)ra.vmas_skipped);
		snprintf(name, sizeof(name), "worker %d merge again: unchanged", w);
		rc = range(dev, MERGEMEM_IOC_MERGE, wk[w].memfd,
			   wk[w].base + psz, wk[w].base + 2 * psz, &ra);
		if (rc == 0 && ra.vmas_unchanged == 1 && !ra.vmas_changed &&
		    !ra.bytes_changed)
			ok(name);
		else
			notok(name, "rc=%d", rc);
	}

	knob_set("use_zero_pages", "0");
	if (ksm_burst(wk, NWORKERS, KSM_EXPECT, &secs)) {
		snprintf(name, sizeof(name),
			 "ksmd merged %d pages per worker (%.1f s)", KSM_EXPECT,
			 secs);
		ok(name);
	} else {
		notok("ksmd merge", "merging pages %ld / %ld, want %d",
		      merging_pages(wk[0].pid), merging_pages(wk[1].pid),
		      KSM_EXPECT);
	}
	for (w = 0; w < NWORKERS; w++) {
		snprintf(name, sizeof(name), "worker %d content intact after merge", w);
		if (worker_check(&wk[w]))
			ok(name);
		else
			notok(name, "checksum mismatch");
		check_worker_pages(dev, &wk[w], w, 1, "after merge");
		snprintf(name, sizeof(name),
			 "worker %d pageinfo did not unmerge", w);
		if (merging_pages(wk[w].pid) == KSM_EXPECT)
			ok(name);
		else
			notok(name, "ksm_merging_pages=%ld",
			      merging_pages(wk[w].pid));
	}

	for (w = 0; w < NWORKERS; w++) {
		snprintf(name, sizeof(name), "worker %d unmerge: 1 VMA changed", w);
		rc = range(dev, MERGEMEM_IOC_UNMERGE, wk[w].memfd, wk[w].base,
			   wk[w].base + psz, &ra);
		if (rc == 0 && ra.vmas_changed == 1 && !ra.vmas_skipped &&
		    !ra.vmas_unchanged)
			ok(name);
		else
			notok(name, "rc=%d errno=%d changed=%llu", rc, errno,
			      (unsigned long long)ra.vmas_changed);
		snprintf(name, sizeof(name), "worker %d unmerge again: unchanged", w);
		rc = range(dev, MERGEMEM_IOC_UNMERGE, wk[w].memfd, wk[w].base,
			   wk[w].base + psz, &ra);
		if (rc == 0 && ra.vmas_unchanged == 1 && !ra.vmas_changed)
			ok(name);
		else
			notok(name, "rc=%d", rc);
		check_worker_pages(dev, &wk[w], w, 0, "after unmerge");
		snprintf(name, sizeof(name), "worker %d content intact after unmerge", w);
		if (worker_check(&wk[w]))
			ok(name);
		else
			notok(name, "checksum mismatch");
	}
	/* ksmd drops the stale rmap items of unmerged VMAs on its next pass. */
	if (ksm_burst(wk, NWORKERS, 0, &secs))
		ok("ksm_merging_pages back to 0 after unmerge");
	else
		notok("ksm_merging_pages back to 0 after unmerge",
		      "%ld / %ld", merging_pages(wk[0].pid),
		      merging_pages(wk[1].pid));
}

/* ---- UNMERGE of a huge VMA ------------------------------------------------ */

#define HUGE_VMA (1ULL << 40)	/* 1 TiB, MAP_NORESERVE */

/*
 * A process with a 1 TiB anonymous VMA, two pages of it written (so that it
 * has an anon_vma and UNMERGE must walk all of it). Returns its pid; its
 * mem fd (O_RDWR) and the VMA's start in @memfd and @base.
 */
static pid_t huge_target(int *memfd, uintptr_t *base)
{
	char path[64];
	int p[2];
	pid_t pid;

	if (pipe(p))
		return -1;
	pid = fork();
	if (pid == 0) {
		uint8_t *m = mmap(NULL, HUGE_VMA, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
				  -1, 0);
		uintptr_t a = (uintptr_t)m;

		if (m == MAP_FAILED)
			a = 0;
		else
			m[0] = m[HUGE_VMA / 2] = 1;
		if (write(p[1], &a, sizeof(a)) != sizeof(a))
			_exit(1);
		for (;;)
			pause();
	}
	close(p[1]);
	if (read(p[0], base, sizeof(*base)) != sizeof(*base) || !*base) {
		close(p[0]);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -1;
	}
	close(p[0]);
	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	*memfd = open(path, O_RDWR | O_CLOEXEC);
	return pid;
}

/* A child that runs UNMERGE on the huge VMA and reports its errno on @res. */
static pid_t unmerge_child(int dev, int memfd, uintptr_t base, int *res)
{
	int p[2];
	pid_t pid;

	if (pipe(p))
		return -1;
	pid = fork();
	if (pid == 0) {
		int e = 0;

		close(p[0]);
		if (range(dev, MERGEMEM_IOC_UNMERGE, memfd, base,
			  base + HUGE_VMA, NULL))
			e = errno;
		if (write(p[1], &e, sizeof(e)) != sizeof(e))
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	*res = p[0];
	return pid;
}

/* Waits up to @limit seconds for @pid; returns the time taken, or -1. */
static double reap_within(pid_t pid, double limit)
{
	double t0 = now();

	while (now() - t0 < limit) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return now() - t0;
		usleep(10000);
	}
	return -1;
}

/*
 * Waits until the UNMERGE that @c runs on the VMA at @base of @t is under
 * way: UNMERGE clears VM_MERGEABLE first, then walks the pages, so the VMA
 * shows unmarked. Returns 1 then, 0 if @c has exited (the call is over;
 * @c is reaped), -1 if neither happened within @limit seconds.
 */
static int unmerge_underway(pid_t c, pid_t t, uintptr_t base, double limit)
{
	double t0 = now();

	for (;;) {
		if (waitpid(c, NULL, WNOHANG) == c)
			return 0;
		if (vma_has_flag(t, base, "mg") == 0)
			return 1;
		if (now() - t0 > limit)
			return -1;
		usleep(10000);
	}
}

/*
 * How long the test waits for the module to react (a killed caller or
 * target ending the call, the mmap lock becoming free): a bound against a
 * hang, generous for TCG on a slow machine, and still a tiny part of what
 * the whole walk of 1 TiB takes there (tens of minutes).
 */
#define REACT_LIMIT 30.0

/*
 * UNMERGE walks a VMA page by page. On a 1 TiB VMA that takes minutes, and
 * the module must not hold the target's mmap lock throughout: SIGKILL of
 * the caller ends the call at once (the VMA is then marked again), the
 * target's /proc/PID/cmdline (mmap read lock) reads meanwhile, and a
 * killed target exits at once, ending the call with ESRCH. "At once" is
 * checked as within REACT_LIMIT; the times are printed.
 */
static void test_unmerge_huge(int dev)
{
	struct mergemem_range_args ra;
	int memfd, res, e, rc;
	char path[64], buf[256];
	uintptr_t base;
	pid_t t, c;
	double dt;

	t = huge_target(&memfd, &base);
	if (t < 0 || memfd < 0) {
		notok("1 TiB target", "cannot map 1 TiB: %s", strerror(errno));
		return;
	}
	rc = range(dev, MERGEMEM_IOC_MERGE, memfd, base, base + HUGE_VMA, &ra);
	if (rc == 0 && ra.vmas_changed == 1 && ra.bytes_changed == HUGE_VMA)
		ok("1 TiB VMA marked");
	else
		notok("1 TiB VMA marked", "rc=%d errno=%d changed=%llu", rc,
		      errno, (unsigned long long)ra.vmas_changed);

	/* The caller is killed, once its call is under way. */
	c = unmerge_child(dev, memfd, base, &res);
	rc = unmerge_underway(c, t, base, 60.0);
	if (rc < 0)
		notok("1 TiB UNMERGE under way", "the VMA still marked after 60 s");
	if (rc == 0) {
		ok("1 TiB UNMERGE completed before it could be killed");
		close(res);
		if (vma_has_flag(t, base, "mg") == 0)
			ok("1 TiB VMA unmarked");
		else
			notok("1 TiB VMA unmarked", "mg=%d",
			      vma_has_flag(t, base, "mg"));
		EXPECT("1 TiB VMA marked again",
		       range(dev, MERGEMEM_IOC_MERGE, memfd, base,
			     base + HUGE_VMA, NULL), 0);
	} else {
		kill(c, SIGKILL);
		dt = reap_within(c, REACT_LIMIT);
		if (dt >= 0)
			ok("SIGKILL ends a 1 TiB UNMERGE at once");
		else
			notok("SIGKILL ends a 1 TiB UNMERGE at once",
			      "still running after %.0f s", REACT_LIMIT);
		printf("# caller killed: reaped after %.3f s\n", dt);
		if (dt < 0) {
			kill(c, SIGKILL);
			waitpid(c, NULL, 0);
		}
		close(res);
		if (vma_has_flag(t, base, "mg") == 1)
			ok("an interrupted UNMERGE leaves the VMA marked");
		else
			notok("an interrupted UNMERGE leaves the VMA marked",
			      "mg=%d", vma_has_flag(t, base, "mg"));
	}

	/* The target reads its cmdline meanwhile, then is killed. */
	c = unmerge_child(dev, memfd, base, &res);
	rc = unmerge_underway(c, t, base, 60.0);
	if (rc < 0)
		notok("1 TiB UNMERGE under way (2)",
		      "the VMA still marked after 60 s");
	if (rc == 0) {
		ok("1 TiB UNMERGE completed before the target exited (target exit not tested)");
		close(res);
		kill(t, SIGKILL);
		waitpid(t, NULL, 0);
		close(memfd);
		return;
	}
	snprintf(path, sizeof(path), "/proc/%d/cmdline", t);
	{
		double t0 = now();
		int fd = open(path, O_RDONLY);
		ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf));

		dt = now() - t0;
		if (fd >= 0)
			close(fd);
		if (n > 0 && dt < REACT_LIMIT)
			ok("the target's cmdline reads during UNMERGE");
		else
			notok("the target's cmdline reads during UNMERGE",
			      "n=%zd after %.3f s", n, dt);
		printf("# cmdline read in %.3f s\n", dt);
	}
	kill(t, SIGKILL);
	dt = reap_within(t, REACT_LIMIT);
	if (dt >= 0)
		ok("a killed target exits at once during UNMERGE");
	else
		notok("a killed target exits at once during UNMERGE",
		      "not reaped after %.0f s", REACT_LIMIT);
	printf("# target killed: reaped after %.3f s\n", dt);
	dt = reap_within(c, REACT_LIMIT);
	if (dt < 0) {
		notok("UNMERGE ends when its target exits", "still running");
		kill(c, SIGKILL);
		waitpid(c, NULL, 0);
	} else if (read(res, &e, sizeof(e)) == sizeof(e) && e == ESRCH) {
		ok("UNMERGE ends with ESRCH when its target exits");
	} else {
		notok("UNMERGE ends with ESRCH when its target exits",
		      "errno %d", e);
	}
	close(res);
	if (waitpid(t, NULL, WNOHANG) == 0) {
		kill(t, SIGKILL);
		waitpid(t, NULL, 0);
	}
	close(memfd);
}

int main(void)
{
	struct worker wk[NWORKERS];
	int dev, w;

	psz = sysconf(_SC_PAGESIZE);
	setvbuf(stdout, NULL, _IOLBF, 0);
	{
		if (xxh64("", 0, 0) == 0xEF46DB3751D8E999ULL)
			ok("user-space xxh64 self-test");
		else
			notok("user-space xxh64 self-test", "bad");
	}
	knobs_save();
	for (w = 0; w < NWORKERS; w++) {
		if (worker_start(&wk[w], w)) {
			printf("Bail out! cannot start worker %d: %s\n", w,
			       strerror(errno));
			return 2;
		}
	}

	test_handshake();
	dev = open_dev();
	if (handshake(dev)) {
		printf("Bail out! handshake: %s\n", strerror(errno));
		return 2;
	}
	test_fds(dev, &wk[0]);
	test_unprivileged(&wk[0]);
	test_pageinfo_args(dev);
	test_thp(dev);
	test_thp_flags(dev);
	test_pageinfo_untouched(dev);
	for (w = 0; w < NWORKERS; w++)
		check_worker_pages(dev, &wk[w], w, 0, "before merge");
	test_merge(dev, wk);
	test_unmerge_huge(dev);

	for (w = 0; w < NWORKERS; w++) {
		int fd = wk[w].memfd;
		struct mergemem_pageinfo pi;

		wk[w].memfd = dup(fd);
		worker_stop(&wk[w]);
		EXPECT("exited worker -> ESRCH",
		       pageinfo(dev, fd, wk[w].base, 1, &pi, NULL),
		       ESRCH);
		close(fd);
	}
	knobs_restore();
	close(dev);
	printf("# %d failure(s)\n", failures);
	return failures ? 1 : 0;
}
