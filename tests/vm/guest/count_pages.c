// SPDX-License-Identifier: GPL-2.0
/*
 * count_pages: an independent count of the figures of `mergemem scan`
 * (pages_scanned, pages_present, pages_zero, pages_duplicate,
 * pages_shared_already, saveable_pages, per process and in total), computed
 * from their definitions in docs/accounting.md and sharing no code with
 * src/: the real-server tests (t_5*.sh) compare the two.
 *
 *   count_pages [--comm NAME]... [--user NAME|UID]... [--pid PID]...
 *               [--mergeable-only]
 *
 * Selection, like mergemem's: the union of processes whose /proc/PID/comm
 * is NAME, whose real uid is the user's, or the pids named. Prints one JSON
 * object on stdout. Needs root (pagemap PFNs need CAP_SYS_ADMIN).
 * --mergeable-only counts only VMAs already marked (VmFlags mg): after a
 * merge, what KSM left unmerged there. pages_thp and pages_ksm (frames that
 * /proc/kpageflags calls THP or KSM) are diagnostics, not mergemem figures
 * (Debian's 6.12 flags every anonymous page KSM: pages_ksm means nothing there).
 *
 * How it counts, by definition:
 *  - KSM-eligible mapping (/proc/PID/smaps): private ('p'), none of the
 *    VmFlags sh ms io pf de ht mm dx, not [vvar] [vvar_vclock] [vsyscall]
 *    [vdso] [uprobes];
 *  - candidate page: a page of such a mapping whose /proc/PID/pagemap entry
 *    is present (bit 63) and not file-backed or shared-anonymous (bit 61);
 *  - its frame is the pagemap PFN; its content the page's bytes, read from
 *    /proc/PID/mem (a read that faults nothing in and breaks no COW sharing);
 *  - contents are compared byte by byte (sorted with memcmp), no hashes.
 * Then: pages_zero = candidate pages of all-zero bytes; pages_shared_already =
 * candidate pages whose PFN another candidate page also maps;
 * pages_duplicate = non-zero candidate pages whose content sits in at least
 * two distinct frames; saveable_pages = distinct frames - distinct contents,
 * attributed per content: frames ordered by their first virtual page in scan
 * order (pid, address), every frame after the first counts for the process
 * of its first virtual page.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PM_PRESENT (1ULL << 63)
#define PM_FILE (1ULL << 61)
#define PM_PFN_MASK ((1ULL << 55) - 1)

struct proc {
	int pid;
	unsigned int uid;
	char comm[32];
	bool gone; /* exited before or while it was read */
	uint64_t scanned, present, zero, duplicate, shared, saveable;
	uint64_t thp, ksm; /* diagnostics (/proc/kpageflags), not compared */
};

struct page {
	uint64_t pfn;
	uint32_t proc; /* index into procs */
	uint32_t content; /* content id, after sorting */
};

static struct proc *procs;
static size_t nprocs;
static struct page *pages; /* in scan order: pid, then address */
static unsigned char *data; /* page contents, same order */
static size_t npages, cap;
static long psz;
static bool mergeable_only; /* --mergeable-only: only VMAs with VmFlags mg */
static int kpageflags = -1;

#define KPF_KSM 21
#define KPF_THP 22

static void die(const char *msg)
{
	perror(msg);
	exit(1);
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (!p)
		die("realloc");
	return p;
}

/* Room for one more page; returns its content buffer. */
static unsigned char *push_page(uint64_t pfn, uint32_t proc)
{
	if (npages == cap) {
		cap = cap ? cap * 2 : 4096;
		pages = xrealloc(pages, cap * sizeof(*pages));
		data = xrealloc(data, cap * (size_t)psz);
	}
	pages[npages].pfn = pfn;
	pages[npages].proc = proc;
	return data + npages++ * (size_t)psz;
}

static bool eligible(const char *perms, const char *name, const char *flags)
{
	static const char *const special[] = { "[vvar]", "[vvar_vclock]",
		"[vsyscall]", "[vdso]", "[uprobes]" };
	static const char *const bad[] = { "sh", "ms", "io", "pf", "de", "ht",
		"mm", "dx" };
	size_t i;

	if (perms[3] != 'p')
		return false;
	if (mergeable_only && !strstr(flags, " mg"))
		return false;
	for (i = 0; i < sizeof(special) / sizeof(*special); i++)
		if (!strcmp(name, special[i]))
			return false;
	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		const char *f = flags;
		size_t n = strlen(bad[i]);

		while ((f = strstr(f, bad[i]))) {
			if ((f == flags || f[-1] == ' ') &&
			    (f[n] == ' ' || f[n] == '\n' || f[n] == 0))
				return false;
			f += n;
		}
	}
	return true;
}

/* Reads the candidate pages of one mapping of process p. */
static int read_mapping(size_t p, int pm, int mem, uint64_t start, uint64_t end)
{
	size_t n = (end - start) / psz, i = 0, j;
	uint64_t *e = malloc(n * sizeof(*e));

	if (!e)
		die("malloc");
	if (pread(pm, e, n * 8, start / psz * 8) != (ssize_t)(n * 8)) {
		free(e);
		return -1;
	}
	procs[p].scanned += n;
	while (i < n) {
		if (!(e[i] & PM_PRESENT) || (e[i] & PM_FILE)) {
			i++;
			continue;
		}
		/* A run of candidate pages, read from /proc/PID/mem at once. */
		for (j = i; j < n && (e[j] & PM_PRESENT) && !(e[j] & PM_FILE); j++)
			;
		size_t first = npages, k;

		for (k = i; k < j; k++) {
			uint64_t f = 0, pfn = e[k] & PM_PFN_MASK;

			push_page(pfn, p);
			if (kpageflags >= 0 && pread(kpageflags, &f, 8, pfn * 8) == 8) {
				procs[p].thp += (f >> KPF_THP) & 1;
				procs[p].ksm += (f >> KPF_KSM) & 1;
			}
		}
		size_t len = (j - i) * (size_t)psz;

		if (pread(mem, data + first * (size_t)psz, len, start + i * psz) != (ssize_t)len) {
			free(e);
			return -1;
		}
		i = j;
	}
	free(e);
	return 0;
}

static void read_process(size_t p)
{
	char path[64], line[4096], perms[8], name[4096] = "";
	uint64_t start = 0, end = 0;
	bool have = false;
	size_t mark = npages;
	int pm, mem;
	FILE *sm;

	snprintf(path, sizeof(path), "/proc/%d/smaps", procs[p].pid);
	sm = fopen(path, "r");
	snprintf(path, sizeof(path), "/proc/%d/pagemap", procs[p].pid);
	pm = open(path, O_RDONLY);
	snprintf(path, sizeof(path), "/proc/%d/mem", procs[p].pid);
	mem = open(path, O_RDONLY);
	if (!sm || pm < 0 || mem < 0)
		goto gone;
	while (fgets(line, sizeof(line), sm)) {
		uint64_t s, e;
		int off = 0;

		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s %*s %*s %*s %n", &s, &e, perms, &off) >= 3 &&
		    off > 0) {
			start = s;
			end = e;
			snprintf(name, sizeof(name), "%s", line + off);
			name[strcspn(name, "\n")] = 0;
			have = true;
		} else if (have && !strncmp(line, "VmFlags:", 8)) {
			have = false;
			if (eligible(perms, name, line + 8) &&
			    read_mapping(p, pm, mem, start, end))
				goto gone;
		}
	}
	fclose(sm);
	close(pm);
	close(mem);
	return;
gone:
	procs[p].gone = true;
	procs[p].scanned = 0;
	npages = mark;
	if (sm)
		fclose(sm);
	if (pm >= 0)
		close(pm);
	if (mem >= 0)
		close(mem);
}

static int by_content(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	int c = memcmp(data + x * (size_t)psz, data + y * (size_t)psz, psz);

	return c ? c : (x > y) - (x < y);
}

static int by_pfn(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	if (pages[x].pfn != pages[y].pfn)
		return pages[x].pfn < pages[y].pfn ? -1 : 1;
	return (x > y) - (x < y);
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

struct frame {
	uint32_t content;
	size_t first; /* first virtual page (scan order) mapping it */
};

static int by_content_first(const void *a, const void *b)
{
	const struct frame *x = a, *y = b;

	if (x->content != y->content)
		return x->content < y->content ? -1 : 1;
	return (x->first > y->first) - (x->first < y->first);
}

static void count(void)
{
	size_t *ix = malloc((npages + 1) * sizeof(*ix));
	unsigned char *zero = calloc(1, psz);
	size_t i, j, k, ncontents = 0, nframes = 0;
	uint32_t zero_id = UINT32_MAX;
	struct frame *fr;
	uint32_t *content_frames;

	if (!ix || !zero)
		die("malloc");
	/* Contents: sort by bytes, one id per run of equal pages. */
	for (i = 0; i < npages; i++)
		ix[i] = i;
	qsort(ix, npages, sizeof(*ix), by_content);
	for (i = 0; i < npages; i = j) {
		for (j = i + 1; j < npages &&
		     !memcmp(data + ix[i] * (size_t)psz, data + ix[j] * (size_t)psz, psz); j++)
			;
		if (!memcmp(data + ix[i] * (size_t)psz, zero, psz))
			zero_id = ncontents;
		for (k = i; k < j; k++)
			pages[ix[k]].content = ncontents;
		ncontents++;
	}
	/* Frames: sort by PFN; a frame's first virtual page is its lowest index. */
	for (i = 0; i < npages; i++)
		ix[i] = i;
	qsort(ix, npages, sizeof(*ix), by_pfn);
	fr = malloc((npages + 1) * sizeof(*fr));
	content_frames = calloc(ncontents + 1, sizeof(*content_frames));
	if (!fr || !content_frames)
		die("malloc");
	for (i = 0; i < npages; i = j) {
		for (j = i + 1; j < npages && pages[ix[j]].pfn == pages[ix[i]].pfn; j++)
			;
		if (j - i > 1)
			for (k = i; k < j; k++)
				procs[pages[ix[k]].proc].shared++;
		fr[nframes].content = pages[ix[i]].content;
		fr[nframes].first = ix[i];
		content_frames[fr[nframes].content]++;
		nframes++;
	}
	for (i = 0; i < npages; i++) {
		struct proc *p = &procs[pages[i].proc];

		p->present++;
		if (pages[i].content == zero_id)
			p->zero++;
		else if (content_frames[pages[i].content] > 1)
			p->duplicate++;
	}
	/* Attribution: per content, every frame but the first in scan order. */
	qsort(fr, nframes, sizeof(*fr), by_content_first);
	for (i = 0; i < nframes; i++)
		if (i > 0 && fr[i].content == fr[i - 1].content)
			procs[pages[fr[i].first].proc].saveable++;
	free(ix);
	free(zero);
	free(fr);
	free(content_frames);
}

static void print_figures(const struct proc *p)
{
	printf("\"pages_scanned\": %" PRIu64 ", \"pages_present\": %" PRIu64
	       ", \"pages_zero\": %" PRIu64 ", \"pages_duplicate\": %" PRIu64
	       ", \"pages_shared_already\": %" PRIu64 ", \"saveable_pages\": %" PRIu64,
	       p->scanned, p->present, p->zero, p->duplicate, p->shared, p->saveable);
}

int main(int argc, char **argv)
{
	const char *comms[64];
	unsigned int uids[64];
	int pids[256], all[65536];
	size_t ncomms = 0, nuids = 0, npids = 0, nall = 0, i, k;
	struct proc total = { 0 };
	struct dirent *d;
	DIR *dir;

	psz = sysconf(_SC_PAGESIZE);
	for (i = 1; i < (size_t)argc; i++) {
		if (!strcmp(argv[i], "--mergeable-only")) {
			mergeable_only = true;
			continue;
		}
		if (i + 1 >= (size_t)argc)
			goto usage;
		if (!strcmp(argv[i], "--comm") && ncomms < 64) {
			comms[ncomms++] = argv[++i];
		} else if (!strcmp(argv[i], "--user") && nuids < 64) {
			struct passwd *pw = getpwnam(argv[++i]);
			char *endp;

			if (pw) {
				uids[nuids++] = pw->pw_uid;
			} else {
				uids[nuids++] = strtoul(argv[i], &endp, 10);
				if (*endp || !*argv[i]) {
					fprintf(stderr, "count_pages: unknown user %s\n", argv[i]);
					return 2;
				}
			}
		} else if (!strcmp(argv[i], "--pid") && npids < 256) {
			pids[npids++] = atoi(argv[++i]);
		} else {
			goto usage;
		}
	}
	if (!ncomms && !nuids && !npids)
		goto usage;

	dir = opendir("/proc");
	if (!dir)
		die("/proc");
	while ((d = readdir(dir)) && nall < sizeof(all) / sizeof(*all))
		if (isdigit((unsigned char)d->d_name[0]))
			all[nall++] = atoi(d->d_name);
	closedir(dir);
	qsort(all, nall, sizeof(*all), cmp_int);
	procs = calloc(nall + 1, sizeof(*procs));
	if (!procs)
		die("calloc");
	for (i = 0; i < nall; i++) {
		char path[64], line[256];
		struct proc p = { .pid = all[i] };
		bool sel = false;
		FILE *f;

		if (p.pid == getpid())
			continue;
		snprintf(path, sizeof(path), "/proc/%d/comm", p.pid);
		f = fopen(path, "r");
		if (!f || !fgets(p.comm, sizeof(p.comm), f)) {
			if (f)
				fclose(f);
			continue;
		}
		fclose(f);
		p.comm[strcspn(p.comm, "\n")] = 0;
		snprintf(path, sizeof(path), "/proc/%d/status", p.pid);
		f = fopen(path, "r");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "Uid: %u", &p.uid) == 1)
				break;
		fclose(f);
		for (k = 0; k < ncomms; k++)
			sel |= !strcmp(p.comm, comms[k]);
		for (k = 0; k < nuids; k++)
			sel |= p.uid == uids[k];
		for (k = 0; k < npids; k++)
			sel |= p.pid == pids[k];
		if (sel)
			procs[nprocs++] = p;
	}
	kpageflags = open("/proc/kpageflags", O_RDONLY);
	for (i = 0; i < nprocs; i++)
		read_process(i);
	count();

	printf("{\"page_size\": %ld, \"processes\": [", psz);
	for (i = 0; i < nprocs; i++) {
		const struct proc *p = &procs[i];

		printf("%s\n  {\"pid\": %d, \"comm\": \"%s\", \"uid\": %u, \"gone\": %s, ",
		       i ? "," : "", p->pid, p->comm, p->uid, p->gone ? "true" : "false");
		print_figures(p);
		printf(", \"pages_thp\": %" PRIu64 ", \"pages_ksm\": %" PRIu64 "}", p->thp, p->ksm);
		total.thp += p->thp;
		total.ksm += p->ksm;
		total.scanned += p->scanned;
		total.present += p->present;
		total.zero += p->zero;
		total.duplicate += p->duplicate;
		total.shared += p->shared;
		total.saveable += p->saveable;
	}
	printf("\n], \"totals\": {\"processes\": %zu, ", nprocs);
	print_figures(&total);
	printf(", \"pages_thp\": %" PRIu64 ", \"pages_ksm\": %" PRIu64 "}}\n", total.thp, total.ksm);
	return 0;
usage:
	fprintf(stderr, "usage: count_pages [--comm NAME]... [--user NAME|UID]... [--pid PID]... [--mergeable-only]\n");
	return 2;
}
