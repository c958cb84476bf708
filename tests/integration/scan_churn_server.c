/*
 * A server whose children come and go, as apache2 prefork's and php-fpm's
 * do, for the scan churn test (scan_churn_test.ts).
 *
 *   scan_churn_server CHILDREN PAGES SEED [HELD]
 *
 * The parent maps PAGES private anonymous pages (THP off) of content no
 * other test process holds, then keeps CHILDREN children alive. Each child
 * rewrites half of the pages (its own frames; the rest stay fork-shared),
 * lives 0-80 ms, then exits, or, one time in four, execs /bin/sleep. The
 * first HELD children (default 0) live until they are killed instead: the
 * test kills them at a moment of its choosing, so that a process vanishes
 * under a scan whatever the machine's speed. The parent reaps its dead
 * children only every 250 ms, so they linger as zombies meanwhile, and
 * replaces them. Prints "HELD PID" for each held child it starts and
 * "READY" once the first children run; stops (killing its children) when
 * stdin closes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CHILDREN 64

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33; x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL;
	return x ^ (x >> 33);
}

static void fill(char *p, long pages, long ps, uint64_t seed)
{
	for (long i = 0; i < pages; i++) {
		uint64_t *w = (uint64_t *)(p + i * ps);
		for (long k = 0; k < ps / 8; k++)
			w[k] = mix(seed ^ ((uint64_t)i << 24) ^ (uint64_t)k) | 1;
	}
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: scan_churn_server CHILDREN PAGES SEED [HELD]\n");
		return 2;
	}
	int want = atoi(argv[1]);
	long pages = atol(argv[2]);
	uint64_t seed = strtoull(argv[3], 0, 10);
	int held = argc > 4 ? atoi(argv[4]) : 0;
	long ps = sysconf(_SC_PAGESIZE);
	if (want < 1 || want > MAX_CHILDREN || pages < 2 || held < 0 ||
	    held > want)
		return 2;
	char *m = mmap(0, pages * ps, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) { perror("mmap"); return 1; }
	madvise(m, pages * ps, MADV_NOHUGEPAGE);
	fill(m, pages, ps, mix(seed ^ 0x5e2e2ULL ^ ((uint64_t)getpid() << 40)));
	fcntl(0, F_SETFL, O_NONBLOCK);
	srand(seed ^ getpid());
	pid_t kids[MAX_CHILDREN] = { 0 };
	int alive = 0; /* forked and not reaped */
	uint64_t serial = 0;
	double last_reap = now();
	int ready = 0;
	for (;;) {
		char b[64];
		ssize_t r = read(0, b, sizeof b);
		if (r == 0 || (r < 0 && errno != EAGAIN))
			break;
		while (alive < want) {
			int slot = 0;
			while (kids[slot]) slot++;
			serial++;
			int life_ms = rand() % 81;
			int do_exec = rand() % 4 == 0;
			pid_t c = fork();
			if (c < 0) { perror("fork"); break; }
			if (c == 0) {
				fill(m, pages / 2, ps,
				     mix(seed ^ (serial << 20) ^ ((uint64_t)getpid() << 40)));
				if (slot < held)
					for (;;)
						pause();
				usleep(life_ms * 1000);
				if (do_exec)
					execl("/bin/sleep", "sleep", "0.05", (char *)0);
				_exit(0);
			}
			kids[slot] = c;
			alive++;
			if (slot < held) {
				printf("HELD %d\n", (int)c);
				fflush(stdout);
			}
		}
		if (!ready) {
			printf("READY %d\n", (int)getpid());
			fflush(stdout);
			ready = 1;
		}
		if (now() - last_reap >= 0.25) {
			for (int i = 0; i < MAX_CHILDREN; i++) {
				if (kids[i] && waitpid(kids[i], 0, WNOHANG) == kids[i]) {
					kids[i] = 0;
					alive--;
				}
			}
			last_reap = now();
		}
		usleep(5000);
	}
	for (int i = 0; i < MAX_CHILDREN; i++) {
		if (kids[i]) {
			kill(kids[i], SIGKILL);
			waitpid(kids[i], 0, 0);
		}
	}
	return 0;
}
