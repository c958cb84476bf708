// SPDX-License-Identifier: GPL-2.0
/*
 * The ptrace engine's torture target. Threads park in the blocking calls
 * a server sits in, while other threads keep feeding them; the test
 * injects into every thread in turn, then sends "check" on stdin and the
 * target verifies by itself that nothing noticed more than a plain
 * ptrace stop:
 *
 *   reader   read() on a pipe: gets every 8-byte sequence number written
 *            by the feeder, in order, never an error or a short read;
 *   epoll    epoll_wait() on an eventfd: every count arrives; EINTR is
 *            allowed (signal(7): it fails with EINTR after any stop);
 *   futex    FUTEX_WAIT without timeout: returns 0 or EAGAIN, never EINTR;
 *   sleeper  nanosleep(3 ms): returns 0 and slept its full time;
 *   busy     a register-only loop: b == 2 * a at every step;
 *   handler  read() on an empty pipe with an SA_RESTART handler for
 *            SIGRTMIN+1, which the feeder queues to it with a sequence
 *            number: every number arrives exactly once (RT signals queue,
 *            so a lost one is seen), the read never returns;
 *   main     read() on stdin (the command pipe).
 *
 * Memory: REGIONS separate mappings of PAGES pages of a known pattern,
 * the VMAs the test marks; checked at the end.
 *
 * Output: "ready PID region0_addr region_bytes REGIONS tid=role,..." and,
 * after "check", one line "ok ..." or "FAIL ..." (exit 0 or 1).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define REGIONS 4
#define PAGES 64
#define SLEEP_NS 3000000L

static atomic_int stop;
static char fail[4096];
static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;

static void failf(const char *what, long v, int err)
{
	pthread_mutex_lock(&fail_lock);
	size_t n = strlen(fail);

	if (n < sizeof(fail) - 100)
		snprintf(fail + n, sizeof(fail) - n, " %s=%ld(errno %d)", what,
			 v, err);
	pthread_mutex_unlock(&fail_lock);
}

static int tids[8];
static const char *roles[8] = {"main", "reader", "epoll", "futex",
			       "sleeper", "busy", "handler", "feeder"};
static atomic_int ready_count;

static void set_tid(int i)
{
	tids[i] = (int)syscall(SYS_gettid);
	atomic_fetch_add(&ready_count, 1);
}

static long now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000L + t.tv_nsec;
}

/* reader */
static int data_pipe[2];
static uint64_t reads_ok;

static void *reader(void *arg)
{
	uint64_t want = 0, got;

	set_tid(1);
	for (;;) {
		ssize_t r = read(data_pipe[0], &got, sizeof(got));

		if (r == 0)
			break;
		if (r != sizeof(got)) {
			failf("read", r, errno);
			break;
		}
		if (got != want)
			failf("read_seq", (long)got, 0);
		want = got + 1;
		reads_ok++;
	}
	return arg;
}

/* epoll */
static int efd;
static uint64_t epoll_events, epoll_eintr, epoll_count;

static void *epoller(void *arg)
{
	int ep = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLIN}, out;

	set_tid(2);
	epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev);
	while (!atomic_load(&stop)) {
		int n = epoll_wait(ep, &out, 1, -1);

		if (n < 0 && errno == EINTR) {
			epoll_eintr++;
			continue;
		}
		if (n != 1) {
			failf("epoll_wait", n, errno);
			break;
		}
		uint64_t c;

		if (read(efd, &c, sizeof(c)) == sizeof(c))
			epoll_count += c;
		epoll_events++;
	}
	return arg;
}

/* futex */
static atomic_int futex_word;
static uint64_t futex_wakes, futex_again;

static void *futexer(void *arg)
{
	set_tid(3);
	while (!atomic_load(&stop)) {
		int v = atomic_load(&futex_word);
		long r = syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, v,
				 NULL, NULL, 0);

		if (r == 0)
			futex_wakes++;
		else if (errno == EAGAIN)
			futex_again++;
		else
			failf("futex", r, errno);
	}
	return arg;
}

/* sleeper */
static uint64_t sleeps;

static void *sleeper(void *arg)
{
	set_tid(4);
	while (!atomic_load(&stop)) {
		struct timespec t = {0, SLEEP_NS};
		long t0 = now_ns();
		int r = nanosleep(&t, NULL);
		long dt = now_ns() - t0;

		if (r != 0)
			failf("nanosleep", r, errno);
		if (dt < SLEEP_NS)
			failf("nanosleep_short_ns", dt, 0);
		sleeps++;
	}
	return arg;
}

/* busy */
static uint64_t busy_iters;

static void *busy(void *arg)
{
	uint64_t a = 0, b = 0, bad = 0;

	set_tid(5);
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		for (int i = 0; i < 100000; i++) {
			a++;
			b += 2;
			__asm__ volatile("" : "+r"(a), "+r"(b));
			if (b != 2 * a)
				bad++;
		}
	}
	if (bad)
		failf("busy_bad", (long)bad, 0);
	busy_iters = a;
	return arg;
}

/* handler */
#define SIG (SIGRTMIN + 1)
#define MAX_SIGS 200000
static int quiet_pipe[2];
static atomic_int sig_seen[MAX_SIGS];
static atomic_long sig_got;
static long sig_sent;

static void on_sig(int sig, siginfo_t *si, void *uc)
{
	int v = si->si_value.sival_int;

	(void)sig;
	(void)uc;
	if (v >= 0 && v < MAX_SIGS)
		atomic_fetch_add(&sig_seen[v], 1);
	atomic_fetch_add(&sig_got, 1);
}

static void *handler(void *arg)
{
	sigset_t s;
	char c;

	sigemptyset(&s);
	sigaddset(&s, SIG);
	pthread_sigmask(SIG_UNBLOCK, &s, NULL);
	set_tid(6);
	ssize_t r = read(quiet_pipe[0], &c, 1);

	if (r != 0)
		failf("handler_read", r, errno);
	return arg;
}

/* feeder: drives the others, and is injected into too */
static pthread_t handler_thread;

static void *feeder(void *arg)
{
	uint64_t seq = 0;

	set_tid(7);
	while (!atomic_load(&stop)) {
		struct timespec t = {0, 500000};

		if (write(data_pipe[1], &seq, sizeof(seq)) == sizeof(seq))
			seq++;
		uint64_t one = 1;

		if (write(efd, &one, sizeof(one)) != sizeof(one))
			failf("eventfd_write", 0, errno);
		atomic_fetch_add(&futex_word, 1);
		syscall(SYS_futex, &futex_word, FUTEX_WAKE_PRIVATE, 1, NULL,
			NULL, 0);
		/* 1 in 4 rounds: a steady flow, slower than the engine can
		 * defer even under TCG (a faster flood is skipped, by design) */
		if (seq % 4 == 0 && sig_sent < MAX_SIGS) {
			union sigval v = {.sival_int = (int)sig_sent};

			if (pthread_sigqueue(handler_thread, SIG, v) == 0)
				sig_sent++;
		}
		nanosleep(&t, NULL);
	}
	*(uint64_t *)arg = seq;
	return arg;
}

static uint8_t pattern(int region, size_t i)
{
	return (uint8_t)(i * 31 + region * 7 + (i >> 12));
}

int main(void)
{
	sigset_t s;
	struct sigaction sa;
	pthread_t th[6];
	uint64_t fed = 0;
	size_t bytes = (size_t)PAGES * 4096;
	uint8_t *reg[REGIONS];

	for (int r = 0; r < REGIONS; r++) {
		/* PROT_READ on every other page keeps the regions separate
		 * VMAs even if the kernel places them next to each other. */
		reg[r] = mmap(NULL, bytes + 4096, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (reg[r] == MAP_FAILED)
			return 2;
		mprotect(reg[r] + bytes, 4096, PROT_READ);
		for (size_t i = 0; i < bytes; i++)
			reg[r][i] = pattern(r, i);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sig;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(SIG, &sa, NULL);
	sigemptyset(&s);
	sigaddset(&s, SIG);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	if (pipe(data_pipe) || pipe(quiet_pipe))
		return 2;
	efd = eventfd(0, 0);
	set_tid(0);
	pthread_create(&th[0], NULL, reader, NULL);
	pthread_create(&th[1], NULL, epoller, NULL);
	pthread_create(&th[2], NULL, futexer, NULL);
	pthread_create(&th[3], NULL, sleeper, NULL);
	pthread_create(&th[4], NULL, busy, NULL);
	pthread_create(&handler_thread, NULL, handler, NULL);
	while (atomic_load(&ready_count) < 7)
		usleep(1000);
	pthread_create(&th[5], NULL, feeder, &fed);
	while (atomic_load(&ready_count) < 8)
		usleep(1000);

	printf("ready %d %p %zu %d", getpid(), (void *)reg[0], bytes,
	       REGIONS);
	for (int r = 1; r < REGIONS; r++)
		printf(" %p", (void *)reg[r]);
	printf(" tids");
	for (int i = 0; i < 8; i++)
		printf(" %s=%d", roles[i], tids[i]);
	printf("\n");
	fflush(stdout);

	char line[64];
	ssize_t n;

	do {
		n = read(0, line, sizeof(line));
	} while (n > 0 && strncmp(line, "check", 5) != 0);
	/* stdin stays open until after "check": EOF here is a wrong result */
	if (n <= 0)
		failf("main_read", n, errno);

	atomic_store(&stop, 1);
	pthread_join(th[5], NULL);
	/* wake everything one last time, then close the feeds */
	uint64_t one = 1;

	write(efd, &one, sizeof(one));
	atomic_fetch_add(&futex_word, 1);
	syscall(SYS_futex, &futex_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	close(data_pipe[1]);
	close(quiet_pipe[1]);
	for (int i = 0; i < 5; i++)
		pthread_join(th[i], NULL);
	pthread_join(handler_thread, NULL);
	/* what the epoll thread had not read when it saw the stop flag */
	uint64_t rest;

	fcntl(efd, F_SETFL, O_NONBLOCK);
	if (read(efd, &rest, sizeof(rest)) == sizeof(rest))
		epoll_count += rest;

	/* RT signals sent before the handler thread exited are delivered
	 * once it had them queued; count them now. */
	if (reads_ok != fed)
		failf("reads_vs_fed", (long)reads_ok - (long)fed, 0);
	if (epoll_count != fed + 1)
		failf("epoll_count_vs_fed", (long)epoll_count - (long)fed, 0);
	long lost = 0, dup = 0;

	for (long i = 0; i < sig_sent; i++) {
		int c = atomic_load(&sig_seen[i]);

		if (c == 0)
			lost++;
		else if (c > 1)
			dup++;
	}
	if (lost || dup || atomic_load(&sig_got) != sig_sent) {
		failf("signals_lost", lost, 0);
		failf("signals_dup", dup, 0);
	}
	for (int r = 0; r < REGIONS; r++)
		for (size_t i = 0; i < bytes; i++)
			if (reg[r][i] != pattern(r, i)) {
				failf("memory_region", r, 0);
				break;
			}
	printf("%s reads=%llu epoll_events=%llu epoll_eintr=%llu futex_wakes=%llu futex_again=%llu sleeps=%llu busy_iters=%llu signals=%ld/%ld%s\n",
	       fail[0] ? "FAIL" : "ok", (unsigned long long)reads_ok,
	       (unsigned long long)epoll_events,
	       (unsigned long long)epoll_eintr,
	       (unsigned long long)futex_wakes,
	       (unsigned long long)futex_again, (unsigned long long)sleeps,
	       (unsigned long long)busy_iters, (long)atomic_load(&sig_got),
	       sig_sent, fail);
	fflush(stdout);
	return fail[0] ? 1 : 0;
}
